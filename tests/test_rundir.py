"""The run directory: the metrics log and its bad-line rule, resume truncation, rollout dumps, checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from entropylab import logs, rundir
from entropylab.errors import EntropylabError, LogFormatError
from entropylab.logs.follow import Follower
from entropylab.rundir import DUMP_COLUMNS, DumpError, MetricsError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run directory with dumps of steps 0..9, each with a micro_batch column."""
    run_dir = tmp_path_factory.mktemp("run")
    for step in range(10):
        rundir.write_dump(run_dir, step, rundir.coerce_dump(_dump_frame(step=step).assign(micro_batch=0)))
    return run_dir


def _dump_frame(n: int = 6, step: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "step": step,
            "prompt_id": 0,
            "sample_id": np.arange(n) // 3,
            "position": np.arange(n) % 3,
            "token_id": np.arange(n),
            "token": [f"t{i}" for i in range(n)],
            "logprob": -np.linspace(0.1, 2, n),
            "old_logprob": -np.linspace(0.1, 2, n),
            "entropy": 1.0,
            "advantage": np.linspace(-1, 1, n),
            "reward": 0.5,
            "covariance": 0.0,
        }
    )


def _metrics(run_dir: Path, text: str) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / rundir.METRICS).write_text(text)
    return run_dir


# ---------------------------------------------------------------- names


def test_step_names_round_trip():
    assert rundir.step_name(42) == "step_000042" and rundir.step_of("step_000042") == 42
    assert rundir.step_of("step_000042.parquet") == 42 and rundir.dump_path("r", 3).name == "step_000003.parquet"
    assert [rundir.step_of(n) for n in ("step_000042.tmp", "step_x", "step_000001.parquet.tmp", "x")] == [None] * 4


# ---------------------------------------------------------------- metrics: writer and the bad-line rule


def test_writer_flushes_each_record_before_returning(tmp_path):
    w = rundir.MetricsWriter(tmp_path)
    try:
        w.write({"step": 1, "entropy": np.float32(0.5), "x": float("nan")})
        assert rundir.read_metrics(tmp_path) == [{"step": 1, "entropy": 0.5, "x": None}]  # before close
        w.write({"step": 2, "entropy": float("inf")})
        assert rundir.read_metrics(tmp_path)[-1] == {"step": 2, "entropy": None}
    finally:
        w.close()


def test_a_torn_last_line_is_skipped_with_a_note(tmp_path):
    run_dir = _metrics(tmp_path / "r", '{"step": 0, "entropy": 1.0}\n{"step": 1, "entropy": 0.9}\n{"step": 2, "entr')
    assert [r["step"] for r in rundir.read_metrics(run_dir)] == [0, 1]
    assert rundir.metrics_frame(run_dir)["step"].tolist() == [0, 1]
    records, notes = rundir.parse_metrics((run_dir / rundir.METRICS).read_text(), run_dir / rundir.METRICS)
    assert [n for n, _ in records] == [1, 2] and len(notes) == 1 and "the last line has no newline" in notes[0]
    df = logs.load(run_dir)
    assert df["step"].tolist() == [0, 1] and df.attrs["entropylab"]["r"]["notes"] == notes
    # a complete last record whose newline is not written yet is read; blank lines are nothing
    _metrics(run_dir, '{"step": 0}\n\n{"step": 1}')
    assert rundir.read_metrics(run_dir) == [{"step": 0}, {"step": 1}]


@pytest.mark.parametrize(
    "text, line, what",
    [
        ('{"step": 0}\nnot json\n{"step": 1}\n', 2, "not JSON"),
        ('{"step": 0}\n{"step": 1, "ent{"step": 1}\n', 2, "not JSON"),  # a torn line appended to: not the last
        ('{"step": 0}\n{"step": 1, "entr\n', 2, "not JSON"),  # it has its newline: complete, and bad
        ('{"step": 0}\n[1, 2]\n', 2, "not a JSON object"),
    ],
)
def test_a_bad_line_before_the_end_is_an_error_naming_file_and_line(tmp_path, text, line, what):
    run_dir = _metrics(tmp_path / "r", text)
    where = f"{run_dir / rundir.METRICS}:{line}: {what}"
    for read in (rundir.read_metrics, rundir.metrics_frame, logs.load):
        with pytest.raises(MetricsError) as err:
            read(run_dir)
        assert str(err.value).startswith(where) and "\n" not in str(err.value), read
        assert isinstance(err.value, LogFormatError) and isinstance(err.value, EntropylabError)
    follower = Follower(run_dir)
    with pytest.raises(MetricsError, match=f"{rundir.METRICS}:{line}: "):
        follower.poll()


