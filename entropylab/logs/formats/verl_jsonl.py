"""verl's file logger: JSON lines `{"step": N, "data": {...}}`."""

from __future__ import annotations

from entropylab.logs import verl
from entropylab.logs.formats import LogFormat, Probe, follow_lines, register_format
from entropylab.logs.tabular import read_table


def match_content(probe: Probe) -> bool:
    """A JSON-lines record with `step` and a `data` dict (a TRL state, with `log_history`, is not one)."""
    first = probe.first
    return (
        probe.table == "json"
        and not probe.json_list
        and first is not None
        and "log_history" not in first
        and verl.sniff_jsonl(first)
    )


FORMAT = register_format(
    LogFormat(
        name="verl-jsonl",
        description="verl file logger (JSON lines of step and data)",
        rank=20,
        read=read_table,
        match_content=match_content,
        follow=follow_lines,
        nested="data",
    )
)
