"""The experiments behind the demo, the figures and the notebooks, each produced once and then reused.

Each `ensure_*` returns what is already on disk and computes it only when missing (a half-finished
training run is resumed). Sizes come from `SCALES`: "quick" for the tests, "demo" for `make demo`
(minutes on 2 CPU cores), "full" for `make figures`. The tiny model runs on one torch thread: its ops are
too small to gain from a second, and two threads stall badly whenever anything else uses a core.
"""

from __future__ import annotations

import hashlib
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from entropylab import rundir
from entropylab.errors import EntropylabError

#: Trainer settings per scale: overrides on top of the preset (see entropylab.rl.config.TrainConfig).
SCALES: dict[str, dict] = {
    "quick": dict(steps=4, prompts_per_step=4, group_size=4, max_new_tokens=48, val_every=2, val_problems=16,
                  dump_every=2, checkpoint_every=4, lr=1e-4, threads=1),
    "demo": dict(steps=40, prompts_per_step=12, group_size=8, max_new_tokens=64, val_every=4, val_problems=200,
                 dump_every=4, checkpoint_every=20, lr=1e-4, threads=1),
}
#: full (`make figures`, on arith): the demo's rollout settings at lr 5e-5, trained 2.5x longer and validated every 5
#: steps on 128 problems at temperature 1 (no greedy pass); about 5 minutes a run on one core, two runs at a time.
SCALES["full"] = {**SCALES["demo"], "steps": 100, "val_every": 5, "val_problems": 128, "val_greedy": False,
                  "dump_every": 5, "checkpoint_every": 25, "lr": 5e-5}
#: study (`benchmarks/bench_world.py`, issue 15's targets): long enough for the collapse to finish within its first
#: 15% of steps (the law's forecast window), validated on
#: 500 problems (standard error at most 0.022) every 5 steps, every 5th step dumped for the theory check.
SCALES["study"] = dict(steps=120, prompts_per_step=16, group_size=8, max_new_tokens=64, val_every=5, val_problems=500,
                       val_greedy=False, dump_every=5, checkpoint_every=60, lr=1e-4, threads=1)
#: The task (and shipped model of the same name) that the demo and `benchmarks/bench_world.py` train on by default.
DEFAULT_TASK = "ladder"
#: Power-sampling comparison sizes per scale.
COMPARE_SCALES: dict[str, dict] = {
    "quick": dict(n_problems=4, k_max=2, methods=("plain", "temp", "mh"), options={"mh": {"mcmc_steps": 2, "block_size": 16}}),
    "demo": dict(n_problems=24, k_max=8, methods=("plain", "temp", "mh", "smc"),
                 options={"mh": {"mcmc_steps": 4, "block_size": 16}, "smc": {"n_particles": 8}}),
    "full": dict(n_problems=64, k_max=8, methods=("plain", "temp", "mh", "smc"),
                 options={"mh": {"mcmc_steps": 10, "block_size": 16}, "smc": {"n_particles": 16}}),
}
DEMO_PRESETS: tuple[str, ...] = ("grpo", "clip_cov", "kl_cov", "top20")
FIGURE_PRESETS: tuple[str, ...] = ("grpo", "clip_cov", "kl_cov", "entropy_bonus", "clip_higher", "top20", "bottom80")


def _check_scale(scale: str, table: dict) -> dict:
    if scale not in table:
        raise EntropylabError(f"unknown scale '{scale}'; known: {', '.join(table)}")
    return table[scale]


#: File in an experiment run naming the fingerprint of the base model's weights it was trained from.
BASE_WEIGHTS = "base_weights.key"


def run_name(preset: str, task: str, seed: int) -> str:
    return f"{task}-{preset}-s{seed}"


