"""Tabular logs: CSV (plain, W&B history, OpenRLHF), JSON lines (plain, entropylab `metrics.jsonl`, verl), Parquet.

A tabular log needs a step column (`step`, `global_step`, `train/global_step`, `_step` or `iteration`). A string
column `run` splits the file into several runs (so `load` reads back a saved canonical frame).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from entropylab.errors import LogFormatError
from entropylab.logs import aliases
from entropylab.logs._table import Raw, Table

if TYPE_CHECKING:
    import pandas as pd

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


def read_json_lines(path: Path, *, nested: str | None = None, step_keys: tuple[str, ...] = aliases.STEP_KEYS,
                    drop: tuple[str, ...] = ()) -> Runs:
    """JSON lines of metrics with a step field; `nested` names a sub-dict holding the metrics (verl: "data").

    Lines that are not JSON objects are skipped with one warning (a run still writing its last line).
    """
    from entropylab.logs.verl import read_bytes

    text = read_bytes(path).decode("utf-8", "replace")
    tables: dict[str | None, Table] = {}
    bad: list[int] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            bad.append(number)
            continue
        if not isinstance(obj, dict):
            bad.append(number)
            continue
        record = _flatten(obj[nested]) if nested and isinstance(obj.get(nested), dict) else _flatten(obj)
        if nested and "step" in obj:
            record = {"step": obj["step"], **record}
        step_key = next((k for k in step_keys if record.get(k) is not None), None)
        if step_key is None:
            raise LogFormatError(f"{path}: line {number}: no step field (looked for {', '.join(step_keys)}); "
                                 f"fields present: {', '.join(list(record)[:12]) or 'none'}")
        step = _step_of(record.pop(step_key), path, f"line {number}", step_key)
        run = record.pop("run", None)
        run = run if isinstance(run, str) else None
        pairs = [(k, v) for k, v in record.items() if _is_number(v) and k not in drop]
        table = tables.setdefault(run, Table())
        table.add(step, tuple(k for k, _ in pairs), [v for _, v in pairs], number)
    if not tables:
        if bad:
            raise LogFormatError(f"{path}: line {bad[0]}: not a JSON object; no metric line could be read")
        raise LogFormatError(f"{path}: the file is empty")
    warnings = [f"{path}: {len(bad)} line(s) that are not JSON objects skipped (first: line {bad[0]})"] if bad else []
    runs: Runs = {}
    for run, table in tables.items():
        frame, nonfinite, order = table.frame()
        locs = table.locs
        runs[run] = Raw(frame, list(warnings), nonfinite, line_of=lambda i, locs=locs: locs[i], order=order)
    return runs


def read_csv(path: Path, *, step_keys: tuple[str, ...] = aliases.STEP_KEYS, drop: tuple[str, ...] = ()) -> Runs:
    """A CSV (or .tsv) file with a header row and a step column."""
    import pandas as pd

    from entropylab.logs.verl import read_bytes

    read_bytes(path)  # missing / empty: the same clear errors as every format
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        df = pd.read_csv(path, sep=sep, keep_default_na=False, na_values=[""], encoding_errors="replace",
                         low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise LogFormatError(f"{path}: not a readable CSV file: {str(err).strip()}") from None
    return frame_runs(df, path, step_keys=step_keys, drop=drop, where=lambda i: f"line {i + 2}",
                      line_of=lambda i: i + 2)


def read_parquet(path: Path, *, step_keys: tuple[str, ...] = aliases.STEP_KEYS, drop: tuple[str, ...] = ()) -> Runs:
    """A Parquet table with a step column (pyarrow is imported here only)."""
    import pandas as pd

    from entropylab.logs.verl import read_bytes

    read_bytes(path)
    try:
        df = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise LogFormatError(f"{path}: not a readable Parquet file: {err}") from None
    return frame_runs(df, path, step_keys=step_keys, drop=drop, where=lambda i: f"row {i + 1}",
                      line_of=lambda i: None)


def frame_runs(df: pd.DataFrame, path: Path, *, step_keys: tuple[str, ...], drop: tuple[str, ...],
               where: Callable[[int], str], line_of: Callable[[int], int | None]) -> Runs:
    """Numeric metric columns and the step of a table; non-numeric columns are dropped, bad cells reported."""
    import numpy as np
    import pandas as pd

    df = df.reset_index(drop=True)
    df.columns = [str(c) for c in df.columns]
    if len(df) == 0:
        raise LogFormatError(f"{path}: no rows (only a header?)")
    step_cols = [k for k in step_keys if k in df.columns]
    if not step_cols:
        raise LogFormatError(f"{path}: no step column (looked for {', '.join(step_keys)}); "
                             f"columns: {', '.join(list(df.columns)[:15])}")
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
    nonfinite: dict[str, np.ndarray] = {}  # key -> mask of explicit nan/inf cells
    columns: dict[str, np.ndarray] = {}
    for key in df.columns:
        if key in (step_key, "run") or key in drop:
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
                warnings.append(f"{path}: column {key!r}: {int(junk.sum())} non-numeric value(s) dropped "
                                f"(first at {where(i)}: {col.iloc[i]!r})")
            explicit = (given & nan_word) | np.isinf(values)
        if explicit.any():
            nonfinite[key] = explicit
        columns[key] = np.where(np.isfinite(values), values, np.nan)
    groups: dict[str | None, np.ndarray] = {None: np.arange(len(df))}
    if "run" in df.columns:  # a saved canonical frame: one run per value; rows without one keep the file's name
        names = df["run"]
        groups = {str(name): np.flatnonzero((names == name).to_numpy()) for name in pd.unique(names.dropna())}
        if names.isna().any():
            groups[None] = np.flatnonzero(names.isna().to_numpy())
    runs: Runs = {}
    for name, rows in groups.items():
        frame = pd.DataFrame({"step": steps[rows].astype(np.int64), **{k: v[rows] for k, v in columns.items()}})
        counts = {k: int(mask[rows].sum()) for k, mask in nonfinite.items() if mask[rows].any()}
        runs[name] = Raw(frame, list(warnings), counts, line_of=lambda i, rows=rows: line_of(int(rows[i])),
                         order=list(columns))
    return runs
