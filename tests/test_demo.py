"""`entropylab demo --quick` end to end: every piece runs, the report has every section, reruns reuse pieces
made from the same, and only those."""

from __future__ import annotations

import json

from entropylab.demo import PIECES, run_demo

SECTIONS = [
    "The reward-entropy law on real verl runs",
    "Forecasting a run from its first 15% of steps",
    "Entropy collapse under GRPO",
    "Covariance between log-probability and advantage",
    "Which tokens the model is unsure about",
    "Power sampling: p^alpha without training",
]


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
    assert len(list((tmp_path / "demo").glob("*/*/summary.json"))) == len(PIECES)
    law = json.loads(next((tmp_path / "demo" / "law_real_logs").glob("*/summary.json")).read_text())
    fit = law["runs"]["Qwen2.5-0.5B-bsz256_2-prompt1024-resp512-0.567"]["fit"]
    assert abs(fit["params"]["a"] - 0.634) < 0.005 and abs(fit["params"]["b"] - 1.233) < 0.005 and fit["n"] == 43

    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "demo").glob("*/*/summary.json")}
    run_demo(tmp_path / "demo", quick=True)  # a second run reuses every finished piece
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_a_quick_piece_is_not_reused_by_a_full_demo_in_the_same_folder(tmp_path, monkeypatch):
    """The pieces are cached by what they are made from: the quick demo's results do not stand in for the full
    one's (nor the full one's for the quick one's), and each is reused by a run of its own scale."""
    import numpy as np
    import pandas as pd

    from entropylab import experiments as ex
    from entropylab.demo import token_entropy
    from entropylab.experiments import Cache
    from entropylab.report import Report

    asked = []

    def profiles(model, task, *, n, **kw):
        asked.append(n)
        rng = np.random.default_rng(n)
        tokens = rng.choice(list("abcdefgh"), size=20 * n)
        return pd.DataFrame(
            {
                "text_id": np.repeat(np.arange(n), 20),
                "position": np.tile(np.arange(20), n),
                "token": tokens,
                "in_prompt": False,
                "entropy": rng.exponential(0.1, 20 * n),
            }
        )

    monkeypatch.setattr(ex, "token_profiles", profiles)
    cache = Cache(tmp_path / "demo")
    quick = token_entropy(cache, Report("r"), "quick", fresh=False)
    full = token_entropy(cache, Report("r"), "demo", fresh=False)
    assert asked == [16, 128] and quick != full
    assert token_entropy(cache, Report("r"), "quick", fresh=False) == quick
    assert token_entropy(cache, Report("r"), "demo", fresh=False) == full
    assert asked == [16, 128]
    token_entropy(cache, Report("r"), "demo", fresh=True)
    assert asked == [16, 128, 128]
