"""The log-format registry: one module per format in this package, each registering one `LogFormat`.

A format declares how to detect it (by file name, by content, in a directory), how to read it into raw runs,
how `watch` follows it while it grows, and its own keys (step fields, bookkeeping columns, its entropy key).
`load`, `sources` and `Follower` look formats up here; no other module names a format. Adding a format means
adding one module here (found when `entropylab.logs` is imported) or, outside the package, one module that calls
`register_format` when imported. No torch, pandas or tensorboard at import.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from entropylab.errors import LogFormatError
from entropylab.logs import aliases
from entropylab.registry import Registry

if TYPE_CHECKING:
    from entropylab.logs.tabular import Runs

CSV_SUFFIXES = frozenset({".csv", ".tsv"})
JSON_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
HEAD = 4 << 20  # bytes read to sniff a file's format


@dataclass(frozen=True)
class Source:
    """One thing to read: the path handed to the reader, its format and the run's default name."""

    path: Path
    format: str
    name: str


class Probe:
    """What content detection looks at in one file, computed once: its first bytes and the table they start.

    `table` is "csv" (a CSV/TSV file, or a header row with a step column), "json" (JSON lines, a JSON list of
    records, or a pretty-printed document holding `log_history`) or None; `columns` the CSV header;
    `first` the first JSON record (None for a pretty-printed document); `json_list` whether it is a list.
    """

    def __init__(self, path: Path) -> None:
        self.path, self.name, self.suffix = path, path.name, path.suffix.lower()

    @cached_property
    def head(self) -> bytes:
        """The first bytes of the file; a LogFormatError for a missing, unreadable or empty file."""
        try:
            with self.path.open("rb") as f:
                data = f.read(HEAD)
        except OSError as err:
            raise LogFormatError(f"{self.path}: cannot read ({err.strerror or err})") from None
        if not data.strip():
            raise LogFormatError(f"{self.path}: the file is empty")
        return data

    @cached_property
    def _table(self) -> tuple[str | None, tuple[str, ...], dict | None, bool]:
        data = self.head
        if self.suffix in CSV_SUFFIXES:
            return "csv", _header(data, "\t" if self.suffix == ".tsv" else ","), None, False
        if self.suffix in JSON_SUFFIXES or data.lstrip()[:1] in (b"{", b"["):
            found = _json_start(data)
            if found is not None:
                return "json", (), *found
        columns = _header(data, ",")
        if "," in data.split(b"\n", 1)[0].decode("utf-8", "replace") and ("step" in columns or "_step" in columns):
            return "csv", columns, None, False
        return None, (), None, False

    @property
    def table(self) -> str | None:
        """ "csv", "json" or None (see the class)."""
        return self._table[0]

    @property
    def columns(self) -> tuple[str, ...]:
        """The header of a CSV table (empty otherwise)."""
        return self._table[1]

    @property
    def first(self) -> dict | None:
        """The first JSON record (None when not JSON, or a pretty-printed document)."""
        return self._table[2]

    @property
    def json_list(self) -> bool:
        """Whether the JSON is one list of records (TRL's `log_history` saved on its own, or any records)."""
        return self._table[3]

    def keys(self) -> tuple[str, ...]:
        """The column names of the table: the CSV header or the first JSON record's keys."""
        return self.columns if self.table == "csv" else tuple(str(k) for k in (self.first or {}))


def _header(data: bytes, sep: str) -> tuple[str, ...]:
    header = data.split(b"\n", 1)[0].decode("utf-8", "replace")
    return tuple(c.strip().strip('"') for c in header.split(sep))


def _json_start(data: bytes) -> tuple[dict | None, bool] | None:
    """(first record, whether a list) of JSON data; None when it does not start with a JSON record."""
    if data.lstrip()[:1] == b"[":
        from entropylab.logs.tabular import json_records

        first = next((obj for _, obj in json_records(data.decode("utf-8", "replace"))), None)
        return (first, True) if isinstance(first, dict) else None
    line = next((line for line in data.split(b"\n") if line.strip()), b"")
    try:
        obj = json.loads(line)
    except ValueError:  # a pretty-printed document: TRL's trainer state is the one we know
        return (None, False) if b'"log_history"' in data else None
    return (obj, False) if isinstance(obj, dict) else None


