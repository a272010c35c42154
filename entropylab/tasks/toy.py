"""The power-sampling toy (Karan & Du, Example 1), exactly enumerable.

Vocabulary {a, b}, two-token sequences with p(aa)=0.00, p(ab)=0.40, p(ba)=0.25, p(bb)=0.25 (as printed;
the mass sums to 0.9, which no ratio below depends on). With alpha = 2 the power distribution p^alpha
puts ≈0.56 on first token a (0.16 vs 0.125); low-temperature sampling, tempering each next-token
distribution, puts ≈0.39 on a (0.4^2 vs 0.5^2). Sequences are strings, one character per token.
"""

from __future__ import annotations

from collections.abc import Mapping

from entropylab.tasks.base import TaskError


def toy_distribution() -> dict[str, float]:
    """The paper's Example 1 as {sequence: probability}."""
    return {"aa": 0.00, "ab": 0.40, "ba": 0.25, "bb": 0.25}


def _check(dist: Mapping[str, float], alpha: float) -> None:
    if alpha <= 0:
        raise TaskError(f"alpha must be > 0, got {alpha}")
    if not dist or any(p < 0 for p in dist.values()) or sum(dist.values()) <= 0:
        raise TaskError("distribution must be non-empty with non-negative probabilities and positive mass")
    if len({len(s) for s in dist}) != 1:
        raise TaskError("all sequences of the distribution must have the same length")


def normalize(dist: Mapping[str, float]) -> dict[str, float]:
    """The distribution scaled to sum to 1."""
    total = sum(dist.values())
    return {s: p / total for s, p in dist.items()}


def power_distribution(dist: Mapping[str, float], alpha: float) -> dict[str, float]:
    """The sequence-level power distribution p(x)^alpha / Z."""
    _check(dist, alpha)
    return normalize({s: p**alpha for s, p in dist.items()})


def prefix_mass(dist: Mapping[str, float], prefix: str) -> float:
    """Total probability of the sequences that start with `prefix`."""
    return sum(p for s, p in dist.items() if s.startswith(prefix))


def low_temperature_distribution(dist: Mapping[str, float], alpha: float) -> dict[str, float]:
    """The sequence distribution of sampling token by token from p(x_t | x_<t)^alpha / Z_t (temperature 1/alpha)."""
    _check(dist, alpha)
    base = normalize(dist)
    length = len(next(iter(base)))
    out: dict[str, float] = {}
    for seq in base:
        prob = 1.0
        for t in range(length):
            prefix = seq[:t]
            children = {s[t] for s in base if s.startswith(prefix)}
            weights = {c: prefix_mass(base, prefix + c) ** alpha for c in children}
            z = sum(weights.values())
            prob *= weights[seq[t]] / z if z > 0 else 0.0
        out[seq] = prob
    return out


def first_token_marginal(dist: Mapping[str, float]) -> dict[str, float]:
    """P(first token) under a (possibly unnormalised) sequence distribution, normalised."""
    marg: dict[str, float] = {}
    for s, p in dist.items():
        marg[s[0]] = marg.get(s[0], 0.0) + p
    return normalize(marg)
