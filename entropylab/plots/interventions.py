"""Figures of training runs side by side: entropy and validation accuracy over steps, per intervention."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from entropylab.plots.style import apply_style, colors, relabel

VAL = "val/acc"


def seed_band(run: pd.DataFrame, column: str, seed: str = "seed") -> pd.DataFrame:
    """Per step: mean, standard deviation and count of `column` over the seeds of one group of runs."""
    d = run.dropna(subset=[column])
    if seed not in d:
        d = d.assign(**{seed: 0})
    return d.groupby("step")[column].agg(mean="mean", std="std", n="count").reset_index().fillna({"std": 0.0})


def plot_runs(metrics: pd.DataFrame, *, hue: str = "preset", val: str = VAL, seed: str = "seed") -> plt.Figure:
    """Two panels: policy entropy and validation accuracy against step, one line per run; where a group holds
    several seeds (a `seed` column), its mean with a band of ± one standard deviation over the seeds."""
    apply_style()
    groups = list(dict.fromkeys(metrics[hue]))
    fig, (ax_h, ax_r) = plt.subplots(1, 2, figsize=(10.5, 3.8))
    for name, color in zip(groups, colors(len(groups))):
        run = metrics[metrics[hue] == name].sort_values("step")
        n_seeds = run[seed].nunique() if seed in run else 1
        label = f"{name} ({n_seeds} seeds)" if n_seeds > 1 else name
        for ax, column, marker in ((ax_h, "entropy", None), (ax_r, val, "o")):
            if column not in run:
                continue
            b = seed_band(run, column, seed)
            ax.plot(b["step"], b["mean"], color=color, lw=1.5, marker=marker, ms=3, label=label)
            if n_seeds > 1:
                ax.fill_between(b["step"], b["mean"] - b["std"], b["mean"] + b["std"], color=color, alpha=0.2, lw=0)
    ax_h.set(xlabel="training step", ylabel="policy entropy (nats per token)", title="Entropy over training")
    ax_r.set(xlabel="training step", ylabel="validation accuracy (temperature 1)", title="Accuracy over training")
    ax_h.legend()
    fig.tight_layout()
    return fig


def plot_entropy_vs_accuracy(metrics: pd.DataFrame, *, hue: str = "preset", val: str = VAL) -> plt.Figure:
    """Validation accuracy against the entropy at the same step, one trajectory per run (the law's plane)."""
    apply_style()
    groups = list(dict.fromkeys(metrics[hue]))
    fig, ax = plt.subplots(figsize=(5.4, 3.9))
    for name, color in zip(groups, colors(len(groups))):
        run = metrics[metrics[hue] == name].dropna(subset=["entropy", val]).sort_values("step")
        ax.plot(run["entropy"], run[val], color=color, lw=1, marker="o", ms=3.5, label=name)
    ax.set(
        xlabel="policy entropy H (nats per token)",
        ylabel="validation accuracy R",
        title="Accuracy against entropy (training runs right to left)",
    )
    ax.legend()
    return fig


# --------------------------------------------------------------------------- gallery figures


def _seeds_note(metrics: pd.DataFrame, seed: str = "seed") -> str:
    """ ", mean ± one std over N seeds" when the runs hold several seeds, else ""."""
    n = metrics[seed].nunique() if seed in metrics else 1
    return f"; mean ± one std over {n} seeds" if n > 1 else ""


def _titled(metrics: pd.DataFrame, title: str) -> plt.Figure:
    """`plot_runs` of `metrics` (display names) under `title` and the seed note."""
    fig = plot_runs(relabel(metrics))
    fig.suptitle(title + _seeds_note(metrics), fontsize=11)
    fig.tight_layout()
    return fig


def entropy_accuracy_figure(metrics: pd.DataFrame, preset: str = "grpo") -> plt.Figure:
    """Entropy and validation accuracy of one preset's runs over steps (`metrics` of `experiments.run_metrics`,
    with a `seed` column for several seeds)."""
    return _titled(metrics[metrics["preset"] == preset], "GRPO: policy entropy and validation accuracy")


def interventions_figure(metrics: pd.DataFrame) -> plt.Figure:
    """Entropy and validation accuracy over steps, one line (or seed band) per intervention."""
    return _titled(metrics, "Every intervention, same model and data")


def top20_figure(metrics: pd.DataFrame) -> plt.Figure:
    """Entropy and accuracy of training on all tokens, on the top 20% by entropy and on the bottom 80%."""
    sub = metrics[metrics["preset"].isin(["grpo", "top20", "bottom80"])]
    return _titled(sub, "Policy gradient on all tokens, the top 20% by entropy, the bottom 80%")
