"""Real-world log shapes that used to fail (fixtures in tests/fixtures/logs/real-world/, made by make.py there),
and every reader on truncated, torn, cut and multi-run input."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from entropylab import law, logs
from entropylab.errors import EntropylabError, LogFormatError

FIX = Path(__file__).resolve().parent / "fixtures" / "logs"
REAL = FIX / "real-world"
REF = Path(__file__).resolve().parents[1] / "data" / "real-logs" / "Qwen2.5-0.5B-bsz256_2-prompt1024-resp512-0.567.log"


def load_recorded(*args, **kwargs) -> tuple[pd.DataFrame, list[str]]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always", logs.LogWarning)
        df = logs.load(*args, **kwargs)
    return df, [str(w.message) for w in record]


def notes_of(df: pd.DataFrame) -> list[str]:
    """What reading left out as normal for a log still being written (not warned)."""
    return [n for info in df.attrs["entropylab"].values() for n in info["notes"]]


# --------------------------------------------------------------------------- the shapes from the issue


def test_jsonl_with_grpo_step_and_row_kinds() -> None:
    df, msgs = load_recorded(REAL / "grpo-step.jsonl")
    assert df["step"].tolist() == list(range(1, 25))
    assert "grpo_step" not in df.columns
    assert "val/accuracy" in df.columns  # `accuracy` in rows of type eval is a validation metric
    assert df["val/accuracy"].notna().sum() == 12 and df["entropy"].notna().sum() == 24
    assert msgs == [] and notes_of(df) == [
        f"{REAL / 'grpo-step.jsonl'}: the last line has no newline (a log still being written?): skipped"
    ]  # the torn end: a note, no warning
    assert len(logs.points(df)) == 12
    # --step-key picks the field when the names are unusual
    custom = REAL.parent / "custom-step.jsonl"
    try:
        custom.write_text('{"it": 1, "entropy": 0.5}\n{"it": 2, "entropy": 0.4}\n')
        with pytest.raises(LogFormatError, match="no step field .*--step-key / step_key="):
            logs.load(custom)
        assert logs.load(custom, step_key="it")["step"].tolist() == [1, 2]
        with pytest.raises(LogFormatError, match="line 1: step field 'iteration' missing"):
            logs.load(custom, step_key="iteration")
    finally:
        custom.unlink()


def test_csv_with_five_runs_told_apart_by_experiment() -> None:
    df, msgs = load_recorded(REAL / "five-runs.csv")
    assert msgs == []  # no "restarted" warning: the runs are split, not merged
    assert sorted(df["run"].unique()) == sorted(["grpo", "clip_cov", "kl_cov", "top20", "entropy_bonus"])
    assert df.groupby("run").size().tolist() == [10] * 5
    assert "experiment" not in df.columns
    fits = law.fit_runs(logs.points(df))
    assert fits["grpo"].a == pytest.approx(0.3, abs=0.05) and fits["entropy_bonus"].a == pytest.approx(0.38, abs=0.05)


def test_run_key_names_the_run_column(tmp_path: Path) -> None:
    path = tmp_path / "sweep.csv"
    path.write_text("seed_name,step,entropy,reward\ns1,1,0.5,0.1\ns2,1,0.6,0.2\ns1,2,0.4,0.2\ns2,2,0.5,0.3\n")
    merged, msgs = load_recorded(path)  # `seed_name` is not a known run column: one run, a restart warning
    assert merged["run"].nunique() == 1 and any("logged twice" in m for m in msgs)
    split = logs.load(path, run_key="seed_name")
    assert sorted(split["run"].unique()) == ["s1", "s2"]
    assert split[split["run"] == "s2"]["entropy"].tolist() == [0.6, 0.5]
    with pytest.raises(LogFormatError, match="run column 'seed' not found; close matches: seed_name"):
        logs.load(path, run_key="seed")
    jl = tmp_path / "sweep.jsonl"
    jl.write_text('{"step": 1, "run_id": "a", "entropy": 0.5}\n{"step": 1, "run_id": "b", "entropy": 0.7}\n')
    assert sorted(logs.load(jl)["run"].unique()) == ["a", "b"]


def test_bare_json_list_of_trl_records() -> None:
    df, msgs = load_recorded(REAL / "trl-log-history.json")
    assert msgs == []
    assert df.attrs["entropylab"]["trl-log-history"]["format"] == "trl"
    assert df["step"].tolist() == list(range(1, 13))
    assert df["val/reward"].notna().sum() == 6
    assert len(logs.points(df)) == 6


def test_bare_json_list_still_being_written(tmp_path: Path) -> None:
    text = (REAL / "trl-log-history.json").read_text()
    path = tmp_path / "history.json"
    path.write_text(text[: text.index('"step": 7') + 4])  # cut inside the record of step 7, no closing bracket
    df, msgs = load_recorded(path)
    assert df["step"].tolist() == list(range(1, 7)) and msgs == []
    assert notes_of(df) == [
        f"{path}: the list of records ends inside a record (still being written?): the torn record skipped"
    ]


def test_wandb_cut_verl_lines_choose_the_score_with_points() -> None:
    df, msgs = load_recorded(REAL / "wandb-verl-cut.log")
    meta = df.attrs["entropylab"]["wandb-verl-cut"]
    assert meta["score"] == "val/openai/gsm8k/reward/mean@4"
    assert meta["score_source"] == "most-points"
    assert "acc/mean@4 joins only 0 entropy point(s)" in meta["score_note"]
    assert df["val/openai/gsm8k/acc/mean@4"].notna().sum() == 1  # step 0 only: the cut value is left out
    assert len(logs.points(df)) == 17
    assert len(msgs) == 1 and "34 line(s) cut at a capture width" in msgs[0]
    text = logs.inspect(REAL / "wandb-verl-cut.log")
    assert "joins only 0 entropy point(s); chose val/openai/gsm8k/reward/mean@4, which joins the most (17)" in text
    assert "val size    1319 problems" in text  # the second 'dataset len' that verl prints


def test_tensorboard_nan_in_many_keys_is_one_warning(tmp_path: Path) -> None:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(tmp_path))
    for s in range(1, 6):
        values = [Summary.Value(tag=f"train/k{j}", simple_value=float("nan") if s == 2 else 0.1 * j) for j in range(20)]
        values.append(Summary.Value(tag="train/entropy", simple_value=1 - 0.1 * s))
        writer.add_event(Event(step=s, wall_time=1000.0 + s, summary=Summary(value=values)))
    writer.close()
    df, msgs = load_recorded(tmp_path)
    assert len(df) == 5
    assert msgs == [
        f"{tmp_path}: 20 non-finite value(s) (nan/inf) dropped in 20 keys: train/k0 (1), train/k1 (1), "
        "train/k2 (1) and 17 more"
    ]


def test_deepseek_like_low_variance_run_is_judged_by_its_noise() -> None:
    """The issue's deepseek-7B case: R² is low because the score barely varies, but the law fits within noise."""
    df = logs.load(REAL / "deepseek-low-variance.log")
    meta = df.attrs["entropylab"]["deepseek-low-variance"]
    assert meta["val_size"] == 5000
    fit = law.fit_law(logs.points(df), val_size=meta["val_size"])
    assert fit.r2 < 0.5
    assert fit.ok, fit.reasons
    assert fit.noise.source == "binomial" and fit.noise.fits and 0.5 < fit.noise.ratio < 1.5
    assert any("R^2 = 0.40 is low because the score varies little" in w for w in fit.warnings)
    assert "lack-of-fit chi2" in fit.report()
    fc = law.forecast(logs.points(df), fit_first=0.15, val_size=5000)
    assert fc.rmse < 0.015  # the early 15% predict the rest to about a point, as the paper reports


