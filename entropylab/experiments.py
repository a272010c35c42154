"""The experiments behind the demo, the figures and the notebooks, each produced once and then reused.

Each `ensure_*` returns what is already on disk and computes it only when missing (a half-finished
training run is resumed). Sizes come from `SCALES`: "quick" for the tests, "demo" for `make demo`
(minutes on 2 CPU cores), "full" for `make figures`. The tiny model runs on one torch thread: its ops are
too small to gain from a second, and two threads stall badly whenever anything else uses a core.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from entropylab.errors import EntropylabError

#: Trainer settings per scale: overrides on top of the preset (see entropylab.rl.config.TrainConfig).
SCALES: dict[str, dict] = {
    "quick": dict(steps=4, prompts_per_step=4, group_size=4, max_new_tokens=48, val_every=2, val_problems=16,
                  dump_every=2, checkpoint_every=4, lr=1e-4, threads=1),
    "demo": dict(steps=40, prompts_per_step=8, group_size=8, max_new_tokens=64, val_every=4, val_problems=64,
                 dump_every=4, checkpoint_every=20, lr=1e-4, threads=1),
    "full": dict(steps=200, prompts_per_step=16, group_size=8, max_new_tokens=64, val_every=10, val_problems=200,
                 dump_every=10, checkpoint_every=50, lr=1e-4, threads=1),
}
#: Power-sampling comparison sizes per scale.
COMPARE_SCALES: dict[str, dict] = {
    "quick": dict(n_problems=4, k_max=2, methods=("plain", "temp", "mh"), options={"mh": {"mcmc_steps": 2, "block_size": 16}}),
    "demo": dict(n_problems=24, k_max=8, methods=("plain", "temp", "mh", "smc"),
                 options={"mh": {"mcmc_steps": 4, "block_size": 16}, "smc": {"n_particles": 8}}),
    "full": dict(n_problems=100, k_max=16, methods=("plain", "temp", "best_of_n", "mh", "smc"),
                 options={"mh": {"mcmc_steps": 10, "block_size": 16}, "smc": {"n_particles": 16}}),
}
DEMO_PRESETS: tuple[str, ...] = ("grpo", "clip_cov", "kl_cov", "top20")
FIGURE_PRESETS: tuple[str, ...] = ("grpo", "clip_cov", "kl_cov", "entropy_bonus", "clip_higher", "top20", "bottom80")


def _check_scale(scale: str, table: dict) -> dict:
    if scale not in table:
        raise EntropylabError(f"unknown scale '{scale}'; known: {', '.join(table)}")
    return table[scale]


def run_name(preset: str, task: str, seed: int) -> str:
    return f"{task}-{preset}-s{seed}"


def ensure_run(preset: str, root: str | Path, *, scale: str = "demo", task: str = "arith", model: str | None = None,
               seed: int = 0, overrides: Sequence[str] = (), progress: bool = True) -> Path:
    """A finished training run of `preset` under ROOT (trained, resumed or reused); returns its directory."""
    from entropylab.rl import artifacts as art
    from entropylab.rl.config import resolve_config
    from entropylab.rl.trainer import train

    sizes = _check_scale(scale, SCALES)
    values = {**sizes, "task": task, "model": model or task, "seed": seed}
    cfg = resolve_config(preset, overrides=[f"{k}={v}" for k, v in values.items()] + list(overrides))
    run_dir = Path(root) / run_name(preset, task, seed)
    done = [r for r in art.read_metrics(run_dir / art.METRICS) if r.get("step") == cfg.steps]
    if done and art.list_checkpoints(run_dir):
        return run_dir
    if art.list_checkpoints(run_dir):
        return train(cfg, run_dir, resume=True, progress=progress)
    shutil.rmtree(run_dir, ignore_errors=True)  # started but never checkpointed: start again
    return train(cfg, run_dir, progress=progress)


def ensure_runs(presets: Sequence[str], root: str | Path, **kw) -> dict[str, Path]:
    """`ensure_run` for several presets with the same seed and scale."""
    return {p: ensure_run(p, root, **kw) for p in presets}


def run_metrics(runs: dict[str, Path]) -> pd.DataFrame:
    """The runs' metrics in the canonical schema of `entropylab.logs`, with a `preset` column."""
    from entropylab import logs

    frames = []
    for preset, path in runs.items():
        df = logs.load(path, run=preset)
        frames.append(df.assign(preset=preset))
    return pd.concat(frames, ignore_index=True)


