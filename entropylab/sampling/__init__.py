"""Sampling from the power distribution p(x)^alpha of a base model, and the baselines to compare it with.

- `power_sample_mh`: block-wise Metropolis-Hastings with the tempered proposal (Karan & Du 2025), exact
  MH including the index-choice correction, many chains in one KV-cached batch.
- `power_sample_smc`: sequential Monte Carlo with token-level weights p^alpha / q, systematic
  resampling on low ESS, optional alpha ramp, cache rows that follow their ancestors.
- `power_sample_sps`: scalable power sampling without MCMC (Ji et al. 2026): p^alpha token by token, the
  future factor estimated from KV-branched rollouts of the top-K candidates, jackknife-corrected.
- `sample_plain`, `sample_low_temperature`, `sample_best_of_n`: the baselines.
- `get_sampler(name)`: "plain", "temp", "best_of_n", "mh", "smc", "sps", "mh_entropy" with one call shape.
- `exact`: enumeration of tiny models' sequence distributions, to check the samplers against the truth.

Does not import `entropylab.rl`.
"""

from entropylab.sampling.base import PowerSamples
from entropylab.sampling.baselines import sample_best_of_n, sample_low_temperature, sample_plain
from entropylab.sampling.mh import mh_accept, mh_log_ratio, power_sample_mh
from entropylab.sampling.registry import DESCRIPTIONS, SAMPLERS, get_sampler, list_samplers, register_sampler
from entropylab.sampling.smc import effective_sample_size, power_sample_smc, systematic_resample
from entropylab.sampling.sps import power_sample_sps

__all__ = [
    "DESCRIPTIONS",
    "SAMPLERS",
    "PowerSamples",
    "effective_sample_size",
    "get_sampler",
    "list_samplers",
    "mh_accept",
    "mh_log_ratio",
    "power_sample_mh",
    "power_sample_smc",
    "power_sample_sps",
    "register_sampler",
    "sample_best_of_n",
    "sample_low_temperature",
    "sample_plain",
    "systematic_resample",
]
