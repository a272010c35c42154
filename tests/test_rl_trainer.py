"""The GRPO trainer: run artifacts, resume after SIGKILL, NaN handling, config errors, the CLI.

A tiny random model keeps these fast. With a random model every reward is 0, so the entropy bonus is
switched on to make each step change the weights: resume must then reproduce them exactly.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from entropylab import rundir
from entropylab.errors import ConfigError, EntropylabError
from entropylab.rl.config import resolve_config
from entropylab.rl.trainer import train

TIMING = {"tokens_per_s", "rollout_s", "step_s", "time_s"}


def small(model: Path, **extra) -> list[str]:
    values = dict(
        model=str(model),
        steps=5,
        prompts_per_step=4,
        group_size=2,
        max_new_tokens=12,
        val_every=2,
        val_problems=4,
        dump_every=2,
        checkpoint_every=2,
        threads=1,
        **{"loss.entropy_coef": 0.05},
    )
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


def metrics(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rundir.read_metrics(run)]


def test_run_directory_is_complete_and_readable(tiny_checkpoint, tmp_path):
    from entropylab import logs

    run = train(resolve_config("grpo", overrides=small(tiny_checkpoint)), tmp_path / "run", progress=False)
    rows = metrics(run)
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4, 5]
    assert "val/acc" in rows[0] and "entropy" not in rows[0]  # step 0: validation before any rollout
    for key in (
        "entropy",
        "reward",
        "reward_std",
        "accuracy",
        "response_length",
        "actor/pg_clipfrac",
        "actor/mask_selected_frac",
        "cov/mean",
        "cov/top0.2%",
        "grad_norm",
        "lr",
        "updates",
    ):
        assert key in rows[1], key
    assert rows[1]["updates"] == 2  # two mini-batches, one epoch
    assert "val/acc_greedy" in rows[2] and "val/acc" not in rows[1]
    cfg = resolve_config("grpo", run / rundir.CONFIG)
    assert cfg.steps == 5 and cfg.loss.entropy_coef == 0.05
    dumps = rundir.read_dumps(run)
    rundir.validate_dump(dumps)
    assert sorted(dumps["step"].unique()) == [1, 2, 4]
    # dump steps also log the entropy of their own tokens before and after the update (the theory check's
    # measurement); with every reward 0 only the entropy bonus acts, so the update raises it
    for r in rows[1:]:
        assert ("entropy/after_update" in r) == (r["step"] in (1, 2, 4))
    for r in (rows[1], rows[2], rows[4]):
        assert r["entropy/before_update"] == pytest.approx(r["entropy_token_mean"], rel=1e-4)
        assert r["entropy/after_update"] > r["entropy/before_update"]
    assert rundir.list_checkpoints(run) == [4, 5]  # keep_checkpoints=2
    df = logs.load(run)
    assert list(df["step"]) == [0, 1, 2, 3, 4, 5] and df["entropy"].iloc[1:].notna().all()


def test_checkpoint_every_zero_checkpoints_the_last_step_only(tiny_checkpoint, tmp_path):
    """0 means no periodic checkpoint, as for `val_every` and `dump_every`; the last step is still saved."""
    cfg = resolve_config("grpo", overrides=small(tiny_checkpoint, steps=3, checkpoint_every=0, val_every=0))
    run = train(cfg, tmp_path / "run", progress=False)
    assert rundir.list_checkpoints(run) == [3]


def test_route_shares_are_logged_for_a_task_with_routes(tiny_checkpoint, tmp_path):
    """On `ladder` every step logs the share of each route among its rollouts (and validation); a random
    model names no route, so all of it is `none`. Not `val/` keys, so never taken for a score."""
    run = train(
        resolve_config("grpo", overrides=small(tiny_checkpoint, steps=2, task="ladder")),
        tmp_path / "run",
        progress=False,
    )
    rows = metrics(run)
    for r in rows[1:]:
        assert {f"route/share_{k}" for k in ("fast", "half", "add", "none")} <= set(r)
        assert sum(r[f"route/share_{k}"] for k in ("fast", "half", "add", "none")) == pytest.approx(1.0)
    assert rows[0]["route/val_share_none"] == pytest.approx(1.0)
    assert not any(k.startswith("val/") and "share" in k for r in rows for k in r)


def test_resume_after_sigkill_loses_and_duplicates_nothing(tiny_checkpoint, tmp_path):
    ref = train(resolve_config("grpo", overrides=small(tiny_checkpoint, steps=6)), tmp_path / "ref", progress=False)
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "entropylab.cli", "train", "--quiet", "--out", str(run)]
    for s in small(tiny_checkpoint, steps=6):
        cmd += ["--set", s]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:  # kill as soon as step 3 is logged: after checkpoint 2, before checkpoint 4
        if any(r.get("step") == 3 for r in rundir.read_metrics(run)):
            break
        if proc.poll() is not None:
            pytest.fail("training subprocess exited before it could be killed")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert rundir.list_checkpoints(run)[-1] < 6
    train(resolve_config("grpo"), run, resume=True, progress=False)  # the saved config.yaml is used
    got, want = metrics(run), metrics(ref)
    assert [r["step"] for r in got] == [0, 1, 2, 3, 4, 5, 6]
    for a, b in zip(got, want):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-6, nan_ok=True), (a["step"], k)


def test_nan_loss_skips_the_update_and_is_logged(tiny_checkpoint, tmp_path, monkeypatch):
    from entropylab.tasks.base import Task

    monkeypatch.setattr(Task, "reward", lambda self, completions, problems: [math.nan] * len(completions))
    run = train(
        resolve_config("grpo", overrides=small(tiny_checkpoint, steps=1, val_every=0, **{"loss.entropy_coef": 0.0})),
        tmp_path / "nan",
        progress=False,
    )
    row = metrics(run)[-1]
    assert row["nan_skipped"] == 2 and row["updates"] == 0
    from safetensors.torch import load_file

    before = load_file(tiny_checkpoint / "model.safetensors")
    after = load_file(rundir.checkpoint_dir(run, 1) / "model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_existing_run_is_not_overwritten(tiny_checkpoint, tmp_path):
    run = train(
        resolve_config("grpo", overrides=small(tiny_checkpoint, steps=1, val_every=0)), tmp_path / "r", progress=False
    )
    with pytest.raises(EntropylabError, match="already holds a run"):
        train(resolve_config("grpo", overrides=small(tiny_checkpoint, steps=1)), run, progress=False)
    with pytest.raises(EntropylabError, match="nothing to resume"):
        train(resolve_config("grpo"), tmp_path / "empty", resume=True, progress=False)


@pytest.mark.parametrize(
    "override, field",
    [
        ("group_size=1", "group_size"),
        ("loss.rho=0", "rho"),
        ("loss.rho=1.5", "rho"),
        ("loss.clip_cov_ratio=-0.1", "clip_cov_ratio"),
        ("lr=-1e-4", "lr"),
        ("mini_batches=0", "mini_batches"),
        ("loss.policy_loss=nope", "policy_loss"),
        ("lr_schedule=step", "lr_schedule"),
        ("stepz=3", "stepz"),
        ("precision=fp16", "precision"),
    ],
)
def test_invalid_config_names_the_field(override, field):
    with pytest.raises(ConfigError, match=field):
        resolve_config("grpo", overrides=[override])


def test_overrides_read_numbers_as_users_write_them():
    cfg = resolve_config("grpo", overrides=["lr=1e-3", "loss.clip_ratio_high=0.28", "val_greedy=false", "model=arith"])
    assert cfg.lr == 1e-3 and cfg.loss.clip_ratio_high == 0.28 and cfg.val_greedy is False and cfg.model == "arith"


def test_config_file_and_presets(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 7\nloss:\n  rho: 0.3\n")
    cfg = resolve_config("top20", path, ["loss.rho=0.25"])
    assert cfg.steps == 7 and cfg.loss.entropy_mask == "top" and cfg.loss.rho == 0.25
    assert resolve_config("clip_cov").loss.policy_loss == "clip_cov"
    assert resolve_config("bottom80").loss.entropy_mask == "bottom"
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1,\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        resolve_config("grpo", bad)
    with pytest.raises(ConfigError, match="unknown preset"):
        resolve_config("nope")


def test_cov_presets_scale_the_papers_ratios_to_our_response_length():
    from entropylab.rl.presets import RESPONSE_LENGTH_SCALE

    assert resolve_config("clip_cov").loss.clip_cov_ratio == pytest.approx(2e-4 * RESPONSE_LENGTH_SCALE)
    assert resolve_config("kl_cov").loss.kl_cov_ratio == pytest.approx(2e-3 * RESPONSE_LENGTH_SCALE)
    paper_clip, paper_kl = resolve_config("clip_cov_paper").loss, resolve_config("kl_cov_paper").loss
    assert (paper_clip.policy_loss, paper_clip.clip_cov_ratio, paper_clip.clip_ratio_high) == ("clip_cov", 2e-4, 1.0)
    assert (paper_kl.policy_loss, paper_kl.kl_cov_ratio) == ("kl_cov", 2e-3)


def test_cli_train_and_diagnose(tiny_checkpoint, tmp_path):
    from entropylab.cli import main

    run = tmp_path / "cli"
    args = ["train", "--quiet", "--out", str(run)]
    for s in small(tiny_checkpoint, steps=2, dump_every=1):
        args += ["--set", s]
    assert main(args) == 0
    assert main(["diagnose", str(run)]) == 0
    assert (run / "diagnostics" / "covariance_table.csv").exists()
    table = pd.read_csv(run / "diagnostics" / "covariance_table.csv")
    assert list(table["step"]) == [1, 2]
    assert main(["train", "--out", str(tmp_path / "x"), "--set", "group_size=1"]) == 2  # one-line error, no traceback


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "auto"])
def test_update_precision_is_applied_and_recorded(tiny_checkpoint, tmp_path, precision):
    """The policy update runs in the configured precision (auto: the probe's choice), recorded in
    precision.json; bf16 autocast trains to the same numbers up to rounding."""
    run = train(
        resolve_config("grpo", overrides=small(tiny_checkpoint, steps=2, precision=precision)),
        tmp_path / precision,
        progress=False,
    )
    record = json.loads((run / rundir.PRECISION).read_text())
    assert record["requested"] == precision and record["precision"] in ("float32", "bfloat16")
    assert (
        (record["precision"] == precision) if precision != "auto" else set(record["seconds"]) == {"float32", "bfloat16"}
    )
    assert record["cpu_capability"] == str(torch.backends.cpu.get_cpu_capability())
    rows = metrics(run)
    assert math.isfinite(rows[-1]["actor/pg_loss"]) and rows[-1]["updates"] == 2
    if precision == "bfloat16":
        ref = metrics(
            train(resolve_config("grpo", overrides=small(tiny_checkpoint, steps=2)), tmp_path / "f32", progress=False)
        )
        assert rows[1]["actor/entropy"] == pytest.approx(ref[1]["actor/entropy"], rel=0.02)
        assert rows[1]["actor/pg_loss"] == pytest.approx(ref[1]["actor/pg_loss"], rel=0.05, abs=1e-3)
