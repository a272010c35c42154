"""Samplers by name, all with one call shape: f(model, tokenizer, prompts, *, n, alpha, max_new_tokens, seed, ...)."""

from __future__ import annotations

from collections.abc import Callable

from entropylab.errors import ConfigError
from entropylab.sampling.base import PowerSamples
from entropylab.sampling.baselines import sample_best_of_n, sample_low_temperature, sample_plain
from entropylab.sampling.mh import power_sample_mh
from entropylab.sampling.smc import power_sample_smc

Sampler = Callable[..., PowerSamples]


def _mh(model, tokenizer, prompts, *, n: int = 1, **options) -> PowerSamples:
    """`power_sample_mh` with `n` chains per prompt."""
    return power_sample_mh(model, tokenizer, prompts, n_chains=n, **options)


#: name -> sampler; every sampler returns `n` responses per prompt (prompt-major) as `PowerSamples`.
SAMPLERS: dict[str, Sampler] = {
    "plain": sample_plain,
    "temp": sample_low_temperature,
    "best_of_n": sample_best_of_n,
    "mh": _mh,
    "smc": power_sample_smc,
}

DESCRIPTIONS: dict[str, str] = {
    "plain": "temperature 1",
    "temp": "low temperature 1/alpha (token-level tempering)",
    "best_of_n": "most likely of n_candidates samples at temperature 1",
    "mh": "power distribution p^alpha by block-wise Metropolis-Hastings",
    "smc": "power distribution p^alpha by sequential Monte Carlo",
}


def list_samplers() -> list[str]:
    """The registered sampler names."""
    return list(SAMPLERS)


def get_sampler(name: str) -> Sampler:
    """The sampler registered as `name`; ConfigError listing the names otherwise."""
    try:
        return SAMPLERS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown sampling method {name!r}; known methods: {', '.join(SAMPLERS)}") from None


def register_sampler(name: str, fn: Sampler, description: str = "") -> None:
    """Add (or replace) a sampler under `name`."""
    SAMPLERS[name] = fn
    DESCRIPTIONS[name] = description
