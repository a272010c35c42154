"""Seed bands in the run figures: a group of runs over several seeds is drawn as its mean ± one std."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from entropylab.plots.interventions import plot_runs, seed_band  # noqa: E402


def runs(seeds: int) -> pd.DataFrame:
    rows = []
    for preset, drop in (("grpo", 0.9), ("clip_cov", 0.3)):
        for s in range(seeds):
            for step in range(0, 11):
                rows.append(
                    {
                        "preset": preset,
                        "seed": s,
                        "step": step,
                        "entropy": 1.0 - drop * step / 10 + 0.01 * s,
                        "val/acc": 0.2 + 0.02 * step + 0.03 * s if step % 5 == 0 else np.nan,
                    }
                )
    return pd.DataFrame(rows)


def test_seed_band_is_mean_and_std_over_seeds():
    b = seed_band(runs(3)[lambda d: d["preset"] == "grpo"], "val/acc")
    assert b["step"].tolist() == [0, 5, 10] and (b["n"] == 3).all()
    assert np.allclose(b["mean"], [0.23, 0.33, 0.43]) and np.allclose(b["std"], 0.03)


def test_plot_runs_draws_bands_only_for_several_seeds():
    fig = plot_runs(runs(3))
    ax_h, ax_r = fig.axes[:2]
    assert sum(isinstance(c, PolyCollection) for c in ax_h.collections) == 2  # one band per preset
    assert [t.get_text() for t in ax_h.get_legend().get_texts()] == ["grpo (3 seeds)", "clip_cov (3 seeds)"]
    line = ax_r.get_lines()[0]
    assert np.allclose(line.get_ydata(), [0.23, 0.33, 0.43])
    single = plot_runs(runs(1).drop(columns="seed"))
    assert not any(isinstance(c, PolyCollection) for c in single.axes[0].collections)
    assert [t.get_text() for t in single.axes[0].get_legend().get_texts()] == ["grpo", "clip_cov"]
