"""Where a power-MH move cuts a chain's state: the index-choice weights and the draw of the cut."""

from __future__ import annotations

import torch
from torch import Tensor

from entropylab.sampling.base import seq_columns

__all__ = ["CUTS", "cut_weights", "pick_cuts"]

#: Where a move cuts: "uniform" over the generated positions, or "entropy", with probability rising with the
#: next-token entropy H_m of p there (weight H_m + cut_floor).
CUTS = ("uniform", "entropy")


def cut_weights(entropy: Tensor, length: Tensor, cuts: str, floor: float) -> Tensor:
    """Index-choice weights [R, T] of the positions t < length: 1 ("uniform") or H_t + floor ("entropy");
    0 past the length. A move cuts at m with probability w_m / sum(w), its normaliser Z = sum(w)."""
    cols = seq_columns(entropy.shape[1], entropy.device)
    w = torch.ones_like(entropy) if cuts == "uniform" else entropy.clamp(min=0.0) + floor
    return torch.where(cols < length[:, None], w, torch.zeros_like(w))


def pick_cuts(weights: Tensor, uniform: Tensor) -> tuple[Tensor, Tensor]:
    """(m, Z): per row, the position whose cumulative weight first exceeds u * Z (u ~ U(0, 1)), and Z."""
    cum = weights.cumsum(1)
    z = cum[:, -1]
    m = torch.searchsorted(cum, (uniform * z)[:, None], right=True)[:, 0]
    last = (weights > 0).long().sum(1) - 1
    return torch.minimum(m, last), z
