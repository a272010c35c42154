"""Training runs of the experiments, base models of several sizes, and the GRPO run with what is sampled from it.

A run is kept in the cache under its name and the fingerprint of its whole trainer config and base weights; a
run stopped after a checkpoint is resumed. The tiny model runs on one torch thread: its ops are too small to
gain from a second, and two threads stall badly whenever anything else uses a core.
"""

from __future__ import annotations

import inspect
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from entropylab.errors import EntropylabError
from entropylab.experiments.cache import Cache, Job, as_cache, model_key, run_jobs
from entropylab.experiments.scales import MODEL_SIZES, SCALES, SIZE_SCALES, check_scale

if TYPE_CHECKING:
    from entropylab.rl.config import TrainConfig


def run_name(preset: str, task: str, seed: int) -> str:
    """The readable part of a run's cache entry."""
    return f"{task}-{preset}-s{seed}"


def run_config(
    preset: str, scale: str, task: str, model: str | None, seed: int, overrides: Sequence[str] = ()
) -> TrainConfig:
    """The trainer config of an experiment run: the preset, then the scale's sizes, then `overrides`."""
    from entropylab.rl.config import resolve_config

    values = {**check_scale(scale, SCALES), "task": task, "model": model or task, "seed": seed}
    return resolve_config(preset, overrides=[f"{k}={v}" for k, v in values.items()] + list(overrides))


def _run_entry(
    cache: Cache,
    preset: str,
    scale: str,
    task: str,
    model: str | None,
    seed: int,
    overrides: Sequence[str],
    name: str | None,
) -> tuple[TrainConfig, dict, Path]:
    """(config, key parts, entry) of a run: the key is the whole config, its base model by name and weights."""
    cfg = run_config(preset, scale, task, model, seed, overrides)
    parts = {"config": {**cfg.to_dict(), "model": model_key(cfg.model)}}
    return cfg, parts, cache.entry("runs", name or run_name(preset, task, seed), parts)


def run_location(
    cache: str | Path | Cache,
    preset: str,
    *,
    scale: str = "demo",
    task: str = "arith",
    model: str | None = None,
    seed: int = 0,
    overrides: Sequence[str] = (),
    name: str | None = None,
) -> Path:
    """Where `ensure_run` with these arguments keeps its run (finished or not)."""
    return _run_entry(as_cache(cache), preset, scale, task, model, seed, overrides, name)[2]


def ensure_run(
    cache: str | Path | Cache,
    preset: str,
    *,
    scale: str = "demo",
    task: str = "arith",
    model: str | None = None,
    seed: int = 0,
    overrides: Sequence[str] = (),
    name: str | None = None,
    progress: bool = True,
) -> Path:
    """A finished training run of `preset` in the cache (trained, resumed or reused); returns its directory."""
    from entropylab import rundir
    from entropylab.rl.trainer import train

    cache = as_cache(cache)
    cfg, parts, out = _run_entry(cache, preset, scale, task, model, seed, overrides, name)
    if cache.done(out):
        return out
    cache.may_compute(out)
    if rundir.list_checkpoints(out):
        train(cfg, out, resume=True, progress=progress)
    else:
        shutil.rmtree(out, ignore_errors=True)  # started but never checkpointed: start again
        train(cfg, out, progress=progress)
    cache.finish(out, parts)
    return out


def ensure_runs(cache: str | Path | Cache, presets: Sequence[str], **kw) -> dict[str, Path]:
    """`ensure_run` for several presets with the same seed and scale, one after the other."""
    return {p: ensure_run(cache, p, **kw) for p in presets}


def keep_checkpoints_overrides(scale: str) -> tuple[str, ...]:
    """Overrides that keep about eight checkpoints of a run (for the overlap of high-entropy positions)."""
    steps = check_scale(scale, SCALES)["steps"]
    return (f"checkpoint_every={max(1, steps // 8)}", "keep_checkpoints=1000")


