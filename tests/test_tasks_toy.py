"""The power-sampling toy: power vs low-temperature distributions on the paper's Example 1."""

from __future__ import annotations

import pytest

from entropylab.tasks.base import TaskError
from entropylab.tasks.toy import (
    first_token_marginal,
    low_temperature_distribution,
    power_distribution,
    toy_distribution,
)


def test_toy_numbers() -> None:
    dist = toy_distribution()
    assert dist == {"aa": 0.0, "ab": 0.40, "ba": 0.25, "bb": 0.25}
    power = power_distribution(dist, 2)
    low = low_temperature_distribution(dist, 2)
    assert first_token_marginal(power)["a"] == pytest.approx(0.16 / 0.285)  # ≈ 0.56
    assert first_token_marginal(low)["a"] == pytest.approx(0.16 / 0.41)  # ≈ 0.39
    assert 0.55 < first_token_marginal(power)["a"] < 0.57
    assert 0.38 < first_token_marginal(low)["a"] < 0.40
    assert sum(power.values()) == pytest.approx(1) and sum(low.values()) == pytest.approx(1)
    assert low["ba"] == pytest.approx(0.25 / 0.41 * 0.5) and low["aa"] == 0.0


def test_alpha_one_is_base_and_errors() -> None:
    dist = toy_distribution()
    base = {k: v / 0.9 for k, v in dist.items()}
    assert power_distribution(dist, 1) == pytest.approx(base)
    assert low_temperature_distribution(dist, 1) == pytest.approx(base)
    with pytest.raises(TaskError):
        power_distribution(dist, 0)
    with pytest.raises(TaskError):
        low_temperature_distribution({"a": 0.5, "ab": 0.5}, 2)
