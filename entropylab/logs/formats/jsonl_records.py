"""Any JSON lines of metric records with a step field, or one JSON list of such records."""

from __future__ import annotations

from functools import partial

from entropylab.logs.formats import LogFormat, register_format
from entropylab.logs.tabular import read_table

FORMAT = register_format(
    LogFormat(
        name="jsonl",
        description="JSON lines (or a JSON list) of records with a step field",
        rank=80,
        read=partial(read_table, container="json"),
        match_content=lambda probe: probe.table == "json",
        suffixes=(".jsonl", ".ndjson", ".json"),
        follow=lambda path: "records" if path.suffix.lower() == ".json" else "lines",
    )
)
