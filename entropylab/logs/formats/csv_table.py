"""Any CSV or TSV table with a header row and a step column."""

from __future__ import annotations

from functools import partial

from entropylab.logs.formats import LogFormat, follow_table, register_format
from entropylab.logs.tabular import read_table

FORMAT = register_format(
    LogFormat(
        name="csv",
        description="CSV/TSV table with a step column",
        rank=70,
        read=partial(read_table, container="csv"),
        match_content=lambda probe: probe.table == "csv",
        suffixes=(".csv", ".tsv"),
        follow=follow_table,
    )
)