def run_summary(metrics: pd.DataFrame, fits: dict) -> list[dict]:
    """One row per run: entropy at the start and end, its drop, best and final validation accuracy, the ceiling."""
    rows = []
    for preset, run in metrics.groupby("preset", sort=False):
        h = run.dropna(subset=["entropy"]).sort_values("step")["entropy"]
        val = run.dropna(subset=["val/acc"]).sort_values("step")["val/acc"] if "val/acc" in run else pd.Series()
        fit = fits.get(preset)
        rows.append({
            "preset": preset,
            "entropy first": float(h.iloc[0]) if len(h) else float("nan"),
            "entropy last": float(h.iloc[-1]) if len(h) else float("nan"),
            "entropy drop %": float(100 * (1 - h.iloc[-1] / h.iloc[0])) if len(h) and h.iloc[0] else float("nan"),
            "val/acc at step 0": float(val.iloc[0]) if len(val) else float("nan"),
            "best val/acc": float(val.max()) if len(val) else float("nan"),
            "final val/acc": float(val.iloc[-1]) if len(val) else float("nan"),
            "ceiling b-a": (f"{fit.ceiling:.3f} [{fit.ceiling_ci[0]:.3f}, {fit.ceiling_ci[1]:.3f}]"
                            + ("" if fit.ok else " (not trustworthy)")) if fit is not None else "no fit",
        })
    return rows


def law_of_runs(runs: dict[str, Path], score: str = "val/acc") -> dict:
    """Per run: the law fitted on (entropy, validation accuracy) and the forecast from the first 15%."""
    from entropylab import law, logs

    points = logs.points(run_metrics(runs), score=score)
    fits = law.fit_runs(points, errors="skip")
    forecasts = {}
    for run in fits:
        try:
            forecasts[run] = law.forecast(points[points["run"] == run], fit_first=0.15)
        except EntropylabError:
            forecasts[run] = None
    return {"points": points, "fits": fits, "forecasts": forecasts}


def ensure_comparison(root: str | Path, *, model: str = "arith", task: str = "arith", scale: str = "demo",
                      alpha: float = 4.0, grpo_checkpoint: str | Path | None = None, seed: int = 0,
                      progress: bool = True):
    """Power sampling (MH, SMC) against plain and low-temperature sampling and a GRPO checkpoint; cached."""
    from entropylab.compare import Comparison, compare_methods
    from entropylab.models import load_model

    out = Path(root) / f"compare-{task}-{scale}-a{alpha:g}-s{seed}"
    if (out / "meta.json").exists():
        return Comparison.load(out)
    sizes = _check_scale(scale, COMPARE_SCALES)
    base, tok = load_model(model)
    extra = {"grpo": str(grpo_checkpoint)} if grpo_checkpoint else None
    comparison = compare_methods(base, tok, task, methods=sizes["methods"], n_problems=sizes["n_problems"],
                                 k_max=sizes["k_max"], alpha=alpha, seed=seed, extra_checkpoints=extra,
                                 options=sizes["options"], progress=progress)
    comparison.save(out)
    return comparison


def token_profiles(model: str | Path = "arith", task: str = "arith", *, n: int = 64, seed: int = 0,
                   max_new_tokens: int = 64) -> pd.DataFrame:
    """Entropy profiles of `n` sampled responses to test problems, conditioned on their prompts."""
    from entropylab.generation import sample
    from entropylab.models import load_model
    from entropylab.tasks import get_task
    from entropylab.tokens import entropy_profile

    m, tok = load_model(model)
    problems = get_task(task).problems("test", n, seed=seed)
    prompts = [p.prompt for p in problems]
    s = sample(m, tok, prompts, n=1, max_new_tokens=max_new_tokens, temperature=1.0, seed=seed)
    profile = entropy_profile(m, tok, s.texts, prompts=prompts)
    return profile[~profile["in_prompt"]].reset_index(drop=True)
