"""TRL `trainer_state.json`: the `log_history` list; training and eval entries of one step become one row."""

from __future__ import annotations

import json
import re
from pathlib import Path

from entropylab.errors import LogFormatError
from entropylab.logs._table import Raw, Table
from entropylab.logs.tabular import _flatten, _is_number, _step_of, json_records

STATE = "trainer_state.json"


def find_state(directory: Path) -> Path | None:
    """The trainer state of a TRL output dir: its own `trainer_state.json` or the latest `checkpoint-N/` one.

    When both exist, the one with the larger `global_step` wins (the top-level one on a tie).
    """
    top = directory / STATE
    checkpoints = [p for p in directory.glob(f"checkpoint-*/{STATE}") if re.fullmatch(r"checkpoint-\d+", p.parent.name)]
    latest = max(checkpoints, key=lambda p: int(p.parent.name.split("-")[1]), default=None)
    if latest is None or not top.exists():
        return top if top.exists() else latest
    return latest if _global_step(latest) > _global_step(top) else top


def _global_step(path: Path) -> int:
    try:
        return int(json.loads(path.read_text(errors="replace")).get("global_step", -1))
    except (ValueError, TypeError, AttributeError, OSError):
        return -1


def read_trainer_state(path: Path) -> Raw:
    """Parse `trainer_state.json` (a file; see `find_state` for output directories), or a JSON file holding
    only the `log_history` list of records."""
    from entropylab.logs.verl import read_bytes

    text = read_bytes(path).decode("utf-8", "replace")
    notes: list[str] = []
    try:
        state = json.loads(text)
    except ValueError as err:
        if not text.lstrip().startswith("["):
            raise LogFormatError(f"{path}: not valid JSON ({err})") from None
        state = [obj for _, obj in json_records(text)]  # a list still being written: its complete records
        if state and state[-1] is None:
            state.pop()
            notes.append(
                f"{path}: the list of records ends inside a record (still being written?): the torn record skipped"
            )
    history = state.get("log_history") if isinstance(state, dict) else state  # or a bare log_history list
    if not isinstance(history, list):
        raise LogFormatError(f"{path}: no 'log_history' list: not a TRL/transformers trainer_state.json")
    raw = history_raw(history, path)
    raw.notes[:0] = notes
    return raw


def history_raw(
    history: list, path: Path, warnings: list[str] | None = None, start: int = 0, table: Table | None = None
) -> Raw:
    """The rows of TRL `log_history` entries (from index `start`, added to `table` when given)."""
    table = Table() if table is None else table
    for i, entry in enumerate(history[start:], start):
        if not isinstance(entry, dict) or "step" not in entry:
            raise LogFormatError(f"{path}: log_history[{i}] has no 'step'")
        record = _flatten(entry)
        step = _step_of(record.pop("step"), path, f"log_history[{i}]", "step")
        pairs = [(k, v) for k, v in record.items() if _is_number(v)]
        table.add(step, tuple(k for k, _ in pairs), [v for _, v in pairs], i)
    if len(table) == 0:
        raise LogFormatError(f"{path}: 'log_history' is empty: nothing was logged yet")
    frame, nonfinite, order = table.frame()
    return Raw(frame, list(warnings or []), nonfinite, order=order)
