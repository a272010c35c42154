"""The experiments' cache: a result is reused only when every part of its key is the same, and computed again
(in a new entry) when any part changes; a cache-only view computes nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from entropylab import experiments as ex
from entropylab import rundir
from entropylab.experiments import Cache, NotCached
from entropylab.models import data_dir
from entropylab.rl.config import resolve_config


def _counting(calls: list, value=1):
    def compute(d):
        calls.append(d)
        (d / "out.txt").write_text(str(value))

    return compute


def _read(d):
    return int((d / "out.txt").read_text())


def test_an_entry_is_reused_for_the_same_key_and_computed_again_for_another(tmp_path):
    cache, calls = Cache(tmp_path), []
    parts = {"task": "arith", "seed": 0, "sizes": {"n": 4, "alphas": (1.0, 4.0)}}
    assert cache.get("kind", "x", parts, _counting(calls), _read) == 1
    assert cache.get("kind", "x", dict(reversed(parts.items())), _counting(calls), _read) == 1  # key order: same
    assert len(calls) == 1
    for changed in (
        {**parts, "seed": 1},
        {**parts, "sizes": {"n": 8, "alphas": (1.0, 4.0)}},
        {**parts, "model": "other weights"},
    ):
        cache.get("kind", "x", changed, _counting(calls), _read)
    assert len(calls) == 4
    assert cache.entry("kind", "x", parts) != cache.entry("other", "x", parts)
    assert cache.get("kind", "x", parts, _counting(calls, 2), _read, fresh=True) == 2 and len(calls) == 5
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "kind").iterdir()) == ["x"] * 4  # no temporary left


def test_a_cache_only_view_computes_nothing(tmp_path):
    cache, calls = Cache(tmp_path), []
    with pytest.raises(NotCached):
        cache.only_cached().get("kind", "x", {"a": 1}, _counting(calls), _read)
    assert calls == [] and not (tmp_path / "kind").exists()
    cache.get("kind", "x", {"a": 1}, _counting(calls), _read)
    assert cache.only_cached().get("kind", "x", {"a": 1}, _counting(calls), _read) == 1 and len(calls) == 1


def test_an_unfinished_entry_is_computed_again(tmp_path):
    cache, calls = Cache(tmp_path), []

    def fails(d):
        (d / "half").write_text("")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cache.get("kind", "x", {}, fails, _read)
    assert not cache.done(cache.entry("kind", "x", {}))
    assert cache.get("kind", "x", {}, _counting(calls), _read) == 1 and len(calls) == 1
    assert not (cache.entry("kind", "x", {}) / "half").exists()


def as_frame(cache, value: int) -> pd.DataFrame:
    """A cached experiment in miniature: a one-row frame."""
    return ex.as_cache(cache).frame("frames", f"v{value}", {"value": value}, lambda: pd.DataFrame({"v": [value]}))


def test_run_jobs_computes_in_process_what_is_left_and_returns_cached_results(tmp_path):
    """With workers > 1 the cached jobs are answered from the cache; one job left runs in this process."""
    as_frame(Cache(tmp_path), 1)
    results = ex.run_jobs([(as_frame, (tmp_path, 1), {}), (as_frame, (tmp_path, 2), {})], workers=2)
    assert [int(r["v"].iloc[0]) for r in results] == [1, 2]
    assert ex.run_jobs([(as_frame, (tmp_path, 2), {})], workers=1)[0]["v"].tolist() == [2]


_ORDER_JOBS = """
import sys, time
from entropylab.experiments import as_cache, run_jobs

def wait(cache, seconds):
    cache = as_cache(cache)
    cache.may_compute(cache.root / str(seconds))
    time.sleep(seconds)
    return seconds

if __name__ == "__main__":
    print(run_jobs([(wait, (sys.argv[1], s), {}) for s in (3.0, 0.1)], workers=2), flush=True)
"""


def test_run_jobs_reports_each_job_as_it_finishes_and_returns_results_in_order(tmp_path):
    """The short second job is reported first, not after the long first one; the results keep the jobs' order."""
    script = tmp_path / "jobs.py"
    script.write_text(_ORDER_JOBS)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "cache")], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split("(")[1].split(")")[0] for line in lines if "done wait" in line] == ["0.1", "3.0"], lines
    assert lines[-1] == "[3.0, 0.1]"


