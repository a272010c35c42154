"""TRL `trainer_state.json`: the `log_history` list; training and eval entries of one step become one row."""

from __future__ import annotations

import json
import re
from pathlib import Path

from entropylab.errors import LogFormatError
from entropylab.logs._table import Raw, Table
from entropylab.logs.tabular import _flatten, _is_number, _step_of

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
    """Parse `trainer_state.json` (a file; see `find_state` for output directories)."""
    from entropylab.logs.verl import read_bytes

    try:
        state = json.loads(read_bytes(path).decode("utf-8", "replace"))
    except ValueError as err:
        raise LogFormatError(f"{path}: not valid JSON ({err})") from None
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list):
        raise LogFormatError(f"{path}: no 'log_history' list: not a TRL/transformers trainer_state.json")
    table = Table()
    for i, entry in enumerate(history):
        if not isinstance(entry, dict) or "step" not in entry:
            raise LogFormatError(f"{path}: log_history[{i}] has no 'step'")
        record = _flatten(entry)
        step = _step_of(record.pop("step"), path, f"log_history[{i}]", "step")
        pairs = [(k, v) for k, v in record.items() if _is_number(v)]
        table.add(step, tuple(k for k, _ in pairs), [v for _, v in pairs], i)
    if len(table) == 0:
        raise LogFormatError(f"{path}: 'log_history' is empty: nothing was logged yet")
    frame, nonfinite, order = table.frame()
    return Raw(frame, [], nonfinite, order=order)
