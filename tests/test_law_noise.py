"""The verdict against the measurement noise: calibrated on synthetic runs (the law true plus binomial noise:
ok at about its nominal rate; a curve that is not the law: refused), and the lack-of-fit test itself."""

from __future__ import annotations

import numpy as np
import pytest

from entropylab.law import NOISE_ALPHA, fit_law, noise_check, smoother_noise

N_PROBLEMS = 500
H = np.linspace(1.2, 0.15, 30)  # entropy falls over 30 validation points
STEPS = np.arange(1, 31) * 10


def the_law(h):
    return 0.9 - 0.2 * np.exp(h)  # ceiling 0.7


def not_the_law(h):
    return 0.25 + 0.5 / (1 + np.exp(-12 * (0.7 - h)))  # a sigmoid: flat at both ends, steep between


def verdicts(truth, *, reps: int, seed: int, val_size: int | None) -> tuple[float, float]:
    """(share of ok verdicts, share of runs whose residuals are within the noise) over `reps` synthetic runs."""
    rng = np.random.default_rng(seed)
    ok = fits = 0
    for _ in range(reps):
        R = rng.binomial(N_PROBLEMS, truth(H)) / N_PROBLEMS
        fit = fit_law(H=H, R=R, steps=STEPS, val_size=val_size)
        ok += fit.ok
        fits += fit.noise.fits
    return ok / reps, fits / reps


@pytest.mark.parametrize("val_size", [N_PROBLEMS, None], ids=["binomial", "smoother"])
def test_law_true_is_ok_at_its_nominal_rate(val_size):
    ok, fits = verdicts(the_law, reps=300, seed=1, val_size=val_size)
    nominal = 1 - NOISE_ALPHA  # 0.99: 297 of 300 expected, sd about 1.7
    assert abs(fits - nominal) <= 0.025 and ok == fits  # the other checks pass on these runs


@pytest.mark.parametrize("val_size", [N_PROBLEMS, None], ids=["binomial", "smoother"])
def test_a_curve_that_is_not_the_law_is_refused(val_size):
    ok, fits = verdicts(not_the_law, reps=100, seed=2, val_size=val_size)
    assert ok <= 0.02 and fits <= 0.02


def test_smoother_p_values_are_uniform_under_the_law():
    """The simulated null distribution makes the smoother's p-value uniform: about 5% below 0.05, 20% below 0.2."""
    rng = np.random.default_rng(3)
    p = []
    for _ in range(400):
        R = the_law(H) + rng.normal(0, 0.02, len(H))
        p.append(fit_law(H=H, R=R, steps=STEPS).noise.p_value)
    p = np.array(p)
    assert abs((p < 0.05).mean() - 0.05) < 0.03 and abs((p < 0.2).mean() - 0.2) < 0.05


def test_binomial_check_and_the_smoother_estimate():
    rng = np.random.default_rng(4)
    R = rng.binomial(N_PROBLEMS, the_law(H)) / N_PROBLEMS
    fit = fit_law(H=H, R=R, steps=STEPS, val_size=N_PROBLEMS)
    check = fit.noise
    assert check.source == "binomial" and check.test == "chi2" and check.dof == (28.0,)
    sd = np.sqrt(the_law(H) * (1 - the_law(H)) / N_PROBLEMS).mean()
    assert check.sigma == pytest.approx(sd, rel=0.05)
    assert 0.6 < check.ratio < 1.4
    assert "binomial noise of 500 problems" in check.text() and "p = " in check.text()
    assert fit.to_dict()["noise"]["test"] == "chi2"
    # the smoother sees through any smooth R(H): its estimate is the noise, not the trend
    assert np.sqrt(smoother_noise(R, H)) == pytest.approx(sd, rel=0.3)
    assert smoother_noise(the_law(H), H) < 1e-6
    # scores off the 0..1 scale cannot be binomial: the smoother judges them
    scaled = fit_law(H=H, R=100 * R, steps=STEPS, val_size=N_PROBLEMS)
    assert scaled.noise.source == "smoother"
    assert noise_check(R[:5], fit.residuals[:5], np.ones((5, 2)), H=H[:5]) is None  # too few points, no N


@pytest.mark.parametrize("F", [0.9, 1.0, 1.15, 1.3])
def test_cumulant_approximation_agrees_with_the_simulated_null(monkeypatch, F):
    """Beyond SIMULATE_UP_TO points the null of the smoother's F comes from its cumulants: the same p-value."""
    from entropylab import law

    n = 200
    h = np.sort(np.random.default_rng(6).uniform(0.05, 1.2, n))[::-1]
    design = law._gradient("exp", h, np.array([0.3, 1.0]))
    weights = law._gsj_weights(h)
    approx = law._f_null_sf(F, design, weights)
    monkeypatch.setattr(law, "SIMULATE_UP_TO", n)
    monkeypatch.setattr(law, "NULL_DRAWS", 20000)
    simulated = law._f_null_sf(F, design, weights)
    assert approx == pytest.approx(simulated, abs=0.015)


def test_many_points_use_the_approximation_and_still_refuse_a_misfit():
    h = np.linspace(1.2, 0.15, 400)
    rng = np.random.default_rng(7)
    fit = fit_law(H=h, R=the_law(h) + rng.normal(0, 0.01, 400), steps=np.arange(400))
    assert fit.noise.fits and fit.ok
    bad = fit_law(H=h, R=not_the_law(h) + rng.normal(0, 0.01, 400), steps=np.arange(400))
    assert not bad.noise.fits and bad.noise.p_value < 1e-6
