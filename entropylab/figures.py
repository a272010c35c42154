"""`make figures`: the gallery. Which figure, from which experiment, in which file.

`make_figures(out, scale=...)` computes (or reuses, through the experiments' cache) what the figures need,
several jobs side by side when the machine has the cores, then writes NAME.png and NAME.svg into `out` for
each name of `FIGURES` (or of `only`). The figures are drawn by the builders of `entropylab.plots`, the
same the notebooks and the demo call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import pandas as pd

from entropylab import experiments as ex
from entropylab.errors import EntropylabError
from entropylab.plots import diagnostics as dp
from entropylab.plots import interventions as ip
from entropylab.plots import law as lp
from entropylab.plots import sampling as sp
from entropylab.plots import tokens as tp
from entropylab.plots.style import METHOD_LABELS, apply_style, readable, relabel, relabel_comparison, save_figure

if TYPE_CHECKING:
    from entropylab.compare import Comparison
    from entropylab.diagnostics import Diagnosis

#: Every figure `make_figures` writes (stem -> caption), by paper.
FIGURES: dict[str, str] = {
    # The Entropy Mechanism of RL for reasoning LMs
    "entropy_accuracy_over_steps": "policy entropy and validation accuracy of a GRPO run over training steps",
    "law_fit_runs": "R against H with the fitted law R = -a exp(H) + b for several runs and model sizes",
    "law_forecast": "the law fitted on the first (last) 15% of a run predicts the rest from entropy",
    "covariance_quantiles": "mean covariance of the top-q tokens and of all tokens over training",
    "table1": "the paper's Table 1 (mean covariance of the top tokens) at three steps; also table1.csv",
    "entropy_change_theory": "predicted entropy change -eta Cov(log pi, A) against the measured one",
    "interventions": "entropy and accuracy under each intervention (Clip-Cov, KL-Cov, entropy bonus, ...)",
    # Beyond the 80/20 rule
    "token_entropy_distribution": "token-entropy histogram of the base model with percentiles",
    "forking_tokens": "the most frequent high-entropy (forking) and low-entropy tokens",
    "top20_vs_full_vs_bottom80": "training on the top-20% entropy tokens vs all tokens vs the bottom 80%",
    "temperature_grid": "accuracy with one temperature at high-entropy tokens and another elsewhere",
    "high_entropy_overlap": "overlap of the base model's top-20% entropy positions with each checkpoint's",
    # Reasoning with sampling
    "toy_example": "the paper's Example 1: power distribution vs low temperature, exactly",
    "sampling_accuracy": "single-shot accuracy of base, low temperature, power (MH, SMC) and GRPO",
    "loglik_histograms": "base-model log-likelihood of the samples of each method",
    "pass_at_k": "pass@k against k for each method",
    "alpha_sweep": "power sampling (MH) as alpha varies",
    "mcmc_steps_sweep": "power sampling (MH) as the number of MH steps per block varies",
    "mh_exactness": "MH and SMC against the exact p^alpha of a tiny enumerable model",
    "sampling_frontier": "accuracy against tokens per answer (× plain sampling) of every sampler set to the same "
    "budgets: best of n, SMC, MH, MH with entropy cuts and SPS; plain and low temperature as points",
    # Real logs
    "law_real_logs": "the law on the bundled real verl runs: fits and the forecast from the first 15%",
}

#: What each figure is drawn from: preset runs by name (every seed) or as "PRESET:first" (its first seed only),
#: or "sizes", "comparison" (with its own GRPO run on the sampling task), "overlap", "profile", "grid",
#: "alpha_sweep", "mcmc_steps_sweep", "exactness", "frontier" (the experiments' jobs; see `gallery_jobs`).
NEEDS: dict[str, tuple[str, ...]] = {
    "entropy_accuracy_over_steps": ("grpo",),
    "law_fit_runs": (*(f"{p}:first" for p in ex.FIGURE_PRESETS), "sizes"),
    "law_forecast": ("grpo:first",),
    "covariance_quantiles": ("grpo:first",),
    "table1": ("grpo:first",),
    "entropy_change_theory": ("grpo:first",),
    "interventions": ex.FIGURE_PRESETS,
    "token_entropy_distribution": ("profile",),
    "forking_tokens": ("profile",),
    "top20_vs_full_vs_bottom80": ("grpo", "top20", "bottom80"),
    "temperature_grid": ("grid",),
    "high_entropy_overlap": ("grpo:first", "overlap"),
    "toy_example": (),
    "sampling_accuracy": ("comparison",),
    "loglik_histograms": ("comparison",),
    "pass_at_k": ("comparison",),
    "alpha_sweep": ("alpha_sweep",),
    "mcmc_steps_sweep": ("mcmc_steps_sweep",),
    "mh_exactness": ("exactness",),
    "sampling_frontier": ("frontier",),
    "law_real_logs": (),
}


class GalleryData:
    """What the figures are drawn from: the jobs' results by name, and what is read off them, once, on first use."""

    def __init__(self, results: Mapping[str, object]) -> None:
        self.results = dict(results)

    @cached_property
    def seed_runs(self) -> dict[tuple[str, int], Path]:
        """Every preset run computed, by (preset, seed), in `FIGURE_PRESETS` then seed order."""
        runs = self.results.get("runs", {})
        return {key: runs[key] for p in ex.FIGURE_PRESETS for key in sorted(runs) if key[0] == p}

    @cached_property
    def runs(self) -> dict[str, Path]:
        """The first seed's run of each preset (the law, Table 1 and the theory check are read off these)."""
        out: dict[str, Path] = {}
        for (preset, _seed), path in self.seed_runs.items():
            out.setdefault(preset, path)
        return out

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """The metrics of every run (`experiments.run_metrics`) with a `seed` column, for the seed bands."""
        frames = [ex.run_metrics({p: path}).assign(seed=seed) for (p, seed), path in self.seed_runs.items()]
        return pd.concat(frames, ignore_index=True)

    @cached_property
    def law_runs(self) -> dict:
        """The law fitted on each run (`experiments.law_of_runs`)."""
        return ex.law_of_runs(self.runs)

    @cached_property
    def law_sizes(self) -> dict:
        """The law fitted on each model size's run (`experiments.law_by_size`)."""
        return ex.law_by_size(self.results["sizes"])

    @cached_property
    def diagnosis(self) -> Diagnosis:
        """Table 1 and the theory check of the GRPO run."""
        from entropylab.diagnostics import diagnose

        return diagnose(self.runs["grpo"])

    @cached_property
    def comparison(self) -> Comparison:
        """The sampler comparison with display names for the methods."""
        return relabel_comparison(self.results["comparison"])

    @cached_property
    def real_logs(self) -> tuple[dict, dict]:
        """Fits and forecasts of the bundled real verl logs (`experiments.law_of_logs`)."""
        return ex.law_of_logs()


