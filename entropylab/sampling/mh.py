"""Power sampling from p(x)^alpha by block-wise Metropolis-Hastings (Karan & Du 2025), many chains in one batch.

The target and the move (exact MH)
----------------------------------
A response x (the tokens after the prompt) is *complete* in block k when it ends with EOS or reaches the
block end E_k = min(k * block_size, max_new_tokens). Block k's target is pi_k(x) ∝ p(x)^alpha over
those responses, p the model at temperature 1; the last block's target is p^alpha over complete responses
(EOS, or max_new_tokens reached), so with one block (block_size >= max_new_tokens) the chain samples
exactly p^alpha. The proposal q is the model at temperature 1/alpha (optionally top-k / top-p truncated).

Each block: extend every unfinished chain with q up to E_k (or EOS), then run `mcmc_steps` MH moves:

1. pick m uniformly in {0, ..., L(x) - 1}, L(x) the number of generated tokens (EOS included);
2. keep x_<m and draw a new suffix y ~ q(. | prompt, x_<m) up to EOS or E_k: x' = x_<m + y;
3. accept x' with probability min(1, R), where R compares the two directions of the *same* m:

       forward  Q_m(x -> x') = 1/L(x)  * q(x'_m: | x_<m)
       reverse  Q_m(x' -> x) = 1/L(x') * q(x_m:  | x_<m)      (m < L(x'), so m is a legal pick from x')
       log R = alpha * (log p(x'_m:) - log p(x_m:)) + log q(x_m:) - log q(x'_m:) + log L(x) - log L(x')

Each m-indexed move is reversible w.r.t. pi_k (the flux x -> x' is min(pi(x) Q_m(x->x'), pi(x') Q_m(x'->x)),
symmetric), so the mixture over m is too. The prefix x_<m is shared, so only suffix sums enter R. The
reference code drops log L(x) - log L(x') (and truncates the current suffix to the proposal's length);
that is not exact when an EOS makes the lengths differ. `exact=False` reproduces that approximation.
A reverse move of probability zero (log q(x_m:) = -inf, possible with top-k / top-p) or a NaN ratio is
rejected. A chain stops once its state ends with EOS (after its block's MH moves), as in the paper; its
law is then block k's target restricted to EOS-ended responses, not the last block's. With
`freeze_finished=False` such chains keep moving in later blocks and every chain targets p^alpha over
complete responses (on the exactness case of tests/test_sampling.py with two blocks: TV 0.026 from the
exact p^alpha, against 0.095 when frozen).

Batched moves and the KV cache
------------------------------
All prompts x chains form one batch (left padding) and every row picks its own m. The log p, log q and
entropy of each token of a chain's state are stored when the token is drawn, so a state is never
re-scored: the current suffix's terms of R are sums over the stored arrays, and a proposal's come from
its own draw.

With `kv="reuse"` (default for Llama/Qwen2/Qwen3) the chains run in `kept_chains.KeptChains`: each chain's
K/V and the final hidden state of every position of its state are kept, so nothing is re-encoded; a move
cut at m draws its first token from the stored h_m, and while the proposal repeats the state's tokens
(y_<j = x_<j) its distribution at j *is* the state's, so those tokens are drawn from the stored h_j
without any forward (`stats["replayed_tokens"]`); the forward runs from the first token that differs.
Rows are continuously batched: a row whose job ends (EOS or the block end) takes its chain's next job at
once, so no row waits for the longest proposal of the batch.
With `kv="recompute"` (any model) all chains move in lockstep and the rows' prefixes are re-encoded in
one batched prefill per move. The reference code instead re-encodes per chain, one chain at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from entropylab.decoder import Proposal
from entropylab.errors import ConfigError, ModelError
from entropylab.sampling._decoding import DecoderFactory, left_align_prefixes, sample_suffixes
from entropylab.sampling.base import PowerSamples, check_alpha, check_int, check_top_p, masked_sum, prepare, seq_columns
from entropylab.sampling.cuts import CUTS, cut_weights, pick_cuts
from entropylab.sampling.kept_chains import KeptChains

__all__ = ["power_sample_mh", "mh_log_ratio", "mh_accept", "splice", "block_ends"]

# ------------------------------------------------------------------------------------------------ pure pieces


def block_ends(max_new_tokens: int, block_size: int) -> list[int]:
    """The generated length at the end of each block: [B, 2B, ..., max_new_tokens]."""
    return [min(e, max_new_tokens) for e in range(block_size, max_new_tokens + block_size, block_size)]


def mh_log_ratio(
    alpha: float,
    logp_new: Tensor,
    logp_old: Tensor,
    logq_new: Tensor,
    logq_old: Tensor,
    len_new: Tensor,
    len_old: Tensor,
    exact: bool = True,
) -> Tensor:
    """log R of the suffix move, per row; -inf wherever the move must be rejected.

    logp_* / logq_*: summed log p / log q of the proposed (new) and current (old) suffix from m;
    len_*: the index-choice normalisers Z(x'), Z(x) (`cut_weights`: the generated lengths L(x'), L(x) for
    uniform cuts). Rejected: a reverse move of probability zero (logq_old = -inf), an impossible proposal
    (logq_new or logp_new = -inf) and any NaN.
    """
    log_r = alpha * (logp_new - logp_old) + (logq_old - logq_new)
    if exact:
        log_r = log_r + torch.log(len_old.to(log_r.dtype)) - torch.log(len_new.to(log_r.dtype))
    impossible = torch.isneginf(logq_old) | torch.isneginf(logq_new) | torch.isneginf(logp_new)
    return torch.where(impossible | torch.isnan(log_r), torch.full_like(log_r, -math.inf), log_r)


def mh_accept(log_r: Tensor, uniform: Tensor) -> Tensor:
    """Accept where log(u) < log R, i.e. with probability min(1, R); never where log R is -inf or NaN."""
    return torch.log(uniform) < log_r


def splice(old: Tensor, m: Tensor, new: Tensor, n_new: Tensor, fill) -> Tensor:
    """Rows of `old` [R, T] with columns from m on replaced by new[:, :n_new] and `fill` after it."""
    t = old.shape[1]
    rel = seq_columns(t, old.device) - m[:, None]  # column index within the new suffix
    take = (rel >= 0) & (rel < n_new[:, None])
    src = new.gather(1, rel.clamp(0, max(new.shape[1] - 1, 0)))
    out = torch.where(rel >= 0, torch.full_like(old, fill), old)
    return torch.where(take, src, out)


# ------------------------------------------------------------------------------------------------ chain state


@dataclass
class Chains:
    """The current state of every chain: tokens and their stored per-token statistics."""

    tokens: Tensor  # [R, T] long, pad after length
    logp: Tensor  # [R, T] log p(x_t | x_<t), temperature 1
    logq: Tensor  # [R, T] log q(x_t | x_<t), the proposal
    entropy: Tensor  # [R, T] entropy of p(. | x_<t)
    length: Tensor  # [R] generated tokens (EOS included)
    eos: Tensor  # [R] the state ends with EOS

    @classmethod
    def empty(cls, rows: int, t: int, pad: int, device) -> Chains:
        z = torch.zeros((rows, t), dtype=torch.float32, device=device)
        return cls(
            torch.full((rows, t), pad, dtype=torch.long, device=device),
            z,
            z.clone(),
            z.clone(),
            torch.zeros(rows, dtype=torch.long, device=device),
            torch.zeros(rows, dtype=torch.bool, device=device),
        )

    def suffix_mask(self, rows: Tensor, m: Tensor, stop: Tensor | None = None) -> Tensor:
        """[len(rows), T] columns m <= t < stop (default: the state's length)."""
        cols = seq_columns(self.tokens.shape[1], self.tokens.device)
        stop = self.length[rows] if stop is None else stop
        return (cols >= m[:, None]) & (cols < stop[:, None])

    def replace(self, rows: Tensor, m: Tensor, prop: dict, pad: int) -> None:
        """Rows `rows` become x_<m + the proposal (in place)."""
        n = prop["n"]
        self.tokens[rows] = splice(self.tokens[rows], m, prop["tokens"], n, pad)
        self.logp[rows] = splice(self.logp[rows], m, prop["logp"], n, 0.0)
        self.logq[rows] = splice(self.logq[rows], m, prop["logq"], n, 0.0)
        self.entropy[rows] = splice(self.entropy[rows], m, prop["entropy"], n, 0.0)
        self.length[rows] = m + n
        self.eos[rows] = prop["eos"]


# ------------------------------------------------------------------------------------------------ proposals


def propose(
    factory: DecoderFactory,
    prompt: Tensor,
    prompt_mask: Tensor,
    tokens: Tensor,
    m: Tensor,
    horizon: Tensor,
    q: Proposal,
    **sampling,
) -> dict:
    """Suffixes y ~ q(. | prompt, tokens[:, :m]) of at most `horizon` tokens per row, re-encoding the prefixes.

    The rows' prefixes are re-aligned to the right (left padding) so one prefill covers every row, whatever
    its m; see `_decoding.sample_suffixes` for the returned fields.
    """
    ids, mask = left_align_prefixes(prompt, prompt_mask, tokens, m)
    return sample_suffixes(factory, ids, mask, horizon, q, **sampling)


# ------------------------------------------------------------------------------------------------ the sampler


@torch.inference_mode()
def power_sample_mh(
    model,
    tokenizer,
    prompts,
    *,
    alpha: float = 4.0,
    mcmc_steps: int = 10,
    block_size: int = 192,
    max_new_tokens: int = 256,
    n_chains: int = 1,
    seed: int = 0,
    top_k: int = 0,
    top_p: float = 1.0,
    exact: bool = True,
    eos_token_id: int | list[int] | None = None,
    backend: str = "auto",
    kv: str = "auto",
    freeze_finished: bool = True,
    cuts: str = "uniform",
    cut_floor: float = 0.05,
    cut_temperature: float | None = None,
    progress: bool = False,
) -> PowerSamples:
    """Sample responses from p(x)^alpha with block-wise MH; `n_chains` independent chains per prompt.

    Rows are prompt-major (prompt i -> rows i*n_chains ...). `exact=False` drops the index-choice
    correction as the reference code does (for comparison only). Returns `PowerSamples` with the final
    state of every chain, acceptance rates (overall, per block, per chain), tokens evaluated and wall time.
    `kv`: "reuse" keeps each chain's KV cache and hidden states across moves and batches the chains
    continuously (`KeptChains`, Llama/Qwen fast decoder only), "recompute" re-encodes the prefixes in one
    batched prefill per move with the chains in lockstep (any model), "auto" reuses when it can. The two
    consume the random stream in different orders, so the same seed gives different (equally exact) samples.
    `freeze_finished=False`: chains that ended with EOS keep making moves in the later blocks (proposals
    may then grow them up to those blocks' ends), so every chain targets the last block's p^alpha; the
    default stops them, as the paper does.
    `cuts`: where a move cuts, "uniform" (the paper) or "entropy" (probability H_m + `cut_floor`, H_m the
    next-token entropy of p at m, stored with the state); `cut_temperature`: the temperature of the model
    that proposes a move's first token (default: q's, 1/alpha). Both stay exact: the index-choice
    normalisers and the first token's proposal probability of both directions enter the ratio. A proposal
    at temperature 1 where the model forks lets a chain cross to a route that q, at 1/alpha, almost never
    offers.
    """
    alpha = check_alpha(alpha)
    mcmc_steps = check_int("mcmc_steps", mcmc_steps, 0)
    block_size = check_int("block_size", block_size, 1)
    n_chains = check_int("n_chains", n_chains, 1)
    check_top_p(top_p)
    if kv not in ("auto", "reuse", "recompute"):
        raise ConfigError(f"kv must be 'auto', 'reuse' or 'recompute', got {kv!r}")
    if cuts not in CUTS:
        raise ConfigError(f"cuts must be one of {', '.join(CUTS)}, got {cuts!r}")
    if not (isinstance(cut_floor, int | float) and math.isfinite(cut_floor) and cut_floor > 0):
        raise ConfigError(
            f"cut_floor must be a number > 0 (every position must stay a possible cut), got {cut_floor!r}"
        )
    if cut_temperature is not None and not (
        isinstance(cut_temperature, int | float) and math.isfinite(cut_temperature) and cut_temperature > 0
    ):
        raise ConfigError(f"cut_temperature must be a number > 0, got {cut_temperature!r}")
    if not exact and (cuts != "uniform" or cut_temperature is not None):
        raise ConfigError("exact=False (the reference approximation) only goes with uniform cuts and q throughout")
    setup = prepare(model, tokenizer, prompts, max_new_tokens, eos_token_id=eos_token_id)
    t_max = setup.max_new_tokens
    prompt, prompt_mask, prompt_index = setup.batch(n_chains)
    n_rows = prompt.shape[0]
    device = setup.device
    generator = torch.Generator(device=device).manual_seed(int(seed))
    chains = Chains.empty(n_rows, t_max, setup.pad, device)
    accepted = torch.zeros(n_rows, dtype=torch.long, device=device)
    proposed = torch.zeros(n_rows, dtype=torch.long, device=device)
    per_block: list[float] = []
    prefilled = replayed = 0
    q = Proposal(alpha=alpha, top_k=top_k, top_p=top_p)
    sampling = dict(generator=generator, eos=setup.eos, pad=setup.pad)
    factory = DecoderFactory(model, device, backend, batch_hint=n_rows)
    if kv == "reuse" and not factory.fast:
        raise ModelError("kv='reuse' needs the fast decoder (a Llama/Qwen2/Qwen3 model, backend 'auto' or 'fast')")
    kept = kv != "recompute" and factory.fast
    ends = block_ends(t_max, block_size)
    was_training = model.training
    model.eval()
    try:
        if kept:
            bar = None
            if progress:
                from entropylab.progress import bar as progress_bar

                bar = progress_bar(total=n_rows * len(ends) * (1 + mcmc_steps), desc="power MH", unit="job")
            runner = KeptChains(factory, prompt, prompt_mask, t_max)
            out = runner.run(
                chains,
                ends,
                mcmc_steps,
                lambda lp_new, lp_old, lq_new, lq_old, n_new, n_old: mh_log_ratio(
                    alpha, lp_new, lp_old, lq_new, lq_old, n_new, n_old, exact=exact
                ),
                mh_accept,
                q,
                exact=exact,
                freeze_finished=freeze_finished,
                cuts=cuts,
                cut_floor=cut_floor,
                cut_temperature=cut_temperature,
                progress=bar,
                **sampling,
            )
            if bar is not None:
                bar.close()
            accepted, proposed = out["accepted"], out["proposed"]
            per_block = [a / p for a, p in out["per_block"]]
            evaluated, generated, replayed = runner.evaluated, runner.generated, runner.replayed
        else:
            evaluated, generated, prefilled = _run_lockstep(
                factory,
                prompt,
                prompt_mask,
                chains,
                ends,
                mcmc_steps,
                t_max,
                accepted,
                proposed,
                per_block,
                q,
                exact=exact,
                freeze_finished=freeze_finished,
                cuts=cuts,
                cut_floor=cut_floor,
                cut_temperature=cut_temperature,
                progress=progress,
                **sampling,
            )
    finally:
        model.train(was_training)

    total = int(proposed.sum())
    return setup.collect(
        tokenizer,
        tokens=chains.tokens,
        length=chains.length,
        logq=chains.logq,
        logp=chains.logp,
        entropy=chains.entropy,
        finished=chains.eos,
        prompt_index=prompt_index,
        n=n_chains,
        method="mh",
        meta=dict(
            alpha=alpha,
            mcmc_steps=mcmc_steps,
            block_size=block_size,
            max_new_tokens=t_max,
            seed=seed,
            top_k=top_k,
            top_p=top_p,
            exact=exact,
            kv="reuse" if kept else "recompute",
            freeze_finished=freeze_finished,
            cuts=cuts,
            cut_floor=cut_floor,
            cut_temperature=cut_temperature,
        ),
        evaluated=evaluated,
        generated=generated,
        acceptance_rate=(int(accepted.sum()) / total) if total else None,
        acceptance_per_block=per_block,
        acceptance_per_row=accepted.float() / proposed.clamp(min=1).float(),
        stats=dict(prefill_positions=int(prefilled), proposals=total, replayed_tokens=int(replayed)),
    )


def _run_lockstep(
    factory: DecoderFactory,
    prompt: Tensor,
    prompt_mask: Tensor,
    chains: Chains,
    ends: list[int],
    mcmc_steps: int,
    t_max: int,
    accepted: Tensor,
    proposed: Tensor,
    per_block: list[float],
    q: Proposal,
    *,
    exact: bool,
    freeze_finished: bool,
    progress: bool,
    cuts: str = "uniform",
    cut_floor: float = 0.05,
    cut_temperature: float | None = None,
    **sampling,
) -> tuple[int, int, int]:
    """Block-wise MH with all chains in lockstep, every proposal re-encoding its prefix (`kv="recompute"`).

    Fills `chains`, `accepted`, `proposed` and `per_block` in place; returns token positions evaluated,
    tokens generated and prefill positions.
    """
    device, pad = prompt.device, sampling["pad"]
    generator = sampling["generator"]
    n_rows = prompt.shape[0]
    done = torch.zeros(n_rows, dtype=torch.bool, device=device)
    evaluated = generated = prefilled = 0
    if progress:
        from entropylab.progress import bar as progress_bar

        ends = progress_bar(ends, desc="power MH", unit="block")
    for end in ends:
        rows = (~done).nonzero()[:, 0]
        if rows.numel() == 0:
            break
        # 1. extend every chain that has not ended to the block end with the proposal
        grow = rows[~chains.eos[rows] & (chains.length[rows] < end)]
        if grow.numel():
            start = chains.length[grow]
            prop = propose(
                factory, prompt[grow], prompt_mask[grow], chains.tokens[grow], start, end - start, q, **sampling
            )
            chains.replace(grow, start, prop, pad)
            evaluated += prop["evaluated"]
            prefilled += prop["prefilled"]
            generated += int(prop["n"].sum())
        # 2. MH moves on this block's target
        block_acc = 0
        for _ in range(mcmc_steps):
            length = chains.length[rows]
            weights = cut_weights(chains.entropy[rows], length, cuts, cut_floor)
            m, z_old = pick_cuts(weights, torch.rand(rows.numel(), generator=generator, device=device))
            first = (
                dict(first_temperature=cut_temperature, first_old=chains.tokens[rows].gather(1, m[:, None])[:, 0])
                if cut_temperature
                else {}
            )
            prop = propose(
                factory, prompt[rows], prompt_mask[rows], chains.tokens[rows], m, end - m, q, **sampling, **first
            )
            evaluated += prop["evaluated"]
            prefilled += prop["prefilled"]
            generated += int(prop["n"].sum())
            new_cols = seq_columns(prop["logp"].shape[1], device)
            new_mask = new_cols < prop["n"][:, None]
            old_stop = torch.minimum(length, m + prop["n"]) if not exact else length
            old_mask = chains.suffix_mask(rows, m, old_stop)
            if cut_temperature is None:
                lq_new, lq_old = masked_sum(prop["logq"], new_mask), masked_sum(chains.logq[rows], old_mask)
            else:  # the first token came from the model at the cut temperature, the rest from q
                lq_new = prop["first_logq"] + masked_sum(prop["logq"], new_mask & (new_cols > 0))
                lq_old = prop["first_logq_old"] + masked_sum(
                    chains.logq[rows], chains.suffix_mask(rows, m + 1, old_stop)
                )
            if cuts == "uniform":
                z_new, z_old = m + prop["n"], length
            else:  # Z(x') = the shared prefix's weights + the proposal's
                prefix = (weights * (seq_columns(weights.shape[1], device) < m[:, None])).sum(1)
                z_new = prefix + cut_weights(prop["entropy"], prop["n"], cuts, cut_floor).sum(1)
            log_r = mh_log_ratio(
                q.alpha,
                masked_sum(prop["logp"], new_mask),
                masked_sum(chains.logp[rows], old_mask),
                lq_new,
                lq_old,
                z_new,
                z_old,
                exact=exact,
            )
            ok = mh_accept(log_r, torch.rand(rows.numel(), generator=generator, device=device))
            if ok.any():
                kept = {k: v[ok] for k, v in prop.items() if isinstance(v, Tensor)}
                chains.replace(rows[ok], m[ok], kept, pad)
            accepted[rows] += ok.long()
            proposed[rows] += 1
            block_acc += int(ok.sum())
        if mcmc_steps:
            per_block.append(block_acc / (mcmc_steps * rows.numel()))
        # 3. a chain whose state ended (EOS or the length limit) stops here, unless told to keep moving
        if freeze_finished:
            done[rows] = chains.eos[rows] | (chains.length[rows] >= t_max)
    return evaluated, generated, prefilled
