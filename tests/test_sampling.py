"""Power sampling: exactness against enumeration (MH, SMC), the index-choice correction, -inf safety, caches,
token accounting, determinism and bad input."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from entropylab.errors import ConfigError, ModelError
from entropylab.generation import logprobs_of
from entropylab.models import enumerable_model
from entropylab.sampling import (
    effective_sample_size,
    mh_accept,
    mh_log_ratio,
    power_sample_mh,
    power_sample_smc,
    systematic_resample,
)
from entropylab.sampling.exact import (
    empirical,
    mh_transition_matrix,
    power_of,
    sequence_logprobs,
    token_logprobs,
    tv_distance,
)

# The exactness case: a random Qwen2 over {a, b, c, EOS}, responses of at most 4 tokens (121 complete
# sequences, 1 to 4 tokens long), alpha = 2. Its MH kernel mixes in ~30 moves; without the index-choice
# correction the chain's stationary distribution is 0.14 (TV) away from p^alpha.
VOCAB, MAX_LEN, ALPHA, MODEL_SEED, SCALE = 4, 4, 2.0, 3, 0.2
CHAINS, STEPS = 4000, 30


pytestmark = pytest.mark.usefixtures("one_thread")


def exact_case_mh(model, tok, **kw):
    """MH on the exactness case: CHAINS chains of STEPS moves from the empty response (overrides in `kw`)."""
    args = dict(alpha=ALPHA, mcmc_steps=STEPS, block_size=MAX_LEN, max_new_tokens=MAX_LEN, n_chains=CHAINS)
    return power_sample_mh(model, tok, [[0]], **{**args, **kw})


@pytest.fixture(scope="module")
def small():
    model, tok = enumerable_model(VOCAB, init_scale=SCALE, seed=MODEL_SEED)
    per_token = token_logprobs(model, [0], MAX_LEN, VOCAB - 1, ALPHA)
    target = power_of({s: sum(v[0]) for s, v in per_token.items()}, ALPHA)
    return model, tok, per_token, target


def responses(s) -> list[list[int]]:
    return [r[:k].tolist() for r, k in zip(s.response_ids, s.n_tokens)]


def k_step(per_token, exact: bool, steps: int) -> dict:
    """Exact distribution of the chain after `steps` moves from the proposal's draw."""
    states, kernel = mh_transition_matrix(per_token, ALPHA, exact)
    d = np.array([math.exp(sum(per_token[s][1])) for s in states])
    d = d @ np.linalg.matrix_power(np.array(kernel), steps)
    return dict(zip(states, d))


# ------------------------------------------------------------------------------------------------ exactness


def test_mh_kernel_leaves_power_distribution_invariant(small):
    _, _, per_token, target = small
    states, kernel = mh_transition_matrix(per_token, ALPHA, exact=True)
    pi = np.array([target[s] for s in states])
    assert len(states) == 1 + 3 + 9 + 27 + 81  # EOS at 1..4 tokens, or 4 tokens without EOS
    assert np.abs(pi @ np.array(kernel) - pi).max() < 1e-12
    # the reference's approximation is not invariant
    _, approx = mh_transition_matrix(per_token, ALPHA, exact=False)
    assert np.abs(pi @ np.array(approx) - pi).max() > 1e-3


@pytest.mark.parametrize("kv", ["reuse", "recompute"])
def test_mh_converges_to_power_distribution(small, kv):
    model, tok, per_token, target = small
    s = exact_case_mh(model, tok, seed=1, kv=kv)
    emp = empirical(responses(s))
    assert tv_distance(emp, target) < 0.05  # measured 0.025
    assert tv_distance(emp, k_step(per_token, True, STEPS)) < 0.05  # the chain's exact law after 30 moves
    assert 0.0 < s.acceptance_rate < 1.0


@pytest.fixture(scope="module")
def small_stats(small):
    """The exactness case's per-token log p, log q, entropy and log-prob at temperature 1 (for the cut options)."""
    model = small[0]
    return token_logprobs(model, [0], MAX_LEN, VOCAB - 1, ALPHA, cut_temperature=1.0)


