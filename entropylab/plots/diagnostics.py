"""Figures of the covariance diagnostics: Table 1 over training, and predicted against measured entropy change."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from entropylab.plots.style import _placeholder, apply_style, colors, save_figure

COV_UNITS = "nats × advantage"


def _linthresh(values: np.ndarray) -> float:
    """A symlog linear range just below the smallest non-zero magnitude worth resolving (at least 1e-6)."""
    mags = np.abs(values[np.isfinite(values)])
    mags = mags[mags > 0]
    if mags.size == 0:
        return 1e-3
    return float(max(np.percentile(mags, 5) / 2, 1e-6))


def plot_covariance_quantiles(table: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Mean covariance of the top-q tokens and of all tokens against training step (symlog y: can be < 0)."""
    ax = ax or plt.subplots(figsize=(5.6, 3.8))[1]
    value_cols = [c for c in table.columns if c.startswith("top ")] + ["all"]
    for col, color in zip(value_cols, colors(len(value_cols))):
        style = dict(ls="--", lw=1.4) if col == "all" else dict(lw=1.6, marker="o", ms=3)
        label = "all tokens" if col == "all" else f"{col} tokens"
        ax.plot(table["step"], table[col], color=color, label=label, **style)
    values = table[value_cols].to_numpy(dtype=float).ravel()
    values = values[np.isfinite(values)]
    if values.size and np.all(values > 0):
        ax.set_yscale("log")
        scale = "log"
    else:
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_yscale("symlog", linthresh=_linthresh(values))
        scale = "symlog"
    ax.set_xlabel("training step")
    ax.set_ylabel(f"mean covariance ({COV_UNITS}, {scale})")
    ax.set_title("Table 1 over training: a few tokens carry the covariance")
    ax.legend(loc="best", ncol=2)
    return ax


def _span(values: np.ndarray) -> tuple[float, float]:
    """Axis limits covering `values` and 0, padded by 8%."""
    both = np.r_[values, 0.0]
    lo, hi = float(both.min()), float(both.max())
    pad = 0.08 * (hi - lo) or 1.0
    return lo - pad, hi + pad


def _power_of_ten(values: np.ndarray) -> int:
    """Exponent that brings the largest |value| into [1, 1000); 0 when it already lies in [0.01, 1000)."""
    top = float(np.max(np.abs(values))) if len(values) else 0.0
    if not np.isfinite(top) or top == 0.0 or 0.01 <= top < 1000:
        return 0
    return int(np.floor(np.log10(top)))


def _unit(exponent: int) -> str:
    """'nats per token', prefixed by the power of ten the axis values were divided by."""
    return "nats per token" if exponent == 0 else f"10$^{{{exponent}}}$ nats per token"


def plot_entropy_change_scatter(
    frame: pd.DataFrame, correlations: pd.DataFrame, form: str = "npg", ax: plt.Axes | None = None
) -> plt.Axes:
    """Measured against predicted entropy change per step, each on its own axis, with the fitted scale.

    The theory's eta is a step in logit space, which an LM's learning rate is not, so predictions and
    measurements differ in size by orders of magnitude; what is tested is their correlation and sign.
    """
    ax = ax or plt.subplots(figsize=(4.6, 4.0))[1]
    pred, meas = frame[f"predicted_{form}"].to_numpy(float), frame["measured"].to_numpy(float)
    ok = np.isfinite(pred) & np.isfinite(meas)
    ex, ey = _power_of_ten(pred[ok]), _power_of_ten(meas[ok])  # the power goes into the axis label
    px, py = pred / 10.0**ex, meas / 10.0**ey
    c_pts, c_fit = colors(2)
    row = correlations.loc[form]
    ax.scatter(
        px[ok],
        py[ok],
        s=18,
        color=c_pts,
        alpha=0.8,
        edgecolor="none",
        label=f"steps (n={int(row['n'])}): Pearson r={row['pearson']:.2f}, Spearman ρ={row['spearman']:.2f}",
    )
    if ok.any():
        xlim, ylim = _span(px[ok]), _span(py[ok])
        if np.isfinite(row["scale"]):
            grid = np.array(xlim)
            ax.plot(
                grid,
                row["scale"] * 10.0 ** (ex - ey) * grid,
                color=c_fit,
                lw=1.2,
                label=f"measured = {row['scale']:.3g} × predicted (least squares)",
            )
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.xaxis.set_major_locator(MaxNLocator(5))  # room for labels like -1.75 on a narrow panel
    ax.axhline(0, color="0.7", lw=0.6)
    ax.axvline(0, color="0.7", lw=0.6)
    formula = "−η·Cov(log π, A)" if form == "npg" else "−η·Cov(log π, π·A)"
    ax.set_xlabel(f"predicted ΔH = {formula} ({_unit(ex)})")
    ax.set_ylabel(f"measured ΔH ({_unit(ey)})")
    ax.set_title("Entropy change: theory against the run")
    ax.legend(loc="best", fontsize=7.5)
    return ax


