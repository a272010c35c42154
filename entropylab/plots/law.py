"""Figures of the reward-entropy law: R against H with the fit and ceiling, the forecast, the residuals."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from entropylab.plots.style import PRESET_LABELS, _placeholder, apply_style, colors, save_figure


def _curve(fit, h_max: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fitted law and its 95% band for the mean on a grid from H=0 (the ceiling) to beyond the data."""
    grid = np.linspace(0.0, h_max, 200)
    mean, lo, hi = fit.predict(grid, return_band=True)
    return grid, mean, lo, hi


def plot_law_fit(fits, ax: plt.Axes | None = None, *, band: bool = True) -> plt.Axes:
    """R against H for one or several runs, each with its fitted curve, the ceiling b - a and its interval."""
    fits = [fits] if not isinstance(fits, list | tuple) else list(fits)
    ax = ax or plt.subplots(figsize=(5.2, 3.8))[1]
    h_max = max(float(np.max(f.H)) for f in fits) * 1.05
    for fit, color in zip(fits, colors(len(fits))):
        label = _short(fit.run or "run")
        ax.scatter(fit.H, fit.R, s=16, color=color, alpha=0.75, edgecolor="none", label=f"{label} (n={fit.n})")
        grid, mean, lo, hi = _curve(fit, h_max)
        ax.plot(grid, mean, color=color, lw=1.6, label=f"fit: a={fit.a:.2f}, b={fit.b:.2f}, R²={fit.r2:.2f}")
        if band:
            ax.fill_between(grid, lo, hi, color=color, alpha=0.15, lw=0)
        c_lo, c_hi = fit.ceiling_ci
        ax.errorbar(
            [0.0],
            [fit.ceiling],
            yerr=[[fit.ceiling - c_lo], [c_hi - fit.ceiling]],
            fmt="*",
            ms=11,
            color=color,
            capsize=3,
            label=f"ceiling b−a = {fit.ceiling:.3f} [{c_lo:.3f}, {c_hi:.3f}]"
            + ("" if fit.ok else " (not trustworthy)"),
        )
    ax.set_xlabel("policy entropy H (nats per token)")
    ax.set_ylabel("score R (validation accuracy)")
    ax.set_title("Reward-entropy law  R = −a·exp(H) + b")
    ax.set_xlim(left=-0.02 * h_max)
    if len(fits) > 1:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(loc="best")
    return ax


def plot_forecast(fc, ax: plt.Axes | None = None) -> plt.Axes:
    """R against training step: the early points the law was fitted on, the held-out rest, and the prediction."""
    ax = ax or plt.subplots(figsize=(5.2, 3.8))[1]
    fit = fc.fit
    c_fit, c_held, c_pred = colors(3)
    ax.scatter(fit.steps, fit.R, s=22, color=c_fit, label=f"fitted on ({fc.n_fit} points)", zorder=3)
    ax.scatter(fc.steps, fc.actual, s=18, facecolor="none", edgecolor=c_held, label=f"held out ({fc.n_heldout} points)")
    order = np.argsort(fc.steps)
    ax.plot(
        np.asarray(fc.steps)[order],
        np.asarray(fc.predicted)[order],
        color=c_pred,
        lw=1.6,
        label=f"predicted from entropy: RMSE {fc.rmse:.3f}, final error {fc.final_error:+.3f}",
    )
    cut = float(np.max(fit.steps)) if not fc.reverse else float(np.min(fit.steps))
    ax.axvline(cut, color="0.5", ls=":", lw=1)
    ax.axhline(fit.ceiling, color=c_pred, ls="--", lw=1, label=f"predicted ceiling {fit.ceiling:.3f}")
    direction = "last" if fc.reverse else "first"
    ax.set_title(f"Forecast from the {direction} {fc.fraction_label} of training")
    ax.set_xlabel("training step")
    ax.set_ylabel("score R (validation accuracy)")
    ax.legend(loc="best")
    return ax


def plot_residuals(fit, ax: plt.Axes | None = None) -> plt.Axes:
    """Residuals R - fit against training step (or H when steps are unknown): structure here means misfit."""
    ax = ax or plt.subplots(figsize=(5.2, 2.6))[1]
    x = fit.steps if fit.steps is not None else fit.H
    ax.axhline(0, color="0.4", lw=1)
    ax.scatter(x, fit.residuals, s=14, color=colors(1)[0])
    ax.set_xlabel("training step" if fit.steps is not None else "policy entropy H (nats per token)")
    ax.set_ylabel("residual R − fit")
    ax.set_title(f"Residuals (RMSE {fit.rmse:.4f})")
    return ax


def law_figure(fit, fc=None) -> plt.Figure:
    """One run's three panels side by side: law fit, forecast, residuals."""
    apply_style()
    n = 3 if fc is not None else 2
    fig, axes = plt.subplots(1, n, figsize=(5.0 * n, 3.9))
    plot_law_fit(fit, axes[0])
    if fc is not None:
        plot_forecast(fc, axes[1])
    plot_residuals(fit, axes[-1])
    fig.suptitle(fit.run or "", fontsize=11)
    fig.tight_layout()
    return fig


