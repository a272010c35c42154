"""The decoding core: row statistics by hand, truncation, the Gumbel-max draw, the decoders and the decode loop."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

from entropylab.decoder import (
    FastDecoder,
    HFDecoder,
    Proposal,
    decode,
    draw,
    eos_ids,
    new_decoder,
    pad_id,
    token_stats,
    truncate,
    use_fast_path,
)
from entropylab.errors import ModelError
from entropylab.generation import continue_sampling, left_pad, sample
from entropylab.sampling import (
    power_sample_mh,
    power_sample_smc,
    power_sample_sps,
    sample_low_temperature,
    sample_plain,
)

EOS = 11
PROMPTS = [[1, 2, 3], [4], [5, 6]]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=12,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
        eos_token_id=EOS,
        pad_token_id=EOS,
        bos_token_id=None,
        initializer_range=0.15,
    )
    return Qwen2ForCausalLM(cfg).eval()


class IdTokenizer:
    """Token ids as text: all `generation.sample` needs of a tokenizer for id prompts."""

    pad_token_id = eos_token_id = EOS

    def batch_decode(self, rows, skip_special_tokens: bool = True) -> list[str]:
        return [" ".join(map(str, r)) for r in rows]


# ------------------------------------------------------------------------------------------------ token_stats


def test_uniform_rows_have_entropy_ln_v_in_any_leading_shape():
    s = token_stats(torch.zeros(2, 3, 7))
    assert s.logp.shape == (2, 3, 7) and s.entropy.shape == (2, 3)
    torch.testing.assert_close(s.entropy, torch.full((2, 3), math.log(7)))
    torch.testing.assert_close(s.logp, torch.full((2, 3, 7), -math.log(7)))


def test_one_hot_rows_have_entropy_zero():
    one_hot = torch.full((2, 5), -math.inf)
    one_hot[0, 1] = one_hot[1, 4] = 0.0
    s = token_stats(one_hot)
    assert s.entropy.tolist() == [0.0, 0.0]  # -inf entries count 0, no NaN
    peaked = token_stats(torch.tensor([[200.0, 0.0, 0.0]]))
    assert float(peaked.entropy[0]) == 0.0


def test_logprobs_sum_to_one_and_the_entropy_matches_a_hand_computation():
    torch.manual_seed(1)
    logits = torch.randn(4, 6, 9) * 3
    s = token_stats(logits)
    torch.testing.assert_close(s.logp.exp().sum(-1), torch.ones(4, 6))
    p = torch.softmax(logits.double(), -1)
    torch.testing.assert_close(s.entropy.double(), -(p * p.log()).sum(-1), atol=1e-5, rtol=0)
    assert s.logp.dtype == torch.float32 and s.top_ids is None and s.target_logp is None
    assert token_stats(logits, entropy=False).entropy is None


def test_target_logprobs_are_the_gathered_rows():
    torch.manual_seed(2)
    logits, targets = torch.randn(3, 8), torch.tensor([0, 5, 7])
    s = token_stats(logits, targets=targets)
    assert torch.equal(s.target_logp, torch.log_softmax(logits, -1)[torch.arange(3), targets])


def test_top_tokens_match_torch_topk():
    torch.manual_seed(3)
    logits = torch.randn(2, 3, 10)
    s = token_stats(logits, top=4)
    ref = torch.topk(torch.log_softmax(logits, -1), 4, dim=-1)
    assert torch.equal(s.top_ids, ref.indices) and torch.equal(s.top_logp, ref.values)
    assert torch.equal(s.top_ids, torch.topk(logits, 4, dim=-1).indices)
    assert token_stats(logits, top=50).top_ids.shape == (2, 3, 10)  # at most the vocabulary


def test_temperature_and_alpha_scale_the_logits():
    torch.manual_seed(4)
    logits = torch.randn(5, 7)
    assert torch.equal(token_stats(logits, temperature=0.7).logp, torch.log_softmax(logits / 0.7, -1))
    assert torch.equal(token_stats(logits, alpha=3.0).logp, torch.log_softmax(logits * 3.0, -1))
    assert torch.equal(token_stats(logits, temperature=1.0).logp, torch.log_softmax(logits, -1))
    hot, cold = token_stats(logits, temperature=5.0).entropy, token_stats(logits, temperature=0.2).entropy
    assert (hot > token_stats(logits).entropy).all() and (cold < token_stats(logits).entropy).all()
    assert (hot < math.log(7)).all()


def test_truncated_rows_renormalise_over_the_kept_tokens():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    s = token_stats(logits, top_k=2)
    kept = torch.softmax(torch.tensor([3.0, 2.0]), -1)
    torch.testing.assert_close(s.logp[0, :2].exp(), kept)
    assert torch.isneginf(s.logp[0, 2:]).all()
    torch.testing.assert_close(s.entropy[0], -(kept * kept.log()).sum())
    # any leading shape: a [2, 3, V] batch truncates as its rows do one by one
    torch.manual_seed(5)
    batch = torch.randn(2, 3, 11)
    flat = truncate(batch.reshape(6, 11), 4, 0.7).reshape(2, 3, 11)
    assert torch.equal(truncate(batch, 4, 0.7), flat)


def test_entropy_keeps_gradients():
    logits = torch.randn(3, 6, requires_grad=True)
    s = token_stats(logits, temperature=0.5)
    s.entropy.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


# ------------------------------------------------------------------------------------------------ Proposal, draw


def test_proposal_plain_greedy_and_processed():
    logits = torch.randn(2, 5)
    logp = token_stats(logits).logp
    assert Proposal().plain and Proposal(alpha=1.0).plain and not Proposal(top_k=2).plain
    assert Proposal().logprobs(logits, logp) is logp
    assert Proposal(temperature=0).greedy and not Proposal(alpha=2.0).greedy
    torch.testing.assert_close(
        Proposal(alpha=2.0, top_p=0.9).logprobs(logits), token_stats(logits, alpha=2.0, top_p=0.9).logp
    )
    doubled = Proposal(processor=lambda z: 2 * z).logprobs(logits, logp)
    torch.testing.assert_close(doubled, token_stats(logits, alpha=2.0).logp)


def test_draw_is_exact_and_never_draws_excluded_tokens():
    logq = torch.log(torch.tensor([0.5, 0.3, 0.2, 0.0])).expand(20000, 4)
    tok = draw(logq, torch.Generator().manual_seed(0))
    freq = torch.bincount(tok, minlength=4).float() / len(tok)
    assert freq[3] == 0
    torch.testing.assert_close(freq[:3], torch.tensor([0.5, 0.3, 0.2]), atol=0.015, rtol=0)


# ------------------------------------------------------------------------------------------------ ids, back-ends


def test_eos_and_pad_ids():
    class Tok:
        eos_token_id, pad_token_id = 3, None

    class Model:
        class generation_config:  # noqa: N801
            eos_token_id = [7, 3]

    assert eos_ids(Model(), Tok()) == [3, 7]
    assert eos_ids(Model(), Tok(), 5) == [5] and eos_ids(None, None, [1, 2]) == [1, 2]
    assert pad_id(Tok(), [3, 7]) == 3 and pad_id(IdTokenizer(), []) == EOS and pad_id(None, []) == 0


def test_backend_choice(model):
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=12, n_embd=16, n_layer=1, n_head=2, n_positions=32)).eval()
    assert use_fast_path(model) and not use_fast_path(model, "hf") and not use_fast_path(gpt2)
    assert isinstance(new_decoder(model, 2, 8, torch.device("cpu")), FastDecoder)
    assert isinstance(new_decoder(gpt2, 2, 8, torch.device("cpu")), HFDecoder)
    with pytest.raises(ModelError, match="does not support model type 'gpt2'"):
        use_fast_path(gpt2, "fast")
    with pytest.raises(ModelError, match="backend must be"):
        use_fast_path(model, "fastest")


@torch.inference_mode()
def test_fast_and_hf_decoders_agree_through_prefill_steps_selects_and_forks(model):
    ids, mask = left_pad(PROMPTS, EOS)
    device = torch.device("cpu")
    fast, hf = FastDecoder(model, 3, 10, device), HFDecoder(model, 3, 10, device)
    torch.testing.assert_close(fast.prefill(ids, mask), hf.prefill(ids, mask), atol=1e-5, rtol=0)
    for tokens in ([1, 2, 3], [4, 5, 6]):
        t = torch.tensor(tokens)
        torch.testing.assert_close(fast.step(t), hf.step(t), atol=1e-5, rtol=0)
    keep = torch.tensor([2, 0, 0])
    forks = fast.fork(keep), hf.fork(keep)
    fast.select(torch.tensor([2, 0]))
    hf.select(torch.tensor([2, 0]))
    t = torch.tensor([7, 8])
    a, b = fast.step(t), hf.step(t)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    t3 = torch.tensor([7, 8, 8])
    fa, fb = forks[0].step(t3), forks[1].step(t3)
    torch.testing.assert_close(fa, fb, atol=1e-5, rtol=0)
    torch.testing.assert_close(fa[:2], a, atol=1e-5, rtol=0)  # forks continue as their source rows do
    fresh = fast.fresh(3, 10)  # the same weights, an empty cache
    torch.testing.assert_close(
        fresh.prefill(ids, mask), HFDecoder(model, 3, 10, device).prefill(ids, mask), atol=1e-5, rtol=0
    )


# ------------------------------------------------------------------------------------------------ the decode loop


@torch.inference_mode()
def test_decode_stops_rows_at_their_horizons_and_at_eos(model):
    ids, mask = left_pad(PROMPTS * 2, EOS)
    dec = new_decoder(model, 6, ids.shape[1] + 6, ids.device)
    horizon = torch.tensor([6, 1, 3, 6, 2, 4])
    out = decode(
        dec, dec.prefill(ids, mask), horizon, Proposal(), generator=torch.Generator().manual_seed(0), eos=[EOS], pad=EOS
    )
    assert out["tokens"].shape == (6, 6) and (out["n"] <= horizon).all()
    for r in range(6):
        n = int(out["n"][r])
        row = out["tokens"][r].tolist()
        assert (EOS in row[:n]) == bool(out["eos"][r]) and EOS not in row[: n - 1]
        assert n == horizon[r] or out["eos"][r]
        assert (out["logp"][r, n:] == 0).all() and (out["entropy"][r, n:] == 0).all() and set(row[n:]) <= {EOS}
    assert (out["logq"] == out["logp"]).all()  # plain proposal: q is p


def test_the_rl_sampler_and_the_plain_baseline_share_one_loop(model):
    tok = IdTokenizer()
    for backend in ("fast", "hf"):
        a = sample(model, tok, PROMPTS, n=3, max_new_tokens=8, seed=4, eos_token_id=EOS, backend=backend)
        b = sample_plain(model, tok, PROMPTS, n=3, max_new_tokens=8, seed=4, eos_token_id=EOS, backend=backend)
        assert torch.equal(a.response_ids, b.response_ids) and torch.equal(a.logprobs_t1, b.logprobs_t1)
        assert torch.equal(a.entropy, b.entropy) and torch.equal(a.finished, b.finished)
    a = sample(model, tok, PROMPTS, n=3, max_new_tokens=8, seed=4, eos_token_id=EOS, temperature=0.5, top_k=5)
    b = sample_low_temperature(model, tok, PROMPTS, alpha=2.0, n=3, max_new_tokens=8, seed=4, eos_token_id=EOS, top_k=5)
    assert torch.equal(a.response_ids, b.response_ids) and torch.equal(a.logprobs, b.logprobs)


# fixed-seed samples of this model, as the samplers drew them before the decode loops were one
GOLDEN = {
    "continue": [[5, 10, 8, 8, 6, 10, 10, 10], [11, 11, 11, 11, 11, 11, 11, 11], [2, 3, 1, 4, 3, 8, 4, 1]],
    "plain": [
        [5, 5, 5, 5, 5, 7, 10, 9],
        [6, 3, 2, 4, 9, 8, 0, 8],
        [7, 10, 6, 10, 10, 4, 0, 4],
        [4, 4, 5, 11, 11, 11, 11, 11],
        [6, 2, 6, 9, 8, 5, 1, 4],
        [3, 0, 11, 11, 11, 11, 11, 11],
    ],
    "mh": [
        [6, 10, 6, 11, 11, 11],
        [5, 10, 8, 8, 0, 11],
        [11, 11, 11, 11, 11, 11],
        [11, 11, 11, 11, 11, 11],
        [8, 5, 0, 11, 11, 11],
        [3, 7, 4, 11, 11, 11],
    ],
    "mh_recompute": [
        [5, 10, 8, 4, 10, 11, 11, 11],
        [6, 10, 8, 0, 6, 10, 10, 10],
        [0, 11, 11, 11, 11, 11, 11, 11],
        [4, 4, 11, 11, 11, 11, 11, 11],
        [1, 5, 11, 11, 11, 11, 11, 11],
        [6, 2, 2, 5, 5, 5, 1, 10],
    ],
    "smc": [
        [6, 10, 8, 4, 10, 11, 11, 11],
        [10, 8, 6, 0, 10, 1, 11, 11],
        [4, 11, 11, 11, 11, 11, 11, 11],
        [7, 11, 11, 11, 11, 11, 11, 11],
        [11, 11, 11, 11, 11, 11, 11, 11],
        [11, 11, 11, 11, 11, 11, 11, 11],
    ],
    "sps": [
        [10, 10, 11, 11, 11, 11, 11, 11],
        [5, 10, 4, 10, 11, 11, 11, 11],
        [11, 11, 11, 11, 11, 11, 11, 11],
        [11, 11, 11, 11, 11, 11, 11, 11],
        [2, 5, 5, 10, 3, 5, 1, 1],
        [8, 3, 11, 11, 11, 11, 11, 11],
    ],
}


def test_fixed_seed_samples_are_unchanged(model):
    ids, mask = left_pad(PROMPTS, EOS)
    for backend in ("fast", "hf"):
        out = continue_sampling(
            model,
            ids,
            mask,
            max_new_tokens=8,
            temperature=0.8,
            top_k=6,
            generator=torch.Generator().manual_seed(0),
            eos_token_id=EOS,
            pad_token_id=EOS,
            backend=backend,
        )
        assert out["response_ids"].tolist() == GOLDEN["continue"], backend
    kw = dict(max_new_tokens=8, seed=1, eos_token_id=EOS)
    mh = dict(alpha=2.0, mcmc_steps=3, block_size=4, n_chains=2)
    got = {
        "plain": sample_plain(model, None, PROMPTS, n=2, **kw),
        "mh": power_sample_mh(model, None, PROMPTS, **mh, **kw),
        "mh_recompute": power_sample_mh(
            model, None, PROMPTS, **mh, kv="recompute", cuts="entropy", cut_temperature=1.0, **kw
        ),
        "smc": power_sample_smc(model, None, PROMPTS, alpha=2.0, n_particles=4, n=2, top_p=0.9, **kw),
        "sps": power_sample_sps(
            model, None, PROMPTS, alpha=2.0, n=2, n_candidates=3, n_rollouts=2, rollout_len=3, **kw
        ),
    }
    for name, s in got.items():
        assert s.response_ids.tolist() == GOLDEN[name], name


def test_entropy_moments_against_float64():
    from entropylab.decoder import entropy_moments

    g = torch.Generator().manual_seed(5)
    logits = torch.randn(7, 33, generator=g) * 3
    logp = token_stats(logits, entropy=False).logp
    lp64 = torch.log_softmax(logits.double(), -1)
    p64 = lp64.exp()
    h64 = -(p64 * lp64).sum(-1)
    v64 = (p64 * (lp64 + h64[:, None]) ** 2).sum(-1)
    h, v = entropy_moments(logp.clone())
    assert torch.allclose(h.double(), h64, atol=1e-5) and torch.allclose(v.double(), v64, atol=1e-4)
    assert torch.allclose(h, token_stats(logits).entropy, atol=1e-5)
    flat = token_stats(torch.zeros(2, 8), entropy=False).logp
    h, v = entropy_moments(flat)
    assert torch.allclose(h, torch.full((2,), math.log(8))) and torch.allclose(v, torch.zeros(2), atol=1e-6)