def ensure_run(preset: str, root: str | Path, *, scale: str = "demo", task: str = "arith", model: str | None = None,
               seed: int = 0, overrides: Sequence[str] = (), progress: bool = True) -> Path:
    """A finished training run of `preset` under ROOT (trained, resumed or reused); returns its directory."""
    from entropylab.rl.trainer import train

    cfg = _run_config(preset, scale, task, model, seed, overrides)
    run_dir = Path(root) / run_name(preset, task, seed)
    changed = _changed_settings(run_dir, cfg)
    if changed:  # same name, other settings: resuming would continue the old configuration
        warnings.warn(f"{run_dir} was trained with other settings ({', '.join(changed)}): training it again",
                      stacklevel=2)
        shutil.rmtree(run_dir)
    done = [r for r in rundir.read_metrics(run_dir) if r.get("step") == cfg.steps]
    if done and rundir.list_checkpoints(run_dir):
        return run_dir
    if rundir.list_checkpoints(run_dir):
        return train(cfg, run_dir, resume=True, progress=progress)
    shutil.rmtree(run_dir, ignore_errors=True)  # started but never checkpointed: start again
    run_dir.mkdir(parents=True)
    (run_dir / BASE_WEIGHTS).write_text(_weights_key(cfg.model) + "\n")
    return train(cfg, run_dir, progress=progress)


def _run_config(preset: str, scale: str, task: str, model: str | None, seed: int, overrides: Sequence[str]):
    """The trainer config of an experiment run: the preset, then the scale's sizes, then `overrides`."""
    from entropylab.rl.config import resolve_config

    values = {**_check_scale(scale, SCALES), "task": task, "model": model or task, "seed": seed}
    return resolve_config(preset, overrides=[f"{k}={v}" for k, v in values.items()] + list(overrides))


def _changed_settings(run_dir: Path, cfg) -> list[str]:
    """Config fields whose saved value in RUN_DIR differs from `cfg` (empty when none is saved), and
    "base model weights" when the run was trained from other weights than `cfg.model`'s now (re-shipped)."""
    from entropylab.rl.config import resolve_config

    saved_path = run_dir / rundir.CONFIG
    if not saved_path.exists():
        return []
    saved, wanted = resolve_config("grpo", saved_path).to_dict(), cfg.to_dict()
    changed = [k for k in wanted if saved.get(k) != wanted[k]]
    stamp = run_dir / BASE_WEIGHTS
    if not stamp.is_file() or stamp.read_text().strip() != _weights_key(cfg.model):
        changed.append("base model weights")
    return changed


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


def comparison_dir(root: str | Path, *, model: str | Path = "arith", task: str = "arith", scale: str = "demo",
                   alpha: float = 4.0, grpo_checkpoint: str | Path | None = None, seed: int = 0) -> Path:
    """Where `ensure_comparison` caches: named by its settings and the weights of the models it samples."""
    grpo = f"-grpo-{_weights_key(grpo_checkpoint)}" if grpo_checkpoint else ""
    return Path(root) / f"compare-{task}-{scale}-a{alpha:g}-s{seed}-{_cache_name(model)}{grpo}"


def ensure_comparison(root: str | Path, *, model: str = "arith", task: str = "arith", scale: str = "demo",
                      alpha: float = 4.0, grpo_checkpoint: str | Path | None = None, seed: int = 0,
                      progress: bool = True):
    """Power sampling (MH, SMC) against plain and low-temperature sampling and a GRPO checkpoint; cached."""
    from entropylab.compare import Comparison, compare_methods
    from entropylab.models import load_model

    out = comparison_dir(root, model=model, task=task, scale=scale, alpha=alpha, grpo_checkpoint=grpo_checkpoint,
                         seed=seed)
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


# --------------------------------------------------------------------------- figures and notebooks
# What `entropylab.figures` and the notebooks add on top of the runs above: several runs at once (in
# parallel processes where there are cores), base models of several sizes, token profiles, the overlap of
# high-entropy positions over training, the split-temperature grid, sampler sweeps and the exactness check.
# Every `ensure_*` caches its result under the given root and reuses it.

