"""A log format is one module: a format registered from a module outside the package is detected, loaded and
followed; the README's "How to add a log format" example runs as written."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

from entropylab import logs
from entropylab.errors import ConfigError
from entropylab.logs.follow import Follower
from entropylab.logs.formats import LOG_FORMATS

README = Path(__file__).resolve().parents[1] / "README.md"
LINES = "step=1 entropy=0.9 reward=0.2\nstep=2 entropy=0.7 reward=0.4\nstep=3 entropy=0.5 reward=0.5\n"


def _readme_example() -> str:
    text = README.read_text()
    section = text[text.index("**How to add a log format.**") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Import a module file from a temporary folder; unregister what it registered afterwards."""
    before = set(LOG_FORMATS)
    monkeypatch.syspath_prepend(str(tmp_path))

    def load(name: str, code: str):
        (tmp_path / f"{name}.py").write_text(code)
        return importlib.import_module(name)

    yield load
    for name in set(LOG_FORMATS) - before:
        LOG_FORMATS.unregister(name)
    for name in [m for m in sys.modules if m in ("keyvalue", "tinyfmt")]:
        del sys.modules[name]


def test_the_readme_example_adds_a_format_that_load_and_watch_read(plugin, tmp_path: Path) -> None:
    plugin("keyvalue", _readme_example())
    log = tmp_path / "train.kv"
    log.write_text(LINES)
    df = logs.load(log)
    assert df.attrs["entropylab"]["train"]["format"] == "keyvalue"
    assert df["step"].tolist() == [1, 2, 3] and df["entropy"].tolist() == [0.9, 0.7, 0.5]
    assert df["reward"].tolist() == [0.2, 0.4, 0.5]
    assert logs.load(log, format="keyvalue").equals(df)
    assert len(logs.points(df)) == 3
    follower = Follower(log)  # no incremental reader declared: read again when the file changes
    assert follower.poll() and follower.frame()["step"].tolist() == [1, 2, 3]
    assert not follower.poll()
    with log.open("a") as f:
        f.write("step=4 entropy=0.4 reward=0.55\n")
    assert follower.poll() and follower.frame()["step"].tolist() == [1, 2, 3, 4]


def test_a_format_from_a_temporary_module_is_one_file_and_found_in_a_folder(plugin, tmp_path: Path) -> None:
    plugin(
        "tinyfmt",
        """
from entropylab.logs import LogFormat, register_format
from entropylab.logs.tabular import JsonLinesParser


def read(path, fmt, *, step_key=None, run_key=None):
    parser = JsonLinesParser(path, step_keys=fmt.step_keys)
    for number, line in enumerate(path.read_text().splitlines(), 1):
        step, h, r = line.split(";")
        parser.add(number, {"iteration": int(step), "policy/entropy": float(h), "score": float(r)})
    return parser.runs()


register_format(LogFormat(name="tiny", read=read, match_name=lambda p: p.suffix == ".tiny", suffixes=(".tiny",),
                          step_keys=("iteration",)))
""",
    )
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "a.tiny").write_text("1;0.8;0.1\n2;0.6;0.3\n")
    (runs / "notes.md").write_text("not a log\n")
    df = logs.load(runs, score_key="score")
    assert df.attrs["entropylab"]["a"]["format"] == "tiny" and df["entropy"].tolist() == [0.8, 0.6]
    with pytest.raises(ConfigError, match="log format 'tiny' is already registered"):
        logs.register_format(LOG_FORMATS["tiny"].__class__(name="tiny", read=lambda *a, **k: {}))
