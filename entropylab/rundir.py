"""The run directory: its file names, the metrics log, the per-token rollout dumps and the checkpoints.

Layout (what the trainer writes, and `entropylab.logs.load(RUN_DIR)` and `entropylab diagnose RUN_DIR` read)::

    RUN_DIR/config.yaml                  the fully resolved configuration
    RUN_DIR/precision.json               the policy update's precision (and the probe's timings for "auto")
    RUN_DIR/metrics.jsonl                one JSON object per step, flushed and fsynced as written
    RUN_DIR/rollouts/step_000010.parquet per-token rollout dump, one row per response token (`DUMP_COLUMNS`)
    RUN_DIR/checkpoints/step_000020/     model + tokenizer (save_pretrained) and trainer_state.pt

Metric lines: a log still being written is normal input, so a last line cut mid-record (no newline and not
JSON) is skipped with a note; any other line that is not a JSON object is a `MetricsError` naming file:line.
Writes that must not be seen half-done (dumps, checkpoints, a rewritten log) go to a temporary name and are
renamed. On resume, metric lines and dumps newer than the checkpoint are dropped (`prune_after`).

Dumps: the columns are `DUMP_COLUMNS` (required) and `OPTIONAL_COLUMNS`; extra columns are allowed and
ignored, and rows of one step may come in any order. The dump of step N holds the rollouts of step N with
`logprob` from the policy *before* update N, and metrics.jsonl's ``entropy`` at step N is the mean token
entropy of that same policy; ``lr`` at step N is the learning rate of update N. Then
``entropy(N+1) - entropy(N)`` is the change caused by update N.

No torch here (a checkpoint's model is saved through its own `save_pretrained`); pandas and pyarrow are
imported only by the functions that read or write tables.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from entropylab.errors import EntropylabError, LogFormatError

if TYPE_CHECKING:
    import pandas as pd

CONFIG = "config.yaml"
PRECISION = "precision.json"  # the update precision used, and the timing probe's numbers when it chose
METRICS = "metrics.jsonl"
ROLLOUTS = "rollouts"
CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.pt"  # optimizer, scheduler and step inside a checkpoint
_STEP = re.compile(r"^step_(\d+)$")

#: Required columns of a rollout dump and the dtype the trainer writes (one row per response token).
DUMP_COLUMNS: dict[str, str] = {
    "step": "int64",  # training step of the rollout (the policy before that step's update)
    "prompt_id": "int64",  # prompt index within the step
    "sample_id": "int64",  # response index within the prompt's group (0..G-1)
    "position": "int64",  # 0-based token position within the response
    "token_id": "int64",  # vocabulary id of the sampled token
    "token": "string",  # decoded token text
    "logprob": "float32",  # log pi(token) under the rollout policy at temperature 1 (nats)
    "old_logprob": "float32",  # log-prob under the behaviour (old) policy used in the PPO ratio
    "entropy": "float32",  # entropy of the full next-token distribution at this position (nats)
    "advantage": "float32",  # the token's advantage (GRPO: its response's group-normalised reward)
    "reward": "float32",  # the response's scalar reward (repeated on each of its tokens)
    "covariance": "float32",  # the trainer's own centred product (A - mean A)(logp - mean logp)
}

#: Optional columns: `micro_batch` (int) enables micro-batch centring (scope "micro").
OPTIONAL_COLUMNS: dict[str, str] = {"micro_batch": "int64"}

_KIND = {"int64": "integer", "float32": "float", "string": "string"}


class MetricsError(LogFormatError):
    """A metrics log with a line that is not a JSON object before its last line (the message names file:line)."""


class DumpError(EntropylabError, ValueError):
    """A rollout dump that cannot be used: missing folder or files, missing columns, wrong dtypes."""


# --------------------------------------------------------------------------- names


def step_name(step: int) -> str:
    """The zero-padded name of a step's files: step_000042."""
    return f"step_{int(step):06d}"


