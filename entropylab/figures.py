"""`make figures`: every paper figure of entropylab, regenerated from runs it produces (or reuses) itself.

`make_figures(out, scale=...)` trains what is missing through `entropylab.experiments` (several processes
when the machine has the cores), then writes one PNG and one SVG per name of `FIGURES` into `out`.
The figure builders below (`*_figure`) take the data and return a matplotlib figure; the notebooks call
the same builders, so a figure in a notebook and in `figures/` is the same code.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from entropylab.plots.style import apply_style, colors, save_figure

REPO = Path(__file__).resolve().parents[1]
REAL_LOGS = REPO / "data" / "real-logs"

#: Every figure `make_figures` writes (stem -> what it shows), by paper.
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
    # Real logs
    "law_real_logs": "the law on the bundled real verl runs: fits and the forecast from the first 15%",
}

#: Display names of the sampling methods and of the trainer presets.
METHOD_LABELS = {"plain": "base (T=1)", "temp": "low temp (1/α)", "best_of_n": "best of n", "mh": "power (MH)",
                 "smc": "power (SMC)", "grpo": "GRPO"}
PRESET_LABELS = {"grpo": "GRPO (all tokens)", "clip_cov": "Clip-Cov", "kl_cov": "KL-Cov",
                 "entropy_bonus": "entropy bonus", "clip_higher": "clip-higher", "ref_kl": "reference KL",
                 "top20": "top 20% tokens", "bottom80": "bottom 80% tokens"}


# --------------------------------------------------------------------------- small helpers


def _placeholder(ax: plt.Axes, text: str, title: str | None = None) -> None:
    """An axis that says why there is nothing to draw (too few points at this scale)."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="0.3", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)


def relabel(metrics: pd.DataFrame, labels: Mapping[str, str] = PRESET_LABELS, column: str = "preset") -> pd.DataFrame:
    """A copy of `metrics` with display names in `column`."""
    return metrics.assign(**{column: metrics[column].map(lambda v: labels.get(v, v))})


def relabel_comparison(comparison, labels: Mapping[str, str] = METHOD_LABELS):
    """A copy of a `compare.Comparison` with display names for the methods."""
    from entropylab.compare import Comparison

    return Comparison(relabel(comparison.table, labels, "method"), relabel(comparison.pass_at_k, labels, "method"),
                      relabel(comparison.samples, labels, "method"), dict(comparison.meta))


def _compact_law(fits: Sequence, ax: plt.Axes, names: Sequence[str] | None = None) -> None:
    """`plot_law_fit` for several runs with one legend line per run and the y range set by the data."""
    from entropylab.plots.law import plot_law_fit

    fits = list(fits)
    plot_law_fit(fits, ax, band=False)
    names = list(names) if names else [f.run or "run" for f in fits]
    lines = [h for h, lab in zip(*ax.get_legend_handles_labels()) if lab.startswith("fit:")]
    labels = [f"{n}: a={f.a:.2f}, b={f.b:.2f}, ceiling {f.ceiling:.2f}" + ("" if f.ok else " (not trustworthy)")
              for n, f in zip(names, fits)]
    ax.legend(lines, labels, loc="best", fontsize=7.5)
    values = np.concatenate([np.asarray(f.R, float) for f in fits] + [[f.ceiling for f in fits]])
    values = values[np.isfinite(values)]
    lo, hi = float(values.min()), float(values.max())
    pad = 0.1 * (hi - lo) or 0.05
    ax.set_ylim(max(lo - pad, -0.05), min(hi + pad, 1.05))


# --------------------------------------------------------------------------- Entropy Mechanism


def entropy_accuracy_figure(metrics: pd.DataFrame, preset: str = "grpo") -> plt.Figure:
    """Entropy and validation accuracy of one run over steps (`metrics` of `experiments.run_metrics`)."""
    from entropylab.plots.interventions import plot_runs

    fig = plot_runs(relabel(metrics[metrics["preset"] == preset]))
    fig.suptitle("GRPO: policy entropy and validation accuracy over training", fontsize=11)
    fig.tight_layout()
    return fig