#: Tiny Qwen2 sizes of the law-against-model-size experiment ("m" is the shipped model's size).
MODEL_SIZES: dict[str, dict] = {
    "xs": dict(hidden_size=64, num_layers=2),
    "s": dict(hidden_size=128, num_layers=3),
    "m": dict(hidden_size=192, num_layers=4),
}
#: Per scale: the sizes trained, their pretraining steps (None: the shipped recipe, `models.RECIPES`, so the
#: size of the shipped model reuses it) and evaluation problems, and the overrides of the short GRPO run on
#: each (on top of `SCALES[scale]`).
SIZE_SCALES: dict[str, dict] = {
    "quick": dict(sizes=("xs", "s"), pretrain_steps=8, eval_problems=4, overrides=()),
    "demo": dict(sizes=("xs", "s", "m"), pretrain_steps=150, eval_problems=50, overrides=("steps=24", "val_every=3")),
    "full": dict(sizes=("xs", "s", "m"), pretrain_steps=None, eval_problems=200, difficulty=1,
                 overrides=("steps=60", "val_every=4", "dump_every=0")),
}
#: `difficulty` (when set) is the arith level of both pretraining and GRPO for every size: at the default level
#: the two small models barely learn the task (pass@1 0.01 and 0.04), so their law fits say nothing.
#: Sampler sweeps per scale: problems, samples per problem, the swept values and the MH options.
SWEEP_SCALES: dict[str, dict] = {
    "quick": dict(n_problems=2, n=2, alpha=(1.0, 4.0), mcmc_steps=(0, 2), options={"mcmc_steps": 2, "block_size": 16}),
    "demo": dict(n_problems=12, n=4, alpha=(1.0, 2.0, 4.0, 8.0), mcmc_steps=(0, 1, 2, 4, 8),
                 options={"mcmc_steps": 4, "block_size": 16}),
    "full": dict(n_problems=32, n=4, alpha=(1.0, 2.0, 3.0, 4.0, 6.0, 8.0), mcmc_steps=(0, 1, 2, 5, 10),
                 options={"mcmc_steps": 5, "block_size": 16}),
}
#: Split-temperature decoding grid per scale (Wang et al.'s decoding experiment).
GRID_SCALES: dict[str, dict] = {
    "quick": dict(n_problems=4, n=1, t_high=(0.5, 1.0), t_low=(1.0,)),
    "demo": dict(n_problems=32, n=2, t_high=(0.5, 0.75, 1.0, 1.25, 1.5), t_low=(0.5, 1.0, 1.5)),
    "full": dict(n_problems=64, n=4, t_high=(0.25, 0.5, 0.75, 1.0, 1.25, 1.5), t_low=(0.5, 1.0, 1.5)),
}
#: Token-profile and overlap sizes per scale: responses profiled.
PROFILE_SCALES: dict[str, dict] = {"quick": dict(n=8), "demo": dict(n=96), "full": dict(n=256)}
#: MH/SMC exactness check per scale (`entropylab.compare.exactness_demo` options).
EXACTNESS_SCALES: dict[str, dict] = {
    "quick": dict(n_chains=300, mcmc_steps=8),
    "demo": dict(n_chains=2000, mcmc_steps=20),
    "full": dict(n_chains=4000, mcmc_steps=30),
}


def _init_worker() -> None:
    import os

    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


class _NotCached(Exception):
    """Raised by an `ensure_*` asked for a cached result only (see `run_jobs`) when it would have to compute."""


_CACHED_ONLY = False


def _may_compute() -> None:
    if _CACHED_ONLY:
        raise _NotCached


def _from_cache(job: tuple) -> tuple[bool, object]:
    """(True, result) when the job's result is already on disk, else (False, None); computes nothing."""
    global _CACHED_ONLY
    f, a, k = job
    _CACHED_ONLY = True
    try:
        return True, f(*a, **k)
    except _NotCached:
        return False, None
    finally:
        _CACHED_ONLY = False


