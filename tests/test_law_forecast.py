"""Forecasts (the paper's prediction test and its reverse), per-run and shared fits, and model comparison."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from entropylab.errors import FitError
from entropylab.law import compare_forms, fit_runs, fit_shared, forecast


def run_points(n=60, a=0.6, b=1.2, sigma=0.0, seed=0, run="run1", step0=1):
    """A run whose entropy decays over the steps and whose score follows the law (plus optional noise)."""
    rng = np.random.default_rng(seed)
    steps = step0 + 4 * np.arange(n)
    H = 0.1 + 1.2 * np.exp(-steps / 50.0)
    R = b - a * np.exp(H) + rng.normal(0, sigma, n)
    return pd.DataFrame({"run": run, "step": steps, "entropy": H, "score": R})


def by_hand(df, mask):
    """Least squares on exp(H) over the window, predictions and errors on the rest."""
    x, R = np.exp(df["entropy"].to_numpy()), df["score"].to_numpy()
    slope, intercept = np.polyfit(x[mask], R[mask], 1)
    err = intercept + slope * x[~mask] - R[~mask]
    return err


# ---------------------------------------------------------------- forecast


def test_noiseless_forecast_is_exact_both_ways():
    df = run_points()
    for reverse in (False, True):
        fc = forecast(df, reverse=reverse)
        assert fc.rmse < 1e-10 and abs(fc.final_error) < 1e-10 and fc.n_fit + fc.n_heldout == len(df)
        assert fc.fit.a == pytest.approx(0.6) and fc.fit.ceiling == pytest.approx(0.6)


def test_noisy_forecast_numbers_equal_a_hand_computation():
    df = run_points(sigma=0.02, seed=1)
    s = df["step"].to_numpy()
    fc = forecast(df)
    mask = s <= s.min() + 0.15 * (s.max() - s.min())
    err = by_hand(df, mask)
    assert fc.n_fit == mask.sum() and fc.n_heldout == (~mask).sum()
    assert fc.rmse == pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-10)
    assert fc.mae == pytest.approx(np.mean(np.abs(err)), rel=1e-10)
    assert fc.final_error == pytest.approx(err[-1], rel=1e-10)
    np.testing.assert_allclose(fc.predicted - fc.actual, err, rtol=1e-10)
    np.testing.assert_array_equal(fc.steps, s[~mask])
    assert fc.fraction_label == "15%" and not fc.reverse
    assert np.all(fc.lower < fc.predicted) and 0.0 <= fc.coverage <= 1.0


def test_reverse_forecast_fits_the_last_fraction_and_scores_the_first_step():
    df = run_points(sigma=0.02, seed=2)
    s = df["step"].to_numpy()
    fc = forecast(df, reverse=True, fit_first=0.3)
    mask = s >= s.max() - 0.3 * (s.max() - s.min())
    err = by_hand(df, mask)
    assert fc.reverse and fc.n_fit == mask.sum()
    assert fc.rmse == pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-10)
    assert fc.final_error == pytest.approx(err[0], rel=1e-10)  # farthest from the window: the first step
    assert fc.fit.steps.min() >= fc.cutoff


def test_first_steps_window_and_fallback_to_three_points():
    df = run_points(sigma=0.01, seed=3)  # steps 1, 5, 9, ...
    fc = forecast(df, first_steps=36)  # steps 1..36: 9 points
    assert fc.n_fit == 9 and fc.fit.steps.max() == 33 and fc.fraction_label == "36 steps"
    fc = forecast(df, first_steps=36, reverse=True)
    assert fc.n_fit == 9 and fc.fit.steps.min() == df["step"].max() - 32
    fc = forecast(df, fit_first=0.01)  # one point in the window
    assert fc.n_fit == 3 and any("first 3 points" in w for w in fc.warnings)
    assert fc.fit.steps.tolist() == [1, 5, 9]


def test_forecast_inputs_and_output():
    df = run_points(sigma=0.01, seed=4)
    with pytest.raises(FitError, match="step"):
        forecast(H=df["entropy"], R=df["score"])
    with pytest.raises(FitError, match="fraction"):
        forecast(df, fit_first=1.5)
    with pytest.raises(FitError, match="nothing left"):
        forecast(df.head(3))
    fc = forecast(H=df["entropy"], R=df["score"], steps=df["step"])
    d = json.loads(json.dumps(fc.to_dict(), allow_nan=False))
    assert d["n_fit"] == fc.n_fit and len(d["predicted"]) == fc.n_heldout
    text = fc.report()
    assert "[[Forecast]]" in text and "held-out RMSE" in text and "[[Ceiling]]" in text
    assert "RMSE" in str(fc)


# ---------------------------------------------------------------- several runs


def test_fit_runs_gives_one_fit_per_run():
    df = pd.concat([run_points(sigma=0.01, seed=5, run="a"), run_points(b=1.3, sigma=0.01, seed=6, run="b")])
    fits = fit_runs(df, bootstrap=50)
    assert set(fits) == {"a", "b"} and fits["b"].b == pytest.approx(1.3, abs=0.05)
    assert fits["a"].bootstrap.n_resamples == 50
    bad = pd.concat([df, pd.DataFrame({"run": "c", "step": [1, 2], "entropy": [0.5, 0.4], "score": [0.1, 0.2]})])
    with pytest.raises(FitError, match="run 'c'"):
        fit_runs(bad)
    assert set(fit_runs(bad, errors="skip")) == {"a", "b"}


def test_shared_fit_same_law_vs_different_laws():
    same = pd.concat([run_points(sigma=0.02, seed=7, run="x"), run_points(sigma=0.02, seed=8, run="y", step0=3)])
    shared = fit_shared(same)
    assert shared.p_value > 0.05 and shared.same and shared.verdict.startswith("sharing (a, b) fits as well")
    assert shared.df_num == 2 and shared.df_den == len(same) - 4
    rss_sep = sum(f.rss for f in shared.separate.values())
    f_hand = (shared.rss_shared - rss_sep) / 2 / (rss_sep / (len(same) - 4))
    assert shared.f_stat == pytest.approx(f_hand, rel=1e-10)
    differ = pd.concat(
        [run_points(sigma=0.02, seed=9, run="x"), run_points(a=0.5, b=1.0, sigma=0.02, seed=10, run="y")]
    )
    shared = fit_shared(differ)
    assert shared.p_value < 1e-6 and not shared.same and shared.verdict.startswith("runs differ")
    assert shared.aic_separate < shared.aic_shared
    assert "[[F-test]]" in shared.report()
    json.dumps(shared.to_dict(), allow_nan=False)
    with pytest.raises(FitError, match="at least 2 runs"):
        fit_shared(run_points())
    with pytest.raises(FitError, match="linear in"):
        fit_shared(differ, form="exp_c")


# ---------------------------------------------------------------- model comparison


def test_compare_forms_ranks_the_true_form_first():
    df = run_points(sigma=0.01, seed=11)
    table = compare_forms(df)
    assert list(table.columns[:5]) == ["model", "form", "loss", "k", "params"]
    assert set(table["model"]) == {"exp", "linear", "exp_c", "exp (soft_l1)"}
    assert table["aic"].is_monotonic_increasing and table["delta_aic"].iloc[0] == 0
    assert table["weight"].sum() == pytest.approx(1.0)
    assert table["model"].iloc[0] in ("exp", "exp_c", "exp (soft_l1)")
    assert table.set_index("model").loc["linear", "delta_aic"] > 10
    small = compare_forms(H=[1.0, 0.6, 0.3], R=[0.2, 0.45, 0.58])  # exp_c needs 4 points: a row with a note
    assert "at least 4" in small.set_index("model").loc["exp_c", "note"]