def test_following_a_run_directory_reads_what_load_reads(tmp_path):
    run_dir = _metrics(tmp_path / "r", "")
    follower = Follower(run_dir)
    lines = [json.dumps({"step": s, "entropy": 1.0 - 0.1 * s, "val/acc": 0.1 * s}) + "\n" for s in range(4)]
    with (run_dir / rundir.METRICS).open("a") as f:
        for line in lines:
            f.write(line[:10])
            f.flush()
            follower.poll()
            f.write(line[10:])
            f.flush()
            follower.poll()
    pd.testing.assert_frame_equal(follower.frame(), logs.load(run_dir))


def test_metrics_frame_merges_lines_of_one_step(tmp_path):
    lines = [
        {"step": 0, "entropy": 1.0, "lr": 1e-3},
        {"step": 1, "entropy": None},
        {"step": 1, "val/acc": 0.5},
        {"step": 1, "entropy": 0.9},
    ]
    run_dir = _metrics(tmp_path / "r", "".join(json.dumps(r) + "\n" for r in lines))
    m = rundir.metrics_frame(run_dir)
    assert m["step"].tolist() == [0, 1]
    assert m.loc[1, "entropy"] == 0.9 and m.loc[1, "val/acc"] == 0.5 and np.isnan(m.loc[1, "lr"])
    assert rundir.metrics_frame(tmp_path / "absent").empty and rundir.read_metrics(tmp_path / "absent") == []
    _metrics(run_dir, '{"step": 0}\n{"entropy": 0.4}\n')
    with pytest.raises(MetricsError, match=r"metrics\.jsonl:2: expected a JSON object with a 'step' key"):
        rundir.metrics_frame(run_dir)


# ---------------------------------------------------------------- resume


def test_prune_after_drops_later_lines_dumps_and_temporary_files(tmp_path):
    records = [{"step": s, "entropy": 1.0 / (s + 1)} for s in range(6)]
    run_dir = _metrics(tmp_path / "r", "".join(json.dumps(r) + "\n" for r in records) + '{"step": 6, "en')
    for step in (1, 2, 4):
        rundir.write_dump(run_dir, step, rundir.coerce_dump(_dump_frame(step=step)))
    (run_dir / rundir.ROLLOUTS / "step_000003.parquet.tmp").write_bytes(b"half written")
    rundir.prune_after(run_dir, 2)
    assert rundir.read_metrics(run_dir) == records[:3]
    assert (run_dir / rundir.METRICS).read_text().endswith("}\n")  # the torn line is gone: appending is safe
    assert list(rundir.dump_files(run_dir)) == [1, 2]
    assert sorted(p.name for p in (run_dir / rundir.ROLLOUTS).iterdir()) == [
        "step_000001.parquet",
        "step_000002.parquet",
    ]
    assert rundir.truncate_metrics(run_dir, 0) == 1 and rundir.read_metrics(run_dir) == records[:1]
    assert not list(run_dir.glob("*.tmp"))


# ---------------------------------------------------------------- dumps


def test_dump_round_trip(tmp_path):
    frame = rundir.coerce_dump(_dump_frame(step=3).assign(micro_batch=1))
    path = rundir.write_dump(tmp_path, 3, frame)
    assert path == rundir.dump_path(tmp_path, 3) and rundir.dump_files(tmp_path) == {3: path}
    assert not list(path.parent.glob("*.tmp"))
    pd.testing.assert_frame_equal(rundir.read_dumps(tmp_path), frame, check_dtype=False)
    for name, dtype in DUMP_COLUMNS.items():
        if dtype != "string":
            assert str(rundir.read_dumps(tmp_path)[name].dtype) == dtype, name
    assert rundir.dump_columns(tmp_path) == [*DUMP_COLUMNS, "micro_batch"]
    rundir.write_dump(tmp_path, 5, pa.Table.from_pandas(frame.assign(step=5)))  # a pyarrow Table as well
    assert rundir.read_dumps(tmp_path, columns=["logprob"])["step"].tolist() == [3] * 6 + [5] * 6


def test_validate_dump_names_file_and_missing_columns(tmp_path):
    df = _dump_frame().drop(columns=["advantage", "logprob"])
    with pytest.raises(DumpError) as err:
        rundir.validate_dump(df, tmp_path / "step_000003.parquet")
    msg = str(err.value)
    assert "step_000003.parquet: missing column(s) logprob, advantage (has: step, prompt_id" in msg
    assert isinstance(err.value, EntropylabError)