def default_workers(workers: int | None = None) -> int:
    """`workers` if given, else one process per core this process may use, at most 2."""
    import os

    if workers is not None:
        return max(1, int(workers))
    return max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def run_jobs(jobs: Sequence[tuple], workers: int = 1, progress: bool = True) -> list:
    """Run `(function, args, kwargs)` jobs (this module's `ensure_*`) and return their results in order.

    With `workers > 1`, the jobs whose results are not on disk yet run in that many spawned processes, one
    torch thread each: the tiny model gains nothing from a second thread, but two processes use two cores.
    """
    import time

    jobs = [(f, tuple(a), dict(k)) for f, a, k in jobs]
    if workers <= 1:
        return [f(*a, **k) for f, a, k in jobs]
    cached = [_from_cache(job) for job in jobs]
    todo = [i for i, (hit, _) in enumerate(cached) if not hit]
    results = [r for _, r in cached]
    if len(todo) <= 1:
        for i in todo:
            f, a, k = jobs[i]
            results[i] = f(*a, **k)
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    start = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx, initializer=_init_worker) as pool:
        futures = {}
        for i in todo:
            f, a, k = jobs[i]
            futures[i] = pool.submit(f, *a, **({**k, "progress": False} if "progress" in k else k))
        for i in todo:  # one line per finished job instead of interleaved progress bars
            results[i] = futures[i].result()
            if progress:
                f, a, _ = jobs[i]
                what = ", ".join(str(x) for x in a if not isinstance(x, Path) and "/" not in str(x))
                print(f"  done {f.__name__}({what}) at {time.perf_counter() - start:.0f} s", flush=True)
    return results


def keep_checkpoints_overrides(scale: str) -> tuple[str, ...]:
    """Overrides that keep about eight checkpoints of a run (for the overlap of high-entropy positions)."""
    steps = _check_scale(scale, SCALES)["steps"]
    return (f"checkpoint_every={max(1, steps // 8)}", "keep_checkpoints=1000")


def run_done(preset: str, root: str | Path, *, scale: str = "demo", task: str = "arith", model: str | None = None,
             seed: int = 0, overrides: Sequence[str] = (), progress: bool = True) -> bool:
    """Whether `ensure_run` with these arguments would reuse a finished run (as it decides it)."""

    cfg = _run_config(preset, scale, task, model, seed, overrides)
    run_dir = Path(root) / run_name(preset, task, seed)
    if _changed_settings(run_dir, cfg):
        return False
    done = [r for r in rundir.read_metrics(run_dir) if r.get("step") == cfg.steps]
    return bool(done and rundir.list_checkpoints(run_dir))


def figure_run(preset: str, root: str | Path, **kw) -> Path:
    """`ensure_run` that, under `run_jobs`' cache check, says when it would train."""
    if _CACHED_ONLY and not run_done(preset, root, **kw):
        raise _NotCached
    return ensure_run(preset, root, **kw)


def figure_comparison(root: str | Path, *, model: str | Path = "arith", task: str = "arith", scale: str = "demo",
                      alpha: float = 4.0, grpo_checkpoint: str | Path | None = None, seed: int = 0, **kw):
    """`ensure_comparison` that, under `run_jobs`' cache check, says when it would sample."""
    where = dict(model=model, task=task, scale=scale, alpha=alpha, grpo_checkpoint=grpo_checkpoint, seed=seed)
    if _CACHED_ONLY and not (comparison_dir(root, **where) / "meta.json").exists():
        raise _NotCached
    return ensure_comparison(root, **where, **kw)


def figure_run_job(preset: str, root: str | Path, *, scale: str = "demo", task: str = "arith",
                   model: str | None = None, seed: int = 0, progress: bool = True) -> tuple:
    """The `run_jobs` job of one preset run of the figures and notebooks (grpo keeps all its checkpoints)."""
    return (figure_run, (preset, root), dict(scale=scale, task=task, model=model, seed=seed, progress=progress,
                                             overrides=keep_checkpoints_overrides(scale) if preset == "grpo" else ()))


def ensure_figure_runs(presets: Sequence[str], root: str | Path, *, scale: str = "demo", task: str = "arith",
                       model: str | None = None, seed: int = 0, workers: int = 1,
                       progress: bool = True) -> dict[str, Path]:
    """`ensure_runs` for the figures and notebooks: the grpo run keeps all its checkpoints; `workers` processes."""
    jobs = [figure_run_job(p, root, scale=scale, task=task, model=model, seed=seed, progress=progress)
            for p in presets]
    return dict(zip(presets, run_jobs(jobs, workers, progress)))