def law_fit_runs_figure(law: Mapping, sizes: Mapping | None = None) -> plt.Figure:
    """R against H with the fitted law for the preset runs (top), for the runs of each model size, and a, b
    against size (bottom). `law`: `experiments.law_of_runs(runs)`; `sizes`: `experiments.law_by_size(...)`."""
    apply_style()
    if sizes is None:
        fig, ax_runs = plt.subplots(figsize=(7.5, 4.4))
    else:
        fig = plt.figure(figsize=(10.5, 8.4))
        grid = fig.add_gridspec(2, 2)
        ax_runs, ax_sizes, ax_coef = fig.add_subplot(grid[0, :]), fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])
    fits = law["fits"]
    if fits:
        _compact_law(list(fits.values()), ax_runs, [PRESET_LABELS.get(k, k) for k in fits])
        ax_runs.set_title("R = −a·exp(H) + b fitted on each run (stars: ceiling b − a at H = 0)")
    else:
        _placeholder(ax_runs, "no run has enough validation points for a fit", "One law per run")
    if sizes is None:
        fig.tight_layout()
        return fig
    sfits, table = sizes["fits"], sizes["table"]
    params = dict(zip(table["size"], table["n_params"]))
    if sfits:
        _compact_law(list(sfits.values()), ax_sizes, [f"{k} ({params.get(k, 0) / 1e6:.2f}M)" for k in sfits])
        ax_sizes.set_title("GRPO on base models of several sizes")
    else:
        _placeholder(ax_sizes, "no size run has enough validation points", "Model sizes")
    ok = table.dropna(subset=["a", "b", "n_params"])
    if len(ok):
        for col, c, mark, label in (("a", colors(3)[0], "o", "a"), ("b", colors(3)[1], "s", "b"),
                                    ("ceiling", colors(3)[2], "^", "ceiling b − a")):
            ax_coef.plot(ok["n_params"], ok[col], marker=mark, color=c, label=label)
        for _, r in ok.iterrows():
            ax_coef.annotate(r["size"], (r["n_params"], r["b"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax_coef.set_xscale("log")
        ax_coef.set(xlabel="parameters (log scale)", ylabel="fitted value (accuracy units)",
                    title="a, b and the ceiling against model size")
        ax_coef.legend()
    else:
        _placeholder(ax_coef, "no fitted coefficients", "a and b against model size")
    fig.tight_layout()
    return fig


def law_forecast_figure(points: pd.DataFrame, run: str = "grpo", fraction: float = 0.15) -> plt.Figure:
    """The law fitted on the first `fraction` of a run's steps predicts the rest; and the reverse test."""
    from entropylab import law
    from entropylab.errors import EntropylabError
    from entropylab.plots.law import plot_forecast

    apply_style()
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.0))
    pts = points[points["run"] == run]
    for ax, reverse in zip(axes, (False, True)):
        try:
            fc = law.forecast(pts, fit_first=fraction, reverse=reverse)
        except EntropylabError as err:
            _placeholder(ax, f"no forecast: {err}", f"Forecast ({'last' if reverse else 'first'} {fraction:.0%})")
            continue
        plot_forecast(fc, ax)
    fig.suptitle(f"Forecasting run '{PRESET_LABELS.get(run, run)}' from its entropy", fontsize=11)
    fig.tight_layout()
    return fig


def table1_frame(table: pd.DataFrame, n_steps: int = 3) -> pd.DataFrame:
    """Table 1 at the first, middle and last dumped steps: one row per token group, one column per step."""
    steps = table["step"].tolist()
    picks = sorted({steps[0], steps[len(steps) // 2], steps[-1]})[:n_steps] if steps else []
    cols = [c for c in table.columns if c.startswith("top ")] + ["all", "n_tokens"]
    sub = table.set_index("step").loc[picks, cols].T
    sub.columns = [f"step {s}" for s in picks]
    return sub.rename_axis("tokens").reset_index()


def table1_figure(table: pd.DataFrame) -> plt.Figure:
    """The paper's Table 1 as an image: mean covariance of the top-q tokens by covariance, and of all tokens."""
    apply_style()
    frame = table1_frame(table)
    cells = [[r["tokens"], *[f"{v:,.0f}" if r["tokens"] == "n_tokens" else f"{v:.4g}" for v in list(r)[1:]]]
             for _, r in frame.iterrows()]
    fig, ax = plt.subplots(figsize=(1.6 * len(frame.columns) + 1.5, 0.38 * len(cells) + 1.1))
    ax.set_axis_off()
    tab = ax.table(cellText=cells, colLabels=list(frame.columns), loc="center", cellLoc="right", colLoc="right")
    tab.auto_set_font_size(False)
    tab.set_fontsize(9.5)
    tab.scale(1.0, 1.4)
    for (row, _), cell in tab.get_celld().items():
        if row == 0:
            cell.set_facecolor("#eeeeee")
    ax.set_title("Table 1: mean covariance of log π and advantage (nats × advantage), top tokens vs all", fontsize=10)
    return fig


def covariance_figure(table: pd.DataFrame) -> plt.Figure:
    """`plot_covariance_quantiles` on its own figure."""
    from entropylab.plots.diagnostics import plot_covariance_quantiles

    apply_style()
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    plot_covariance_quantiles(table, ax)
    fig.tight_layout()
    return fig


def entropy_change_theory_figure(diagnosis, form: str = "npg") -> plt.Figure:
    """Predicted (-eta Cov) against measured entropy change; a note instead when no step has both."""
    from entropylab.plots.diagnostics import entropy_change_figure

    if int(diagnosis.correlations.loc[form, "n"]) > 0:
        return entropy_change_figure(diagnosis.theory, diagnosis.correlations, form)
    apply_style()
    fig, ax = plt.subplots(figsize=(6.0, 3.0))
    _placeholder(ax, "no dumped step has both a prediction and a measured entropy change", "Entropy change")
    return fig


def interventions_figure(metrics: pd.DataFrame) -> plt.Figure:
    """Entropy and validation accuracy over steps, one line per intervention."""
    from entropylab.plots.interventions import plot_runs

    fig = plot_runs(relabel(metrics))
    fig.suptitle("Entropy and accuracy under each intervention (same model, seed and data)", fontsize=11)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- 80/20


def forking_figure(profile: pd.DataFrame, rho: float = 0.2, top: int = 15) -> plt.Figure:
    """The most frequent forking (top-`rho` entropy) tokens beside the most frequent low-entropy tokens."""
    from entropylab.plots.tokens import plot_forking_tokens
    from entropylab.tokens import forking_tokens, low_entropy_tokens

    apply_style()
    high = forking_tokens(profile, rho=rho, min_count=1, top=top)
    low = low_entropy_tokens(profile, rho=rho, min_count=1, top=top)
    fig, axes = plt.subplots(1, 2, figsize=(12.0, 0.3 * max(len(high), len(low), 4) + 1.4))
    plot_forking_tokens(high, ax=axes[0], title=f"Forking tokens (top {rho:.0%} entropy)")
    plot_forking_tokens(low, ax=axes[1], title=f"Low-entropy tokens (bottom {1 - rho:.0%})")
    axes[0].set_xlabel("occurrences above the cutoff (label: mean H in nats, share of the token's uses)")
    axes[1].set_xlabel("occurrences below the cutoff (label: mean H in nats, share of the token's uses)")
    fig.tight_layout()
    return fig


def token_distribution_figure(profile: pd.DataFrame) -> plt.Figure:
    """`plot_entropy_distribution` of a profile's response tokens."""
    from entropylab.plots.tokens import plot_entropy_distribution

    fig = plot_entropy_distribution(profile["entropy"].dropna(), percentiles=(50, 80, 95),
                                    title="Token entropy of the base model's responses")
    fig.set_size_inches(7.5, 4.0)
    fig.tight_layout()
    return fig


def top20_figure(metrics: pd.DataFrame) -> plt.Figure:
    """Entropy and accuracy of training on all tokens, on the top 20% by entropy and on the bottom 80%."""
    from entropylab.plots.interventions import plot_runs

    sub = metrics[metrics["preset"].isin(["grpo", "top20", "bottom80"])]
    fig = plot_runs(relabel(sub))
    fig.suptitle("Policy gradient on the top 20% highest-entropy tokens, all tokens, or the bottom 80%", fontsize=11)
    fig.tight_layout()
    return fig


def temperature_grid_figure(grid: pd.DataFrame) -> plt.Figure:
    """`plot_temperature_grid` with the entropy cutoff in the title."""
    from entropylab.plots.tokens import plot_temperature_grid

    fig = plot_temperature_grid(grid)
    ax = fig.axes[0]
    cut = f" (high entropy: H ≥ {grid['cutoff'].iloc[0]:.3g} nats)" if "cutoff" in grid else ""
    ax.set_title(f"Accuracy by split temperature{cut}")
    fig.tight_layout()
    return fig


def overlap_figure(overlap: pd.DataFrame, reference: float = 0.86) -> plt.Figure:
    """Overlap of the base model's top-20% entropy positions with each checkpoint's, and the mean entropy."""
    apply_style()
    rho = overlap.attrs.get("rho", 0.2)
    c1, c2, c3 = colors(3)
    fig, (ax, ax_h) = plt.subplots(1, 2, figsize=(10.5, 3.8))
    ax.plot(overlap["step"], overlap["overlap"], marker="o", color=c1, lw=1.6, label="base vs checkpoint")
    ax.axhline(reference, color=c2, ls="--", lw=1.2, label=f"Wang et al. (Qwen3-8B): > {reference:.0%}")
    ax.set(xlabel="training step of the checkpoint (0 = base model)",
           ylabel=f"share of top-{rho:.0%} positions kept", title="Top-entropy positions shared with the base model")
    ax.set_ylim(min(0.0, float(overlap["overlap"].min()) - 0.05), 1.05)
    ax.legend(loc="lower left")
    ax_h.plot(overlap["step"], overlap["mean_entropy"], marker="o", color=c3, lw=1.6)
    ax_h.set(xlabel="training step of the checkpoint (0 = base model)",
             ylabel="mean token entropy (nats)", title="Entropy of the same responses under each checkpoint")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- real logs


def short_run_name(name: str) -> str:
    """'Qwen2.5-0.5B-bsz256_2-prompt512-resp256-0.538' -> 'Qwen2.5-0.5B, resp 256' (legend-sized)."""
    model = name.split("-bsz")[0].removesuffix("-ppo")
    resp = re.search(r"resp-?(\d+)", name)
    return f"{model}, resp {resp.group(1)}" if resp else model


def law_real_logs_figure(fits: Mapping, forecasts: Mapping) -> plt.Figure:
    """The law fitted on each run of some logs (left) and the first run's forecast from 15% (right);
    `fits` and `forecasts` from `law_of_logs`."""
    from entropylab.plots.law import plot_forecast

    apply_style()
    fig, axes = plt.subplots(1, 2, figsize=(12.0, 4.4), gridspec_kw={"width_ratios": [1.15, 1]})
    short = [short_run_name(k) for k in fits]
    if fits:
        _compact_law(list(fits.values()), axes[0], short)
        axes[0].set_title(f"Reward-entropy law on {len(fits)} run{'s' if len(fits) > 1 else ''}")
    else:
        _placeholder(axes[0], "no run could be fitted")
    first = next((k for k, v in forecasts.items() if v is not None), None)
    if first is not None:
        plot_forecast(forecasts[first], axes[1])
        axes[1].set_title(f"{short[list(fits).index(first)]}: forecast from the first 15%")
    else:
        _placeholder(axes[1], "no forecast")
    fig.tight_layout()
    return fig


def law_of_logs(paths: str | Path | Sequence[str | Path] | None = None, fit_first: float = 0.15) -> tuple[dict, dict]:
    """The law fitted on every run of some logs (default: the bundled verl logs) and each run's forecast from
    its first `fit_first` of steps (None where it cannot be made); runs that cannot be fitted are skipped."""
    from entropylab import law, logs
    from entropylab.errors import EntropylabError

    points = logs.points(logs.load(sorted(REAL_LOGS.glob("*.log")) if paths is None else paths))
    fits = law.fit_runs(points, errors="skip")
    forecasts = {}
    for run in fits:
        try:
            forecasts[run] = law.forecast(points[points["run"] == run], fit_first=fit_first)
        except EntropylabError:
            forecasts[run] = None
    return fits, forecasts


# --------------------------------------------------------------------------- make_figures


def readable(fig: plt.Figure, min_width: float = 7.5) -> plt.Figure:
    """Enlarge a figure narrower than `min_width` inches (about 1100 px at 150 dpi), keeping its aspect."""
    w, h = fig.get_size_inches()
    if w < min_width:
        fig.set_size_inches(min_width, h * min_width / w)
    return fig


def grpo_chain(root: str | Path, *, scale: str = "demo", model: str = "arith", task: str = "arith",
               overlap_n: int = 64, progress: bool = True) -> tuple:
    """The GRPO run of the figures, then the sampler comparison with its last checkpoint and the overlap of
    high-entropy positions over its checkpoints: (run directory, Comparison, overlap frame)."""
    from entropylab import experiments as ex
    from entropylab.rundir import latest_checkpoint

    run = ex.ensure_figure_runs(["grpo"], root, scale=scale, model=model, task=task, progress=progress)["grpo"]
    comparison = ex.figure_comparison(root, model=model, task=task, scale=scale,
                                      grpo_checkpoint=latest_checkpoint(run), progress=progress)
    return run, comparison, ex.ensure_overlap(run, root, n=overlap_n)


def make_figures(out: str | Path = "figures", *, scale: str = "full", runs_dir: str | Path = "runs/figures",
                 progress: bool = True, workers: int | None = None, model: str = "arith",
                 task: str = "arith") -> list[Path]:
    """Write every figure of `FIGURES` (PNG and SVG) and table1.csv into OUT; returns the written paths.

    Runs, base models, comparisons and sweeps are produced under RUNS_DIR at `scale` ("quick", "demo",
    "full"; see `entropylab.experiments`) and reused on the next call. `workers` processes (default: up to 2,
    one per core, one torch thread each) train the independent runs side by side.
    """
    import torch

    from entropylab import experiments as ex
    from entropylab.diagnostics import diagnose
    from entropylab.plots import sampling as sp

    torch.set_num_threads(1)  # see entropylab.experiments: one thread per process is fastest here
    start = time.perf_counter()
    out, root = Path(out), Path(runs_dir)
    workers = ex.default_workers(workers)
    say = print if progress else (lambda *a, **k: None)
    apply_style()

    # 1. every run and sample set, two processes at a time: the GRPO run followed by what needs it (the sampler
    #    comparison, the overlap over its checkpoints) in one job; the other runs, base models and samples in others
    say(f"make_figures: scale {scale}, runs in {root}, {workers} worker(s)")
    presets = [p for p in ex.FIGURE_PRESETS if p != "grpo"]
    sizes = list(ex.SIZE_SCALES[scale]["sizes"])
    prof_n = ex.PROFILE_SCALES[scale]["n"]
    common = dict(scale=scale, task=task, progress=progress)
    jobs = [(grpo_chain, (root,), dict(common, model=model, overlap_n=min(prof_n, 64)))]
    jobs += [(ex.ensure_size_run, (s, root), dict(common)) for s in sizes]
    jobs += [ex.figure_run_job(p, root, model=model, **common) for p in presets]
    jobs += [(ex.ensure_sweep, (root, "alpha"), dict(model=model, task=task, scale=scale)),
             (ex.ensure_sweep, (root, "mcmc_steps"), dict(model=model, task=task, scale=scale)),
             (ex.ensure_temperature_grid, (root,), dict(model=model, task=task, scale=scale)),
             (ex.ensure_token_profiles, (root, model, task), dict(n=prof_n)),
             (ex.ensure_exactness, (root,), dict(scale=scale))]
    results = ex.run_jobs(jobs, workers, progress)
    (grpo_run, comparison, overlap), results = results[0], results[1:]
    size_runs, results = dict(zip(sizes, results[: len(sizes)])), results[len(sizes):]
    runs = {"grpo": grpo_run, **dict(zip(presets, results[: len(presets)]))}
    alpha_sweep, mcmc_sweep, grid, profile, exactness = results[len(presets):]
    say(f"runs and samples ready at {time.perf_counter() - start:.0f} s; drawing")

    # 3. the figures
    metrics = ex.run_metrics(runs)
    law_runs = ex.law_of_runs(runs)
    law_sizes = ex.law_by_size(size_runs)
    diagnosis = diagnose(runs["grpo"])
    fits, forecasts = law_of_logs()
    comp = relabel_comparison(comparison)
    builders = {
        "entropy_accuracy_over_steps": lambda: entropy_accuracy_figure(metrics),
        "law_fit_runs": lambda: law_fit_runs_figure(law_runs, law_sizes),
        "law_forecast": lambda: law_forecast_figure(law_runs["points"]),
        "covariance_quantiles": lambda: covariance_figure(diagnosis.table),
        "table1": lambda: table1_figure(diagnosis.table),
        "entropy_change_theory": lambda: entropy_change_theory_figure(diagnosis),
        "interventions": lambda: interventions_figure(metrics),
        "token_entropy_distribution": lambda: token_distribution_figure(profile),
        "forking_tokens": lambda: forking_figure(profile),
        "top20_vs_full_vs_bottom80": lambda: top20_figure(metrics),
        "temperature_grid": lambda: temperature_grid_figure(grid),
        "high_entropy_overlap": lambda: overlap_figure(overlap),
        "toy_example": lambda: sp.plot_toy(alpha=2.0),
        "sampling_accuracy": lambda: sp.plot_accuracy(comp),
        "loglik_histograms": lambda: sp.plot_likelihood(comp),
        "pass_at_k": lambda: sp.plot_pass_at_k(comp),
        "alpha_sweep": lambda: sp.plot_sweep(alpha_sweep),
        "mcmc_steps_sweep": lambda: sp.plot_sweep(mcmc_sweep),
        "mh_exactness": lambda: sp.plot_exactness(exactness),
        "law_real_logs": lambda: law_real_logs_figure(fits, forecasts),
    }
    assert list(builders) == list(FIGURES)
    written: list[Path] = []
    for name, build in builders.items():
        written += save_figure(readable(build()), out / name)
    table1_frame(diagnosis.table).to_csv(out / "table1.csv", index=False)
    written.append(out / "table1.csv")
    law_sizes["table"].to_csv(out / "law_by_size.csv", index=False)
    written.append(out / "law_by_size.csv")
    elapsed = time.perf_counter() - start
    say(f"wrote {len(written)} files ({len(builders)} figures, PNG + SVG, and 2 CSV) to {out}/ in "
        f"{elapsed:.0f} s ({elapsed / 60:.1f} min)")
    for name in builders:
        say(f"  {name}.png  {FIGURES[name]}")
    return written
