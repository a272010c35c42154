"""`load` (any log -> one canonical DataFrame) and `points` (the law's fit points)."""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from entropylab.errors import LogFormatError
from entropylab.logs import aliases, detect, tabular
from entropylab.logs._canon import canonical_run
from entropylab.logs.formats import get_format

if TYPE_CHECKING:
    import pandas as pd

PathLike = str | os.PathLike


class LogWarning(UserWarning):
    """Something in a log was odd but readable (restarted run, dropped values, no entropy key)."""


def _read(src: detect.Source, step_key: str | None = None, run_key: str | None = None) -> tabular.Runs:
    """Run the reader of one source's format; tabular files may hold several runs."""
    fmt = get_format(src.format)
    return fmt.read(src.path, fmt, step_key=step_key, run_key=run_key)


def _names(entries: list[tuple[detect.Source, str | None]], run: str | Sequence[str] | None) -> list[str]:
    """Unique run names: the given ones, else file stems / directory names (parent-qualified, then numbered)."""
    if run is not None:
        if isinstance(run, str):
            return [run] if len(entries) == 1 else [f"{run}-{i}" for i in range(1, len(entries) + 1)]
        if len(run) != len(entries):
            raise LogFormatError(f"run= gives {len(run)} names for {len(entries)} runs")
        names = [str(r) for r in run]
        if len(set(names)) != len(names):
            raise LogFormatError(f"run= names are not unique: {names}")
        return names
    names = [inner if inner is not None else src.name for src, inner in entries]
    counts = Counter(names)
    for i, (src, inner) in enumerate(entries):
        if counts[names[i]] > 1 and inner is None:
            here = src.path.resolve()
            named = next((a for a in (here, *here.parents) if a.name == src.name), here)  # what gave the name
            if named.parent.name:
                names[i] = f"{named.parent.name}/{names[i]}"
    seen: Counter[str] = Counter()
    for i, name in enumerate(names):
        seen[name] += 1
        if seen[name] > 1:
            names[i] = f"{name}-{seen[name]}"
    return names


