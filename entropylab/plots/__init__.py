"""Figures. One module per figure family; the seaborn style lives in `style`. No torch here."""

from entropylab.plots.style import apply_style, save_figure

__all__ = ["apply_style", "save_figure"]
