"""The sampler experiments, each kept in the cache: the comparison against GRPO, sweeps of one option, the
exactness check on an enumerable model, and the accuracy-against-tokens frontier."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from entropylab.errors import EntropylabError
from entropylab.experiments.cache import Cache, as_cache, model_key, weights_key
from entropylab.experiments.scales import COMPARE_SCALES, EXACTNESS_SCALES, FRONTIER_SCALES, SWEEP_SCALES, check_scale

if TYPE_CHECKING:
    from entropylab.compare import Comparison


def ensure_comparison(
    cache: str | Path | Cache,
    *,
    model: str | Path = "arith",
    task: str = "arith",
    scale: str = "demo",
    alpha: float = 4.0,
    grpo_checkpoint: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Comparison:
    """Power sampling (MH, SMC) against plain and low-temperature sampling and a GRPO checkpoint
    (`compare.compare_methods` at `COMPARE_SCALES[scale]`); a `compare.Comparison`."""
    from entropylab.compare import Comparison

    sizes = check_scale(scale, COMPARE_SCALES)
    parts = {
        "model": model_key(model),
        "task": task,
        "sizes": sizes,
        "alpha": alpha,
        "seed": seed,
        "grpo": weights_key(grpo_checkpoint) if grpo_checkpoint else None,
    }

    def compute(out: Path) -> None:
        from entropylab.compare import compare_methods
        from entropylab.models import load_model

        base, tok = load_model(model)
        extra = {"grpo": str(grpo_checkpoint)} if grpo_checkpoint else None
        compare_methods(
            base,
            tok,
            task,
            methods=sizes["methods"],
            n_problems=sizes["n_problems"],
            k_max=sizes["k_max"],
            alpha=alpha,
            seed=seed,
            extra_checkpoints=extra,
            options=sizes["options"],
            progress=progress,
        ).save(out)

    name = f"{task}-{scale}-a{alpha:g}-s{seed}" + ("-grpo" if grpo_checkpoint else "")
    return as_cache(cache).get("compare", name, parts, compute, Comparison.load)


def ensure_sweep(
    cache: str | Path | Cache,
    param: str = "alpha",
    *,
    model: str | Path = "arith",
    task: str = "arith",
    scale: str = "demo",
    method: str = "mh",
    alpha: float = 4.0,
    seed: int = 0,
) -> pd.DataFrame:
    """`compare.sweep` of `method` over `SWEEP_SCALES[scale][param]` ("alpha" or "mcmc_steps")."""
    sizes = check_scale(scale, SWEEP_SCALES)
    if param not in sizes:
        raise EntropylabError(f"no sweep values for '{param}'; sweepable: alpha, mcmc_steps")
    options = sizes["options"] if method == "mh" else None
    parts = {
        "model": model_key(model),
        "task": task,
        "method": method,
        "param": param,
        "values": sizes[param],
        "n_problems": sizes["n_problems"],
        "n": sizes["n"],
        "options": options,
        "alpha": alpha,
        "seed": seed,
    }

    def compute() -> pd.DataFrame:
        from entropylab.compare import sweep
        from entropylab.models import load_model

        m, tok = load_model(model)
        return sweep(
            m,
            tok,
            task,
            param,
            sizes[param],
            method,
            n_problems=sizes["n_problems"],
            n=sizes["n"],
            alpha=alpha,
            seed=seed,
            options=options,
        )

    return as_cache(cache).frame("sweeps", f"{task}-{method}-{param}-{scale}-a{alpha:g}-s{seed}", parts, compute)


def ensure_exactness(cache: str | Path | Cache, *, scale: str = "demo", alpha: float = 2.0) -> dict:
    """`compare.exactness_demo` (samplers against the exact p^alpha of a tiny model) at `EXACTNESS_SCALES[scale]`."""
    sizes = check_scale(scale, EXACTNESS_SCALES)

    def compute(_: Path) -> dict:
        from entropylab.compare import exactness_demo

        return exactness_demo(alpha=alpha, **sizes)

    return as_cache(cache).json("exactness", f"{scale}-a{alpha:g}", {"sizes": sizes, "alpha": alpha}, compute)


def ensure_frontier(
    cache: str | Path | Cache, *, model: str | Path = "arith", task: str = "arith", scale: str = "demo", seed: int = 0
) -> pd.DataFrame:
    """`compare.frontier`: accuracy against tokens spent per answer for each sampler at the token budgets of
    `FRONTIER_SCALES[scale]` (plain and low temperature once); one row per method and budget."""
    sizes = check_scale(scale, FRONTIER_SCALES)
    parts = {"model": model_key(model), "task": task, "sizes": sizes, "seed": seed}

    def compute() -> pd.DataFrame:
        from entropylab.compare import frontier
        from entropylab.models import load_model

        m, tok = load_model(model)
        return frontier(
            m,
            tok,
            task,
            sizes["budgets"],
            sizes["methods"],
            n_problems=sizes["n_problems"],
            k_max=sizes["k_max"],
            max_new_tokens=sizes["max_new_tokens"],
            seed=seed,
        )

    return as_cache(cache).frame("frontier", f"{task}-{scale}-s{seed}", parts, compute)
