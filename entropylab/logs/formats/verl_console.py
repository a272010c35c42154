"""verl's console output (`step:N - key:value - ...` lines, as its console logger prints them)."""

from __future__ import annotations

from pathlib import Path

from entropylab.logs import verl
from entropylab.logs.formats import CSV_SUFFIXES, HEAD, LogFormat, Probe, register_format
from entropylab.logs.tabular import Runs


def read(path: Path, fmt: LogFormat, *, step_key: str | None = None, run_key: str | None = None) -> Runs:
    """The metric lines of a verl console log (one run)."""
    return {None: verl.read_console(path)}


def match_content(probe: Probe) -> bool:
    """Not a CSV or JSON table, and a metric line in the first bytes (or anywhere, for a long set-up)."""
    if probe.table == "json" or probe.suffix in CSV_SUFFIXES:
        return False
    head = probe.head
    return verl.sniff_console(head) or (len(head) == HEAD and verl.sniff_console(verl.read_bytes(probe.path)))


FORMAT = register_format(
    LogFormat(
        name="verl-console",
        description="verl console output (step:N - key:value lines)",
        rank=10,
        read=read,
        match_content=match_content,
        suffixes=(".log", ".txt", ".out"),
        follow=lambda path: "console",
    )
)
