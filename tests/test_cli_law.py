"""`entropylab ingest` and `entropylab fit` end to end through the CLI: options, outputs, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from entropylab.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIX = Path(__file__).resolve().parent / "fixtures" / "logs"
REAL = FIX / "real-world"
GEMMA = ROOT / "data" / "real-logs" / "gemma-2-2b-it-ppo-bsz512_4-prompt1024-resp-512-0.640.log"
ENV = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}


def test_ingest_through_the_cli(capsys):
    assert main(["ingest", str(REAL / "wandb-verl-cut.log"), str(REAL / "five-runs.csv")]) == 0
    out = capsys.readouterr().out
    assert sum(line.startswith("run ") for line in out.splitlines()) == 6  # 1 + the 5 runs of the CSV
    assert "joins only 0 entropy point(s); chose val/openai/gsm8k/reward/mean@4" in out
    assert "val size    1319 problems (read from the log" in out
    assert "run clip_cov" in out and "34 line(s) cut at a capture width" in out


def test_ingest_step_and_run_keys(tmp_path: Path, capsys):
    path = tmp_path / "sweep.csv"
    path.write_text("tag,it,entropy,val/acc\nx,1,0.5,0.1\ny,1,0.6,0.2\nx,2,0.4,0.2\ny,2,0.5,0.3\nx,3,0.3,0.3\n")
    assert main(["ingest", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no step column" in err and "--step-key" in err and "Traceback" not in err
    assert main(["ingest", str(path), "--step-key", "it", "--run-key", "tag"]) == 0
    out = capsys.readouterr().out
    assert "run x" in out and "run y" in out and "steps       3 (steps 1..3)" in out


def test_fit_through_the_cli(tmp_path: Path, capsys):
    out_json = tmp_path / "fit.json"
    assert (
        main(
            [
                "fit",
                str(REAL / "deepseek-low-variance.log"),
                str(REAL / "grpo-step.jsonl"),
                "--json",
                str(out_json),
                "--history",
                str(tmp_path / "history"),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    lines = {line.split()[0]: line for line in captured.out.splitlines() if line.startswith(("deepseek", "grpo"))}
    assert lines["deepseek-low-variance"].rstrip().endswith("ok")  # R² 0.40, within the binomial noise
    assert " 0.396 " in lines["deepseek-low-variance"]
    assert "forecast history: 4 files" in captured.out and "ceiling within 0.02 of its full-run value" in captured.out
    assert sorted(p.name for p in (tmp_path / "history").iterdir())[0] == "forecast_history_deepseek-low-variance.png"
    payload = json.loads(out_json.read_text())
    deep = payload["runs"]["deepseek-low-variance"]["fit"]
    assert deep["noise"]["source"] == "binomial" and deep["noise"]["val_size"] == 5000 and deep["ok"]
    assert payload["runs"]["grpo-step"]["fit"]["noise"]["source"] == "smoother"
    assert captured.err == ""  # the jsonl's torn last line is normal input: noted by ingest, not warned


def test_fit_val_size_overrides_and_changes_the_verdict(capsys):
    assert main(["fit", str(REAL / "deepseek-low-variance.log"), "--val-size", "100000", "--report"]) == 0
    out = capsys.readouterr().out
    assert "binomial noise of 100000 problems" in out  # 20x the problems: the same residuals are too large now
    assert "ceiling not trustworthy: the law does not describe this run within the noise" in out


def test_fit_errors_are_one_line(tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"step": 1, "entropy": 0.5}\n{"entropy": 0.4}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "entropylab.cli", "fit", str(bad)], cwd=ROOT, capture_output=True, text=True, env=ENV
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("entropylab fit: error: ")
    assert "line 2: no step field" in proc.stderr and "Traceback" not in proc.stderr


def test_fit_real_log_in_a_subprocess():
    proc = subprocess.run(
        [sys.executable, "-m", "entropylab.cli", "fit", str(GEMMA)], cwd=ROOT, capture_output=True, text=True, env=ENV
    )
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("gemma"))
    assert "0.696 [0.665, 0.726]" in row and row.rstrip().endswith("ok")
    assert proc.stderr == ""  # the torn last line of a log is normal input: no warning


def test_every_help_names_each_default_once():
    """No option's help says its default twice, or prints "(default: None)" / "(default: False)"."""
    import argparse
    import re

    from entropylab.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        text = " ".join(parser.format_help().split())
        assert "(default: None)" not in text and "(default: False)" not in text, name
        for option in re.split(r"\s(?=--?[a-z])", text):
            assert option.count("(default") <= 1, (name, option)
