"""HTML rendering of tokens: spans, shared colour scale, tooltips, escaping; the exported page in headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from entropylab.tokens import ColorScale, TokensError, export_html, show_frame, show_tokens
from entropylab.tokens.render import display_text


class SpanParser(HTMLParser):
    """Collects `span.tok` elements (attributes + text), `<br>` count and the body's attributes."""

    def __init__(self):
        super().__init__()
        self.spans: list[dict] = []
        self.body: dict = {}
        self.brs = 0
        self.scripts = 0
        self._in = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        elif tag == "br":
            self.brs += 1
        elif tag == "script":
            self.scripts += 1
        elif tag == "span" and "tok" in a.get("class", "").split():
            self._in = {**a, "text": ""}

    def handle_endtag(self, tag):
        if tag == "span" and self._in is not None:
            self.spans.append(self._in)
            self._in = None

    def handle_data(self, data):
        if self._in is not None:
            self._in["text"] += data


def parse(html: str) -> SpanParser:
    p = SpanParser()
    p.feed(html)
    return p


def bg(span: dict) -> str | None:
    style = span.get("style") or ""
    for part in style.split(";"):
        if part.strip().startswith("background-color:"):
            return part.split(":", 1)[1].strip()
    return None


ROWS = [
    ["<bos>", "x", " ", "=", " ", "4", "\n", "<script>alert(1)</script>", "&amp;", "wait", ""],
    ["so", " x", "\t", "=", "\n", "\n", "12", "."],
]
VALUES = [[np.nan, 0.01, 0.0, 0.5, 0.02, 1.7, 0.3, 2.5, 0.7, 9.0, 0.1], [0.2, 0.9, 0.0, 1.1, 0.4, 0.05, 2.2, 0.0]]


def rendered(**kw):
    probs = [[0.5] * len(r) for r in ROWS]
    alts = [[[("a", 0.4), ("<b>", 0.2)] for _ in r] for r in ROWS]
    return show_tokens(
        ROWS, VALUES, probs=probs, alternatives=alts, forking_cutoff=1.0, labels=["first", "second"], **kw
    )


def test_spans_values_tooltips_and_escaping():
    view = rendered()
    assert view._repr_html_() == view.html and view.n_tokens == sum(map(len, ROWS))
    p = parse(view.html)
    assert len(p.spans) == view.n_tokens
    assert p.scripts == 0 and "<script>alert" not in view.html  # escaped, not executed
    flat = [
        (r, i, t, v) for r, (toks, vals) in enumerate(zip(ROWS, VALUES)) for i, (t, v) in enumerate(zip(toks, vals))
    ]
    for span, (r, i, tok, v) in zip(p.spans, flat):
        assert span["data-row"] == str(r) and span["data-idx"] == str(i)
        assert span["text"] == display_text(tok)
        assert bg(span) == view.scale.color(v)
        title = span["title"]
        assert ("entropy = nan" in title) if np.isnan(v) else (f"entropy = {v:.4g}" in title)
        assert "p = 0.5" in title and "alternatives: 'a' 0.4, '<b>' 0.2" in title
        classes = span["class"].split()
        assert ("fork" in classes) == (np.isfinite(v) and v >= 1.0)
        assert ("forking token" in title) == ("fork" in classes)
    assert p.brs == sum(t.count("\n") for r in ROWS for t in r)
    assert display_text("\n") == "↵" and display_text(" ") == "·" and display_text("") == "∅"
    assert display_text("\t") == "→" and display_text(" x") == " x"
    ws = [s for s in p.spans if "ws" in s["class"].split()]
    assert len(ws) == 2
    assert "nan" in p.spans[0]["class"].split() and bg(p.spans[0]) is None


def test_shared_scale_is_capped_and_reusable():
    view = rendered(cap_percentile=90)
    s = view.scale
    finite = np.array([v for r in VALUES for v in r if np.isfinite(v)])
    assert s.vmin == 0.0 and s.vmax == pytest.approx(np.percentile(finite, 90))
    assert s.color(9.0) == s.color(s.vmax) == s.color(100.0)  # capped
    assert s.color(0.0) != s.color(s.vmax)
    # the same scale gives the same colour to the same value in another call
    other = show_tokens(["q"], [1.1], scale=s)
    assert bg(parse(other.html).spans[0]) == s.color(1.1)
    # one row at a time with a shared scale == several rows at once
    single = show_tokens(ROWS[1], VALUES[1], scale=s)
    assert [bg(x) for x in parse(single.html).spans] == [bg(x) for x in parse(view.html).spans][len(ROWS[0]) :]