@pytest.mark.parametrize("cuts, cut_temperature", [("entropy", None), ("uniform", 1.0), ("entropy", 1.0)])
def test_entropy_cuts_and_first_token_proposal_keep_the_kernel_exact(small, small_stats, cuts, cut_temperature):
    """Entropy-placed cuts and a temperature-1 proposal of the cut token leave p^alpha invariant (the
    index-choice normalisers and first-token probabilities of both directions are in the ratio) and mix."""
    _, _, _, target = small
    states, kernel = mh_transition_matrix(small_stats, ALPHA, cuts=cuts, cut_temperature=cut_temperature)
    pi = np.array([target[s] for s in states])
    k = np.array(kernel)
    assert np.abs(pi @ k - pi).max() < 1e-12
    assert np.abs(k.sum(1) - 1).max() < 1e-12 and (k >= -1e-15).all()
    start = np.array([math.exp(sum(small_stats[s][1])) for s in states])
    assert 0.5 * np.abs(start @ np.linalg.matrix_power(k, 300) - pi).sum() < 1e-3  # it mixes
    if cuts == "entropy":  # dropping the normalisers' ratio breaks it
        w = {s: [h + 0.05 for h in small_stats[s][2]] for s in states}
        wrong = k.copy()
        for i, x in enumerate(states):
            wrong[i] = 0.0
            for m in range(len(x)):
                for j, y in enumerate(states):
                    if len(y) > m and y[:m] == x[:m]:
                        lq = lambda s_: small_stats[s_][1]  # noqa: E731
                        fq = (small_stats[y][3][m] + sum(lq(y)[m + 1 :])) if cut_temperature else sum(lq(y)[m:])
                        rq = (small_stats[x][3][m] + sum(lq(x)[m + 1 :])) if cut_temperature else sum(lq(x)[m:])
                        log_r = ALPHA * (sum(small_stats[y][0][m:]) - sum(small_stats[x][0][m:])) + rq - fq
                        wrong[i, j] += w[x][m] / sum(w[x]) * math.exp(fq) * min(1.0, math.exp(min(log_r, 0.0)))
            wrong[i, i] += 1.0 - wrong[i].sum()
        assert np.abs(pi @ wrong - pi).max() > 1e-4


@pytest.mark.parametrize("kv", ["reuse", "recompute"])
def test_mh_with_entropy_cuts_and_first_token_proposal_samples_the_power_distribution(small, small_stats, kv):
    model, tok, _, target = small
    s = exact_case_mh(model, tok, seed=2, kv=kv, cuts="entropy", cut_temperature=1.0)
    emp = empirical(responses(s))
    states, kernel = mh_transition_matrix(small_stats, ALPHA, cuts="entropy", cut_temperature=1.0)
    law = np.array([math.exp(sum(small_stats[x][1])) for x in states]) @ np.linalg.matrix_power(np.array(kernel), STEPS)
    assert tv_distance(emp, dict(zip(states, law))) < 0.05  # the chain's exact law after 30 moves
    assert tv_distance(emp, target) < 0.05
    assert s.meta["cuts"] == "entropy" and s.meta["cut_temperature"] == 1.0


