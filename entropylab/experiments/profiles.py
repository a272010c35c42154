"""Token-entropy experiments, each kept in the cache: profiles of sampled responses, the overlap of
high-entropy positions over a run's checkpoints, and the split-temperature decoding grid."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from entropylab.experiments.cache import Cache, as_cache, model_key
from entropylab.experiments.scales import GRID_SCALES, PROFILE_SCALES, check_scale


def token_profiles(
    model: str | Path = "arith", task: str = "arith", *, n: int = 64, seed: int = 0, max_new_tokens: int = 64
) -> pd.DataFrame:
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


def ensure_token_profiles(
    cache: str | Path | Cache,
    model: str | Path = "arith",
    task: str = "arith",
    *,
    n: int = 64,
    seed: int = 0,
    max_new_tokens: int = 64,
) -> pd.DataFrame:
    """`token_profiles`, cached."""
    parts = {"model": model_key(model), "task": task, "n": n, "seed": seed, "max_new_tokens": max_new_tokens}
    return as_cache(cache).frame(
        "profiles",
        f"{task}-n{n}-s{seed}",
        parts,
        lambda: token_profiles(model, task, n=n, seed=seed, max_new_tokens=max_new_tokens),
    )


def overlap_over_training(
    run_dir: str | Path, *, n: int = 64, rho: float = 0.2, seed: int = 0, max_new_tokens: int = 64
) -> pd.DataFrame:
    """Overlap of the top-`rho` entropy positions of the base model and of each kept checkpoint of a run.

    The same `n` responses (sampled from the base model on test problems) are profiled under the base model
    and under every checkpoint; one row per checkpoint step (step 0 is the base model): overlap (share of the
    base model's top positions that stay on top), and the mean entropy of the responses under that model.
    """
    import yaml

    from entropylab import rundir
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
        rows.append(
            {
                "step": step,
                "overlap": top_position_overlap(ref, prof, rho),
                "mean_entropy": float(prof["entropy"].mean()),
                "n_tokens": len(prof),
            }
        )
    out = pd.DataFrame(rows)
    out.attrs["rho"] = rho
    return out


def ensure_overlap(
    cache: str | Path | Cache,
    run_dir: str | Path,
    *,
    n: int = 64,
    rho: float = 0.2,
    seed: int = 0,
    max_new_tokens: int = 64,
) -> pd.DataFrame:
    """`overlap_over_training`, cached (computed again when the run's checkpoints change)."""
    from entropylab import rundir

    run_dir = Path(run_dir)
    parts = {
        "run": run_dir.name,
        "checkpoints": rundir.list_checkpoints(run_dir),
        "n": n,
        "rho": rho,
        "seed": seed,
        "max_new_tokens": max_new_tokens,
    }
    return as_cache(cache).frame(
        "overlap",
        f"{run_dir.name}-n{n}-r{rho:g}",
        parts,
        lambda: overlap_over_training(run_dir, n=n, rho=rho, seed=seed, max_new_tokens=max_new_tokens),
    )


def ensure_temperature_grid(
    cache: str | Path | Cache,
    *,
    model: str | Path = "arith",
    task: str = "arith",
    scale: str = "demo",
    rho: float = 0.2,
    seed: int = 0,
    max_new_tokens: int = 64,
) -> pd.DataFrame:
    """Accuracy with one temperature at high-entropy tokens (top `rho` of the model's token entropies) and
    another elsewhere, over `GRID_SCALES[scale]`; cached."""
    cache = as_cache(cache)
    sizes = check_scale(scale, GRID_SCALES)
    n_profiles = check_scale(scale, PROFILE_SCALES)["n"]
    parts = {
        "model": model_key(model),
        "task": task,
        "sizes": sizes,
        "profiles": n_profiles,
        "rho": rho,
        "seed": seed,
        "max_new_tokens": max_new_tokens,
    }

    def compute() -> pd.DataFrame:
        from entropylab.models import load_model
        from entropylab.tasks import get_task
        from entropylab.tokens import entropy_cutoff, split_temperature_runner, temperature_grid

        profile = ensure_token_profiles(cache, model, task, n=n_profiles, seed=seed, max_new_tokens=max_new_tokens)
        cutoff = entropy_cutoff(profile, rho)
        m, tok = load_model(model)
        t = get_task(task)
        problems = t.problems("test", sizes["n_problems"], seed=seed + 1)
        run = split_temperature_runner(
            m, tok, problems, t.reward, entropy_cutoff=cutoff, n=sizes["n"], max_new_tokens=max_new_tokens, seed=seed
        )
        return temperature_grid(run, sizes["t_high"], sizes["t_low"]).assign(cutoff=cutoff)

    return cache.frame("grid", f"{task}-{scale}-r{rho:g}-s{seed}", parts, compute)
