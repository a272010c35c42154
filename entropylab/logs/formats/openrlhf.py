"""OpenRLHF metrics (`train/...`, `eval/eval_...` keys) saved as CSV, JSON lines or Parquet."""

from __future__ import annotations

from entropylab.logs.formats import LogFormat, Probe, follow_table, register_format
from entropylab.logs.tabular import read_table

#: Key prefixes only OpenRLHF writes.
HINTS = ("eval/eval_", "train/policy_loss", "train/actor_lr", "train/entropy_loss")


def match_content(probe: Probe) -> bool:
    """A table with OpenRLHF's keys (and no W&B `_step`: then it is a W&B export of an OpenRLHF run)."""
    if probe.table == "json" and (probe.json_list or probe.first is None):
        return False
    keys = probe.keys()
    return "_step" not in keys and any(k.startswith(HINTS) for k in keys)


FORMAT = register_format(
    LogFormat(
        name="openrlhf",
        description="OpenRLHF metrics (CSV, JSON lines or Parquet)",
        rank=40,
        read=read_table,
        match_content=match_content,
        follow=follow_table,
    )
)
