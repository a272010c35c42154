"""A self-contained HTML report: sections with a sentence, figures embedded as base64 PNG, and tables."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
p.what{color:#444;margin:.3em 0 .8em} img{max-width:100%;border:1px solid #eee}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0} th,td{padding:.25em .6em;border-bottom:1px solid #eee;text-align:right}
th{background:#f6f6f6} td:first-child,th:first-child{text-align:left} pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.8em}
.note{color:#a15c00}
"""


@dataclass
class Section:
    """One titled part of a report: a sentence saying what it shows, then figures, tables and text."""

    title: str
    what: str
    figures: list[Path] = field(default_factory=list)
    tables: list[pd.DataFrame] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    """An ordered list of sections rendered to one HTML page with no external resources."""

    title: str
    intro: str = ""
    sections: list[Section] = field(default_factory=list)

    def add(self, title: str, what: str, *, figures=(), tables=(), text=(), notes=()) -> Section:
        """Append a section; figures are PNG paths, tables DataFrames, text preformatted strings."""
        sec = Section(title, what, [Path(f) for f in figures], list(tables), list(text), list(notes))
        self.sections.append(sec)
        return sec

    def to_html(self) -> str:
        """Render the page; every figure is inlined so the file can be mailed or opened offline."""
        parts = [
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>",
            f"<style>{CSS}</style></head><body><h1>{html.escape(self.title)}</h1>",
        ]
        if self.intro:
            parts.append(f"<p>{html.escape(self.intro)}</p>")
        for sec in self.sections:
            parts.append(f"<h2>{html.escape(sec.title)}</h2><p class='what'>{html.escape(sec.what)}</p>")
            for fig in sec.figures:
                data = base64.b64encode(fig.read_bytes()).decode("ascii")
                parts.append(f"<img alt='{html.escape(fig.stem)}' src='data:image/png;base64,{data}'>")
            for table in sec.tables:
                parts.append(table.to_html(index=False, border=0, float_format=lambda v: f"{v:.4g}"))
            for text in sec.text:
                parts.append(f"<pre>{html.escape(text)}</pre>")
            for note in sec.notes:
                parts.append(f"<p class='note'>{html.escape(note)}</p>")
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self, path: str | Path) -> Path:
        """Write the HTML page to `path` and return it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_html(), encoding="utf-8")
        return path


def format_table(rows: list[dict], columns: Sequence[str]) -> str:
    """Plain fixed-width text table: a header, a rule and one line per row (first column left-aligned)."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]

    def line(vals: list[str]) -> str:
        return "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths)))

    return "\n".join([line(list(columns)), "  ".join("-" * w for w in widths)] + [line(r) for r in cells])
