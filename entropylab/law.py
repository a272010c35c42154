"""The reward-entropy law R = -a*exp(H) + b (Cui et al. 2025): fit, verdict, forecast, shared fits, model choice.

Read top to bottom:

1. the forms of the law and their gradients;
2. turning a DataFrame of fit points (columns run, step, entropy, score) or arrays into clean arrays;
3. the closed-form fit: for the default form the law is *linear* in (a, b) given x = exp(H), so ordinary
   least squares gives exact estimates, exact standard errors and exact t intervals, and the ceiling
   R(H=0) = b - a is a linear combination with an exact variance; a vectorised case bootstrap refits all
   resamples at once with one matrix product;
4. lmfit for what is not linear: the form R = -a*exp(c*H) + b and robust losses (soft_l1, huber);
5. the verdict: plain words for when the law does not describe a run;
6. `LawFit` and `fit_law`;  7. `forecast` (fit early points, predict the rest);
8. `fit_runs` and `fit_shared` (one (a, b) for several runs, F-test);  9. `compare_forms`;
10. the law while a run trains: `live_forecast`, `alarms`, `LiveLaw` (for the trainers) and the replay
    `forecast_history`.

No torch here; lmfit and scipy.stats are imported only when a nonlinear or robust fit needs them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from entropylab.errors import FitError

__all__ = [
    "FORMS",
    "LOSSES",
    "LawFit",
    "BootstrapSummary",
    "Forecast",
    "SharedFit",
    "fit_law",
    "forecast",
    "fit_runs",
    "fit_shared",
    "compare_forms",
    "NoiseCheck",
    "noise_check",
    "LAW_KEYS",
    "LiveLaw",
    "live_forecast",
    "alarms",
    "headroom",
    "forecast_history",
    "reliable_from",
    "verdict_line",
]

# --------------------------------------------------------------------------------------------------
# 1. Forms of the law
# --------------------------------------------------------------------------------------------------

FORMS: dict[str, str] = {"exp": "R = -a*exp(H) + b", "linear": "R = -a*H + b", "exp_c": "R = -a*exp(c*H) + b"}
LOSSES = ("linear", "soft_l1", "huber")
PARAMS: dict[str, tuple[str, ...]] = {"exp": ("a", "b"), "linear": ("a", "b"), "exp_c": ("a", "b", "c")}
LEVEL = 0.95

# Verdict thresholds (scores are taken to be on a 0..1 scale; larger scales multiply the score thresholds).
MIN_POINTS = 3  # fewer: FitError
FEW_POINTS = 5  # fewer: not trustworthy
MIN_H_RANGE = 0.02  # nats; a narrower entropy range barely constrains the curve
FALL_RHO = -0.2  # Spearman(H, step) above this: entropy does not fall over the run
MIN_R2 = 0.5
MAX_CEILING_WIDTH = 0.5  # width of the ceiling's 95% interval, in score units (x scale)
AUTOCORR_DW = 1.0  # Durbin-Watson below this: residuals autocorrelated over steps


def _basis(form: str, H: np.ndarray, c: float = 1.0) -> np.ndarray:
    """The regressor x of R = b - a*x: exp(H), H, or exp(c*H)."""
    if form == "linear":
        return np.asarray(H, dtype=float)
    return np.exp(c * np.asarray(H, dtype=float))


def _mean(form: str, H: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """The law's mean score at entropies H for parameters theta = (a, b[, c])."""
    c = theta[2] if form == "exp_c" else 1.0
    return theta[1] - theta[0] * _basis(form, H, c)


