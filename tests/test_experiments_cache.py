"""The experiments' caches are reused only for the settings and weights they were made from."""

from __future__ import annotations

import os
import shutil

import pytest

from entropylab import experiments as ex
from entropylab import rundir
from entropylab.models import data_dir
from entropylab.rl.config import resolve_config


def _fake_train(calls):
    """A stand-in for the trainer that writes what a finished run leaves: config, metrics, a checkpoint."""

    def train(cfg, out, *, resume=False, progress=True):
        calls.append((cfg.steps, resume))
        out.mkdir(parents=True, exist_ok=True)
        (out / rundir.CONFIG).write_text(cfg.to_yaml())
        (out / rundir.METRICS).write_text("".join(f'{{"step": {s}}}\n' for s in range(1, cfg.steps + 1)))
        rundir.checkpoint_dir(out, cfg.steps).mkdir(parents=True)
        (rundir.checkpoint_dir(out, cfg.steps) / rundir.TRAINER_STATE).write_bytes(b"")
        return out

    return train


def test_a_run_with_other_settings_is_trained_again_not_reused(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("entropylab.rl.trainer.train", _fake_train(calls))
    ex.ensure_run("grpo", tmp_path, scale="quick", progress=False)
    ex.ensure_run("grpo", tmp_path, scale="quick", progress=False)
    assert calls == [(4, False)]  # the second call reuses the finished run
    assert ex.run_done("grpo", tmp_path, scale="quick")
    assert not ex.run_done("grpo", tmp_path, scale="quick", overrides=["steps=6"])
    with pytest.warns(UserWarning, match="other settings .*steps"):
        ex.ensure_run("grpo", tmp_path, scale="quick", overrides=["steps=6"], progress=False)
    assert calls == [(4, False), (6, False)]
    cfg = resolve_config("grpo", tmp_path / ex.run_name("grpo", "arith", 0) / rundir.CONFIG)
    assert cfg.steps == 6


def test_changed_settings_names_the_fields(tmp_path):
    cfg = resolve_config("grpo", overrides=["steps=4", "lr=1e-4"])
    (tmp_path / rundir.CONFIG).write_text(cfg.to_yaml())
    assert ex._changed_settings(tmp_path, cfg) == ["base model weights"]  # no record of the weights
    (tmp_path / ex.BASE_WEIGHTS).write_text(ex._weights_key(cfg.model))
    assert ex._changed_settings(tmp_path, cfg) == []
    assert ex._changed_settings(tmp_path, resolve_config("grpo", overrides=["steps=5", "lr=1e-4"])) == ["steps"]
    assert ex._changed_settings(tmp_path / "missing", cfg) == []


def test_a_run_on_a_reshipped_base_model_is_trained_again(tmp_path, monkeypatch):
    """Same model name and settings, new weights (a re-shipped checkpoint): the old run is not reused."""
    calls = []
    monkeypatch.setattr("entropylab.rl.trainer.train", _fake_train(calls))
    base = tmp_path / "base"
    shutil.copytree(data_dir() / "arith", base)
    ex.ensure_run("grpo", tmp_path / "runs", scale="quick", model=str(base), progress=False)
    ex.ensure_run("grpo", tmp_path / "runs", scale="quick", model=str(base), progress=False)
    assert calls == [(4, False)]
    (base / "model.safetensors").write_bytes((base / "model.safetensors").read_bytes() + b"\0")
    assert not ex.run_done("grpo", tmp_path / "runs", scale="quick", model=str(base))
    with pytest.warns(UserWarning, match="base model weights"):
        ex.ensure_run("grpo", tmp_path / "runs", scale="quick", model=str(base), progress=False)
    assert calls == [(4, False), (4, False)]


def test_comparison_cache_follows_the_weights_of_both_models(tmp_path):
    base = tmp_path / "base"
    shutil.copytree(data_dir() / "arith", base)
    grpo = tmp_path / "grpo"
    shutil.copytree(data_dir() / "arith", grpo)
    first = ex.comparison_dir(tmp_path, model=base, grpo_checkpoint=grpo)
    assert first == ex.comparison_dir(tmp_path, model=base, grpo_checkpoint=grpo)
    assert first != ex.comparison_dir(tmp_path, model=base)
    weights = grpo / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))  # a new checkpoint
    assert ex.comparison_dir(tmp_path, model=base, grpo_checkpoint=grpo) != first
    before = ex._cache_name(base)
    (base / "model.safetensors").write_bytes((base / "model.safetensors").read_bytes() + b"\0")
    assert ex._cache_name(base) != before and ex._cache_name(base).startswith("base-")