def test_scalable_power_sampling_approaches_the_power_distribution(small):
    """SPS with every candidate and rollouts to the end: one rollout per candidate is biased (TV 0.15), four
    with the jackknife land at the sampling-noise floor of 4,000 samples (measured 0.024; 0.054 without it)."""
    from entropylab.sampling import power_sample_sps

    model, tok, _, target = small
    tv = {}
    for m, jk in ((1, True), (4, False), (4, True)):
        s = power_sample_sps(
            model,
            tok,
            [[0]],
            alpha=ALPHA,
            n=CHAINS,
            n_candidates=VOCAB,
            n_rollouts=m,
            rollout_len=None,
            max_new_tokens=MAX_LEN,
            seed=1,
            jackknife=jk,
        )
        tv[m, jk] = tv_distance(empirical(responses(s)), target)
    assert tv[1, True] > 0.1 and tv[4, True] < 0.04 and tv[4, True] < tv[4, False]
    assert s.meta["method"] == "sps" and s.stats["estimated_positions"] > 0


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(n_candidates=0), "n_candidates"),
        (dict(n_rollouts=0), "n_rollouts"),
        (dict(alpha=0.0), "alpha"),
        (dict(entropy_threshold=-0.1), "entropy_threshold"),
        (dict(entropy_threshold=9.0), "entropy_threshold"),
    ],
)
def test_sps_refuses_bad_settings_naming_the_field(small, kw, field):
    from entropylab.sampling import power_sample_sps

    model, tok, _, _ = small
    with pytest.raises(ConfigError, match=field):
        power_sample_sps(model, tok, [[0]], max_new_tokens=2, **kw)


def test_index_choice_correction_matters(small):
    model, tok, per_token, target = small
    s = exact_case_mh(model, tok, seed=1, exact=False)
    emp = empirical(responses(s))
    biased = k_step(per_token, False, 2000)  # the approximate chain's stationary law
    assert tv_distance(biased, target) > 0.1  # 0.139
    assert tv_distance(emp, target) > 0.1  # measured 0.141 (exact: 0.025)
    assert tv_distance(emp, k_step(per_token, False, STEPS)) < 0.05  # it is that (wrong) chain, faithfully


def test_smc_matches_power_distribution(small):
    model, tok, _, target = small
    s = power_sample_smc(model, tok, [[0]], alpha=ALPHA, n_particles=16, n=CHAINS, max_new_tokens=MAX_LEN, seed=1)
    assert tv_distance(empirical(responses(s)), target) < 0.05  # one draw per system; measured 0.031
    assert s.stats["resamples"] > 0
    # 4 particles: one draw per system is biased, the evidence-weighted pool of all particles is not
    p = power_sample_smc(
        model, tok, [[0]], alpha=ALPHA, n_particles=4, n=CHAINS, max_new_tokens=MAX_LEN, seed=2, return_particles=True
    )
    lw = p.log_weights.view(CHAINS, 4).double() + p.log_evidence.double()[:, None]
    pooled = empirical(responses(p), torch.softmax(lw.flatten(), 0).tolist())
    assert tv_distance(pooled, target) < 0.05  # measured 0.011
    log_z = math.log(sum(math.exp(ALPHA * v) for v in sequence_logprobs(model, [0], MAX_LEN, VOCAB - 1).values()))
    assert abs(float(torch.logsumexp(p.log_evidence.double(), 0)) - math.log(CHAINS) - log_z) < 0.05


def test_smc_alpha_ramp_stays_consistent(small):
    model, tok, _, target = small
    p = power_sample_smc(
        model,
        tok,
        [[0]],
        alpha=ALPHA,
        n_particles=8,
        n=2000,
        max_new_tokens=MAX_LEN,
        seed=3,
        alpha_ramp=3,
        return_particles=True,
    )
    lw = p.log_weights.view(2000, 8).double() + p.log_evidence.double()[:, None]
    pooled = empirical(responses(p), torch.softmax(lw.flatten(), 0).tolist())
    assert tv_distance(pooled, target) < 0.05


# ------------------------------------------------------------------------------------------------ MH pieces


