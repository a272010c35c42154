"""Figures of training runs side by side: entropy and validation accuracy over steps, per intervention."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from entropylab.plots.style import apply_style, colors

VAL = "val/acc"


def plot_runs(metrics: pd.DataFrame, *, hue: str = "preset", val: str = VAL) -> plt.Figure:
    """Two panels: policy entropy and validation accuracy against step, one line per run."""
    apply_style()
    groups = list(dict.fromkeys(metrics[hue]))
    fig, (ax_h, ax_r) = plt.subplots(1, 2, figsize=(10.5, 3.8))
    for name, color in zip(groups, colors(len(groups))):
        run = metrics[metrics[hue] == name].sort_values("step")
        h = run.dropna(subset=["entropy"])
        ax_h.plot(h["step"], h["entropy"], color=color, lw=1.5, label=name)
        if val in run:
            r = run.dropna(subset=[val])
            ax_r.plot(r["step"], r[val], color=color, lw=1.5, marker="o", ms=3, label=name)
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
    ax.set(xlabel="policy entropy H (nats per token)", ylabel="validation accuracy R",
           title="Accuracy against entropy (training runs right to left)")
    ax.legend()
    return fig
