"""W&B history exports (`_step` column) as CSV, JSON lines or Parquet."""

from __future__ import annotations

from entropylab.logs import aliases
from entropylab.logs.formats import LogFormat, Probe, follow_table, register_format
from entropylab.logs.tabular import read_table

#: W&B's own step counter comes first.
STEP_KEYS: tuple[str, ...] = ("_step",) + tuple(k for k in aliases.STEP_KEYS if k != "_step")
#: Columns of W&B history exports that are bookkeeping, not metrics.
DROP: tuple[str, ...] = ("_runtime", "_timestamp", "_wandb")


def match_content(probe: Probe) -> bool:
    """A CSV header or a JSON-lines record with `_step`."""
    if probe.table == "json" and (probe.json_list or probe.first is None):
        return False
    return "_step" in probe.keys()


FORMAT = register_format(
    LogFormat(
        name="wandb",
        description="W&B history export (CSV, JSON lines or Parquet with _step)",
        rank=60,
        read=read_table,
        match_content=match_content,
        follow=follow_table,
        step_keys=STEP_KEYS,
        drop=DROP,
    )
)