def test_mh_log_ratio_rejects_impossible_moves_without_nan():
    ninf = -math.inf
    t = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    log_r = mh_log_ratio(
        4.0,
        logp_new=t(-1.0, -1.0, ninf, -1.0, -2.0),
        logp_old=t(-2.0, -2.0, -1.0, ninf, -1.0),
        logq_new=t(-1.0, -1.0, -1.0, -1.0, ninf),
        logq_old=t(-1.0, ninf, -1.0, -1.0, ninf),
        len_new=torch.tensor([2, 2, 2, 2, 2]),
        len_old=torch.tensor([3, 3, 3, 3, 3]),
    )
    assert not torch.isnan(log_r).any()
    assert log_r[0] == pytest.approx(4.0 + math.log(3 / 2))  # alpha * (-1 + 2) + 0 + log L(x) - log L(x')
    assert torch.isneginf(log_r[1:3]).all() and torch.isneginf(log_r[4])  # reverse / proposal impossible
    assert log_r[3] == math.inf  # leaving an impossible state
    u = torch.full((5,), 0.999999)
    assert mh_accept(log_r, u).tolist() == [True, False, False, True, False]
    assert not mh_accept(torch.tensor([math.nan]), torch.tensor([1e-9])).any()
    # the reference's approximation drops log L(x) - log L(x')
    log_r2 = mh_log_ratio(4.0, t(-1.0), t(-2.0), t(-1.0), t(-1.0), torch.tensor([2]), torch.tensor([3]), exact=False)
    assert log_r2[0] == pytest.approx(4.0)


def test_truncated_proposals_are_safe():
    model, tok = enumerable_model(6, init_scale=0.3, seed=1, num_layers=2)
    for kv in ("reuse", "recompute"):
        s = power_sample_mh(
            model,
            tok,
            ["ab", "c"],
            alpha=3.0,
            mcmc_steps=4,
            block_size=3,
            max_new_tokens=7,
            n_chains=4,
            seed=0,
            top_k=2,
            top_p=0.8,
            kv=kv,
        )
        assert torch.isfinite(s.loglik).all()
        assert torch.isfinite(s.logprobs[s.response_mask]).all()
        assert 0.0 <= s.acceptance_rate <= 1.0
        assert all(0.0 <= a <= 1.0 for a in s.acceptance_per_block)
        assert ((s.acceptance_per_row >= 0) & (s.acceptance_per_row <= 1)).all()


def test_cache_reuse_matches_recompute_and_fresh_forward():
    model, tok = enumerable_model(6, init_scale=0.1, seed=3, num_layers=2)
    prompts = ["a", "abcd", "bb", "cacbda"]  # different lengths: left padding
    out = {}
    for kv, backend in (("reuse", "auto"), ("recompute", "auto"), ("recompute", "hf")):
        s = power_sample_mh(
            model,
            tok,
            prompts,
            alpha=3.0,
            mcmc_steps=5,
            block_size=4,
            max_new_tokens=13,
            n_chains=3,
            seed=5,
            kv=kv,
            backend=backend,
        )
        ids, mask, resp = s.to_batch()
        lp, ent = logprobs_of(model, ids, mask, resp)
        lq, _ = logprobs_of(model, ids, mask, resp, temperature=1 / 3.0)
        assert (lp - s.logprobs_t1).abs().max() < 1e-4
        assert (lq - s.logprobs).abs().max() < 1e-4
        assert (ent - s.entropy).abs().max() < 1e-4
        assert torch.allclose(s.loglik, lp.sum(1), atol=1e-4)
        assert s.meta["kv"] == kv
        out[kv if backend == "auto" else backend] = s
    # the two paths draw in different orders (kept caches run each chain's moves as soon as it is free),
    # so their samples differ; each is checked against enumeration in test_mh_converges_to_power_distribution
    assert len(set(out["reuse"].n_tokens.tolist())) > 2  # EOS at different lengths, several blocks
    assert out["reuse"].tokens_evaluated < out["recompute"].tokens_evaluated
    assert out["reuse"].stats["prefill_positions"] == 0
    assert out["reuse"].stats["replayed_tokens"] > 0  # moves drew from the states' stored distributions


