"""verl logs: the console (`step:N - key:val - ...` lines) and the file logger (`{"step": s, "data": {...}}`)."""

from __future__ import annotations

import ast
import mmap
import re
from collections.abc import Iterator
from pathlib import Path

from entropylab.errors import LogFormatError
from entropylab.logs._table import Raw, Table

# Work on bytes: no decoding of the (often larger) model output around the metric lines.
_NUM = rb"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?i:nan|inf(?:inity)?)"
_STEP_HEAD = re.compile(rb"step:(\d+) - ")
# ` - key:value`, value plain or wrapped: np.float64(0.1), np.int64(3), tensor(0.1), float32(...)
PAIR = re.compile(rb" - ([^\s:]+):\s*(?:np\.)?(?:\w+\()?\s*(" + _NUM + rb")")
_ANSI = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")
_ANSI_END = re.compile(rb"\x1b\[[0-9;]*m$")
_NUMBER_BYTES = b"0123456789.-+eE "
_MAP_FROM = 8 << 20  # bytes
_INITIAL = b"Initial validation metrics"
_DICT_PAIR = re.compile(r"""['"]([^'"]+)['"]\s*:\s*(?:np\.)?(?:\w+\()?\s*(""" + _NUM.decode() + r")")
_RAY_PREFIX = re.compile(r"^\s*(?:\([^()]*pid=\d+[^()]*\)\s*)?")


