"""`entropylab watch LOG...`: follow training logs while they grow and forecast the ceiling live.

Each poll reads only what is new (`entropylab.logs.follow.Follower`). On every new validation point the law is
refitted on the points so far (`entropylab.law.live_forecast`), the view is updated (a rich table when the
output is a terminal, one plain line per forecast otherwise), and the forecast is appended to a JSONL file.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from entropylab import law
from entropylab.errors import EntropylabError
from entropylab.logs.api import run_points
from entropylab.logs.follow import Follower


class RunState:
    """What watch knows of one run: its points so far, the last fit and the last forecast record."""

    def __init__(self, log: str, run: str) -> None:
        self.log, self.run = log, run
        self.n = 0
        self.fit: law.LawFit | None = None
        self.record: dict[str, Any] = {"run": run, "log": log}
        self.status = "waiting for validation points"


class Watcher:
    """Follows logs and refits at each new validation point; `poll()` returns the new forecast records."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        val_size: int | None = None,
        forecasts: str | Path | None = None,
        **follow_kw: Any,
    ) -> None:
        self.followers = [Follower(p, **follow_kw) for p in paths]
        self.val_size = val_size
        self.forecasts = Path(forecasts) if forecasts else None
        self.runs: dict[tuple[str, str], RunState] = {}
        self.errors: dict[str, str] = {}

    def poll(self) -> list[dict]:
        """Read what is new in every log; one forecast record per new validation point of each run."""
        out: list[dict] = []
        for follower in self.followers:
            log = str(follower.path)
            try:
                if not follower.poll() and self.runs_of(log):
                    continue
                df = follower.frame()
            except EntropylabError as err:
                self.errors[log] = str(err)
                continue
            self.errors.pop(log, None)
            if df is None:
                self.errors[log] = f"waiting: {follower.waiting or 'no complete line yet'}"
                continue
            meta = df.attrs.get("entropylab", {})
            for run, group in df.groupby("run", sort=False):
                out += self._update(log, str(run), group, meta.get(str(run), {}))
        if self.forecasts is not None and out:
            self.forecasts.parent.mkdir(parents=True, exist_ok=True)
            with self.forecasts.open("a", encoding="utf-8") as f:
                for record in out:
                    f.write(json.dumps(record, allow_nan=False) + "\n")
        return out

    def runs_of(self, log: str) -> list[RunState]:
        return [state for (lg, _), state in self.runs.items() if lg == log]

    def _update(self, log: str, run: str, group: Any, info: dict) -> list[dict]:
        state = self.runs.setdefault((log, run), RunState(log, run))
        try:
            points, column = run_points(group, run, info)
        except EntropylabError as err:
            state.status = f"waiting: {str(err).split(': ', 1)[-1]}"
            return []
        val_size = self.val_size or info.get("val_size")
        entropy = group["entropy"].to_numpy(dtype=float) if "entropy" in group.columns else None
        steps = group["step"].to_numpy()
        new: list[dict] = []
        first = state.n == 0
        # The first poll of a log that already holds points gives one forecast (now); later polls one per point.
        for k in [len(points)] if first else range(state.n + 1, len(points) + 1):
            prefix = points.iloc[:k]
            last_step = prefix["step"].iloc[-1]
            series = None if entropy is None else entropy[(steps <= last_step)]
            record, fit = law.live_forecast(prefix, val_size=val_size, previous=state.fit, entropy_series=series)
            record.update(
                time=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                log=log,
                run=run,
                score_key=column,
                val_size=val_size,
            )
            state.fit = fit if fit is not None else state.fit
            state.record = record
            new.append(record)
        state.n = len(points)
        state.status = "ok"
        return new


