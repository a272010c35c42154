"""From a reader's raw rows to one canonical run: merged steps, aliased keys, chosen entropy/reward/score."""

from __future__ import annotations

import difflib
import math
from typing import TYPE_CHECKING, Any

from entropylab.errors import LogFormatError
from entropylab.logs import aliases
from entropylab.logs._table import Raw
from entropylab.logs.formats import LOG_FORMATS

if TYPE_CHECKING:
    import pandas as pd


def merge_steps(raw: Raw, path: str) -> tuple[pd.DataFrame, list[str]]:
    """One row per step, sorted. Rows of the same step merge; where a value repeats, the later one wins.

    Values that agree up to the printed rounding (verl prints 3 decimals after a full-precision dict) are
    not a conflict: the more precise one is kept. Real conflicts (a restarted run) give one warning.
    """
    import numpy as np

    df = raw.frame
    if df["step"].is_unique:
        return df.sort_values("step", kind="stable").reset_index(drop=True), []
    dup = df["step"].duplicated(keep=False).to_numpy()
    single = df[~dup]
    dups = df[dup]
    metrics = [c for c in df.columns if c != "step"]
    conflict_steps: list[int] = []
    conflict_keys: dict[str, None] = {}
    first_pos: list[int] = []
    merged_rows = []
    positions = np.flatnonzero(dup)
    steps = dups["step"].to_numpy()
    values = dups[metrics].to_numpy()
    order = np.argsort(steps, kind="stable")
    bounds = np.flatnonzero(np.diff(steps[order])) + 1
    for group in np.split(order, bounds):
        block = values[group]
        row = np.full(len(metrics), np.nan)
        clash = False
        for j in range(len(metrics)):
            col = block[:, j]
            seen = col[~np.isnan(col)]
            if len(seen) == 0:
                continue
            value, agree = _resolve(seen)
            row[j] = value
            if not agree:
                clash = True
                conflict_keys.setdefault(metrics[j], None)
        if clash:
            conflict_steps.append(int(steps[group[0]]))
            first_pos.append(int(positions[group[1]]))
        merged_rows.append((int(steps[group[0]]), row))
    import pandas as pd

    merged = pd.DataFrame([r for _, r in merged_rows], columns=metrics)
    merged.insert(0, "step", np.array([s for s, _ in merged_rows], dtype=np.int64))
    out = pd.concat([single, merged], ignore_index=True).sort_values("step", kind="stable").reset_index(drop=True)
    warnings = []
    if conflict_steps:
        line = raw.line_of(min(first_pos))
        where = f", first repeated at line {line}" if line else ""
        keys = list(conflict_keys)
        shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
        warnings.append(
            f"{path}: {len(conflict_steps)} step(s) logged twice with different values (a restarted run?): "
            f"steps {_ranges(conflict_steps)}{where}; keys {shown}; the later values are kept"
        )
    return out, warnings


def _resolve(seen: Any) -> tuple[float, bool]:
    """The value kept for one (step, key) logged several times, and whether all values agree."""
    last = float(seen[-1])
    if len(seen) == 1 or bool((seen == seen[0]).all()):
        return last, True
    best = max(seen.tolist(), key=lambda v: len(repr(v)))
    if all(_same_up_to_rounding(best, float(v)) for v in seen):
        return best, True
    return last, False


def _same_up_to_rounding(precise: float, printed: float) -> bool:
    """Whether `printed` is `precise` rounded to the decimals that `printed` shows."""
    text = repr(printed)
    if "e" in text or "n" in text:
        return math.isclose(precise, printed, rel_tol=1e-3)
    decimals = len(text.split(".")[1]) if "." in text else 0
    return abs(precise - printed) <= 0.5 * 10.0 ** (-decimals) + 1e-12


def _ranges(steps: list[int]) -> str:
    """`1-3, 7` style text of sorted step numbers (at most a few ranges)."""
    steps = sorted(steps)
    parts: list[str] = []
    start = prev = steps[0]
    for s in steps[1:] + [None]:
        if s is not None and s == prev + 1:
            prev = s
            continue
        parts.append(f"{start}-{prev}" if prev != start else f"{start}")
        if s is not None:
            start = prev = s
    return ", ".join(parts[:4]) + (f", ... ({len(parts) - 4} more ranges)" if len(parts) > 4 else "")