#: The builder of each figure, on the gallery's data.
BUILDERS: dict[str, Callable[[GalleryData], plt.Figure]] = {
    "entropy_accuracy_over_steps": lambda d: ip.entropy_accuracy_figure(d.metrics),
    "law_fit_runs": lambda d: lp.law_fit_runs_figure(d.law_runs, d.law_sizes),
    "law_forecast": lambda d: lp.law_forecast_figure(d.law_runs["points"]),
    "covariance_quantiles": lambda d: dp.covariance_figure(d.diagnosis.table),
    "table1": lambda d: dp.table1_figure(d.diagnosis.table1()),
    "entropy_change_theory": lambda d: dp.entropy_change_figure(d.diagnosis.theory, d.diagnosis.correlations),
    "interventions": lambda d: ip.interventions_figure(d.metrics),
    "token_entropy_distribution": lambda d: tp.token_distribution_figure(d.results["profile"]),
    "forking_tokens": lambda d: tp.forking_figure(d.results["profile"]),
    "top20_vs_full_vs_bottom80": lambda d: ip.top20_figure(d.metrics),
    "temperature_grid": lambda d: tp.temperature_grid_figure(d.results["grid"]),
    "high_entropy_overlap": lambda d: tp.overlap_figure(d.results["overlap"]),
    "toy_example": lambda d: sp.plot_toy(alpha=2.0),
    "sampling_accuracy": lambda d: sp.plot_accuracy(d.comparison),
    "loglik_histograms": lambda d: sp.plot_likelihood(d.comparison),
    "pass_at_k": lambda d: sp.plot_pass_at_k(d.comparison),
    "alpha_sweep": lambda d: sp.plot_sweep(d.results["alpha_sweep"]),
    "mcmc_steps_sweep": lambda d: sp.plot_sweep(d.results["mcmc_steps_sweep"]),
    "mh_exactness": lambda d: sp.plot_exactness(d.results["exactness"]),
    "sampling_frontier": lambda d: sp.plot_frontier(relabel(d.results["frontier"], METHOD_LABELS, "method")),
    "law_real_logs": lambda d: lp.law_real_logs_figure(*d.real_logs),
}
assert list(BUILDERS) == list(FIGURES) == list(NEEDS), "every figure has a caption, its needs and a builder"