_SLOW_JOBS = """
import os, sys, time
from entropylab.experiments import as_cache, run_jobs

def slow(cache, i):
    cache = as_cache(cache)
    cache.may_compute(cache.root / str(i))
    (cache.root / f"worker{i}.pid").write_text(str(os.getpid()))
    time.sleep(300)

if __name__ == "__main__":
    run_jobs([(slow, (sys.argv[1], i), {}) for i in range(2)], workers=2)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # an unreaped zombie has stopped


def _start_jobs(tmp_path: Path, source: str, stderr) -> tuple[subprocess.Popen, list[int]]:
    """Start the job script `source` (two workers that write their pid, then wait) with SIGINT at its default
    (a background shell ignores it); return the parent once both workers run, and their pids."""
    script = tmp_path / "jobs.py"
    script.write_text(source)
    parent = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    pid_files = [tmp_path / f"worker{i}.pid" for i in range(2)]
    deadline = time.monotonic() + 120
    while not all(f.is_file() and f.read_text() for f in pid_files):
        assert parent.poll() is None and time.monotonic() < deadline, "the workers never started"
        time.sleep(0.2)
    return parent, [int(f.read_text()) for f in pid_files]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the workers' parent-death signal is Linux's")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT], ids=lambda s: s.name)
def test_stopping_the_parent_of_run_jobs_stops_its_workers(tmp_path, sig):
    """Killing `entropylab figures` (or anything running jobs in workers) leaves no worker computing on."""
    parent, workers = _start_jobs(tmp_path, _SLOW_JOBS, subprocess.DEVNULL)
    assert all(_alive(w) for w in workers)
    os.kill(parent.pid, sig)
    parent.wait(timeout=60)
    deadline = time.monotonic() + 30
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers), f"workers still running after {sig.name} to their parent"


def _fake_train(calls):
    """A stand-in for the trainer that writes what a finished run leaves: config, metrics, a checkpoint."""

    def train(cfg, out, *, resume=False, progress=True):
        calls.append((cfg.steps, resume))
        out.mkdir(parents=True, exist_ok=True)
        (out / rundir.CONFIG).write_text(cfg.to_yaml())
        (out / rundir.METRICS).write_text("".join(f'{{"step": {s}}}\n' for s in range(1, cfg.steps + 1)))
        rundir.checkpoint_dir(out, cfg.steps).mkdir(parents=True, exist_ok=True)
        (rundir.checkpoint_dir(out, cfg.steps) / rundir.TRAINER_STATE).write_bytes(b"")
        return out

    return train


def test_a_run_with_other_settings_is_trained_again_not_reused(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("entropylab.rl.trainer.train", _fake_train(calls))
    first = ex.ensure_run(tmp_path, "grpo", scale="quick", progress=False)
    assert ex.ensure_run(tmp_path, "grpo", scale="quick", progress=False) == first
    assert calls == [(4, False)]  # the second call reuses the finished run
    with pytest.raises(NotCached):
        ex.ensure_run(Cache(tmp_path, cached_only=True), "grpo", scale="quick", overrides=["steps=6"])
    other = ex.ensure_run(tmp_path, "grpo", scale="quick", overrides=["steps=6"], progress=False)
    assert calls == [(4, False), (6, False)] and other != first
    assert resolve_config("grpo", other / rundir.CONFIG).steps == 6
    assert ex.ensure_run(tmp_path, "grpo", scale="quick", progress=False) == first and len(calls) == 2


def test_a_run_stopped_after_a_checkpoint_is_resumed(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("entropylab.rl.trainer.train", _fake_train(calls))
    run = ex.run_location(tmp_path, "grpo", scale="quick")
    _fake_train([])(resolve_config("grpo", overrides=["steps=4"]), run)  # a checkpoint, but no key file yet
    assert ex.ensure_run(tmp_path, "grpo", scale="quick", progress=False) == run
    assert calls == [(4, True)]


def test_a_run_on_a_reshipped_base_model_is_trained_again(tmp_path, monkeypatch):
    """Same model name and settings, new weights (a re-shipped checkpoint): the old run is not reused."""
    calls = []
    monkeypatch.setattr("entropylab.rl.trainer.train", _fake_train(calls))
    base = tmp_path / "base"
    shutil.copytree(data_dir() / "arith", base)
    first = ex.ensure_run(tmp_path / "runs", "grpo", scale="quick", model=str(base), progress=False)
    ex.ensure_run(tmp_path / "runs", "grpo", scale="quick", model=str(base), progress=False)
    assert calls == [(4, False)]
    (base / "model.safetensors").write_bytes((base / "model.safetensors").read_bytes() + b"\0")
    assert ex.ensure_run(tmp_path / "runs", "grpo", scale="quick", model=str(base), progress=False) != first
    assert calls == [(4, False), (4, False)]


def test_model_key_follows_the_weights(tmp_path):
    base = tmp_path / "base"
    shutil.copytree(data_dir() / "arith", base)
    before = ex.model_key(base)
    assert before == ex.model_key(base) and before.startswith("base-")
    weights = base / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))  # a new checkpoint
    after = ex.model_key(base)
    assert after != before
    (base / "tokenizer.json").write_text("{}")  # not a weight file
    assert ex.model_key(base) == after


_BAR_JOBS = """
import os, sys, time
from tqdm import tqdm
from entropylab.cli import sigterm_as_interrupt
from entropylab.experiments import as_cache, run_jobs

def slow(cache, i):
    cache = as_cache(cache)
    cache.may_compute(cache.root / str(i))
    with tqdm(total=1, disable=True):  # as the trainer's and transformers' bars do, in the worker
        (cache.root / f"worker{i}.pid").write_text(str(os.getpid()))
        time.sleep(300)

if __name__ == "__main__":
    try:
        with sigterm_as_interrupt():
            run_jobs([(slow, (sys.argv[1], i), {}) for i in range(2)], workers=2)
    except KeyboardInterrupt:
        sys.exit(130)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the workers' parent-death signal is Linux's")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_stopping_jobs_leaves_no_leaked_semaphore_warning(tmp_path, sig):
    """Ctrl-C or `kill` of the parent stops the workers without the resource tracker's "leaked semaphore"
    warning: the workers' progress bars hold no named semaphore, and the parent cleans up its pool on SIGTERM."""
    parent, _ = _start_jobs(tmp_path, _BAR_JOBS, subprocess.PIPE)
    os.kill(parent.pid, sig)
    _, stderr = parent.communicate(timeout=60)
    assert parent.returncode == 130, stderr
    time.sleep(1.0)  # the resource tracker reports after its last user has gone
    assert "leaked" not in stderr, stderr
