"""Scalable power sampling without MCMC (Ji et al. 2026, "Scalable Power Sampling", arXiv 2601.21590).

The power distribution over whole responses factorises token by token exactly:

    p_pow(x_t | x_<t)  ∝  p(x_t | x_<t)^alpha * E_{y ~ p(. | x_<=t)} [ p(y)^(alpha - 1) ]

the second factor weighing how sure the continuations of x_t are. It is estimated, for the top-K candidates
of p at t, from M rollouts of the continuation drawn from p (temperature 1), up to EOS or `rollout_len`
tokens: F_c = mean_m exp((alpha - 1) log p(y_m)). Normalising p^alpha * F over the candidates from M rollouts
is biased (a ratio of estimates); the first-order bias is removed by the jackknife,
pi = M * pi(all) - (M - 1) * mean_m pi(without m), clipped at 0 and renormalised. Each candidate's rollouts
branch from the prefix's KV cache rows (`Decoder.fork`): nothing is re-encoded. With `entropy_threshold` > 0
the estimator runs only where the next-token entropy of p exceeds it (where the future matters and most of
the cost is saved); elsewhere the token is drawn from p^alpha itself (temperature 1/alpha).

Exactness as far as it goes: with K covering the vocabulary, rollouts to the end and M -> infinity each step
samples the exact conditional of p^alpha (tests/test_sampling.py measures the TV from the exact law as M grows).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from entropylab.decoder import Proposal, decode, draw, token_stats
from entropylab.errors import ConfigError
from entropylab.sampling._decoding import DecoderFactory
from entropylab.sampling.base import PowerSamples, check_alpha, check_int, masked_sum, prepare, seq_columns

__all__ = ["power_sample_sps", "candidate_distribution"]


def candidate_distribution(alpha: float, logp_cand: Tensor, future: Tensor, jackknife: bool = True) -> Tensor:
    """The estimated p_pow over each row's candidates [R, K] from their log p [R, K] and the rollouts'
    (alpha - 1) * log p(future) [R, K, M]; jackknife-corrected (M > 1), clipped at 0, rows summing to 1."""
    m = future.shape[-1]

    def normalised(log_f: Tensor) -> Tensor:  # softmax over the candidates of p^alpha * F, F [R, K, any]
        return torch.softmax(alpha * logp_cand.unsqueeze(-1) + log_f, dim=-2)

    full = normalised((torch.logsumexp(future, -1) - math.log(m)).unsqueeze(-1))[..., 0]
    if not jackknife or m == 1:
        return full
    # leave-one-out means: log((sum - exp(f_j)) / (M - 1)), computed stably against the row maximum
    top = future.amax(-1, keepdim=True)
    e = (future - top).exp()
    loo = torch.log((e.sum(-1, keepdim=True) - e).clamp(min=1e-300)) + top - math.log(m - 1)  # [R, K, M]
    pi_loo = normalised(loo).mean(-1)  # [R, K]
    pi = (m * full - (m - 1) * pi_loo).clamp(min=0)
    total = pi.sum(-1, keepdim=True)
    return torch.where(total > 0, pi / total.clamp(min=1e-30), full)


@torch.inference_mode()
def power_sample_sps(
    model,
    tokenizer,
    prompts,
    *,
    alpha: float = 4.0,
    n: int = 1,
    n_candidates: int = 8,
    n_rollouts: int = 4,
    rollout_len: int | None = 32,
    entropy_threshold: float = 0.0,
    jackknife: bool = True,
    max_new_tokens: int = 256,
    seed: int = 0,
    eos_token_id: int | list[int] | None = None,
    backend: str = "auto",
    progress: bool = False,
    **_ignored,
) -> PowerSamples:
    """Sample `n` responses per prompt from p^alpha token by token with the rollout estimate of the future
    factor (see the module docstring). `rollout_len` None: roll out to EOS or the length limit."""
    alpha = check_alpha(alpha)
    n = check_int("n", n, 1)
    k = check_int("n_candidates", n_candidates, 1)
    m = check_int("n_rollouts", n_rollouts, 1)
    if rollout_len is not None:
        rollout_len = check_int("rollout_len", rollout_len, 1)
    setup = prepare(model, tokenizer, prompts, max_new_tokens, eos_token_id=eos_token_id)
    vocab = int(model.get_output_embeddings().weight.shape[0])
    if not (isinstance(entropy_threshold, int | float) and 0.0 <= entropy_threshold <= math.log(vocab)):
        raise ConfigError(
            f"entropy_threshold must be in [0, ln V] = [0, {math.log(vocab):.3f}] nats, got {entropy_threshold!r}"
        )
    k = min(k, vocab)
    t_max, device, pad = setup.max_new_tokens, setup.device, setup.pad
    prompt, prompt_mask, prompt_index = setup.batch(n)
    rows = prompt.shape[0]
    generator = torch.Generator(device=device).manual_seed(int(seed))
    eos = torch.as_tensor(setup.eos, dtype=torch.long, device=device)
    tokens = torch.full((rows, t_max), pad, dtype=torch.long, device=device)
    logp_tok = torch.zeros((rows, t_max), dtype=torch.float32, device=device)
    logs_tok, ent_tok = torch.zeros_like(logp_tok), torch.zeros_like(logp_tok)
    length = torch.zeros(rows, dtype=torch.long, device=device)
    alive = torch.ones(rows, dtype=torch.bool, device=device)
    evaluated = generated = estimated = 0
    was_training = model.training
    model.eval()
    try:
        factory = DecoderFactory(model, device, backend, batch_hint=rows)
        dec = factory.new(rows, prompt.shape[1] + t_max)
        logits = dec.prefill(prompt, prompt_mask)
        steps = range(t_max)
        if progress:
            from entropylab.progress import bar as progress_bar

            steps = progress_bar(steps, desc="power SPS", unit="token")
        for t in steps:
            p = token_stats(logits, top=k)
            logp, ent = p.logp, p.entropy
            log_s = token_stats(logp, alpha=alpha, entropy=False).logp  # the token-level tempered distribution p^alpha
            apply = alive & (ent > entropy_threshold)
            horizon = t_max - t - 1 if rollout_len is None else min(rollout_len, t_max - t - 1)
            if bool(apply.any()) and horizon > 0:
                a = apply.nonzero()[:, 0]
                cand_lp, cand = p.top_logp[a], p.top_ids[a]  # [A, K]
                branch = dec.fork(a.repeat_interleave(k * m))
                first = cand.repeat_interleave(m, dim=1).flatten()  # [A*K*M]
                roll = decode(
                    branch,
                    branch.step(first),
                    torch.full_like(first, horizon),
                    Proposal(),
                    generator=generator,
                    eos=setup.eos,
                    pad=pad,
                )
                future = masked_sum(roll["logp"], seq_columns(roll["logp"].shape[1], device) < roll["n"][:, None])
                future = torch.where(torch.isin(first, eos), torch.zeros_like(future), future)  # EOS: no future
                pi = candidate_distribution(alpha, cand_lp, (alpha - 1.0) * future.view(len(a), k, m), jackknife)
                log_c = torch.where(pi > 0, pi.clamp(min=1e-45).log(), torch.full_like(pi, -math.inf))
                log_s = log_s.index_copy(0, a, torch.full_like(log_s[a], -math.inf).scatter(1, cand, log_c))
                evaluated += branch.evaluated
                generated += int(roll["n"].sum()) + first.numel()
                estimated += len(a)
            tok = draw(log_s, generator).masked_fill_(~alive, pad)
            r = alive.nonzero()[:, 0]
            tokens[r, t] = tok[r]
            logp_tok[r, t] = logp[r].gather(1, tok[r, None])[:, 0]
            logs_tok[r, t] = log_s[r].gather(1, tok[r, None])[:, 0]
            ent_tok[r, t] = ent[r]
            length[r] += 1
            generated += len(r)
            alive &= ~torch.isin(tok, eos)
            if not bool(alive.any()) or t + 1 == t_max:
                break
            logits = dec.step(tok)
        evaluated += dec.evaluated
    finally:
        model.train(was_training)
    return setup.collect(
        tokenizer,
        tokens=tokens,
        length=length,
        logq=logs_tok,
        logp=logp_tok,
        entropy=ent_tok,
        prompt_index=prompt_index,
        n=n,
        method="sps",
        meta=dict(
            alpha=alpha,
            n_candidates=k,
            n_rollouts=m,
            rollout_len=rollout_len,
            entropy_threshold=float(entropy_threshold),
            jackknife=jackknife,
            max_new_tokens=t_max,
            seed=seed,
        ),
        evaluated=evaluated,
        generated=generated,
        stats=dict(estimated_positions=estimated),
    )
