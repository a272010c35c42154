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
    rest = line[m.end() - 3:]
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
        if not joined.translate(None, _NUMBER_BYTES):
            return int(m.group(1)), tuple(parts[1::2]), joined
    pairs = PAIR.findall(rest)  # np.float64(0.1), tensor(0.1), nan, text values...
    if not pairs:
        return None
    keys, vals = zip(*pairs)
    return int(m.group(1)), keys, list(vals)


def iter_metric_lines(data: bytes | mmap.mmap) -> Iterator[tuple[int, int, tuple[bytes, ...], bytes | list[bytes]]]:
    """(line number, step, keys, values) of every metric line, in file order; other lines are skipped."""
    lineno, counted = 1, 0  # the line number of byte offset `counted`
    find = data.find
    pos = find(b"step:")
    while pos >= 0:
        start = data.rfind(b"\n", 0, pos) + 1
        end = find(b"\n", pos)
        end = len(data) if end < 0 else end
        parsed = _metric_line(data[start:end], pos - start)
        if parsed is not None:
            lineno += data[counted:start].count(b"\n")
            counted = start
            yield (lineno, *parsed)
        pos = find(b"step:", end)


class _Keys:
    """Decodes key tuples once per distinct tuple (the lines of one log share a handful of key sets)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[bytes, ...], tuple[str, ...]] = {}

    def __call__(self, keys: tuple[bytes, ...]) -> tuple[str, ...]:
        out = self._seen.get(keys)
        if out is None:
            out = self._seen[keys] = tuple(k.decode("utf-8", "replace") for k in keys)
        return out


def read_console(path: Path, data: bytes | mmap.mmap | None = None) -> Raw:
    """Parse a verl console log: metric lines anywhere (Ray prefixes, ANSI colours, junk in between).

    The 'Initial validation metrics: {...}' dict printed before training is the validation at step 0;
    the 'Final validation metrics' dict repeats the last validation and is not read.
    """
    data = _map(path) if data is None else data
    table = Table()
    decode = _Keys()
    warnings: list[str] = []
    at = data.find(_INITIAL)
    initial = (data[:at].count(b"\n") + 1, _initial_validation(data, at)) if at >= 0 else None
    for lineno, step, keys, values in iter_metric_lines(data):
        if initial is not None:  # before the first metric line: validation before training, step 0
            if initial[0] < lineno and initial[1]:
                table.add(0, tuple(k for k, _ in initial[1]), [v for _, v in initial[1]], initial[0])
            elif initial[0] > lineno:
                warnings.append(f"{path}: line {initial[0]}: 'Initial validation metrics' after training "
                                "started: its step is unknown, ignored")
            initial = None
        table.add(step, decode(keys), values, lineno)
    if initial is not None and initial[1]:
        table.add(0, tuple(k for k, _ in initial[1]), [v for _, v in initial[1]], initial[0])
    if len(table) == 0:
        raise LogFormatError(f"{path}: no metric lines found: expected verl console lines like "
                             "'step:1 - actor/entropy:0.5 - ...'")
    frame, nonfinite, order = table.frame()
    locs = table.locs
    return Raw(frame, warnings, nonfinite, line_of=lambda i: locs[i], order=order)


def _initial_validation(data: bytes | mmap.mmap, start: int) -> list[tuple[str, float]]:
    """`(key, value)` pairs of the pprint-ed 'Initial validation metrics: {...}' (possibly over several lines)."""
    lines = []
    line_start = data.rfind(b"\n", 0, start) + 1
    for raw in data[line_start:start + 200_000].split(b"\n")[:200]:
        lines.append(_RAY_PREFIX.sub("", _ANSI.sub(b"", raw).decode("utf-8", "replace")).rstrip())
        if "}" in lines[-1]:
            break
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
