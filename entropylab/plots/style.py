"""The one place where entropylab's figure style and display names are set, and where figures are saved."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

PALETTE = "colorblind"
RC = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "none",
    "svg.hashsalt": "entropylab",  # stable element ids: a re-made figure with the same data is the same file
}


def apply_style() -> None:
    """Seaborn's whitegrid with a colour-blind palette and readable sizes at README scale."""
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE, font_scale=0.9, rc=RC)


def colors(n: int) -> list:
    """n distinct colours from the project palette."""
    return sns.color_palette(PALETTE, n_colors=max(n, 1))


def save_figure(fig: plt.Figure, path_stem: str | Path, formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """Save `fig` as PATH_STEM.png and PATH_STEM.svg (creating folders); returns the written paths."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = stem.parent / f"{stem.name}.{fmt}"  # not with_suffix: run names contain dots
        # no creation date (SVG) or software stamp (PNG): regenerating unchanged data leaves git clean
        fig.savefig(path, format=fmt, metadata={"Date": None} if fmt in ("svg", "pdf") else {"Software": None})
        written.append(path)
    plt.close(fig)
    return written


def readable(fig: plt.Figure, min_width: float = 7.5) -> plt.Figure:
    """Enlarge a figure narrower than `min_width` inches (about 1100 px at 150 dpi), keeping its aspect."""
    w, h = fig.get_size_inches()
    if w < min_width:
        fig.set_size_inches(min_width, h * min_width / w)
    return fig


def _placeholder(ax: plt.Axes, text: str, title: str | None = None) -> None:
    """An axis that says why there is nothing to draw (too few points at this scale)."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="0.3", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)


#: Display names of the sampling methods and of the trainer presets.
METHOD_LABELS = {
    "plain": "base (T=1)",
    "temp": "low temp (1/α)",
    "best_of_n": "best of n",
    "mh": "power (MH)",
    "mh_entropy": "power (MH, entropy cuts)",
    "smc": "power (SMC)",
    "sps": "power (SPS)",
    "grpo": "GRPO",
}
PRESET_LABELS = {
    "grpo": "GRPO (all tokens)",
    "clip_cov": "Clip-Cov",
    "kl_cov": "KL-Cov",
    "entropy_bonus": "entropy bonus",
    "clip_higher": "clip-higher",
    "ref_kl": "reference KL",
    "top20": "top 20% tokens",
    "bottom80": "bottom 80% tokens",
}


def relabel(frame: pd.DataFrame, labels: Mapping[str, str] = PRESET_LABELS, column: str = "preset") -> pd.DataFrame:
    """A copy of `frame` with display names in `column`."""
    return frame.assign(**{column: frame[column].map(lambda v: labels.get(v, v))})


def relabel_comparison(comparison, labels: Mapping[str, str] = METHOD_LABELS):
    """A copy of a `compare.Comparison` (a dataclass with table, pass_at_k, samples) with display method names."""
    return dataclasses.replace(
        comparison,
        table=relabel(comparison.table, labels, "method"),
        pass_at_k=relabel(comparison.pass_at_k, labels, "method"),
        samples=relabel(comparison.samples, labels, "method"),
        meta=dict(comparison.meta),
    )