# ------------------------------------------------------------------------------------------- the view


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def table(watcher: Watcher) -> Any:
    """The live view: one row per run, alarms and waiting logs below (a rich renderable)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    t = Table(title="entropylab watch: the reward-entropy law, live", title_justify="left", expand=False)
    t.add_column("run", justify="left", overflow="ellipsis", no_wrap=True, max_width=20)
    for name, justify in (
        ("step", "right"),
        ("score", "right"),
        ("ceiling [95%]", "right"),
        ("headroom", "right"),
        ("last error", "right"),
        ("verdict", "left"),
    ):
        t.add_column(name, justify=justify, overflow="fold", min_width=16 if name == "verdict" else None)
    lines = []
    for state in watcher.runs.values():
        r = state.record
        if "ceiling" not in r:
            t.add_row(state.run, "-", "-", "-", "-", "-", state.status)
            continue
        ceiling = (
            f"{_fmt(r['ceiling'])} [{_fmt(r['ceiling_low'])}, {_fmt(r['ceiling_high'])}]"
            if r.get("ceiling") is not None
            else "-"
        )
        verdict = Text("ok", style="green") if r.get("ok") else Text(r.get("verdict", ""), style="yellow")
        t.add_row(
            state.run,
            _fmt(r.get("step"), "g"),
            _fmt(r.get("score")),
            ceiling,
            _fmt(r.get("headroom"), "+.3f"),
            _fmt(r.get("last_error"), "+.3f"),
            verdict,
        )
        lines += [Text(f"! {state.run}: {a}", style="bold red") for a in r.get("alarms", [])]
    lines += [Text(f"{log}: {msg}", style="dim") for log, msg in watcher.errors.items()]
    return Group(t, *lines)


def plain(record: dict) -> str:
    """One line per forecast, for output that is not a terminal (scripts, CI logs)."""
    ceiling = (
        "-"
        if record.get("ceiling") is None
        else f"{record['ceiling']:.3f} [{_fmt(record['ceiling_low'])}, {_fmt(record['ceiling_high'])}]"
    )
    parts = [
        f"{record['run']} step {_fmt(record.get('step'), 'g')}",
        f"n {record['n']}",
        f"score {_fmt(record.get('score'))}",
        f"ceiling {ceiling}",
        f"headroom {_fmt(record.get('headroom'), '+.3f')}",
        f"last error {_fmt(record.get('last_error'), '+.3f')}",
        record.get("verdict", ""),
    ]
    return " | ".join(parts) + "".join(f"\n  ! {a}" for a in record.get("alarms", []))


def watch(
    paths: Sequence[str | Path],
    *,
    interval: float = 5.0,
    once: bool = False,
    forecasts: str | None = None,
    val_size: int | None = None,
    out: TextIO | None = None,
    **follow_kw: Any,
) -> int:
    """Follow `paths` until Ctrl-C (`once`: read them once, print one snapshot and return). Returns 0."""
    from rich.console import Console

    console = Console(file=out) if out is not None else Console()
    watcher = Watcher(paths, val_size=val_size, forecasts=forecasts, **follow_kw)
    if once:
        watcher.poll()
        console.print(table(watcher))
        return 0
    live = None
    shown: dict[str, str] = {}
    try:
        if console.is_terminal:
            from rich.live import Live

            live = Live(table(watcher), console=console, refresh_per_second=4, transient=False)
            live.start()
        while True:
            records = watcher.poll()
            if live is not None:
                live.update(table(watcher))
            else:
                for record in records:
                    console.print(plain(record), highlight=False, soft_wrap=True)
                for log, msg in watcher.errors.items():  # each waiting or error message once, when it changes
                    if shown.get(log) != msg:
                        console.print(f"{log}: {msg}", highlight=False, soft_wrap=True)
                shown = dict(watcher.errors)
                console.file.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()
    console.print(
        f"stopped; {sum(s.n for s in watcher.runs.values())} validation points in "
        f"{len(watcher.runs)} run(s)" + (f"; forecasts in {forecasts}" if forecasts else ""),
        highlight=False,
    )
    return 0
