"""entropylab's own run directories (`metrics.jsonl`, written by `entropylab train`; see `entropylab.rundir`)."""

from __future__ import annotations

from pathlib import Path

from entropylab.logs.formats import LogFormat, Source, follow_lines, register_format
from entropylab.logs.tabular import Runs, read_table
from entropylab.rundir import METRICS, parse_metrics


def read(path: Path, fmt: LogFormat, *, step_key: str | None = None, run_key: str | None = None) -> Runs:
    """The metrics of a run directory (or of its `metrics.jsonl`)."""
    return read_table(
        path / METRICS if path.is_dir() else path, fmt, container="json", step_key=step_key, run_key=run_key
    )


def find_runs(directory: Path, name: str) -> list[Source]:
    """The run directory's `metrics.jsonl`."""
    return [Source(directory / METRICS, "entropylab", name)] if (directory / METRICS).is_file() else []


# Its own entropy key comes first: entropylab's trainer logs the paper's H (per-response mean) as `entropy` and the
# loss's token-mean entropy under the updating policy as `actor/entropy`. Its run directories are looked for first
# in a directory. Its lines follow the run directory's rule (`entropylab.rundir.parse_metrics`): a torn last line
# is a note, any other line that is not a JSON object an error naming file:line.
FORMAT = register_format(
    LogFormat(
        name="entropylab",
        description="entropylab run directory (metrics.jsonl)",
        rank=100,
        read=read,
        match_name=lambda path: path.name == METRICS,
        find_runs=find_runs,
        holds_run=lambda directory: (directory / METRICS).is_file(),
        dir_rank=10,
        marker=METRICS,
        missing=f"no {METRICS} in this directory (an entropylab run directory has one)",
        follow=follow_lines,
        entropy_key="entropy",
        parse_lines=parse_metrics,
    )
)
