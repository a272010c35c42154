"""Tabular logs: CSV (plain, W&B history, OpenRLHF), JSON lines (plain, entropylab `metrics.jsonl`, verl), Parquet.

A tabular log needs a step column (`step`, `global_step`, `train/global_step`, `_step` or `iteration`). A string
column `run` splits the file into several runs (so `load` reads back a saved canonical frame).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from entropylab.errors import LogFormatError
from entropylab.logs import aliases
from entropylab.logs._table import Raw, Table

if TYPE_CHECKING:
    import pandas as pd

    from entropylab.logs.formats import LineParser, LogFormat

#: Runs of one file: name (None: the default name) -> rows.
Runs = dict[str | None, Raw]


def _step_of(value: Any, path: Path, where: str, key: str) -> int:
    """An integer step from a cell, or a LogFormatError naming the file, the line and the value."""
    if isinstance(value, bool) or value is None:
        raise LogFormatError(f"{path}: {where}: step column {key!r} has no number ({value!r})")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LogFormatError(f"{path}: {where}: step column {key!r} is not a number: {value!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise LogFormatError(f"{path}: {where}: step column {key!r} is not an integer: {value!r}")
    return int(number)


def _flatten(record: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dicts joined with '/' (`{"val": {"acc": 1}}` -> `{"val/acc": 1}`)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "/"))
        else:
            out[name] = value
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_records(text: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value or None when it is not JSON) of each non-blank line; a document that is one
    JSON list of records (TRL's `log_history` saved on its own) gives its records, a torn end as None."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        yield from _list_records(text)
        return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except ValueError:
            yield number, None


def _list_records(text: str) -> Iterator[tuple[int, Any]]:
    """The records of a `[{...}, {...}]` document one by one, so that a list still being written (no closing
    bracket, a torn last record) gives every complete record."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    n = len(text)
    while pos < n:
        while pos < n and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= n or text[pos] == "]":
            return
        try:
            obj, end = decoder.raw_decode(text, pos)
        except ValueError:
            yield text.count("\n", 0, pos) + 1, None
            return
        yield text.count("\n", 0, pos) + 1, obj
        pos = end


class JsonLinesParser:
    """Metric records of JSON lines (or of a JSON list), fed in pieces as `read_json_lines` and `watch` need.

    `nested` names a sub-dict holding the metrics (verl: "data"). The step is the first of `step_keys` a record
    has (`step_key` forces one). A string field among `aliases.RUN_KEYS` (or `run_key`) splits the file into
    runs; a kind field (`type`, `split`: train / eval / rollout) makes an evaluation row's metrics validation.
    Lines that are not JSON objects are counted and skipped (a torn last line of a log still being written).
    """

    def __init__(
        self,
        path: Path,
        *,
        nested: str | None = None,
        step_keys: tuple[str, ...] = aliases.STEP_KEYS,
        drop: tuple[str, ...] = (),
        step_key: str | None = None,
        run_key: str | None = None,
    ) -> None:
        self.path, self.nested, self.drop = path, nested, drop
        self.step_keys = (step_key,) if step_key else step_keys
        self.forced_step = step_key
        self.run_key = run_key
        self.tables: dict[str | None, Table] = {}
        self.bad: list[int] = []
        self.records = 0

    def feed(self, items: Iterable[tuple[int, Any]]) -> None:
        """Add parsed records: (line number, value or None for a line that is not JSON)."""
        for number, obj in items:
            if not isinstance(obj, dict):
                self.bad.append(number)
                continue
            self.add(number, obj)

    def add(self, number: int, obj: dict) -> None:
        """Add one record (a JSON object) read at line `number`."""
        nested = self.nested
        record = _flatten(obj[nested]) if nested and isinstance(obj.get(nested), dict) else _flatten(obj)
        if nested and "step" in obj:
            record = {"step": obj["step"], **record}
        step_key = next((k for k in self.step_keys if record.get(k) is not None), None)
        if step_key is None:
            hint = (
                f"step field {self.forced_step!r} missing"
                if self.forced_step
                else f"no step field (looked for {', '.join(self.step_keys)}; name yours with --step-key / step_key=)"
            )
            raise LogFormatError(
                f"{self.path}: line {number}: {hint}; fields present: {', '.join(list(record)[:12]) or 'none'}"
            )
        step = _step_of(record.pop(step_key), self.path, f"line {number}", step_key)
        for other in self.step_keys:  # the other step counters of a row are bookkeeping, not metrics
            record.pop(other, None)
        if self.run_key is None:
            self.run_key = next((k for k in aliases.RUN_KEYS if isinstance(record.get(k), str)), "")
        run = record.pop(self.run_key, None) if self.run_key else None
        run = str(run) if isinstance(run, (str, int)) and not isinstance(run, bool) else None
        kind = next((record[k] for k in aliases.KIND_KEYS if isinstance(record.get(k), str)), None)
        pairs = [
            (k if kind is None else aliases.kind_key(kind, k), v)
            for k, v in record.items()
            if _is_number(v) and k not in self.drop
        ]
        table = self.tables.setdefault(run, Table())
        table.add(step, tuple(k for k, _ in pairs), [v for _, v in pairs], number)
        self.records += 1

    def runs(self) -> Runs:
        """The runs read so far (errors when there is no metric record)."""
        if not self.tables:
            if self.bad:
                raise LogFormatError(
                    f"{self.path}: line {self.bad[0]}: not a JSON object; no metric line could be read"
                )
            raise LogFormatError(f"{self.path}: the file is empty")
        warnings = (
            [
                f"{self.path}: {len(self.bad)} line(s) that are not JSON objects skipped (first: line "
                f"{self.bad[0]}): torn or cut mid-value, or not a record"
            ]
            if self.bad
            else []
        )
        runs: Runs = {}
        for run, table in self.tables.items():
            frame, nonfinite, order = table.frame()
            locs = table.locs
            runs[run] = Raw(frame, list(warnings), nonfinite, line_of=lambda i, locs=locs: locs[i], order=order)
        return runs