def read_bytes(path: Path) -> bytes:
    """The file's bytes; a clear error when missing or empty."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LogFormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LogFormatError(f"{path}: is a directory, expected a log file") from None
    if not data or data.isspace():
        raise LogFormatError(f"{path}: the file is empty")
    return data


def _map(path: Path) -> bytes | mmap.mmap:
    """A large file memory-mapped (no copy on the heap), a small one read; errors as `read_bytes`."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise LogFormatError(f"{path}: no such file") from None
    if size < _MAP_FROM or path.is_dir():
        return read_bytes(path)
    with path.open("rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if data[:4096].isspace() and data[:].isspace():
        raise LogFormatError(f"{path}: the file is empty")
    return data


def _is_line_start(line: bytes, pos: int) -> bool:
    """Whether `step:` at `pos` starts a metric line (not e.g. 'substep:3' in model output)."""
    if pos == 0:
        return True
    c = line[pos - 1]
    if c in b" \t\r)]|>":
        return True
    if c == ord("m"):  # an ANSI colour code right before
        return _ANSI_END.search(line, max(0, pos - 12), pos) is not None
    return False


def _metric_line(line: bytes, at: int) -> tuple[int, tuple[bytes, ...], bytes | list[bytes]] | None:
    """(step, keys, values) of a line whose first `step:` is at `at`, or None when it is not a metric line.

    Values come as one bytes string of space-separated numbers when all are plain numbers (the fast path).
    """
    m = _STEP_HEAD.match(line, at)
    while m is None or not _is_line_start(line, at):
        at = line.find(b"step:", at + 1)
        if at < 0:
            return None
        m = _STEP_HEAD.match(line, at)
    rest = line[m.end() - 3 :]
    if b"\r" in rest:
        rest = rest.split(b"\r", 1)[0]
    if b"\x1b" in rest:
        rest = _ANSI.sub(b"", rest)
    rest = rest.rstrip()
    # Fast path: ' - k:v - k:v' -> ['', k, v, k, v] when every value is a plain number.
    parts = rest.replace(b" - ", b":").split(b":")
    values = parts[2::2]
    if len(parts) % 2 == 1 and b"" not in values:
        joined = b" ".join(values)
        if not joined.translate(None, _NUMBER_BYTES) and joined.count(b" ") == len(values) - 1:
            return int(m.group(1)), tuple(parts[1::2]), joined
    pairs = PAIR.findall(rest)  # np.float64(0.1), tensor(0.1), nan, text values...
    if not pairs:
        return None
    keys, vals = zip(*pairs)
    return int(m.group(1)), keys, list(vals)


def iter_metric_lines(
    data: bytes | mmap.mmap, end: int | None = None
) -> Iterator[tuple[int, int, tuple[bytes, ...], bytes | list[bytes], int]]:
    """(line number, step, keys, values, line length) of every metric line of `data[:end]`, in file order."""
    lineno, counted = 1, 0  # the line number of byte offset `counted`
    stop = len(data) if end is None else end
    find = data.find
    pos = find(b"step:", 0, stop)
    while pos >= 0:
        start = data.rfind(b"\n", 0, pos) + 1
        line_end = find(b"\n", pos, stop)
        line_end = stop if line_end < 0 else line_end
        parsed = _metric_line(data[start:line_end], pos - start)
        if parsed is not None:
            lineno += data[counted:start].count(b"\n")
            counted = start
            yield (lineno, *parsed, line_end - start)
        pos = find(b"step:", line_end, stop)


class _Keys:
    """Decodes key tuples once per distinct tuple (the lines of one log share a handful of key sets)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[bytes, ...], tuple[str, ...]] = {}

    def __call__(self, keys: tuple[bytes, ...]) -> tuple[str, ...]:
        out = self._seen.get(keys)
        if out is None:
            out = self._seen[keys] = tuple(k.decode("utf-8", "replace") for k in keys)
        return out


#: Line widths at which console capture (wandb's output.log) cuts lines: the last value of such a line may be cut.
CUT_WIDTHS = frozenset({1024, 2048, 4096, 8192, 16384})
_VAL_SIZE = re.compile(rb"(?:filter|original) dataset len: (\d+)")


class ConsoleParser:
    """Reads a verl console log in pieces of complete lines (`feed`), as `read_console` and `watch` need.

    The 'Initial validation metrics: {...}' dict printed before training is the validation at step 0; the
    'Final validation metrics' dict repeats the last validation and is not read. A line cut at a capture width
    (`CUT_WIDTHS`) loses its last value, which may be cut mid-number.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.table = Table()
        self.warnings: list[str] = []
        self.cut_lines = 0
        self.first_cut: int | None = None
        self.val_sizes: list[int] = []  # verl prints 'dataset len: N' for the train, then the val dataset
        self._decode = _Keys()
        self._lines = 0  # complete lines fed so far
        self._started = False  # a metric line has been seen

    def feed(self, data: bytes | mmap.mmap, end: int | None = None, *, torn: bool = False) -> int:
        """Parse the complete lines of `data[:end]`; returns how many bytes were consumed (the rest is kept
        for the next call: an initial-validation dict whose closing brace has not been written yet).

        torn=True: `data[:end]` ends inside a line (the end of a log still being written); that line's last
        value, which may be cut mid-number, is left out and counted."""
        stop = len(data) if end is None else end
        at = data.find(_INITIAL, 0, stop)
        initial = None
        if at >= 0 and not self._started:
            line_start = data.rfind(b"\n", 0, at) + 1
            pairs = _initial_validation(data, at, stop)
            if pairs is None:  # the dict is still being written: stop before it
                stop = line_start
            else:
                initial = (self._lines + _count_lines(data, 0, at) + 1, pairs)
        elif at >= 0 and not self._initial_warned:
            self._initial_warned = True
            line = self._lines + _count_lines(data, 0, at) + 1
            self.warnings.append(
                f"{self.path}: line {line}: 'Initial validation metrics' after training started: "
                "its step is unknown, ignored"
            )
        if not self._started:
            first = data.find(b"step:", 0, stop)
            self.val_sizes += [int(n) for n in _VAL_SIZE.findall(data, 0, stop if first < 0 else first)]
        tail_line = self._lines + _count_lines(data, 0, stop) + 1 if torn else -1  # the line without its newline
        for lineno, step, keys, values, width in iter_metric_lines(data, stop):
            lineno += self._lines
            if initial is not None:  # before the first metric line after it: validation before training, step 0
                if initial[0] < lineno:
                    if initial[1]:
                        self.table.add(0, tuple(k for k, _ in initial[1]), [v for _, v in initial[1]], initial[0])
                elif not self._started:
                    self.warnings.append(
                        f"{self.path}: line {initial[0]}: 'Initial validation metrics' after "
                        "training started: its step is unknown, ignored"
                    )
                initial = None
            self._started = True
            keys = self._decode(keys)
            last = lineno == tail_line
            if (width in CUT_WIDTHS or last) and len(keys) > 1:
                if last:
                    self.torn = True
                else:
                    self.cut_lines += 1
                    self.first_cut = self.first_cut or lineno
                keys = keys[:-1]
                values = values.rsplit(b" ", 1)[0] if isinstance(values, bytes) else values[:-1]
            self.table.add(step, keys, values, lineno)
        if initial is not None and initial[1]:
            self.table.add(0, tuple(k for k, _ in initial[1]), [v for _, v in initial[1]], initial[0])
        self._lines += _count_lines(data, 0, stop)
        return stop

    _initial_warned = False
    torn = False

    def raw(self) -> Raw:
        """The rows read so far, with the warnings of what was left out."""
        if len(self.table) == 0:
            raise LogFormatError(
                f"{self.path}: no metric lines found: expected verl console lines like "
                "'step:1 - actor/entropy:0.5 - ...'"
            )
        warnings = list(self.warnings)
        notes = (
            [
                f"{self.path}: the last line has no newline (a log still being written?): its last value, "
                "possibly cut mid-number, left out"
            ]
            if self.torn
            else []
        )
        if self.cut_lines:
            warnings.append(
                f"{self.path}: {self.cut_lines} line(s) cut at a capture width "
                f"({'/'.join(map(str, sorted(CUT_WIDTHS)))} characters; first: line {self.first_cut}): "
                "their last value, possibly cut mid-number, left out"
            )
        frame, nonfinite, order = self.table.frame()
        locs = self.table.locs
        return Raw(frame, warnings, nonfinite, line_of=lambda i: locs[i], order=order, notes=notes)

    @property
    def val_size(self) -> int | None:
        """The validation set's size when verl printed it ('dataset len: N' of the second dataset)."""
        return self.val_sizes[-1] if len(self.val_sizes) >= 2 else None


def _count_lines(data: bytes | mmap.mmap, start: int, stop: int, block: int = 1 << 22) -> int:
    """Newlines in `data[start:stop]`, counted in blocks (no copy of a memory-mapped file at once)."""
    return sum(data[i : min(i + block, stop)].count(b"\n") for i in range(start, stop, block))


def complete_end(data: bytes | mmap.mmap) -> int:
    """The end of the last complete line (just after its newline); 0 when there is none."""
    return data.rfind(b"\n") + 1


def read_console(path: Path, data: bytes | mmap.mmap | None = None) -> Raw:
    """Parse a verl console log: metric lines anywhere (Ray prefixes, ANSI colours, junk in between).

    The last value of a last line without its newline (a log still being written) is left out with a warning;
    so are the last values of lines cut at a capture width. See `ConsoleParser`.
    """
    data = _map(path) if data is None else data
    parser = ConsoleParser(path)
    end = complete_end(data)
    parser.feed(data, torn=end < len(data) and not data[end:].isspace())
    raw = parser.raw()
    raw.val_size = parser.val_size
    return raw


def _initial_validation(data: bytes | mmap.mmap, start: int, stop: int | None = None) -> list[tuple[str, float]] | None:
    """`(key, value)` pairs of the pprint-ed 'Initial validation metrics: {...}' (possibly over several lines);
    None when its closing brace is not in `data[:stop]` yet (and could still come)."""
    lines = []
    stop = len(data) if stop is None else stop
    line_start = data.rfind(b"\n", 0, start) + 1
    closed = False
    for raw in data[line_start : min(start + 200_000, stop)].split(b"\n")[:200]:
        lines.append(_RAY_PREFIX.sub("", _ANSI.sub(b"", raw).decode("utf-8", "replace")).rstrip())
        if "}" in lines[-1]:
            closed = True
            break
    if not closed and stop - start < 200_000 and len(lines) < 200:
        return None
    text = "\n".join(lines)
    if text[:1] in ("(", "'", '"'):  # pprint wraps a long string into ('part' "part" ...): rejoin the parts
        try:
            joined = ast.literal_eval(text)
            text = joined if isinstance(joined, str) else text
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            pass
    return [(k, float(v)) for k, v in _DICT_PAIR.findall(text)]


def sniff_console(head: bytes) -> bool:
    """Whether the start of a file looks like a verl console log (it has a metric line)."""
    return next(iter_metric_lines(head), None) is not None


def sniff_jsonl(first: dict) -> bool:
    """Whether a first JSON record looks like verl's file logger."""
    return set(first) >= {"step", "data"} and isinstance(first.get("data"), dict)
