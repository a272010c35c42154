"""entropylab.logs: every format from a small fixture, auto-detection, aliases, restarts, several paths."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from entropylab import logs
from entropylab.errors import LogFormatError
from entropylab.logs import aliases

FIX = Path(__file__).resolve().parent / "fixtures" / "logs"


def load_quiet(*args, **kwargs) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", logs.LogWarning)
        return logs.load(*args, **kwargs)


def write_events(directory: Path, steps=range(1, 5), *, offset: float = 0.0, tensor_eval: bool = True) -> None:
    """A TensorBoard event file written with tensorboard's own writer (as TRL's callback would log)."""
    from tensorboard.compat.proto import types_pb2
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(directory))
    for s in steps:
        values = [
            Summary.Value(tag="train/entropy", simple_value=1.0 - 0.125 * s + offset),
            Summary.Value(tag="train/reward", simple_value=0.125 * s),
        ]
        if s % 2 == 0:
            meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
            value = (
                Summary.Value(
                    tag="eval/reward", metadata=meta, tensor=TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[0.25 * s])
                )
                if tensor_eval
                else Summary.Value(tag="eval/reward", simple_value=0.25 * s)
            )
            values.append(value)
        writer.add_event(Event(step=s, wall_time=1000.0 + s, summary=Summary(value=values)))
    writer.close()


# --------------------------------------------------------------------------- verl console (new style)


def test_verl_console_new_style() -> None:
    """Ray prefixes, ANSI codes, np.float64/tensor values, junk bytes, a multi-line initial dict, a restart."""
    path = FIX / "verl-console-new.log"
    with pytest.warns(logs.LogWarning) as record:
        df = logs.load(path)
    messages = [str(w.message) for w in record]
    assert any("key 'actor/entropy': 1 non-finite value(s) (nan/inf) dropped" in m for m in messages)
    restart = next(m for m in messages if "logged twice" in m)
    assert "steps 4-5" in restart and "line 16" in restart and "the later values are kept" in restart
    assert str(path) in restart
    assert df["step"].tolist() == list(range(7))
    acc = "val/openai/gsm8k/acc/mean@1"
    assert list(df.columns[:6]) == ["run", "step", "entropy", "reward", acc, "val/openai/gsm8k/reward/mean@1"]
    assert np.isnan(df["entropy"].iloc[0])  # step 0: validation before training
    assert df[acc].iloc[0] == 0.25 and df["val/openai/gsm8k/reward/mean@1"].iloc[0] == 0.2512345
    assert df["entropy"].tolist()[1:] == [0.81234, 0.75, 0.7, 0.66, 0.6, 0.55]  # restart: later values win
    assert df["reward"].tolist()[1:] == [0.11, 0.2, 0.3, 0.36, 0.39, 0.45]
    assert df["perf/throughput"].iloc[1] == 1234.5 and df["actor/pg_loss"].iloc[1] == -0.0123
    meta = df.attrs["entropylab"]["verl-console-new"]
    assert meta["entropy_key"] == "actor/entropy" and meta["reward_key"] == "critic/score/mean"
    assert meta["score"] == acc and meta["score_key"] == "val-core/openai/gsm8k/acc/mean@1"
    assert meta["val_keys"] == {
        acc: "val-core/openai/gsm8k/acc/mean@1",
        "val/openai/gsm8k/reward/mean@1": "val-aux/openai/gsm8k/reward/mean@1",
    }
    assert len(meta["warnings"]) == 2
    pts = logs.points(df)
    assert pts[["step", "entropy", "score"]].values.tolist() == [[3, 0.7, 0.4], [6, 0.55, 0.5]]


def test_verl_console_variants(tmp_path: Path) -> None:
    """3-decimal and full-precision values, legacy keys, CRLF, a prefix-less line, bytes that are not UTF-8."""
    text = (
        b"\x1b[2m\x1b[36m(main_task pid=926049)\x1b[0m step:1 - actor/entropy_loss:0.538 - "
        b"critic/score/mean:0.031 - critic/rewards/mean:0.030 - val/test_score/openai/gsm8k:0.013\r\n"
        b"junk \xff\xfe\x80 bytes step: not a metric\r\n"
        b"step:2 - actor/entropy_loss:0.52345678901 - critic/score/mean:1e-3 - np_key:np.int64(3)\r\n"
    )
    path = tmp_path / "old.txt"
    path.write_bytes(text)
    df = logs.load(path)
    assert df.attrs["entropylab"]["old"]["format"] == "verl-console"
    assert df["entropy"].tolist() == [0.538, 0.52345678901]
    assert df["reward"].tolist() == [0.031, 0.001]
    assert df["np_key"].iloc[1] == 3
    assert df["val/test_score/openai/gsm8k"].iloc[0] == 0.013


def test_verl_console_same_values_twice_is_no_restart(tmp_path: Path) -> None:
    path = tmp_path / "dup.log"
    path.write_text("step:1 - actor/entropy:0.5\nstep:1 - actor/entropy:0.5 - val/test_score/x:0.2\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", logs.LogWarning)
        df = logs.load(path)
    assert df[["step", "entropy", "val/test_score/x"]].values.tolist() == [[1, 0.5, 0.2]]


# --------------------------------------------------------------------------- other formats


def test_verl_file_logger() -> None:
    df = logs.load(FIX / "verl-file-logger.jsonl")
    meta = df.attrs["entropylab"]["verl-file-logger"]
    assert meta["format"] == "verl-jsonl" and meta["score"] == "val/openai/gsm8k/reward/mean@1"
    assert df["entropy"].tolist() == pytest.approx([0.4, 0.3, 0.2])
    assert df["reward"].tolist() == pytest.approx([0.2, 0.4, 0.6])
    assert logs.points(df)["step"].tolist() == [2]


def test_trl_output_dir_takes_latest_checkpoint() -> None:
    df = logs.load(FIX / "trl-run")
    meta = df.attrs["entropylab"]["trl-run"]
    assert meta["format"] == "trl" and meta["path"].endswith("checkpoint-4/trainer_state.json")
    assert df["step"].tolist() == [1, 2, 3, 4]  # train + eval + summary entries of one step: one row
    assert df["entropy"].tolist() == [0.9, 0.8, 0.7, 0.6]
    assert meta["entropy_key"] == "entropy" and meta["reward_key"] == "reward"
    assert meta["score"] == "val/reward" and meta["score_key"] == "eval_reward"  # not eval_runtime, eval_loss...
    assert df["val/runtime"].notna().sum() == 2 and df["train_runtime"].iloc[-1] == 100.0
    assert logs.points(df)[["step", "score"]].values.tolist() == [[2, 0.25], [4, 0.45]]
    # the trainer_state.json file itself, and a top-level one that is older than the last checkpoint
    one = logs.load(FIX / "trl-run" / "checkpoint-2" / "trainer_state.json")
    assert one["step"].tolist() == [1, 2] and one["run"].iloc[0] == "trl-run"


def test_trl_top_level_state_wins_when_newer(tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(FIX / "trl-run", out)
    shutil.copy(FIX / "trl-run" / "checkpoint-4" / "trainer_state.json", out / "trainer_state.json")
    df = logs.load(out)
    assert df.attrs["entropylab"]["out"]["path"] == str(out / "trainer_state.json")


def test_openrlhf_jsonl() -> None:
    df = logs.load(FIX / "openrlhf.jsonl")
    meta = df.attrs["entropylab"]["openrlhf"]
    assert meta["format"] == "openrlhf"
    assert meta["entropy_key"] == "train/entropy_loss" and meta["reward_key"] == "train/reward"
    assert meta["score"] == "val/gsm8k_pass1" and meta["score_key"] == "eval/eval_gsm8k_pass1"
    assert df["step"].tolist() == [1, 2, 3, 4]  # eval lines (eval/global_step) join the train lines
    assert logs.points(df)[["step", "score"]].values.tolist() == [[2, 0.4], [4, 0.8]]


def test_openrlhf_csv_format_forced(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_text(
        "train/global_step,eval/global_step,train/reward,train/entropy_loss,eval/eval_math_pass1\n"
        "1,,0.1,1.1,\n,2,,,0.3\n2,,0.2,1.0,\n"
    )
    df = logs.load(path, format="openrlhf")
    assert df["step"].tolist() == [1, 2] and df["val/math_pass1"].tolist()[1] == 0.3
    assert logs.load(path).attrs["entropylab"]["o"]["format"] == "openrlhf"


def test_wandb_history_csv() -> None:
    df = logs.load(FIX / "wandb-history.csv")
    meta = df.attrs["entropylab"]["wandb-history"]
    assert meta["format"] == "wandb"
    assert df["step"].tolist() == [0, 1, 2, 3]  # _step
    assert "_runtime" not in df.columns and "_timestamp" not in df.columns and "run_note" not in df.columns
    assert meta["entropy_key"] == "train/entropy" and meta["score"] == "val/reward"
    assert logs.points(df)[["step", "score"]].values.tolist() == [[1, 0.22], [3, 0.41]]


def test_plain_csv_tsv_and_parquet(tmp_path: Path) -> None:
    df = logs.load(FIX / "plain.csv")
    assert df["step"].tolist() == [1, 2, 3, 4] and "note" not in df.columns  # global_step; text dropped
    assert df.attrs["entropylab"]["plain"]["format"] == "csv"
    tsv = tmp_path / "t.tsv"
    tsv.write_text("step\tentropy\treward\n1\t0.5\t0.1\n")
    assert logs.load(tsv)["entropy"].tolist() == [0.5]
    pq = tmp_path / "p.parquet"
    pd.DataFrame(
        {
            "iteration": [3, 1, 2],
            "policy/entropy": [0.3, 0.5, 0.4],
            "rewards/mean": [0.3, 0.1, 0.2],
            "tag": ["a", "b", "c"],
        }
    ).to_parquet(pq)
    got = logs.load(pq)
    assert got["step"].tolist() == [1, 2, 3] and got["entropy"].tolist() == [0.5, 0.4, 0.3]
    meta = got.attrs["entropylab"]["p"]
    assert meta["format"] == "parquet" and meta["score"] == "reward" and meta["score_key"] == "rewards/mean"
    assert meta["n_val"] == 0


def test_entropylab_run_dir() -> None:
    df = logs.load(FIX / "entropylab-run")
    meta = df.attrs["entropylab"]["entropylab-run"]
    assert meta["format"] == "entropylab" and meta["score"] == "val/acc"  # not val/entropy, val/response_length
    # the trainer's `entropy` (per-response mean, the paper's H) wins over the loss's `actor/entropy`
    assert meta["entropy_key"] == "entropy" and meta["entropy_candidates"] == ["entropy", "actor/entropy"]
    assert df["actor/entropy"].tolist()[1:] == [0.85, 0.75, 0.65, 0.55]
    generic = logs.load(FIX / "entropylab-run" / "metrics.jsonl", format="jsonl")
    assert generic.attrs["entropylab"]["entropylab-run"]["entropy_key"] == "actor/entropy"  # verl's name first
    assert df["step"].tolist() == [0, 1, 2, 3, 4] and np.isnan(df["entropy"].iloc[0])
    assert "entropy_by_position" not in df.columns and "method" not in df.columns  # lists, strings: dropped
    assert logs.points(df)[["step", "score"]].values.tolist() == [[2, pytest.approx(0.3)], [4, pytest.approx(0.5)]]
    assert logs.points(df, score="val/acc_greedy")["score"].tolist() == pytest.approx([0.32, 0.52])
    assert logs.load(FIX / "entropylab-run" / "metrics.jsonl")["run"].iloc[0] == "entropylab-run"


def test_validation_score_pairs_with_the_validation_samples_entropy() -> None:
    df = logs.load(FIX / "entropylab-run")
    assert df.attrs["entropylab"]["entropylab-run"]["val_entropy"] == "val/entropy"
    assert logs.points(df)["entropy"].tolist() == pytest.approx([0.7, 0.7])  # val/entropy, not the training 0.8, 0.6
    assert logs.points(df, entropy="entropy")["entropy"].tolist() == pytest.approx([0.8, 0.6])
    assert logs.points(df, score="reward")["entropy"].tolist() == pytest.approx(
        [0.9, 0.8, 0.7, 0.6]
    )  # a training score
    named = logs.load(FIX / "entropylab-run", entropy_key="entropy")  # a named entropy key is what the user asked for
    assert named.attrs["entropylab"]["entropylab-run"]["val_entropy"] is None
    assert logs.points(named)["entropy"].tolist() == pytest.approx([0.8, 0.6])
    assert "score and val/entropy, the entropy of the scored samples," in logs.inspect(FIX / "entropylab-run")
    verl = logs.load(FIX / "verl-file-logger.jsonl")
    assert verl.attrs["entropylab"]["verl-file-logger"]["val_entropy"] is None


def test_the_gallery_and_the_demo_pair_validation_scores_as_fit_does() -> None:
    """`experiments.run_points` (the gallery's and the demo's law) reads several run directories into one frame;
    each run keeps its info, so its validation score pairs with `val/entropy` as `entropylab fit` pairs it."""
    from entropylab import experiments as ex

    runs = {"grpo": FIX / "entropylab-run", "clip_cov": FIX / "entropylab-run"}
    pts = ex.run_points(runs)
    assert list(pts["run"].unique()) == ["grpo", "clip_cov"]
    assert pts["entropy"].tolist() == pytest.approx([0.7, 0.7, 0.7, 0.7])  # val/entropy, not the training 0.8, 0.6
    assert ex.run_metrics(runs)["preset"].unique().tolist() == ["grpo", "clip_cov"]


def test_tensorboard_dir_and_file(tmp_path: Path) -> None:
    write_events(tmp_path / "tb")
    df = logs.load(tmp_path / "tb")
    meta = df.attrs["entropylab"]["tb"]
    assert meta["format"] == "tensorboard" and meta["score"] == "val/reward"
    assert df["step"].tolist() == [1, 2, 3, 4]
    assert df["entropy"].tolist() == [0.875, 0.75, 0.625, 0.5]
    assert df["val/reward"].dropna().tolist() == [0.5, 1.0]  # scalar tensor summaries (TF2 style) too
    event_file = next((tmp_path / "tb").iterdir())
    assert logs.load(event_file)["run"].iloc[0] == "tb"


def test_tensorboard_restart_and_subdirs(tmp_path: Path) -> None:
    write_events(tmp_path / "runs" / "a", range(1, 4), tensor_eval=False)
    write_events(tmp_path / "runs" / "a", range(2, 6), offset=0.01, tensor_eval=False)  # resumed from step 2
    write_events(tmp_path / "runs" / "b", range(1, 3))
    with pytest.warns(logs.LogWarning, match="steps 2-3"):
        df = logs.load(tmp_path / "runs")
    assert sorted(df["run"].unique()) == ["runs/a", "runs/b"]
    a = df[df["run"] == "runs/a"]
    assert a["step"].tolist() == [1, 2, 3, 4, 5]
    assert a["entropy"].tolist() == pytest.approx([0.875, 0.76, 0.635, 0.51, 0.385])


# --------------------------------------------------------------------------- detection, several paths, names


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("verl-console-new.log", "verl-console"),
        ("verl-file-logger.jsonl", "verl-jsonl"),
        ("trl-run", "trl"),
        ("openrlhf.jsonl", "openrlhf"),
        ("wandb-history.csv", "wandb"),
        ("plain.csv", "csv"),
        ("entropylab-run", "entropylab"),
    ],
)
def test_auto_detection_and_forced_format_agree(name: str, fmt: str) -> None:
    auto = load_quiet(FIX / name)
    forced = load_quiet(FIX / name, format=fmt)
    assert next(iter(auto.attrs["entropylab"].values()))["format"] == fmt
    pd.testing.assert_frame_equal(auto, forced)


def test_auto_detection_without_telling_extensions(tmp_path: Path) -> None:
    (tmp_path / "a.out").write_text('{"step": 1, "data": {"actor/entropy": 0.5}}\n')
    (tmp_path / "b.json").write_text(
        json.dumps({"global_step": 1, "log_history": [{"step": 1, "entropy": 0.4}]}, indent=2)
    )
    (tmp_path / "c").write_text("step,entropy\n1,0.3\n")
    (tmp_path / "d.jsonl").write_text('{"step": 1, "entropy": 0.2}\n')
    (tmp_path / "e.jsonl").write_text('{"_step": 1, "train/entropy": 0.1}\n')
    got = {p.name: load_quiet(p).attrs["entropylab"] for p in sorted(tmp_path.iterdir())}
    assert {k: next(iter(v.values()))["format"] for k, v in got.items()} == {
        "a.out": "verl-jsonl",
        "b.json": "trl",
        "c": "csv",
        "d.jsonl": "jsonl",
        "e.jsonl": "wandb",
    }


def test_several_paths_and_unique_names(tmp_path: Path) -> None:
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        shutil.copy(FIX / "plain.csv", tmp_path / sub / "train.csv")
    df = logs.load([tmp_path / "x" / "train.csv", tmp_path / "y" / "train.csv", FIX / "openrlhf.jsonl"])
    assert df["run"].unique().tolist() == ["openrlhf", "x/train", "y/train"]  # sorted by run, then step
    assert set(df.attrs["entropylab"]) == {"openrlhf", "x/train", "y/train"}
    assert len(logs.points(df)) == 6
    twice = logs.load([FIX / "plain.csv", FIX / "plain.csv"])
    assert twice["run"].unique().tolist() == ["logs/plain", "logs/plain-2"]
    named = logs.load([FIX / "plain.csv", FIX / "openrlhf.jsonl"], run=["a", "b"])
    assert named["run"].unique().tolist() == ["a", "b"]
    assert logs.load(FIX / "plain.csv", run="mine")["run"].unique().tolist() == ["mine"]
    assert logs.load([FIX / "plain.csv"] * 2, run="r")["run"].unique().tolist() == ["r-1", "r-2"]


def test_progress_bar_and_str_paths(capsys) -> None:
    df = logs.load([str(FIX / "plain.csv"), str(FIX / "openrlhf.jsonl")], progress=True)
    assert len(df) == 8


def test_tabular_run_column_round_trip(tmp_path: Path) -> None:
    """A saved canonical frame (several runs, `run` column) reads back as the same runs."""
    df = load_quiet([FIX / "plain.csv", FIX / "openrlhf.jsonl"])
    df.to_csv(tmp_path / "all.csv", index=False)
    back = logs.load(tmp_path / "all.csv")
    assert back["run"].unique().tolist() == ["openrlhf", "plain"]
    pd.testing.assert_frame_equal(logs.points(back).drop(columns="run"), logs.points(df).drop(columns="run"))


# --------------------------------------------------------------------------- overrides and the alias table


def test_overrides_take_original_or_canonical_keys() -> None:
    path = FIX / "verl-console-new.log"
    df = load_quiet(path, entropy_key="actor/pg_loss", score_key="critic/rewards/mean")
    meta = df.attrs["entropylab"]["verl-console-new"]
    assert meta["entropy_key"] == "actor/pg_loss" and meta["score"] == "critic/rewards/mean"
    assert df["entropy"].iloc[1] == -0.0123 and "actor/entropy" in df.columns  # the unchosen one stays
    pts = logs.points(df)
    assert pts.attrs["score"] == {"verl-console-new": "critic/rewards/mean"} and len(pts) == 6
    by_canon = load_quiet(path, score_key="val/openai/gsm8k/reward/mean@1")
    by_orig = load_quiet(path, score_key="val-aux/openai/gsm8k/reward/mean@1")
    for frame in (by_canon, by_orig):
        assert frame.attrs["entropylab"]["verl-console-new"]["score"] == "val/openai/gsm8k/reward/mean@1"
    assert (
        load_quiet(path, score_key="reward").attrs["entropylab"]["verl-console-new"]["score_key"] == "critic/score/mean"
    )


def test_points_score_argument_accepts_original_keys() -> None:
    df = load_quiet(FIX / "verl-console-new.log")
    a = logs.points(df, score="val-aux/openai/gsm8k/reward/mean@1")
    b = logs.points(df, score="val/openai/gsm8k/reward/mean@1")
    assert a["score"].tolist() == b["score"].tolist() == [0.41, 0.52]
    assert logs.points(df, score="reward")["step"].tolist() == [1, 2, 3, 4, 5, 6]


def test_alias_table() -> None:
    canon = aliases.canonical_key
    assert canon("val-core/openai/gsm8k/acc/mean@4") == "val/openai/gsm8k/acc/mean@4"
    assert canon("test_score/openai/gsm8k") == "val/test_score/openai/gsm8k"
    assert canon("val/test_score/openai/gsm8k") == "val/test_score/openai/gsm8k"
    assert canon("eval_reward") == "val/reward" and canon("eval/reward") == "val/reward"
    assert canon("eval/eval_aime_pass1") == "val/aime_pass1"
    assert canon("actor/entropy") == "actor/entropy"
    tiers = [
        aliases.score_tier(k)
        for k in (
            "val-core/x/acc/mean@1",
            "val-core/x/reward/mean@1",
            "test_score/x",
            "val/acc",
            "eval_reward",
            "eval/eval_x_pass1",
        )
    ]
    assert tiers == sorted(tiers)
    for key in ("eval_runtime", "eval_samples_per_second", "eval_loss", "eval_entropy", "val-aux/x/reward/std@4"):
        assert aliases.score_tier(key) is None
    assert aliases.score_tier("critic/score/mean") is None
    assert aliases.ENTROPY_KEYS[:3] == ("actor/entropy", "actor/entropy_loss", "entropy")
    assert aliases.REWARD_KEYS[0] == "critic/score/mean"
    assert logs.FORMATS == (
        "verl-console",
        "verl-jsonl",
        "trl",
        "openrlhf",
        "tensorboard",
        "wandb",
        "csv",
        "jsonl",
        "parquet",
        "entropylab",
    )


def test_score_priority_val_core_acc_first(tmp_path: Path) -> None:
    path = tmp_path / "v.log"
    path.write_text(
        "step:1 - actor/entropy:0.5 - val/test_score/a:0.1 - val-core/a/reward/mean@1:0.2 - "
        "val-core/a/acc/mean@1:0.3 - critic/score/mean:0.4\n"
    )
    df = logs.load(path)
    assert df.attrs["entropylab"]["v"]["score"] == "val/a/acc/mean@1"
    assert list(df.columns[4:7]) == ["val/a/acc/mean@1", "val/a/reward/mean@1", "val/test_score/a"]


def test_memory_mapped_large_logs_read_the_same(monkeypatch) -> None:
    from entropylab.logs import verl

    path = FIX / "verl-console-new.log"
    small = load_quiet(path)
    monkeypatch.setattr(verl, "_MAP_FROM", 0)
    pd.testing.assert_frame_equal(load_quiet(path), small)


def test_truncated_or_damaged_console_logs_never_crash(tmp_path: Path) -> None:
    """Cut anywhere (a run killed mid-write) or sprinkled with junk: rows or a LogFormatError, nothing else."""
    data = (FIX / "verl-console-new.log").read_bytes()
    rng = np.random.default_rng(0)
    cuts = sorted(set(rng.integers(1, len(data), 40).tolist()))
    for i, cut in enumerate(cuts):
        path = tmp_path / f"cut{i}.log"
        junk = bytes(rng.integers(0, 256, 8, dtype=np.uint8))
        path.write_bytes(data[:cut] + (junk if i % 2 else b""))
        try:
            df = load_quiet(path, format="verl-console")
        except LogFormatError:
            continue
        assert df["step"].is_monotonic_increasing and df["step"].is_unique


def test_inspect_reports_choices_and_warnings() -> None:
    text = logs.inspect(FIX / "verl-console-new.log")
    lines = text.splitlines()
    assert lines[0] == "run verl-console-new"
    assert "  format      verl-console" in lines
    assert "  steps       7 (steps 0..6)" in lines
    assert "  entropy     actor/entropy -> entropy (6 values)" in lines
    assert any("critic/score/mean -> reward" in ln and "not chosen: critic/rewards/mean" in ln for ln in lines)
    assert "  validation  val/openai/gsm8k/acc/mean@1 <- val-core/openai/gsm8k/acc/mean@1 (3 values)" in lines
    assert "  score       val/openai/gsm8k/acc/mean@1 (default: first validation metric)" in lines
    assert "  points      2 fit points (score and entropy at the same step)" in lines
    assert any(ln.startswith("  warnings    key 'actor/entropy': 1 non-finite") for ln in lines)
    assert any("logged twice" in ln for ln in lines)
    given = logs.inspect(FIX / "verl-console-new.log", score_key="critic/rewards/mean")
    assert "score       critic/rewards/mean (given: critic/rewards/mean)" in given
    none = logs.inspect(FIX / "wandb-history.csv", entropy_key="train/reward")
    assert "entropy     train/reward -> entropy" in none and "reward      none found" in none