Reader = Callable[..., "Runs"]
LineParser = Callable[..., "tuple[list[tuple[int, dict]], list[str]]"]


def _never(_: object) -> bool:
    return False


def _no_runs(directory: Path, name: str) -> list[Source]:
    return []


def _reread(path: Path) -> str:
    return "reread"


def follow_lines(path: Path) -> str:
    """How `watch` follows JSON lines: "lines", each poll reading the new ones."""
    return "lines"


def follow_table(path: Path) -> str:
    """How `watch` follows a table that comes as CSV or JSON lines: "csv" by the suffix, else "lines"."""
    return "csv" if path.suffix.lower() in CSV_SUFFIXES else "lines"


@dataclass(frozen=True)
class LogFormat:
    """One log format: how to detect, read and follow it, and its own keys.

    - `read(path, fmt, step_key=None, run_key=None)` gives the raw runs of one source (`tabular.Runs`).
    - `match_name(path)`: the file name alone says it is this format (tried first, in `rank` order).
    - `match_content(probe)`: the file's start says so (`Probe`), tried next in `rank` order.
    - `suffixes`: file suffixes of the format, looked at when reading a folder of logs.
    - `find_runs(directory, name)`: the sources of this format that a directory stands for (`[]`: none),
      tried in `dir_rank` order; `holds_run(directory)` says whether a sub-directory of a folder of logs is a
      run of this format; `marker` names what marks such a directory, `missing` is the error when the
      format is forced on a directory without one.
    - `follow(path)`: how `watch` reads it while it grows: "console" (verl), "lines" (JSON lines), "csv",
      "records" (a JSON list re-read whole), "state" (TRL trainer state), "events" (TensorBoard), or
      "reread" (the default: `read` again whenever the file changes); it raises `LogFormatError` when the
      format cannot be followed.
    - Keys: `step_keys` (step fields in priority order), `drop` (bookkeeping columns), `nested` (the sub-dict
      holding the metrics of a JSON record), `entropy_key` (the format's own entropy key, tried first).
    - `parse_lines(text, path, first_line=1)`: the (line number, record) pairs and notes of the format's JSON
      lines, raising on a line it refuses (default: every JSON line read, the others skipped with a warning).
    """

    name: str
    read: Reader
    description: str = ""
    rank: int = 50
    match_name: Callable[[Path], bool] = _never
    match_content: Callable[[Probe], bool] = _never
    suffixes: tuple[str, ...] = ()
    find_runs: Callable[[Path, str], list[Source]] = _no_runs
    holds_run: Callable[[Path], bool] = _never
    dir_rank: int = 50
    marker: str = ""
    missing: str = ""
    follow: Callable[[Path], str] = _reread
    step_keys: tuple[str, ...] = aliases.STEP_KEYS
    drop: tuple[str, ...] = ()
    nested: str | None = None
    entropy_key: str | None = None
    parse_lines: LineParser | None = None


#: Every log format by name.
LOG_FORMATS: Registry[LogFormat] = Registry("log format", error=LogFormatError)


def register_format(fmt: LogFormat) -> LogFormat:
    """Register a log format under its name (a name already taken is refused); returns it."""
    return LOG_FORMATS.register(fmt.name, fmt, description=fmt.description)


def get_format(name: str) -> LogFormat:
    """The format registered as `name`; a LogFormatError listing the known names otherwise."""
    return LOG_FORMATS.get(name)


def ranked() -> list[LogFormat]:
    """The formats in detection order (`rank`, then name)."""
    return sorted((f for _, f in LOG_FORMATS.items()), key=lambda f: (f.rank, f.name))


def format_names() -> tuple[str, ...]:
    """The format names accepted by `load(format=...)` besides "auto", in detection-rank order."""
    return tuple(f.name for f in ranked())


for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_module}")
