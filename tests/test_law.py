"""The law's closed-form fit: exactness against scipy and lmfit, input handling, verdicts, report and dict."""

from __future__ import annotations

import json
import subprocess
import sys

import lmfit
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import curve_fit

from entropylab.errors import FitError
from entropylab.law import _ols_weighted, _resample_counts, fit_law


def synthetic(n=40, a=0.6, b=1.2, sigma=0.03, seed=0, h=(0.1, 1.5)):
    """A run whose entropy falls over the steps and whose score follows the law plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    H = np.sort(rng.uniform(*h, n))[::-1].copy()
    steps = np.arange(1, n + 1) * 10
    R = b - a * np.exp(H) + rng.normal(0, sigma, n)
    return H, R, steps


def frame(H, R, steps, run="run1"):
    return pd.DataFrame({"run": run, "step": steps, "entropy": H, "score": R})


# ---------------------------------------------------------------- exactness


def test_closed_form_equals_curve_fit_and_lmfit():
    H, R, _ = synthetic(seed=3)
    fit = fit_law(H=H, R=R)
    law = lambda h, a, b: b - a * np.exp(h)  # noqa: E731
    p, _ = curve_fit(law, H, R, p0=[1.0, 1.0])
    np.testing.assert_allclose([fit.a, fit.b], p, rtol=1e-8)
    jac = lambda h, a, b: np.column_stack([-np.exp(h), np.ones_like(h)])  # noqa: E731
    p, cov = curve_fit(law, H, R, p0=[1.0, 1.0], jac=jac)
    np.testing.assert_allclose([fit.a, fit.b], p, rtol=1e-10)
    np.testing.assert_allclose(fit.covariance, cov, rtol=1e-10)
    model = lmfit.Model(lambda H, a, b: b - a * np.exp(H), independent_vars=["H"])
    res = model.fit(R, model.make_params(a=1.0, b=1.0), H=H)
    np.testing.assert_allclose([fit.a, fit.b], [res.params["a"].value, res.params["b"].value], rtol=1e-8)
    np.testing.assert_allclose(
        [fit.a_stderr, fit.b_stderr], [res.params["a"].stderr, res.params["b"].stderr], rtol=1e-7
    )
    assert fit.aic == pytest.approx(res.aic, rel=1e-9)
    assert fit.bic == pytest.approx(res.bic, rel=1e-9)
    assert fit.r2 == pytest.approx(res.rsquared, rel=1e-9)


def test_linear_form_equals_polyfit_and_ceiling_variance():
    H, R, _ = synthetic(seed=4)
    fit = fit_law(H=H, R=R, form="linear")
    slope, intercept = np.polyfit(H, R, 1)
    assert fit.a == pytest.approx(-slope, rel=1e-10) and fit.b == pytest.approx(intercept, rel=1e-10)
    assert fit.ceiling == pytest.approx(fit.b)
    # exp form: ceiling variance is var(b) + var(a) - 2 cov(a, b), with a t(n-2) interval
    fit = fit_law(H=H, R=R)
    cov = fit.covariance
    assert fit.ceiling == pytest.approx(fit.b - fit.a)
    assert fit.ceiling_stderr**2 == pytest.approx(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], rel=1e-10)
    from scipy import stats

    half = stats.t.ppf(0.975, fit.n - 2) * fit.ceiling_stderr
    assert fit.ceiling_ci == pytest.approx((fit.ceiling - half, fit.ceiling + half), rel=1e-10)


def test_band_at_zero_is_the_ceiling_interval_and_prediction_band_is_wider():
    H, R, steps = synthetic(seed=5)
    for form in ("exp", "linear", "exp_c"):
        fit = fit_law(H=H, R=R, steps=steps, form=form)
        mean, lo, hi = fit.predict([0.0], return_band=True)
        assert mean[0] == pytest.approx(fit.ceiling)
        assert (lo[0], hi[0]) == pytest.approx(fit.ceiling_ci, rel=1e-9)
        _, plo, phi = fit.predict(H, return_band=True, interval="prediction")
        _, clo, chi = fit.predict(H, return_band=True)
        assert np.all(phi - plo > chi - clo)
    assert fit.predict(0.5).shape == ()


def test_vectorised_bootstrap_equals_refits_one_by_one():
    H, R, _ = synthetic(n=25, seed=6)
    x = np.exp(H)
    W = np.vstack(list(_resample_counts(len(H), 50, np.random.default_rng(0), chunk=200)))  # 8 rows a block
    assert W.shape == (50, 25)
    assert np.all(W.sum(axis=1) == len(H))
    fast = _ols_weighted(x, R, W)
    for w, row in zip(W, fast):
        idx = np.repeat(np.arange(len(H)), w.astype(int))
        slope, intercept = np.polyfit(x[idx], R[idx], 1)
        np.testing.assert_allclose(row, [-slope, intercept], rtol=1e-9, atol=1e-12)
    fit = fit_law(H=H, R=R, bootstrap=200, seed=1)
    again = fit_law(H=H, R=R, bootstrap=200, seed=1)
    assert fit.bootstrap.ceiling_ci == again.bootstrap.ceiling_ci  # seeded
    assert fit.bootstrap.n_used == 200
    lo, hi = fit.bootstrap.ceiling_ci
    assert lo < fit.ceiling < hi


def test_exp_c_recovers_c_and_robust_loss_resists_outliers():
    rng = np.random.default_rng(7)
    H = np.linspace(1.5, 0.1, 50)
    R = 1.0 - 0.4 * np.exp(0.7 * H) + rng.normal(0, 0.005, 50)
    fit = fit_law(H=H, R=R, steps=np.arange(50), form="exp_c")
    assert fit.c == pytest.approx(0.7, abs=0.05) and fit.ceiling == pytest.approx(0.6, abs=0.02)
    assert abs(fit.c - 0.7) < 3 * fit.c_stderr and fit.c_ci[0] < fit.c < fit.c_ci[1] and fit.ok
    H, R, steps = synthetic(n=60, sigma=0.01, seed=8)
    R[::10] += 0.5  # six gross outliers
    ols = fit_law(H=H, R=R, steps=steps)
    robust = fit_law(H=H, R=R, steps=steps, loss="soft_l1")
    assert abs(robust.ceiling - 0.6) < 0.02 < abs(ols.ceiling - 0.6)
    assert "soft_l1" in robust.method and fit_law(H=H, R=R, loss="huber").a > 0
    slow = fit_law(H=H, R=R, steps=steps, loss="soft_l1", bootstrap=20)  # per-resample refits
    assert slow.bootstrap.n_used == 20 and slow.bootstrap.ceiling_ci[0] < slow.ceiling < slow.bootstrap.ceiling_ci[1]


# ---------------------------------------------------------------- input


def test_dataframe_input_orders_by_step_and_names_the_run():
    H, R, steps = synthetic(seed=9)
    df = frame(H, R, steps).sample(frac=1.0, random_state=0)
    fit = fit_law(df)
    assert fit.run == "run1" and np.all(np.diff(fit.steps) > 0)
    assert fit.a == pytest.approx(fit_law(H=H, R=R).a, rel=1e-12)


def test_several_runs_need_fit_runs_or_a_run_name():
    H, R, steps = synthetic(seed=10)
    df = pd.concat([frame(H, R, steps, "x"), frame(H, R + 0.01, steps, "y")])
    with pytest.raises(FitError, match="fit_runs"):
        fit_law(df)
    assert fit_law(df, run="y").b == pytest.approx(fit_law(H=H, R=R + 0.01).b)
    with pytest.raises(FitError, match="not in the points"):
        fit_law(df, run="z")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(H=[0.1, 0.2], R=[0.5, 0.4]), "only 2 point"),
        (dict(H=[0.3] * 6, R=np.linspace(0, 1, 6)), "same entropy"),
        (dict(H=[0.1, 0.2, np.nan, 0.4, np.inf], R=[0.5, 0.4, 0.3, np.nan, 0.1]), "3 of 5 points"),
        (dict(H=[0.1, 0.2, 0.3], R=[0.5, 0.4]), "differ in length"),
        (dict(H=[0.1, 0.2, 0.3], R=[0.5, 0.4, 0.3], form="cubic"), "unknown form"),
        (dict(H=[0.1, 0.2, 0.3], R=[0.5, 0.4, 0.3], loss="l2"), "unknown loss"),
        (dict(H=[0.1, 0.2, 0.3], R=[0.5, 0.4, 0.3], form="exp_c"), "at least 4"),
        (dict(H=None, R=None), "nothing to fit"),
    ],
)
def test_unfittable_inputs_raise_fit_error(kwargs, match):
    with pytest.raises(FitError, match=match):
        fit_law(**kwargs)


def test_missing_columns_are_named():
    with pytest.raises(FitError, match="score"):
        fit_law(pd.DataFrame({"step": [1, 2, 3], "entropy": [0.3, 0.2, 0.1]}))


# ---------------------------------------------------------------- verdicts


def test_clean_run_is_ok():
    H, R, steps = synthetic(seed=11)
    fit = fit_law(H=H, R=R, steps=steps)
    assert fit.ok and fit.reasons == [] and fit.r2 > 0.9
    assert abs(fit.a - 0.6) < 0.05 and abs(fit.ceiling - 0.6) < 0.05


def test_too_few_points_is_not_trustworthy():
    fit = fit_law(H=[1.0, 0.7, 0.4, 0.2], R=[0.2, 0.4, 0.55, 0.62], steps=[1, 2, 3, 4])
    assert not fit.ok and any("only 4 points" in r for r in fit.reasons)


def test_reward_falling_with_entropy_is_flagged():
    H, R, steps = synthetic(seed=12)
    fit = fit_law(H=H, R=-R, steps=steps)
    assert fit.a < 0 and not fit.ok
    assert any("does not rise" in r for r in fit.reasons)


def test_rising_entropy_is_flagged():
    H, R, steps = synthetic(seed=13)
    fit = fit_law(H=H, R=R, steps=steps[::-1])
    assert not fit.ok and any("entropy does not fall" in r for r in fit.reasons)


def test_poor_fit_and_wide_ceiling_are_flagged():
    H, R, steps = synthetic(n=12, sigma=0.6, seed=14)
    fit = fit_law(H=H, R=R, steps=steps)
    assert not fit.ok
    assert any("95% interval" in r for r in fit.reasons)
    assert not any("poor fit" in r for r in fit.reasons)  # R² is low, but the residuals are within the noise
    assert any("R^2" in w and "within the noise" in w for w in fit.warnings)
    no_noise = fit_law(H=H[:7], R=R[:7], steps=steps[:7])  # too few points to estimate the noise: R² judges
    assert no_noise.noise is None and any("poor fit" in r for r in no_noise.reasons)
    assert "ceiling not trustworthy:" in fit.report()
    assert "NOT TRUSTWORTHY" in str(fit)


def test_narrow_entropy_range_is_flagged():
    H = np.linspace(0.505, 0.5, 20)
    R = 1.2 - 0.6 * np.exp(H) + np.random.default_rng(0).normal(0, 0.001, 20)
    fit = fit_law(H=H, R=R, steps=np.arange(20))
    assert not fit.ok and any("spans only" in r for r in fit.reasons)


def test_autocorrelated_residuals_get_a_note_and_a_drift_beyond_the_noise_a_veto():
    H, R, steps = synthetic(n=40, sigma=0.001, seed=15)
    drift = 0.01 * np.sin(np.linspace(0, np.pi, 40))  # slow drift: misfit over time
    fit = fit_law(H=H, R=R + drift, steps=steps)
    assert any("Durbin-Watson" in w for w in fit.warnings)
    assert not fit.ok and any("within the noise of the score" in r for r in fit.reasons)  # 10x the noise
    H, R, steps = synthetic(n=40, sigma=0.01, seed=15)
    fit = fit_law(H=H, R=R + 0.5 * drift, steps=steps)  # the same drift inside the noise
    assert fit.ok and fit.noise.fits


# ---------------------------------------------------------------- output


def test_report_sections_and_json():
    H, R, steps = synthetic(seed=16)
    fit = fit_law(frame(H, R, steps), bootstrap=100)
    text = fit.report()
    for section in (
        "[[Model]]",
        "[[Fit Statistics]]",
        "[[Variables]]",
        "[[Ceiling]]",
        "[[Verdict]]",
        "95% CI",
        "bootstrap (100 of 100 resamples)",
        "R(H=0) = b - a",
    ):
        assert section in text
    d = json.loads(json.dumps(fit.to_dict(), allow_nan=False))
    assert d["params"]["a"] == pytest.approx(fit.a) and d["bootstrap"]["n_resamples"] == 100
    assert d["ok"] is True and len(d["H"]) == fit.n and d["run"] == "run1"
    noiseless = fit_law(H=H, R=1.2 - 0.6 * np.exp(H))  # RSS = 0: AIC stays finite, JSON stays valid
    json.dumps(noiseless.to_dict(), allow_nan=False)
    assert "ceiling" in str(fit) and "R^2" in str(fit)


def test_import_is_light():
    code = "import sys, entropylab.law; print(any(m in sys.modules for m in ('torch', 'transformers', 'lmfit')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