def load(
    path_or_paths: PathLike | Sequence[PathLike],
    format: str = "auto",
    *,
    entropy_key: str | None = None,
    score_key: str | None = None,
    run: str | Sequence[str] | None = None,
    step_key: str | None = None,
    run_key: str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Read training logs into one DataFrame: one row per (run, step), sorted by run then step.

    `path_or_paths`: log files, run directories (entropylab `metrics.jsonl`, TRL output dirs, TensorBoard log
    dirs, or a folder of logs), or a list of them. `format`: "auto" or one of `FORMATS`. `entropy_key` /
    `score_key` name an original key (or a canonical column) and win over the alias table. `run`: the run
    name (several runs: numbered), or one name per run. `step_key` names the step field of a tabular log
    (default: the first of `aliases.STEP_KEYS` present); `run_key` the column that tells several runs of one
    table apart (default: the first of `aliases.RUN_KEYS` holding text). Columns: `run`, `step`, `entropy`, `reward` (training
    reward), validation metrics as `val/<name>`, then every other numeric metric under its original key.
    `df.attrs["entropylab"][run]` says which keys were used and which score is the default.
    A step without entropy (verl's validation before training at step 0) stays a row with NaN entropy.
    Odd but readable input (restarts, nan/inf values, no entropy key) gives a `LogWarning`; unreadable input a
    `LogFormatError` naming the file.
    """
    paths = [path_or_paths] if isinstance(path_or_paths, (str, os.PathLike)) else list(path_or_paths)
    if not paths:
        raise LogFormatError("no log given")
    srcs = [s for p in paths for s in detect.sources(Path(p), format)]
    if progress:
        from entropylab.progress import bar as progress_bar

        srcs_iter: Any = progress_bar(srcs, desc="reading logs", unit="log")
    else:
        srcs_iter = srcs
    read: list[tuple[detect.Source, str | None, Any]] = []
    for src in srcs_iter:
        for inner, raw in _read(src, step_key, run_key).items():
            read.append((src, inner, raw))
    return assemble(read, run, entropy_key=entropy_key, score_key=score_key, stacklevel=3)


def assemble(
    read: list[tuple[detect.Source, str | None, Any]],
    run: str | Sequence[str] | None = None,
    *,
    entropy_key: str | None = None,
    score_key: str | None = None,
    warn: bool = True,
    stacklevel: int = 2,
) -> pd.DataFrame:
    """The canonical DataFrame of raw runs `(source, inner name, Raw)`, as `load` returns it (`watch` too)."""
    import pandas as pd

    names = _names([(s, i) for s, i, _ in read], run)
    frames, meta = [], {}
    for (src, _, raw), name in zip(read, names):
        frame, info = canonical_run(raw, str(src.path), src.format, entropy_key=entropy_key, score_key=score_key)
        if warn:
            for message in info["warnings"]:
                warnings.warn(message, LogWarning, stacklevel=stacklevel)
        frame.insert(0, "run", name)
        frames.append(frame)
        meta[name] = info
    df = pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]
    df = df[_column_order(list(df.columns))]
    df = df.sort_values(["run", "step"], kind="stable").reset_index(drop=True)
    df["run"] = df["run"].astype(str)
    df.attrs["entropylab"] = meta
    return df


def _column_order(columns: list[str]) -> list[str]:
    head = ["run", "step", "entropy", "reward"]
    vals = [c for c in columns if aliases.is_validation(c)]
    return head + vals + [c for c in columns if c not in head and c not in vals]


def _score_column(df: pd.DataFrame, run: str, info: dict, score: str | None) -> str:
    """The column holding the score of one run: the given name (column or original key) or the default."""
    name = score if score is not None else info.get("score")
    where = f"run {run!r}" + (f" ({info['path']})" if info.get("path") else "")
    if name is None:
        raise LogFormatError(
            f"{where}: no score: no validation metric and no training reward found; pass score= (or score_key= to load)"
        )
    if name in df.columns:
        return name
    aliases_of = {orig: canon for canon, orig in info.get("val_keys", {}).items()}
    aliases_of.update({info.get("reward_key"): "reward", info.get("entropy_key"): "entropy"})
    if name in aliases_of and aliases_of[name] in df.columns:
        return aliases_of[name]
    canon = aliases.canonical_key(name)
    if canon in df.columns:
        return canon
    import difflib

    close = difflib.get_close_matches(name, [str(c) for c in df.columns], n=5, cutoff=0.5)
    raise LogFormatError(
        f"{where}: no score column {name!r}" + (f"; close matches: {', '.join(close)}" if close else "")
    )


def concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Frames of `load` as one, in their order, keeping every run's info in `attrs["entropylab"]` (pandas drops
    attrs that differ between the frames it joins)."""
    import pandas as pd

    out = pd.concat(frames, ignore_index=True, sort=False)
    out.attrs["entropylab"] = {run: info for f in frames for run, info in f.attrs.get("entropylab", {}).items()}
    return out


def points(
    df: pd.DataFrame, *, score: str | None = None, entropy: str | None = None, initial: bool = False
) -> pd.DataFrame:
    """The law's fit points: columns `run`, `step`, `entropy`, `score`, one row per step where both are finite.

    `score` names a column (or an original key) for every run; by default each run's chosen score in
    `df.attrs["entropylab"]` (its first validation metric, else its training reward). Validation points are
    joined to the entropy of the validation samples themselves when the log has it (`val/entropy`, which
    entropylab's trainer writes; the run's `val_entropy` in attrs), else to the training entropy measured at the
    same step; `entropy` names the column instead. Step 0 is validation before training: it has no entropy
    in current verl, and in old verl (which numbers its first update 0 too) the reference fit leaves it out, so
    it is dropped unless `initial=True`. `attrs["score"]` maps each run to its score column.
    """
    import pandas as pd

    if "run" not in df.columns or "step" not in df.columns:
        raise LogFormatError("points() needs the DataFrame of entropylab.logs.load() (columns 'run' and 'step')")
    meta = df.attrs.get("entropylab", {})
    parts, chosen = [], {}
    for run, group in df.groupby("run", sort=False):
        part, column = run_points(
            group, str(run), meta.get(str(run), {}), score=score, entropy=entropy, initial=initial
        )
        parts.append(part)
        chosen[str(run)] = column
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["run", "step", "entropy", "score"])
    out["run"] = out["run"].astype(str)
    out.attrs["score"] = chosen
    out.attrs["entropylab"] = meta
    return out


def paired_entropy(group: pd.DataFrame, info: dict, score: str) -> str:
    """The entropy column a run's `score` is paired with: the validation samples' own entropy (`val_entropy` in
    the run's info) for a validation score when the log has it, else the training entropy, "entropy"."""
    paired = info.get("val_entropy")
    if paired and paired in group.columns and aliases.is_validation(score) and score != paired:
        return paired
    return "entropy"


def run_points(
    group: pd.DataFrame,
    run: str,
    info: dict,
    *,
    score: str | None = None,
    entropy: str | None = None,
    initial: bool = False,
) -> tuple[pd.DataFrame, str]:
    """The fit points of one run's rows and the score column used (see `points`)."""
    import numpy as np
    import pandas as pd

    where = f"run {run!r}" + (f" ({info['path']})" if info.get("path") else "")
    column = _score_column(group, run, info, score)
    entropy = entropy or paired_entropy(group, info, column)
    if entropy not in group.columns or not group[entropy].notna().any():
        keys = [c for c in group.columns if c not in ("run", "step") and group[c].notna().any()]
        raise LogFormatError(
            f"{where}: no entropy values (looked for {', '.join(aliases.ENTROPY_KEYS)}); "
            f"keys present: {', '.join(keys[:30]) or 'none'}; pass entropy_key= to load"
        )
    h = group[entropy].to_numpy(dtype=float)
    r = group[column].to_numpy(dtype=float)
    steps = group["step"].to_numpy()
    keep = np.isfinite(h) & np.isfinite(r) & ((steps != 0) | initial)
    if not keep.any():
        raise LogFormatError(
            f"{where}: no step has both an entropy and a {column!r} value" + ("" if initial else " (step 0 left out)")
        )
    return pd.DataFrame({"run": run, "step": steps[keep], "entropy": h[keep], "score": r[keep]}), column