def gallery_jobs(
    cache: ex.Cache,
    needs: set[str],
    *,
    scale: str,
    task: str,
    sampling_task: str,
    size_task: str,
    progress: bool = True,
) -> dict[str, ex.Job]:
    """The experiments' jobs that compute `needs`, by name, the longest first. The preset runs train on `task`,
    one per seed of `SEEDS[scale]` (key "run:PRESET:SEED"; the first GRPO seed is the job "grpo", which also
    measures the overlap of high-entropy positions over its checkpoints). The sampler comparison, sweeps and
    frontier run on `sampling_task`, the comparison against a GRPO run there ("sampling"); the size study on
    `size_task`. A need "PRESET:first" trains only the first seed of PRESET."""
    seeds = ex.SEEDS.get(scale, (0,))
    jobs: dict[str, ex.Job] = {}
    if needs & {"grpo", "grpo:first", "overlap"}:
        overlap_n = min(ex.PROFILE_SCALES[scale]["n"], 64) if "overlap" in needs else None
        jobs["grpo"] = ex.Job(
            ex.grpo_chain,
            (cache,),
            dict(scale=scale, task=task, seed=seeds[0], comparison=False, overlap_n=overlap_n, progress=progress),
        )
    if "comparison" in needs:
        jobs["sampling"] = ex.Job(
            ex.grpo_chain,
            (cache,),
            dict(scale=scale, task=sampling_task, keep_checkpoints=False, comparison=True, progress=progress),
        )
    sampled = dict(model=sampling_task, task=sampling_task, scale=scale)
    if "frontier" in needs:
        jobs["frontier"] = ex.Job(ex.ensure_frontier, (cache,), sampled)
    if "sizes" in needs:
        jobs |= {
            f"size:{s}": ex.Job(ex.ensure_size_run, (cache, s), dict(scale=scale, task=size_task, progress=progress))
            for s in ex.SIZE_SCALES[scale]["sizes"]
        }
    for p in ex.FIGURE_PRESETS:
        wanted = seeds if p in needs else seeds[:1] if f"{p}:first" in needs else ()
        for seed in wanted:
            if p == "grpo" and seed == seeds[0]:
                continue  # the "grpo" job
            jobs[f"run:{p}:{seed}"] = ex.figure_run_job(cache, p, scale=scale, task=task, seed=seed, progress=progress)
    table = {
        "alpha_sweep": ex.Job(ex.ensure_sweep, (cache, "alpha"), sampled),
        "mcmc_steps_sweep": ex.Job(ex.ensure_sweep, (cache, "mcmc_steps"), sampled),
        "grid": ex.Job(ex.ensure_temperature_grid, (cache,), dict(model=task, task=task, scale=scale)),
        "profile": ex.Job(ex.ensure_token_profiles, (cache, task, task), dict(n=ex.PROFILE_SCALES[scale]["n"])),
        "exactness": ex.Job(ex.ensure_exactness, (cache,), dict(scale=scale)),
    }
    return jobs | {k: job for k, job in table.items() if k in needs}


