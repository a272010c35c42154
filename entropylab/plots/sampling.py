"""Figures for the samplers: accuracy, pass@k, likelihood histograms, exactness, sweeps and the paper's toy.

Inputs are the DataFrames of `entropylab.compare.Comparison` (anything with `.table`, `.pass_at_k` and
`.samples`), the dict of `compare.exactness_demo`, or `sweep` frames. No torch import here. Every
function returns the figure and, given `path` (a stem), also writes PATH.png and PATH.svg.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from entropylab.plots.style import apply_style, colors, save_figure

__all__ = [
    "plot_accuracy",
    "plot_pass_at_k",
    "plot_likelihood",
    "plot_exactness",
    "plot_sweep",
    "plot_toy",
    "plot_frontier",
]


def _finish(fig: plt.Figure, path: str | Path | None) -> plt.Figure:
    if path is not None:
        save_figure(fig, path)
    return fig


def _palette(methods: Sequence[str]) -> dict[str, tuple]:
    return dict(zip(methods, colors(len(methods))))


def plot_accuracy(comparison, path: str | Path | None = None) -> plt.Figure:
    """Single-shot accuracy and pass@k_max per method (bars), with the cost multiple written above."""
    apply_style()
    t = comparison.table
    k_max = int(comparison.pass_at_k["k"].max()) if len(comparison.pass_at_k) else 1
    fig, ax = plt.subplots(figsize=(1.3 * len(t) + 2.5, 3.4))
    x = np.arange(len(t))
    pal = _palette(list(t["method"]))
    ax.bar(x - 0.2, t["accuracy"], 0.4, color=[pal[m] for m in t["method"]], label="accuracy (1 sample)")
    ax.bar(x + 0.2, t["pass@k_max"], 0.4, color=[pal[m] for m in t["method"]], alpha=0.45, label=f"pass@{k_max}")
    for xi, (acc, cost) in enumerate(zip(t["pass@k_max"], t.get("cost_x", [np.nan] * len(t)))):
        if np.isfinite(cost):
            ax.text(xi, min(acc, 1.0) + 0.02, f"{cost:.1f}x", ha="center", va="bottom", fontsize=8, color="0.3")
    ax.set_xticks(x, t["method"])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("share correct")
    ax.set_title("Accuracy by sampling method (label: tokens vs plain sampling)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the axes: the bars reach the top
    return _finish(fig, path)


def plot_pass_at_k(comparison, path: str | Path | None = None) -> plt.Figure:
    """Unbiased pass@k against k (log2 axis), one line per method."""
    apply_style()
    df = comparison.pass_at_k
    methods = list(dict.fromkeys(df["method"]))
    pal = _palette(methods)
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for m in methods:
        d = df[df["method"] == m]
        ax.plot(d["k"], d["pass@k"], marker="o", ms=3, color=pal[m], label=m)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel("pass@k")
    ax.set_ylim(0, 1.02)
    ax.set_title("pass@k by sampling method (unbiased estimator)")
    ax.legend()
    return _finish(fig, path)


def plot_likelihood(comparison, column: str = "mean_logp", path: str | Path | None = None) -> plt.Figure:
    """Distribution per method of a per-sample statistic: mean_logp (default), loglik or confidence."""
    apply_style()
    df = comparison.samples[["method", column]].dropna()
    methods = list(dict.fromkeys(df["method"]))
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    if len(df):
        sns.histplot(
            data=df,
            x=column,
            hue="method",
            hue_order=methods,
            palette=_palette(methods),
            element="step",
            stat="density",
            common_norm=False,
            fill=False,
            ax=ax,
            bins=30,
        )
    names = {
        "mean_logp": "mean log p per token (base model)",
        "loglik": "sum log p (base model)",
        "confidence": "mean p of sampled tokens",
    }
    ax.set_xlabel(names.get(column, column))
    ax.set_title("Likelihood of the samples under the base model")
    return _finish(fig, path)


def _seq_label(s) -> str:
    return s if isinstance(s, str) else "".join(map(str, s))


def plot_exactness(result: Mapping, top: int = 10, path: str | Path | None = None) -> plt.Figure:
    """Empirical vs exact p^alpha (bars) for the most likely sequences; `result` from `compare.exactness_demo`.

    `result`: {"exact": {seq: prob}, "samplers": {label: {seq: prob}}, "tv": {label: float}}.
    """
    apply_style()
    exact = result["exact"]
    samplers = result["samplers"]
    tv = result.get("tv", {})
    seqs = sorted(exact, key=lambda s: -exact[s])[:top]
    labels = ["exact p^alpha"] + list(samplers)
    pal = dict(zip(labels, ["0.25", *colors(len(samplers))]))
    width = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(min(12.0, 0.65 * len(seqs) + 2.5), 3.8))
    x = np.arange(len(seqs))
    for i, lab in enumerate(labels):
        dist = exact if i == 0 else samplers[lab]
        name = lab if i == 0 else f"{lab} (TV {tv[lab]:.3f})" if lab in tv else lab
        ax.bar(
            x + (i - (len(labels) - 1) / 2) * width, [dist.get(s, 0.0) for s in seqs], width, color=pal[lab], label=name
        )
    ax.set_xticks(x, [_seq_label(s) for s in seqs], rotation=45, ha="right", fontfamily="monospace")
    ax.set_ylabel("probability")
    s = result.get("settings", {})
    extra = f" (alpha {s['alpha']}, {s['n_chains']} chains)" if "alpha" in s and "n_chains" in s else ""
    ax.set_title(f"Samplers against the exact power distribution{extra}")
    ax.legend(fontsize=7.5)
    return _finish(fig, path)


#: Axis labels, with units, of the sweep's parameters and metrics (other names are shown as they are).
SWEEP_LABELS = {
    "alpha": "α (power of p)",
    "mcmc_steps": "MH steps per block",
    "accuracy": "accuracy (share correct)",
    "mean_logp": "mean token log-prob under p (nats)",
    "tokens_per_sample": "model token-evaluations per sample",
    "confidence": "mean token probability under p",
}


def plot_sweep(
    sweep: pd.DataFrame,
    metrics: Sequence[str] = ("accuracy", "mean_logp", "tokens_per_sample"),
    path: str | Path | None = None,
) -> plt.Figure:
    """One panel per metric against the swept value (alpha, mcmc_steps, ...), one line per method."""
    apply_style()
    methods = list(dict.fromkeys(sweep["method"]))
    pal = _palette(methods)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 3.2), squeeze=False)
    param = str(sweep["param"].iloc[0]) if len(sweep) else "value"
    values = sorted(set(sweep["value"])) if len(sweep) else []
    for ax, metric in zip(axes[0], metrics):
        for m in methods:
            d = sweep[sweep["method"] == m]
            ax.plot(d["value"], d[metric], marker="o", ms=3, color=pal[m], label=m)
        if 0 < len(values) <= 8:
            ax.set_xticks(values, [f"{v:g}" for v in values])  # the swept values, not 2.5 steps
        ax.set_xlabel(SWEEP_LABELS.get(param, param))
        ax.set_ylabel(SWEEP_LABELS.get(metric, metric))
    axes[0][0].legend()
    fig.suptitle(f"Power sampling as {SWEEP_LABELS.get(param, param)} varies")
    fig.tight_layout()
    return _finish(fig, path)


def plot_toy(alpha: float = 2.0, path: str | Path | None = None) -> plt.Figure:
    """The paper's Example 1, exactly: base p, the power distribution p^alpha and low temperature 1/alpha."""
    from entropylab.tasks.toy import (
        first_token_marginal,
        low_temperature_distribution,
        normalize,
        power_distribution,
        toy_distribution,
    )

    apply_style()
    base = toy_distribution()
    dists = {
        "base p (normalised)": normalize(base),
        f"power p^{alpha:g}": power_distribution(base, alpha),
        f"low temperature 1/{alpha:g}": low_temperature_distribution(base, alpha),
    }
    seqs = list(base)
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    width = 0.8 / len(dists)
    for i, ((name, d), c) in enumerate(zip(dists.items(), colors(len(dists)))):
        first_a = first_token_marginal(d).get("a", 0.0) if sum(d.values()) > 0 else 0.0
        ax.bar(
            np.arange(len(seqs)) + (i - 1) * width,
            [d[s] for s in seqs],
            width,
            color=c,
            label=f"{name}: P(first = a) = {first_a:.2f}",
        )
    ax.set_xticks(np.arange(len(seqs)), seqs, fontfamily="monospace")
    ax.set_ylabel("probability")
    ax.set_title("Power sampling looks ahead; low temperature is greedy per token")
    ax.legend(fontsize=7.5)
    return _finish(fig, path)


