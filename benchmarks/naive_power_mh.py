"""The named baseline of `bench_power_mh.py`: block-wise power MH done the straightforward way.

One chain at a time (batch 1), through the model's own `transformers` forward, as the reference code
(aakaran/reasoning-with-sampling) runs it: every proposal re-encodes its whole prefix (prompt + x_<m)
before decoding the suffix with a KV cache, like `model.generate`; every likelihood (log p and log q of
the proposed and of the current sequence) comes from a full forward pass over prompt + response.
Same algorithm and acceptance rule as `entropylab.sampling.power_sample_mh` (exact MH with the
index-choice terms), so the two differ only in how much the model is asked to compute.
"""

from __future__ import annotations

import math
import time

import torch

from entropylab.decoder import cache_kwargs


class Counter:
    """Token positions passed through the model."""

    def __init__(self) -> None:
        self.positions = 0


@torch.inference_mode()
def _generate(
    model, prefix: list[int], n_max: int, alpha: float, eos: int, gen: torch.Generator, count: Counter
) -> list[int]:
    """Suffix of at most n_max tokens from q = p at temperature 1/alpha: prefill the whole prefix, then decode."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    ids = torch.tensor([prefix])
    out: list[int] = []
    for _ in range(n_max):
        count.positions += ids.shape[1]
        logits = model(input_ids=ids, **cache_kwargs(model, cache), use_cache=True).logits[0, -1].float()
        probs = torch.softmax(logits * alpha, -1)
        tok = int(torch.multinomial(probs, 1, generator=gen))
        out.append(tok)
        if tok == eos:
            break
        ids = torch.tensor([[tok]])
    return out


@torch.inference_mode()
def _score(
    model, prompt: list[int], response: list[int], alpha: float, count: Counter
) -> tuple[list[float], list[float]]:
    """Per-token log p and log q of `response`: one full forward over prompt + response."""
    ids = torch.tensor([prompt + response])
    count.positions += ids.shape[1]
    logits = model(input_ids=ids, use_cache=False).logits[0, len(prompt) - 1 : -1].float()
    tgt = torch.tensor(response)[:, None]
    lp = torch.log_softmax(logits, -1).gather(1, tgt)[:, 0]
    lq = torch.log_softmax(logits * alpha, -1).gather(1, tgt)[:, 0]
    return lp.tolist(), lq.tolist()


def naive_power_mh(
    model,
    prompt: list[int],
    *,
    alpha: float = 4.0,
    mcmc_steps: int = 10,
    block_size: int = 192,
    max_new_tokens: int = 256,
    eos_token_id: int,
    seed: int = 0,
) -> dict:
    """One chain of block-wise power MH for one prompt; returns tokens, loglik, acceptance, positions, seconds."""
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    rng = torch.Generator().manual_seed(seed + 1)
    count = Counter()
    x: list[int] = []
    accepted = proposed = 0
    for end in range(block_size, max_new_tokens + block_size, block_size):
        end = min(end, max_new_tokens)
        x = x + _generate(model, prompt + x, end - len(x), alpha, eos_token_id, gen, count)
        for _ in range(mcmc_steps):
            m = int(torch.randint(len(x), (1,), generator=rng))
            y = x[:m] + _generate(model, prompt + x[:m], end - m, alpha, eos_token_id, gen, count)
            lp_y, lq_y = _score(model, prompt, y, alpha, count)
            lp_x, lq_x = _score(model, prompt, x, alpha, count)
            log_r = (
                alpha * (sum(lp_y[m:]) - sum(lp_x[m:]))
                + sum(lq_x[m:])
                - sum(lq_y[m:])
                + math.log(len(x))
                - math.log(len(y))
            )
            proposed += 1
            if math.log(float(torch.rand(1, generator=rng))) < log_r:
                x, accepted = y, accepted + 1
        if eos_token_id in x:
            break
    lp, _ = _score(model, prompt, x, alpha, Counter())
    return dict(
        tokens=x,
        loglik=sum(lp),
        acceptance=accepted / max(proposed, 1),
        tokens_evaluated=count.positions,
        wall_time=time.perf_counter() - t0,
    )
