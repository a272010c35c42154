"""The HTML report is self-contained and the text table is aligned."""

from __future__ import annotations

import base64

import matplotlib.pyplot as plt
import pandas as pd

from entropylab.plots import save_figure
from entropylab.report import Report, format_table


def test_report_inlines_figures_and_escapes_text(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = [p for p in save_figure(fig, tmp_path / "fig") if p.suffix == ".png"][0]
    report = Report("title <x>", intro="intro & more")
    report.add(
        "Section",
        "what it shows",
        figures=[png],
        tables=[pd.DataFrame({"a": [1.5], "b": ["x"]})],
        text=["<pre-text>"],
        notes=["careful"],
    )
    html = report.write(tmp_path / "r.html").read_text()
    assert "title &lt;x&gt;" in html and "intro &amp; more" in html and "&lt;pre-text&gt;" in html
    data = html.split("data:image/png;base64,")[1].split("'")[0]
    assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http://" not in html and "https://" not in html
    assert "<table" in html and "careful" in html


def test_format_table_aligns_columns():
    text = format_table([{"run": "a", "n": 3}, {"run": "long-name", "n": 12}], ["run", "n"])
    lines = text.splitlines()
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1
    assert lines[3].startswith("long-name") and lines[2].endswith(" 3")
