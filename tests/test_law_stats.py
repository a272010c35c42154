"""Calibration of the law's intervals: exact t intervals, bootstrap percentiles and the shared-fit F-test."""

from __future__ import annotations

import numpy as np
import pandas as pd

from entropylab.law import fit_law, fit_shared

A, B = 0.6, 1.2


def _draw(rng, n=40, sigma=0.05):
    H = rng.uniform(0.1, 1.5, n)
    return H, B - A * np.exp(H) + rng.normal(0, sigma, n)


def test_exact_intervals_cover_the_truth_95_percent():
    rng = np.random.default_rng(2)
    hits = np.zeros(3)
    reps = 400
    for _ in range(reps):
        fit = fit_law(H=(d := _draw(rng))[0], R=d[1])
        hits += [
            fit.a_ci[0] <= A <= fit.a_ci[1],
            fit.b_ci[0] <= B <= fit.b_ci[1],
            fit.ceiling_ci[0] <= B - A <= fit.ceiling_ci[1],
        ]
    coverage = hits / reps
    assert np.all((coverage >= 0.91) & (coverage <= 0.985)), coverage


def test_confidence_band_covers_the_true_mean():
    rng = np.random.default_rng(7)
    grid = np.array([0.0, 0.5, 1.0, 1.5])
    truth = B - A * np.exp(grid)
    hits = np.zeros(len(grid))
    for _ in range(300):
        H, R = _draw(rng)
        _, lo, hi = fit_law(H=H, R=R).predict(grid, return_band=True)
        hits += (lo <= truth) & (truth <= hi)
    assert np.all((hits / 300 >= 0.9) & (hits / 300 <= 0.99)), hits / 300


def test_bootstrap_percentile_intervals_are_reasonably_calibrated():
    rng = np.random.default_rng(11)
    reps, hits, width_ratio = 150, np.zeros(3), []
    for i in range(reps):
        H, R = _draw(rng)
        fit = fit_law(H=H, R=R, bootstrap=400, seed=i)
        bs = fit.bootstrap
        hits += [
            bs.a_ci[0] <= A <= bs.a_ci[1],
            bs.b_ci[0] <= B <= bs.b_ci[1],
            bs.ceiling_ci[0] <= B - A <= bs.ceiling_ci[1],
        ]
        width_ratio.append((bs.ceiling_ci[1] - bs.ceiling_ci[0]) / (fit.ceiling_ci[1] - fit.ceiling_ci[0]))
    coverage = hits / reps
    assert np.all((coverage >= 0.85) & (coverage <= 0.99)), coverage
    assert 0.8 < np.median(width_ratio) < 1.2  # agrees with the exact interval under the model


def test_shared_fit_f_test_rejects_about_five_percent_under_the_null():
    rng = np.random.default_rng(5)
    reps, rejections = 150, 0
    for _ in range(reps):
        parts = []
        for run in ("x", "y", "z"):
            H, R = _draw(rng, n=20)
            parts.append(pd.DataFrame({"run": run, "step": np.arange(20), "entropy": H, "score": R}))
        rejections += fit_shared(pd.concat(parts)).p_value < 0.05
    assert rejections / reps <= 0.12, rejections / reps