def write_law_figures(fits: Mapping[str, object], forecasts: Mapping[str, object], out_dir: str | Path) -> list[Path]:
    """Write `law_<run>` (three panels) for every run and `law_all_runs` (all fits overlaid); PNG and SVG."""
    apply_style()
    out = Path(out_dir)
    written: list[Path] = []
    for run, fit in fits.items():
        written += save_figure(law_figure(fit, forecasts.get(run)), out / f"law_{safe_name(run)}")
    if len(fits) > 1:
        fig, ax = plt.subplots(figsize=(6.0, 4.2))
        plot_law_fit(list(fits.values()), ax, band=False)
        written += save_figure(fig, out / "law_all_runs")
    return written


def _short(name: str, width: int = 44) -> str:
    """A run name cut to fit a legend."""
    return name if len(name) <= width else name[: width - 1] + "…"


def safe_name(name: str) -> str:
    """A file-name-safe version of a run name."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name))[:80]


def plot_forecast_history(history, ax: plt.Axes | None = None, *, title: str | None = None) -> plt.Axes:
    """The forecast's history of one run (`law.forecast_history`): at each validation point, the ceiling and the
    final score that the law fitted on the points so far predicted, with their 95% bands, against the outcome."""
    ax = ax or plt.subplots(figsize=(5.6, 3.8))[1]
    c_ceiling, c_final, c_actual = colors(3)
    steps = history["step"].to_numpy(dtype=float)
    ax.fill_between(steps, history["ceiling_low"], history["ceiling_high"], color=c_ceiling, alpha=0.15, lw=0)
    ax.plot(
        steps, history["ceiling"], color=c_ceiling, lw=1.6, marker="o", ms=3, label="predicted ceiling b−a (95% CI)"
    )
    ax.fill_between(steps, history["final_low"], history["final_high"], color=c_final, alpha=0.12, lw=0)
    ax.plot(steps, history["final_pred"], color=c_final, lw=1.4, ls="--", label="predicted final score (95% PI)")
    if len(history):
        ax.axhline(
            float(history["final_actual"].iloc[0]),
            color=c_actual,
            lw=1,
            ls=":",
            label=f"actual final score {float(history['final_actual'].iloc[0]):.3f}",
        )
        ax.axhline(
            float(history["ceiling"].iloc[-1]),
            color="0.45",
            lw=0.8,
            ls="-.",
            label=f"full-run ceiling {float(history['ceiling'].iloc[-1]):.3f}",
        )
        lo = min(float(history["final_actual"].iloc[0]), float(history["ceiling"].min()))
        hi = max(float(history["ceiling"].iloc[-1]), float(history["final_actual"].iloc[0]))
        pad = max(0.1, hi - lo)
        ax.set_ylim(lo - pad, hi + pad)  # early intervals can be huge: keep the settled part readable
    ax.set_xlabel("training step of the newest validation point")
    ax.set_ylabel("score R (validation accuracy)")
    ax.set_title(title or "Forecast history: the law refitted at each validation point")
    ax.legend(loc="best", fontsize=8)
    return ax


def write_history_figures(histories: Mapping[str, object], out_dir: str | Path) -> list[Path]:
    """Write `forecast_history_<run>` (PNG and SVG) for every run's `law.forecast_history` table."""
    apply_style()
    out = Path(out_dir)
    written: list[Path] = []
    for run, history in histories.items():
        fig, ax = plt.subplots(figsize=(6.2, 4.0))
        plot_forecast_history(history, ax, title=_short(run, 60))
        fig.tight_layout()
        written += save_figure(fig, out / f"forecast_history_{safe_name(run)}")
    return written


# --------------------------------------------------------------------------- gallery figures


def _compact_law(fits: Sequence, ax: plt.Axes, names: Sequence[str] | None = None) -> None:
    """`plot_law_fit` for several runs with one legend line per run and the y range set by the data."""
    fits = list(fits)
    plot_law_fit(fits, ax, band=False)
    names = list(names) if names else [f.run or "run" for f in fits]
    lines = [h for h, lab in zip(*ax.get_legend_handles_labels()) if lab.startswith("fit:")]
    labels = [
        f"{n}: a={f.a:.2f}, b={f.b:.2f}, ceiling {f.ceiling:.2f}" + ("" if f.ok else " (not trustworthy)")
        for n, f in zip(names, fits)
    ]
    ax.legend(lines, labels, loc="best", fontsize=7.5)
    values = np.concatenate([np.asarray(f.R, float) for f in fits] + [[f.ceiling for f in fits]])
    values = values[np.isfinite(values)]
    lo, hi = float(values.min()), float(values.max())
    pad = 0.1 * (hi - lo) or 0.05
    ax.set_ylim(max(lo - pad, -0.05), min(hi + pad, 1.05))