def ensure_base_model(size: str, root: str | Path, *, task: str = "arith", scale: str = "demo", seed: int = 0,
                      progress: bool = True) -> Path:
    """A base model of `MODEL_SIZES[size]` pretrained on `task`, under ROOT/models (reused when there).

    With `SIZE_SCALES[scale]["pretrain_steps"]` None (full scale) every size follows the shipped checkpoint's
    recipe (steps, batch, learning rate, error rate: read from its manifest), and the size of the shipped model
    is the shipped model itself; otherwise each size is pretrained for that many steps.
    """
    import inspect

    from entropylab.errors import ModelError
    from entropylab.models import RECIPES, pretrain, read_manifest, resolve_checkpoint

    if size not in MODEL_SIZES:
        raise EntropylabError(f"unknown model size '{size}'; known: {', '.join(MODEL_SIZES)}")
    sizes = _check_scale(scale, SIZE_SCALES)
    recipe: dict = {"steps": sizes["pretrain_steps"]}
    if sizes["pretrain_steps"] is None:
        try:
            shipped = read_manifest(task).get("params", {})
            shipped_dir = resolve_checkpoint(task)
        except ModelError:
            shipped, shipped_dir = {}, None
        same = (all(shipped.get(k) == v for k, v in MODEL_SIZES[size].items()) and shipped.get("seed") == seed
                and sizes.get("difficulty") is None)
        if shipped_dir is not None and same:
            return shipped_dir
        accepted = inspect.signature(pretrain).parameters
        keys = ("steps", "batch_size", "seq_len", "lr", "error_rate", "clean_steps", "easy_share", "difficulty",
                "prompt_loss")
        recipe = {k: shipped[k] for k in keys if k in shipped and k in accepted}
    if sizes.get("difficulty") is not None:
        recipe["difficulty"] = sizes["difficulty"]
    level = f"-d{recipe['difficulty']}" if recipe.get("difficulty") is not None else ""
    key = hashlib.blake2b(repr(sorted({**RECIPES.get(task, {}), **recipe}.items())).encode(), digest_size=4).hexdigest()
    out = Path(root) / "models" / f"{task}-{size}-{scale}-s{seed}{level}-{key}"  # another recipe: trained again
    if (out / "model_card.md").is_file():  # written last
        return out
    _may_compute()
    pretrain(task, out, seed=seed, eval_problems=sizes["eval_problems"], eval_samples=4, progress=progress,
             threads=1, **recipe, **MODEL_SIZES[size])
    return out


def ensure_size_run(size: str, root: str | Path, *, scale: str = "demo", task: str = "arith", seed: int = 0,
                    progress: bool = True) -> Path:
    """A short GRPO run on the base model of `size` (pretrained when missing), under ROOT/sizes/SIZE."""
    model = ensure_base_model(size, root, task=task, scale=scale, seed=seed, progress=progress)
    sizes = SIZE_SCALES[scale]
    level = () if sizes.get("difficulty") is None else (f"difficulty={sizes['difficulty']}",)
    return figure_run("grpo", Path(root) / "sizes" / size, scale=scale, task=task, model=str(model.resolve()),
                      seed=seed, overrides=tuple(sizes["overrides"]) + level, progress=progress)


def ensure_size_runs(root: str | Path, *, scale: str = "demo", task: str = "arith", seed: int = 0, workers: int = 1,
                     progress: bool = True) -> dict[str, Path]:
    """`ensure_size_run` for every size of `SIZE_SCALES[scale]`, in `workers` processes."""
    sizes = _check_scale(scale, SIZE_SCALES)["sizes"]
    jobs = [(ensure_size_run, (s, root), dict(scale=scale, task=task, seed=seed, progress=progress)) for s in sizes]
    return dict(zip(sizes, run_jobs(jobs, workers, progress)))


