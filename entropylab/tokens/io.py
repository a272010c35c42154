"""Reading trainer rollout dumps and splitting token frames (profiles or dumps) into sequences."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from entropylab import rundir
from entropylab.tokens.errors import TokensError

__all__ = ["TokenSeq", "frame_kind", "read_rollouts", "sequence_keys", "sequences"]


def read_rollouts(
    path: str | Path, steps: Iterable[int] | None = None, columns: list[str] | None = None
) -> pd.DataFrame:
    """Rollout dump rows from a run directory, its `rollouts/` folder or one `step_*.parquet` file.

    Reading and schema checks are `entropylab.rundir.read_dumps`'s; rows come sorted by step,
    prompt_id, sample_id, position, which is the order the renderer needs.
    """
    p = Path(path)
    if p.is_file():
        df = pd.read_parquet(p, columns=columns)
        rundir.validate_dump(df, p, columns=columns)
    else:
        df = rundir.read_dumps(p.parent if p.name == rundir.ROLLOUTS else p, steps=steps, columns=columns)
    keys = [c for c in ("step", "prompt_id", "sample_id", "position") if c in df.columns]
    return df.sort_values(keys, kind="stable").reset_index(drop=True) if keys else df


def frame_kind(df: pd.DataFrame) -> str:
    """'dump' (step/prompt_id/sample_id), 'profile' (text_id) or 'tokens' (one sequence, no keys)."""
    if {"prompt_id", "sample_id"} <= set(df.columns):
        return "dump"
    if "text_id" in df.columns:
        return "profile"
    return "tokens"


def sequence_keys(df: pd.DataFrame) -> list[str]:
    """The columns that identify one sequence in a token frame."""
    kind = frame_kind(df)
    if kind == "dump":
        return [c for c in ("step", "prompt_id", "sample_id") if c in df.columns]
    return ["text_id"] if kind == "profile" else []


@dataclass
class TokenSeq:
    """One sequence of a token frame, ready to render."""

    key: tuple
    tokens: list[str]
    values: np.ndarray
    token_ids: np.ndarray | None = None
    entropy: np.ndarray | None = None
    probs: np.ndarray | None = None
    alternatives: list[list[tuple[str, float]]] | None = None


def _probs(g: pd.DataFrame) -> np.ndarray | None:
    if "prob" in g.columns:
        return g["prob"].to_numpy(np.float64)
    if "logprob" in g.columns:
        return np.exp(g["logprob"].to_numpy(np.float64))
    return None


def _alternatives(g: pd.DataFrame) -> list[list[tuple[str, float]]] | None:
    if not {"top_tokens", "top_probs"} <= set(g.columns):
        return None
    return [list(zip(map(str, t), map(float, p))) for t, p in zip(g["top_tokens"], g["top_probs"])]


def sequences(df: pd.DataFrame, value: str = "entropy") -> list[TokenSeq]:
    """Split a profile or dump frame into sequences (sorted by key, tokens by position) coloured by `value`."""
    if value not in df.columns:
        raise TokensError(f"no {value!r} column to colour by; the frame has {list(df.columns)}")
    if "token" not in df.columns and "token_id" not in df.columns:
        raise TokensError("the frame needs a 'token' or 'token_id' column")
    keys = sequence_keys(df)
    groups = df.groupby(keys, sort=True) if keys else [((), df)]
    out = []
    for key, g in groups:
        if "position" in g.columns:
            g = g.sort_values("position", kind="stable")
        tokens = g["token"].astype(str).tolist() if "token" in g.columns else [f"<{i}>" for i in g["token_id"]]
        out.append(
            TokenSeq(
                key=key if isinstance(key, tuple) else (key,),
                tokens=tokens,
                values=g[value].to_numpy(np.float64),
                token_ids=g["token_id"].to_numpy(np.int64) if "token_id" in g.columns else None,
                entropy=g["entropy"].to_numpy(np.float64) if "entropy" in g.columns else None,
                probs=_probs(g),
                alternatives=_alternatives(g),
            )
        )
    return out