def step_of(name: str) -> int | None:
    """The step a per-step name stands for (`step_000042`, `step_000042.parquet`), None for any other name."""
    stem, _, suffix = name.partition(".")
    m = _STEP.match(stem)
    return int(m.group(1)) if m and suffix in ("", "parquet") else None


# --------------------------------------------------------------------------- metrics


def _json_value(v: Any) -> Any:
    """Plain JSON for numbers: NaN and inf become null (JSON has no NaN), tensors and numpy scalars floats."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _metrics_line(record: dict) -> str:
    return json.dumps({k: _json_value(v) for k, v in record.items()}, allow_nan=False) + "\n"


class MetricsWriter:
    """Appends one JSON line per record to RUN_DIR/metrics.jsonl and makes it durable before returning."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / METRICS
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def write(self, record: dict) -> None:
        """Append `record` as one line; flush and fsync so a crash right after loses nothing."""
        self._fh.write(_metrics_line(record))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Close the file (every record is already on disk)."""
        self._fh.close()


def write_metrics(run_dir: str | Path, records: Iterable[dict]) -> Path:
    """Write RUN_DIR/metrics.jsonl whole from `records` (atomically: a reader sees the old or the new file)."""
    path = Path(run_dir) / METRICS
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(_metrics_line(r) for r in records), encoding="utf-8")
    os.replace(tmp, path)
    return path


def parse_metrics(text: str, path: str | Path, *, first_line: int = 1) -> tuple[list[tuple[int, dict]], list[str]]:
    """(line number, record) of each metric line of `text` (the content of `path` from line `first_line`), and
    notes on what was skipped. Blank lines are skipped; a last line without its newline that is not JSON (a
    record still being written) is skipped with a note; any other line that is not a JSON object is a
    `MetricsError` naming path:line."""
    lines = text.split("\n")
    records: list[tuple[int, dict]] = []
    notes: list[str] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        number = first_line + i
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if i == len(lines) - 1:
                notes.append(f"{path}: the last line has no newline (a log still being written?): skipped")
                break
            raise MetricsError(
                f"{path}:{number}: not JSON ({exc.msg}); only a log's last line may be incomplete"
            ) from None
        if not isinstance(record, dict):
            raise MetricsError(f"{path}:{number}: not a JSON object")
        records.append((number, record))
    return records, notes


def _metric_lines(run_dir: str | Path) -> list[tuple[int, dict]]:
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    return parse_metrics(path.read_text(encoding="utf-8", errors="replace"), path)[0]


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of RUN_DIR/metrics.jsonl in file order (empty when there is none); see `parse_metrics`."""
    return [record for _, record in _metric_lines(run_dir)]


def metrics_frame(run_dir: str | Path) -> pd.DataFrame:
    """RUN_DIR/metrics.jsonl as a DataFrame, one row per step (ascending), or an empty frame if absent.

    Nulls become NaN; several lines for one step are merged (the last non-null value of each key). Lines are
    read by `parse_metrics`; a record without a `step` key is a `MetricsError` naming file:line.
    """
    import numpy as np
    import pandas as pd

    lines = _metric_lines(run_dir)
    for number, record in lines:
        if "step" not in record:
            raise MetricsError(f"{Path(run_dir) / METRICS}:{number}: expected a JSON object with a 'step' key")
    if not lines:
        return pd.DataFrame()
    df = pd.DataFrame.from_records([record for _, record in lines])
    df["step"] = pd.to_numeric(df["step"], errors="coerce")
    df = df.dropna(subset=["step"])
    df["step"] = df["step"].astype(np.int64)
    return df.groupby("step", sort=True).last().reset_index()


def truncate_metrics(run_dir: str | Path, last_step: int) -> int:
    """Keep only the metric lines with step <= last_step (rewritten atomically); returns how many were kept."""
    keep = [r for r in read_metrics(run_dir) if int(r.get("step", -1)) <= last_step]
    write_metrics(run_dir, keep)
    return len(keep)