def test_diverging_values_and_errors():
    s = ColorScale.from_values([-3.0, 0.5, 1.0, 2.0], value_name="advantage")
    assert s.vmin == -s.vmax and s.cmap == "RdBu_r" and s.color(0.0) == s.color(-0.0)
    assert ColorScale.from_values(pd.Series([0.0, 2.0, np.nan]), cap_percentile=100).vmax == 2.0
    lp = ColorScale.from_values([-5.0, -0.1, -0.01], value_name="logprob")
    assert lp.cmap == "YlOrRd_r"
    with pytest.raises(TokensError, match="row 0 has 2 tokens"):
        show_tokens(["a", "b"], [1.0])
    with pytest.raises(TokensError, match="rows"):
        show_tokens([["a"], ["b"]], [[1.0]])
    with pytest.raises(TokensError):
        ColorScale.from_values([1.0], cap_percentile=20)


def test_show_frame_on_profile_and_dump():
    dump = pd.DataFrame(
        {
            "step": 0,
            "prompt_id": [0, 0, 1, 1],
            "sample_id": 0,
            "position": [1, 0, 0, 1],
            "token": ["b", "a", "c", "\n"],
            "entropy": [0.1, 2.0, 0.3, 0.0],
            "logprob": -0.5,
            "advantage": [1.0, 1.0, -1.0, -1.0],
        }
    )
    view = show_frame(dump, "advantage")
    p = parse(view.html)
    assert [s["text"] for s in p.spans] == ["a", "b", "c", "↵"]
    assert "prompt_id 1" in view.html and view.scale.vmin == -1.0
    assert sum("fork" in s["class"].split() for s in p.spans) == 1  # the top-20% entropy token


# ------------------------------------------------------------------------------------------------ browser


def chromium() -> str:
    exe = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI: apt-get install -y chromium")
        pytest.skip("headless Chromium not installed (/usr/bin/chromium); install: apt-get install -y chromium")
    return exe


def run_chromium(exe: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp / 'profile'}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def page(tmp_path_factory, sharp_model, tiny_tokenizer):
    from entropylab.tokens.profile import entropy_profile

    model, tok = sharp_model, tiny_tokenizer
    prof = entropy_profile(model, tok, ["12+3=15\nso the answer is 15.", "what is (2*4)? 8\n", "a <b> & c"])
    view = show_frame(prof, title="profile")
    tmp = tmp_path_factory.mktemp("page")
    path = export_html(tmp / "tokens.html", view, title="entropylab: test page")
    return tmp, path, prof, view


def test_exported_page_dom_in_chromium(page):
    exe = chromium()
    tmp, path, prof, view = page
    text = path.read_text()
    assert "http://" not in text and "https://" not in text and "<link" not in text  # self-contained
    res = run_chromium(exe, tmp, "--dump-dom", path.resolve().as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    dom = parse(res.stdout)
    assert dom.body.get("data-elab-js") == "ready", "the page's script did not run"
    assert dom.body.get("data-elab-tokens") == str(len(prof))
    assert len(dom.spans) == len(prof)
    for span, row in zip(dom.spans, prof.itertuples()):
        assert span["text"] == display_text(row.token)
        assert bg(span) == view.scale.color(row.entropy)
        title = span["title"]
        assert title.startswith(repr(display_text(row.token)))
        if np.isfinite(row.entropy):
            assert f"entropy = {row.entropy:.4g}" in title and f"p = {row.prob:.3g}" in title
            assert "alternatives: " + repr(display_text(row.top_tokens[0])) in title


def test_exported_page_screenshot_is_not_blank(page):
    exe = chromium()
    tmp, path, _, _ = page
    png = tmp / "shot.png"
    res = run_chromium(exe, tmp, f"--screenshot={png}", "--window-size=1000,700", path.resolve().as_uri())
    assert res.returncode == 0 and png.exists(), res.stderr[-2000:]
    import matplotlib.image as mpimg

    img = mpimg.imread(png)[..., :3]
    assert img.shape[:2] == (700, 1000)
    assert img.std() > 0.02, "screenshot looks blank"
    colours = {tuple(c) for c in (img.reshape(-1, 3) * 255).astype(int)[::7]}
    assert len(colours) > 30
    reds = ((img[..., 0] > 0.6) & (img[..., 1] < 0.35) & (img[..., 2] < 0.3)).sum()
    assert reds > 50, "no high-entropy (red) tokens visible"