def figure_run_job(
    cache: str | Path | Cache,
    preset: str,
    *,
    scale: str = "demo",
    task: str = "arith",
    model: str | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Job:
    """The `run_jobs` job of one preset run of the figures and notebooks (grpo keeps all its checkpoints)."""
    return Job(
        ensure_run,
        (cache, preset),
        dict(
            scale=scale,
            task=task,
            model=model,
            seed=seed,
            progress=progress,
            overrides=keep_checkpoints_overrides(scale) if preset == "grpo" else (),
        ),
    )


def ensure_figure_runs(
    cache: str | Path | Cache,
    presets: Sequence[str],
    *,
    scale: str = "demo",
    task: str = "arith",
    model: str | None = None,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, Path]:
    """The preset runs of the figures and notebooks (grpo keeps all its checkpoints), in `workers` processes."""
    jobs = [
        figure_run_job(cache, p, scale=scale, task=task, model=model, seed=seed, progress=progress) for p in presets
    ]
    return dict(zip(presets, run_jobs(jobs, workers, progress)))


def grpo_chain(
    cache: str | Path | Cache,
    *,
    scale: str = "demo",
    task: str = "arith",
    model: str | None = None,
    seed: int = 0,
    keep_checkpoints: bool = True,
    comparison: bool = True,
    overlap_n: int | None = None,
    progress: bool = True,
) -> tuple:
    """The GRPO run, then what needs it, in one job: the sampler comparison with its last checkpoint (when
    `comparison`) and the overlap of high-entropy positions over its checkpoints (when `overlap_n`).
    Returns (run directory, Comparison or None, overlap frame or None)."""
    from entropylab.experiments.profiles import ensure_overlap
    from entropylab.experiments.samplers import ensure_comparison

    overrides = keep_checkpoints_overrides(scale) if keep_checkpoints else ()
    run = ensure_run(
        cache, "grpo", scale=scale, task=task, model=model, seed=seed, overrides=overrides, progress=progress
    )
    comp = overlap = None
    if comparison:
        from entropylab.rundir import latest_checkpoint

        comp = ensure_comparison(
            cache,
            model=model or task,
            task=task,
            scale=scale,
            grpo_checkpoint=latest_checkpoint(run),
            progress=progress,
        )
    if overlap_n is not None:
        overlap = ensure_overlap(cache, run, n=overlap_n)
    return run, comp, overlap


# --------------------------------------------------------------------------- model sizes


def ensure_base_model(
    cache: str | Path | Cache,
    size: str,
    *,
    task: str = "arith",
    scale: str = "demo",
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """A base model of `MODEL_SIZES[size]` pretrained on `task`, in the cache (reused when there).

    With `SIZE_SCALES[scale]["pretrain_steps"]` None (full scale) every size follows the shipped checkpoint's
    recipe (steps, batch, learning rate, error rate: read from its manifest), and the size of the shipped model
    is the shipped model itself; otherwise each size is pretrained for that many steps.
    """
    from entropylab.errors import ModelError
    from entropylab.models import RECIPES, pretrain, read_manifest, resolve_checkpoint

    cache = as_cache(cache)
    if size not in MODEL_SIZES:
        raise EntropylabError(f"unknown model size '{size}'; known: {', '.join(MODEL_SIZES)}")
    sizes = check_scale(scale, SIZE_SCALES)
    recipe: dict = {"steps": sizes["pretrain_steps"]}
    if sizes["pretrain_steps"] is None:
        try:
            shipped = read_manifest(task).get("params", {})
            shipped_dir = resolve_checkpoint(task)
        except ModelError:
            shipped, shipped_dir = {}, None
        same = (
            all(shipped.get(k) == v for k, v in MODEL_SIZES[size].items())
            and shipped.get("seed") == seed
            and sizes.get("difficulty") is None
        )
        if shipped_dir is not None and same:
            return shipped_dir
        accepted = inspect.signature(pretrain).parameters
        keys = (
            "steps",
            "batch_size",
            "seq_len",
            "lr",
            "error_rate",
            "clean_steps",
            "easy_share",
            "difficulty",
            "prompt_loss",
        )
        recipe = {k: shipped[k] for k in keys if k in shipped and k in accepted}
    if sizes.get("difficulty") is not None:
        recipe["difficulty"] = sizes["difficulty"]
    level = f"-d{recipe['difficulty']}" if recipe.get("difficulty") is not None else ""
    parts = {
        "task": task,
        "size": MODEL_SIZES[size],
        "recipe": {**RECIPES.get(task, {}), **recipe},
        "seed": seed,
        "eval_problems": sizes["eval_problems"],
    }

    def compute(out: Path) -> None:
        pretrain(
            task,
            out,
            seed=seed,
            eval_problems=sizes["eval_problems"],
            eval_samples=4,
            progress=progress,
            threads=1,
            **recipe,
            **MODEL_SIZES[size],
        )

    return cache.get("models", f"{task}-{size}-s{seed}{level}", parts, compute, lambda d: d)


def ensure_size_run(
    cache: str | Path | Cache,
    size: str,
    *,
    scale: str = "demo",
    task: str = "arith",
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """A short GRPO run on the base model of `size` (pretrained when missing)."""
    model = ensure_base_model(cache, size, task=task, scale=scale, seed=seed, progress=progress)
    sizes = SIZE_SCALES[scale]
    level = () if sizes.get("difficulty") is None else (f"difficulty={sizes['difficulty']}",)
    return ensure_run(
        cache,
        "grpo",
        scale=scale,
        task=task,
        model=str(model.resolve()),
        seed=seed,
        overrides=tuple(sizes["overrides"]) + level,
        name=f"{task}-grpo-{size}-s{seed}",
        progress=progress,
    )


def ensure_size_runs(
    cache: str | Path | Cache,
    *,
    scale: str = "demo",
    task: str = "arith",
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, Path]:
    """`ensure_size_run` for every size of `SIZE_SCALES[scale]`, in `workers` processes."""
    sizes = check_scale(scale, SIZE_SCALES)["sizes"]
    jobs = [Job(ensure_size_run, (cache, s), dict(scale=scale, task=task, seed=seed, progress=progress)) for s in sizes]
    return dict(zip(sizes, run_jobs(jobs, workers, progress)))
