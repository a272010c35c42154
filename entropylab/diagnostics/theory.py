"""Does the covariance predict the entropy change? The one-step theory of Cui et al. (2025) checked on a run.

For a softmax policy, one update of the logits by dz changes the entropy by ``dH ≈ -Cov_{a~pi}(log pi, dz)``.
Natural policy gradient (``dz = eta*A``) gives ``dH ≈ -eta*Cov(log pi, A)``; vanilla policy gradient
(``dz = eta*pi*A``) gives ``dH ≈ -eta*Cov(log pi, pi*A)``. Here Cov is estimated per step as the mean over
the dumped tokens of the centred product (scope "batch" or "micro", as in `covariance`), eta is the
learning rate from the metrics (or a given constant), and the measured change is, in order of preference:
the entropy of the step's own tokens after its update minus before (``entropy/after_update`` and
``entropy/before_update``, logged by entropylab's trainer on dump steps), ``entropy(step+1) - entropy(step)``
from metrics.jsonl (other logs; noisy, since each step draws new prompts), or the change of the dump's mean
token entropy between consecutive dumped steps.

The scale is only approximate: an LM's learning rate is not a step in logit space, and the batch covariance
mixes states. So the headline is the correlation (Pearson, Spearman) and the sign agreement between
predicted and measured change; a least-squares scale factor (measured ≈ scale * predicted) is reported too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from entropylab.diagnostics.covariance import step_arrays

#: Metric keys of the entropy of a step's own tokens before and after that step's update (entropylab's trainer
#: logs them on dump steps): the change the theory predicts, free of the prompt-to-prompt noise of H(t+1) - H(t).
UPDATE_BEFORE, UPDATE_AFTER = "entropy/before_update", "entropy/after_update"

FORMS: dict[str, str] = {"npg": "natural PG: -eta*Cov(log pi, A)", "pg": "vanilla PG: -eta*Cov(log pi, pi*A)"}


@dataclass
class TheoryCheck:
    """Predicted against measured entropy change per dumped step, and how well they agree.

    `frame` columns: step, n_tokens, cov_npg, cov_pg, eta, predicted_npg, predicted_pg, measured.
    `correlations` is indexed by form ("npg", "pg") with columns n, pearson, spearman, sign_agreement, scale.
    `measured_source` is "update", "metrics", "dump" or "none"; `eta_source` is "metrics", "constant" or "unit"
    (no learning rate known: predictions are in units of eta).
    """

    frame: pd.DataFrame
    correlations: pd.DataFrame
    measured_source: str
    eta_source: str


def step_covariances(dump_df: pd.DataFrame, scope: str = "batch") -> pd.DataFrame:
    """Per step: n_tokens, cov_npg = mean centred product of (logp, A), cov_pg = of (logp, pi*A), mean entropy."""
    rows = [
        (step, cov.size, float(cov.mean()) if cov.size else math.nan, float(cov_pg.mean()) if cov_pg.size else math.nan)
        for step, cov, cov_pg in step_arrays(dump_df, scope, with_pg=True)
    ]
    out = pd.DataFrame(rows, columns=["step", "n_tokens", "cov_npg", "cov_pg"])
    if "entropy" in dump_df.columns:
        ent = dump_df.groupby("step", sort=True)["entropy"].mean()
        out["dump_entropy"] = out["step"].map(ent).astype(float)
    return out.astype({"step": np.int64, "n_tokens": np.int64})


def _next_step_change(steps: np.ndarray, series: pd.Series) -> np.ndarray:
    """series(step+1) - series(step) for each step; NaN where either is missing."""
    s = series.dropna()
    now = s.reindex(steps).to_numpy(dtype=float)
    nxt = s.reindex(steps + 1).to_numpy(dtype=float)
    return nxt - now


def agreement(predicted, measured) -> dict[str, float]:
    """n, Pearson r, Spearman rho, sign agreement and the least-squares scale (measured ≈ scale*predicted).

    Only pairs where both are finite count; correlations need at least 3 pairs and some spread (else NaN).
    """
    p = np.asarray(predicted, dtype=float)
    m = np.asarray(measured, dtype=float)
    ok = np.isfinite(p) & np.isfinite(m)
    p, m = p[ok], m[ok]
    n = int(p.size)
    out = {"n": n, "pearson": math.nan, "spearman": math.nan, "sign_agreement": math.nan, "scale": math.nan}
    if n == 0:
        return out
    out["sign_agreement"] = float(np.mean(np.sign(p) == np.sign(m)))
    pp = float(np.dot(p, p))
    if pp > 0:
        out["scale"] = float(np.dot(p, m) / pp)
    if n >= 3 and np.ptp(p) > 0 and np.ptp(m) > 0:
        out["pearson"] = float(np.corrcoef(p, m)[0, 1])
        rp = pd.Series(p).rank().to_numpy()
        rm = pd.Series(m).rank().to_numpy()
        if np.ptp(rp) > 0 and np.ptp(rm) > 0:
            out["spearman"] = float(np.corrcoef(rp, rm)[0, 1])
    return out


def entropy_change_check(
    dump_df: pd.DataFrame,
    metrics: pd.DataFrame | None = None,
    *,
    lr: float | None = None,
    scope: str = "batch",
    entropy_key: str = "entropy",
    lr_key: str = "lr",
) -> TheoryCheck:
    """Predicted (both forms) against measured entropy change for every dumped step.

    `metrics` is the run's per-step metrics (a `step` column plus `entropy_key` and `lr_key`); `lr`, when
    given, overrides the logged learning rate.
    """
    frame = step_covariances(dump_df, scope)
    steps = frame["step"].to_numpy()
    m = None
    if metrics is not None and len(metrics) and "step" in metrics.columns:
        m = metrics.drop_duplicates("step", keep="last").set_index("step")

    if lr is not None:
        eta, eta_source = np.full(len(frame), float(lr)), "constant"
    elif m is not None and lr_key in m.columns and m[lr_key].notna().any():
        eta = pd.to_numeric(m[lr_key], errors="coerce").reindex(steps).to_numpy(dtype=float)
        eta_source = "metrics"
    else:
        eta, eta_source = np.ones(len(frame)), "unit"
    frame["eta"] = eta
    frame["predicted_npg"] = -frame["eta"] * frame["cov_npg"]
    frame["predicted_pg"] = -frame["eta"] * frame["cov_pg"]

    if m is not None and {UPDATE_BEFORE, UPDATE_AFTER} <= set(m.columns) and m[UPDATE_AFTER].notna().any():
        after = pd.to_numeric(m[UPDATE_AFTER], errors="coerce").reindex(steps).to_numpy(dtype=float)
        before = pd.to_numeric(m[UPDATE_BEFORE], errors="coerce").reindex(steps).to_numpy(dtype=float)
        measured, source = after - before, "update"
    elif m is not None and entropy_key in m.columns and m[entropy_key].notna().any():
        measured = _next_step_change(steps, pd.to_numeric(m[entropy_key], errors="coerce"))
        source = "metrics"
    elif "dump_entropy" in frame.columns:
        measured = _next_step_change(steps, frame.set_index("step")["dump_entropy"])
        source = "dump"
    else:
        measured, source = np.full(len(frame), math.nan), "none"
    frame["measured"] = measured

    corr = pd.DataFrame({form: agreement(frame[f"predicted_{form}"], frame["measured"]) for form in FORMS}).T
    corr["n"] = corr["n"].astype(int)
    corr.index.name = "form"
    return TheoryCheck(frame=frame, correlations=corr, measured_source=source, eta_source=eta_source)
