"""Which reader a path needs: detection by name, content and run directory, driven by the format registry.

The formats themselves (what marks each one) live in `entropylab.logs.formats`, one module each.
"""

from __future__ import annotations

from pathlib import Path

from entropylab.errors import LogFormatError
from entropylab.logs.formats import LOG_FORMATS, LogFormat, Probe, Source, format_names, ranked

__all__ = ["FORMATS", "Source", "detect_file", "sources"]

#: Format names accepted by `load(format=...)` besides "auto" (the built-in ones; see `LOG_FORMATS`).
FORMATS: tuple[str, ...] = format_names()


def _default_name(path: Path) -> str:
    """A run's default name: the file stem, or the directory for files with fixed names."""
    if path.is_dir():
        return path.resolve().name or str(path)
    if any(f.marker and f.match_name(path) for f in ranked()):  # a file named by its framework: the run is the folder
        parent = path.resolve().parent
        if parent.name.startswith("checkpoint-"):
            parent = parent.parent
        return parent.name or path.stem
    return path.stem


def sources(path: Path, fmt: str = "auto") -> list[Source]:
    """The sources a path stands for (a directory may hold several runs)."""
    if fmt != "auto" and fmt not in LOG_FORMATS:
        raise LogFormatError(f"unknown log format {fmt!r}; choose one of: auto, {', '.join(format_names())}")
    if not path.exists():
        raise LogFormatError(f"{path}: no such file or directory")
    if path.is_dir():
        return _dir_sources(path, fmt)
    return [Source(path, fmt if fmt != "auto" else detect_file(path), _default_name(path))]


def _dir_formats() -> list[LogFormat]:
    """The formats that mark run directories, in the order directories are tried (`dir_rank`)."""
    return sorted((f for f in ranked() if f.marker), key=lambda f: (f.dir_rank, f.rank, f.name))


def _dir_sources(path: Path, fmt: str) -> list[Source]:
    name = _default_name(path)
    for candidate in _dir_formats():
        if fmt in ("auto", candidate.name):
            found = candidate.find_runs(path, name)
            if found:
                return found
    if fmt != "auto" and LOG_FORMATS[fmt].marker:
        raise LogFormatError(f"{path}: {LOG_FORMATS[fmt].missing}")
    suffixes = {s for f in ranked() for s in f.suffixes}
    found: list[Source] = []
    for child in sorted(path.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_file() and child.suffix.lower() in suffixes:
            try:
                found.append(Source(child, fmt if fmt != "auto" else detect_file(child), _default_name(child)))
            except LogFormatError:
                continue  # a README or config beside the logs
        elif child.is_dir() and any(f.holds_run(child) for f in _dir_formats()):
            found.extend(_dir_sources(child, fmt))
    if not found:
        markers = ", ".join(f.marker for f in _dir_formats())
        raise LogFormatError(
            f"{path}: no training log found in this directory (looked for {markers}, "
            f"and *.log/*.jsonl/*.csv/*.parquet files)"
        )
    return found


def detect_file(path: Path) -> str:
    """The format of a file: the first format (by rank) its name says, else the first its content says."""
    formats = ranked()
    for fmt in formats:
        if fmt.match_name(path):
            return fmt.name
    probe = Probe(path)
    for fmt in formats:
        if fmt.match_content(probe):
            return fmt.name
    raise LogFormatError(
        f"{path}: cannot detect the log format (no verl 'step:N - key:value' lines, not JSON lines "
        f"or a CSV with a step column); pass format= one of: {', '.join(format_names())}"
    )