def _close(key: str, keys: list[str]) -> str:
    """' (close matches: a, b)' or ' (keys present: ...)' for an error message."""
    matches = difflib.get_close_matches(key, keys, n=5, cutoff=0.5)
    if matches:
        return "; close matches: " + ", ".join(matches)
    shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
    return "; keys present: " + (shown or "none")


def _resolve_override(
    key: str,
    originals: list[str],
    canon_of: dict[str, str],
    path: str,
    what: str,
    chosen: dict[str, str | None] | None = None,
) -> str:
    """The original key that an override names (an original key, or a canonical name such as `reward`)."""
    if key in canon_of:
        return key
    if chosen and chosen.get(key):
        return chosen[key]  # type: ignore[return-value]
    for orig in originals:
        if canon_of[orig] == key:
            return orig
    names = list(dict.fromkeys(originals + [canon_of[o] for o in originals]))
    raise LogFormatError(f"{path}: {what} key {key!r} not found{_close(key, names)}")


def canonical_run(
    raw: Raw, path: str, fmt: str, *, entropy_key: str | None = None, score_key: str | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The canonical frame of one run (`step`, `entropy`, `reward`, `val/...`, other metrics) and its metadata."""
    import numpy as np
    import pandas as pd

    warnings = list(raw.warnings)
    if raw.nonfinite:
        warnings.append(_nonfinite_line(path, raw.nonfinite))
    df, merge_warnings = merge_steps(raw, path)
    warnings += merge_warnings
    originals = [c for c in df.columns if c != "step"]
    canon_of = {k: aliases.canonical_key(k) for k in originals}

    own = LOG_FORMATS[fmt].entropy_key if fmt in LOG_FORMATS else None
    ent_candidates = aliases.first_present(aliases.entropy_keys(own), originals)
    rew_candidates = aliases.first_present(aliases.REWARD_KEYS, originals)
    default_ent = ent_candidates[0] if ent_candidates else None
    ent_key = (
        _resolve_override(entropy_key, originals, canon_of, path, "entropy", {"entropy": default_ent})
        if entropy_key
        else default_ent
    )
    rew_key = next((k for k in rew_candidates if k != ent_key), None)

    # Columns: entropy and reward take the canonical names; validation keys become val/...; the rest stay.
    names: dict[str, str] = {}
    if ent_key is not None:
        names[ent_key] = "entropy"
    if rew_key is not None:
        names[rew_key] = "reward"
    for key in originals:
        if key in names:
            continue
        canon = canon_of[key]
        names[key] = f"{canon}_original" if canon in _RESERVED else canon
    out = pd.DataFrame({"step": df["step"].to_numpy()})
    columns: dict[str, Any] = {}
    sources: dict[str, list[str]] = {}
    for key in originals:
        name = names[key]
        col = df[key].to_numpy()
        if name in columns:  # two spellings of one metric (test_score/X and val/test_score/X): coalesce
            columns[name] = np.where(np.isnan(columns[name]), col, columns[name])
        else:
            columns[name] = col
        sources.setdefault(name, []).append(key)
    nan = np.full(len(out), np.nan)
    val_names = sorted(
        (n for n in columns if aliases.is_validation(n)),
        key=lambda n: (min(_tier(k) for k in sources[n]), list(columns).index(n)),
    )
    ordered = (
        ["entropy", "reward"]
        + val_names
        + [n for n in columns if n not in ("entropy", "reward") and not aliases.is_validation(n)]
    )
    data = {name: columns.get(name, nan) for name in ordered}
    out = pd.concat([out, pd.DataFrame(data, index=out.index)], axis=1)

    # The default score: the first validation metric by tier, else the training reward.
    val_keys = {n: _main_source(sources[n], df) for n in val_names}
    if score_key is not None:
        orig = _resolve_override(score_key, originals, canon_of, path, "score", {"reward": rew_key, "entropy": ent_key})
        score = names[orig]
    else:
        scored = [n for n in val_names if min(_tier(k) for k in sources[n]) < 99 and out[n].notna().any()]
        score = scored[0] if scored else ("reward" if rew_key is not None else None)
        score, score_note = _score_with_points(out, scored, score)
    score_orig = (
        rew_key
        if score == "reward"
        else ent_key
        if score == "entropy"
        else val_keys.get(score) or next((k for k, v in names.items() if v == score), None)
    )
    if ent_key is None:
        warnings.append(
            f"{path}: no entropy key found (looked for {', '.join(aliases.ENTROPY_KEYS)}); "
            f"the entropy column is empty: pass entropy_key= to name one"
        )
    elif out["entropy"].isna().all():
        warnings.append(f"{path}: entropy key {ent_key!r} has no finite value")
    n_val = int(out[score].notna().sum()) if score is not None and aliases.is_validation(score) else 0
    meta = {
        "path": path,
        "format": fmt,
        "entropy_key": ent_key,
        # the validation samples' own entropy (a column of `out`), when the log has one and no entropy key was named
        "val_entropy": None
        if entropy_key
        else next((n for n in aliases.VAL_ENTROPY_KEYS if n in out.columns and out[n].notna().any()), None),
        "reward_key": rew_key,
        "val_keys": val_keys,
        "val_sources": {n: sources[n] for n in val_names},
        "score": score,
        "score_key": score_orig,
        "score_source": "override"
        if score_key is not None
        else None
        if score is None
        else (("most-points" if score_note else "validation") if aliases.is_validation(score) else "reward"),
        "score_note": None if score_key is not None else score_note,
        "val_size": raw.val_size,
        "n_steps": int(len(out)),
        "n_val": n_val,
        "warnings": warnings,
        "notes": list(raw.notes),
        "entropy_candidates": ent_candidates,
        "reward_candidates": rew_candidates,
        "keys": originals,
    }
    return out, meta


_RESERVED = ("run", "step", "entropy", "reward", "score")
FEW_JOINED = 5  # a default score joining fewer entropy points than this gives way to the one joining the most


def joined_points(out: pd.DataFrame, column: str) -> int:
    """How many steps after step 0 have both an entropy and a `column` value (the law's fit points)."""
    if "entropy" not in out.columns or column not in out.columns:
        return 0
    return int((out[column].notna() & out["entropy"].notna() & (out["step"] != 0)).sum())


def _score_with_points(out: pd.DataFrame, scored: list[str], default: str | None) -> tuple[str | None, str | None]:
    """The default validation score, or the one joining the most entropy points when the default joins none or
    few (a log whose first metric exists only at step 0); the second value says why it was switched."""
    if default is None or default not in scored or len(scored) < 2:
        return default, None
    counts = {n: joined_points(out, n) for n in scored}
    best = max(scored, key=lambda n: counts[n])  # the first in tier order among equals
    have = counts[default]
    if counts[best] > have and (have < FEW_JOINED or have < counts[best] / 2):
        return best, (
            f"{default} joins only {have} entropy point(s); chose {best}, which joins the most ({counts[best]})"
        )
    return default, None


def _nonfinite_line(path: str, counts: dict[str, int]) -> str:
    """One warning for every key's explicit nan/inf values (a TensorBoard file can have dozens of such keys)."""
    if len(counts) == 1:
        ((key, count),) = counts.items()
        return f"{path}: key {key!r}: {count} non-finite value(s) (nan/inf) dropped"
    shown = ", ".join(f"{k} ({v})" for k, v in list(counts.items())[:3])
    more = f" and {len(counts) - 3} more" if len(counts) > 3 else ""
    return f"{path}: {sum(counts.values())} non-finite value(s) (nan/inf) dropped in {len(counts)} keys: {shown}{more}"


def _tier(original: str) -> int:
    tier = aliases.score_tier(original)
    return 99 if tier is None else tier


def _main_source(keys: list[str], df: pd.DataFrame) -> str:
    """The original key (of several spellings of one metric) that holds the most values."""
    return max(keys, key=lambda k: int(df[k].notna().sum())) if len(keys) > 1 else keys[0]
