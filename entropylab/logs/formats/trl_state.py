"""TRL / transformers `trainer_state.json` (its `log_history`), a bare `log_history` list, or an output dir."""

from __future__ import annotations

from pathlib import Path

from entropylab.errors import LogFormatError
from entropylab.logs import trl
from entropylab.logs.formats import LogFormat, Probe, Source, register_format
from entropylab.logs.tabular import Runs


def read(path: Path, fmt: LogFormat, *, step_key: str | None = None, run_key: str | None = None) -> Runs:
    """The log history of a trainer state file, or of the latest one of an output directory."""
    state = trl.find_state(path) if path.is_dir() else path
    if state is None:
        raise LogFormatError(f"{path}: {fmt.missing}")
    return {None: trl.read_trainer_state(state)}


def match_content(probe: Probe) -> bool:
    """A JSON document with `log_history`, or a list of records that look like TRL's (a step and an epoch)."""
    first = probe.first
    if probe.table != "json":
        return False
    if first is None:
        return True  # a pretty-printed document holding "log_history"
    if probe.json_list:
        return "step" in first and (
            "epoch" in first or any(str(k).startswith(("eval_", "train_", "rewards/")) for k in first)
        )
    return "log_history" in first


def find_runs(directory: Path, name: str) -> list[Source]:
    """The output directory's trainer state (its own or the latest checkpoint's)."""
    state = trl.find_state(directory)
    return [Source(state, "trl", name)] if state is not None else []


FORMAT = register_format(
    LogFormat(
        name="trl",
        description="TRL / transformers trainer_state.json (log_history)",
        rank=30,
        read=read,
        match_name=lambda path: path.name == trl.STATE,
        match_content=match_content,
        find_runs=find_runs,
        holds_run=lambda directory: trl.find_state(directory) is not None,
        dir_rank=20,
        marker=f"{trl.STATE}, checkpoint-*/{trl.STATE}",
        missing=f"no {trl.STATE} here or in checkpoint-*/",
        follow=lambda path: "state",
    )
)
