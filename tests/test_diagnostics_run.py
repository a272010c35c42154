"""Rollout dumps on disk: schema validation, the reader, metrics.jsonl, and diagnose() end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from entropylab.diagnostics import (
    DUMP_COLUMNS,
    DumpError,
    coerce_dump,
    diagnose,
    dump_files,
    dump_path,
    read_dumps,
    read_metrics,
    validate_dump,
)
from entropylab.diagnostics.synthetic import random_dump, simulate_bandit_run
from entropylab.errors import EntropylabError, LogFormatError
from entropylab.plots.diagnostics import write_diagnostics_figures


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return simulate_bandit_run(tmp_path_factory.mktemp("run") / "bandit", steps=20, prompts=4, group=8, length=16)


def _dump_frame(n: int = 6, step: int = 0) -> pd.DataFrame:
    return pd.DataFrame({
        "step": step, "prompt_id": 0, "sample_id": np.arange(n) // 3, "position": np.arange(n) % 3,
        "token_id": np.arange(n), "token": [f"t{i}" for i in range(n)], "logprob": -np.linspace(0.1, 2, n),
        "old_logprob": -np.linspace(0.1, 2, n), "entropy": 1.0, "advantage": np.linspace(-1, 1, n),
        "reward": 0.5, "covariance": 0.0,
    })


# ---------------------------------------------------------------- schema


def test_validate_dump_names_file_and_missing_columns(tmp_path):
    df = _dump_frame().drop(columns=["advantage", "logprob"])
    with pytest.raises(DumpError) as err:
        validate_dump(df, tmp_path / "step_000003.parquet")
    msg = str(err.value)
    assert "step_000003.parquet: missing column(s) logprob, advantage (has: step, prompt_id" in msg
    assert isinstance(err.value, EntropylabError)


def test_validate_dump_types_and_schema_objects(tmp_path):
    validate_dump(_dump_frame())  # the full schema passes
    validate_dump(_dump_frame().astype({"logprob": int}), "x")  # integers are acceptable floats
    with pytest.raises(DumpError, match=r"x\.parquet.*step \(float, expected integer\).*token \(integer"):
        validate_dump(_dump_frame().assign(step=0.0, token=1), "x.parquet")
    schema = pa.schema([("step", pa.int64()), ("logprob", pa.float32())])
    validate_dump(schema, "s", columns=["step", "logprob"])
    with pytest.raises(DumpError, match="missing column.*advantage"):
        validate_dump(schema, "s", columns=["step", "advantage"])


def test_coerce_dump_casts_to_the_schema_dtypes():
    out = coerce_dump(_dump_frame().assign(micro_batch=0))
    for name, dtype in DUMP_COLUMNS.items():
        if dtype != "string":
            assert str(out[name].dtype) == dtype, name
    assert str(out["micro_batch"].dtype) == "int64"


# ---------------------------------------------------------------- reading


def test_read_dumps_reads_only_requested_columns_and_steps(run):
    files = dump_files(run)
    assert list(files) == list(range(20)) and files[7] == dump_path(run, 7)
    df = read_dumps(run, steps=[9, 3], columns=["logprob", "advantage"])
    assert list(df.columns) == ["step", "logprob", "advantage"]
    assert df["step"].unique().tolist() == [3, 9] and len(df) == 2 * 4 * 8 * 16
    full = read_dumps(run, steps=[0])
    validate_dump(full)
    assert "micro_batch" in full.columns


def test_read_dumps_errors_name_the_problem(tmp_path, run):
    with pytest.raises(DumpError, match="no rollout dumps"):
        read_dumps(tmp_path)
    with pytest.raises(DumpError, match=r"no dump for step\(s\) \[99\]"):
        read_dumps(run, steps=[1, 99])
    (tmp_path / "rollouts").mkdir()
    _dump_frame().drop(columns="advantage").to_parquet(dump_path(tmp_path, 5))
    (tmp_path / "rollouts" / "step_000006.parquet.tmp").write_bytes(b"half written")  # ignored
    with pytest.raises(DumpError, match=r"step_000005\.parquet: missing column\(s\) advantage"):
        read_dumps(tmp_path, columns=["logprob", "advantage"])
    assert read_dumps(tmp_path, columns=["logprob"])["step"].tolist() == [0] * 6
    dump_path(tmp_path, 8).write_bytes(b"not parquet")
    with pytest.raises(DumpError, match="step_000008.parquet: cannot be read as Parquet"):
        read_dumps(tmp_path, columns=["logprob"])


def test_read_metrics_merges_steps_and_tolerates_a_torn_last_line(tmp_path):
    lines = [{"step": 0, "entropy": 1.0, "lr": 1e-3}, {"step": 1, "entropy": None}, {"step": 1, "val/acc": 0.5},
             {"step": 1, "entropy": 0.9}]
    text = "".join(json.dumps(r) + "\n" for r in lines) + '{"step": 2, "entr'
    (tmp_path / "metrics.jsonl").write_text(text)
    m = read_metrics(tmp_path)
    assert m["step"].tolist() == [0, 1]
    assert m.loc[1, "entropy"] == 0.9 and m.loc[1, "val/acc"] == 0.5 and np.isnan(m.loc[1, "lr"])
    (tmp_path / "metrics.jsonl").write_text('{"step": 0}\nnot json\n{"step": 1}\n')
    with pytest.raises(LogFormatError, match=r"metrics\.jsonl:2"):
        read_metrics(tmp_path)
    assert read_metrics(tmp_path / "absent").empty


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
    assert sorted(p.name for p in figures) == ["covariance_quantiles.png", "covariance_quantiles.svg",
                                               "entropy_change.png", "entropy_change.svg"]
    assert all(p.exists() and p.stat().st_size > 1000 for p in figures)
    assert d.table1().columns.tolist() == ["tokens", "step 0", "step 10", "step 19"]
    text = d.report(figures)
    for needle in ("Table 1", "step 0", "step 10", "step 19", "top 0.02%", "natural PG", "Pearson",
                   "closest: batch", "covariance_quantiles.png"):
        assert needle in text, needle


def test_diagnose_micro_scope_without_metrics(tmp_path):
    run = simulate_bandit_run(tmp_path / "r", steps=6, prompts=2, group=4, length=8, dump_steps=[0, 1, 2, 4])
    (run / "metrics.jsonl").unlink()
    d = diagnose(run, scope="micro")
    assert d.scope == "micro" and d.files == []
    assert d.measured_source == "dump" and d.eta_source == "unit"
    assert d.theory["measured"].notna().tolist() == [True, True, False, False]  # needs step + 1 dumped
    assert "fewer than 3 steps" in d.report()
    no_micro = tmp_path / "n"
    (no_micro / "rollouts").mkdir(parents=True)
    read_dumps(run, steps=[0]).drop(columns="micro_batch").to_parquet(dump_path(no_micro, 0))
    with pytest.raises(DumpError, match="micro_batch"):
        diagnose(no_micro, scope="micro")
    with pytest.raises(DumpError, match="does not exist"):
        diagnose(tmp_path / "missing")


def test_random_dump_shape_and_micro_batches():
    df = random_dump(10_000, 7, micro_batches=4)
    assert len(df) == 10_000 and df["step"].nunique() == 7 and df["step"].is_monotonic_increasing
    assert df.groupby("step")["micro_batch"].nunique().eq(4).all()


def test_diagnostics_statistics_do_not_import_torch_or_matplotlib():
    code = ("import sys, entropylab.diagnostics; "
            "bad = [m for m in ('torch', 'matplotlib') if m in sys.modules]; assert not bad, bad")
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