def read_json_lines(
    path: Path,
    *,
    nested: str | None = None,
    step_keys: tuple[str, ...] = aliases.STEP_KEYS,
    drop: tuple[str, ...] = (),
    step_key: str | None = None,
    run_key: str | None = None,
    parse_lines: LineParser | None = None,
) -> Runs:
    """JSON lines of metrics with a step field, or one JSON list of such records (see `JsonLinesParser`);
    `parse_lines` parses the lines instead (a format's own rule, `LogFormat.parse_lines`)."""
    from entropylab.logs.verl import read_bytes

    parser = JsonLinesParser(path, nested=nested, step_keys=step_keys, drop=drop, step_key=step_key, run_key=run_key)
    text = read_bytes(path).decode("utf-8", "replace")
    if parse_lines is not None:
        items, notes = parse_lines(text, path)
    else:
        text, notes = _torn_tail(text, path)
        items = json_records(text)
    parser.feed(items)
    runs = parser.runs()
    for raw in runs.values():
        raw.notes[:0] = notes
    return runs


def read_table(
    path: Path, fmt: LogFormat, *, container: str | None = None, step_key: str | None = None, run_key: str | None = None
) -> Runs:
    """A tabular log with the keys of format `fmt` (step fields, dropped columns, nested record): `container`
    ("csv", "parquet", "json") says how it is stored, else the file's suffix does (JSON lines by default)."""
    from entropylab.logs.formats import CSV_SUFFIXES, PARQUET_SUFFIXES

    if path.is_dir():
        raise LogFormatError(f"{path}: is a directory; format {fmt.name!r} reads a file")
    suffix = path.suffix.lower()
    kind = container or ("parquet" if suffix in PARQUET_SUFFIXES else "csv" if suffix in CSV_SUFFIXES else "json")
    keys: dict[str, Any] = dict(step_keys=fmt.step_keys, drop=fmt.drop, step_key=step_key, run_key=run_key)
    if kind == "parquet":
        return read_parquet(path, **keys)
    if kind == "csv":
        return read_csv(path, **keys)
    return read_json_lines(path, nested=fmt.nested, parse_lines=fmt.parse_lines, **keys)


def _torn_tail(text: str, path: Path) -> tuple[str, list[str]]:
    """JSON lines without a torn last line (no newline, not JSON: a log still being written), and a note."""
    if text.lstrip().startswith("[") or text.endswith("\n"):
        return text, []
    head, _, tail = text.rpartition("\n")
    try:
        json.loads(tail)
        return text, []
    except ValueError:
        return head + "\n", [f"{path}: the last line has no newline (a log still being written?): skipped"]


