"""What the experiments read off runs and logs: metrics in the canonical schema, one summary row per run, and
the reward-entropy law fitted on each run (with its forecast from the first 15% of steps)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from entropylab.errors import EntropylabError

#: The bundled real verl logs.
REAL_LOGS = Path(__file__).resolve().parents[2] / "data" / "real-logs"


def run_metrics(runs: dict[str, Path]) -> pd.DataFrame:
    """The runs' metrics in the canonical schema of `entropylab.logs`, with a `preset` column, in `runs`' order;
    `attrs["entropylab"]` keeps each run's info (which entropy a validation score pairs with, for `run_points`)."""
    from entropylab import logs

    return logs.concat([logs.load(path, run=preset).assign(preset=preset) for preset, path in runs.items()])


def run_points(runs: dict[str, Path], score: str = "val/acc") -> pd.DataFrame:
    """The law's fit points (run, step, entropy, score) of entropylab runs."""
    from entropylab import logs

    return logs.points(run_metrics(runs), score=score)


def run_summary(metrics: pd.DataFrame, fits: dict) -> list[dict]:
    """One row per run: entropy at the start and end, its drop, best and final validation accuracy, the ceiling."""
    rows = []
    for preset, run in metrics.groupby("preset", sort=False):
        h = run.dropna(subset=["entropy"]).sort_values("step")["entropy"]
        val = run.dropna(subset=["val/acc"]).sort_values("step")["val/acc"] if "val/acc" in run else pd.Series()
        fit = fits.get(preset)
        rows.append(
            {
                "preset": preset,
                "entropy first": float(h.iloc[0]) if len(h) else float("nan"),
                "entropy last": float(h.iloc[-1]) if len(h) else float("nan"),
                "entropy drop %": float(100 * (1 - h.iloc[-1] / h.iloc[0])) if len(h) and h.iloc[0] else float("nan"),
                "val/acc at step 0": float(val.iloc[0]) if len(val) else float("nan"),
                "best val/acc": float(val.max()) if len(val) else float("nan"),
                "final val/acc": float(val.iloc[-1]) if len(val) else float("nan"),
                "ceiling b-a": (
                    f"{fit.ceiling:.3f} [{fit.ceiling_ci[0]:.3f}, {fit.ceiling_ci[1]:.3f}]"
                    + ("" if fit.ok else " (not trustworthy)")
                )
                if fit is not None
                else "no fit",
            }
        )
    return rows


def _fits_and_forecasts(points: pd.DataFrame, fit_first: float = 0.15) -> tuple[dict, dict]:
    """The law fitted on every run of `points` (runs that cannot be fitted are skipped) and each run's forecast
    from its first `fit_first` of steps (None where it cannot be made)."""
    from entropylab import law

    fits = law.fit_runs(points, errors="skip")
    forecasts = {}
    for run in fits:
        try:
            forecasts[run] = law.forecast(points[points["run"] == run], fit_first=fit_first)
        except EntropylabError:
            forecasts[run] = None
    return fits, forecasts


def law_of_runs(runs: dict[str, Path], score: str = "val/acc") -> dict:
    """Per run: the law fitted on (entropy, validation accuracy) and the forecast from the first 15%;
    {"points", "fits", "forecasts"}."""
    points = run_points(runs, score=score)
    fits, forecasts = _fits_and_forecasts(points)
    return {"points": points, "fits": fits, "forecasts": forecasts}


def law_of_logs(paths: str | Path | Sequence[str | Path] | None = None, fit_first: float = 0.15) -> tuple[dict, dict]:
    """The law fitted on every run of some logs (default: the bundled verl logs) and each run's forecast from
    its first `fit_first` of steps (None where it cannot be made); runs that cannot be fitted are skipped."""
    from entropylab import logs

    points = logs.points(logs.load(sorted(REAL_LOGS.glob("*.log")) if paths is None else paths))
    return _fits_and_forecasts(points, fit_first)


def law_by_size(runs: dict[str, Path], score: str = "val/acc") -> dict:
    """The law fitted on each size's run, and a table of a, b and the ceiling against parameter count."""
    from entropylab.models import load_model, n_params
    from entropylab.rundir import latest_checkpoint

    res = law_of_runs(runs, score=score)
    rows = []
    for size, run in runs.items():
        fit = res["fits"].get(size)
        rows.append(
            {
                "size": size,
                "n_params": n_params(load_model(latest_checkpoint(run))[0]),
                "a": fit.a if fit else float("nan"),
                "b": fit.b if fit else float("nan"),
                "ceiling": fit.ceiling if fit else float("nan"),
                "r2": fit.r2 if fit else float("nan"),
                "ok": bool(fit.ok) if fit else False,
            }
        )
    return {**res, "table": pd.DataFrame(rows)}