def test_validate_dump_types_and_schema_objects():
    rundir.validate_dump(_dump_frame())  # the full schema passes
    rundir.validate_dump(_dump_frame().astype({"logprob": int}), "x")  # integers are acceptable floats
    with pytest.raises(DumpError, match=r"x\.parquet.*step \(float, expected integer\).*token \(integer"):
        rundir.validate_dump(_dump_frame().assign(step=0.0, token=1), "x.parquet")
    schema = pa.schema([("step", pa.int64()), ("logprob", pa.float32())])
    rundir.validate_dump(schema, "s", columns=["step", "logprob"])
    with pytest.raises(DumpError, match="missing column.*advantage"):
        rundir.validate_dump(schema, "s", columns=["step", "advantage"])


def test_coerce_dump_casts_to_the_schema_dtypes():
    out = rundir.coerce_dump(_dump_frame().assign(micro_batch=0))
    for name, dtype in DUMP_COLUMNS.items():
        if dtype != "string":
            assert str(out[name].dtype) == dtype, name
    assert str(out["micro_batch"].dtype) == "int64"


def test_read_dumps_reads_only_requested_columns_and_steps(run):
    files = rundir.dump_files(run)
    assert list(files) == list(range(10)) and files[7] == rundir.dump_path(run, 7)
    df = rundir.read_dumps(run, steps=[9, 3], columns=["logprob", "advantage"])
    assert list(df.columns) == ["step", "logprob", "advantage"]
    assert df["step"].unique().tolist() == [3, 9] and len(df) == 2 * 6
    full = rundir.read_dumps(run, steps=[0])
    rundir.validate_dump(full)
    assert "micro_batch" in full.columns


def test_read_dumps_errors_name_the_problem(tmp_path, run):
    with pytest.raises(DumpError, match="no rollout dumps"):
        rundir.read_dumps(tmp_path)
    with pytest.raises(DumpError, match=r"no dump for step\(s\) \[99\]"):
        rundir.read_dumps(run, steps=[1, 99])
    (tmp_path / rundir.ROLLOUTS).mkdir()
    _dump_frame().drop(columns="advantage").to_parquet(rundir.dump_path(tmp_path, 5))
    (tmp_path / rundir.ROLLOUTS / "step_000006.parquet.tmp").write_bytes(b"half written")  # ignored
    with pytest.raises(DumpError, match=r"step_000005\.parquet: missing column\(s\) advantage"):
        rundir.read_dumps(tmp_path, columns=["logprob", "advantage"])
    assert rundir.read_dumps(tmp_path, columns=["logprob"])["step"].tolist() == [0] * 6
    rundir.dump_path(tmp_path, 8).write_bytes(b"not parquet")
    with pytest.raises(DumpError, match="step_000008.parquet: cannot be read as Parquet"):
        rundir.read_dumps(tmp_path, columns=["logprob"])
    with pytest.raises(DumpError, match="step_000008.parquet: cannot be read as Parquet"):
        rundir.dump_columns(tmp_path)


# ---------------------------------------------------------------- checkpoints


class _Saves:
    """A model or tokenizer as save_checkpoint sees it: something with save_pretrained."""

    def __init__(self, name: str) -> None:
        self.name = name

    def save_pretrained(self, path: Path, **kwargs) -> None:
        (Path(path) / self.name).write_text("saved")


def test_checkpoints_are_listed_complete_and_pruned(tmp_path):
    assert rundir.list_checkpoints(tmp_path) == []
    with pytest.raises(EntropylabError, match="no checkpoint found"):
        rundir.latest_checkpoint(tmp_path)
    model, tokenizer = _Saves("model.safetensors"), _Saves("tokenizer.json")
    for step in (2, 4, 6):
        out = rundir.save_checkpoint(tmp_path, step, model, tokenizer, lambda p: p.write_text("state"), keep=2)
        assert out == rundir.checkpoint_dir(tmp_path, step)
        assert sorted(f.name for f in out.iterdir()) == sorted(
            ["model.safetensors", "tokenizer.json", rundir.TRAINER_STATE]
        )
    (tmp_path / rundir.CHECKPOINTS / "step_000008.tmp").mkdir()  # half written: ignored
    (tmp_path / rundir.CHECKPOINTS / "step_000009").mkdir()  # no trainer state: not complete
    assert rundir.list_checkpoints(tmp_path) == [4, 6]  # keep=2 removed step 2
    assert rundir.latest_checkpoint(tmp_path) == rundir.checkpoint_dir(tmp_path, 6)


def test_rundir_imports_neither_torch_nor_pandas():
    code = (
        "import sys, entropylab.rundir; bad = [m for m in ('torch', 'pandas', 'pyarrow') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
