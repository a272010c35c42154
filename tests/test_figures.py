"""`make_figures` at the quick scale writes every named figure, each a non-blank image."""

from __future__ import annotations

import time

import matplotlib.image as mpimg
import pytest

from entropylab.figures import FIGURES


@pytest.mark.slow
def test_make_figures_quick(tmp_path, shared_runs_dir):
    from entropylab.figures import make_figures

    start = time.time()
    written = make_figures(tmp_path / "figures", scale="quick", runs_dir=shared_runs_dir, progress=False)
    elapsed = time.time() - start
    assert {p.name for p in written} >= {f"{name}.{ext}" for name in FIGURES for ext in ("png", "svg")}
    for name in FIGURES:
        png = tmp_path / "figures" / f"{name}.png"
        image = mpimg.imread(png)
        assert image.var() > 1e-4, f"{name}.png is blank"
        assert 700 <= image.shape[1] <= 2000, f"{name}.png is {image.shape[1]} px wide"
    assert (tmp_path / "figures" / "table1.csv").read_text().startswith("tokens,")
    assert elapsed < 180, f"make_figures(scale='quick') took {elapsed:.0f} s"


def test_figure_names_are_stable():
    assert len(FIGURES) == 20 and "law_real_logs" in FIGURES and "table1" in FIGURES
