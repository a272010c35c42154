"""The one place where entropylab's figure style is set, and where figures are saved."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
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
