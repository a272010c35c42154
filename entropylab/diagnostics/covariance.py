"""Per-token covariance between log-probability and advantage, and the paper's Table 1 from a rollout dump.

The covariance of token i is the centred product ``(A_i - mean A)(logp_i - mean logp)`` (docs/science.md
section 2). Centring scope:

- ``"batch"``: means over all tokens of the step (the paper's equation);
- ``"micro"``: means over the tokens of one micro-batch of the step (the reference code; needs the dump's
  ``micro_batch`` column);
- ``"state"``: log-probability centred at its own state, ``(A_i - mean A)(logp_i + H_i)`` with ``H_i`` the
  entropy of the distribution token i was drawn from (the dump's ``entropy`` column). Since
  ``E_{a~pi}[log pi(a) + H] = 0``, it estimates the per-state ``Cov_{a~pi(.|s)}(log pi, A)`` of the one-step
  theory without bias, where the batch centring mixes states: a near-deterministic token (logp ≈ 0, H ≈ 0)
  counts as 0, not as "more likely than the batch's mean".

Table 1 reports, per step, the mean covariance of the top fraction q of tokens ranked by covariance. The
number of tokens taken is ``k = max(1, ceil(q * n))`` (q*n rounded to 9 decimals first so that 0.2 * 10 is
2, not 3), capped at n: a tiny step still contributes its largest token. Ties do not matter: the mean of
the k largest values is the same whichever tied tokens are chosen.

Pure numpy; the table is computed with one ``ndarray.partition`` per step (no sort, no groupby-apply).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from entropylab.rundir import DumpError

DEFAULT_QUANTILES: tuple[float, ...] = (0.0002, 0.002, 0.02, 0.2)
SCOPES = ("batch", "micro", "state")


def top_k_count(n: int, q: float) -> int:
    """How many of n tokens make the top fraction q: ``max(1, ceil(q*n))``, at most n (0 when n == 0)."""
    if n <= 0:
        return 0
    return min(n, max(1, math.ceil(round(q * n, 9))))


def quantile_label(q: float) -> str:
    """Column name of a quantile in the table: 0.0002 -> 'top 0.02%'."""
    return f"top {q * 100:.6g}%"


def group_codes(groups: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense codes 0..G-1 for group ids; O(n) when ids are already sorted (the usual case), else via unique."""
    groups = np.asarray(groups)
    if groups.size == 0:
        return np.zeros(0, dtype=np.intp), 0
    if np.all(groups[1:] >= groups[:-1]):
        codes = np.empty(groups.size, dtype=np.intp)
        codes[0] = 0
        np.cumsum(groups[1:] != groups[:-1], out=codes[1:])
        return codes, int(codes[-1]) + 1
    uniq, codes = np.unique(groups, return_inverse=True)
    return codes.reshape(-1), len(uniq)


def _group_means(groups: np.ndarray):
    """A function x -> per-token mean of x over its group: contiguous segments when ids are sorted, else codes."""
    groups = np.asarray(groups)
    if groups.size and np.all(groups[1:] >= groups[:-1]):
        starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
        counts = np.diff(np.r_[starts, groups.size])
        return lambda x: np.repeat(np.add.reduceat(x, starts) / counts, counts)
    codes, n_groups = group_codes(groups)
    sizes = np.maximum(np.bincount(codes, minlength=n_groups), 1)
    return lambda x: (np.bincount(codes, weights=x, minlength=n_groups) / sizes)[codes]


def _centred(x: np.ndarray, group_mean=None) -> np.ndarray:
    """x minus its mean (over all, or within each group), in float64."""
    x = np.asarray(x, dtype=np.float64)
    if group_mean is None:
        return x - x.mean() if x.size else x.copy()
    return x - group_mean(x)


