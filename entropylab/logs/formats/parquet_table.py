"""Any Parquet table with a step column (pyarrow is imported when one is read)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from entropylab.errors import LogFormatError
from entropylab.logs.formats import PARQUET_SUFFIXES, LogFormat, register_format
from entropylab.logs.tabular import read_table


def follow(path: Path) -> str:
    """A Parquet file cannot be followed: it is written whole."""
    raise LogFormatError(f"{path}: a Parquet file is written whole, it cannot be followed; use fit")


FORMAT = register_format(
    LogFormat(
        name="parquet",
        description="Parquet table with a step column",
        rank=90,
        read=partial(read_table, container="parquet"),
        match_name=lambda path: path.suffix.lower() in PARQUET_SUFFIXES,
        suffixes=(".parquet", ".pq"),
        follow=follow,
    )
)
