"""`entropylab demo --quick` end to end: every piece runs, the report has every section, reruns reuse pieces."""

from __future__ import annotations

import json

from entropylab.demo import PIECES, run_demo

SECTIONS = ["The reward-entropy law on real verl runs", "Forecasting a run from its first 15% of steps",
            "Entropy collapse under GRPO", "Covariance between log-probability and advantage",
            "Which tokens the model is unsure about", "Power sampling: p^alpha without training"]


def test_demo_quick_writes_a_complete_self_contained_report(tmp_path, capsys):
    report = run_demo(tmp_path / "demo", quick=True, workers=2)  # runs and samples in two processes
    html = report.read_text()
    for title in SECTIONS:
        assert title in html, title
    assert html.count("data:image/png;base64,") >= 8
    assert "src='http" not in html and 'src="http' not in html  # self-contained
    printed = capsys.readouterr().out
    for piece in ("law on real logs", "GRPO runs", "covariance", "token entropy", "power sampling"):
        assert piece in printed
    summaries = sorted(p.parent.name for p in (tmp_path / "demo").glob("*/summary.json"))
    assert len(summaries) == len(PIECES)
    law = json.loads((tmp_path / "demo" / "law_real_logs" / "summary.json").read_text())
    fit = law["runs"]["Qwen2.5-0.5B-bsz256_2-prompt1024-resp512-0.567"]["fit"]
    assert abs(fit["params"]["a"] - 0.634) < 0.005 and abs(fit["params"]["b"] - 1.233) < 0.005 and fit["n"] == 43

    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "demo").glob("*/summary.json")}
    run_demo(tmp_path / "demo", quick=True)  # a second run reuses every finished piece
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