def token_covariance(logprob, advantage, *, groups=None) -> np.ndarray:
    """Per-token ``(A_i - mean A)(logp_i - mean logp)`` in float64.

    Means are over the whole array (``groups=None``: one step, scope "batch") or within each group id
    (``groups`` = the step for batch scope over several steps, or a (step, micro_batch) code for "micro").
    """
    logprob = np.asarray(logprob)
    advantage = np.asarray(advantage)
    if logprob.shape != advantage.shape or logprob.ndim != 1:
        raise ValueError(
            f"logprob and advantage must be 1-D of equal length, got {logprob.shape} and {advantage.shape}"
        )
    group_mean = None
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != logprob.shape:
            raise ValueError(f"groups must have the shape of logprob {logprob.shape}, got {groups.shape}")
        group_mean = _group_means(groups)
    return _centred(advantage, group_mean) * _centred(logprob, group_mean)


def _step_segments(steps: np.ndarray) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(order or None if already sorted, step value per segment, segment boundaries of length G+1)."""
    steps = np.asarray(steps)
    order = None
    if steps.size > 1 and np.any(steps[1:] < steps[:-1]):
        order = np.argsort(steps, kind="stable")
        steps = steps[order]
    if steps.size == 0:
        return order, steps[:0], np.zeros(1, dtype=np.intp)
    starts = np.flatnonzero(np.r_[True, steps[1:] != steps[:-1]])
    bounds = np.r_[starts, steps.size]
    return order, steps[starts], bounds


def _column(df: pd.DataFrame, name: str, dtype=None) -> np.ndarray:
    """A dump column as a numpy array (no copy when the dtype already fits), with a clear error if absent."""
    if name not in df.columns:
        raise DumpError(f"rollout dump: missing column {name} (has: {', '.join(map(str, df.columns))})")
    return df[name].to_numpy(dtype=dtype)


def _check_finite(x: np.ndarray, name: str, step_ids: np.ndarray) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        steps = np.unique(step_ids[bad])[:5].tolist()
        raise DumpError(f"rollout dump: {int(bad.sum())} non-finite value(s) in column {name} (steps {steps}...)")


def _micro_ids(df: pd.DataFrame, scope: str) -> np.ndarray | None:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if scope in ("batch", "state"):
        return None
    if "micro_batch" not in df.columns:
        raise DumpError(
            "scope 'micro' needs the dump's micro_batch column, which this dump does not have; use scope 'batch'"
        )
    return _column(df, "micro_batch", np.int64)


def step_arrays(dump_df: pd.DataFrame, scope: str = "batch", *, source: str = "recompute", with_pg: bool = False):
    """Yield (step, cov, cov_pg) per step, steps ascending: the dump's token covariances grouped by step.

    `source="recompute"` centres logprob and advantage with `scope`; `source="dump"` takes the trainer's
    `covariance` column as is. `cov_pg` (only with `with_pg`) is the centred product of logp and pi*A,
    the vanilla policy-gradient form, centred with the same scope. Non-finite inputs are an error.
    """
    if source not in ("recompute", "dump"):
        raise ValueError(f"source must be 'recompute' or 'dump', got {source!r}")
    if scope == "state" and source == "dump":
        raise ValueError("scope 'state' is recomputed from logprob, entropy and advantage; use source='recompute'")
    steps = _column(dump_df, "step", np.int64)
    order, step_values, bounds = _step_segments(steps)

    def take(x):
        return x if order is None else x[order]

    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    micro = _micro_ids(dump_df, scope) if source == "recompute" or with_pg else None
    micro = take(micro) if micro is not None else None
    if source == "dump":
        cov_all = take(_column(dump_df, "covariance"))
        _check_finite(cov_all, "covariance", take(steps))
    if source == "recompute" or with_pg:
        logp = take(_column(dump_df, "logprob"))
        adv = take(_column(dump_df, "advantage"))
        sorted_steps = take(steps)
        _check_finite(logp, "logprob", sorted_steps)
        _check_finite(adv, "advantage", sorted_steps)
    if scope == "state":
        ent = take(_column(dump_df, "entropy", np.float64))
        _check_finite(ent, "entropy", sorted_steps)
    for i, step in enumerate(step_values):
        s, e = bounds[i], bounds[i + 1]
        groups = None if micro is None else micro[s:e]
        if scope == "state":
            lp = np.asarray(logp[s:e], dtype=np.float64)
            surprise = lp + ent[s:e]
            cov = _centred(adv[s:e]) * surprise
            cov_pg = _centred(np.exp(lp) * adv[s:e]) * surprise if with_pg else None
            yield int(step), cov, cov_pg
            continue
        if source == "dump":
            cov = np.asarray(cov_all[s:e], dtype=np.float64)
        else:
            cov = token_covariance(logp[s:e], adv[s:e], groups=groups)
        cov_pg = None
        if with_pg:
            lp = np.asarray(logp[s:e], dtype=np.float64)
            cov_pg = token_covariance(lp, np.exp(lp) * adv[s:e], groups=groups)
        yield int(step), cov, cov_pg


def top_means(cov: np.ndarray, quantiles: Sequence[float]) -> tuple[list[float], float]:
    """Mean of the top-k values for each quantile (k = `top_k_count`) and the mean of all, via one partition."""
    n = cov.size
    if n == 0:
        return [math.nan] * len(quantiles), math.nan
    ks = [top_k_count(n, q) for q in quantiles]
    neg = np.negative(cov, dtype=np.float64)  # a fresh array: partition it in place, largest values first
    kth = sorted({k - 1 for k in ks})
    neg.partition(kth)
    # prefix sums at the distinct k's, accumulated segment by segment so each element is summed once
    sums, total, prev = {}, 0.0, 0
    for k in sorted(set(ks)):
        total += float(neg[prev:k].sum())
        sums[k], prev = total, k
    all_mean = 0.0 - (total + float(neg[prev:].sum())) / n  # 0.0 - x: no negative zeros
    return [0.0 - sums[k] / k for k in ks], all_mean


def covariance_table(
    dump_df: pd.DataFrame,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    scope: str = "batch",
    *,
    source: str = "recompute",
) -> pd.DataFrame:
    """The paper's Table 1 for every dumped step: mean covariance of the top q tokens and of all tokens.

    Columns: ``step``, ``n_tokens``, one ``top X%`` column per quantile (ascending q), ``all``. Tokens are
    ranked by their covariance (see `token_covariance`, centred with `scope`); the top fraction q takes
    ``k = max(1, ceil(q*n))`` tokens. `source="dump"` ranks the trainer's own `covariance` column instead.
    """
    quantiles = sorted(float(q) for q in quantiles)
    if any(not 0 < q <= 1 for q in quantiles):
        raise ValueError(f"quantiles must lie in (0, 1], got {quantiles}")
    rows = []
    for step, cov, _ in step_arrays(dump_df, scope, source=source):
        tops, all_mean = top_means(cov, quantiles)
        rows.append([step, cov.size, *tops, all_mean])
    columns = ["step", "n_tokens", *[quantile_label(q) for q in quantiles], "all"]
    table = pd.DataFrame(rows, columns=columns)
    return table.astype({"step": np.int64, "n_tokens": np.int64})


def dump_covariance_agreement(dump_df: pd.DataFrame) -> dict[str, float]:
    """Max |trainer's `covariance` - recomputed| per centring scope available: which scope did the trainer use?

    Empty when the dump has no `covariance` column; "micro" only when it has `micro_batch`.
    """
    if "covariance" not in dump_df.columns:
        return {}
    scopes = ["batch"] + (["micro"] if "micro_batch" in dump_df.columns else [])
    out = {}
    for scope in scopes:
        worst = 0.0
        stored = step_arrays(dump_df, scope, source="dump")
        for (_, mine, _), (_, theirs, _) in zip(step_arrays(dump_df, scope), stored):
            if mine.size:
                worst = max(worst, float(np.max(np.abs(mine - theirs))))
        out[scope] = worst
    return out