# --------------------------------------------------------------------------- rollout dumps


def dump_path(run_dir: str | Path, step: int) -> Path:
    """Where the dump of `step` lives: RUN_DIR/rollouts/step_000042.parquet."""
    return Path(run_dir) / ROLLOUTS / f"{step_name(step)}.parquet"


def dump_files(run_dir: str | Path) -> dict[int, Path]:
    """Every complete dump of a run, keyed by step in ascending order (temporary `.tmp` files are ignored)."""
    root = Path(run_dir) / ROLLOUTS
    if not root.is_dir():
        return {}
    found = {}
    for path in root.iterdir():
        step = step_of(path.name)
        if step is not None and path.suffix == ".parquet" and path.is_file():
            found[step] = path
    return dict(sorted(found.items()))


def write_dump(run_dir: str | Path, step: int, table: Any) -> Path:
    """Write the dump of `step` (a pandas DataFrame or pyarrow Table) atomically as Parquet; returns its path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    out = dump_path(run_dir, step)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, out)
    return out


def _column_kinds(obj: Any) -> dict[str, str]:
    """Column name -> 'integer' | 'float' | 'string' | 'bool' | 'other' for a DataFrame or a pyarrow Schema."""
    import pandas as pd
    import pyarrow as pa

    kinds = {}
    if isinstance(obj, pa.Schema):
        for field in obj:
            t = field.type
            if pa.types.is_integer(t):
                kinds[field.name] = "integer"
            elif pa.types.is_floating(t):
                kinds[field.name] = "float"
            elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
                kinds[field.name] = "string"
            elif pa.types.is_boolean(t):
                kinds[field.name] = "bool"
            else:
                kinds[field.name] = "other"
        return kinds
    for name, dtype in obj.dtypes.items():
        if pd.api.types.is_bool_dtype(dtype):
            kinds[name] = "bool"
        elif pd.api.types.is_integer_dtype(dtype):
            kinds[name] = "integer"
        elif pd.api.types.is_float_dtype(dtype):
            kinds[name] = "float"
        elif pd.api.types.is_string_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
            kinds[name] = "string"
        else:
            kinds[name] = "other"
    return kinds


def validate_dump(df: Any, path: str | Path | None = None, columns: Iterable[str] | None = None) -> None:
    """Raise `DumpError` naming the file and every missing or mistyped column.

    `df` is a DataFrame or a pyarrow Schema; `columns` restricts the check to those columns (default: all of
    `DUMP_COLUMNS`). Float columns accept integers; integer columns must be integers; `token` must be text.
    """
    where = f"rollout dump {path}" if path is not None else "rollout dump"
    wanted = list(DUMP_COLUMNS) if columns is None else list(dict.fromkeys(columns))
    kinds = _column_kinds(df)
    missing = [c for c in wanted if c not in kinds]
    if missing:
        raise DumpError(
            f"{where}: missing column(s) {', '.join(missing)} "
            f"(has: {', '.join(kinds) or 'none'}; schema: entropylab.rundir.DUMP_COLUMNS)"
        )
    schema = {**DUMP_COLUMNS, **OPTIONAL_COLUMNS}
    wrong = []
    for c in wanted:
        need = _KIND.get(schema.get(c, ""))
        got = kinds[c]
        ok = need is None or got == need or (need == "float" and got == "integer")
        if not ok:
            wrong.append(f"{c} ({got}, expected {need})")
    if wrong:
        raise DumpError(f"{where}: column(s) with the wrong type: {', '.join(wrong)}")


def coerce_dump(df: pd.DataFrame, path: str | Path | None = None) -> pd.DataFrame:
    """Validate and cast a DataFrame to the dump dtypes (what `write_dump` should be handed)."""
    validate_dump(df, path)
    out = df.copy()
    for name, dtype in {**DUMP_COLUMNS, **OPTIONAL_COLUMNS}.items():
        if name in out.columns:
            out[name] = out[name].astype(object if dtype == "string" else dtype)
    return out


def _dump_schema(path: Path) -> Any:
    """The pyarrow schema of a dump file; a `DumpError` when it is not readable Parquet."""
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt or non-Parquet file
        raise DumpError(f"rollout dump {path}: cannot be read as Parquet ({exc})") from exc


def read_dumps(
    run_dir: str | Path, steps: Iterable[int] | None = None, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The rollout dumps of a run as one DataFrame, steps ascending, reading only `columns` (plus `step`).

    `steps=None` reads every dump; asking for a step that was not dumped is an error that lists the dumped
    steps. `columns=None` reads every column of each file. Each file's schema is validated before it is read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    run_dir = Path(run_dir)
    files = dump_files(run_dir)
    if not files:
        raise DumpError(f"no rollout dumps in {run_dir / ROLLOUTS} (expected files like {step_name(10)}.parquet)")
    if steps is not None:
        wanted = sorted({int(s) for s in steps})
        absent = [s for s in wanted if s not in files]
        if absent:
            raise DumpError(f"{run_dir / ROLLOUTS}: no dump for step(s) {absent}; dumped steps: {list(files)}")
        files = {s: files[s] for s in wanted}
    cols = None if columns is None else list(dict.fromkeys(["step", *columns]))
    tables = []
    for path in files.values():
        validate_dump(_dump_schema(path), path, columns=cols)
        tables.append(pq.read_table(path, columns=cols))
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    return table.to_pandas()


def dump_columns(run_dir: str | Path) -> list[str]:
    """The columns present in every dump of a run (read from the Parquet footers only), in file order."""
    common: list[str] | None = None
    for path in dump_files(run_dir).values():
        names = _dump_schema(path).names
        common = names if common is None else [c for c in common if c in names]
    return common or []


# --------------------------------------------------------------------------- checkpoints


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    """Where the checkpoint of `step` lives: RUN_DIR/checkpoints/step_000020."""
    return Path(run_dir) / CHECKPOINTS / step_name(step)


def list_checkpoints(run_dir: str | Path) -> list[int]:
    """Steps of the complete checkpoints in a run, oldest first (half-written `.tmp` folders are ignored)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    steps = []
    for d in root.iterdir():
        step = step_of(d.name)
        if step is not None and d.is_dir() and (d / TRAINER_STATE).exists():
            steps.append(step)
    return sorted(steps)


