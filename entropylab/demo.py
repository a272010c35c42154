"""`make demo`: the main job on the embedded default, written as one self-contained report.

Each piece computes what it shows and adds a section to the report. Its summary and figures are kept in the
experiments' cache (OUT/<piece>/NAME-FINGERPRINT/), keyed by what the piece is made from (the runs'
configs and base weights, the scale's sizes, the model's weights): a later run reuses a piece made from the
same and computes it again otherwise (`--quick` then a full run in the same OUT recomputes); `fresh=True`
recomputes every piece. The runs and the comparison behind them are in the same cache (OUT/runs, OUT/compare).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd

from entropylab import experiments as ex
from entropylab.experiments import Cache
from entropylab.report import Report, format_table


def _piece(
    cache: Cache, piece: str, name: str, parts: Mapping, fresh: bool, compute: Callable[[Path], dict]
) -> tuple[dict, Path]:
    """The piece's summary (computed by `compute(folder)`, which also writes its figures there, or reused)
    and the folder that holds it."""
    summary = cache.json(piece, name, parts, compute, fresh=fresh)
    return summary, cache.entry(piece, name, parts)


def _pngs(paths, d: Path) -> list[str]:
    return [str(Path(p).relative_to(d)) for p in paths if str(p).endswith(".png")]


def _run_parts(cache: Cache, presets, scale: str) -> dict:
    """Key parts of a piece drawn from the demo's runs of `presets`: their cache entries (config and weights)."""
    return {"runs": [ex.run_location(cache, p, scale=scale, task=ex.DEFAULT_TASK).name for p in presets]}


# --------------------------------------------------------------------------- pieces


def law_on_real_logs(cache: Cache, report: Report, scale: str, fresh: bool) -> list[dict]:
    """Fit the law on the bundled verl runs, forecast each from its first 15% of steps, test a shared (a, b)."""

    def compute(d: Path) -> dict:
        from entropylab import law, logs
        from entropylab.plots import law as law_plots

        points = logs.points(logs.load(sorted(ex.REAL_LOGS.glob("*.log"))))
        fits = law.fit_runs(points)
        forecasts = {run: law.forecast(points[points["run"] == run], fit_first=0.15) for run in fits}
        shared = law.fit_shared(points)
        figures = law_plots.write_law_figures(fits, forecasts, d)
        return {
            "runs": {
                run: {"fit": fit.to_dict(), "forecast": forecasts[run].to_dict(), "report": fit.report()}
                for run, fit in fits.items()
            },
            "shared": shared.report(),
            "figures": sorted(_pngs(figures, d)),
        }

    s, d = _piece(cache, "law_real_logs", "verl", {"logs": ex.files_key(ex.REAL_LOGS.glob("*.log"))}, fresh, compute)
    rows = []
    for run, r in s["runs"].items():
        fit, fc = r["fit"], r["forecast"]
        rows.append(
            {
                "run": run,
                "points": fit["n"],
                "a": fit["params"]["a"],
                "b": fit["params"]["b"],
                "ceiling b-a": fit["ceiling"],
                "ceiling 95% CI": "[{:.3f}, {:.3f}]".format(*fit["ceiling_ci"]),
                "R²": fit["r2"],
                "forecast RMSE (first 15%)": fc["rmse"],
                "final-step error": fc["final_error"],
            }
        )
    report.add(
        "The reward-entropy law on real verl runs",
        "Validation accuracy against policy entropy for three bundled verl PPO runs on GSM8K, each fitted "
        "with R = -a*exp(H) + b; the star at H = 0 is the predicted ceiling b - a with its 95% interval.",
        figures=[d / f for f in s["figures"] if f.startswith("law_all")],
        tables=[pd.DataFrame(rows)],
    )
    report.add(
        "Forecasting a run from its first 15% of steps",
        "For each run the law is fitted on the validation points of the first 15% of training and predicts "
        "the rest from the entropy alone; the table above gives the held-out RMSE and final-step error.",
        figures=[d / f for f in s["figures"] if not f.startswith("law_all")],
        text=[s["shared"]],
    )
    return [
        {
            "piece": "law on real logs",
            "run": r["run"],
            "result": f"ceiling {r['ceiling b-a']:.3f}, "
            f"R² {r['R²']:.2f}, forecast RMSE {r['forecast RMSE (first 15%)']:.3f}",
        }
        for r in rows
    ]