def read_csv(
    path: Path,
    *,
    step_keys: tuple[str, ...] = aliases.STEP_KEYS,
    drop: tuple[str, ...] = (),
    step_key: str | None = None,
    run_key: str | None = None,
) -> Runs:
    """A CSV (or .tsv) file with a header row and a step column.

    A last row without its newline (a log still being written) and rows with too many fields are skipped with
    a count."""
    import warnings as _warnings

    import pandas as pd

    from entropylab.logs.verl import read_bytes

    data = read_bytes(path)  # missing / empty: the same clear errors as every format
    notes: list[str] = []
    torn: list[str] = []
    end = data.rfind(b"\n") + 1
    if 0 < end < len(data) and data[end:].strip():
        data = data[:end]
        torn.append(f"{path}: the last row has no newline (a log still being written?): skipped")
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    kw: dict[str, Any] = dict(
        sep=sep, keep_default_na=False, na_values=[""], encoding_errors="replace", low_memory=False
    )
    try:
        df = pd.read_csv(io.BytesIO(data), **kw)
    except pd.errors.ParserError:  # rows with too many fields (cut and joined lines): skip them, counted
        with _warnings.catch_warnings(record=True) as caught:
            _warnings.simplefilter("always")
            try:
                df = pd.read_csv(io.BytesIO(data), on_bad_lines="warn", **kw)
            except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
                raise LogFormatError(f"{path}: not a readable CSV file: {str(err).strip()}") from None
        skipped = sum(str(w.message).count("Skipping line") for w in caught) or 1
        notes.append(f"{path}: {skipped} row(s) with more fields than the header skipped")
    except (pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise LogFormatError(f"{path}: not a readable CSV file: {str(err).strip()}") from None
    runs = frame_runs(
        df,
        path,
        step_keys=step_keys,
        drop=drop,
        where=lambda i: f"line {i + 2}",
        line_of=lambda i: i + 2,
        step_key=step_key,
        run_key=run_key,
    )
    for raw in runs.values():
        raw.warnings[:0] = notes
        raw.notes[:0] = torn
    return runs


def read_parquet(
    path: Path,
    *,
    step_keys: tuple[str, ...] = aliases.STEP_KEYS,
    drop: tuple[str, ...] = (),
    step_key: str | None = None,
    run_key: str | None = None,
) -> Runs:
    """A Parquet table with a step column (pyarrow is imported here only)."""
    import pandas as pd

    from entropylab.logs.verl import read_bytes

    read_bytes(path)
    try:
        df = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise LogFormatError(f"{path}: not a readable Parquet file: {err}") from None
    return frame_runs(
        df,
        path,
        step_keys=step_keys,
        drop=drop,
        where=lambda i: f"row {i + 1}",
        line_of=lambda i: None,
        step_key=step_key,
        run_key=run_key,
    )


def _run_column(df: pd.DataFrame, run_key: str | None, path: Path) -> str | None:
    """The column that tells runs apart: the given one, else the first of `aliases.RUN_KEYS` holding text."""
    import pandas as pd

    if run_key:
        if run_key not in df.columns:
            import difflib

            close = difflib.get_close_matches(run_key, list(df.columns), n=5, cutoff=0.5)
            raise LogFormatError(
                f"{path}: run column {run_key!r} not found"
                + (
                    f"; close matches: {', '.join(close)}"
                    if close
                    else f"; columns: {', '.join(list(df.columns)[:15])}"
                )
            )
        return run_key
    for key in aliases.RUN_KEYS:
        if key in df.columns:
            col = df[key].dropna()
            if len(col) and not pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
                if pd.to_numeric(col, errors="coerce").isna().all():  # names, not numbers stored as text
                    return key
    return None


def frame_runs(
    df: pd.DataFrame,
    path: Path,
    *,
    step_keys: tuple[str, ...],
    drop: tuple[str, ...],
    where: Callable[[int], str],
    line_of: Callable[[int], int | None],
    step_key: str | None = None,
    run_key: str | None = None,
) -> Runs:
    """Numeric metric columns and the step of a table; non-numeric columns are dropped, bad cells reported.

    A text column among `aliases.RUN_KEYS` (or `run_key`) splits the table into runs, one per value."""
    import numpy as np
    import pandas as pd

    df = df.reset_index(drop=True)
    df.columns = [str(c) for c in df.columns]
    if len(df) == 0:
        raise LogFormatError(f"{path}: no rows (only a header?)")
    if step_key:
        step_keys = (step_key,)
    step_cols = [k for k in step_keys if k in df.columns]
    if not step_cols:
        if step_key:
            import difflib

            close = difflib.get_close_matches(step_key, list(df.columns), n=5, cutoff=0.5)
            raise LogFormatError(
                f"{path}: step column {step_key!r} not found"
                + (
                    f"; close matches: {', '.join(close)}"
                    if close
                    else f"; columns: {', '.join(list(df.columns)[:15])}"
                )
            )
        raise LogFormatError(
            f"{path}: no step column (looked for {', '.join(step_keys)}; name yours with "
            f"--step-key / step_key=); columns: {', '.join(list(df.columns)[:15])}"
        )
    run_col = _run_column(df, run_key, path)
    # The step of a row: its first step column with a value (OpenRLHF: train/global_step or eval/global_step).
    step_key = step_cols[0]
    steps = np.full(len(df), np.nan)
    source = np.full(len(df), -1)
    for j, key in enumerate(step_cols):
        column = df[key]
        given = (column.notna() & (column.astype(str).str.strip() != "")).to_numpy() & (source < 0)
        steps[given] = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)[given]
        source[given] = j
    bad = ~np.isfinite(steps) | (steps != np.round(steps))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        key = step_cols[source[i]] if source[i] >= 0 else step_key
        cell = df[key].iloc[i]
        what = "is empty" if source[i] < 0 else f"is not an integer: {cell!r}"
        raise LogFormatError(f"{path}: {where(i)}: step column {key!r} {what}")
    warnings: list[str] = []
    junk_of: dict[str, tuple[int, str]] = {}  # key -> (count, first place) of non-numeric cells
    nonfinite: dict[str, np.ndarray] = {}  # key -> mask of explicit nan/inf cells
    columns: dict[str, np.ndarray] = {}
    for key in df.columns:
        if key in step_cols or key == run_col or key in drop:
            continue
        col = df[key]
        if col.dtype == bool:
            continue
        if pd.api.types.is_numeric_dtype(col):
            values = col.to_numpy(dtype=float, na_value=np.nan)
            explicit = np.isinf(values)
        else:
            values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            given = col.notna().to_numpy() & (col.astype(str).str.strip() != "").to_numpy()
            text = col.astype(str).str.strip().str.lower()
            nan_word = text.isin(["nan", "-nan", "+nan"]).to_numpy()
            missing_word = text.isin(["none", "null", "na", "n/a", "-"]).to_numpy()
            junk = given & np.isnan(values) & ~nan_word & ~missing_word
            if junk.all() or not (given & ~junk).any():
                continue  # a text column (names, dates...): not a metric
            if junk.any():
                i = int(np.flatnonzero(junk)[0])
                junk_of[key] = (int(junk.sum()), f"{where(i)}: {col.iloc[i]!r}")
            explicit = (given & nan_word) | np.isinf(values)
        if explicit.any():
            nonfinite[key] = explicit
        columns[key] = np.where(np.isfinite(values), values, np.nan)
    if len(junk_of) == 1:
        ((key, (count, first)),) = junk_of.items()
        warnings.append(f"{path}: column {key!r}: {count} non-numeric value(s) dropped (first at {first})")
    elif junk_of:
        shown = ", ".join(f"{k} ({c})" for k, (c, _) in list(junk_of.items())[:3])
        more = f" and {len(junk_of) - 3} more" if len(junk_of) > 3 else ""
        key, (_, first) = next(iter(junk_of.items()))
        warnings.append(
            f"{path}: {sum(c for c, _ in junk_of.values())} non-numeric value(s) dropped in "
            f"{len(junk_of)} columns: {shown}{more} (first: column {key!r} at {first})"
        )
    groups: dict[str | None, np.ndarray] = {None: np.arange(len(df))}
    if run_col is not None:  # one run per value (a saved canonical frame, a sweep's table); rows without one keep
        names = df[run_col].astype(object).where(df[run_col].notna(), None)  # the file's name
        groups = {str(name): np.flatnonzero((names == name).to_numpy()) for name in pd.unique(names.dropna())}
        if names.isna().any():
            groups[None] = np.flatnonzero(names.isna().to_numpy())
    runs: Runs = {}
    for name, rows in groups.items():
        frame = pd.DataFrame({"step": steps[rows].astype(np.int64), **{k: v[rows] for k, v in columns.items()}})
        counts = {k: int(mask[rows].sum()) for k, mask in nonfinite.items() if mask[rows].any()}
        runs[name] = Raw(
            frame, list(warnings), counts, line_of=lambda i, rows=rows: line_of(int(rows[i])), order=list(columns)
        )
    return runs