# --------------------------------------------------------------------------- torn, cut and truncated input


@pytest.mark.parametrize("cut", [1000, 58_173, 106_495, 150_000, 300_001, 598_000])
def test_verl_console_cut_at_any_byte_never_crashes(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "run.log"
    path.write_bytes(REF.read_bytes()[:cut])
    try:
        df, msgs = load_recorded(path)
    except EntropylabError as err:  # before the first metric line: a clear error, not a traceback
        assert cut < 40_000 and "cannot detect the log format" in str(err)
        return
    assert not [m for m in msgs if "the last line has no newline" in m]  # normal input: noted, not warned
    torn = [m for m in notes_of(df) if "the last line has no newline" in m]
    tail = REF.read_bytes()[:cut].rsplit(b"\n", 1)[-1]
    assert len(torn) == int(re.search(rb"step:\d+ - [^ :]+:\S", tail) is not None)  # a metric line was cut
    whole = logs.load(REF)
    common = df.columns.intersection(whole.columns).drop("run")
    n = len(df) - 1  # every complete line reads exactly as in the whole file
    pd.testing.assert_frame_equal(
        df[common].iloc[:n].reset_index(drop=True), whole[common].iloc[:n].reset_index(drop=True), check_dtype=False
    )


def test_verl_console_line_cut_mid_value_and_joined(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    path.write_text(
        "step:1 - actor/entropy:0.9 - critic/score/mean:0.1\n"
        "step:2 - actor/entropy:0.8 - critic/score/mean:0.2 -\n"  # cut after a separator
        "step:3 - actor/entropy:0.7 - critic/score/mean:0.3 - critic/sc\n"  # cut inside a key
        "step:4 - actor/entropy:0.6 - critic/score/mean:0.4 5 - x:1\n"  # junk joined to a value
        "step:5 - actor/entropy:0.5 - critic/score/mean:0."
    )
    df, msgs = load_recorded(path)
    assert df["step"].tolist() == [1, 2, 3, 4, 5]
    assert df["entropy"].tolist() == [0.9, 0.8, 0.7, 0.6, 0.5]
    assert df["reward"].tolist()[:3] == [0.1, 0.2, 0.3] and np.isnan(df["reward"].iloc[4])
    assert msgs == [] and len(notes_of(df)) == 1 and "no newline" in notes_of(df)[0]


def test_jsonl_and_csv_torn_last_line(tmp_path: Path) -> None:
    jl = tmp_path / "m.jsonl"
    jl.write_text('{"step": 1, "entropy": 0.5}\n{"step": 2, "entropy": 0.4}\n{"step": 3, "entropy": 0.3')
    df, msgs = load_recorded(jl)
    assert df["step"].tolist() == [1, 2] and msgs == []
    assert notes_of(df) == [f"{jl}: the last line has no newline (a log still being written?): skipped"]
    jl.write_text('{"step": 1, "entropy": 0.5}\n{"step": 2, "entr\n{"step": 3, "entropy": 0.3}\n')  # cut inside
    df, msgs = load_recorded(jl)
    assert df["step"].tolist() == [1, 3] and "not JSON objects skipped (first: line 2)" in msgs[0]
    csv = tmp_path / "m.csv"
    csv.write_text("step,entropy,reward\n1,0.5,0.1\n2,0.4,0.2\n3,0.3,0.")
    df, msgs = load_recorded(csv)
    assert df["step"].tolist() == [1, 2] and msgs == []
    assert notes_of(df) == [f"{csv}: the last row has no newline (a log still being written?): skipped"]
    joined = tmp_path / "j.csv"
    joined.write_text("step,entropy,reward\n1,0.5,0.1\n2,0.4,0.2,3,0.3,0.3\n4,0.2,0.4\n")
    df, msgs = load_recorded(joined)
    assert df["step"].tolist() == [1, 4] and msgs == [f"{joined}: 1 row(s) with more fields than the header skipped"]


def test_trl_state_truncated_is_a_clear_error(tmp_path: Path) -> None:
    state = json.loads((FIX / "trl-run" / "checkpoint-4" / "trainer_state.json").read_text())
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps(state)[:-40])
    with pytest.raises(LogFormatError, match="not valid JSON"):
        logs.load(path)


def test_rollout_rows_and_kind_keys(tmp_path: Path) -> None:
    from entropylab.logs.aliases import kind_key

    assert kind_key("eval", "accuracy") == "eval/accuracy" and kind_key("eval", "val/acc") == "val/acc"
    assert kind_key("train", "reward") == "reward" and kind_key("Rollout", "reward") == "rollout/reward"
    assert kind_key("fast", "reward") == "reward"  # a `mode` that is a setting, not a kind of row
    path = tmp_path / "kinds.jsonl"
    path.write_text(
        '{"step": 1, "split": "rollout", "reward": 0.1, "entropy": 0.9}\n'
        '{"step": 1, "split": "train", "reward": 0.5}\n'
        '{"step": 1, "split": "test", "reward": 0.3}\n'
    )
    df, msgs = load_recorded(path)
    assert msgs == []  # three kinds of "reward" at one step: three metrics, not a restart
    row = df.iloc[0]
    assert (row["reward"], row["rollout/reward"], row["val/reward"], row["entropy"]) == (0.5, 0.1, 0.3, 0.9)
    assert df.attrs["entropylab"]["kinds"]["entropy_key"] == "rollout/entropy"  # the entropy of the rollouts


def test_tensorboard_logger_lines_are_summarised(tmp_path: Path, monkeypatch) -> None:
    import logging

    from tensorboard.backend.event_processing import event_accumulator as ea
    from test_logs_formats import write_events

    write_events(tmp_path)
    real = ea.EventAccumulator.Reload

    def noisy(self):
        for tag in range(20):  # what tensorboard prints for some files: one line per tag
            logging.getLogger("tensorboard").warning("Found more than one graph event per run for tag 'k%d'", tag)
        return real(self)

    monkeypatch.setattr(ea.EventAccumulator, "Reload", noisy)
    df, msgs = load_recorded(tmp_path)
    assert len(df) == 4
    assert msgs == [f"{tmp_path}: tensorboard: Found more than one graph event per run for tag # (20 time(s))"]
