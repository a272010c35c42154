"""Progress bars draw on a terminal or in a notebook, never into a redirected stream."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from entropylab import progress

ROOT = Path(__file__).resolve().parents[1]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_draws_on_a_terminal_only(monkeypatch):
    for stream, drawn in ((io.StringIO(), False), (_Tty(), True)):
        monkeypatch.setattr(sys, "stderr", stream)
        assert progress.watched() is drawn
        list(progress.bar(range(3), desc="work", file=stream))
        assert ("work" in stream.getvalue()) is drawn
    list(progress.bar(range(3), desc="work", show=False, file=stream))  # show=False silences a terminal too
    assert stream.getvalue().count("work: 100%") == 1


def test_a_command_writes_no_bar_into_a_redirected_stream():
    """`entropylab fit` on four logs (a bar from four on) with stderr a pipe: its "reading logs" bar used to draw there."""
    real = ROOT / "tests" / "fixtures" / "logs" / "real-world"
    logs = [real / n for n in ("deepseek-low-variance.log", "wandb-verl-cut.log", "grpo-step.jsonl", "five-runs.csv")]
    proc = subprocess.run(
        [sys.executable, "-m", "entropylab.cli", "fit", *map(str, logs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "reading logs" not in proc.stderr and "%|" not in proc.stderr
