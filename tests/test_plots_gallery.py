"""The gallery's figure builders (entropylab.plots) on small synthetic data: each returns a figure with the
panels, labels and legend entries the data call for, and a note where there is nothing to draw."""

from __future__ import annotations

import dataclasses

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from entropylab import law  # noqa: E402
from entropylab.plots import diagnostics as dp  # noqa: E402
from entropylab.plots import interventions as ip  # noqa: E402
from entropylab.plots import law as lp  # noqa: E402
from entropylab.plots import sampling as sp  # noqa: E402
from entropylab.plots import tokens as tp  # noqa: E402
from entropylab.plots.style import METHOD_LABELS, relabel, relabel_comparison  # noqa: E402


def _metrics(presets=("grpo", "top20", "bottom80", "clip_cov")) -> pd.DataFrame:
    rows = []
    for i, preset in enumerate(presets):
        for step in range(0, 21):
            h = 1.0 * np.exp(-step / (5 + 3 * i))
            rows.append(
                {
                    "preset": preset,
                    "step": step,
                    "entropy": h,
                    "val/acc": 0.9 - 0.6 * np.exp(h) / np.e + 0.01 * np.sin(step) if step % 2 == 0 else np.nan,
                }
            )
    return pd.DataFrame(rows)


def _points(runs=("grpo", "clip_cov")) -> pd.DataFrame:
    m = _metrics(runs).dropna(subset=["val/acc"])
    return pd.DataFrame({"run": m["preset"], "step": m["step"], "entropy": m["entropy"], "score": m["val/acc"]})


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_run_figures_show_display_names_and_the_runs_they_are_about():
    m = _metrics()
    fig = ip.entropy_accuracy_figure(m)
    assert len(fig.axes) == 2 and _legend(fig.axes[0]) == ["GRPO (all tokens)"]
    assert fig.axes[0].get_xlabel() == "training step" and "entropy" in fig.axes[0].get_ylabel()
    assert _legend(ip.interventions_figure(m).axes[0]) == [
        "GRPO (all tokens)",
        "top 20% tokens",
        "bottom 80% tokens",
        "Clip-Cov",
    ]
    top = ip.top20_figure(m)
    assert _legend(top.axes[0]) == ["GRPO (all tokens)", "top 20% tokens", "bottom 80% tokens"]
    assert "top 20%" in top.get_suptitle()


def test_law_figures_one_fit_per_run_and_a_note_without_fits():
    pts = _points()
    fits = law.fit_runs(pts)
    fig = lp.law_fit_runs_figure({"fits": fits})
    assert len(fig.axes) == 1
    labels = _legend(fig.axes[0])
    assert len(labels) == 2 and labels[0].startswith("GRPO (all tokens): a=") and labels[1].startswith("Clip-Cov:")
    table = pd.DataFrame(
        {
            "size": ["xs", "s"],
            "n_params": [1e5, 6e5],
            "a": [0.5, 0.6],
            "b": [0.9, 1.0],
            "ceiling": [0.4, 0.4],
            "r2": [0.9, 0.9],
            "ok": [True, True],
        }
    )
    sized = lp.law_fit_runs_figure({"fits": fits}, {"fits": {"xs": fits["grpo"]}, "table": table})
    assert len(sized.axes) == 3 and sized.axes[2].get_xscale() == "log"
    assert _legend(sized.axes[1])[0].startswith("xs (0.10M)")
    empty = lp.law_fit_runs_figure({"fits": {}})
    assert "no run has enough validation points" in " ".join(_texts(empty.axes[0]))


def test_forecast_figures_forward_and_reverse():
    fig = lp.law_forecast_figure(_points())
    assert [ax.get_title() for ax in fig.axes] == [
        "Forecast from the first 15% of training",
        "Forecast from the last 15% of training",
    ]
    assert "GRPO (all tokens)" in fig.get_suptitle()
    fits = law.fit_runs(_points())
    forecasts = {"grpo": law.forecast(_points()[lambda d: d["run"] == "grpo"]), "clip_cov": None}
    real = lp.law_real_logs_figure(fits, forecasts)
    assert len(real.axes) == 2 and real.axes[0].get_title() == "Reward-entropy law on 2 runs"
    assert real.axes[1].get_title() == "grpo: forecast from the first 15%"
    assert lp.short_run_name("Qwen2.5-0.5B-bsz256_2-prompt512-resp256-0.538") == "Qwen2.5-0.5B, resp 256"


def _cov_table() -> pd.DataFrame:
    steps = np.arange(0, 10)
    return pd.DataFrame(
        {
            "step": steps,
            "top 0.2%": 5.0 / (1 + steps),
            "top 20%": 0.5 / (1 + steps),
            "all": 0.01 / (1 + steps),
            "n_tokens": 1000 + steps,
        }
    )


