"""A run directory: resolved config, metrics appended and flushed every step, rollout dumps, checkpoints.

Layout (what `entropylab.logs.load(RUN_DIR)` and `entropylab diagnose RUN_DIR` read)::

    RUN_DIR/config.yaml                  the fully resolved configuration
    RUN_DIR/precision.json               the policy update's precision (and the probe's timings for "auto")
    RUN_DIR/metrics.jsonl                one JSON object per step, flushed and fsynced as written
    RUN_DIR/rollouts/step_000010.parquet per-token rollout dump (schema: entropylab.diagnostics.DUMP_COLUMNS)
    RUN_DIR/checkpoints/step_000020/     model + tokenizer (save_pretrained) and trainer_state.pt

Writes that must not be seen half-done (dumps, checkpoints) go to a temporary name and are renamed.
On resume, metric lines and dumps newer than the checkpoint are dropped, so nothing is lost or duplicated.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

CHECKPOINTS = "checkpoints"
ROLLOUTS = "rollouts"
METRICS = "metrics.jsonl"
CONFIG = "config.yaml"
PRECISION = "precision.json"  # the update precision used, and the timing probe's numbers when it chose


def _json_value(v: Any) -> Any:
    """Plain JSON for numbers: NaN and inf become null (JSON has no NaN), tensors and numpy scalars become floats."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class MetricsWriter:
    """Appends one JSON line per step to metrics.jsonl and makes it durable before returning."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def write(self, record: dict) -> None:
        """Append `record` as one line; flush and fsync so a crash right after loses nothing."""
        line = json.dumps({k: _json_value(v) for k, v in record.items()}, allow_nan=False)
        self._fh.write(line + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def read_metrics(path: Path) -> list[dict]:
    """Every complete metric line; a torn last line (crash or full disk mid-write) is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_metrics(path: Path, last_step: int) -> int:
    """Keep only metric lines with step <= last_step (rewritten atomically); returns how many were kept."""
    keep = [r for r in read_metrics(path) if int(r.get("step", -1)) <= last_step]
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
    os.replace(tmp, path)
    return len(keep)


def step_name(step: int) -> str:
    """The zero-padded name used for per-step files: step_000042."""
    return f"step_{step:06d}"


def write_dump(run_dir: Path, step: int, table) -> Path:
    """Write a per-token rollout dump (a pandas DataFrame or pyarrow Table) atomically as Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    out = run_dir / ROLLOUTS / f"{step_name(step)}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, out)
    return out


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINTS / step_name(step)


def save_checkpoint(run_dir: Path, step: int, model, tokenizer, state: dict, keep: int = 2) -> Path:
    """Save model, tokenizer and trainer state (optimizer, scheduler, RNG) for `step`; keep the newest `keep`."""
    import torch

    final = checkpoint_dir(run_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    from entropylab.models import quiet_progress

    with quiet_progress():
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    torch.save(state, tmp / "trainer_state.pt")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(checkpoint_dir(run_dir, old), ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[int]:
    """Steps of the complete checkpoints in a run, oldest first (half-written `.tmp` folders are ignored)."""
    root = run_dir / CHECKPOINTS
    if not root.exists():
        return []
    steps = []
    for d in root.iterdir():
        if d.is_dir() and d.name.startswith("step_") and not d.name.endswith(".tmp") and (d / "trainer_state.pt").exists():
            steps.append(int(d.name.split("_")[1]))
    return sorted(steps)


def prune_after(run_dir: Path, step: int) -> None:
    """Forget everything a crashed run wrote after `step`: metric lines, dumps, temporary files."""
    truncate_metrics(run_dir / METRICS, step)
    for dump in (run_dir / ROLLOUTS).glob("step_*.parquet*") if (run_dir / ROLLOUTS).exists() else []:
        name = dump.name.split(".")[0]
        if dump.name.endswith(".tmp") or int(name.split("_")[1]) > step:
            dump.unlink()
