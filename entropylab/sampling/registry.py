"""Samplers by name, all with one call shape: f(model, tokenizer, prompts, *, n, alpha, max_new_tokens, seed, ...)."""

from __future__ import annotations

from collections.abc import Callable

from entropylab.registry import Registry
from entropylab.sampling.base import PowerSamples
from entropylab.sampling.baselines import sample_best_of_n, sample_low_temperature, sample_plain
from entropylab.sampling.mh import power_sample_mh
from entropylab.sampling.smc import power_sample_smc
from entropylab.sampling.sps import power_sample_sps

Sampler = Callable[..., PowerSamples]


def _mh(model, tokenizer, prompts, *, n: int = 1, **options) -> PowerSamples:
    """`power_sample_mh` with `n` chains per prompt."""
    return power_sample_mh(model, tokenizer, prompts, n_chains=n, **options)


def _mh_entropy(model, tokenizer, prompts, *, n: int = 1, **options) -> PowerSamples:
    """`power_sample_mh` with entropy-placed cuts and the cut token proposed at temperature 1 (another
    `cut_temperature` overrides it; None keeps 1)."""
    options = {**options, "cuts": "entropy", "cut_temperature": options.get("cut_temperature") or 1.0}
    out = power_sample_mh(model, tokenizer, prompts, n_chains=n, **options)
    out.method = "mh_entropy"
    return out


#: name -> sampler; every sampler returns `n` responses per prompt (prompt-major) as `PowerSamples`.
SAMPLERS: Registry[Sampler] = Registry("sampling method", plural="methods")
SAMPLERS.register("plain", sample_plain, description="temperature 1")
SAMPLERS.register("temp", sample_low_temperature, description="low temperature 1/alpha (token-level tempering)")
SAMPLERS.register("best_of_n", sample_best_of_n, description="most likely of n_candidates samples at temperature 1")
SAMPLERS.register("mh", _mh, description="power distribution p^alpha by block-wise Metropolis-Hastings")
SAMPLERS.register("smc", power_sample_smc, description="power distribution p^alpha by sequential Monte Carlo")
SAMPLERS.register(
    "sps",
    power_sample_sps,
    description="power distribution p^alpha token by token, the future "
    "factor estimated from rollouts (Scalable Power Sampling, jackknife-corrected)",
)
SAMPLERS.register(
    "mh_entropy",
    _mh_entropy,
    description="power MH with entropy-placed cuts and the cut token at "
    "temperature 1 (exact; crosses forks the tempered proposal rarely offers)",
)

#: name -> one-line description (a snapshot; `SAMPLERS.describe(name)` sees later registrations).
DESCRIPTIONS: dict[str, str] = SAMPLERS.descriptions()


def list_samplers() -> list[str]:
    """The registered sampler names."""
    return SAMPLERS.names()


def get_sampler(name: str) -> Sampler:
    """The sampler registered as `name`; ConfigError listing the names otherwise."""
    return SAMPLERS.get(name)


def register_sampler(name: str, fn: Sampler, description: str = "") -> None:
    """Add a sampler under `name`; a name already taken by another sampler is refused (ConfigError)."""
    SAMPLERS.register(name, fn, description=description)
    DESCRIPTIONS[name] = SAMPLERS.describe(name)