def entropy_collapse(cache: Cache, report: Report, scale: str, fresh: bool) -> list[dict]:
    """Short GRPO runs with and without interventions; the law fitted on each; entropy and accuracy over steps."""

    def compute(d: Path) -> dict:
        from entropylab.plots import interventions as ip
        from entropylab.plots import law as lp
        from entropylab.plots.style import relabel, save_figure

        runs = ex.ensure_runs(cache, ex.DEMO_PRESETS, scale=scale, task=ex.DEFAULT_TASK)
        metrics = ex.run_metrics(runs)
        law_res = ex.law_of_runs(runs)
        figs = save_figure(ip.interventions_figure(metrics), d / "entropy_accuracy")
        figs += save_figure(ip.plot_entropy_vs_accuracy(relabel(metrics)), d / "accuracy_vs_entropy")
        if law_res["fits"]:
            figs += save_figure(lp.law_fit_runs_figure(law_res), d / "law_runs")
        rows = ex.run_summary(metrics, law_res["fits"])
        return {"runs": {k: str(v) for k, v in runs.items()}, "rows": rows, "figures": _pngs(figs, d)}

    s, d = _piece(cache, "entropy_collapse", scale, _run_parts(cache, ex.DEMO_PRESETS, scale), fresh, compute)
    table = pd.DataFrame(s["rows"])
    report.add(
        "Entropy collapse under GRPO, and what the interventions change",
        f"Policy entropy and validation accuracy of short GRPO runs of the shipped {ex.DEFAULT_TASK} model: plain GRPO, "
        "Clip-Cov, KL-Cov and the top-20% entropy mask, on the same seed; the table gives the drop in "
        "entropy, the best validation accuracy and the law's predicted ceiling for each run.",
        figures=[d / f for f in s["figures"]],
        tables=[table],
    )
    return [
        {
            "piece": "GRPO runs",
            "run": r["preset"],
            "result": f"entropy {r['entropy first']:.3f} -> {r['entropy last']:.3f}, best val acc "
            f"{r['best val/acc']:.3f}, ceiling {r['ceiling b-a']}",
        }
        for r in s["rows"]
    ]


def covariance(cache: Cache, report: Report, scale: str, fresh: bool) -> list[dict]:
    """The paper's Table 1 and the entropy-change theory check on the plain GRPO run."""

    def compute(d: Path) -> dict:
        from entropylab.diagnostics import diagnose
        from entropylab.plots.diagnostics import write_diagnostics_figures

        run = ex.ensure_run(cache, "grpo", scale=scale, task=ex.DEFAULT_TASK)
        diagnosis = diagnose(run, d)
        figures = write_diagnostics_figures(diagnosis.table, diagnosis.theory, diagnosis.correlations, d)
        return {"table": diagnosis.table.to_dict("records"), "report": diagnosis.report(), "figures": _pngs(figures, d)}

    s, d = _piece(cache, "covariance", scale, _run_parts(cache, ["grpo"], scale), fresh, compute)
    table = pd.DataFrame(s["table"])
    report.add(
        "Covariance between log-probability and advantage",
        "Mean covariance of the top 0.02%, 0.2%, 2% and 20% of tokens (ranked by covariance) against all "
        "tokens at each dumped step of the GRPO run: a small set of tokens carries most of the covariance "
        "that drives entropy down (the Entropy Mechanism paper's Table 1), and the predicted entropy "
        "change -eta*Cov against the measured one.",
        figures=[d / f for f in s["figures"]],
        tables=[table],
        text=[s["report"]],
    )
    last = s["table"][-1] if s["table"] else {}
    return [
        {
            "piece": "covariance",
            "run": "grpo",
            "result": f"last step: top 0.2% {last.get('top 0.2%', float('nan')):.3g} vs all "
            f"{last.get('all', float('nan')):.3g}",
        }
    ]


def token_entropy(cache: Cache, report: Report, scale: str, fresh: bool) -> list[dict]:
    """Token-entropy statistics of the base model: percentiles, share near zero, forking tokens."""
    n = 16 if scale == "quick" else 128

    def compute(d: Path) -> dict:
        from entropylab.plots.style import save_figure
        from entropylab.plots.tokens import forking_figure, token_distribution_figure
        from entropylab.tokens import entropy_stats, forking_tokens

        profile = ex.token_profiles(ex.DEFAULT_TASK, ex.DEFAULT_TASK, n=n)
        stats = entropy_stats(profile["entropy"].dropna())
        fork = forking_tokens(profile, top=15)
        figs = save_figure(token_distribution_figure(profile), d / "entropy_distribution")
        figs += save_figure(forking_figure(profile), d / "forking_tokens")
        return {
            "stats": stats,
            "forking": fork[["visible", "count", "occurrences", "share_high", "mean_entropy"]].to_dict("records"),
            "figures": _pngs(figs, d),
        }

    parts = {"model": ex.model_key(ex.DEFAULT_TASK), "task": ex.DEFAULT_TASK, "n": n}
    s, d = _piece(cache, "token_entropy", scale, parts, fresh, compute)
    st = s["stats"]
    report.add(
        "Which tokens the model is unsure about",
        f"Entropy of every generated token of the base {ex.DEFAULT_TASK} model on test problems: most tokens are near "
        "zero and a minority carry high entropy (the 80/20 paper's forking tokens); the table lists the "
        "tokens most often above the 80th-percentile cutoff.",
        figures=[d / f for f in s["figures"]],
        tables=[
            pd.DataFrame([{k: st[k] for k in ("n", "p50", "p80", "p95", "frac_below", "cutoff")}]),
            pd.DataFrame(s["forking"]),
        ],
    )
    return [
        {
            "piece": "token entropy",
            "run": f"{ex.DEFAULT_TASK} base",
            "result": f"p50 {st['p50']:.3f}, p80 {st['p80']:.3f}, p95 {st['p95']:.3f}, "
            f"{100 * st['frac_below']:.0f}% below 0.01",
        }
    ]