def law_fit_runs_figure(law: Mapping, sizes: Mapping | None = None) -> plt.Figure:
    """R against H with the fitted law for the preset runs (top), for the runs of each model size, and a, b
    against size (bottom). `law`: `experiments.law_of_runs(runs)`; `sizes`: `experiments.law_by_size(...)`."""
    apply_style()
    if sizes is None:
        fig, ax_runs = plt.subplots(figsize=(7.5, 4.4))
    else:
        fig = plt.figure(figsize=(10.5, 8.4))
        grid = fig.add_gridspec(2, 2)
        ax_runs, ax_sizes, ax_coef = (
            fig.add_subplot(grid[0, :]),
            fig.add_subplot(grid[1, 0]),
            fig.add_subplot(grid[1, 1]),
        )
    fits = law["fits"]
    if fits:
        _compact_law(list(fits.values()), ax_runs, [PRESET_LABELS.get(k, k) for k in fits])
        ax_runs.set_title("R = −a·exp(H) + b fitted on each run (stars: ceiling b − a at H = 0)")
    else:
        _placeholder(ax_runs, "no run has enough validation points for a fit", "One law per run")
    if sizes is None:
        fig.tight_layout()
        return fig
    sfits, table = sizes["fits"], sizes["table"]
    params = dict(zip(table["size"], table["n_params"]))
    if sfits:
        _compact_law(list(sfits.values()), ax_sizes, [f"{k} ({params.get(k, 0) / 1e6:.2f}M)" for k in sfits])
        ax_sizes.set_title("GRPO on base models of several sizes")
    else:
        _placeholder(ax_sizes, "no size run has enough validation points", "Model sizes")
    ok = table.dropna(subset=["a", "b", "n_params"])
    if len(ok):
        for col, c, mark, label in (
            ("a", colors(3)[0], "o", "a"),
            ("b", colors(3)[1], "s", "b"),
            ("ceiling", colors(3)[2], "^", "ceiling b − a"),
        ):
            ax_coef.plot(ok["n_params"], ok[col], marker=mark, color=c, label=label)
        for _, r in ok.iterrows():
            ax_coef.annotate(r["size"], (r["n_params"], r["b"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax_coef.set_xscale("log")
        ax_coef.set(
            xlabel="parameters (log scale)",
            ylabel="fitted value (accuracy units)",
            title="a, b and the ceiling against model size",
        )
        ax_coef.legend()
    else:
        _placeholder(ax_coef, "no fitted coefficients", "a and b against model size")
    fig.tight_layout()
    return fig


def law_forecast_figure(points: pd.DataFrame, run: str = "grpo", fraction: float = 0.15) -> plt.Figure:
    """The law fitted on the first `fraction` of a run's steps predicts the rest (left); the reverse test (right)."""
    from entropylab import law
    from entropylab.errors import EntropylabError

    apply_style()
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.0))
    pts = points[points["run"] == run]
    for ax, reverse in zip(axes, (False, True)):
        try:
            fc = law.forecast(pts, fit_first=fraction, reverse=reverse)
        except EntropylabError as err:
            _placeholder(ax, f"no forecast: {err}", f"Forecast ({'last' if reverse else 'first'} {fraction:.0%})")
            continue
        plot_forecast(fc, ax)
    fig.suptitle(f"Forecasting run '{PRESET_LABELS.get(run, run)}' from its entropy", fontsize=11)
    fig.tight_layout()
    return fig


def short_run_name(name: str) -> str:
    """'Qwen2.5-0.5B-bsz256_2-prompt512-resp256-0.538' -> 'Qwen2.5-0.5B, resp 256' (legend-sized)."""
    model = name.split("-bsz")[0].removesuffix("-ppo")
    resp = re.search(r"resp-?(\d+)", name)
    return f"{model}, resp {resp.group(1)}" if resp else model


def law_real_logs_figure(fits: Mapping, forecasts: Mapping) -> plt.Figure:
    """The law fitted on each run of some logs (left) and the first run's forecast from 15% (right);
    `fits` and `forecasts` from `experiments.law_of_logs`."""
    apply_style()
    fig, axes = plt.subplots(1, 2, figsize=(12.0, 4.4), gridspec_kw={"width_ratios": [1.15, 1]})
    short = [short_run_name(k) for k in fits]
    if fits:
        _compact_law(list(fits.values()), axes[0], short)
        axes[0].set_title(f"Reward-entropy law on {len(fits)} run{'s' if len(fits) > 1 else ''}")
    else:
        _placeholder(axes[0], "no run could be fitted")
    first = next((k for k, v in forecasts.items() if v is not None), None)
    if first is not None:
        plot_forecast(forecasts[first], axes[1])
        axes[1].set_title(f"{short[list(fits).index(first)]}: forecast from the first 15%")
    else:
        _placeholder(axes[1], "no forecast")
    fig.tight_layout()
    return fig
