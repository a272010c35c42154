"""`entropylab watch`: following logs as they grow (each format), the live forecasts, --once, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from entropylab import law, logs
from entropylab.cli import main
from entropylab.logs.follow import Follower

ROOT = Path(__file__).resolve().parents[1]
FIX = Path(__file__).resolve().parent / "fixtures" / "logs"
REF = ROOT / "data" / "real-logs" / "Qwen2.5-0.5B-bsz256_2-prompt1024-resp512-0.567.log"


def batch(path: Path, run: str, **kw) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", logs.LogWarning)
        return logs.load(path, run=run, **kw)


def same(followed: pd.DataFrame, loaded: pd.DataFrame) -> None:
    assert list(followed.columns) == list(loaded.columns)
    pd.testing.assert_frame_equal(followed.reset_index(drop=True), loaded.reset_index(drop=True))


def grow(tmp_path: Path, name: str, data: bytes, cuts: list[int], **kw) -> int:
    """Write `data` in pieces ending at `cuts` (anywhere, mid-line too); after each poll the followed frame
    equals load() of the file cut at its last newline. Returns the number of comparisons."""
    path, prefix = tmp_path / name, tmp_path / ("prefix-" + name)
    path.write_bytes(b"")
    follower = Follower(path, **kw)
    checked = 0
    with path.open("ab") as f:
        written = 0
        for cut in cuts:
            f.write(data[written:cut])
            f.flush()
            written = cut
            follower.poll()
            df = follower.frame()
            complete = data[:cut][: data[:cut].rfind(b"\n") + 1]
            if df is None:
                continue
            prefix.write_bytes(complete)
            same(df, batch(prefix, "run", **{k: v for k, v in kw.items() if k != "run"}))
            checked += 1
    return checked


def test_follow_verl_console_reads_only_new_bytes(tmp_path: Path) -> None:
    data = REF.read_bytes()
    cuts = sorted(np.random.default_rng(0).integers(30_000, len(data), 12).tolist()) + [len(data)]
    assert grow(tmp_path, "train.log", data, cuts, run="run") >= 10


def test_follow_reads_each_byte_once(tmp_path: Path, monkeypatch) -> None:
    from entropylab.logs import follow

    read = []
    real = follow._Bytes.read

    def spy(self):
        before = self.offset
        out = real(self)
        read.append(self.offset - before)
        return out

    monkeypatch.setattr(follow._Bytes, "read", spy)
    data = REF.read_bytes()
    grow(tmp_path, "train.log", data, [len(data) // 3, len(data) // 2, len(data)], run="run")
    assert sum(read) == len(data)  # every byte read once over the polls


@pytest.mark.parametrize(
    "name, kw",
    [("grpo-step.jsonl", {}), ("five-runs.csv", {}), ("verl-file-logger.jsonl", {}), ("wandb-history.csv", {})],
)
def test_follow_tabular_logs(tmp_path: Path, name: str, kw: dict) -> None:
    src = FIX / "real-world" / name if (FIX / "real-world" / name).exists() else FIX / name
    data = src.read_bytes()
    lines = np.cumsum([len(line) for line in data.splitlines(keepends=True)])
    cuts = sorted({int(c) for c in lines[1::3]} | {len(data) - 5, len(data)})
    assert grow(tmp_path, name, data, cuts, run="run", **kw) >= 2


def test_follow_trl_state_and_tensorboard(tmp_path: Path) -> None:
    state = json.loads((FIX / "trl-run" / "checkpoint-4" / "trainer_state.json").read_text())
    path = tmp_path / "trainer_state.json"
    follower = Follower(path, run="state")
    assert not follower.poll() and follower.frame() is None  # not written yet: waited for
    for k in (1, 3, len(state["log_history"])):
        path.write_text(json.dumps({**state, "log_history": state["log_history"][:k]}))
        assert follower.poll()
        same(follower.frame(), batch(path, "state"))
    path.write_text('{"log_history": [{"step": 1, ')  # caught mid-rewrite: the last good state stays
    assert not follower.poll() and len(follower.frame()) > 0

    from test_logs_formats import write_events

    tb = tmp_path / "tb"
    tb.mkdir()
    follower = Follower(tb, run="tb")
    assert not follower.poll()
    write_events(tb, steps=range(1, 4))
    assert follower.poll()
    same(follower.frame(), batch(tb, "tb"))
    write_events(tb, steps=range(4, 7))  # a second event file (a restart writes one)
    assert follower.poll() and not follower.poll()
    same(follower.frame(), batch(tb, "tb"))


# --------------------------------------------------------------------------- the watch command


def law_log(n_val: int = 14, seed: int = 0) -> list[str]:
    """A verl console log whose validation score follows the law plus binomial noise of 400 problems."""
    rng = np.random.default_rng(seed)
    lines = [
        "(TaskRunner pid=1) starting the run",
        "(TaskRunner pid=1) original dataset len: 7473",
        "(TaskRunner pid=1) original dataset len: 400",
        "(TaskRunner pid=1) step:0 - val-core/gsm8k/acc/mean@1:0.2",
    ]
    for s in range(1, 3 * n_val + 1):
        h = 1.1 * np.exp(-s / 25) + 0.1
        line = f"(TaskRunner pid=1) step:{s} - actor/entropy:{h:.5f} - critic/score/mean:{0.9 - 0.2 * np.exp(h):.4f}"
        if s % 3 == 0:
            line += f" - val-core/gsm8k/acc/mean@1:{rng.binomial(400, 0.92 - 0.2 * np.exp(h)) / 400:.4f}"
        lines.append(line)
    return lines


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_watch_subprocess_forecasts_match_a_batch_fit(tmp_path: Path) -> None:
    log, out = tmp_path / "train.log", tmp_path / "forecasts.jsonl"
    lines = law_log()
    head = 4 + 3 * 4  # the start of the run, with 4 validation points
    log.write_text("\n".join(lines[:head]) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "entropylab.cli", "watch", str(log), "--interval", "0.05", "--forecasts", str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as a shell starts it: Ctrl-C not ignored, even where an earlier test left this process ignoring it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not read_records(out) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        with log.open("a") as f:  # the rest line by line, each line in two writes (a torn line in between)
            for line in lines[head:]:
                f.write(line[:30])
                f.flush()
                time.sleep(0.02)
                f.write(line[30:] + "\n")
                f.flush()
                time.sleep(0.02)
        last = int(lines[-1].split("step:")[1].split(" ")[0])
        while (
            time.monotonic() < deadline
            and proc.poll() is None
            and not any(r["step"] == last for r in read_records(out))
        ):
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # still running: its Python stacks (faulthandler) into the failure
            proc.send_signal(signal.SIGABRT)
            stdout, stderr = proc.communicate(timeout=30)
            raise AssertionError(f"watch did not stop on SIGINT; its stacks:\n{stderr[-6000:]}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr and "stopped; 14 validation points in 1 run(s)" in stdout
    records = read_records(out)
    # one forecast when watch started (4 points), then one per new validation point
    assert [r["n"] for r in records] == list(range(4, 15))
    assert [r["step"] for r in records] == [3.0 * n for n in range(4, 15)]
    for i, r in enumerate(records):
        prefix = tmp_path / "prefix.log"
        cut = next(j for j, line in enumerate(lines) if f"step:{int(r['step'])} " in line)
        prefix.write_text("\n".join(lines[: cut + 1]) + "\n")
        df = batch(prefix, "train")
        assert df.attrs["entropylab"]["train"]["val_size"] == 400
        fit = law.fit_law(logs.points(df), val_size=400)
        assert r["ceiling"] == pytest.approx(fit.ceiling, rel=1e-12)
        assert [r["ceiling_low"], r["ceiling_high"]] == pytest.approx(list(fit.ceiling_ci), rel=1e-12)
        assert r["ok"] == fit.ok and r["val_size"] == 400
        assert r["headroom"] == pytest.approx(law.headroom(fit, fit.H[-1]), rel=1e-9)
        assert r["lack_of_fit_p"] == pytest.approx(fit.noise.p_value)
        if i:  # the previous forecast's error on this point
            prev = law.fit_law(logs.points(df).iloc[:-1], val_size=400)
            assert r["last_error"] == pytest.approx(float(prev.predict(fit.H[-1:])[0] - fit.R[-1]))
    assert records[-1]["ok"]  # the law is true here: the verdict says so


def test_watch_once_prints_a_snapshot(tmp_path: Path, capsys) -> None:
    log, out = tmp_path / "train.log", tmp_path / "f.jsonl"
    log.write_text("\n".join(law_log()) + "\n")
    assert main(["watch", str(log), "--once", "--forecasts", str(out)]) == 0
    text = capsys.readouterr().out
    assert "entropylab watch" in text and "ceiling [95%]" in text and "train" in text
    (record,) = read_records(out)
    assert record["n"] == 14 and record["run"] == "train" and record["log"] == str(log)
    assert f"{record['ceiling']:.3f}" in text
    assert main(["watch", str(tmp_path / "missing.log"), "--once"]) == 0
    assert "no such file yet" in capsys.readouterr().out


def test_watch_alarms_in_plain_output(tmp_path: Path) -> None:
    from entropylab.watch import Watcher, plain

    log = tmp_path / "collapse.log"
    lines = [
        f"step:{s} - actor/entropy:{1.0 * 0.8**s:.5f} - val-core/x/acc/mean@1:{0.8 - 0.3 * np.exp(0.8**s):.4f}"
        for s in range(1, 16)
    ]
    log.write_text("\n".join(lines) + "\n")
    (record,) = Watcher([log]).poll()
    assert any(a.startswith("entropy near collapse") for a in record["alarms"])
    assert "! entropy near collapse" in plain(record)


def test_follow_trl_output_dir_moves_to_the_newest_state(tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "trl-out"
    out.mkdir()
    shutil.copytree(FIX / "trl-run" / "checkpoint-2", out / "checkpoint-2")
    follower = Follower(out, run="trl")
    assert follower.poll()
    assert follower.frame()["step"].tolist() == [1, 2]
    shutil.copytree(FIX / "trl-run" / "checkpoint-4", out / "checkpoint-4")
    assert follower.poll()
    same(follower.frame(), batch(out, "trl"))
    assert follower.frame()["step"].max() == 4


def test_follow_a_json_list_of_records(tmp_path: Path) -> None:
    path = tmp_path / "records.json"
    records = [{"global_step": s, "entropy": 1 - 0.1 * s, "eval/acc": 0.1 * s} for s in range(1, 6)]
    follower = Follower(path, run="r")
    for k in (2, 5):
        path.write_text(json.dumps(records[:k]))
        assert follower.poll()
        same(follower.frame(), batch(path, "r"))
    assert follower.frame()["step"].tolist() == [1, 2, 3, 4, 5]