def law_by_size(runs: dict[str, Path], score: str = "val/acc") -> dict:
    """The law fitted on each size's run, and a table of a, b and the ceiling against parameter count."""
    from entropylab.models import load_model, n_params

    res = law_of_runs(runs, score=score)
    rows = []
    for size, run in runs.items():
        fit = res["fits"].get(size)
        rows.append({"size": size, "n_params": n_params(load_model(rundir.latest_checkpoint(run))[0]),
                     "a": fit.a if fit else float("nan"), "b": fit.b if fit else float("nan"),
                     "ceiling": fit.ceiling if fit else float("nan"), "r2": fit.r2 if fit else float("nan"),
                     "ok": bool(fit.ok) if fit else False})
    return {**res, "table": pd.DataFrame(rows)}


def run_points(runs: dict[str, Path], score: str = "val/acc") -> pd.DataFrame:
    """The law's fit points (run, step, entropy, score) of entropylab runs."""
    from entropylab import logs

    return logs.points(run_metrics(runs), score=score)


def _weights_key(model: str | Path) -> str:
    """Short fingerprint of a checkpoint's weight files (names, sizes, modification times), cheap even for
    large checkpoints: a cache made from other weights under the same name is not reused."""
    from entropylab.models import resolve_checkpoint

    h = hashlib.blake2b(digest_size=4)
    for f in sorted(resolve_checkpoint(model).iterdir()):
        if f.suffix in (".safetensors", ".bin", ".pt", ".pth"):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def _cache_name(model: str | Path) -> str:
    """The model's name, file-system safe, with the fingerprint of its weights."""
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(str(model)).name)
    return f"{name}-{_weights_key(model)}"


def ensure_token_profiles(root: str | Path, model: str | Path = "arith", task: str = "arith", *, n: int = 64,
                          seed: int = 0, max_new_tokens: int = 64) -> pd.DataFrame:
    """`token_profiles` cached as Parquet under ROOT/profiles."""
    path = Path(root) / "profiles" / f"{_cache_name(model)}-{task}-n{n}-t{max_new_tokens}-s{seed}.parquet"
    if path.exists():
        return pd.read_parquet(path)
    _may_compute()
    profile = token_profiles(model, task, n=n, seed=seed, max_new_tokens=max_new_tokens)
    path.parent.mkdir(parents=True, exist_ok=True)
    profile.to_parquet(path)
    return profile


def overlap_over_training(run_dir: str | Path, *, n: int = 64, rho: float = 0.2, seed: int = 0,
                          max_new_tokens: int = 64) -> pd.DataFrame:
    """Overlap of the top-`rho` entropy positions of the base model and of each kept checkpoint of a run.

    The same `n` responses (sampled from the base model on test problems) are profiled under the base model
    and under every checkpoint; one row per checkpoint step (step 0 is the base model): overlap (share of the
    base model's top positions that stay on top), and the mean entropy of the responses under that model.
    """
    import yaml

    from entropylab.generation import sample
    from entropylab.models import load_model
    from entropylab.tasks import get_task
    from entropylab.tokens import entropy_profile, top_position_overlap

    run_dir = Path(run_dir)
    cfg = yaml.safe_load((run_dir / rundir.CONFIG).read_text())
    base, tok = load_model(cfg["model"])
    problems = get_task(cfg["task"]).problems("test", n, seed=seed)
    prompts = [p.prompt for p in problems]
    texts = sample(base, tok, prompts, n=1, max_new_tokens=max_new_tokens, temperature=1.0, seed=seed).texts

    def profile(m, t) -> pd.DataFrame:
        p = entropy_profile(m, t, texts, prompts=prompts, top_k=0)
        return p[~p["in_prompt"]]

    ref = profile(base, tok)
    rows = [{"step": 0, "overlap": 1.0, "mean_entropy": float(ref["entropy"].mean()), "n_tokens": len(ref)}]
    for step in rundir.list_checkpoints(run_dir):
        m, t = load_model(rundir.checkpoint_dir(run_dir, step))
        prof = profile(m, t)
        rows.append({"step": step, "overlap": top_position_overlap(ref, prof, rho),
                     "mean_entropy": float(prof["entropy"].mean()), "n_tokens": len(prof)})
    out = pd.DataFrame(rows)
    out.attrs["rho"] = rho
    return out