def latest_checkpoint(run_dir: str | Path) -> Path:
    """The newest complete checkpoint of a run (a directory `entropylab.models.load_model` accepts)."""
    steps = list_checkpoints(run_dir)
    if not steps:
        raise EntropylabError(f"{run_dir}: no checkpoint found")
    return checkpoint_dir(run_dir, steps[-1])


def save_checkpoint(
    run_dir: str | Path, step: int, model: Any, tokenizer: Any, write_state: Callable[[Path], None], keep: int = 2
) -> Path:
    """Save `model` and `tokenizer` (their `save_pretrained`) and the trainer state (`write_state(path)` writes
    RUN_DIR/checkpoints/step_N/trainer_state.pt) for `step`, atomically; keep the newest `keep` checkpoints."""
    final = checkpoint_dir(run_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    write_state(tmp / TRAINER_STATE)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(checkpoint_dir(run_dir, old), ignore_errors=True)
    return final


def prune_after(run_dir: str | Path, step: int) -> None:
    """Forget everything a crashed run wrote after `step`: metric lines, dumps, temporary dump files."""
    truncate_metrics(run_dir, step)
    root = Path(run_dir) / ROLLOUTS
    for dump in root.glob("step_*.parquet*") if root.is_dir() else []:
        dumped = step_of(dump.name)
        if dump.name.endswith(".tmp") or (dumped is not None and dumped > step):
            dump.unlink()