def power_sampling(cache: Cache, report: Report, scale: str, fresh: bool) -> list[dict]:
    """Power sampling (MH, SMC) against plain and low-temperature sampling and the GRPO checkpoint."""

    def compute(d: Path) -> dict:
        from entropylab.plots.sampling import plot_accuracy, plot_pass_at_k
        from entropylab.plots.style import relabel_comparison, save_figure

        _, comparison, _ = ex.grpo_chain(cache, scale=scale, task=ex.DEFAULT_TASK, keep_checkpoints=False)
        shown = relabel_comparison(comparison)
        figs = save_figure(plot_accuracy(shown), d / "accuracy")
        figs += save_figure(plot_pass_at_k(shown), d / "pass_at_k")
        return {"table": comparison.table.to_dict("records"), "report": comparison.report(), "figures": _pngs(figs, d)}

    parts = {
        **_run_parts(cache, ["grpo"], scale),
        "sizes": ex.check_scale(scale, ex.COMPARE_SCALES),
        "model": ex.model_key(ex.DEFAULT_TASK),
    }
    s, d = _piece(cache, "power_sampling", scale, parts, fresh, compute)
    report.add(
        "Power sampling: p^alpha without training",
        f"Single-shot accuracy and pass@k on held-out {ex.DEFAULT_TASK} problems: the base model at temperature 1, at "
        "low temperature 1/alpha, power sampling by Metropolis-Hastings and by SMC (alpha = 4), and the "
        "GRPO checkpoint; cost_x is the tokens spent relative to plain sampling.",
        figures=[d / f for f in s["figures"]],
        text=[s["report"]],
    )
    return [
        {
            "piece": "power sampling",
            "run": r["method"],
            "result": f"accuracy {r['accuracy']:.3f}, pass@1 {r['pass@1']:.3f}, cost {r['cost_x']:.1f}x",
        }
        for r in s["table"]
    ]


def prepare(cache: Cache, scale: str, workers: int) -> None:
    """Train the GRPO runs and sample the comparison up front, `workers` processes side by side (one torch
    thread each); the pieces then find them in the cache."""
    jobs = [
        ex.Job(ex.grpo_chain, (cache,), dict(scale=scale, task=ex.DEFAULT_TASK, keep_checkpoints=False, progress=False))
    ]
    jobs += [
        ex.Job(ex.ensure_run, (cache, p), dict(scale=scale, task=ex.DEFAULT_TASK, progress=True))
        for p in ex.DEMO_PRESETS
        if p != "grpo"
    ]
    ex.run_jobs(jobs, workers, progress=True)


PIECES: list[Callable[[Cache, Report, str, bool], list[dict]]] = [
    law_on_real_logs,
    entropy_collapse,
    covariance,
    token_entropy,
    power_sampling,
]


def run_demo(
    out: str | Path = "runs/demo", *, fresh: bool = False, quick: bool = False, workers: int | None = None
) -> Path:
    """Run every piece, write OUT/report.html and print a summary table; returns the report's path.

    The training runs and samples behind the pieces run first in `workers` processes (default: one per core,
    at most 2; the quick demo: 1)."""
    import torch

    from entropylab.progress import bar as progress_bar

    torch.set_num_threads(1)  # the tiny model's ops are too small for two threads (see entropylab.experiments)
    out, scale = Path(out), "quick" if quick else "demo"
    cache = Cache(out)
    start = time.perf_counter()
    prepare(cache, scale, ex.default_workers(workers if workers is not None else (1 if quick else None)))
    report = Report(
        "entropylab demo",
        intro="Entropy collapse, the law that predicts where it ends, and what "
        "changes it: produced by `make demo` on this machine.",
    )
    rows: list[dict] = []
    for piece in progress_bar(PIECES, desc="demo", unit="piece"):
        rows += piece(cache, report, scale, fresh)
    path = report.write(out / "report.html")
    print(format_table(rows, ["piece", "run", "result"]))
    print(f"\nreport: {path}  ({time.perf_counter() - start:.1f} s)")
    return path