def plot_frontier(frontier: pd.DataFrame, path: str | Path | None = None) -> plt.Figure:
    """Accuracy against tokens spent per answer (× plain sampling), one line per method over its budgets;
    plain and low temperature as points (`entropylab.compare.frontier`). Bars: 95% binomial intervals over
    the answers (``tokens_evaluated / tokens_per_sample`` of them)."""
    apply_style()
    methods = list(dict.fromkeys(frontier["method"]))
    palette = _palette(methods)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for m in methods:
        d = frontier[frontier["method"] == m].sort_values("cost_x")
        style = dict(marker="o", ms=5, lw=1.6) if len(d) > 1 else dict(marker="s", ms=7, lw=0)
        acc = d["accuracy"].to_numpy(float)
        n = (d["tokens_evaluated"] / d["tokens_per_sample"]).to_numpy(float) if "tokens_evaluated" in d else None
        err = 1.96 * np.sqrt(acc * (1 - acc) / n) if n is not None else None
        ax.errorbar(d["cost_x"], acc, yerr=err, color=palette[m], label=m, capsize=2, elinewidth=0.8, **style)
    ax.set_xscale("log")
    ax.set(
        xlabel="tokens evaluated per answer (× plain sampling)",
        ylabel="single-shot accuracy (95% interval)",
        title="Which sampler at which budget",
    )
    ax.legend(fontsize=8)
    return _finish(fig, path)
