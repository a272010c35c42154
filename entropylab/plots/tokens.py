"""Token-entropy figures: the entropy distribution, forking-token bars, high- vs low-entropy token lists.

Inputs are profiles or rollout dumps (any frame with `entropy` and `token`) or the tables of
`entropylab.tokens.stats`. No torch here.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from entropylab.plots.style import apply_style, colors
from entropylab.tokens.stats import as_entropy, entropy_stats, forking_tokens, low_entropy_tokens, visible

__all__ = [
    "forking_figure",
    "overlap_figure",
    "plot_entropy_distribution",
    "plot_forking_tokens",
    "plot_temperature_grid",
    "plot_token_lists",
    "temperature_grid_figure",
    "token_distribution_figure",
    "token_lists_text",
]


def plot_entropy_distribution(
    entropy,
    *,
    percentiles: Sequence[float] = (50, 80, 95),
    log: str = "x",
    bins: int = 60,
    floor: float = 1e-4,
    low: float = 0.01,
    ax: plt.Axes | None = None,
    title: str | None = "Token entropy distribution",
    label: str | None = None,
) -> plt.Figure:
    """Histogram of token entropies (nats) with percentile markers and the share below `low`.

    `log="x"`: log-spaced bins from `floor` (entropies below it are counted in the first bin), so the mass
    near 0 and the tail are both readable; `log="y"`: linear bins, log counts. `entropy`: array-like, Series
    or a frame with an `entropy` column.
    """
    if log not in ("x", "y"):
        raise ValueError(f"log must be 'x' or 'y', got {log!r}")
    apply_style()
    h = as_entropy(entropy)
    stats = entropy_stats(h, low=low)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
    else:
        fig = ax.figure
    color, marker_colors = colors(1)[0], colors(len(percentiles) + 2)[1:]
    if log == "x":
        hi = max(float(h.max()), floor * 10)
        edges = np.geomspace(floor, hi * 1.0001, bins + 1)
        ax.hist(np.clip(h, floor, None), bins=edges, color=color, alpha=0.85, label=label)
        ax.set_xscale("log")
    else:
        ax.hist(h, bins=bins, color=color, alpha=0.85, label=label)
        ax.set_yscale("log")
    for pct, c in zip(percentiles, marker_colors):
        q = float(np.percentile(h, pct))
        shown = max(q, floor) if log == "x" else q
        ax.axvline(shown, color=c, linestyle="--", linewidth=1.2, label=f"p{pct:g} = {q:.3g}")
    ax.set_xlabel("entropy (nats)" + (f", values < {floor:g} in the first bin" if log == "x" else ""))
    ax.set_ylabel("tokens")
    ax.text(
        0.99,
        0.97,
        f"{100 * stats['frac_below']:.1f}% of {stats['n']:,} tokens below {low:g}\nmean {stats['mean']:.3g}",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=8.5,
        bbox=dict(facecolor="white", alpha=0.85, edgecolor="none", pad=2.0),
    )
    if title:
        ax.set_title(title)
    ax.legend(loc="upper left")
    return fig


def plot_forking_tokens(
    table: pd.DataFrame,
    *,
    top: int = 20,
    ax: plt.Axes | None = None,
    title: str | None = "Forking tokens (top-20% entropy)",
) -> plt.Figure:
    """Horizontal bars of the `top` forking tokens by count, annotated with mean entropy and share high.

    `table`: the output of `entropylab.tokens.stats.forking_tokens` (or `low_entropy_tokens`).
    """
    apply_style()
    data = table.head(top).iloc[::-1]
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, max(2.0, 0.28 * len(data) + 1.0)))
    else:
        fig = ax.figure
    if data.empty:
        ax.text(0.5, 0.5, "no tokens", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    labels = [repr(visible(str(t)))[1:-1] for t in data["token"]]
    y = np.arange(len(data))
    ax.barh(y, data["count"], color=colors(1)[0])
    ax.set_yticks(y, labels, fontfamily="monospace")
    share = "share_high" if "share_high" in data.columns else "share_low"
    for yi, (cnt, me, sh) in enumerate(zip(data["count"], data["mean_entropy"], data[share])):
        ax.text(cnt, yi, f"  H={me:.2f}, {100 * sh:.0f}%", va="center", fontsize=8)
    ax.set_xlabel("occurrences above the cutoff (annotated: mean entropy, share of the token's occurrences)")
    ax.set_xlim(0, float(data["count"].max()) * 1.35)
    cutoff = table.attrs.get("cutoff")
    if title:
        ax.set_title(title + (f", cutoff {cutoff:.3g}" if cutoff is not None else ""))
    ax.grid(axis="y", visible=False)
    return fig


def token_lists_text(high: pd.DataFrame, low: pd.DataFrame, *, top: int = 15) -> str:
    """High- vs low-entropy tokens as two aligned text columns (token, count, mean entropy)."""

    def lines(t: pd.DataFrame) -> list[str]:
        return [f"{visible(str(r.token)):>10} {r.count:6d} {r.mean_entropy:7.3f}" for r in t.head(top).itertuples()]

    left, right = lines(high), lines(low)
    width = 26
    out = [
        f"{'high entropy (forking)':<{width}} | low entropy",
        f"{'token  count  mean H':>{width}} | token  count  mean H",
    ]
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        out.append(f"{a:<{width}} | {b}")
    return "\n".join(out)


def plot_token_lists(
    high: pd.DataFrame, low: pd.DataFrame, *, top: int = 15, title: str | None = "High- vs low-entropy tokens"
) -> plt.Figure:
    """A two-column table figure: the most frequent high-entropy tokens beside the most frequent low-entropy ones."""
    apply_style()
    n = max(1, min(top, max(len(high), len(low))))
    fig, axes = plt.subplots(1, 2, figsize=(7.6, 0.26 * n + 1.2))
    for ax, table, name in ((axes[0], high, "high entropy (forking)"), (axes[1], low, "low entropy")):
        ax.set_axis_off()
        rows = [[visible(str(r.token)), f"{r.count:d}", f"{r.mean_entropy:.3f}"] for r in table.head(top).itertuples()]
        if not rows:
            ax.text(0.5, 0.5, "none", ha="center", va="center")
            continue
        tab = ax.table(cellText=rows, colLabels=["token", "count", "mean H"], loc="upper center", cellLoc="center")
        tab.auto_set_font_size(False)
        tab.set_fontsize(8.5)
        tab.scale(1.0, 1.15)
        ax.set_title(name, fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_temperature_grid(grid: pd.DataFrame, *, metric: str = "accuracy", ax: plt.Axes | None = None) -> plt.Figure:
    """Heatmap of `metric` over (t_high rows, t_low columns) from `entropylab.tokens.decoding.temperature_grid`."""
    import seaborn as sns

    apply_style()
    table = grid.pivot(index="t_high", columns="t_low", values=metric)
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.0 * table.shape[1] + 2.4, 0.6 * table.shape[0] + 1.4))
    else:
        fig = ax.figure
    sns.heatmap(table, annot=True, fmt=".3f", cmap="viridis", ax=ax, cbar_kws={"label": metric})
    ax.set_xlabel("temperature at low-entropy tokens")
    ax.set_ylabel("temperature at high-entropy tokens")
    ax.set_title(f"{metric} by split temperature")
    return fig


# --------------------------------------------------------------------------- gallery figures


def token_distribution_figure(profile: pd.DataFrame) -> plt.Figure:
    """`plot_entropy_distribution` of a profile's response tokens, with the 50th, 80th and 95th percentiles."""
    fig = plot_entropy_distribution(
        profile["entropy"].dropna(), percentiles=(50, 80, 95), title="Token entropy of the base model's responses"
    )
    fig.set_size_inches(7.5, 4.0)
    fig.tight_layout()
    return fig


