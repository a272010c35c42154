"""Outcome-reward advantage estimators for group sampling (GRPO, RLOO): pure tensor maths.

Each estimator maps one scalar reward per response ``[B]`` to one advantage per response ``[B]`` and is
registered by name in ``ADVANTAGE_ESTIMATORS`` (as verl registers its estimators). Responses are grouped
by prompt, either by an ``index`` (one group id per response, any order) or by ``group_size`` G, meaning
the batch is laid out ``[n_prompts, G]`` (consecutive responses share a prompt). Every group needs at
least 2 responses; a group whose rewards are all equal gets advantage exactly 0.
:func:`broadcast_to_tokens` spreads the result over a ``[B, T]`` response mask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch
from torch import Tensor

from entropylab.errors import ConfigError
from entropylab.registry import Registry

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "broadcast_to_tokens",
    "get_advantage_estimator",
    "grpo_advantages",
    "group_ids",
    "register_advantage_estimator",
    "rloo_advantages",
]


class AdvantageFn(Protocol):
    """A registered estimator: rewards ``[B]`` and a grouping in, advantages ``[B]`` out."""

    def __call__(
        self, rewards: Tensor, *, index: Tensor | Sequence | None = None, group_size: int | None = None, **kwargs
    ) -> Tensor: ...


ADVANTAGE_ESTIMATORS: Registry[AdvantageFn] = Registry("advantage estimator", field="advantage", sort_names=True)


def register_advantage_estimator(name: str, description: str = "") -> Callable[[AdvantageFn], AdvantageFn]:
    """Decorator registering an advantage estimator under ``name`` (a name taken by another is refused)."""
    return ADVANTAGE_ESTIMATORS.register(name, description=description)


def get_advantage_estimator(name: str) -> AdvantageFn:
    """The estimator registered as ``name``; ConfigError listing the known names otherwise."""
    return ADVANTAGE_ESTIMATORS.get(name)


def group_ids(n: int, index: Tensor | Sequence | None = None, group_size: int | None = None) -> Tensor:
    """Dense group ids ``0..n_groups-1`` (long ``[n]``) from an index of any hashable ids or a group size.

    ConfigError when neither is given, when ``group_size`` does not divide the batch, or when a group
    has fewer than 2 responses (no baseline can be formed from one sample).
    """
    if index is not None:
        if isinstance(index, Tensor):
            ids = torch.unique(index.reshape(-1), return_inverse=True)[1]
        else:
            labels: dict = {}
            ids = torch.tensor([labels.setdefault(key, len(labels)) for key in index], dtype=torch.long)
        if ids.numel() != n:
            raise ConfigError(f"index: has {ids.numel()} entries for {n} rewards")
    elif group_size is not None:
        if group_size < 1 or n % group_size != 0:
            raise ConfigError(f"group_size = {group_size}: must be a positive divisor of the batch size {n}")
        ids = torch.arange(n) // group_size
    else:
        raise ConfigError("index / group_size: give one to say which responses share a prompt")
    counts = torch.bincount(ids)
    if n and int(counts.min()) < 2:
        raise ConfigError("group_size: every group needs at least 2 responses to form a baseline (found 1)")
    return ids


def _group_stats(rewards: Tensor, ids: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-response group mean, unbiased group std, group size and an all-equal flag, all ``[B]``."""
    n_groups = int(ids.max()) + 1 if ids.numel() else 0
    counts = torch.zeros(n_groups, dtype=rewards.dtype, device=rewards.device).index_add_(
        0, ids, torch.ones_like(rewards)
    )
    sums = torch.zeros_like(counts).index_add_(0, ids, rewards)
    mean = (sums / counts)[ids]
    sq = torch.zeros_like(counts).index_add_(0, ids, (rewards - mean) ** 2)
    std = torch.sqrt(sq / (counts - 1))[ids]
    hi = torch.full_like(counts, -torch.inf).scatter_reduce_(0, ids, rewards, "amax")
    lo = torch.full_like(counts, torch.inf).scatter_reduce_(0, ids, rewards, "amin")
    constant = (hi == lo)[ids]
    return mean, std, counts[ids], constant


def _prepare(rewards: Tensor, index: Tensor | Sequence | None, group_size: int | None) -> tuple[Tensor, Tensor]:
    rewards = torch.as_tensor(rewards).detach().reshape(-1)
    rewards = rewards.double() if rewards.dtype == torch.float64 else rewards.float()
    ids = group_ids(rewards.numel(), index, group_size).to(rewards.device)
    return rewards, ids


@register_advantage_estimator("grpo")
def grpo_advantages(
    rewards: Tensor,
    *,
    index: Tensor | Sequence | None = None,
    group_size: int | None = None,
    norm_std: bool = True,
    eps: float = 1e-6,
) -> Tensor:
    """GRPO: ``(r - mean_group) / (std_group + eps)``, std unbiased as in verl and TRL.

    ``norm_std=False`` is Dr. GRPO: ``r - mean_group`` without the std division (no difficulty bias).
    """
    rewards, ids = _prepare(rewards, index, group_size)
    mean, std, _, constant = _group_stats(rewards, ids)
    adv = rewards - mean
    if norm_std:
        adv = adv / (std + eps)
    return torch.where(constant, torch.zeros_like(adv), adv)


@register_advantage_estimator("rloo")
def rloo_advantages(
    rewards: Tensor, *, index: Tensor | Sequence | None = None, group_size: int | None = None
) -> Tensor:
    """RLOO: ``r_i - mean_{j != i} r_j`` (leave-one-out baseline) = ``G / (G - 1) * (r_i - mean_group)``."""
    rewards, ids = _prepare(rewards, index, group_size)
    mean, _, counts, constant = _group_stats(rewards, ids)
    adv = counts / (counts - 1) * (rewards - mean)
    return torch.where(constant, torch.zeros_like(adv), adv)


def broadcast_to_tokens(advantages: Tensor, mask: Tensor) -> Tensor:
    """Sequence advantages ``[B]`` to token advantages ``[B, T]``: ``A[:, None] * mask`` (0 on padding)."""
    adv = advantages.reshape(-1, 1)
    if not adv.is_floating_point():
        adv = adv.float()
    return adv * mask.to(adv.dtype)
