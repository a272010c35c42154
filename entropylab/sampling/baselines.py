"""Baselines through the samplers' interface: plain sampling, low temperature, best-of-N by likelihood.

All three decode with the same KV-cached decoders as the power samplers (`_decoding.sample_suffixes`),
so their `tokens_evaluated` is counted the same way.
"""

from __future__ import annotations

import torch

from entropylab.decoder import Proposal
from entropylab.sampling._decoding import DecoderFactory, sample_suffixes
from entropylab.sampling.base import PowerSamples, check_alpha, check_int, check_top_p, prepare

__all__ = ["sample_plain", "sample_low_temperature", "sample_best_of_n"]


@torch.inference_mode()
def _draw(
    model,
    tokenizer,
    prompts,
    *,
    n: int,
    q_alpha: float,
    max_new_tokens: int,
    seed: int,
    top_k: int,
    top_p: float,
    method: str,
    eos_token_id=None,
    backend: str = "auto",
) -> PowerSamples:
    """n responses per prompt from the model at temperature 1/q_alpha, as `PowerSamples` (rows prompt-major)."""
    n = check_int("n", n, 1)
    check_top_p(top_p)
    setup = prepare(model, tokenizer, prompts, max_new_tokens, eos_token_id=eos_token_id)
    ids, mask, prompt_index = setup.batch(n)
    generator = torch.Generator(device=setup.device).manual_seed(int(seed))
    horizon = torch.full((ids.shape[0],), setup.max_new_tokens, dtype=torch.long, device=setup.device)
    was_training = model.training
    model.eval()
    try:
        factory = DecoderFactory(model, setup.device, backend, batch_hint=ids.shape[0])
        out = sample_suffixes(
            factory,
            ids,
            mask,
            horizon,
            Proposal(alpha=q_alpha, top_k=top_k, top_p=top_p),
            generator=generator,
            eos=setup.eos,
            pad=setup.pad,
        )
    finally:
        model.train(was_training)
    return setup.collect(
        tokenizer,
        tokens=out["tokens"],
        length=out["n"],
        logq=out["logq"],
        logp=out["logp"],
        entropy=out["entropy"],
        finished=out["eos"],
        prompt_index=prompt_index,
        n=n,
        method=method,
        meta=dict(temperature=1.0 / q_alpha, max_new_tokens=setup.max_new_tokens, seed=seed, top_k=top_k, top_p=top_p),
        evaluated=out["evaluated"],
        generated=out["n"].sum(),
    )


def sample_plain(
    model,
    tokenizer,
    prompts,
    *,
    n: int = 1,
    max_new_tokens: int = 256,
    seed: int = 0,
    top_k: int = 0,
    top_p: float = 1.0,
    eos_token_id=None,
    backend: str = "auto",
    **_ignored,
) -> PowerSamples:
    """n responses per prompt at temperature 1 (alpha and other sampler options are ignored)."""
    return _draw(
        model,
        tokenizer,
        prompts,
        n=n,
        q_alpha=1.0,
        max_new_tokens=max_new_tokens,
        seed=seed,
        top_k=top_k,
        top_p=top_p,
        method="plain",
        eos_token_id=eos_token_id,
        backend=backend,
    )


def sample_low_temperature(
    model,
    tokenizer,
    prompts,
    *,
    alpha: float = 4.0,
    n: int = 1,
    max_new_tokens: int = 256,
    seed: int = 0,
    top_k: int = 0,
    top_p: float = 1.0,
    eos_token_id=None,
    backend: str = "auto",
    **_ignored,
) -> PowerSamples:
    """n responses per prompt at temperature 1/alpha: each next-token distribution is raised to alpha (greedy per token)."""
    alpha = check_alpha(alpha)
    return _draw(
        model,
        tokenizer,
        prompts,
        n=n,
        q_alpha=alpha,
        max_new_tokens=max_new_tokens,
        seed=seed,
        top_k=top_k,
        top_p=top_p,
        method="temp",
        eos_token_id=eos_token_id,
        backend=backend,
    )


def sample_best_of_n(
    model,
    tokenizer,
    prompts,
    *,
    n: int = 1,
    n_candidates: int = 16,
    max_new_tokens: int = 256,
    seed: int = 0,
    top_k: int = 0,
    top_p: float = 1.0,
    eos_token_id=None,
    backend: str = "auto",
    **_ignored,
) -> PowerSamples:
    """n responses per prompt, each the most likely (max sum log p) of `n_candidates` samples at temperature 1."""
    n = check_int("n", n, 1)
    k = check_int("n_candidates", n_candidates, 1)
    pool = _draw(
        model,
        tokenizer,
        prompts,
        n=n * k,
        q_alpha=1.0,
        max_new_tokens=max_new_tokens,
        seed=seed,
        top_k=top_k,
        top_p=top_p,
        method="best_of_n",
        eos_token_id=eos_token_id,
        backend=backend,
    )
    groups = pool.loglik.view(-1, k)  # [n_prompts * n, k]: consecutive rows share a prompt
    rows = torch.arange(groups.shape[0], device=groups.device) * k + groups.argmax(1)
    width = max(int(pool.n_tokens[rows].max()), 1)
    pick = lambda x: x[rows, :width]  # noqa: E731
    return PowerSamples(
        prompt_ids=pool.prompt_ids,
        response_ids=pick(pool.response_ids),
        response_mask=pick(pool.response_mask),
        logprobs=pick(pool.logprobs),
        logprobs_t1=pick(pool.logprobs_t1),
        entropy=pick(pool.entropy),
        texts=[pool.texts[i] for i in rows.tolist()],
        prompt_index=pool.prompt_index[rows],
        n_tokens=pool.n_tokens[rows],
        finished=pool.finished[rows],
        n=n,
        pad_token_id=pool.pad_token_id,
        meta={**pool.meta, "n_candidates": k},
        loglik=pool.loglik[rows],
        method="best_of_n",
        tokens_evaluated=pool.tokens_evaluated,
        tokens_generated=pool.tokens_generated,
        wall_time=pool.wall_time,
    )
