"""The top-rho cutoff: the value above which a share rho of the tokens lies (the forking tokens, the 80/20 mask).

One rule for the trainer's entropy mask, the TRL subclass and the token explorer: the k-th largest value,
``k = ceil(n * rho)``, so ``values >= cutoff`` keeps exactly k of them unless there are ties. TRL's own rule,
``quantile(values, 1 - rho)`` (interpolated), is here too, for reproducing TRL. Works on numpy arrays and on
torch tensors without importing torch.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["n_top", "top_cutoff", "quantile_cutoff"]


def n_top(n: int, rho: float) -> int:
    """``ceil(n * rho)`` (at least 1 when there is a value), robust to float noise such as 0.7 * 10."""
    if n == 0:
        return 0
    return min(n, max(1, math.ceil(n * rho - 1e-9)))


def top_cutoff(values, rho: float) -> float:
    """The k-th largest of the flat `values` (numpy array or torch tensor), ``k = n_top(n, rho)``; +inf if empty."""
    k = n_top(int(values.size if isinstance(values, np.ndarray) else values.numel()), rho)
    if k == 0:
        return math.inf
    if isinstance(values, np.ndarray):
        return float(np.partition(values.reshape(-1), values.size - k)[values.size - k])
    return float(values.reshape(-1).float().topk(k).values[-1])


def quantile_cutoff(values, rho: float) -> float:
    """TRL's cutoff: the interpolated ``(1 - rho)`` quantile of the flat `values`; +inf if empty."""
    if isinstance(values, np.ndarray):
        return float(np.quantile(values, 1.0 - rho)) if values.size else math.inf
    if values.numel() == 0:
        return math.inf
    import torch

    return float(torch.quantile(values.reshape(-1).float(), 1.0 - rho))
