"""TensorBoard event files (`events.out.tfevents.*`): a file, a run directory, or a tree of them."""

from __future__ import annotations

from pathlib import Path

from entropylab.logs.formats import LogFormat, Source, register_format
from entropylab.logs.tabular import Runs
from entropylab.logs.tensorboard import EVENTS, event_files, read_events


def read(path: Path, fmt: LogFormat, *, step_key: str | None = None, run_key: str | None = None) -> Runs:
    """Every scalar of the event file(s) (tensorboard is imported here only)."""
    return {None: read_events(path)}


def find_runs(directory: Path, name: str) -> list[Source]:
    """One source per directory holding event files (a tree of runs gives several, named by their path)."""
    dirs = sorted({f.parent for f in event_files(directory)})
    if len(dirs) == 1:
        return [Source(dirs[0], "tensorboard", name)]
    return [Source(d, "tensorboard", f"{name}/{d.relative_to(directory).as_posix()}") for d in dirs]


FORMAT = register_format(
    LogFormat(
        name="tensorboard",
        description="TensorBoard event files",
        rank=50,
        read=read,
        match_name=lambda path: path.name.startswith(EVENTS),
        find_runs=find_runs,
        holds_run=lambda directory: any(directory.glob(f"{EVENTS}*")),
        dir_rank=30,
        marker=f"{EVENTS}*",
        missing=f"no TensorBoard event files ({EVENTS}*) in or below this directory",
        follow=lambda path: "events",
    )
)
