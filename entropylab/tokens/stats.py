"""Token-entropy statistics (pure numpy / pandas) over an entropy profile or a trainer rollout dump.

Both frames share the columns these functions read: `entropy` and `token` (profiles also have `text_id`,
dumps `step`, `prompt_id`, `sample_id`; both `position`). NaN entropies (a profile's first token) are ignored.
The high-entropy ("forking") set is the top `rho` = 20% of tokens: entropy >= the 80th percentile, as in
Wang et al. 2025 (Beyond the 80/20 rule).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from entropylab.cutoff import top_cutoff
from entropylab.tokens.errors import TokensError

__all__ = [
    "as_entropy",
    "entropy_cutoff",
    "entropy_stats",
    "forking_tokens",
    "high_entropy_mask",
    "low_entropy_tokens",
    "top_position_overlap",
    "visible",
]

#: Key columns that identify a token position, per frame kind (profile, rollout dump).
KEYS = (("text_id", "position"), ("step", "prompt_id", "sample_id", "position"))


def as_entropy(data, column: str = "entropy") -> np.ndarray:
    """Finite entropies as a flat float array from an array-like, a Series or a frame's `column`."""
    if isinstance(data, pd.DataFrame):
        if column not in data.columns:
            raise TokensError(f"no {column!r} column; the frame has {list(data.columns)}")
        data = data[column]
    arr = np.asarray(data, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def entropy_cutoff(entropy, rho: float = 0.2) -> float:
    """The top-`rho` cutoff (:func:`entropylab.cutoff.top_cutoff`): tokens >= it are the forking tokens."""
    if not 0.0 < rho < 1.0:
        raise TokensError(f"rho must be in (0, 1), got {rho}")
    arr = as_entropy(entropy)
    if arr.size == 0:
        raise TokensError("no finite entropy values")
    return top_cutoff(arr, rho)


def high_entropy_mask(entropy, rho: float = 0.2, cutoff: float | None = None) -> np.ndarray:
    """Boolean mask (same shape as `entropy`, False at NaN) of values >= the cutoff (default: top `rho`)."""
    values = np.asarray(entropy.get("entropy") if isinstance(entropy, pd.DataFrame) else entropy, dtype=np.float64)
    cut = entropy_cutoff(values, rho) if cutoff is None else float(cutoff)
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values >= cut)


def entropy_stats(entropy, *, rho: float = 0.2, low: float = 0.01) -> dict[str, float]:
    """Summary of a token-entropy distribution (nats).

    Keys: n, mean, std, p50, p80, p95, max, frac_below (share of tokens with entropy < `low`), low (the
    threshold), cutoff (the top-`rho` cutoff, the forking-token threshold), rho.
    """
    arr = as_entropy(entropy)
    if arr.size == 0:
        raise TokensError("entropy_stats: no finite entropy values")
    p50, p80, p95 = np.quantile(arr, [0.5, 0.8, 0.95])
    return {
        "n": int(arr.size),
        "mean": float(arr.mean()),
        "std": float(arr.std()),
        "p50": float(p50),
        "p80": float(p80),
        "p95": float(p95),
        "max": float(arr.max()),
        "frac_below": float((arr < low).mean()),
        "low": float(low),
        "cutoff": entropy_cutoff(arr, rho),
        "rho": float(rho),
    }


def visible(token: str) -> str:
    """A token string with whitespace made visible: space ␣, newline ↵, tab →; empty string ∅."""
    if token == "":
        return "∅"
    return token.replace(" ", "␣").replace("\n", "↵").replace("\t", "→").replace("\r", "␍")