def ensure_overlap(run_dir: str | Path, root: str | Path, *, n: int = 64, rho: float = 0.2, seed: int = 0,
                   max_new_tokens: int = 64) -> pd.DataFrame:
    """`overlap_over_training` cached as CSV under ROOT/overlap (recomputed when the run's checkpoints change)."""

    run_dir = Path(run_dir)
    path = Path(root) / "overlap" / f"{run_dir.name}-n{n}-r{rho:g}-s{seed}.csv"
    if path.exists():
        cached = pd.read_csv(path)
        if cached["step"].tolist()[1:] == rundir.list_checkpoints(run_dir):
            return cached
    _may_compute()
    out = overlap_over_training(run_dir, n=n, rho=rho, seed=seed, max_new_tokens=max_new_tokens)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    return out


def ensure_temperature_grid(root: str | Path, *, model: str | Path = "arith", task: str = "arith",
                            scale: str = "demo", rho: float = 0.2, seed: int = 0,
                            max_new_tokens: int = 64) -> pd.DataFrame:
    """Accuracy with one temperature at high-entropy tokens (top `rho` of the model's token entropies) and
    another elsewhere, over `GRID_SCALES[scale]`; cached as CSV under ROOT/grid."""
    from entropylab.models import load_model
    from entropylab.tasks import get_task
    from entropylab.tokens import entropy_cutoff, split_temperature_runner, temperature_grid

    sizes = _check_scale(scale, GRID_SCALES)
    path = Path(root) / "grid" / f"{_cache_name(model)}-{task}-{scale}-r{rho:g}-s{seed}.csv"
    if path.exists():
        return pd.read_csv(path)
    _may_compute()
    profile = ensure_token_profiles(root, model, task, n=_check_scale(scale, PROFILE_SCALES)["n"], seed=seed,
                                    max_new_tokens=max_new_tokens)
    cutoff = entropy_cutoff(profile, rho)
    m, tok = load_model(model)
    t = get_task(task)
    problems = t.problems("test", sizes["n_problems"], seed=seed + 1)
    run = split_temperature_runner(m, tok, problems, t.reward, entropy_cutoff=cutoff, n=sizes["n"],
                                   max_new_tokens=max_new_tokens, seed=seed)
    grid = temperature_grid(run, sizes["t_high"], sizes["t_low"]).assign(cutoff=cutoff)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.to_csv(path, index=False)
    return grid


def ensure_sweep(root: str | Path, param: str = "alpha", *, model: str | Path = "arith", task: str = "arith",
                 scale: str = "demo", method: str = "mh", alpha: float = 4.0, seed: int = 0) -> pd.DataFrame:
    """`compare.sweep` of `method` over `SWEEP_SCALES[scale][param]` ("alpha" or "mcmc_steps"); cached as CSV."""
    from entropylab.compare import sweep
    from entropylab.models import load_model

    sizes = _check_scale(scale, SWEEP_SCALES)
    if param not in sizes:
        raise EntropylabError(f"no sweep values for '{param}'; sweepable: alpha, mcmc_steps")
    path = Path(root) / "sweeps" / f"{_cache_name(model)}-{task}-{method}-{param}-{scale}-a{alpha:g}-s{seed}.csv"
    if path.exists():
        return pd.read_csv(path)
    _may_compute()
    m, tok = load_model(model)
    table = sweep(m, tok, task, param, sizes[param], method, n_problems=sizes["n_problems"], n=sizes["n"],
                  alpha=alpha, seed=seed, options=sizes["options"] if method == "mh" else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return table


def ensure_exactness(root: str | Path, *, scale: str = "demo", alpha: float = 2.0) -> dict:
    """`compare.exactness_demo` (samplers against the exact p^alpha of a tiny model) at `EXACTNESS_SCALES[scale]`,
    cached as JSON under ROOT/exactness."""
    import json

    from entropylab.compare import exactness_demo

    path = Path(root) / "exactness" / f"{scale}-a{alpha:g}.json"
    if path.exists():
        return json.loads(path.read_text())
    _may_compute()
    result = exactness_demo(alpha=alpha, **_check_scale(scale, EXACTNESS_SCALES))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=float))
    return result
