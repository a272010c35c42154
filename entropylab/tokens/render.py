"""HTML rendering of tokens coloured by a per-token value (entropy, log-prob, advantage, covariance).

`show_tokens` returns a `TokenHTML` (it has `_repr_html_`, so JupyterLab displays it). Every token is a
``<span class="tok" data-row=R data-idx=I data-value=V title=...>`` with its background colour inline; the
`title` tooltip gives the value, the token's probability and its top alternatives. All rows share one
`ColorScale`, capped at a percentile so a few outliers do not wash the rest out; pass the same `scale` to
several calls to compare them. Forking tokens (entropy >= `forking_cutoff`) get the class ``fork`` and an
underline. Whitespace is visible: a space-only token shows as ``·``, a newline as ``↵`` followed by a line
break, a tab as ``→``. `export_html` writes a self-contained page (inline CSS and JS, no network).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from entropylab.tokens.errors import TokensError

__all__ = ["ColorScale", "TokenHTML", "display_text", "export_html", "show_frame", "show_tokens"]

#: Values whose colour scale is centred on 0 by default (diverging colour map).
DIVERGING = {"advantage", "covariance", "reward", "cov"}
#: Default colour map per value; high entropy (or low log-prob) is red.
DEFAULT_CMAPS = {
    "entropy": "YlOrRd",
    "varentropy": "YlOrRd",
    "logprob": "YlOrRd_r",
    "prob": "YlOrRd_r",
    "old_logprob": "YlOrRd_r",
}

CSS = """
.elab-tokens{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;line-height:1.9;color:#111}
.elab-tokens .elab-title{font-weight:600;margin:4px 0}
.elab-tokens .elab-legend{display:flex;align-items:center;gap:8px;font-size:11px;margin:4px 0 8px 0;flex-wrap:wrap}
.elab-tokens .elab-bar{display:inline-block;width:220px;height:12px;border:1px solid #999}
.elab-tokens .elab-ticks{display:flex;justify-content:space-between;width:222px;font-size:10px;color:#444}
.elab-tokens .elab-row{margin:0 0 10px 0;padding:4px 6px;border-left:3px solid #ddd}
.elab-tokens .elab-label{font-size:11px;color:#555;margin-bottom:2px}
.elab-tokens .elab-text{white-space:pre-wrap;word-break:break-word}
.elab-tokens span.tok{border-radius:2px;padding:1px 0;cursor:default}
.elab-tokens span.tok:hover{outline:2px solid #1f4e9c}
.elab-tokens span.tok.fork{border-bottom:2px solid #000;font-weight:600}
.elab-tokens span.tok.ws{color:#888}
.elab-tokens span.tok.nan{background:transparent;color:#888}
.elab-tokens span.fork-key{border-bottom:2px solid #000;font-weight:600}
"""


def display_text(token: str) -> str:
    """What a token shows on the page: whitespace made visible (the ``<br>`` after ``↵`` is not included)."""
    if token == "":
        return "∅"
    if token.strip(" ") == "":
        return "·" * len(token)
    return token.replace("\r\n", "↵").replace("\n", "↵").replace("\t", "→").replace("\r", "␍")


def _hex(rgb: Sequence[float]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(round(255 * float(c))) for c in rgb[:3]))


@dataclass(frozen=True)
class ColorScale:
    """A value -> colour map shared across rows: `cmap` (matplotlib name) over [vmin, vmax], clipped."""

    vmin: float
    vmax: float
    cmap: str = "YlOrRd"
    label: str = "entropy"

    @classmethod
    def from_values(
        cls,
        values,
        *,
        value_name: str = "entropy",
        cmap: str | None = None,
        cap_percentile: float = 98,
        center: float | None = None,
    ) -> ColorScale:
        """A scale over all finite `values` (any nesting), capped at the `cap_percentile` / 100 - cap percentiles.

        Diverging values (advantage, covariance) are centred on `center` (default 0 for those names).
        """
        flat = np.asarray([float(v) for v in _flatten(values)], dtype=np.float64)
        flat = flat[np.isfinite(flat)]
        if not 50 < cap_percentile <= 100:
            raise TokensError(f"cap_percentile must be in (50, 100], got {cap_percentile}")
        if center is None and value_name in DIVERGING:
            center = 0.0
        cmap = cmap or ("RdBu_r" if center is not None else DEFAULT_CMAPS.get(value_name, "YlOrRd"))
        if flat.size == 0:
            return cls(0.0, 1.0, cmap, value_name)
        if center is not None:
            half = float(np.percentile(np.abs(flat - center), cap_percentile)) or 1e-12
            return cls(center - half, center + half, cmap, value_name)
        lo, hi = (float(x) for x in np.percentile(flat, [100 - cap_percentile, cap_percentile]))
        if value_name in ("entropy", "varentropy") and flat.min() >= 0:
            lo = 0.0  # entropy starts at 0: keep the scale anchored there
        if hi <= lo:
            hi = lo + 1e-12
        return cls(lo, hi, cmap, value_name)

    def _cm(self):
        import matplotlib

        return matplotlib.colormaps[self.cmap]

    def norm(self, value: float) -> float:
        """`value` mapped to [0, 1] (clipped)."""
        return min(1.0, max(0.0, (float(value) - self.vmin) / (self.vmax - self.vmin)))

    def color(self, value: float) -> str | None:
        """'#rrggbb' for a finite value, None for NaN."""
        if value is None or not math.isfinite(float(value)):
            return None
        return _hex(self._cm()(self.norm(value)))

    def text_color(self, value: float) -> str:
        """Black or white, whichever reads better on `color(value)`."""
        if value is None or not math.isfinite(float(value)):
            return "#888888"
        r, g, b = self._cm()(self.norm(value))[:3]
        return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "#ffffff"

    def gradient_css(self, steps: int = 11) -> str:
        """A CSS linear-gradient of the colour map from vmin (left) to vmax (right)."""
        cm = self._cm()
        stops = ", ".join(f"{_hex(cm(i / (steps - 1)))} {100 * i / (steps - 1):.0f}%" for i in range(steps))
        return f"linear-gradient(to right, {stops})"

    def ticks(self, n: int = 5) -> list[float]:
        """`n` evenly spaced values from vmin to vmax."""
        return [self.vmin + (self.vmax - self.vmin) * i / (n - 1) for i in range(n)]


class TokenHTML:
    """Rendered tokens: `html` is a fragment (with its own scoped CSS); displays itself in Jupyter."""

    def __init__(self, html_fragment: str, scale: ColorScale, n_rows: int, n_tokens: int, title: str | None = None):
        self.html = html_fragment
        self.scale = scale
        self.n_rows = n_rows
        self.n_tokens = n_tokens
        self.title = title

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"TokenHTML(rows={self.n_rows}, tokens={self.n_tokens}, scale={self.scale})"

    def save(self, path: str | Path, title: str | None = None) -> Path:
        """Write a self-contained page; see `export_html`."""
        return export_html(path, self, title=title)


def _flatten(x):
    """Scalars of any nesting of lists, arrays and Series."""
    if hasattr(x, "to_numpy"):
        x = x.to_numpy()
    if isinstance(x, np.ndarray) and x.dtype != object:
        yield from x.ravel().tolist()
    elif isinstance(x, str) or not isinstance(x, Iterable):
        yield x
    else:
        for item in x:
            yield from _flatten(item)


def _is_nested(tokens) -> bool:
    return len(tokens) > 0 and not isinstance(tokens[0], str)


def _rows(x, n_rows: int, nested: bool, name: str) -> list:
    """Per-row lists of a parallel argument: wrapped when `tokens` is one row, checked when it is several."""
    if x is None:
        return [None] * n_rows
    if not nested:
        return [x]
    if len(x) != n_rows:
        raise TokensError(f"show_tokens: {name} has {len(x)} rows, tokens has {n_rows}")
    return list(x)


def _fmt(v: float) -> str:
    v = float(v)
    if not math.isfinite(v):
        return "nan"
    return f"{v:.4g}"


def _alt_text(alts) -> str:
    if alts is None:
        return ""
    items = alts.items() if isinstance(alts, Mapping) else alts
    parts = [f"{display_text(str(t))!r} {float(p):.3g}" for t, p in items]
    return "alternatives: " + ", ".join(parts) if parts else ""


def _span(token: str, r: int, i: int, value, scale: ColorScale, value_name: str, prob, alts, fork_h, cutoff) -> str:
    shown = display_text(token)
    v = float(value) if value is not None else math.nan
    classes = ["tok"]
    if not math.isfinite(v):
        classes.append("nan")
    if token != "" and token.strip(" ") == "":
        classes.append("ws")
    lines = [f"{display_text(token)!r} · #{i}", f"{value_name} = {_fmt(v)}"]
    if prob is not None and math.isfinite(float(prob)):
        lines.append(f"p = {float(prob):.3g}")
    alt = _alt_text(alts)
    if alt:
        lines.append(alt)
    is_fork = cutoff is not None and fork_h is not None and math.isfinite(float(fork_h)) and float(fork_h) >= cutoff
    if is_fork:
        classes.append("fork")
        lines.append(f"forking token (entropy {_fmt(fork_h)} ≥ {_fmt(cutoff)})")
    style = ""
    bg = scale.color(v)
    if bg is not None:
        style = f' style="background-color:{bg};color:{scale.text_color(v)}"'
    title = html.escape("\n".join(lines), quote=True)
    out = (
        f'<span class="{" ".join(classes)}" data-row="{r}" data-idx="{i}" data-value="{_fmt(v)}"{style} '
        f'title="{title}">{html.escape(shown)}</span>'
    )
    return out + ("<br>" * token.count("\n"))


def _legend(scale: ColorScale, cutoff: float | None) -> str:
    ticks = "".join(f"<span>{float(t):.3g}</span>" for t in scale.ticks())
    fork = f'<span class="fork-key">forking</span><span>= entropy ≥ {_fmt(cutoff)}</span>' if cutoff is not None else ""
    return (
        f'<div class="elab-legend"><span>{html.escape(scale.label)}</span>'
        f'<span><span class="elab-bar" style="background:{scale.gradient_css()}"></span>'
        f'<span class="elab-ticks">{ticks}</span></span>'
        f"<span>(colours capped at [{_fmt(scale.vmin)}, {_fmt(scale.vmax)}]; hover a token for details)</span>"
        f"{fork}</div>"
    )


def show_tokens(
    tokens: Sequence[str] | Sequence[Sequence[str]],
    values,
    *,
    value_name: str = "entropy",
    probs=None,
    alternatives=None,
    cmap: str | None = None,
    cap_percentile: float = 98,
    scale: ColorScale | None = None,
    forking_cutoff: float | None = None,
    entropy=None,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    legend: bool = True,
) -> TokenHTML:
    """Tokens coloured by `values` on one shared colour scale, with tooltips; one row or several.

    `tokens`: a list of token strings or a list of such rows; `values`, `probs` (the token's probability),
    `alternatives` (per token a list of (token, prob) pairs or a dict) and `entropy` are parallel to it.
    `scale` fixes the colour scale (else built from all rows: `ColorScale.from_values`). Tokens whose entropy
    (`entropy`, or `values` when `value_name == "entropy"`) is >= `forking_cutoff` are marked as forking.
    """
    nested = _is_nested(tokens)
    rows_tok = [list(map(str, r)) for r in tokens] if nested else [list(map(str, tokens))]
    n = len(rows_tok)
    rows_val = _rows(values, n, nested, "values")
    rows_prob = _rows(probs, n, nested, "probs")
    rows_alt = _rows(alternatives, n, nested, "alternatives")
    rows_ent = (
        _rows(entropy, n, nested, "entropy")
        if entropy is not None
        else (rows_val if value_name == "entropy" else [None] * n)
    )
    for r in range(n):
        for name, row in (
            ("values", rows_val[r]),
            ("probs", rows_prob[r]),
            ("alternatives", rows_alt[r]),
            ("entropy", rows_ent[r]),
        ):
            if row is not None and len(row) != len(rows_tok[r]):
                raise TokensError(f"show_tokens: row {r} has {len(rows_tok[r])} tokens but {len(row)} {name}")
    if scale is None:
        scale = ColorScale.from_values(rows_val, value_name=value_name, cmap=cmap, cap_percentile=cap_percentile)
    if labels is not None and len(labels) != n:
        raise TokensError(f"show_tokens: {len(labels)} labels for {n} rows")
    parts = [f'<div class="elab-tokens"><style>{CSS}</style>']
    if title:
        parts.append(f'<div class="elab-title">{html.escape(title)}</div>')
    if legend:
        parts.append(_legend(scale, forking_cutoff))
    total = 0
    for r, toks in enumerate(rows_tok):
        label = f'<div class="elab-label">{html.escape(str(labels[r]))}</div>' if labels is not None else ""
        spans = []
        for i, tok in enumerate(toks):
            spans.append(
                _span(
                    tok,
                    r,
                    i,
                    rows_val[r][i],
                    scale,
                    value_name,
                    None if rows_prob[r] is None else rows_prob[r][i],
                    None if rows_alt[r] is None else rows_alt[r][i],
                    None if rows_ent[r] is None else rows_ent[r][i],
                    forking_cutoff,
                )
            )
        total += len(toks)
        parts.append(f'<div class="elab-row" data-row="{r}">{label}<div class="elab-text">{"".join(spans)}</div></div>')
    parts.append("</div>")
    return TokenHTML("".join(parts), scale, n, total, title)


def show_frame(
    df,
    value: str = "entropy",
    *,
    max_sequences: int | None = 20,
    forking_cutoff: float | None | str = "auto",
    rho: float = 0.2,
    **kwargs,
) -> TokenHTML:
    """`show_tokens` over a profile or rollout-dump frame: one row per sequence, one shared scale.

    `forking_cutoff="auto"` uses the top-`rho` entropy quantile of the whole frame; None marks nothing.
    """
    from entropylab.tokens.io import sequences
    from entropylab.tokens.stats import entropy_cutoff

    seqs = sequences(df, value)
    if max_sequences:
        seqs = seqs[:max_sequences]
    if not seqs:
        raise TokensError("show_frame: the frame has no tokens")
    if isinstance(forking_cutoff, str):
        forking_cutoff = entropy_cutoff(df, rho) if "entropy" in df.columns else None
    has_ent = all(s.entropy is not None for s in seqs)
    return show_tokens(
        [s.tokens for s in seqs],
        [s.values for s in seqs],
        value_name=value,
        probs=[s.probs for s in seqs] if all(s.probs is not None for s in seqs) else None,
        alternatives=[s.alternatives for s in seqs] if all(s.alternatives is not None for s in seqs) else None,
        entropy=[s.entropy for s in seqs] if has_ent else None,
        forking_cutoff=forking_cutoff if has_ent else None,
        labels=kwargs.pop("labels", None) or [_label(df, s.key) for s in seqs],
        **kwargs,
    )


def _label(df, key: tuple) -> str:
    from entropylab.tokens.io import sequence_keys

    names = sequence_keys(df)
    return " · ".join(f"{k} {v}" for k, v in zip(names, key)) if names else "tokens"


PAGE_JS = """
(function () {
  var toks = document.querySelectorAll('span.tok');
  var info = document.getElementById('elab-info');
  var pinned = null;
  toks.forEach(function (t) {
    t.addEventListener('click', function () {
      if (pinned) { pinned.classList.remove('pinned'); }
      pinned = t; t.classList.add('pinned');
      info.textContent = t.getAttribute('title');
    });
  });
  document.body.setAttribute('data-elab-js', 'ready');
  document.body.setAttribute('data-elab-tokens', String(toks.length));
})();
"""

PAGE_CSS = """
body{margin:16px 24px;background:#fff;font-family:system-ui,sans-serif}
h1{font-size:17px;margin:0 0 8px 0}
#elab-info{position:sticky;top:0;white-space:pre-wrap;font:12px ui-monospace,monospace;background:#f6f6f6;
  border:1px solid #ddd;padding:6px 8px;min-height:1.5em;margin-bottom:10px;z-index:1}
span.tok.pinned{outline:2px solid #d62728}
"""


def export_html(path: str | Path, tokens_or_view, values=None, *, title: str | None = None, **kwargs) -> Path:
    """Write a self-contained HTML page (inline CSS and JS, no network) of rendered tokens.

    `tokens_or_view`: a `TokenHTML`, a profile / rollout-dump frame (rendered with `show_frame(**kwargs)`),
    or tokens with `values` (rendered with `show_tokens(**kwargs)`). Clicking a token pins its details in a
    panel at the top. The page's script marks ``<body data-elab-js="ready">`` when it has run.
    """
    if isinstance(tokens_or_view, TokenHTML):
        view = tokens_or_view
    elif values is None and hasattr(tokens_or_view, "columns"):
        view = show_frame(tokens_or_view, **kwargs)
    else:
        if values is None:
            raise TokensError("export_html: pass values with the tokens")
        view = show_tokens(tokens_or_view, values, **kwargs)
    title = title or view.title or "entropylab: token values"
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{PAGE_CSS}</style></head>\n<body>"
        f'<h1>{html.escape(title)}</h1><div id="elab-info">click a token to pin its details here</div>\n'
        f"{view.html}\n<script>{PAGE_JS}</script></body></html>\n"
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