def test_diagnostics_figures_table1_and_the_entropy_change_note():
    from entropylab.diagnostics.diagnose import table1_frame

    fig = dp.covariance_figure(_cov_table())
    assert fig.axes[0].get_yscale() == "log" and _legend(fig.axes[0])[-1] == "all tokens"
    frame = table1_frame(_cov_table())
    assert frame.columns.tolist() == ["tokens", "step 0", "step 5", "step 9"]
    assert frame["tokens"].tolist() == ["top 0.2%", "top 20%", "all", "n_tokens"]
    table = dp.table1_figure(frame).axes[0].tables[0]
    assert table.get_celld()[(1, 0)].get_text().get_text() == "top 0.2%"
    assert table.get_celld()[(4, 1)].get_text().get_text() == "1,000"
    theory = pd.DataFrame(
        {"step": [0, 1, 2, 3], "predicted_npg": [-1e-3, -2e-3, -1e-3, 5e-4], "measured": [-0.1, -0.3, -0.1, 0.02]}
    )
    corr = pd.DataFrame(
        {"n": [4], "pearson": [0.9], "spearman": [0.8], "sign_agreement": [1.0], "scale": [100.0]}, index=["npg"]
    )
    both = dp.entropy_change_figure(theory, corr)
    assert len(both.axes) == 2 and both.axes[0].get_title() == "Entropy change: theory against the run"
    none = dp.entropy_change_figure(theory, corr.assign(n=0))
    assert len(none.axes) == 1 and "no dumped step" in " ".join(_texts(none.axes[0]))


def _profile(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "text_id": np.arange(n) // 20,
            "position": np.arange(n) % 20,
            "token": rng.choice(list("abcdef"), n),
            "entropy": rng.exponential(0.2, n),
        }
    )


def test_token_figures():
    dist = tp.token_distribution_figure(_profile())
    assert dist.axes[0].get_xscale() == "log" and _legend(dist.axes[0])[0].startswith("p50 = ")
    fork = tp.forking_figure(_profile())
    assert [ax.get_title().split(",")[0] for ax in fork.axes] == [
        "Forking tokens (top 20% entropy)",
        "Low-entropy tokens (bottom 80%)",
    ]
    grid = pd.DataFrame(
        [
            {"t_high": th, "t_low": tl, "accuracy": 0.1 * th + tl / 10, "cutoff": 0.25}
            for th in (0.5, 1.0)
            for tl in (0.5, 1.0)
        ]
    )
    assert tp.temperature_grid_figure(grid).axes[0].get_title() == (
        "Accuracy by split temperature (high entropy: H ≥ 0.25 nats)"
    )
    overlap = pd.DataFrame({"step": [0, 4, 8], "overlap": [1.0, 0.9, 0.8], "mean_entropy": [0.3, 0.2, 0.1]})
    fig = tp.overlap_figure(overlap)
    assert fig.axes[0].get_ylabel() == "share of top-20% positions kept"
    assert np.allclose(fig.axes[1].get_lines()[0].get_ydata(), [0.3, 0.2, 0.1])


def test_frontier_lines_per_sampler_and_points_for_plain_sampling():
    rows = [
        {"method": "plain", "budget": np.nan, "accuracy": 0.3, "cost_x": 1.0},
        {"method": "temp", "budget": np.nan, "accuracy": 0.35, "cost_x": 1.0},
    ]
    rows += [
        {"method": m, "budget": b, "accuracy": 0.3 + 0.05 * i + b / 4000, "cost_x": b / 60}
        for i, m in enumerate(("best_of_n", "smc", "mh_entropy"))
        for b in (128.0, 256.0, 512.0)
    ]
    fig = sp.plot_frontier(relabel(pd.DataFrame(rows), METHOD_LABELS, "method"))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "tokens evaluated per answer (× plain sampling)"
    assert _legend(ax) == ["base (T=1)", "low temp (1/α)", "best of n", "power (SMC)", "power (MH, entropy cuts)"]
    assert [len(line.get_xdata()) for line in ax.get_lines()] == [1, 1, 3, 3, 3]


def test_relabel_comparison_keeps_the_data_and_the_type():
    @dataclasses.dataclass
    class Comp:
        table: pd.DataFrame
        pass_at_k: pd.DataFrame
        samples: pd.DataFrame
        meta: dict

    frame = pd.DataFrame({"method": ["plain", "mh", "custom"], "accuracy": [0.1, 0.2, 0.3]})
    shown = relabel_comparison(Comp(frame, frame, frame, {"alpha": 4}))
    assert isinstance(shown, Comp) and shown.meta == {"alpha": 4}
    assert shown.table["method"].tolist() == ["base (T=1)", "power (MH)", "custom"]
    assert shown.samples["accuracy"].tolist() == [0.1, 0.2, 0.3] and frame["method"].tolist()[0] == "plain"


def test_plots_import_no_torch():
    import subprocess
    import sys

    code = (
        "import sys, entropylab.plots.law, entropylab.plots.sampling, entropylab.plots.tokens, "
        "entropylab.plots.diagnostics, entropylab.plots.interventions, entropylab.plots.style; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
