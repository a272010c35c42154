"""What every reader returns: metric rows in file order, built column-wise into one DataFrame."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass
class Raw:
    """One run as read from disk, before aliasing: `frame` has `step` plus metric columns, in file order."""

    frame: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    nonfinite: dict[str, int] = field(default_factory=dict)
    line_of: Callable[[int], int | None] = lambda i: None  # row position -> line number in the file
    order: list[str] = field(default_factory=list)  # original keys in first-seen order
    val_size: int | None = None  # the number of validation problems, where the log says it
    notes: list[str] = field(default_factory=list)  # what a log still being written leaves out: shown, not warned


class Table:
    """Accumulates rows `(step, keys, values)`; rows with the same key tuple are stored together.

    Values may be numbers or numeric strings (numpy parses them). Grouping by key tuple keeps the per-row
    cost to a list append, and `frame()` fills one float matrix group by group.
    """

    def __init__(self) -> None:
        self._groups: dict[tuple[str, ...], tuple[list[int], list[int], list[Sequence]]] = {}
        self._n = 0
        self.locs: list[int] = []

    def __len__(self) -> int:
        return self._n

    def add(self, step: int, keys: tuple[str, ...], values: Sequence | bytes, loc: int = 0) -> None:
        """Append one row (values: a sequence, or bytes of space-separated numbers); a repeated key keeps its last."""
        if len(set(keys)) != len(keys):
            last = dict(zip(keys, values.split() if isinstance(values, bytes) else values))
            keys, values = tuple(last), tuple(last.values())
        group = self._groups.get(keys)
        if group is None:
            group = self._groups[keys] = ([], [], [])
        group[0].append(self._n)
        group[1].append(step)
        group[2].append(values)
        self.locs.append(loc)
        self._n += 1

    def frame(self) -> tuple[pd.DataFrame, dict[str, int], list[str]]:
        """The rows as a DataFrame (`step` int64 then float64 metrics), explicit non-finite counts, key order."""
        import numpy as np
        import pandas as pd

        columns: dict[str, int] = {}
        for keys in self._groups:
            for key in keys:
                columns.setdefault(key, len(columns))
        matrix = np.full((self._n, len(columns)), np.nan)
        steps = np.zeros(self._n, dtype=np.int64)
        bad = np.zeros(len(columns), dtype=np.int64)
        for keys, (rows, row_steps, values) in self._groups.items():
            arr = _matrix(values, len(rows), len(keys))
            finite = np.isfinite(arr)
            cols = np.fromiter((columns[k] for k in keys), dtype=np.intp, count=len(keys))
            if not finite.all():
                np.add.at(bad, cols, (~finite).sum(axis=0))
                arr = np.where(finite, arr, np.nan)
            idx = np.asarray(rows, dtype=np.intp)
            matrix[idx[:, None], cols[None, :]] = arr
            steps[idx] = row_steps
        names = list(columns)
        df = pd.DataFrame(matrix, columns=names, copy=False)
        df.insert(0, "step", steps)
        counts = {names[i]: int(bad[i]) for i in np.flatnonzero(bad)}
        return df, counts, names


def _matrix(values: list, n: int, k: int) -> np.ndarray:
    """An (n, k) float matrix of rows given as value sequences or as space-separated number bytes."""
    import numpy as np

    try:
        if all(isinstance(v, bytes) for v in values):  # numpy's C reader: 2x a float() per value
            return np.loadtxt(
                io.BytesIO(b"\n".join(values)), dtype=np.float64, delimiter=" ", comments=None, ndmin=2
            ).reshape(n, k)
        return np.asarray(values, dtype=np.float64).reshape(n, k)
    except (ValueError, TypeError):  # a value like b"." that looked numeric: cell by cell
        rows = [v.split() if isinstance(v, bytes) else v for v in values]
        out = np.full((n, k), np.nan)
        for i, row in enumerate(rows):
            if len(row) == k:  # a row of another length (a cut line) cannot be placed: left empty
                out[i] = [_to_float(x) for x in row]
        return out


def _to_float(value: object) -> float:
    """A number, or NaN for a cell that is not one."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
