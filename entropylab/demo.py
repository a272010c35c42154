"""`make demo`: the main job on the embedded default, written as one self-contained report.

Each piece computes what it shows, stores it under OUT/<piece>/ and adds a section to the report.
A piece whose `summary.json` exists is reused on the next run unless `fresh=True`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from entropylab.report import Report, format_table

REPO = Path(__file__).resolve().parents[1]
REAL_LOGS = REPO / "data" / "real-logs"


def cached(piece_dir: Path, fresh: bool, compute: Callable[[Path], dict]) -> dict:
    """Run `compute(piece_dir)` and store its JSON summary, or reuse the stored summary of an earlier run."""
    done = piece_dir / "summary.json"
    if done.exists() and not fresh:
        return json.loads(done.read_text())
    piece_dir.mkdir(parents=True, exist_ok=True)
    summary = compute(piece_dir)
    done.write_text(json.dumps(summary, indent=2, default=float))
    return summary


# --------------------------------------------------------------------------- pieces


def law_on_real_logs(out: Path, report: Report, fresh: bool, quick: bool) -> list[dict]:
    """Fit the law on the bundled verl runs, forecast each from its first 15% of steps, test a shared (a, b)."""

    def compute(d: Path) -> dict:
        from entropylab import law, logs
        from entropylab.plots import law as law_plots

        points = logs.points(logs.load(sorted(REAL_LOGS.glob("*.log"))))
        fits = law.fit_runs(points)
        forecasts = {run: law.forecast(points[points["run"] == run], fit_first=0.15) for run in fits}
        shared = law.fit_shared(points)
        figures = law_plots.write_law_figures(fits, forecasts, d)
        return {
            "runs": {run: {"fit": fit.to_dict(), "forecast": forecasts[run].to_dict(), "report": fit.report()}
                     for run, fit in fits.items()},
            "shared": shared.report(),
            "figures": sorted(str(p.relative_to(d)) for p in figures if p.suffix == ".png"),
        }

    s = cached(out / "law_real_logs", fresh, compute)
    rows = []
    for run, r in s["runs"].items():
        fit, fc = r["fit"], r["forecast"]
        rows.append({"run": run, "points": fit["n"], "a": fit["a"], "b": fit["b"], "ceiling b-a": fit["ceiling"],
                     "ceiling 95% CI": "[{:.3f}, {:.3f}]".format(*fit["ceiling_ci"]), "R²": fit["r2"],
                     "forecast RMSE (first 15%)": fc["rmse"], "final-step error": fc["final_error"]})
    d = out / "law_real_logs"
    report.add("The reward-entropy law on real verl runs",
               "Validation accuracy against policy entropy for three bundled verl PPO runs on GSM8K, each fitted "
               "with R = -a*exp(H) + b; the star at H = 0 is the predicted ceiling b - a with its 95% interval.",
               figures=[d / f for f in s["figures"] if f.startswith("law_all")],
               tables=[pd.DataFrame(rows)])
    report.add("Forecasting a run from its first 15% of steps",
               "For each run the law is fitted on the validation points of the first 15% of training and predicts "
               "the rest from the entropy alone; the table above gives the held-out RMSE and final-step error.",
               figures=[d / f for f in s["figures"] if not f.startswith("law_all")],
               text=[s["shared"]])
    return [{"piece": "law on real logs", "run": r["run"], "result": f"ceiling {r['ceiling b-a']:.3f}, "
             f"R² {r['R²']:.2f}, forecast RMSE {r['forecast RMSE (first 15%)']:.3f}"} for r in rows]


PIECES: list[Callable[[Path, Report, bool, bool], list[dict]]] = [law_on_real_logs]


def run_demo(out: str | Path = "runs/demo", *, fresh: bool = False, quick: bool = False) -> Path:
    """Run every piece, write OUT/report.html and print a summary table; returns the report's path."""
    from tqdm.auto import tqdm

    out = Path(out)
    report = Report("entropylab demo", intro="Entropy collapse, the law that predicts where it ends, and what "
                    "changes it: produced by `make demo` on this machine.")
    rows: list[dict] = []
    start = time.perf_counter()
    for piece in tqdm(PIECES, desc="demo", unit="piece"):
        rows += piece(out, report, fresh, quick)
    path = report.write(out / "report.html")
    print(format_table(rows, ["piece", "run", "result"]))
    print(f"\nreport: {path}  ({time.perf_counter() - start:.1f} s)")
    return path
