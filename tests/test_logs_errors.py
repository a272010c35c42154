"""entropylab.logs on bad input: every case is a clear LogFormatError (or a LogWarning), never a traceback."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from entropylab import logs
from entropylab.errors import EntropylabError, LogFormatError

FIX = Path(__file__).resolve().parent / "fixtures" / "logs"


def error(*args, **kwargs) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", logs.LogWarning)
        with pytest.raises(LogFormatError) as info:
            logs.load(*args, **kwargs)
    assert isinstance(info.value, EntropylabError)
    return str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    msg = error(tmp_path / "nope.log")
    assert str(tmp_path / "nope.log") in msg and "no such file or directory" in msg
    assert "no such file" in error(tmp_path / "nope.log", format="verl-console")
    assert "no log given" in error([])


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("e.log", "auto"),
        ("e.log", "verl-console"),
        ("e.csv", "auto"),
        ("e.jsonl", "jsonl"),
        ("trainer_state.json", "trl"),
        ("e.parquet", "auto"),
    ],
)
def test_empty_file(tmp_path: Path, name: str, fmt: str) -> None:
    path = tmp_path / name
    path.write_text("  \n\n")
    msg = error(path, format=fmt)
    assert str(path) in msg and "empty" in msg


def test_no_step_lines_in_console_log(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_text("(main_task pid=1) starting\nLet's go step by step: first step: 3\nstep:3 - no metrics here\n")
    msg = error(path, format="verl-console")
    assert str(path) in msg and "no metric lines found" in msg and "step:1 - actor/entropy" in msg
    msg = error(path)
    assert str(path) in msg and "cannot detect the log format" in msg and "verl-console" in msg


def test_unknown_format_name() -> None:
    msg = error(FIX / "plain.csv", format="mlflow")
    assert "unknown log format 'mlflow'" in msg and "verl-console" in msg and "entropylab" in msg


def test_directory_without_logs(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("hello")
    msg = error(tmp_path)
    assert str(tmp_path) in msg and "no training log found" in msg and "metrics.jsonl" in msg
    assert "no training log found" in error(tmp_path, format="csv")
    assert "no metrics.jsonl in this directory" in error(FIX / "trl-run", format="entropylab")
    assert "no trainer_state.json here or in checkpoint-*/" in error(FIX / "entropylab-run", format="trl")
    assert "no TensorBoard event files" in error(FIX / "trl-run", format="tensorboard")


def test_no_entropy_key_warns_then_points_raises(tmp_path: Path) -> None:
    path = tmp_path / "noent.log"
    path.write_text(
        "step:1 - critic/score/mean:0.1 - val/test_score/x:0.2 - actor/pg_loss:0.01\n"
        "step:2 - critic/score/mean:0.2 - val/test_score/x:0.3 - actor/pg_loss:0.02\n"
    )
    with pytest.warns(logs.LogWarning, match="no entropy key found"):
        df = logs.load(path)
    assert df["entropy"].isna().all() and len(df) == 2
    meta = df.attrs["entropylab"]["noent"]
    assert meta["entropy_key"] is None and any("no entropy key" in w for w in meta["warnings"])
    with pytest.raises(LogFormatError) as info:
        logs.points(df)
    msg = str(info.value)
    assert str(path) in msg and "no entropy values" in msg
    assert "reward" in msg and "val/test_score/x" in msg and "actor/pg_loss" in msg  # the keys that exist
    assert "entropy_key=" in msg


def test_override_key_absent_lists_close_matches() -> None:
    path = FIX / "verl-console-new.log"
    msg = error(path, entropy_key="actor/entropi")
    assert str(path) in msg and "entropy key 'actor/entropi' not found" in msg and "actor/entropy" in msg
    msg = error(path, score_key="val-core/openai/gsm8k/acc/mean@8")
    assert "score key 'val-core/openai/gsm8k/acc/mean@8' not found" in msg
    assert "val-core/openai/gsm8k/acc/mean@1" in msg
    msg = error(path, score_key="zzz")
    assert "keys present:" in msg and "actor/entropy" in msg


def test_points_errors() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", logs.LogWarning)
        df = logs.load(FIX / "verl-console-new.log")
    with pytest.raises(LogFormatError, match=r"no score column 'val/openai/gsm8k/acc/mean@2'.*mean@1"):
        logs.points(df, score="val/openai/gsm8k/acc/mean@2")
    with pytest.raises(LogFormatError, match="no step has both an entropy and a 'val/x' value"):
        logs.points(df.assign(**{"val/x": np.nan}), score="val/x")
    with pytest.raises(LogFormatError, match="columns 'run' and 'step'"):
        logs.points(df.drop(columns="run"))


def test_run_without_any_score(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"step": 1, "entropy": 0.5}\n')
    df = logs.load(path)
    assert df.attrs["entropylab"]["s"]["score"] is None
    with pytest.raises(LogFormatError, match=r"run 's' \(.*s.jsonl\): no score"):
        logs.points(df)
    assert "score       none" in logs.inspect(path)


def test_csv_bad_cells(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("step,entropy,reward,name,mixed\n1,0.5,0.1,a,1.0\n2,0.4,0.2,b,oops\n3,0.3,0.3,c,3.0\n")
    with pytest.warns(logs.LogWarning) as record:
        df = logs.load(path)
    assert "name" not in df.columns  # a text column is not a metric
    assert df["mixed"].tolist()[0] == 1.0 and np.isnan(df["mixed"].iloc[1])
    msg = " ".join(str(w.message) for w in record)
    assert str(path) in msg and "column 'mixed': 1 non-numeric value(s) dropped (first at line 3: 'oops')" in msg

    bad_step = tmp_path / "b.csv"
    bad_step.write_text("step,entropy\n1,0.5\nten,0.4\n")
    msg = error(bad_step)
    assert str(bad_step) in msg and "line 3" in msg and "'ten'" in msg and "step column 'step'" in msg
    frac = tmp_path / "f.csv"
    frac.write_text("step,entropy\n1.5,0.5\n")
    assert "line 2" in error(frac) and "not an integer" in error(frac)
    empty_step = tmp_path / "g.csv"
    empty_step.write_text("step,entropy\n1,0.5\n,0.4\n")
    assert "line 3: step column 'step' is empty" in error(empty_step)


def test_csv_without_step_column(tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_text("epoch,entropy\n0.5,0.5\n")
    msg = error(path, format="csv")
    assert str(path) in msg and "no step column" in msg and "global_step" in msg and "columns: epoch, entropy" in msg
    only_header = tmp_path / "h.csv"
    only_header.write_text("step,entropy\n")
    assert "no rows" in error(only_header)


def test_nan_and_inf_values_are_dropped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "n.log"
    path.write_text(
        "step:1 - actor/entropy:nan - critic/score/mean:0.1\n"
        "step:2 - actor/entropy:0.5 - critic/score/mean:inf\n"
        "step:3 - actor/entropy:np.float64(-inf) - critic/score/mean:0.3\n"
        "step:4 - actor/entropy:0.25 - critic/score/mean:0.4\n"
    )
    with pytest.warns(logs.LogWarning) as record:
        df = logs.load(path)
    msgs = [str(w.message) for w in record]
    assert msgs == [
        f"{path}: 3 non-finite value(s) (nan/inf) dropped in 2 keys: actor/entropy (2), critic/score/mean (1)"
    ]  # one line for the kind, not one per key
    assert not np.isinf(df[["entropy", "reward"]].to_numpy()).any()
    assert logs.points(df)["step"].tolist() == [4]

    csv = tmp_path / "n.csv"
    csv.write_text("step,entropy,reward\n1,nan,0.1\n2,0.5,inf\n3,-Infinity,\n")
    with pytest.warns(logs.LogWarning) as record:
        logs.load(csv)
    assert [str(w.message).split(": ", 1)[1] for w in record] == [
        "3 non-finite value(s) (nan/inf) dropped in 2 keys: entropy (2), reward (1)"
    ]
    jl = tmp_path / "n.jsonl"
    jl.write_text('{"step": 1, "entropy": NaN, "reward": null}\n{"step": 2, "entropy": Infinity}\n')
    with pytest.warns(logs.LogWarning) as record:
        assert logs.load(jl)["entropy"].isna().all()
    assert [str(w.message).split(": ", 1)[1] for w in record] == [
        "key 'entropy': 2 non-finite value(s) (nan/inf) dropped",
        "entropy key 'entropy' has no finite value",
    ]


def test_jsonl_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1, "entropy": 0.5}\n[1, 2]\n{"step": 2, "entropy": 0.4}\n{"step": 3, "entr')
    with pytest.warns(logs.LogWarning, match=r"1 line\(s\) that are not JSON objects skipped \(first: line 2\)"):
        df = logs.load(path)
    assert df["step"].tolist() == [1, 2]
    assert "the last line has no newline" in df.attrs["entropylab"]["m"]["notes"][0]  # torn end: a note only
    no_step = tmp_path / "s.jsonl"
    no_step.write_text('{"step": 1, "entropy": 0.5}\n{"entropy": 0.4}\n')
    msg = error(no_step)
    assert str(no_step) in msg and "line 2: no step field" in msg and "fields present: entropy" in msg
    bad_step = tmp_path / "t.jsonl"
    bad_step.write_text('{"step": "x", "entropy": 0.5}\n')
    assert "line 1: step column 'step' is not a number: 'x'" in error(bad_step)
    garbage = tmp_path / "g.jsonl"
    garbage.write_text("not json\n")
    assert "line 1: not a JSON object" in error(garbage, format="jsonl")


def test_trl_bad_states(tmp_path: Path) -> None:
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"global_step": 0}))
    assert "no 'log_history' list" in error(path)
    path.write_text(json.dumps({"log_history": []}))
    assert "'log_history' is empty" in error(path)
    path.write_text(json.dumps({"log_history": [{"loss": 1.0}]}))
    assert "log_history[0] has no 'step'" in error(path)
    path.write_text("{not json")
    assert "not valid JSON" in error(path)


def test_damaged_parquet_and_events(tmp_path: Path) -> None:
    pq = tmp_path / "x.parquet"
    pq.write_bytes(b"PAR1 this is not parquet")
    msg = error(pq)
    assert str(pq) in msg and "not a readable Parquet file" in msg
    tb = tmp_path / "tb"
    tb.mkdir()
    assert "no TensorBoard event files" in error(tb, format="tensorboard")


def test_no_scalars_in_events(tmp_path: Path) -> None:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(tmp_path))
    writer.add_event(Event(step=1, wall_time=1.0, file_version="brain.Event:2"))
    writer.close()
    assert "no scalar summaries" in error(tmp_path)


def test_run_names_errors() -> None:
    assert "gives 1 names for 2 runs" in error([FIX / "plain.csv", FIX / "openrlhf.jsonl"], run=["a"])
    assert "not unique" in error([FIX / "plain.csv", FIX / "openrlhf.jsonl"], run=["a", "a"])


def test_initial_validation_after_training_is_ignored_with_warning(tmp_path: Path) -> None:
    path = tmp_path / "late.log"
    path.write_text(
        "step:1 - actor/entropy:0.5\n\"Initial validation metrics: {'test_score/x': 0.3}\"\n"
        "step:2 - actor/entropy:0.4\n"
    )
    with pytest.warns(logs.LogWarning, match="line 2: 'Initial validation metrics' after training started"):
        df = logs.load(path)
    assert "val/test_score/x" not in df.columns