def _results(jobs: Mapping[str, ex.Job], values: Sequence) -> dict[str, object]:
    """The jobs' results by what they compute: the preset runs by (preset, seed) under "runs", the GRPO chains'
    parts and the size runs unpacked."""
    out: dict[str, object] = {"runs": {}}
    for name, value in zip(jobs, values):
        if name == "grpo":
            out["runs"][("grpo", jobs[name].kwargs["seed"])], _, out["overlap"] = value
        elif name == "sampling":
            out["comparison"] = value[1]
        elif name.startswith("run:"):
            _, preset, seed = name.split(":")
            out["runs"][(preset, int(seed))] = value
        elif name.startswith("size:"):
            out.setdefault("sizes", {})[name.removeprefix("size:")] = value
        else:
            out[name] = value
    return out


def make_figures(
    out: str | Path = "figures",
    *,
    scale: str = "full",
    runs_dir: str | Path = "runs/figures",
    progress: bool = True,
    workers: int | None = None,
    task: str | None = None,
    sampling_task: str | None = None,
    only: Sequence[str] | None = None,
) -> list[Path]:
    """Write the figures of `FIGURES` (PNG and SVG; all, or those named in `only`) into OUT, with table1.csv
    and law_by_size.csv beside their figures; returns the written paths.

    Runs, base models, comparisons and sweeps are computed in the cache under RUNS_DIR at `scale` ("quick",
    "demo", "full"; see `entropylab.experiments`) and reused on the next call. The training runs are on `task`
    (default `experiments.DEFAULT_TASK`, each preset on every seed of `SEEDS[scale]`), the samplers on
    `sampling_task` (default `experiments.SAMPLING_TASK`), each with its shipped model. `workers` processes (default:
    up to 2, one per core, one torch thread each) compute the independent jobs side by side.
    """
    import torch

    names = list(FIGURES) if only is None else list(dict.fromkeys(only))
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise EntropylabError(f"unknown figure {', '.join(map(repr, unknown))}; known: {', '.join(FIGURES)}")
    torch.set_num_threads(1)  # see entropylab.experiments: one thread per process is fastest here
    start = time.perf_counter()
    out, cache = Path(out), ex.Cache(Path(runs_dir))
    workers = ex.default_workers(workers)
    say = print if progress else (lambda *a, **k: None)
    apply_style()

    say(f"make_figures: {len(names)} figure(s) at scale {scale}, runs in {cache.root}, {workers} worker(s)")
    task, sampling_task = task or ex.DEFAULT_TASK, sampling_task or ex.SAMPLING_TASK
    jobs = gallery_jobs(
        cache,
        {n for name in names for n in NEEDS[name]},
        scale=scale,
        task=task,
        sampling_task=sampling_task,
        size_task=ex.SIZE_TASK,
        progress=progress,
    )
    values = ex.run_jobs(list(jobs.values()), workers, progress)
    data = GalleryData(_results(jobs, values))
    say(f"runs and samples ready at {time.perf_counter() - start:.0f} s; drawing")

    written: list[Path] = []
    for name in names:
        written += save_figure(readable(BUILDERS[name](data)), out / name)
    if "table1" in names:
        data.diagnosis.table1().to_csv(out / "table1.csv", index=False)
        written.append(out / "table1.csv")
    if "law_fit_runs" in names:
        data.law_sizes["table"].to_csv(out / "law_by_size.csv", index=False)
        written.append(out / "law_by_size.csv")
    elapsed = time.perf_counter() - start
    tables = [p.name for p in written if p.suffix == ".csv"]
    say(
        f"wrote {len(written)} files ({len(names)} figures, PNG + SVG{', ' + ', '.join(tables) if tables else ''}) "
        f"to {out}/ in {elapsed:.0f} s ({elapsed / 60:.1f} min)"
    )
    for name in names:
        say(f"  {name}.png  {FIGURES[name]}")
    return written
