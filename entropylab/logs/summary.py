"""`inspect`: what `entropylab ingest LOG` prints, per run: format, steps, the keys found and chosen."""

from __future__ import annotations

import warnings
from typing import Any

from entropylab import errors


def inspect(path_or_paths: Any, **load_kwargs: Any) -> str:
    """A readable report of how each run of the given logs was read and which keys were chosen."""
    from entropylab.logs.api import LogWarning, load, paired_entropy, run_points

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LogWarning)  # they are part of the report
        df = load(path_or_paths, **load_kwargs)
    meta = df.attrs.get("entropylab", {})
    blocks = []
    for run, info in meta.items():
        group = df[df["run"] == run].dropna(axis=1, how="all")  # without the columns of other runs
        try:
            pts, score = run_points(group, run, info)
            n_points, paired = len(pts), paired_entropy(group, info, score)
            with_what = "entropy" if paired == "entropy" else f"{paired}, the entropy of the scored samples,"
            fit = f"{n_points} fit point{'' if n_points == 1 else 's'} (score and {with_what} at the same step)"
            if _step0_has_both(group, info.get("score")):
                fit += "; step 0 (validation before training) left out"
        except errors.LogFormatError as err:
            fit = f"none: {str(err).split(': ', 1)[-1]}"
        blocks.append(_block(run, info, group, fit))
    return "\n\n".join(blocks)


def _step0_has_both(group: Any, score: str | None) -> bool:
    """Whether step 0 has a score and an entropy (old verl): `points` leaves it out, say so."""
    if score not in group.columns or "entropy" not in group.columns:
        return False
    zero = group[group["step"] == 0]
    return bool((zero[score].notna() & zero["entropy"].notna()).any())


def _values(group: Any, column: str) -> str:
    n = int(group[column].notna().sum()) if column in group.columns else 0
    return f"{n} value{'' if n == 1 else 's'}"


def _others(chosen: str | None, candidates: list[str]) -> str:
    rest = [c for c in candidates if c != chosen]
    return f"   (also present, not chosen: {', '.join(rest)})" if rest else ""


def _block(run: str, info: dict, group: Any, fit: str) -> str:
    steps = group["step"]
    span = f"steps {int(steps.min())}..{int(steps.max())}" if len(steps) else "no steps"
    lines = [
        f"run {run}",
        f"  file        {info['path']}",
        f"  format      {info['format']}",
        f"  steps       {info['n_steps']} ({span})",
    ]
    ent = info.get("entropy_key")
    lines.append(
        f"  entropy     {ent} -> entropy ({_values(group, 'entropy')})"
        + _others(ent, info.get("entropy_candidates", []))
        if ent
        else "  entropy     none found: pass --entropy-key / entropy_key="
    )
    rew = info.get("reward_key")
    lines.append(
        f"  reward      {rew} -> reward ({_values(group, 'reward')})" + _others(rew, info.get("reward_candidates", []))
        if rew
        else "  reward      none found"
    )
    sources = info.get("val_sources", {})
    if sources:
        for i, (canon, origs) in enumerate(sources.items()):
            label = "validation " if i == 0 else "           "
            spelled = "" if origs == [canon] else f" <- {', '.join(origs)}"
            lines.append(f"  {label} {canon}{spelled} ({_values(group, canon)})")
    else:
        lines.append("  validation  none found")
    others = [c for c in group.columns if c not in ("run", "step", "entropy", "reward") and not c.startswith("val/")]
    shown = ", ".join(others[:6]) + (", ..." if len(others) > 6 else "")
    lines.append(
        f"  other       {len(others)} numeric metric{'' if len(others) == 1 else 's'}"
        + (f" ({shown})" if others else "")
    )
    score = info.get("score")
    if score is None:
        lines.append("  score       none: no validation metric and no training reward")
    else:
        how = {
            "override": f"given: {info.get('score_key')}",
            "validation": "default: first validation metric",
            "most-points": f"default: {info.get('score_note')}",
            "reward": "default: training reward, no validation metric",
        }.get(info.get("score_source", ""), "")
        lines.append(f"  score       {score} ({how})")
    lines.append(f"  points      {fit}")
    size = info.get("val_size")
    lines.append(
        f"  val size    {size} problems (read from the log; --val-size overrides)"
        if size
        else "  val size    not in the log: pass --val-size N for the binomial noise of the score"
    )
    warns = [w.removeprefix(f"{info['path']}: ") for w in info.get("warnings", [])]
    lines.append("  warnings    " + ("none" if not warns else f"\n{'':14}".join(warns)))
    notes = [n.removeprefix(f"{info['path']}: ") for n in info.get("notes", [])]
    if notes:
        lines.append("  notes       " + f"\n{'':14}".join(notes))
    return "\n".join(lines)