def _frame(df: pd.DataFrame, by: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TokensError(f"expected a DataFrame with 'entropy' and {by!r} columns, got {type(df).__name__}")
    missing = [c for c in ("entropy", by) if c not in df.columns]
    if missing:
        raise TokensError(f"the frame lacks column(s) {missing}; it has {list(df.columns)}")
    out = df[np.isfinite(df["entropy"].to_numpy(dtype=np.float64))]
    if out.empty:
        raise TokensError("no tokens with a finite entropy")
    return out


def _token_table(df: pd.DataFrame, selected: np.ndarray, by: str, normalize: bool, share: str) -> pd.DataFrame:
    keys = df[by].astype(str)
    if normalize:
        keys = keys.str.strip().str.lower()
    frame = pd.DataFrame({"token": keys.to_numpy(), "entropy": df["entropy"].to_numpy(np.float64), "sel": selected})
    grouped = frame.groupby("token", sort=False)
    total = grouped.size()
    sel = frame[frame["sel"]].groupby("token", sort=False)
    table = pd.DataFrame(
        {
            "count": sel.size(),
            "occurrences": total,
            "mean_entropy": sel["entropy"].mean(),
            "mean_entropy_all": grouped["entropy"].mean(),
        }
    ).dropna(subset=["count"])
    table["count"] = table["count"].astype(np.int64)
    table[share] = table["count"] / table["occurrences"]
    table = table.reset_index(names="token")
    table.insert(1, "visible", table["token"].map(visible))
    return table[["token", "visible", "count", "occurrences", share, "mean_entropy", "mean_entropy_all"]]


def _side_table(
    df: pd.DataFrame,
    cutoff: float | None,
    *,
    rho: float,
    min_count: int,
    by: str,
    normalize: bool,
    top: int | None,
    high: bool,
) -> pd.DataFrame:
    """Tokens on one side of the entropy cutoff (>= for high, < for low), counted, filtered and sorted."""
    data = _frame(df, by)
    cut = entropy_cutoff(data["entropy"], rho) if cutoff is None else float(cutoff)
    h = data["entropy"].to_numpy(np.float64)
    table = _token_table(data, h >= cut if high else h < cut, by, normalize, "share_high" if high else "share_low")
    table = table[table["count"] >= min_count].sort_values(["count", "mean_entropy"], ascending=[False, not high])
    table = table.reset_index(drop=True)
    table = table.head(top) if top else table
    table.attrs["cutoff"] = cut
    return table


def forking_tokens(
    df: pd.DataFrame,
    cutoff: float | None = None,
    *,
    rho: float = 0.2,
    min_count: int = 2,
    by: str = "token",
    normalize: bool = False,
    top: int | None = None,
) -> pd.DataFrame:
    """High-entropy tokens (entropy >= `cutoff`, default the top-`rho` cutoff) aggregated by token string.

    Columns: token, visible (whitespace shown), count (high-entropy occurrences), occurrences (all), share_high
    (count / occurrences), mean_entropy (over the high-entropy occurrences), mean_entropy_all. Tokens with
    fewer than `min_count` high-entropy occurrences are dropped; sorted by count, then mean entropy.
    `normalize` strips and lower-cases token strings first (" Wait" and "wait" pool). `attrs["cutoff"]`
    holds the cutoff used.
    """
    return _side_table(df, cutoff, rho=rho, min_count=min_count, by=by, normalize=normalize, top=top, high=True)


def low_entropy_tokens(
    df: pd.DataFrame,
    cutoff: float | None = None,
    *,
    rho: float = 0.2,
    min_count: int = 2,
    by: str = "token",
    normalize: bool = False,
    top: int | None = None,
) -> pd.DataFrame:
    """Tokens below the cutoff (the bottom 1 - `rho`), aggregated by token string: the mirror of `forking_tokens`.

    Columns as `forking_tokens` with share_low; mean_entropy is over the low-entropy occurrences. Sorted by
    count (descending), then mean entropy (ascending).
    """
    return _side_table(df, cutoff, rho=rho, min_count=min_count, by=by, normalize=normalize, top=top, high=False)


def _aligned(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Two entropy arrays over the same positions (frames are joined on their key columns)."""
    if isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame):
        keys = next((list(k) for k in KEYS if all(c in a.columns and c in b.columns for c in k)), None)
        if keys is None:
            raise TokensError(f"cannot align the frames: no shared key columns among {KEYS}")
        joined = a[[*keys, "entropy"]].merge(b[[*keys, "entropy"]], on=keys, suffixes=("_a", "_b"))
        return joined["entropy_a"].to_numpy(np.float64), joined["entropy_b"].to_numpy(np.float64)
    xa = np.asarray(a, dtype=np.float64)
    xb = np.asarray(b, dtype=np.float64)
    if xa.shape != xb.shape:
        raise TokensError(f"entropy arrays differ in shape: {xa.shape} vs {xb.shape}")
    return xa.ravel(), xb.ravel()


def _top_set(x: np.ndarray, rho: float) -> set[int]:
    k = max(1, math.ceil(x.size * rho))
    return set(np.argsort(-x, kind="stable")[:k].tolist())


def top_position_overlap(entropy_a, entropy_b, rho: float = 0.2) -> float:
    """|top_a ∩ top_b| / |top_a|: overlap of the top-`rho` highest-entropy positions of two models.

    `entropy_a`/`entropy_b`: same-shape arrays (e.g. [sequences, positions], NaN for padding) of the two
    models' entropies on the same tokens, or two frames joined on their keys. Each top set is the
    ceil(rho * N) positions with the largest entropy among the N positions finite in both (the paper's code
    convention). Wang et al. report > 0.86 between a base model and its RL-trained version.
    """
    if not 0.0 < rho <= 1.0:
        raise TokensError(f"rho must be in (0, 1], got {rho}")
    xa, xb = _aligned(entropy_a, entropy_b)
    ok = np.isfinite(xa) & np.isfinite(xb)
    if not ok.any():
        raise TokensError("top_position_overlap: no position has a finite entropy in both")
    xa, xb = xa[ok], xb[ok]
    top_a, top_b = _top_set(xa, rho), _top_set(xb, rho)
    return len(top_a & top_b) / len(top_a)


def per_sequence(df: pd.DataFrame, keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean, max entropy and token count per sequence (text, or step/prompt/sample of a dump)."""
    data = _frame(df, "entropy")
    keys = list(keys) if keys else next((list(k[:-1]) for k in KEYS if all(c in data.columns for c in k)), None)
    if not keys:
        raise TokensError("per_sequence: pass keys; the frame has neither text_id nor step/prompt_id/sample_id")
    return data.groupby(keys)["entropy"].agg(["mean", "max", "size"]).rename(columns={"size": "n_tokens"}).reset_index()
