"""Which reader a path needs: format names, detection by name, extension and content, run directories."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from entropylab.errors import LogFormatError
from entropylab.logs import trl, verl
from entropylab.logs.tensorboard import EVENTS, event_files

#: Format names accepted by `load(format=...)` besides "auto".
FORMATS: tuple[str, ...] = ("verl-console", "verl-jsonl", "trl", "openrlhf", "tensorboard", "wandb", "csv", "jsonl",
                            "parquet", "entropylab")

METRICS = "metrics.jsonl"
_TABLE_SUFFIXES = {".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".parquet", ".pq"}
_LOG_SUFFIXES = _TABLE_SUFFIXES | {".log", ".txt", ".out"}
_OPENRLHF_HINTS = ("eval/eval_", "train/policy_loss", "train/actor_lr", "train/entropy_loss")


@dataclass(frozen=True)
class Source:
    """One thing to read: the path handed to the reader, its format and the run's default name."""

    path: Path
    format: str
    name: str


def _default_name(path: Path) -> str:
    """A run's default name: the file stem, or the directory for files with fixed names."""
    if path.is_dir():
        return path.resolve().name or str(path)
    if path.name in (METRICS, trl.STATE) or path.name.startswith(EVENTS):
        parent = path.resolve().parent
        if parent.name.startswith("checkpoint-"):
            parent = parent.parent
        return parent.name or path.stem
    return path.stem


def sources(path: Path, fmt: str = "auto") -> list[Source]:
    """The sources a path stands for (a directory may hold several runs)."""
    if fmt != "auto" and fmt not in FORMATS:
        raise LogFormatError(f"unknown log format {fmt!r}; choose one of: auto, {', '.join(FORMATS)}")
    if not path.exists():
        raise LogFormatError(f"{path}: no such file or directory")
    if path.is_dir():
        return _dir_sources(path, fmt)
    return [Source(path, fmt if fmt != "auto" else detect_file(path), _default_name(path))]


def _dir_sources(path: Path, fmt: str) -> list[Source]:
    name = _default_name(path)
    if fmt in ("auto", "entropylab") and (path / METRICS).is_file():
        return [Source(path / METRICS, "entropylab", name)]
    if fmt in ("auto", "trl"):
        state = trl.find_state(path)
        if state is not None:
            return [Source(state, "trl", name)]
    if fmt in ("auto", "tensorboard"):
        files = event_files(path)
        dirs = sorted({f.parent for f in files})
        if len(dirs) == 1:
            return [Source(dirs[0], "tensorboard", name)]
        if dirs:
            return [Source(d, "tensorboard", f"{name}/{d.relative_to(path).as_posix()}") for d in dirs]
    if fmt == "entropylab":
        raise LogFormatError(f"{path}: no {METRICS} in this directory (an entropylab run directory has one)")
    if fmt == "trl":
        raise LogFormatError(f"{path}: no {trl.STATE} here or in checkpoint-*/")
    if fmt == "tensorboard":
        raise LogFormatError(f"{path}: no TensorBoard event files ({EVENTS}*) in or below this directory")
    found: list[Source] = []
    for child in sorted(path.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_file() and child.suffix.lower() in _LOG_SUFFIXES:
            try:
                found.append(Source(child, fmt if fmt != "auto" else detect_file(child), _default_name(child)))
            except LogFormatError:
                continue  # a README or config beside the logs
        elif child.is_dir() and _is_run_dir(child):
            found.extend(_dir_sources(child, fmt))
    if not found:
        raise LogFormatError(f"{path}: no training log found in this directory (looked for {METRICS}, {trl.STATE}, "
                             f"checkpoint-*/{trl.STATE}, {EVENTS}*, and *.log/*.jsonl/*.csv/*.parquet files)")
    return found


def _is_run_dir(path: Path) -> bool:
    return ((path / METRICS).is_file() or trl.find_state(path) is not None
            or any(path.glob(f"{EVENTS}*")))


def detect_file(path: Path) -> str:
    """The format of a file, from its name, extension and first bytes."""
    name, suffix = path.name, path.suffix.lower()
    if name.startswith(EVENTS):
        return "tensorboard"
    if name == trl.STATE:
        return "trl"
    if name == METRICS:
        return "entropylab"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    data = _head(path)
    if suffix in (".csv", ".tsv"):
        return _csv_kind(data, path)
    if suffix in (".jsonl", ".ndjson", ".json") or data.lstrip()[:1] in (b"{", b"["):
        kind = _json_kind(data)
        if kind:
            return kind
    if verl.sniff_console(data) or (len(data) == _HEAD and verl.sniff_console(verl.read_bytes(path))):
        return "verl-console"
    header = data.split(b"\n", 1)[0].decode("utf-8", "replace")
    if "," in header and any(k in [c.strip().strip('"') for c in header.split(",")] for k in ("step", "_step")):
        return _csv_kind(data, path)
    raise LogFormatError(f"{path}: cannot detect the log format (no verl 'step:N - key:value' lines, not JSON lines "
                         f"or a CSV with a step column); pass format= one of: {', '.join(FORMATS)}")


_HEAD = 4 << 20


def _head(path: Path) -> bytes:
    """The first bytes of a file (enough to sniff its format); errors for missing or empty files."""
    try:
        with path.open("rb") as f:
            data = f.read(_HEAD)
    except OSError as err:
        raise LogFormatError(f"{path}: cannot read ({err.strerror or err})") from None
    if not data.strip():
        raise LogFormatError(f"{path}: the file is empty")
    return data


def _csv_kind(data: bytes, path: Path) -> str:
    header = data.split(b"\n", 1)[0].decode("utf-8", "replace")
    cols = [c.strip().strip('"') for c in header.split("\t" if path.suffix.lower() == ".tsv" else ",")]
    if "_step" in cols:
        return "wandb"
    if any(c.startswith(_OPENRLHF_HINTS) for c in cols):
        return "openrlhf"
    return "csv"


def _json_kind(data: bytes) -> str | None:
    """verl-jsonl, trl, wandb, openrlhf or jsonl from the first JSON line (or the whole JSON document)."""
    if data.lstrip()[:1] == b"[":  # a bare list of records: TRL's log_history saved on its own, or any records
        from entropylab.logs.tabular import json_records

        first = next((obj for _, obj in json_records(data.decode("utf-8", "replace"))), None)
        if not isinstance(first, dict):
            return None
        trl_like = "step" in first and ("epoch" in first or any(str(k).startswith(("eval_", "train_", "rewards/"))
                                                                  for k in first))
        return "trl" if trl_like else "jsonl"
    first = next((line for line in data.split(b"\n") if line.strip()), b"")
    try:
        obj = json.loads(first)
    except ValueError:  # a pretty-printed document: TRL's trainer state is the one we know
        return "trl" if b'"log_history"' in data else None
    if not isinstance(obj, dict):
        return None
    if "log_history" in obj:
        return "trl"
    if verl.sniff_jsonl(obj):
        return "verl-jsonl"
    if "_step" in obj:
        return "wandb"
    if any(str(k).startswith(_OPENRLHF_HINTS) for k in obj):
        return "openrlhf"
    return "jsonl"
