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
        rows.append({"run": run, "points": fit["n"], "a": fit["params"]["a"], "b": fit["params"]["b"],
                     "ceiling b-a": fit["ceiling"],
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


def _scale(quick: bool) -> str:
    return "quick" if quick else "demo"


def entropy_collapse(out: Path, report: Report, fresh: bool, quick: bool) -> list[dict]:
    """Short GRPO runs with and without interventions; the law fitted on each; entropy and accuracy over steps."""
    from entropylab import experiments as ex

    def compute(d: Path) -> dict:
        import matplotlib.pyplot as plt

        from entropylab.plots import interventions as iplots
        from entropylab.plots import law as law_plots
        from entropylab.plots.style import save_figure

        runs = ex.ensure_runs(ex.DEMO_PRESETS, out / "runs", scale=_scale(quick), task=ex.DEFAULT_TASK)
        metrics = ex.run_metrics(runs)
        law_res = ex.law_of_runs(runs)
        figs = save_figure(iplots.plot_runs(metrics), d / "entropy_accuracy")
        figs += save_figure(iplots.plot_entropy_vs_accuracy(metrics), d / "accuracy_vs_entropy")
        fits = {k: v for k, v in law_res["fits"].items()}
        if fits:
            fig, ax = plt.subplots(figsize=(6.0, 4.2))
            law_plots.plot_law_fit(list(fits.values()), ax, band=False)
            figs += save_figure(fig, d / "law_runs")
        rows = ex.run_summary(metrics, fits)
        return {"runs": {k: str(v) for k, v in runs.items()}, "rows": rows,
                "figures": [str(p.relative_to(d)) for p in figs if p.suffix == ".png"]}

    s = cached(out / "entropy_collapse", fresh, compute)
    d = out / "entropy_collapse"
    table = pd.DataFrame(s["rows"])
    report.add("Entropy collapse under GRPO, and what the interventions change",
               f"Policy entropy and validation accuracy of short GRPO runs of the shipped {ex.DEFAULT_TASK} model: plain GRPO, "
               "Clip-Cov, KL-Cov and the top-20% entropy mask, on the same seed; the table gives the drop in "
               "entropy, the best validation accuracy and the law's predicted ceiling for each run.",
               figures=[d / f for f in s["figures"]], tables=[table])
    return [{"piece": "GRPO runs", "run": r["preset"],
             "result": f"entropy {r['entropy first']:.3f} -> {r['entropy last']:.3f}, best val acc "
                       f"{r['best val/acc']:.3f}, ceiling {r['ceiling b-a']}"} for r in s["rows"]]


def covariance(out: Path, report: Report, fresh: bool, quick: bool) -> list[dict]:
    """The paper's Table 1 and the entropy-change theory check on the plain GRPO run."""
    from entropylab import experiments as ex

    def compute(d: Path) -> dict:
        from entropylab.diagnostics import diagnose

        run = ex.ensure_run("grpo", out / "runs", scale=_scale(quick), task=ex.DEFAULT_TASK)
        diagnosis = diagnose(run, d)
        table = diagnosis.table
        return {"table": table.to_dict("records"), "report": diagnosis.report(),
                "figures": [str(Path(p).relative_to(d)) for p in diagnosis.figures if str(p).endswith(".png")]}

    s = cached(out / "covariance", fresh, compute)
    d = out / "covariance"
    table = pd.DataFrame(s["table"])
    report.add("Covariance between log-probability and advantage",
               "Mean covariance of the top 0.02%, 0.2%, 2% and 20% of tokens (ranked by covariance) against all "
               "tokens at each dumped step of the GRPO run: a small set of tokens carries most of the covariance "
               "that drives entropy down (the Entropy Mechanism paper's Table 1), and the predicted entropy "
               "change -eta*Cov against the measured one.",
               figures=[d / f for f in s["figures"]], tables=[table], text=[s["report"]])
    last = s["table"][-1] if s["table"] else {}
    return [{"piece": "covariance", "run": "grpo",
             "result": f"last step: top 0.2% {last.get('top 0.2%', float('nan')):.3g} vs all "
                       f"{last.get('all', float('nan')):.3g}"}]


def token_entropy(out: Path, report: Report, fresh: bool, quick: bool) -> list[dict]:
    """Token-entropy statistics of the base model: percentiles, share near zero, forking tokens."""
    from entropylab import experiments as ex

    def compute(d: Path) -> dict:
        from entropylab.plots.style import save_figure
        from entropylab.plots.tokens import plot_entropy_distribution, plot_forking_tokens
        from entropylab.tokens import entropy_stats, forking_tokens

        profile = ex.token_profiles(ex.DEFAULT_TASK, ex.DEFAULT_TASK, n=16 if quick else 128)
        stats = entropy_stats(profile["entropy"].dropna())
        fork = forking_tokens(profile, top=15)
        figs = save_figure(plot_entropy_distribution(profile["entropy"].dropna()), d / "entropy_distribution")
        figs += save_figure(plot_forking_tokens(fork), d / "forking_tokens")
        return {"stats": stats, "forking": fork[["visible", "count", "occurrences", "share_high", "mean_entropy"]]
                .to_dict("records"), "figures": [str(p.relative_to(d)) for p in figs if p.suffix == ".png"]}

    s = cached(out / "token_entropy", fresh, compute)
    d = out / "token_entropy"
    st = s["stats"]
    report.add("Which tokens the model is unsure about",
               f"Entropy of every generated token of the base {ex.DEFAULT_TASK} model on test problems: most tokens are near "
               "zero and a minority carry high entropy (the 80/20 paper's forking tokens); the table lists the "
               "tokens most often above the 80th-percentile cutoff.",
               figures=[d / f for f in s["figures"]],
               tables=[pd.DataFrame([{k: st[k] for k in ("n", "p50", "p80", "p95", "frac_below", "cutoff")}]),
                       pd.DataFrame(s["forking"])])
    return [{"piece": "token entropy", "run": f"{ex.DEFAULT_TASK} base",
             "result": f"p50 {st['p50']:.3f}, p80 {st['p80']:.3f}, p95 {st['p95']:.3f}, "
                       f"{100 * st['frac_below']:.0f}% below 0.01"}]


def power_sampling(out: Path, report: Report, fresh: bool, quick: bool) -> list[dict]:
    """Power sampling (MH, SMC) against plain and low-temperature sampling and the GRPO checkpoint."""
    from entropylab import experiments as ex

    def compute(d: Path) -> dict:
        from entropylab.plots.sampling import plot_accuracy, plot_pass_at_k
        from entropylab.plots.style import save_figure
        from entropylab.rundir import latest_checkpoint

        task = ex.DEFAULT_TASK
        run = ex.ensure_run("grpo", out / "runs", scale=_scale(quick), task=task)
        comparison = ex.ensure_comparison(out / "compare", scale=_scale(quick), model=task, task=task,
                                          grpo_checkpoint=latest_checkpoint(run))
        figs = save_figure(plot_accuracy(comparison), d / "accuracy")
        figs += save_figure(plot_pass_at_k(comparison), d / "pass_at_k")
        return {"table": comparison.table.to_dict("records"), "report": comparison.report(),
                "figures": [str(p.relative_to(d)) for p in figs if p.suffix == ".png"]}

    s = cached(out / "power_sampling", fresh, compute)
    d = out / "power_sampling"
    report.add("Power sampling: p^alpha without training",
               f"Single-shot accuracy and pass@k on held-out {ex.DEFAULT_TASK} problems: the base model at temperature 1, at "
               "low temperature 1/alpha, power sampling by Metropolis-Hastings and by SMC (alpha = 4), and the "
               "GRPO checkpoint; cost_x is the tokens spent relative to plain sampling.",
               figures=[d / f for f in s["figures"]], text=[s["report"]])
    return [{"piece": "power sampling", "run": r["method"],
             "result": f"accuracy {r['accuracy']:.3f}, pass@1 {r['pass@1']:.3f}, cost {r['cost_x']:.1f}x"}
            for r in s["table"]]


def _grpo_and_comparison(out: Path, scale: str) -> Path:
    """The plain GRPO run, then the sampler comparison that uses its last checkpoint (one job: it needs the run)."""
    from entropylab import experiments as ex
    from entropylab.rundir import latest_checkpoint

    task = ex.DEFAULT_TASK
    run = ex.figure_run("grpo", out / "runs", scale=scale, task=task, progress=False)
    ex.figure_comparison(out / "compare", scale=scale, model=task, task=task, grpo_checkpoint=latest_checkpoint(run),
                         progress=False)
    return run


def prepare(out: Path, quick: bool, workers: int) -> None:
    """Train the GRPO runs and sample the comparison up front, `workers` processes side by side (one torch
    thread each); the pieces then find them in the experiments' cache."""
    from entropylab import experiments as ex

    scale = _scale(quick)
    jobs = [(_grpo_and_comparison, (out, scale), {})]
    jobs += [(ex.figure_run, (p, out / "runs"), dict(scale=scale, task=ex.DEFAULT_TASK, progress=True))
             for p in ex.DEMO_PRESETS if p != "grpo"]
    ex.run_jobs(jobs, workers, progress=True)


PIECES: list[Callable[[Path, Report, bool, bool], list[dict]]] = [
    law_on_real_logs, entropy_collapse, covariance, token_entropy, power_sampling]


def run_demo(out: str | Path = "runs/demo", *, fresh: bool = False, quick: bool = False,
             workers: int | None = None) -> Path:
    """Run every piece, write OUT/report.html and print a summary table; returns the report's path.

    The training runs and samples behind the pieces run first in `workers` processes (default: one per core,
    at most 2; the quick demo: 1)."""
    import torch
    from tqdm.auto import tqdm

    from entropylab.experiments import default_workers

    torch.set_num_threads(1)  # the tiny model's ops are too small for two threads (see entropylab.experiments)
    out = Path(out)
    start = time.perf_counter()
    prepare(out, quick, default_workers(workers if workers is not None else (1 if quick else None)))
    report = Report("entropylab demo", intro="Entropy collapse, the law that predicts where it ends, and what "
                    "changes it: produced by `make demo` on this machine.")
    rows: list[dict] = []
    for piece in tqdm(PIECES, desc="demo", unit="piece"):
        rows += piece(out, report, fresh, quick)
    path = report.write(out / "report.html")
    print(format_table(rows, ["piece", "run", "result"]))
    print(f"\nreport: {path}  ({time.perf_counter() - start:.1f} s)")
    return path
