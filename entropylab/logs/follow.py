"""Following logs while they grow: each poll reads only the new bytes (or events) and keeps the rows read so far.

The same parsers as `load` read the pieces (`verl.ConsoleParser`, `tabular.JsonLinesParser`, the CSV and
TensorBoard readers), and only complete lines are read: a line still being written is read at the next poll.
So `Follower(path).frame()` after a poll equals `load(path)` of the file as it was then, cut at its last newline.

    f = Follower("train.log")
    while True:
        if f.poll():
            df = f.frame()         # the canonical DataFrame, as load() returns it
        time.sleep(2)
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from entropylab.errors import LogFormatError
from entropylab.logs import detect, tabular, trl, verl
from entropylab.logs._table import Raw, Table
from entropylab.logs.formats import LogFormat, get_format

if TYPE_CHECKING:
    import pandas as pd

_CHUNK = 1 << 24  # bytes read per poll at most (a large existing log is read over a few polls)


class _Bytes:
    """New complete lines of a growing file: the bytes since the last read, up to the last newline."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""
        self.inode: tuple[int, int] | None = None

    def read(self) -> tuple[bytes, bool]:
        """(new complete lines, whether the file was replaced or truncated: then reading starts over)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return b"", False
        inode = (st.st_dev, st.st_ino)
        restart = self.inode is not None and (inode != self.inode or st.st_size < self.offset)
        if restart:
            self.offset, self.rest = 0, b""
        self.inode = inode
        if st.st_size <= self.offset:
            return b"", restart
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read(_CHUNK)
        self.offset += len(data)
        data = self.rest + data
        end = data.rfind(b"\n") + 1
        self.rest = data[end:]
        return data[:end], restart

    def keep(self, data: bytes) -> None:
        """Put back unconsumed bytes (they are read again, before the new ones, at the next poll)."""
        self.rest = data + self.rest


class Follower:
    """Follows one log file or run directory (verl console or JSONL, JSON lines, CSV, TRL `trainer_state.json`,
    TensorBoard directory or file, entropylab run directory).

    `poll()` reads what is new and says whether rows were added; `frame()` is the canonical DataFrame so far.
    A path that does not exist yet, or holds no complete line yet, is waited for.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        format: str = "auto",
        *,
        entropy_key: str | None = None,
        score_key: str | None = None,
        step_key: str | None = None,
        run_key: str | None = None,
        run: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.format = format
        self.keys = {"entropy_key": entropy_key, "score_key": score_key}
        self.step_key, self.run_key, self.run = step_key, run_key, run
        self.source: detect.Source | None = None
        self.waiting: str | None = None  # why nothing can be read yet
        self._reset()

    def _reset(self) -> None:
        self._bytes: _Bytes | None = None
        self._parser: Any = None
        self._csv_header: bytes | None = None
        self._csv_rows: list[bytes] = []
        self._trl_seen = 0
        self._trl_table = Table()
        self._trl_stat: tuple[float, int] | None = None
        self._tb_loaders: dict[Path, Any] = {}
        self._tb_series: dict[str, list[tuple[int, float]]] = {}
        self._reread_stat: tuple[float, int] | None = None
        self._reread_runs: tabular.Runs | None = None
        self.rows = 0

    # ---------------------------------------------------------------- which reader

    def _resolve(self) -> bool:
        """Find the source once the path exists and its format can be told; False while it cannot."""
        if self.source is not None:
            if self.path.is_dir() and self.source.path.is_file():  # a newer checkpoint-N/ state may appear
                found = get_format(self.source.format).find_runs(self.path, self.source.name)
                if len(found) == 1 and found[0].path != self.source.path:
                    self.source = found[0]
                    self._trl_seen, self._trl_table, self._trl_stat = 0, Table(), None
            return True
        if not self.path.exists():
            self.waiting = "no such file yet"
            return False
        try:
            sources = detect.sources(self.path, self.format)
        except LogFormatError as err:  # no metric line yet (a verl log starts with pages of set-up output)
            self.waiting = str(err).removeprefix(f"{self.path}: ")
            return False
        if len(sources) != 1:
            raise LogFormatError(f"{self.path}: holds {len(sources)} runs; watch each log file or run directory")
        self.source = sources[0]
        self.waiting = None
        return True

    # ---------------------------------------------------------------- polling

    def poll(self) -> bool:
        """Read what is new; True when rows were added (or the file was replaced and read again)."""
        if not self._resolve():
            return False
        assert self.source is not None
        fmt, path = get_format(self.source.format), self.source.path
        how = fmt.follow(path)  # "console", "lines", "csv", "records", "state" or "events"
        before = self.rows
        if how == "events":
            self._poll_events(path)
        elif how in ("state", "records"):
            self._poll_document(path, fmt, how)
        elif how == "reread":
            self._poll_reread(path, fmt)
        else:
            while self._poll_lines(path, fmt, how):  # a large log is read in chunks, all within this poll
                pass
        return self.rows != before

    def _poll_lines(self, path: Path, fmt: LogFormat, how: str) -> bool:
        """Read one chunk of new complete lines; False when there was nothing new."""
        if self._bytes is None:
            self._bytes = _Bytes(path)
        data, restart = self._bytes.read()
        if restart:
            self._reset()
            self._bytes = _Bytes(path)
            data, _ = self._bytes.read()
        if not data:
            return False
        if how == "console":
            if self._parser is None:
                self._parser = verl.ConsoleParser(path)
            used = self._parser.feed(data)
            self._bytes.keep(data[used:])
            self.rows = len(self._parser.table)
        elif how == "csv":
            if self._csv_header is None:
                head, _, data = data.partition(b"\n")
                self._csv_header = head + b"\n"
            self._csv_rows += [line for line in data.split(b"\n") if line.strip()]
            self.rows = len(self._csv_rows)
        else:
            if self._parser is None:
                self._parser = tabular.JsonLinesParser(
                    path,
                    nested=fmt.nested,
                    step_keys=fmt.step_keys,
                    drop=fmt.drop,
                    step_key=self.step_key,
                    run_key=self.run_key,
                )
                self._lines = 0
            if fmt.parse_lines is not None:  # complete lines only: the format's rule sees no torn end
                items, _ = fmt.parse_lines(data.decode("utf-8", "replace"), path, first_line=self._lines + 1)
                self._lines += data.count(b"\n")
            else:
                items = []
                for line in data.split(b"\n")[:-1]:
                    self._lines += 1
                    if line.strip():
                        try:
                            items.append((self._lines, json.loads(line)))
                        except ValueError:
                            items.append((self._lines, None))
            self._parser.feed(items)
            self.rows = self._parser.records
        return True

    def _poll_document(self, path: Path, fmt: LogFormat, how: str) -> None:
        """A document rewritten whole (TRL's trainer state at each save, a JSON list of records): read it when it
        changed; a trainer state adds its new entries, a list of records is read again."""
        stamp = _stamp(path)
        if stamp is None or stamp == self._trl_stat:
            return
        text = path.read_bytes().decode("utf-8", "replace")
        if how == "records":  # a JSON list of records: all of them again
            parser = tabular.JsonLinesParser(
                path,
                nested=fmt.nested,
                step_keys=fmt.step_keys,
                drop=fmt.drop,
                step_key=self.step_key,
                run_key=self.run_key,
            )
            parser.feed(tabular.json_records(text))
            self._trl_stat, self._parser, self.rows = stamp, parser, parser.records
            return
        try:
            state = json.loads(text)
        except ValueError:
            return  # caught mid-rewrite: read at the next poll
        self._trl_stat = stamp
        history = state.get("log_history") if isinstance(state, dict) else state
        if not isinstance(history, list):
            raise LogFormatError(f"{path}: no 'log_history' list: not a TRL/transformers trainer_state.json")
        if len(history) < self._trl_seen:  # a new run in the same directory
            self._trl_seen, self._trl_table = 0, Table()
        if len(history) > self._trl_seen:
            trl.history_raw(history, path, start=self._trl_seen, table=self._trl_table)
            self._trl_seen = len(history)
        self.rows = len(self._trl_table)

    def _poll_reread(self, path: Path, fmt: LogFormat) -> None:
        """A format without an incremental reader: its `read` again whenever the file changed."""
        stamp = _stamp(path)
        if stamp is None or stamp == self._reread_stat:
            return
        self._reread_runs = fmt.read(path, fmt, step_key=self.step_key, run_key=self.run_key)
        self._reread_stat = stamp
        self.rows = sum(len(raw.frame) for raw in self._reread_runs.values())

    def _poll_events(self, path: Path) -> None:
        """TensorBoard: one incremental loader per event file (new files, e.g. after a restart, are picked up)."""
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

        from entropylab.logs.tensorboard import event_files

        files = [path] if path.is_file() else event_files(path)
        added = 0
        for file in files:
            loader = self._tb_loaders.get(file)
            if loader is None:
                loader = self._tb_loaders[file] = EventFileLoader(str(file))
            for event in loader.Load():
                for value in event.summary.value:
                    number = _event_value(value)
                    if number is not None:
                        self._tb_series.setdefault(value.tag, []).append((int(event.step), number))
                        added += 1
        self.rows += added

    # ---------------------------------------------------------------- what was read

    def raws(self) -> tabular.Runs:
        """The rows read so far, per run of the file (empty before the first complete line)."""
        if self.source is None or self.rows == 0:
            return {}
        fmt, path = get_format(self.source.format), self.source.path
        if fmt.follow(path) == "events":
            from entropylab.logs.tensorboard import series_raw

            return {None: series_raw(self._tb_series)}
        if self._reread_runs is not None:
            return self._reread_runs
        if self._trl_seen:
            frame, nonfinite, order = self._trl_table.frame()
            return {None: Raw(frame, [], nonfinite, order=order)}
        if self._csv_header is not None:
            import pandas as pd

            df = pd.read_csv(
                io.BytesIO(self._csv_header + b"\n".join(self._csv_rows) + b"\n"),
                sep="\t" if path.suffix.lower() == ".tsv" else ",",
                keep_default_na=False,
                na_values=[""],
                encoding_errors="replace",
                low_memory=False,
                on_bad_lines="skip",
            )
            return tabular.frame_runs(
                df,
                path,
                step_keys=fmt.step_keys,
                drop=fmt.drop,
                where=lambda i: f"line {i + 2}",
                line_of=lambda i: i + 2,
                step_key=self.step_key,
                run_key=self.run_key,
            )
        if isinstance(self._parser, verl.ConsoleParser):
            raw = self._parser.raw()
            raw.val_size = self._parser.val_size
            return {None: raw}
        return self._parser.runs()

    def frame(self) -> pd.DataFrame | None:
        """The canonical DataFrame of what was read so far (as `load` gives it), or None before any row."""
        from entropylab.logs.api import assemble

        raws = self.raws()
        if not raws:
            return None
        assert self.source is not None
        return assemble([(self.source, inner, raw) for inner, raw in raws.items()], self.run, warn=False, **self.keys)


def _stamp(path: Path) -> tuple[float, int] | None:
    """(mtime, size) of a file, to tell whether it changed; None while it does not exist."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime, st.st_size


def _event_value(value: Any) -> float | None:
    """The number of a TensorBoard summary value (simple value, or a one-number tensor), else None."""
    if value.HasField("simple_value"):
        return float(value.simple_value)
    if value.HasField("tensor"):
        from tensorboard.util import tensor_util

        try:
            arr = tensor_util.make_ndarray(value.tensor)
        except Exception:
            return None
        if arr.size == 1 and arr.dtype.kind in "fiu":
            return float(arr.reshape(()))
    return None
