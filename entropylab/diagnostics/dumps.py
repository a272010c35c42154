"""The per-token rollout dump: its schema, its validation, and a reader that loads only the columns asked for.

A run directory written by entropylab's trainer holds one Parquet file per dumped step::

    RUN_DIR/rollouts/step_000010.parquet     one row per response token of that step's rollouts

The columns are `DUMP_COLUMNS` (required) and `OPTIONAL_COLUMNS`. Extra columns are allowed and ignored.
Rows of one step may come in any order (the reader keeps file order; the statistics group by `step`).

Contract with the trainer, so that the theory check lines up: the dump of step N holds the rollouts of
step N with `logprob` from the policy *before* update N, and ``metrics.jsonl``'s ``entropy`` at step N is
the mean token entropy of that same policy; ``lr`` at step N is the learning rate of update N. Then
``entropy(N+1) - entropy(N)`` is the change caused by update N.

No torch here: dumps are read and analysed without the trainer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from entropylab.errors import EntropylabError, LogFormatError

ROLLOUTS_DIR = "rollouts"
METRICS_FILE = "metrics.jsonl"
_DUMP_NAME = re.compile(r"^step_(\d+)\.parquet$")

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


class DumpError(EntropylabError, ValueError):
    """A rollout dump that cannot be used: missing folder or files, missing columns, wrong dtypes."""


def dump_path(run_dir: str | Path, step: int) -> Path:
    """Where the dump of `step` lives: RUN_DIR/rollouts/step_000042.parquet."""
    return Path(run_dir) / ROLLOUTS_DIR / f"step_{int(step):06d}.parquet"


def dump_files(run_dir: str | Path) -> dict[int, Path]:
    """Every complete dump of a run, keyed by step in ascending order (temporary `.tmp` files are ignored)."""
    root = Path(run_dir) / ROLLOUTS_DIR
    if not root.is_dir():
        return {}
    found = {}
    for path in root.iterdir():
        m = _DUMP_NAME.match(path.name)
        if m and path.is_file():
            found[int(m.group(1))] = path
    return dict(sorted(found.items()))


def _column_kinds(obj) -> dict[str, str]:
    """Column name -> 'integer' | 'float' | 'string' | 'bool' | 'other' for a DataFrame or a pyarrow Schema."""
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


def validate_dump(df, path: str | Path | None = None, columns: Iterable[str] | None = None) -> None:
    """Raise `DumpError` naming the file and every missing or mistyped column.

    `df` is a DataFrame or a pyarrow Schema; `columns` restricts the check to those columns (default: all of
    `DUMP_COLUMNS`). Float columns accept integers; integer columns must be integers; `token` must be text.
    """
    where = f"rollout dump {path}" if path is not None else "rollout dump"
    wanted = list(DUMP_COLUMNS) if columns is None else list(dict.fromkeys(columns))
    kinds = _column_kinds(df)
    missing = [c for c in wanted if c not in kinds]
    if missing:
        raise DumpError(f"{where}: missing column(s) {', '.join(missing)} "
                        f"(has: {', '.join(kinds) or 'none'}; schema: entropylab.diagnostics.DUMP_COLUMNS)")
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
    """Validate and cast a DataFrame to the dump dtypes (what the trainer should hand to its Parquet writer)."""
    validate_dump(df, path)
    out = df.copy()
    for name, dtype in {**DUMP_COLUMNS, **OPTIONAL_COLUMNS}.items():
        if name in out.columns:
            out[name] = out[name].astype(object if dtype == "string" else dtype)
    return out


def read_dumps(run_dir: str | Path, steps: Iterable[int] | None = None,
               columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The rollout dumps of a run as one DataFrame, steps ascending, reading only `columns` (plus `step`).

    `steps=None` reads every dump; asking for a step that was not dumped is an error that lists the dumped
    steps. `columns=None` reads every column of each file. Each file's schema is validated before it is read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    run_dir = Path(run_dir)
    files = dump_files(run_dir)
    if not files:
        raise DumpError(f"no rollout dumps in {run_dir / ROLLOUTS_DIR} (expected files like step_000010.parquet)")
    if steps is not None:
        wanted = sorted({int(s) for s in steps})
        absent = [s for s in wanted if s not in files]
        if absent:
            raise DumpError(f"{run_dir / ROLLOUTS_DIR}: no dump for step(s) {absent}; dumped steps: {list(files)}")
        files = {s: files[s] for s in wanted}
    cols = None if columns is None else list(dict.fromkeys(["step", *columns]))
    tables = []
    for _step, path in files.items():
        try:
            schema = pq.read_schema(path)
        except Exception as exc:  # pyarrow raises several types for a corrupt or non-Parquet file
            raise DumpError(f"rollout dump {path}: cannot be read as Parquet ({exc})") from exc
        validate_dump(schema, path, columns=cols)
        tables.append(pq.read_table(path, columns=cols if cols is not None else None))
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    return table.to_pandas()


def read_metrics(run_dir: str | Path) -> pd.DataFrame:
    """RUN_DIR/metrics.jsonl as a DataFrame, one row per step (later lines win), or an empty frame if absent.

    Nulls become NaN; a torn last line (crash mid-write) is skipped; any other unparsable line is an error
    naming the file and line. Several lines for one step are merged (the last non-null value of each key).
    """
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return pd.DataFrame()
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    records = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            if i == len(lines):
                break
            raise LogFormatError(f"{path}:{i}: not a JSON object ({exc.msg})") from exc
        if not isinstance(rec, dict) or "step" not in rec:
            raise LogFormatError(f"{path}:{i}: expected a JSON object with a 'step' key")
        records.append(rec)
    if not records:
        return pd.DataFrame()
    df = pd.DataFrame.from_records(records)
    df["step"] = pd.to_numeric(df["step"], errors="coerce")
    df = df.dropna(subset=["step"])
    df["step"] = df["step"].astype(np.int64)
    return df.groupby("step", sort=True).last().reset_index()


def dump_columns(run_dir: str | Path) -> list[str]:
    """The columns present in every dump of a run (read from the Parquet footers only), in file order."""
    import pyarrow.parquet as pq

    common: list[str] | None = None
    for path in dump_files(run_dir).values():
        try:
            names = pq.read_schema(path).names
        except Exception as exc:  # pyarrow raises several types for a corrupt or non-Parquet file
            raise DumpError(f"rollout dump {path}: cannot be read as Parquet ({exc})") from exc
        common = names if common is None else [c for c in common if c in names]
    return common or []