def forking_figure(profile: pd.DataFrame, rho: float = 0.2, top: int = 15) -> plt.Figure:
    """The most frequent forking (top-`rho` entropy) tokens beside the most frequent low-entropy tokens."""
    apply_style()
    high = forking_tokens(profile, rho=rho, min_count=1, top=top)
    low = low_entropy_tokens(profile, rho=rho, min_count=1, top=top)
    fig, axes = plt.subplots(1, 2, figsize=(12.0, 0.3 * max(len(high), len(low), 4) + 1.4))
    plot_forking_tokens(high, ax=axes[0], title=f"Forking tokens (top {rho:.0%} entropy)")
    plot_forking_tokens(low, ax=axes[1], title=f"Low-entropy tokens (bottom {1 - rho:.0%})")
    axes[0].set_xlabel("occurrences above the cutoff (label: mean H in nats, share of the token's uses)")
    axes[1].set_xlabel("occurrences below the cutoff (label: mean H in nats, share of the token's uses)")
    fig.tight_layout()
    return fig


def temperature_grid_figure(grid: pd.DataFrame) -> plt.Figure:
    """`plot_temperature_grid` with the entropy cutoff (a `cutoff` column, when there) in the title."""
    fig = plot_temperature_grid(grid)
    ax = fig.axes[0]
    cut = f" (high entropy: H ≥ {grid['cutoff'].iloc[0]:.3g} nats)" if "cutoff" in grid else ""
    ax.set_title(f"Accuracy by split temperature{cut}")
    fig.tight_layout()
    return fig


def overlap_figure(overlap: pd.DataFrame, reference: float = 0.86) -> plt.Figure:
    """Overlap of the base model's top-20% entropy positions with each checkpoint's, and the mean entropy
    (`experiments.overlap_over_training`)."""
    apply_style()
    rho = overlap.attrs.get("rho", 0.2)
    c1, c2, c3 = colors(3)
    fig, (ax, ax_h) = plt.subplots(1, 2, figsize=(10.5, 3.8))
    ax.plot(overlap["step"], overlap["overlap"], marker="o", color=c1, lw=1.6, label="base vs checkpoint")
    ax.axhline(reference, color=c2, ls="--", lw=1.2, label=f"Wang et al. (Qwen3-8B): > {reference:.0%}")
    ax.set(
        xlabel="training step of the checkpoint (0 = base model)",
        ylabel=f"share of top-{rho:.0%} positions kept",
        title="Top-entropy positions shared with the base model",
    )
    ax.set_ylim(min(0.0, float(overlap["overlap"].min()) - 0.05), 1.05)
    ax.legend(loc="lower left")
    ax_h.plot(overlap["step"], overlap["mean_entropy"], marker="o", color=c3, lw=1.6)
    ax_h.set(
        xlabel="training step of the checkpoint (0 = base model)",
        ylabel="mean token entropy (nats)",
        title="Entropy of the same responses under each checkpoint",
    )
    fig.tight_layout()
    return fig