def test_kept_caches_and_lockstep_recompute_agree_in_law(small):
    """Frozen chains over two blocks (no closed form): the continuous-batching runner and the lockstep
    re-encoding loop make the same per-chain sequence of moves, so (length, first token) agree in law."""
    model, tok, _, _ = small
    kw = dict(alpha=ALPHA, mcmc_steps=3, block_size=2, max_new_tokens=MAX_LEN, n_chains=CHAINS)
    laws, rates = [], []
    for kv, seed in (("reuse", 11), ("recompute", 12)):
        s = power_sample_mh(model, tok, [[0]], kv=kv, seed=seed, **kw)
        laws.append(empirical([(len(r), r[0]) for r in responses(s)]))
        rates.append(s.acceptance_rate)
    assert tv_distance(*laws) < 0.05  # measured 0.015; two runs of the same path differ by up to 0.03
    assert abs(rates[0] - rates[1]) < 0.02


def test_token_accounting():
    model, tok = enumerable_model(5, seed=0)
    prompts = [[0, 1, 2], [1, 2]]  # left-padded to width 3
    r, p, t = 2, 3, 6
    no_eos = dict(eos_token_id=[], max_new_tokens=t, block_size=t, mcmc_steps=0, seed=0)
    s = power_sample_mh(model, tok, prompts, kv="reuse", **no_eos)
    assert s.tokens_evaluated == r * (p + t - 1)  # prompts once (the first draw uses the prefill), t - 1 tokens
    s = power_sample_mh(model, tok, prompts, kv="recompute", **no_eos)
    assert s.tokens_evaluated == r * (p + t - 1)
    assert s.tokens_generated == r * t and (s.n_tokens == t).all()
    m = power_sample_mh(model, tok, prompts, kv="reuse", **{**no_eos, "mcmc_steps": 3})
    assert m.tokens_evaluated > s.tokens_evaluated and m.stats["proposals"] == 3 * r


def test_determinism_by_seed():
    model, tok = enumerable_model(6, init_scale=0.3, seed=2)
    kw = dict(alpha=2.0, mcmc_steps=3, block_size=3, max_new_tokens=8, n_chains=4)
    a = power_sample_mh(model, tok, ["ab"], seed=7, **kw)
    b = power_sample_mh(model, tok, ["ab"], seed=7, **kw)
    c = power_sample_mh(model, tok, ["ab"], seed=8, **kw)
    assert torch.equal(a.response_ids, b.response_ids) and a.texts == b.texts
    assert not torch.equal(a.response_ids, c.response_ids) or a.texts != c.texts
    sa = power_sample_smc(model, tok, ["ab"], n_particles=4, n=3, max_new_tokens=8, seed=7)
    sb = power_sample_smc(model, tok, ["ab"], n_particles=4, n=3, max_new_tokens=8, seed=7)
    assert torch.equal(sa.response_ids, sb.response_ids)
    # the samplers run under inference mode but return ordinary tensors (usable under autograd)
    assert not any(v.is_inference() for x in (a, sa) for v in vars(x).values() if isinstance(v, torch.Tensor))


# ------------------------------------------------------------------------------------------------ SMC pieces


def test_resampling_helpers():
    lw = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4], [1.0, 1.0, 1.0, 1.0]], dtype=torch.float64))
    ess = effective_sample_size(lw)
    assert ess[0] == pytest.approx(1 / (0.01 + 0.04 + 0.09 + 0.16)) and ess[1] == pytest.approx(4.0)
    idx = systematic_resample(lw, torch.tensor([0.5, 0.0], dtype=torch.float64))
    assert idx[0].tolist() == [1, 2, 3, 3] and idx[1].tolist() == [0, 1, 2, 3]
    counts = torch.zeros(4)
    for u in torch.rand(2000, dtype=torch.float64):
        counts += torch.bincount(systematic_resample(lw[:1], u[None])[0], minlength=4)
    assert torch.allclose(counts / counts.sum(), torch.tensor([0.1, 0.2, 0.3, 0.4]), atol=0.01)