def _gradient(form: str, H: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """d mean / d theta at each H, shape (len(H), k): the delta method's (and OLS's) design rows."""
    H = np.atleast_1d(np.asarray(H, dtype=float))
    c = theta[2] if form == "exp_c" else 1.0
    x = _basis(form, H, c)
    cols = [-x, np.ones_like(H)]
    if form == "exp_c":
        cols.append(-theta[0] * H * x)
    return np.column_stack(cols)


def _t(dof: float, level: float = LEVEL) -> float:
    """Two-sided Student-t quantile (inf when there are no degrees of freedom)."""
    return float(special.stdtrit(dof, 0.5 + level / 2)) if dof > 0 else math.inf


# --------------------------------------------------------------------------------------------------
# 2. Input: a DataFrame of fit points or arrays -> clean, step-ordered arrays
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Points:
    H: np.ndarray
    R: np.ndarray
    steps: np.ndarray | None
    run: str | None


def _points(data: pd.DataFrame | None, H: Any, R: Any, steps: Any, run: str | None) -> _Points:
    """Validate the input and return float arrays ordered by step; FitError says what is wrong."""
    if data is not None:
        if H is not None or R is not None or steps is not None:
            raise FitError("pass either a DataFrame of points or H=/R= arrays, not both")
        if not isinstance(data, pd.DataFrame):
            raise FitError(f"data must be a pandas DataFrame of fit points, got {type(data).__name__}")
        missing = [col for col in ("entropy", "score") if col not in data.columns]
        if missing:
            raise FitError(
                f"points are missing column(s) {missing}; expected run, step, entropy, score "
                f"(found {list(data.columns)})"
            )
        if "run" in data.columns:
            runs = pd.unique(data["run"])
            if run is not None:
                data = data[data["run"].astype(str) == str(run)]
                if data.empty:
                    raise FitError(f"run {run!r} not in the points; runs: {[str(r) for r in runs]}")
            elif len(runs) > 1:
                raise FitError(
                    f"the points hold {len(runs)} runs ({', '.join(map(str, runs[:5]))}"
                    f"{', ...' if len(runs) > 5 else ''}): use fit_runs() for one fit per run, "
                    "fit_shared() for one law across runs, or pass run=NAME"
                )
            elif len(runs) == 1:
                run = str(runs[0])
        H, R = data["entropy"].to_numpy(), data["score"].to_numpy()
        steps = data["step"].to_numpy() if "step" in data.columns else None
    if H is None or R is None:
        raise FitError("nothing to fit: pass a DataFrame of points or both H= and R=")
    try:
        H = np.asarray(H, dtype=float).ravel()
        R = np.asarray(R, dtype=float).ravel()
        steps = None if steps is None else np.asarray(steps, dtype=float).ravel()
    except (TypeError, ValueError) as err:
        raise FitError(f"entropy, score and step must be numeric: {err}") from None
    if len(H) != len(R) or (steps is not None and len(steps) != len(H)):
        raise FitError(f"H, R and steps differ in length: {len(H)}, {len(R)}, {'-' if steps is None else len(steps)}")
    bad = ~np.isfinite(H) | ~np.isfinite(R) | (np.zeros(len(H), bool) if steps is None else ~np.isfinite(steps))
    if bad.any():
        raise FitError(
            f"{int(bad.sum())} of {len(H)} points have a non-finite entropy, score or step "
            "(NaN or inf): drop them first, e.g. points.dropna()"
        )
    if steps is not None:
        order = np.argsort(steps, kind="stable")
        H, R, steps = H[order], R[order], steps[order]
    return _Points(H, R, steps, run)


def _check_fittable(H: np.ndarray, k: int, form: str) -> None:
    """Too few points or constant entropy make the law unidentifiable: raise instead of fitting."""
    need = max(MIN_POINTS, k + 1)
    if len(H) < need:
        raise FitError(f"only {len(H)} point(s): the {form!r} form needs at least {need}")
    if np.ptp(H) <= 1e-12 * max(1.0, float(np.max(np.abs(H)))):
        raise FitError(f"all {len(H)} points have the same entropy ({H[0]:.6g}): the law cannot be fitted")


# --------------------------------------------------------------------------------------------------
# 3. Closed form: ordinary least squares of R on x (exact), and the vectorised bootstrap
# --------------------------------------------------------------------------------------------------


def _ols(x: np.ndarray, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact least squares of R = b - a*x: (theta = [a, b], covariance s^2 (X'X)^-1), centred for stability."""
    n = len(x)
    xm, rm = x.mean(), R.mean()
    dx = x - xm
    sxx = float(dx @ dx)
    slope = float(dx @ (R - rm)) / sxx
    a, b = -slope, rm - slope * xm
    resid = R - (b - a * x)
    s2 = float(resid @ resid) / (n - 2) if n > 2 else math.nan
    var_a = s2 / sxx
    cov = np.array([[var_a, xm * var_a], [xm * var_a, s2 / n + xm * xm * var_a]])
    return np.array([a, b]), cov


def _ols_weighted(x: np.ndarray, R: np.ndarray, W: np.ndarray) -> np.ndarray:
    """OLS for many case weights at once: W (B, n) counts -> (B, 2) rows [a, b]; NaN where degenerate.

    A case-bootstrap resample is a vector of counts; its fit needs only the weighted sums of
    1, x, x^2, R and xR, which one matrix product gives for all resamples.
    """
    x0, r0 = x.mean(), R.mean()  # pre-centre: the sums stay well-conditioned
    xc, rc = x - x0, R - r0
    S = W @ np.column_stack([np.ones_like(xc), xc, xc * xc, rc, xc * rc])
    w, sx, sxx, sr, sxr = S.T
    var = sxx - sx * sx / w
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(var > 1e-12 * max(float(xc @ xc), 1e-300), (sxr - sx * sr / w) / var, np.nan)
    b = (r0 + sr / w) - slope * (x0 + sx / w)
    return np.column_stack([-slope, b])


def _resample_counts(n: int, B: int, rng: np.random.Generator, chunk: int = 1 << 16) -> Iterator[np.ndarray]:
    """Counts of B case-bootstrap resamples (each draws n points with replacement), in (m, n) blocks of
    about `chunk` cells so the index and count arrays stay in cache."""
    rows = max(1, chunk // n)
    for start in range(0, B, rows):
        m = min(rows, B - start)
        idx = rng.integers(0, n, size=(m, n))
        idx += (np.arange(m) * n)[:, None]
        yield np.bincount(idx.ravel(), minlength=m * n).reshape(m, n).astype(float)


# --------------------------------------------------------------------------------------------------
# 4. lmfit: the nonlinear form and robust losses
# --------------------------------------------------------------------------------------------------


def _law_exp(H, a, b):
    return b - a * np.exp(H)


def _law_linear(H, a, b):
    return b - a * H


def _law_exp_c(H, a, b, c):
    return b - a * np.exp(c * H)


_FUNCS = {"exp": _law_exp, "linear": _law_linear, "exp_c": _law_exp_c}


def _robust_scale(resid: np.ndarray) -> float:
    """f_scale for robust losses: 1.345 robust sigmas (MAD), the usual Huber tuning for 95% efficiency."""
    sigma = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    if not sigma > 0:
        sigma = float(np.std(resid))
    return 1.345 * sigma if sigma > 0 else 1.0


def _fit_lmfit(form: str, H: np.ndarray, R: np.ndarray, loss: str) -> tuple[np.ndarray, np.ndarray | None, str, float]:
    """lmfit fit of a nonlinear form and/or robust loss: (theta, covariance or None, method text, f_scale)."""
    import lmfit

    model = lmfit.Model(_FUNCS[form], independent_vars=["H"])
    starts = (1.0, 0.5, 2.0, -1.0) if form == "exp_c" else (1.0,)
    f_scale = 1.0
    if loss != "linear":
        f_scale = _robust_scale(R - _mean("exp" if form == "exp_c" else form, H, _ols(_basis(form, H), R)[0]))
    best = None
    for c0 in starts:
        ab, _ = _ols(_basis(form, H, c0), R)
        params = model.make_params(a=ab[0], b=ab[1], **({"c": c0} if form == "exp_c" else {}))
        if loss == "linear":
            res = model.fit(R, params, H=H, method="leastsq")
        else:
            res = model.fit(R, params, H=H, method="least_squares", fit_kws={"loss": loss, "f_scale": f_scale})
        score = float(np.sum(res.residual**2)) if loss == "linear" else _robust_cost(res.residual, loss, f_scale)
        if np.isfinite(score) and (best is None or score < best[0]):
            best = (score, res)
    if best is None:
        raise FitError(f"the {form!r} fit with loss {loss!r} did not converge")
    res = best[1]
    names = PARAMS[form]
    theta = np.array([res.params[p].value for p in names])
    cov = None
    if res.covar is not None and list(res.var_names) == list(names):
        cov = np.asarray(res.covar, dtype=float)
    method = "lmfit leastsq" if loss == "linear" else f"lmfit least_squares, loss={loss}, f_scale={f_scale:.4g}"
    return theta, cov, method, f_scale


def _robust_cost(resid: np.ndarray, loss: str, f_scale: float) -> float:
    """scipy's robust cost sum(rho(r^2/f^2)) * f^2, to pick the best start."""
    z = (resid / f_scale) ** 2
    rho = 2 * (np.sqrt(1 + z) - 1) if loss == "soft_l1" else np.where(z <= 1, z, 2 * np.sqrt(z) - 1)
    return float(np.sum(rho)) * f_scale**2


def _bootstrap_loop(
    form: str, H: np.ndarray, R: np.ndarray, theta: np.ndarray, loss: str, f_scale: float, W: np.ndarray
) -> np.ndarray:
    """Slow path for nonlinear/robust fits: refit every resample with scipy least_squares from theta."""
    from scipy.optimize import least_squares

    out = np.full((len(W), len(theta)), np.nan)
    for i, counts in enumerate(W):
        idx = np.repeat(np.arange(len(H)), counts.astype(int))
        h, r = H[idx], R[idx]
        if np.ptp(h) <= 0:
            continue
        sol = least_squares(lambda t, h=h, r=r: _mean(form, h, t) - r, theta, loss=loss, f_scale=f_scale)
        if sol.success:
            out[i] = sol.x
    return out


# --------------------------------------------------------------------------------------------------
# 5. The verdict: does the law describe this run?
# --------------------------------------------------------------------------------------------------


def _spearman(u: np.ndarray, v: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either is constant."""
    ru, rv = pd.Series(u).rank().to_numpy(), pd.Series(v).rank().to_numpy()
    if np.ptp(ru) == 0 or np.ptp(rv) == 0:
        return math.nan
    return float(np.corrcoef(ru, rv)[0, 1])


NOISE_ALPHA = 0.01  # lack-of-fit p below this: the residuals are larger than the noise of the score
MIN_SMOOTHER_POINTS = 8  # fewer points: no noise estimate from the score's own scatter
NULL_DRAWS = 2000  # simulated noise vectors for the smoother test's null distribution
SIMULATE_UP_TO = 120  # more points than this: the null from its cumulants instead (Pearson's approximation)


@dataclass
class NoiseCheck:
    """A lack-of-fit test: are the law's residuals larger than the measurement noise of the score?

    `source` "binomial": the noise of an accuracy over `val_size` problems, p(1-p)/N at the fitted p, and
    chi2 = sum(residual^2 / noise^2) on n - k dof. "smoother": the noise estimated from the score's own
    scatter around the line through its two neighbours in entropy (Gasser-Sroka-Jennen-Steinmetz second
    differences: model-free for any R(H) that is smooth), and F = (RSS / (n - k)) / noise^2, whose null
    distribution (both terms are quadratic forms of the same noise) is simulated, or for many points
    approximated from its cumulants (`_f_null_sf`), for independent Gaussian noise of constant variance.
    """

    source: str
    sigma: float  # typical noise standard deviation of one score
    val_size: int | None
    test: str  # "chi2" or "F"
    statistic: float
    dof: tuple[float, ...]
    p_value: float
    ratio: float  # residual RMS / noise sd: about 1 when the law holds

    @property
    def fits(self) -> bool:
        """Whether the residuals are within the noise at level NOISE_ALPHA."""
        return bool(self.p_value >= NOISE_ALPHA)

    def text(self) -> str:
        what = (
            f"the binomial noise of {self.val_size} problems"
            if self.source == "binomial"
            else "the noise estimated from the score's scatter between neighbouring steps"
        )
        on = f" on {self.dof[0]:g} dof" if self.test == "chi2" else " (null simulated)"
        return (
            f"residuals {self.ratio:.2f}x {what} (sd {self.sigma:.3g}); lack-of-fit {self.test} = "
            f"{self.statistic:.3g}{on}, p = {self.p_value:.3g}"
        )

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "sigma": _num(self.sigma),
            "val_size": self.val_size,
            "test": self.test,
            "statistic": _num(self.statistic),
            "dof": [_num(d) for d in self.dof],
            "p_value": _num(self.p_value),
            "ratio": _num(self.ratio),
            "fits": self.fits,
        }


def _gsj_weights(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Order of x and the weights (a, b, c^2) of the pseudo-residuals a*R[i-1] + b*R[i+1] - R[i] along it."""
    order = np.argsort(np.asarray(x, dtype=float), kind="stable")
    xs = np.asarray(x, dtype=float)[order]
    span = xs[2:] - xs[:-2]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(span > 0, (xs[2:] - xs[1:-1]) / span, 0.5)
    b = 1.0 - a
    return order, a, b, 1.0 / (a * a + b * b + 1.0)


def _gsj(R: np.ndarray, order: np.ndarray, a: np.ndarray, b: np.ndarray, c2: np.ndarray) -> np.ndarray:
    """The noise variance estimate of each row of R (shape (..., n)) from the weights of `_gsj_weights`."""
    Rs = R[..., order]
    eps = a * Rs[..., :-2] + b * Rs[..., 2:] - Rs[..., 1:-1]
    return np.mean(c2 * eps * eps, axis=-1)


def smoother_noise(R: np.ndarray, x: np.ndarray) -> float:
    """The noise variance of scores R from second differences along x (the entropy): each point against the
    line through its two neighbours, which removes any R(x) that is locally linear (Gasser et al. 1986)."""
    if len(R) < 3:
        return math.nan
    return float(_gsj(np.asarray(R, dtype=float), *_gsj_weights(x)))


def _f_null_sf(F: float, design: np.ndarray, weights: tuple) -> float:
    """P(F >= observed) for independent Gaussian noise: the residual variance and the second-difference
    estimate are quadratic forms of the same noise, so F >= f is the event e'(A/(n-k) - f*B)e >= 0.

    Up to SIMULATE_UP_TO points the null is simulated (NULL_DRAWS noise vectors, seeded); beyond, the quadratic
    form's first three cumulants give Pearson's shifted-chi2 approximation, accurate there and O(n).
    """
    n, k = design.shape
    dof = n - k
    order = weights[0]
    if n <= SIMULATE_UP_TO:
        E = np.random.default_rng(0).standard_normal((NULL_DRAWS, n))
        Q, _ = np.linalg.qr(design)
        null = np.sum((E - (E @ Q) @ Q.T) ** 2, axis=1) / dof / _gsj(E, *weights)
        return float((1 + np.sum(null >= F)) / (NULL_DRAWS + 1))
    from scipy import sparse, stats

    _, a, b, c2w = weights
    m = n - 2
    Q, _ = np.linalg.qr(design[order])  # everything in the entropy order of the pseudo-residuals
    rows = np.repeat(np.arange(m), 3)
    cols = (np.arange(m)[:, None] + np.arange(3)).ravel()
    vals = (np.sqrt(c2w)[:, None] * np.column_stack([a, -np.ones(m), b])).ravel()
    D = sparse.csr_matrix((vals, (rows, cols)), shape=(m, n))
    alpha = 1.0 / dof
    N = (alpha * sparse.identity(n, format="csr") - F * (D.T @ D) / m).tocsr()  # M = N - alpha * Q Q'
    N2 = N @ N
    tr1, tr2, tr3 = (float(X.diagonal().sum()) for X in (N, N2, N2 @ N))
    qn, qn2 = float(np.sum(Q * (N @ Q))), float(np.sum(Q * (N2 @ Q)))
    c1 = tr1 - alpha * k  # tr M, tr M^2, tr M^3
    c2 = tr2 - 2 * alpha * qn + alpha**2 * k
    c3 = tr3 - 3 * alpha * qn2 + 3 * alpha**2 * qn - alpha**3 * k
    if abs(c3) < 1e-300 or c2 <= 0:
        return float(stats.norm.sf(-c1 / math.sqrt(max(2 * c2, 1e-300))))
    h = c2**3 / c3**2
    x = h - c1 * c2 / c3
    return float(stats.chi2.sf(x, h) if c3 > 0 else stats.chi2.cdf(x, h))


def noise_check(
    R: np.ndarray, residuals: np.ndarray, design: np.ndarray, *, H: np.ndarray, val_size: int | None = None
) -> NoiseCheck | None:
    """The lack-of-fit test of residuals against the score's noise (see `NoiseCheck`); None when there is no
    noise to compare with (no val_size, or scores off the 0..1 scale, and too few points for the smoother)."""
    from scipy import stats

    R, resid = np.asarray(R, dtype=float), np.asarray(residuals, dtype=float)
    n, k = design.shape
    dof = n - k
    if dof < 1:
        return None
    if val_size is not None and val_size >= 1 and R.min() >= 0 and R.max() <= 1:
        N = int(val_size)
        p = np.clip(R - resid, 0.5 / N, 1 - 0.5 / N)
        var = p * (1 - p) / N
        chi2 = float(np.sum(resid * resid / var))
        sigma = float(np.sqrt(np.mean(var)))
        return NoiseCheck(
            "binomial",
            sigma,
            N,
            "chi2",
            chi2,
            (float(dof),),
            float(stats.chi2.sf(chi2, dof)),
            float(np.sqrt(np.mean(resid * resid)) / sigma),
        )
    if n < MIN_SMOOTHER_POINTS:
        return None
    weights = _gsj_weights(H)
    var = float(_gsj(R, *weights))
    if not var > 0:
        return None
    F = float(np.sum(resid * resid) / dof / var)
    p = _f_null_sf(F, design, weights)
    return NoiseCheck(
        "smoother", math.sqrt(var), None, "F", F, (float(dof),), p, float(np.sqrt(np.mean(resid * resid) / var))
    )


def _verdict(fit: LawFit) -> tuple[list[str], list[str]]:
    """(serious reasons that make the ceiling untrustworthy, milder notes), in plain words."""
    serious: list[str] = []
    notes: list[str] = []
    H, R = fit.H, fit.R
    scale = max(1.0, float(np.max(np.abs(R))))
    if fit.n < FEW_POINTS:
        serious.append(f"only {fit.n} points (want at least {FEW_POINTS})")
    if np.ptp(H) < MIN_H_RANGE:
        serious.append(f"entropy spans only {np.ptp(H):.3g} nats: too narrow to pin the curve down")
    if fit.steps is not None:
        rho = _spearman(fit.steps, H)
        if not np.isfinite(rho):
            notes.append("all points share one step: cannot check that entropy falls")
        elif rho > FALL_RHO:
            serious.append(f"entropy does not fall over the run (Spearman rho(step, H) = {rho:+.2f})")
    else:
        notes.append("no steps given: cannot check that entropy falls over the run")
    rise = fit.a * (fit.c if fit.form == "exp_c" and fit.c is not None else 1.0)
    if not rise > 0:
        what = "a*c" if fit.form == "exp_c" else "a"
        serious.append(f"reward does not rise as entropy falls ({what} = {rise:.3g} <= 0)")
    elif fit.form != "exp_c" and np.isfinite(fit.a_ci[0]) and fit.a_ci[0] <= 0:
        serious.append(
            f"the rise of reward as entropy falls is not significant (a's 95% CI "
            f"[{fit.a_ci[0]:.3g}, {fit.a_ci[1]:.3g}] includes 0)"
        )
    noise = fit.noise
    if noise is None:
        if not fit.r2 >= MIN_R2:
            serious.append(
                f"poor fit (R^2 = {fit.r2:.2f} < {MIN_R2}; no noise level to judge the residuals by: "
                "pass val_size / --val-size)"
            )
    elif not noise.fits:
        serious.append("the law does not describe this run within the noise of the score: " + noise.text())
    elif not fit.r2 >= MIN_R2:
        notes.append(
            f"R^2 = {fit.r2:.2f} is low because the score varies little against its noise; the residuals "
            f"are within the noise ({noise.text()})"
        )
    if not np.all(np.isfinite(fit.ceiling_ci)):
        serious.append("the ceiling's uncertainty could not be estimated")
    else:
        width = fit.ceiling_ci[1] - fit.ceiling_ci[0]
        if fit.bootstrap is not None and np.all(np.isfinite(fit.bootstrap.ceiling_ci)):
            width = max(width, fit.bootstrap.ceiling_ci[1] - fit.bootstrap.ceiling_ci[0])
        if width > MAX_CEILING_WIDTH * scale:
            serious.append(f"the ceiling's 95% interval is {width:.3g} wide (> {MAX_CEILING_WIDTH * scale:.3g})")
    margin = max(0.25 * scale, float(np.ptp(R)))
    if fit.ceiling > R.max() + margin or fit.ceiling < R.min() - margin:
        serious.append(
            f"the ceiling {fit.ceiling:.3g} lies far outside the observed scores [{R.min():.3g}, {R.max():.3g}]"
        )
    elif R.min() >= 0 and R.max() <= 1 and fit.ceiling > 1.0 + 0.02:
        notes.append(f"the ceiling {fit.ceiling:.3g} exceeds 1, the largest possible accuracy")
    if H.min() > 2 * np.ptp(H):
        notes.append(
            f"the ceiling extrapolates from the lowest entropy {H.min():.3g} to 0, "
            f"beyond the observed range of {np.ptp(H):.3g} nats"
        )
    if fit.steps is not None and fit.n >= 8:
        e = fit.residuals
        dw = float(np.sum(np.diff(e) ** 2) / max(float(e @ e), 1e-300))
        if dw < AUTOCORR_DW:
            notes.append(
                f"residuals are autocorrelated over steps (Durbin-Watson {dw:.2f}): "
                "the intervals assume independent points and are too narrow"
            )
    if fit.loss != "linear":
        notes.append(f"robust loss {fit.loss}: standard errors are approximate")
    if fit.bootstrap is not None and np.all(np.isfinite(fit.ceiling_ci + fit.bootstrap.ceiling_ci)):
        ratio = np.ptp(fit.bootstrap.ceiling_ci) / max(float(np.ptp(fit.ceiling_ci)), 1e-300)
        if ratio > 1.5:
            notes.append(
                f"the bootstrap interval of the ceiling is {ratio:.1f}x as wide as the exact one: "
                "the noise is not the constant, independent noise the exact intervals assume"
            )
    if fit.bootstrap is not None and fit.bootstrap.n_used < fit.bootstrap.n_resamples:
        notes.append(f"bootstrap: {fit.bootstrap.n_resamples - fit.bootstrap.n_used} degenerate resample(s) dropped")
    return serious, notes


# --------------------------------------------------------------------------------------------------
# 6. LawFit and fit_law
# --------------------------------------------------------------------------------------------------


def _num(v: Any) -> Any:
    """JSON-safe number: float, or None for NaN/inf."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _arr(v: np.ndarray | None) -> list | None:
    return None if v is None else [_num(x) for x in np.asarray(v, dtype=float).ravel()]


def _ci(v: tuple[float, float] | None) -> list | None:
    return None if v is None else [_num(v[0]), _num(v[1])]


@dataclass
class BootstrapSummary:
    """Case-bootstrap percentile intervals (resampling points with replacement) for a, b, c and the ceiling."""

    n_resamples: int
    n_used: int
    a_ci: tuple[float, float]
    b_ci: tuple[float, float]
    ceiling_ci: tuple[float, float]
    a_se: float
    b_se: float
    ceiling_se: float
    c_ci: tuple[float, float] | None = None
    level: float = LEVEL
    draws: np.ndarray | None = field(default=None, repr=False)  # (n_used, k + 1): a, b[, c], ceiling

    def to_dict(self) -> dict:
        return {
            "n_resamples": self.n_resamples,
            "n_used": self.n_used,
            "level": self.level,
            "a_ci": _ci(self.a_ci),
            "b_ci": _ci(self.b_ci),
            "c_ci": _ci(self.c_ci),
            "ceiling_ci": _ci(self.ceiling_ci),
            "a_se": _num(self.a_se),
            "b_se": _num(self.b_se),
            "ceiling_se": _num(self.ceiling_se),
            "method": "case resampling, percentile intervals",
        }


@dataclass
class LawFit:
    """One fit of the law to one run: estimates, exact (or delta-method) uncertainty, fit statistics, verdict."""

    form: str
    a: float
    b: float
    a_stderr: float
    b_stderr: float
    a_ci: tuple[float, float]
    b_ci: tuple[float, float]
    ceiling: float  # R at H = 0: b - a (exp, exp_c), b (linear)
    ceiling_stderr: float
    ceiling_ci: tuple[float, float]
    r2: float
    rmse: float
    aic: float
    bic: float
    n: int
    loss: str
    covariance: np.ndarray = field(repr=False)
    residuals: np.ndarray = field(repr=False)
    H: np.ndarray = field(repr=False)
    R: np.ndarray = field(repr=False)
    steps: np.ndarray | None = field(default=None, repr=False)
    run: str | None = None
    c: float | None = None
    c_stderr: float | None = None
    c_ci: tuple[float, float] | None = None
    rss: float = math.nan
    dof: int = 0
    method: str = "closed-form least squares"
    bootstrap: BootstrapSummary | None = None
    noise: NoiseCheck | None = None
    warnings: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # the serious subset of warnings
    ok: bool = True

    @property
    def params(self) -> dict[str, float]:
        """The estimates by name: a, b (and c)."""
        return {name: float(v) for name, v in zip(PARAMS[self.form], self._theta)}

    @property
    def _theta(self) -> np.ndarray:
        return np.array([self.a, self.b] + ([self.c] if self.form == "exp_c" else []), dtype=float)

    @property
    def sigma(self) -> float:
        """Residual standard deviation sqrt(RSS / (n - k))."""
        return math.sqrt(self.rss / self.dof) if self.dof > 0 else math.nan

    def predict(
        self, H: Any, *, return_band: bool = False, interval: str = "confidence", level: float = LEVEL
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predicted score at entropies H; with return_band, also (lower, upper) of a `level` band.

        interval="confidence" bands the mean (exact t band for the linear-in-(a, b) forms, delta method for
        exp_c); interval="prediction" bands a new observation (adds the residual variance).
        """
        H = np.asarray(H, dtype=float)
        mean = _mean(self.form, H, self._theta)
        if not return_band:
            return mean
        if interval not in ("confidence", "prediction"):
            raise FitError(f"interval must be 'confidence' or 'prediction', not {interval!r}")
        G = _gradient(self.form, H.ravel(), self._theta)
        var = np.einsum("ij,jk,ik->i", G, self.covariance, G).reshape(H.shape)
        if interval == "prediction":
            var = var + self.sigma**2
        half = _t(self.dof, level) * np.sqrt(np.maximum(var, 0.0))
        return mean, mean - half, mean + half

    def __str__(self) -> str:
        terms = f"a={self.a:.4g}, b={self.b:.4g}" + (f", c={self.c:.4g}" if self.form == "exp_c" else "")
        status = "ok" if self.ok else "NOT TRUSTWORTHY: " + "; ".join(self.reasons)
        return (
            f"LawFit[{self.run or '-'}] {FORMS[self.form]}: {terms}; ceiling {self.ceiling:.4g} "
            f"[{self.ceiling_ci[0]:.4g}, {self.ceiling_ci[1]:.4g}], R^2={self.r2:.3f}, n={self.n} ({status})"
        )

    def report(self) -> str:
        """A text report in the spirit of lmfit's fit_report, with the ceiling and the verdict."""
        k = len(PARAMS[self.form])
        lines = ["[[Model]]", f"    {FORMS[self.form]}", f"    method: {self.method}"]
        if self.run:
            lines.append(f"    run: {self.run}")
        lines += [
            "[[Fit Statistics]]",
            f"    # data points      = {self.n}",
            f"    # variables        = {k}",
            f"    degrees of freedom = {self.dof}",
            f"    RSS                = {self.rss:.6g}",
            f"    RMSE               = {self.rmse:.6g}",
            f"    R-squared          = {self.r2:.6f}",
            f"    Akaike info crit   = {self.aic:.4f}",
            f"    Bayesian info crit = {self.bic:.4f}",
            f"    entropy range      = [{self.H.min():.4g}, {self.H.max():.4g}]",
            f"    score range        = [{self.R.min():.4g}, {self.R.max():.4g}]",
        ]
        if self.steps is not None:
            lines.append(f"    step range         = [{self.steps.min():g}, {self.steps.max():g}]")
        lines.append("[[Variables]]")
        cis = {"a": self.a_ci, "b": self.b_ci, "c": self.c_ci}
        ses = {"a": self.a_stderr, "b": self.b_stderr, "c": self.c_stderr}
        for name, value in self.params.items():
            lines.append(f"    {name}: {_pm(value, ses[name])}  95% CI [{cis[name][0]:.6g}, {cis[name][1]:.6g}]")
        corr = _correlations(self.covariance, PARAMS[self.form])
        if corr:
            lines.append("[[Correlations]]")
            lines += [f"    C({p}, {q}) = {r:+.4f}" for p, q, r in corr]
        what = "b" if self.form == "linear" else "b - a"
        lines += [
            "[[Ceiling]]",
            f"    R(H=0) = {what} = {_pm(self.ceiling, self.ceiling_stderr)}",
            f"    95% CI [{self.ceiling_ci[0]:.6g}, {self.ceiling_ci[1]:.6g}]",
        ]
        if self.bootstrap is not None:
            bs = self.bootstrap
            lines.append(
                f"    bootstrap ({bs.n_used} of {bs.n_resamples} resamples): 95% CI "
                f"[{bs.ceiling_ci[0]:.6g}, {bs.ceiling_ci[1]:.6g}], a [{bs.a_ci[0]:.4g}, {bs.a_ci[1]:.4g}], "
                f"b [{bs.b_ci[0]:.4g}, {bs.b_ci[1]:.4g}]"
            )
        if self.noise is not None:
            lines += ["[[Noise]]", f"    {self.noise.text()}"]
        lines.append("[[Verdict]]")
        if self.ok:
            lines.append("    the law describes this run; the ceiling is usable")
        else:
            lines.append("    ceiling not trustworthy: " + "; ".join(self.reasons))
        notes = [w for w in self.warnings if w not in self.reasons]
        lines += [f"    note: {w}" for w in notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """A JSON-serialisable summary (NaN and inf become None)."""
        return {
            "form": self.form,
            "formula": FORMS[self.form],
            "loss": self.loss,
            "method": self.method,
            "run": self.run,
            "n": self.n,
            "dof": self.dof,
            "params": {k: _num(v) for k, v in self.params.items()},
            "stderr": {"a": _num(self.a_stderr), "b": _num(self.b_stderr), "c": _num(self.c_stderr)},
            "ci95": {"a": _ci(self.a_ci), "b": _ci(self.b_ci), "c": _ci(self.c_ci)},
            "ceiling": _num(self.ceiling),
            "ceiling_stderr": _num(self.ceiling_stderr),
            "ceiling_ci": _ci(self.ceiling_ci),
            "r2": _num(self.r2),
            "rmse": _num(self.rmse),
            "rss": _num(self.rss),
            "aic": _num(self.aic),
            "bic": _num(self.bic),
            "covariance": [[_num(v) for v in row] for row in np.asarray(self.covariance)],
            "bootstrap": None if self.bootstrap is None else self.bootstrap.to_dict(),
            "noise": None if self.noise is None else self.noise.to_dict(),
            "ok": self.ok,
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
            "H": _arr(self.H),
            "R": _arr(self.R),
            "steps": _arr(self.steps),
            "residuals": _arr(self.residuals),
        }


def _pm(value: float, se: float | None) -> str:
    """'value +/- se (rel%)' as lmfit prints it."""
    if se is None or not np.isfinite(se):
        return f"{value:.6g} +/- (not estimated)"
    rel = f" ({100 * se / abs(value):.2f}%)" if value != 0 else ""
    return f"{value:.6g} +/- {se:.6g}{rel}"


def _correlations(cov: np.ndarray, names: tuple[str, ...]) -> list[tuple[str, str, float]]:
    sd = np.sqrt(np.diag(cov))
    if not np.all(np.isfinite(sd)) or np.any(sd == 0):
        return []
    r = cov / np.outer(sd, sd)
    return [(names[i], names[j], float(r[i, j])) for i in range(len(names)) for j in range(i + 1, len(names))]


def _information(rss: float, n: int, k: int) -> tuple[float, float]:
    """Gaussian AIC and BIC, n*log(RSS/n) + 2k (k*log n), the same for every form and loss."""
    ll = n * math.log(max(rss / n, 1e-300))
    return ll + 2 * k, ll + k * math.log(n)


def _summarise_bootstrap(form: str, draws: np.ndarray, B: int) -> BootstrapSummary:
    """Percentile intervals from the (B, k) parameter draws (NaN rows = degenerate resamples, dropped)."""
    draws = draws[np.all(np.isfinite(draws), axis=1)]
    ceiling = draws[:, 1] - (0.0 if form == "linear" else draws[:, 0])  # R(H=0) for each draw
    table = np.column_stack([draws, ceiling]) if len(draws) else np.empty((0, draws.shape[1] + 1))
    lo, hi = 100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2
    if len(table) >= 2:
        q = np.percentile(table, [lo, hi], axis=0)
        se = table.std(axis=0, ddof=1)
    else:
        q, se = np.full((2, table.shape[1]), np.nan), np.full(table.shape[1], np.nan)
    ci = [(float(q[0, j]), float(q[1, j])) for j in range(table.shape[1])]
    return BootstrapSummary(
        n_resamples=B,
        n_used=len(table),
        a_ci=ci[0],
        b_ci=ci[1],
        ceiling_ci=ci[-1],
        a_se=float(se[0]),
        b_se=float(se[1]),
        ceiling_se=float(se[-1]),
        c_ci=ci[2] if form == "exp_c" else None,
        draws=table,
    )


def fit_law(
    data: pd.DataFrame | None = None,
    *,
    H: Any = None,
    R: Any = None,
    steps: Any = None,
    form: str = "exp",
    loss: str = "linear",
    bootstrap: int = 0,
    seed: int = 0,
    run: str | None = None,
    val_size: int | None = None,
) -> LawFit:
    """Fit R = -a*exp(H) + b (or another `form`) to one run and judge whether the law describes it.

    data: a DataFrame of fit points (run, step, entropy, score) for one run (or pass run= to pick one), or None
    with H= and R= (and optionally steps=) arrays. form: "exp", "linear" or "exp_c". loss: "linear" (least
    squares; closed form for exp/linear) or "soft_l1"/"huber" (robust, via lmfit). bootstrap: number of
    case-bootstrap resamples (0 = none), vectorised for the closed-form fits. val_size: the number of
    validation problems behind each score; the verdict then judges the residuals against the binomial noise
    (without it, against the noise estimated from the score's own scatter; see `noise_check`).
    """
    if form not in FORMS:
        raise FitError(f"unknown form {form!r}; choose one of {list(FORMS)}")
    if loss not in LOSSES:
        raise FitError(f"unknown loss {loss!r}; choose one of {list(LOSSES)}")
    if bootstrap < 0:
        raise FitError(f"bootstrap must be >= 0 resamples, not {bootstrap}")
    pts = _points(data, H, R, steps, run)
    H, R = pts.H, pts.R
    k = len(PARAMS[form])
    _check_fittable(H, k, form)
    n, dof = len(H), len(H) - k

    closed = form != "exp_c" and loss == "linear"
    f_scale = 1.0
    if closed:
        theta, cov = _ols(_basis(form, H), R)
        method = "closed-form least squares (exact OLS in x = " + ("exp(H))" if form == "exp" else "H)")
    else:
        theta, cov, method, f_scale = _fit_lmfit(form, H, R, loss)
        if cov is None:
            cov = np.full((k, k), np.nan)
    resid = R - _mean(form, H, theta)
    rss = float(resid @ resid)
    tss = float(np.sum((R - R.mean()) ** 2))
    aic, bic = _information(rss, n, k)
    se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    tq = _t(dof)
    g0 = _gradient(form, np.zeros(1), theta)[0]
    ceiling = float(_mean(form, np.zeros(1), theta)[0])
    ceiling_se = float(math.sqrt(max(float(g0 @ cov @ g0), 0.0))) if np.all(np.isfinite(cov)) else math.nan

    def ci(v: float, s: float) -> tuple[float, float]:
        return (float(v - tq * s), float(v + tq * s))

    summary = None
    if bootstrap:
        rng = np.random.default_rng(seed)
        draws = np.vstack(
            [
                _ols_weighted(_basis(form, H), R, W) if closed else _bootstrap_loop(form, H, R, theta, loss, f_scale, W)
                for W in _resample_counts(n, int(bootstrap), rng)
            ]
        )
        summary = _summarise_bootstrap(form, draws, int(bootstrap))

    fit = LawFit(
        form=form,
        a=float(theta[0]),
        b=float(theta[1]),
        a_stderr=float(se[0]),
        b_stderr=float(se[1]),
        a_ci=ci(theta[0], se[0]),
        b_ci=ci(theta[1], se[1]),
        ceiling=ceiling,
        ceiling_stderr=ceiling_se,
        ceiling_ci=ci(ceiling, ceiling_se),
        r2=1.0 - rss / tss if tss > 0 else math.nan,
        rmse=math.sqrt(rss / n),
        aic=aic,
        bic=bic,
        n=n,
        loss=loss,
        covariance=cov,
        residuals=resid,
        H=H,
        R=R,
        steps=pts.steps,
        run=pts.run,
        c=float(theta[2]) if form == "exp_c" else None,
        c_stderr=float(se[2]) if form == "exp_c" else None,
        c_ci=ci(theta[2], se[2]) if form == "exp_c" else None,
        rss=rss,
        dof=dof,
        method=method,
        bootstrap=summary,
        noise=noise_check(R, resid, _gradient(form, H, theta), H=H, val_size=val_size),
    )
    serious, notes = _verdict(fit)
    fit.reasons, fit.warnings, fit.ok = serious, serious + notes, not serious
    return fit


# --------------------------------------------------------------------------------------------------
# 7. Forecast: fit on the early points, predict the rest from their entropy (and the reverse test)
# --------------------------------------------------------------------------------------------------


@dataclass
class Forecast:
    """The paper's prediction test: the law fitted on one window of steps predicts the held-out scores."""

    fit: LawFit
    reverse: bool
    fraction_label: str  # "15%" or "36 steps": the size of the fitting window
    cutoff: float  # the window's boundary step
    n_fit: int
    n_heldout: int
    rmse: float
    mae: float
    final_error: float  # predicted - actual at the held-out point farthest from the window
    coverage: float  # share of held-out scores inside the 95% prediction interval
    steps: np.ndarray = field(repr=False)
    H: np.ndarray = field(repr=False)
    actual: np.ndarray = field(repr=False)
    predicted: np.ndarray = field(repr=False)
    lower: np.ndarray = field(repr=False)
    upper: np.ndarray = field(repr=False)
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        side = "last" if self.reverse else "first"
        return (
            f"Forecast[{self.fit.run or '-'}] fit on the {side} {self.fraction_label} ({self.n_fit} points), "
            f"predict {self.n_heldout}: RMSE {self.rmse:.4g}, MAE {self.mae:.4g}, "
            f"{'first' if self.reverse else 'final'}-step error {self.final_error:+.4g}"
        )

    def report(self) -> str:
        side, end = ("last", "first") if self.reverse else ("first", "final")
        lines = [
            "[[Forecast]]",
            f"    fit on the {side} {self.fraction_label} of steps "
            f"({'>=' if self.reverse else '<='} {self.cutoff:g}): {self.n_fit} points",
            f"    predict the other {self.n_heldout} points from their entropy",
            f"    held-out RMSE      = {self.rmse:.6g}",
            f"    held-out MAE       = {self.mae:.6g}",
            f"    {end}-step error   = {self.final_error:+.6g}  (predicted - actual)",
            f"    95% PI coverage    = {self.coverage:.1%}",
        ]
        lines += [f"    note: {w}" for w in self.warnings]
        return "\n".join(lines) + "\n" + self.fit.report()

    def to_dict(self) -> dict:
        return {
            "reverse": self.reverse,
            "fraction_label": self.fraction_label,
            "cutoff": _num(self.cutoff),
            "n_fit": self.n_fit,
            "n_heldout": self.n_heldout,
            "rmse": _num(self.rmse),
            "mae": _num(self.mae),
            "final_error": _num(self.final_error),
            "coverage": _num(self.coverage),
            "warnings": list(self.warnings),
            "fit": self.fit.to_dict(),
            "steps": _arr(self.steps),
            "H": _arr(self.H),
            "actual": _arr(self.actual),
            "predicted": _arr(self.predicted),
            "lower": _arr(self.lower),
            "upper": _arr(self.upper),
        }


def forecast(
    data: pd.DataFrame | None = None,
    *,
    H: Any = None,
    R: Any = None,
    steps: Any = None,
    fit_first: float | None = 0.15,
    first_steps: int | None = None,
    reverse: bool = False,
    form: str = "exp",
    loss: str = "linear",
    run: str | None = None,
    val_size: int | None = None,
) -> Forecast:
    """Fit the law on the points in the first `fit_first` fraction of the step range (or the first
    `first_steps` step numbers), predict the remaining scores from their entropy, and score the prediction.

    reverse=True fits on the last fraction and predicts the early points. The window is
    step <= min + f*(max - min) (reverse: step >= max - f*(max - min)); with first_steps=N it is
    step < min + N (reverse: step > max - N); first_steps, when given, overrides fit_first. Fewer than 3
    points in the window: the first (last) 3 points are used, with a warning.
    """
    pts = _points(data, H, R, steps, run)
    if pts.steps is None:
        raise FitError("a forecast needs the step of every point (column 'step' or steps=)")
    s, lo, hi = pts.steps, pts.steps.min(), pts.steps.max()
    if first_steps is not None:
        if first_steps < 1:
            raise FitError(f"first_steps must be >= 1, not {first_steps}")
        cutoff = hi - first_steps if reverse else lo + first_steps
        mask = s > cutoff if reverse else s < cutoff
        label = f"{first_steps} steps"
        cutoff = cutoff + 1 if reverse else cutoff - 1  # report the inclusive bound
    elif fit_first is not None:
        if not 0 < fit_first < 1:
            raise FitError(f"fit_first must be a fraction in (0, 1), not {fit_first}")
        cutoff = hi - fit_first * (hi - lo) if reverse else lo + fit_first * (hi - lo)
        mask = s >= cutoff if reverse else s <= cutoff
        label = f"{100 * fit_first:g}%"
    else:
        raise FitError("give fit_first (a fraction of the steps) or first_steps (a number of steps)")
    warnings: list[str] = []
    if mask.sum() < MIN_POINTS:
        side = "last" if reverse else "first"
        warnings.append(
            f"only {int(mask.sum())} point(s) in the {side} {label} of steps: "
            f"fitted on the {side} {MIN_POINTS} points instead"
        )
        mask = np.zeros(len(s), bool)
        mask[slice(-MIN_POINTS, None) if reverse else slice(0, MIN_POINTS)] = True
        cutoff = float(s[mask].min() if reverse else s[mask].max())
    if mask.all():
        raise FitError(f"the fitting window ({label}) holds all {len(s)} points: nothing left to predict")
    try:
        fit = fit_law(H=pts.H[mask], R=pts.R[mask], steps=s[mask], form=form, loss=loss, run=pts.run, val_size=val_size)
    except FitError as err:
        raise FitError(f"forecast window ({label}, {int(mask.sum())} points): {err}") from None
    held = ~mask
    pred, pi_lo, pi_hi = fit.predict(pts.H[held], return_band=True, interval="prediction")
    err = pred - pts.R[held]
    far = 0 if reverse else -1
    return Forecast(
        fit=fit,
        reverse=reverse,
        fraction_label=label,
        cutoff=float(cutoff),
        n_fit=int(mask.sum()),
        n_heldout=int(held.sum()),
        rmse=float(np.sqrt(np.mean(err**2))),
        mae=float(np.mean(np.abs(err))),
        final_error=float(err[far]),
        coverage=float(np.mean((pts.R[held] >= pi_lo) & (pts.R[held] <= pi_hi))),
        steps=s[held],
        H=pts.H[held],
        actual=pts.R[held],
        predicted=pred,
        lower=pi_lo,
        upper=pi_hi,
        warnings=warnings + [f"fit: {w}" for w in fit.reasons],
    )


# --------------------------------------------------------------------------------------------------
# 8. Several runs: one fit each, or one (a, b) shared by all (extra-sum-of-squares F-test)
# --------------------------------------------------------------------------------------------------


def _split_runs(points: pd.DataFrame) -> dict[str, pd.DataFrame]:
    if not isinstance(points, pd.DataFrame) or "run" not in points.columns:
        raise FitError("expected a DataFrame of fit points with a 'run' column (entropylab.logs.points())")
    return {str(name): group for name, group in points.groupby("run", sort=False)}


def fit_runs(points: pd.DataFrame, *, errors: str = "raise", **kw: Any) -> dict[str, LawFit]:
    """One `fit_law` per run (keyword arguments passed on). errors="skip" leaves out runs that cannot be fitted."""
    if errors not in ("raise", "skip"):
        raise FitError(f"errors must be 'raise' or 'skip', not {errors!r}")
    fits: dict[str, LawFit] = {}
    for name, group in _split_runs(points).items():
        try:
            fits[name] = fit_law(group, **kw)
        except FitError as err:
            if errors == "raise":
                raise FitError(f"run {name!r}: {err}") from None
    return fits


@dataclass
class SharedFit:
    """Does one (a, b) describe all runs? Shared fit vs separate per-run fits, nested F-test and AIC."""

    form: str
    runs: list[str]
    n: int
    shared: LawFit
    separate: dict[str, LawFit]
    rss_shared: float
    rss_separate: float
    df_num: int  # 2k - 2 extra parameters of the separate model
    df_den: int  # n - 2k residual dof of the separate model
    f_stat: float
    p_value: float
    aic_shared: float
    aic_separate: float
    alpha: float = 0.05

    @property
    def same(self) -> bool:
        """True when the data do not reject one shared (a, b) at level alpha."""
        return bool(self.p_value >= self.alpha)

    @property
    def verdict(self) -> str:
        tail = (
            f"(F = {self.f_stat:.3g} on {self.df_num}, {self.df_den} dof; "
            f"AIC shared {self.aic_shared:.1f} vs separate {self.aic_separate:.1f})"
        )
        if self.same:
            return f"sharing (a, b) fits as well: p={self.p_value:.2g} {tail}"
        return f"runs differ: p={self.p_value:.2g} {tail}"

    def __str__(self) -> str:
        return f"SharedFit[{len(self.runs)} runs, n={self.n}] {self.verdict}"

    def report(self) -> str:
        lines = [
            "[[Shared law]]",
            f"    {FORMS[self.form]} across {len(self.runs)} runs, {self.n} points",
            f"    shared:   a = {_pm(self.shared.a, self.shared.a_stderr)}, "
            f"b = {_pm(self.shared.b, self.shared.b_stderr)}, ceiling {self.shared.ceiling:.4g}, "
            f"RSS {self.rss_shared:.6g}, AIC {self.aic_shared:.2f}",
            f"    separate: RSS {self.rss_separate:.6g}, AIC {self.aic_separate:.2f}",
        ]
        for name, fit in self.separate.items():
            lines.append(
                f"      {name}: a = {fit.a:.4g}, b = {fit.b:.4g}, ceiling {fit.ceiling:.4g}, "
                f"n = {fit.n}{'' if fit.ok else '  (not trustworthy)'}"
            )
        lines += [
            "[[F-test]]",
            f"    F = {self.f_stat:.6g} on ({self.df_num}, {self.df_den}) dof, p = {self.p_value:.3g}",
            "[[Verdict]]",
            f"    {self.verdict}",
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "form": self.form,
            "runs": list(self.runs),
            "n": self.n,
            "rss_shared": _num(self.rss_shared),
            "rss_separate": _num(self.rss_separate),
            "df_num": self.df_num,
            "df_den": self.df_den,
            "f_stat": _num(self.f_stat),
            "p_value": _num(self.p_value),
            "aic_shared": _num(self.aic_shared),
            "aic_separate": _num(self.aic_separate),
            "alpha": self.alpha,
            "same": self.same,
            "verdict": self.verdict,
            "shared": self.shared.to_dict(),
            "separate": {k: v.to_dict() for k, v in self.separate.items()},
        }


def fit_shared(points: pd.DataFrame, form: str = "exp", *, alpha: float = 0.05) -> SharedFit:
    """Fit one (a, b) to all runs and separate (a_i, b_i) per run; compare them with an F-test and AIC.

    Both models are linear in their parameters (form "exp" or "linear"), nested (2 vs 2k parameters), and
    assume one noise level shared by all runs.
    """
    if form not in ("exp", "linear"):
        raise FitError(f"the shared-fit F-test needs a form linear in (a, b): 'exp' or 'linear', not {form!r}")
    groups = _split_runs(points)
    if len(groups) < 2:
        raise FitError(f"a shared fit needs at least 2 runs, found {len(groups)}")
    separate = {}
    for name, group in groups.items():
        try:
            separate[name] = fit_law(group, form=form)
        except FitError as err:
            raise FitError(f"run {name!r}: {err}") from None
    H = np.concatenate([f.H for f in separate.values()])
    R = np.concatenate([f.R for f in separate.values()])
    shared = fit_law(H=H, R=R, form=form, run="shared")
    k, n = len(separate), len(H)
    rss_sep = float(sum(f.rss for f in separate.values()))
    df_num, df_den = 2 * k - 2, n - 2 * k
    if df_den <= 0:
        raise FitError(f"{n} points for {k} runs leave no degrees of freedom for the separate fits")
    if rss_sep > 0:
        f_stat = max(shared.rss - rss_sep, 0.0) / df_num / (rss_sep / df_den)
        p = float(special.fdtrc(df_num, df_den, f_stat))
    else:
        f_stat, p = (math.inf, 0.0) if shared.rss > 0 else (0.0, 1.0)
    return SharedFit(
        form=form,
        runs=list(separate),
        n=n,
        shared=shared,
        separate=separate,
        rss_shared=shared.rss,
        rss_separate=rss_sep,
        df_num=df_num,
        df_den=df_den,
        f_stat=f_stat,
        p_value=p,
        aic_shared=_information(shared.rss, n, 2)[0],
        aic_separate=_information(rss_sep, n, 2 * k)[0],
        alpha=alpha,
    )


# --------------------------------------------------------------------------------------------------
# 9. Model comparison across forms
# --------------------------------------------------------------------------------------------------

COMPARED = (("exp", "linear"), ("linear", "linear"), ("exp_c", "linear"), ("exp", "soft_l1"))


def compare_forms(
    data: pd.DataFrame | None = None, *, H: Any = None, R: Any = None, steps: Any = None, run: str | None = None
) -> pd.DataFrame:
    """Fit every form (and the robust exp fit) to one run; one row each, sorted by AIC, with Akaike weights.

    AIC = n*log(RSS/n) + 2k uses squared residuals for every row, so a robust fit (which does not minimise
    them) always looks a little worse than its least-squares twin; it is there to show how much the estimates
    move when outliers are down-weighted.
    """
    pts = _points(data, H, R, steps, run)
    rows = []
    for form, loss in COMPARED:
        name = form if loss == "linear" else f"{form} ({loss})"
        try:
            fit = fit_law(H=pts.H, R=pts.R, steps=pts.steps, form=form, loss=loss, run=pts.run)
        except FitError as err:
            rows.append({"model": name, "form": form, "loss": loss, "k": len(PARAMS[form]), "note": str(err)})
            continue
        rows.append(
            {
                "model": name,
                "form": form,
                "loss": loss,
                "k": len(PARAMS[form]),
                "params": ", ".join(f"{p}={v:.4g}" for p, v in fit.params.items()),
                "ceiling": fit.ceiling,
                "r2": fit.r2,
                "rmse": fit.rmse,
                "aic": fit.aic,
                "bic": fit.bic,
                "ok": fit.ok,
                "note": "; ".join(fit.reasons),
            }
        )
    table = pd.DataFrame(rows)
    for col in ("params", "ceiling", "r2", "rmse", "aic", "bic", "ok"):
        if col not in table:
            table[col] = np.nan
    delta = table["aic"] - table["aic"].min()
    weight = np.exp(-0.5 * delta)
    table["delta_aic"] = delta
    table["weight"] = weight / weight.sum()
    cols = [
        "model",
        "form",
        "loss",
        "k",
        "params",
        "ceiling",
        "r2",
        "rmse",
        "aic",
        "bic",
        "delta_aic",
        "weight",
        "ok",
        "note",
    ]
    return table[cols].sort_values("aic", na_position="last").reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# 10. The law while a run trains: one forecast per new validation point, alarms, the forecast's history
# --------------------------------------------------------------------------------------------------

COLLAPSE_SHARE = 0.1  # entropy below this share of its first value: near collapse
REBOUND_SHARE = 0.25  # entropy back up by this share of its fall from the first value: rebounding
BREAK_POINTS = 5  # the newest residuals that must not sit on one side of the fit beyond the noise
BREAK_Z = 2.58  # ... by more than this many standard errors (two-sided 1%)
REACHED_SIGMAS = 1.0  # headroom below this many noise sds: the ceiling is reached within noise


def headroom(fit: LawFit, entropy: float) -> float:
    """The gain the law still predicts: ceiling - R(H) at the current entropy (a*(exp(H) - 1) for the exp form)."""
    return float(fit.ceiling - fit.predict(np.array([float(entropy)]))[0])


def alarms(fit: LawFit | None, H: Any, steps: Any = None, *, noise_sd: float | None = None) -> list[str]:
    """Plain-language alarms for a run in progress: entropy near collapse or rebounding (from the entropy series
    H, oldest first), the law breaking (its newest residuals on one side beyond the noise), the ceiling reached
    within noise. `fit` may be None (no fit yet): then only the entropy alarms."""
    out: list[str] = []
    H = np.asarray(H, dtype=float)
    H = H[np.isfinite(H)]
    if len(H) >= 2:
        first, low, now = float(H[0]), float(H.min()), float(H[-1])
        if first > 0 and now <= COLLAPSE_SHARE * first:
            out.append(f"entropy near collapse: {now:.3g} nats, {now / first:.0%} of its first value {first:.3g}")
        fall = first - low
        if fall > 0 and now - low >= REBOUND_SHARE * fall and now > low:
            out.append(
                f"entropy rebounding: up from {low:.3g} to {now:.3g} nats ({(now - low) / fall:.0%} of its fall)"
            )
    if fit is None:
        return out
    sd = noise_sd if noise_sd is not None else (fit.noise.sigma if fit.noise is not None else fit.sigma)
    if fit.n >= BREAK_POINTS + 3 and sd and np.isfinite(sd) and sd > 0:
        last = fit.residuals[-BREAK_POINTS:]
        z = float(np.mean(last) / (sd / math.sqrt(BREAK_POINTS)))
        if abs(z) > BREAK_Z:
            side = "above" if z > 0 else "below"
            out.append(
                f"the law is breaking: the last {BREAK_POINTS} scores sit {side} the fit by "
                f"{abs(float(np.mean(last))):.3g} on average ({abs(z):.1f} standard errors of the noise)"
            )
    if fit.ok and sd and np.isfinite(sd):
        room = headroom(fit, float(fit.H[-1]))
        if room < REACHED_SIGMAS * sd:
            out.append(
                f"ceiling reached within noise: {room:+.3g} left to the ceiling {fit.ceiling:.3g}, "
                f"less than the score's noise ({sd:.3g})"
            )
    return out


def verdict_line(fit: LawFit) -> str:
    """The verdict in a few words: ok, or the serious reasons without their details (the report has them)."""
    if fit.ok:
        return "ok"
    reasons = []
    for reason in fit.reasons:
        head = reason.split(": ")[0]
        if fit.noise is not None and "within the noise" in reason:
            head += f" (residuals {fit.noise.ratio:.1f}x the noise, lack-of-fit p = {fit.noise.p_value:.2g})"
        reasons.append(head)
    return "not trustworthy: " + "; ".join(reasons)


def live_forecast(
    points: pd.DataFrame | None = None,
    *,
    H: Any = None,
    R: Any = None,
    steps: Any = None,
    val_size: int | None = None,
    previous: LawFit | None = None,
    entropy_series: Any = None,
    run: str | None = None,
) -> tuple[dict, LawFit | None]:
    """The forecast after a new validation point: a JSON-ready record and the fit (None below 3 points).

    The record: step, n, score and entropy of the newest point, ceiling with its 95% interval (`ceiling_low`,
    `ceiling_high`), `headroom` (the gain left at the current entropy), `last_error` (what the previous fit
    predicted for the newest point, minus its score), the verdict (`ok`, `verdict` in a few words, `reasons` in
    full), the lack-of-fit p-value
    and the alarms. `entropy_series` (every logged entropy, oldest first) feeds the entropy alarms.
    """
    pts = _points(points, H, R, steps, run)
    order_steps = pts.steps if pts.steps is not None else np.arange(len(pts.H), dtype=float)
    record: dict[str, Any] = {"run": pts.run, "step": None, "n": int(len(pts.H))}
    if len(pts.H):
        record.update(step=_num(order_steps[-1]), score=_num(pts.R[-1]), entropy=_num(pts.H[-1]))
    if previous is not None and len(pts.H):
        record["last_error"] = _num(float(previous.predict(pts.H[-1:])[0] - pts.R[-1]))
    else:
        record["last_error"] = None
    series = pts.H if entropy_series is None else np.asarray(entropy_series, dtype=float)
    try:
        fit = fit_law(H=pts.H, R=pts.R, steps=pts.steps, run=pts.run, val_size=val_size)
    except FitError as err:
        record.update(
            ceiling=None,
            ceiling_low=None,
            ceiling_high=None,
            headroom=None,
            a=None,
            b=None,
            ok=False,
            verdict=f"no fit yet: {err}",
            reasons=[],
            lack_of_fit_p=None,
            alarms=alarms(None, series),
        )
        return record, None
    record.update(
        ceiling=_num(fit.ceiling),
        ceiling_low=_num(fit.ceiling_ci[0]),
        ceiling_high=_num(fit.ceiling_ci[1]),
        headroom=_num(headroom(fit, float(pts.H[-1]))),
        a=_num(fit.a),
        b=_num(fit.b),
        ok=fit.ok,
        verdict=verdict_line(fit),
        reasons=list(fit.reasons),
        lack_of_fit_p=None if fit.noise is None else _num(fit.noise.p_value),
        alarms=alarms(fit, series, noise_sd=None),
    )
    return record, fit


#: The keys the trainers log at each evaluation (TRL's callback, entropylab's trainer).
LAW_KEYS = ("law/ceiling", "law/ceiling_low", "law/ceiling_high", "law/headroom")


class LiveLaw:
    """Accumulates (step, entropy, score) points during training and refits the law at each new one.

    `update` returns the `law/*` metrics to log (empty below 3 points). Torch-free: the trainers call it.
    """

    def __init__(self, *, val_size: int | None = None) -> None:
        self.val_size = val_size
        self.steps: list[float] = []
        self.H: list[float] = []
        self.R: list[float] = []
        self.fit: LawFit | None = None
        self.record: dict = {}

    def update(self, step: float, entropy: float, score: float) -> dict[str, float]:
        """Add one validation point (non-finite values are ignored) and return the `law/*` metrics."""
        if not (math.isfinite(float(entropy)) and math.isfinite(float(score))):
            return {}
        self.steps.append(float(step))
        self.H.append(float(entropy))
        self.R.append(float(score))
        self.record, fit = live_forecast(
            H=self.H, R=self.R, steps=self.steps, val_size=self.val_size, previous=self.fit
        )
        self.fit = fit if fit is not None else self.fit
        if fit is None:
            return {}
        return {
            key: float(self.record[name])
            for key, name in zip(LAW_KEYS, ("ceiling", "ceiling_low", "ceiling_high", "headroom"))
            if self.record[name] is not None
        }


def forecast_history(
    points: pd.DataFrame | None = None,
    *,
    H: Any = None,
    R: Any = None,
    steps: Any = None,
    val_size: int | None = None,
    min_points: int = MIN_POINTS,
    run: str | None = None,
) -> pd.DataFrame:
    """Replay a finished run: at each validation point, what the law fitted on the points so far predicted.

    One row per prefix of at least `min_points` points: `step`, `n`, `ceiling` with `ceiling_low/high` (95%),
    `final_pred` with `final_low/high` (the 95% prediction interval of the score at the run's final entropy),
    `final_actual` (the last score), `ok` (the verdict then). `attrs` hold the run's final ceiling.
    """
    pts = _points(points, H, R, steps, run)
    if pts.steps is None:
        raise FitError("a forecast history needs the step of every point (column 'step' or steps=)")
    rows = []
    h_final, r_final = pts.H[-1:], float(pts.R[-1])
    for k in range(max(min_points, MIN_POINTS), len(pts.H) + 1):
        try:
            fit = fit_law(H=pts.H[:k], R=pts.R[:k], steps=pts.steps[:k], val_size=val_size, run=pts.run)
        except FitError:
            continue
        pred, lo, hi = fit.predict(h_final, return_band=True, interval="prediction")
        rows.append(
            {
                "step": float(pts.steps[k - 1]),
                "n": k,
                "ceiling": fit.ceiling,
                "ceiling_low": fit.ceiling_ci[0],
                "ceiling_high": fit.ceiling_ci[1],
                "final_pred": float(pred[0]),
                "final_low": float(lo[0]),
                "final_high": float(hi[0]),
                "final_actual": r_final,
                "ok": fit.ok,
            }
        )
    out = pd.DataFrame(
        rows,
        columns=[
            "step",
            "n",
            "ceiling",
            "ceiling_low",
            "ceiling_high",
            "final_pred",
            "final_low",
            "final_high",
            "final_actual",
            "ok",
        ],
    )
    out.attrs.update(run=pts.run, first_step=float(pts.steps[0]), last_step=float(pts.steps[-1]))
    return out


def reliable_from(history: pd.DataFrame, tol: float = 0.02) -> dict[str, float | None]:
    """The first replayed step from which every later prediction stays within `tol` of the end: the final score
    (`final_step`) and the full-run ceiling (`ceiling_step`), with each as a share of the run's steps."""
    out: dict[str, float | None] = {}
    if history.empty:
        return {"final_step": None, "final_share": None, "ceiling_step": None, "ceiling_share": None}
    first, last = history.attrs.get("first_step", 0.0), history.attrs.get("last_step", history["step"].iloc[-1])
    span = max(float(last) - float(first), 1e-300)
    for name, err in (
        ("final", history["final_pred"] - history["final_actual"]),
        ("ceiling", history["ceiling"] - history["ceiling"].iloc[-1]),
    ):
        bad = np.flatnonzero(~(np.abs(err.to_numpy()) <= tol))
        i = 0 if len(bad) == 0 else int(bad[-1]) + 1
        step = float(history["step"].iloc[i]) if i < len(history) else None
        out[f"{name}_step"] = step
        out[f"{name}_share"] = None if step is None else (step - float(first)) / span
    return out
