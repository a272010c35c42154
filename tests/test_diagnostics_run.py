"""diagnose() end to end on a run directory, the synthetic run, and the figures of the theory check."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from entropylab import rundir
from entropylab.diagnostics import diagnose
from entropylab.diagnostics.synthetic import random_dump, simulate_bandit_run
from entropylab.plots.diagnostics import write_diagnostics_figures
from entropylab.rundir import DumpError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return simulate_bandit_run(tmp_path_factory.mktemp("run") / "bandit", steps=20, prompts=4, group=8, length=16)


# ---------------------------------------------------------------- diagnose


def test_diagnose_end_to_end(run, tmp_path):
    d = diagnose(run, tmp_path / "out")
    assert d.table["step"].tolist() == list(range(20))
    assert (d.table["top 0.02%"] >= d.table["top 20%"]).all() and (d.table["top 20%"] >= d.table["all"]).all()
    assert d.measured_source == "metrics" and d.eta_source == "metrics"
    npg = d.correlations.loc["npg"]
    assert npg["n"] == 20 and npg["pearson"] > 0.8 and npg["sign_agreement"] >= 0.8
    assert 0.5 < npg["scale"] < 2.0  # the synthetic run is natural PG in logit space: scale ~ 1
    assert d.covariance_check["batch"] < 1e-4 < d.covariance_check["micro"]
    assert sorted(p.name for p in d.files) == ["covariance_table.csv", "entropy_change.csv"]
    assert pd.read_csv(tmp_path / "out" / "covariance_table.csv").shape == d.table.shape
    figures = write_diagnostics_figures(d.table, d.theory, d.correlations, tmp_path / "out")
    assert sorted(p.name for p in figures) == [
        "covariance_quantiles.png",
        "covariance_quantiles.svg",
        "entropy_change.png",
        "entropy_change.svg",
    ]
    assert all(p.exists() and p.stat().st_size > 1000 for p in figures)
    assert d.table1().columns.tolist() == ["tokens", "step 0", "step 10", "step 19"]
    text = d.report(figures)
    for needle in (
        "Table 1",
        "step 0",
        "step 10",
        "step 19",
        "top 0.02%",
        "natural PG",
        "Pearson",
        "closest: batch",
        "covariance_quantiles.png",
    ):
        assert needle in text, needle


def test_diagnose_micro_scope_without_metrics(tmp_path):
    run = simulate_bandit_run(tmp_path / "r", steps=6, prompts=2, group=4, length=8, dump_steps=[0, 1, 2, 4])
    (run / rundir.METRICS).unlink()
    d = diagnose(run, scope="micro")
    assert d.scope == "micro" and d.files == []
    assert d.measured_source == "dump" and d.eta_source == "unit"
    assert d.theory["measured"].notna().tolist() == [True, True, False, False]  # needs step + 1 dumped
    assert "fewer than 3 steps" in d.report()
    no_micro = tmp_path / "n"
    rundir.write_dump(no_micro, 0, rundir.read_dumps(run, steps=[0]).drop(columns="micro_batch"))
    with pytest.raises(DumpError, match="micro_batch"):
        diagnose(no_micro, scope="micro")
    with pytest.raises(DumpError, match="does not exist"):
        diagnose(tmp_path / "missing")


def test_random_dump_shape_and_micro_batches():
    df = random_dump(10_000, 7, micro_batches=4)
    assert len(df) == 10_000 and df["step"].nunique() == 7 and df["step"].is_monotonic_increasing
    assert df.groupby("step")["micro_batch"].nunique().eq(4).all()


def test_diagnostics_statistics_do_not_import_torch_or_matplotlib():
    code = (
        "import sys, entropylab.diagnostics; "
        "bad = [m for m in ('torch', 'matplotlib') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_entropy_change_scatter_puts_the_power_of_ten_in_the_axis_labels():
    """Values of order 1e-6 are drawn divided by 1e-6 with the power in the label, not as offset text."""
    import matplotlib

    matplotlib.use("Agg")
    from entropylab.plots.diagnostics import plot_entropy_change_scatter

    rng = np.random.default_rng(0)
    pred = rng.normal(size=20) * 3e-6
    frame = pd.DataFrame({"predicted_npg": pred, "measured": 0.5 * pred + rng.normal(size=20) * 1e-3})
    corr = pd.DataFrame({"n": [20], "pearson": [0.1], "spearman": [0.2], "scale": [0.5]}, index=["npg"])
    ax = plot_entropy_change_scatter(frame, corr)
    ax.figure.canvas.draw()
    assert "10$^{-6}$ nats per token" in ax.get_xlabel()
    assert "10$^{-3}$ nats per token" in ax.get_ylabel()
    assert ax.xaxis.get_offset_text().get_text() == "" and ax.yaxis.get_offset_text().get_text() == ""
    assert max(abs(v) for v in ax.get_xlim()) < 100


def test_the_cli_offers_every_covariance_scope():
    """`entropylab diagnose --scope` lists its choices without importing the diagnostics (CLI start-up stays
    light), so the list is checked here against the one table, `covariance.SCOPES`."""
    import argparse

    from entropylab.cli import build_parser
    from entropylab.diagnostics.covariance import SCOPES

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    diag = sub.choices["diagnose"]
    scope = next(a for a in diag._actions if a.dest == "scope")
    assert tuple(scope.choices) == SCOPES
