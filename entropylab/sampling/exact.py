"""Exact sequence distributions by enumeration, for checking samplers against the truth.

A sequence is *complete* when it ends with EOS or reaches `max_len` tokens, so the probabilities
p(x) = prod_t p(x_t | prompt, x_<t) of all complete sequences sum to one. On a tiny vocabulary and
length the whole set can be listed, and the power distribution p^alpha / Z computed exactly.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import torch

from entropylab.decoder import token_stats

Seq = tuple[int, ...]


@torch.no_grad()
def sequence_logprobs(
    model,
    prompt: Sequence[int],
    max_len: int,
    eos_token_id: int,
    *,
    temperature: float = 1.0,
    max_sequences: int = 200_000,
) -> dict[Seq, float]:
    """{complete sequence: log prob} of every continuation of `prompt` (token-by-token temperature, no truncation)."""
    complete: dict[Seq, float] = {}
    frontier: list[tuple[Seq, float]] = [((), 0.0)]
    for depth in range(max_len):
        if not frontier:
            break
        ids = torch.tensor([list(prompt) + list(s) for s, _ in frontier], dtype=torch.long)
        dev = next(model.parameters()).device
        logits = model(input_ids=ids.to(dev), use_cache=False).logits[:, -1].float().cpu()
        logp = token_stats(logits, temperature=temperature, entropy=False).logp
        nxt: list[tuple[Seq, float]] = []
        for (s, lp), row in zip(frontier, logp.tolist()):
            for tok, lt in enumerate(row):
                seq = s + (tok,)
                if tok == eos_token_id or depth + 1 == max_len:
                    complete[seq] = lp + lt
                else:
                    nxt.append((seq, lp + lt))
        if len(complete) + len(nxt) > max_sequences:
            raise ValueError(f"more than {max_sequences} sequences: use a smaller vocabulary or length")
        frontier = nxt
    return complete


def power_of(logprobs: Mapping[Seq, float], alpha: float) -> dict[Seq, float]:
    """The normalised power distribution p(x)^alpha / Z from {sequence: log p}."""
    m = max(alpha * v for v in logprobs.values())
    w = {s: math.exp(alpha * v - m) for s, v in logprobs.items()}
    z = sum(w.values())
    return {s: v / z for s, v in w.items()}


def empirical(sequences: Iterable[Sequence[int]], weights: Iterable[float] | None = None) -> dict[Seq, float]:
    """The (optionally weighted) empirical distribution of token sequences."""
    if weights is None:
        counts = Counter(tuple(int(t) for t in s) for s in sequences)
        n = sum(counts.values())
        return {s: c / n for s, c in counts.items()}
    acc: dict[Seq, float] = {}
    for s, w in zip(sequences, weights):
        key = tuple(int(t) for t in s)
        acc[key] = acc.get(key, 0.0) + float(w)
    z = sum(acc.values())
    return {s: v / z for s, v in acc.items()}


def tv_distance(p: Mapping, q: Mapping) -> float:
    """Total-variation distance 0.5 * sum |p - q| over the union of supports."""
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


@torch.no_grad()
def token_logprobs(
    model, prompt: Sequence[int], max_len: int, eos_token_id: int, alpha: float, cut_temperature: float | None = None
) -> dict[Seq, tuple[list[float], ...]]:
    """{complete sequence: (per-token log p, per-token log q)}, q the model at temperature 1/alpha; with
    `cut_temperature`, also the per-token entropy of p and log-prob at that temperature (for the
    entropy-placed cuts and first-token proposals of `mh_transition_matrix`)."""
    dev = next(model.parameters()).device
    cache: dict[Seq, tuple[list[float], ...]] = {}
    t_cut = 1.0 if cut_temperature is None else cut_temperature

    def dists(prefix: Seq) -> tuple[list[float], ...]:
        if prefix not in cache:
            ids = torch.tensor([list(prompt) + list(prefix)], dtype=torch.long, device=dev)
            logits = model(input_ids=ids, use_cache=False).logits[0, -1].float().cpu()
            p = token_stats(logits)
            cache[prefix] = (
                p.logp.tolist(),
                token_stats(logits, alpha=alpha, entropy=False).logp.tolist(),
                [float(p.entropy)],
                token_stats(logits, temperature=t_cut, entropy=False).logp.tolist(),
            )
        return cache[prefix]

    out = {}
    for seq in sequence_logprobs(model, prompt, max_len, eos_token_id):
        per = [dists(seq[:t]) for t in range(len(seq))]
        lp, lq = [d[0][x] for d, x in zip(per, seq)], [d[1][x] for d, x in zip(per, seq)]
        if cut_temperature is None:
            out[seq] = (lp, lq)
        else:
            out[seq] = (lp, lq, [d[2][0] for d in per], [d[3][x] for d, x in zip(per, seq)])
    return out


def mh_transition_matrix(
    per_token: Mapping[Seq, tuple[list[float], ...]],
    alpha: float,
    exact: bool = True,
    *,
    cuts: str = "uniform",
    cut_floor: float = 0.05,
    cut_temperature: float | None = None,
) -> tuple[list[Seq], list[list[float]]]:
    """(states, K): the one-step kernel of `power_sample_mh` (one block holding every sequence), exactly.

    K[i][j] = P(next state j | state i) for the suffix move of `entropylab.sampling.mh`, with
    `exact=False` the reference code's approximation, `cuts="entropy"` the entropy-placed cuts and
    `cut_temperature` the first token's proposal. `per_token` comes from `token_logprobs` (with
    `cut_temperature` given there for either option).
    """
    states = sorted(per_token, key=lambda s: (len(s), s))
    kernel = [[0.0] * len(states) for _ in states]

    def weights(s: Seq) -> list[float]:
        return [1.0] * len(s) if cuts == "uniform" else [h + cut_floor for h in per_token[s][2]]

    def log_q(s: Seq, m: int) -> float:  # the proposal's log-prob of s's suffix from m
        lq = per_token[s][1]
        return sum(lq[m:]) if cut_temperature is None else per_token[s][3][m] + sum(lq[m + 1 :])

    for i, x in enumerate(states):
        lp_x, lq_x = per_token[x][:2]
        w_x = weights(x)
        z_x = sum(w_x)
        for m in range(len(x)):
            for j, y in enumerate(states):
                if len(y) <= m or y[:m] != x[:m]:
                    continue
                lp_y, lq_y = per_token[y][:2]
                stop = len(x) if exact else min(len(x), len(y))
                if exact:
                    log_r = alpha * (sum(lp_y[m:]) - sum(lp_x[m:])) + log_q(x, m) - log_q(y, m)
                    log_r += math.log(z_x) - math.log(sum(weights(y)))
                else:
                    log_r = alpha * (sum(lp_y[m:]) - sum(lp_x[m:stop])) + sum(lq_x[m:stop]) - sum(lq_y[m:])
                kernel[i][j] += w_x[m] / z_x * math.exp(log_q(y, m)) * min(1.0, math.exp(min(log_r, 0.0)))
        kernel[i][i] += 1.0 - sum(kernel[i])
    return states, kernel
