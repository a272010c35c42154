"""pass@k against its closed form and brute force; accuracy; evaluate_task on a tiny model and the shipped ones."""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
import pytest

from entropylab.evaluate import _entropy_metrics, accuracy, evaluate_task, mean_at_k, pass_at_k
from entropylab.models import load_model, shipped_models


def test_pass_at_k_closed_form():
    for n in (1, 5, 16, 40):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k), abs=1e-12)


def test_pass_at_k_brute_force():
    rng = np.random.default_rng(0)
    for n in (3, 6, 8):
        for _ in range(5):
            correct = rng.random(n) < rng.random()
            c = int(correct.sum())
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(range(n), k))
                brute = np.mean([correct[list(s)].any() for s in subsets])
                assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)


def test_pass_at_k_vectorised_and_large_n():
    n = np.array([16, 16, 16, 10])
    c = np.array([0, 1, 16, 3])
    got = pass_at_k(n, c, 4)
    assert got.shape == (4,)
    np.testing.assert_allclose(got, [1 - comb(ni - ci, 4) / comb(ni, 4) for ni, ci in zip(n, c)], atol=1e-12)
    np.testing.assert_allclose(pass_at_k(16, np.arange(17).reshape(1, 17), 1), np.arange(17)[None] / 16)
    big = pass_at_k(10_000, 3, 100)  # factorials overflow; the product form does not
    assert big == pytest.approx(1 - comb(9997, 100) / comb(10_000, 100), rel=1e-9)
    assert isinstance(pass_at_k(4, 1, 2), float)
    assert mean_at_k([4, 4], [0, 4], 2) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_accuracy_and_entropy_stats():
    assert accuracy([1, 0, 1, 1]) == 0.75
    e = np.array([[0.0, 0.001, 2.0], [0.5, 9.0, 9.0]])
    m = np.array([[True, True, True], [True, False, False]])
    st = _entropy_metrics(e, m)
    assert st["entropy_frac_below_0.01"] == 0.5 and st["entropy_p50"] == pytest.approx(0.2505)
    assert st["entropy_mean"] == pytest.approx(2.501 / 4)
    assert all(np.isnan(v) for v in _entropy_metrics(e, np.zeros_like(m)).values())


def test_evaluate_task_on_random_model(tiny_model, tiny_tokenizer):
    out = evaluate_task(tiny_model, tiny_tokenizer, "arith", n_problems=3, n_samples=4, max_new_tokens=12, seed=0)
    for key in (
        "pass@1",
        "pass@2",
        "pass@4",
        "mean_length",
        "entropy_p50",
        "entropy_p80",
        "entropy_p95",
        "entropy_frac_below_0.01",
    ):
        assert key in out
    assert "pass@8" not in out
    assert 0 <= out["pass@1"] <= out["pass@4"] <= 1
    assert 0 < out["mean_length"] <= 12


@pytest.mark.slow
@pytest.mark.parametrize("name", ["arith", "fork"])
def test_shipped_checkpoint_meets_targets(name, monkeypatch):
    monkeypatch.delenv("ENTROPYLAB_DATA", raising=False)
    if name not in shipped_models():
        pytest.skip(f"checkpoint {name} not shipped")
    model, tok = load_model(name)
    m = evaluate_task(model, tok, name, n_problems=100, n_samples=16, seed=1)
    assert 0.15 <= m["pass@1"] <= 0.6
    assert m["pass@16"] >= 0.8
    assert m["entropy_p50"] < 0.05 and m["entropy_p95"] > 0.3  # most tokens near 0, a minority high


def test_mcnemar_matches_scipy_on_a_hand_made_table():
    """a right / b wrong on 9 problems, the reverse on 2, both right on 5, both wrong on 4 (20 problems)."""
    from scipy.stats import binomtest, chi2

    from entropylab.evaluate import mcnemar

    a = [1] * 9 + [0] * 2 + [1] * 5 + [0] * 4
    b = [0] * 9 + [1] * 2 + [1] * 5 + [0] * 4
    t = mcnemar(a, b)
    assert (t["a_only"], t["b_only"]) == (9, 2) and t["difference"] == pytest.approx(7 / 20)
    assert t["p_value"] == pytest.approx(binomtest(2, 11, 0.5).pvalue, rel=1e-12)  # 0.0654
    assert t["p_value"] == pytest.approx(0.06542969, rel=1e-6)
    assert chi2.sf((9 - 2) ** 2 / 11, 1) < t["p_value"]  # the exact test is the conservative one here
    assert mcnemar([1, 0, 1], [1, 0, 1])["p_value"] == 1.0  # no discordant pair
    with pytest.raises(ValueError, match="one shape"):
        mcnemar([1, 0], [1])


def test_paired_bootstrap_interval_covers_the_difference_and_detects_one():
    from entropylab.evaluate import paired_bootstrap

    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, 300)
    same = paired_bootstrap(base + rng.normal(0, 0.05, 300), base)
    assert same["low"] < 0 < same["high"] and same["p_value"] > 0.05
    up = paired_bootstrap(base + 0.1 + rng.normal(0, 0.05, 300), base)
    assert up["low"] > 0.08 and up["high"] < 0.12 and up["p_value"] < 0.001


def test_comparison_paired_tests(tmp_path):
    import pandas as pd

    from entropylab.compare import Comparison

    rows = []
    for i in range(40):
        for s in range(2):
            rows.append({"method": "temp", "problem_index": i, "sample": s, "reward": float(i % 4 == 0)})
            rows.append({"method": "mh", "problem_index": i, "sample": s, "reward": float(i % 2 == 0)})
    comp = Comparison(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(rows), {})
    t = comp.paired("temp", k=2).iloc[0]
    assert t["method"] == "mh" and (t["method_only"], t["reference_only"]) == (10, 0)
    assert t["accuracy_difference"] == pytest.approx(0.25) and t["mcnemar_p"] == pytest.approx(2 / 2**10)
    assert t["pass@2_difference"] == pytest.approx(0.25) and t["pass@2_low"] > 0