@pytest.mark.parametrize("backend", ["auto", "hf"])
def test_smc_resampling_keeps_caches_consistent(backend):
    model, tok = enumerable_model(6, init_scale=0.3, seed=4, num_layers=2)
    s = power_sample_smc(
        model,
        tok,
        ["a", "bcab", "cc"],
        alpha=3.0,
        n_particles=6,
        n=2,
        max_new_tokens=10,
        seed=0,
        ess_threshold=1.0,
        return_particles=True,
        backend=backend,
    )  # resample after every token
    assert s.stats["resamples"] > 10
    ids, mask, resp = s.to_batch()
    lp, ent = logprobs_of(model, ids, mask, resp)
    lq, _ = logprobs_of(model, ids, mask, resp, temperature=1 / 3.0)
    assert (lp - s.logprobs_t1).abs().max() < 1e-4  # every particle's cache is its own ancestry's
    assert (lq - s.logprobs).abs().max() < 1e-4
    assert (ent - s.entropy).abs().max() < 1e-4
    assert torch.allclose(torch.logsumexp(s.log_weights.view(6, 6), 1), torch.zeros(6), atol=1e-5)
    assert len(s) == 3 * 2 * 6 and s.n == 12


# ------------------------------------------------------------------------------------------------ bad input


def test_bad_inputs_raise_clear_errors():
    model, tok = enumerable_model(4, max_position_embeddings=16)
    with pytest.raises(ConfigError, match="alpha"):
        power_sample_mh(model, tok, ["a"], alpha=0)
    with pytest.raises(ConfigError, match="alpha"):
        power_sample_smc(model, tok, ["a"], alpha=-1.0)
    with pytest.raises(ConfigError, match="alpha"):
        power_sample_mh(model, tok, ["a"], alpha=float("nan"))
    with pytest.raises(ConfigError, match="block_size"):
        power_sample_mh(model, tok, ["a"], block_size=0)
    with pytest.raises(ConfigError, match="mcmc_steps"):
        power_sample_mh(model, tok, ["a"], mcmc_steps=-1)
    with pytest.raises(ConfigError, match="n_chains"):
        power_sample_mh(model, tok, ["a"], n_chains=0)
    with pytest.raises(ConfigError, match="n_particles"):
        power_sample_smc(model, tok, ["a"], n_particles=0)
    with pytest.raises(ConfigError, match="ess_threshold"):
        power_sample_smc(model, tok, ["a"], ess_threshold=1.5)
    with pytest.raises(ConfigError, match="kv"):
        power_sample_mh(model, tok, ["a"], kv="sometimes")
    with pytest.raises(ModelError, match="prompt 1 has 16 tokens"):
        power_sample_mh(model, tok, ["a", "ab" * 8], max_new_tokens=4)
    with pytest.warns(UserWarning, match="clamped"):
        s = power_sample_mh(model, tok, ["ab" * 7], max_new_tokens=8, mcmc_steps=1)
    assert s.response_ids.shape[1] <= 2
    model.config.use_cache = False
    with pytest.raises(ModelError, match="use_cache"):
        power_sample_mh(model, tok, ["a"], max_new_tokens=4)
    model.config.use_cache = True


def test_model_without_kv_cache_is_refused():
    model, tok = enumerable_model(4)

    class NoCache(type(model)):
        def forward(self, *args, **kwargs):
            out = super().forward(*args, **kwargs)
            for name in ("cache", "past_key_values"):  # the KV cache under either transformers name
                if name in out:
                    out[name] = None
            return out

    bare = NoCache(model.config).eval()
    for fn in (power_sample_mh, power_sample_smc):
        with pytest.raises(ModelError, match="past_key_values"):
            fn(bare, tok, ["a"], max_new_tokens=3)


def test_sampling_does_not_import_rl():
    code = "import sys, entropylab.sampling, entropylab.compare; assert 'entropylab.rl' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_several_blocks_target_power_distribution_when_finished_chains_keep_moving(small):
    model, tok, _, target = small
    s = exact_case_mh(model, tok, block_size=2, seed=4, freeze_finished=False)
    assert tv_distance(empirical(responses(s)), target) < 0.05
    assert len(s.acceptance_per_block) == 2
