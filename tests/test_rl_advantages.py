"""Group advantage estimators (GRPO, Dr. GRPO, RLOO) against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from entropylab.errors import ConfigError
from entropylab.rl.advantages import (
    ADVANTAGE_ESTIMATORS,
    broadcast_to_tokens,
    get_advantage_estimator,
    grpo_advantages,
    rloo_advantages,
)

REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])


def close(a, b, tol=1e-5):
    return torch.allclose(
        torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32), atol=tol, rtol=0
    )


def test_registry():
    assert {"grpo", "rloo"} <= set(ADVANTAGE_ESTIMATORS)
    assert get_advantage_estimator("rloo") is rloo_advantages
    with pytest.raises(ConfigError, match="grpo.*rloo"):
        get_advantage_estimator("gae")


def test_grpo_by_hand():
    # group 0: mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = 0.57735 -> +-0.5 / 0.57735 = +-0.866025
    adv = grpo_advantages(REWARDS, group_size=4)
    s = 0.5 / (math.sqrt(1 / 3) + 1e-6)
    assert close(adv, [s, -s, -s, s, 0, 0, 0, 0])
    # group 1 has zero variance: exactly 0, no NaN
    assert torch.equal(adv[4:], torch.zeros(4))


def test_dr_grpo_without_std_normalisation():
    assert close(grpo_advantages(REWARDS, group_size=4, norm_std=False), [0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0])


def test_grpo_with_an_index_in_any_order():
    # group 7: [1, 3] mean 2 std sqrt(2); group 3: [2, 6] mean 4 std sqrt(8): both -> -+1/sqrt(2)
    r = torch.tensor([1.0, 2.0, 3.0, 6.0])
    s = 1 / math.sqrt(2)
    assert close(grpo_advantages(r, index=torch.tensor([7, 3, 7, 3])), [-s, -s, s, s])
    assert close(grpo_advantages(r, index=["b", "a", "b", "a"]), [-s, -s, s, s])


def test_rloo_by_hand():
    # r_0 - mean(0, 0, 1) = 2/3; r_1 - mean(1, 0, 1) = -2/3
    adv = rloo_advantages(REWARDS, group_size=4)
    assert close(adv, [2 / 3, -2 / 3, -2 / 3, 2 / 3, 0, 0, 0, 0])
    r = torch.tensor([3.0, 1.0, 2.0])
    assert close(rloo_advantages(r, group_size=3), [3 - 1.5, 1 - 2.5, 2 - 2.0])


def test_zero_variance_groups_give_exact_zero():
    r = torch.tensor([0.1, 0.1, 0.1, 0.7, 0.7, 0.7])
    for fn in (grpo_advantages, rloo_advantages):
        adv = fn(r, group_size=3)
        assert torch.equal(adv, torch.zeros(6)) and not adv.isnan().any()


def test_groups_of_one_and_missing_grouping_are_errors():
    with pytest.raises(ConfigError, match="group_size"):
        grpo_advantages(torch.tensor([1.0, 0.0]), group_size=1)
    with pytest.raises(ConfigError, match="at least 2"):
        rloo_advantages(torch.tensor([1.0, 0.0, 1.0]), index=[0, 0, 1])
    with pytest.raises(ConfigError, match="group_size"):
        grpo_advantages(torch.tensor([1.0, 0.0, 1.0]), group_size=2)
    with pytest.raises(ConfigError, match="index"):
        grpo_advantages(torch.tensor([1.0, 0.0]))


def test_integer_rewards_and_broadcast():
    adv = grpo_advantages(torch.tensor([1, 0]), group_size=2, norm_std=False)
    assert adv.dtype == torch.float32 and close(adv, [0.5, -0.5])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    assert close(broadcast_to_tokens(adv, mask), [[0.5, 0.5, 0.0], [-0.5, 0.0, 0.0]])