def plot_entropy_change_steps(
    frame: pd.DataFrame, correlations: pd.DataFrame, form: str = "npg", ax: plt.Axes | None = None
) -> plt.Axes:
    """Measured and predicted (times the fitted scale) entropy change against training step."""
    ax = ax or plt.subplots(figsize=(5.6, 3.6))[1]
    c_meas, c_pred = colors(2)
    scale = correlations.loc[form, "scale"]
    scale = float(scale) if np.isfinite(scale) else 1.0
    ax.plot(frame["step"], frame["measured"], color=c_meas, lw=1.6, marker="o", ms=3, label="measured")
    ax.plot(
        frame["step"],
        scale * frame[f"predicted_{form}"],
        color=c_pred,
        lw=1.4,
        ls="--",
        label=f"predicted ({form.upper()}) × fitted scale {scale:.3g}",
    )
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlabel("training step")
    ax.set_ylabel("entropy change ΔH (nats per token per step)")
    ax.set_title("Entropy change over training")
    ax.legend(loc="best")
    return ax


def entropy_change_figure(frame: pd.DataFrame, correlations: pd.DataFrame, form: str = "npg") -> plt.Figure:
    """Scatter (predicted vs measured) and the two series over steps, side by side; a note instead when no
    step has both a prediction and a measured entropy change."""
    apply_style()
    if int(correlations.loc[form, "n"]) == 0:
        fig, ax = plt.subplots(figsize=(6.0, 3.0))
        _placeholder(ax, "no dumped step has both a prediction and a measured entropy change", "Entropy change")
        return fig
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.2), gridspec_kw={"width_ratios": [1, 1.3]})
    plot_entropy_change_scatter(frame, correlations, form, axes[0])
    plot_entropy_change_steps(frame, correlations, form, axes[1])
    fig.tight_layout()
    return fig


def covariance_figure(table: pd.DataFrame) -> plt.Figure:
    """`plot_covariance_quantiles` on its own figure."""
    apply_style()
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    plot_covariance_quantiles(table, ax)
    fig.tight_layout()
    return fig


def table1_figure(frame: pd.DataFrame) -> plt.Figure:
    """The paper's Table 1 as an image: mean covariance of the top-q tokens by covariance, and of all tokens.

    `frame`: one row per token group, one column per step (`diagnostics.table1_frame`)."""
    apply_style()
    cells = [
        [r["tokens"], *[f"{v:,.0f}" if r["tokens"] == "n_tokens" else f"{v:.4g}" for v in list(r)[1:]]]
        for _, r in frame.iterrows()
    ]
    fig, ax = plt.subplots(figsize=(1.6 * len(frame.columns) + 1.5, 0.38 * len(cells) + 1.1))
    ax.set_axis_off()
    tab = ax.table(cellText=cells, colLabels=list(frame.columns), loc="center", cellLoc="right", colLoc="right")
    tab.auto_set_font_size(False)
    tab.set_fontsize(9.5)
    tab.scale(1.0, 1.4)
    for (row, _), cell in tab.get_celld().items():
        if row == 0:
            cell.set_facecolor("#eeeeee")
    ax.set_title("Table 1: mean covariance of log π and advantage (nats × advantage), top tokens vs all", fontsize=10)
    return fig


def write_diagnostics_figures(
    table: pd.DataFrame, theory_frame: pd.DataFrame, correlations: pd.DataFrame, out_dir: str | Path, form: str = "npg"
) -> list[Path]:
    """Write covariance_quantiles and entropy_change (PNG and SVG) into `out_dir`; returns the paths.

    The entropy-change figure is skipped when no step has both a prediction and a measurement.
    """
    out = Path(out_dir)
    written = save_figure(covariance_figure(table), out / "covariance_quantiles")
    if int(correlations.loc[form, "n"]) > 0:
        written += save_figure(entropy_change_figure(theory_frame, correlations, form), out / "entropy_change")
    return written
