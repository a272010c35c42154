"""TensorBoard event files: every scalar summary (and scalar tensor summary) by tag and step."""

from __future__ import annotations

from pathlib import Path

from entropylab.errors import LogFormatError
from entropylab.logs._table import Raw, Table

EVENTS = "events.out.tfevents."


def event_files(directory: Path) -> list[Path]:
    """Event files directly in `directory`, or else anywhere below it."""
    found = sorted(directory.glob(f"{EVENTS}*"))
    return found or sorted(directory.rglob(f"{EVENTS}*"))


def read_events(path: Path) -> Raw:
    """Scalars of one event file or of every event file in a directory (a restarted run writes several).

    Rows keep the file order per tag, so a step logged twice (restart) is resolved later: the later one wins.
    """
    from tensorboard.backend.event_processing import event_accumulator as ea  # heavy: only here

    files = [path] if path.is_file() else event_files(path)
    if not files:
        raise LogFormatError(f"{path}: no TensorBoard event files ({EVENTS}*)")
    series: dict[str, list[tuple[int, float]]] = {}
    with _Quiet() as quiet:  # tensorboard logs one line per tag for some files: counted, said once per kind
        for file in files:
            acc = ea.EventAccumulator(
                str(file), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0}, purge_orphaned_data=False
            )
            try:
                acc.Reload()
            except Exception as err:  # damaged files raise several types
                raise LogFormatError(f"{file}: not a readable TensorBoard event file ({err})") from None
            _add_series(acc, series)
    if not series:
        raise LogFormatError(f"{path}: no scalar summaries in {len(files)} event file(s)")
    return series_raw(series, [f"{path}: tensorboard: {line}" for line in quiet.lines()])


def _add_series(acc, series: dict[str, list[tuple[int, float]]]) -> None:
    """Append the scalar (and one-number tensor) events of a loaded accumulator to `series`, by tag."""
    tags = acc.Tags()
    for tag in tags.get("scalars", []):
        series.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    for tag in tags.get("tensors", []):
        values = _scalar_tensors(acc.Tensors(tag))
        if values:
            series.setdefault(tag, []).extend(values)


def series_raw(series: dict[str, list[tuple[int, float]]], warnings: list[str] | None = None) -> Raw:
    """The rows of (step, value) series by tag, in file order per tag."""
    # Row (step, k): the k-th value of each tag at that step, so repeats stay separate rows in order.
    rows: dict[tuple[int, int], dict[str, float]] = {}
    for tag, events in series.items():
        seen: dict[int, int] = {}
        for step, value in events:
            k = seen.get(step, 0)
            seen[step] = k + 1
            rows.setdefault((step, k), {})[tag] = value
    table = Table()
    for (step, _), values in sorted(rows.items()):
        table.add(step, tuple(values), list(values.values()))
    frame, nonfinite, order = table.frame()
    return Raw(frame, list(warnings or []), nonfinite, order=order)


class _Quiet:
    """Captures the `tensorboard` logger's records while reading; `lines()` gives one line per message kind."""

    def __enter__(self) -> _Quiet:
        import logging

        self.records: list[str] = []
        self.logger = logging.getLogger("tensorboard")
        self.handler = logging.Handler(logging.WARNING)
        self.handler.emit = lambda record: self.records.append(record.getMessage())  # type: ignore[method-assign]
        self.saved = (self.logger.propagate, list(self.logger.handlers))
        self.logger.handlers = [self.handler]
        self.logger.propagate = False
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.propagate, self.logger.handlers = self.saved

    def lines(self) -> list[str]:
        import re
        from collections import Counter

        kinds = Counter(re.sub(r"\d+(?:\.\d+)?|'[^']*'|\"[^\"]*\"", "#", m) for m in self.records)
        return [f"{kind} ({n} time(s))" if n > 1 else kind for kind, n in kinds.items()]


def _scalar_tensors(events: list) -> list[tuple[int, float]]:
    """(step, value) of tensor events holding one number (TF2 `tf.summary.scalar`); others are skipped."""
    from tensorboard.util import tensor_util

    out = []
    for e in events:
        try:
            arr = tensor_util.make_ndarray(e.tensor_proto)
        except Exception:
            return []
        if arr.size != 1 or arr.dtype.kind not in "fiu":
            return []
        out.append((e.step, float(arr.reshape(()))))
    return out
