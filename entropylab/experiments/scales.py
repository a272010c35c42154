"""The sizes of the experiments per scale: "quick" for the tests, "demo" for `make demo` (minutes on 2 CPU
cores), "full" for `make figures` and `benchmarks/bench_world.py`, which share their runs."""

from __future__ import annotations

from entropylab.errors import EntropylabError

#: Trainer settings per scale: overrides on top of the preset (see entropylab.rl.config.TrainConfig).
SCALES: dict[str, dict] = {
    "quick": dict(
        steps=4,
        prompts_per_step=4,
        group_size=4,
        max_new_tokens=48,
        val_every=2,
        val_problems=16,
        dump_every=2,
        checkpoint_every=4,
        lr=1e-4,
        threads=1,
    ),
    "demo": dict(
        steps=40,
        prompts_per_step=12,
        group_size=8,
        max_new_tokens=64,
        val_every=4,
        val_problems=200,
        dump_every=4,
        checkpoint_every=20,
        lr=1e-4,
        threads=1,
    ),
}
#: full (`make figures`, `benchmarks/bench_world.py`): long enough for the collapse to finish within its first
#: 15% of steps (the law's forecast window), validated on 500 problems (standard error at most 0.022) at
#: temperature 1 every 5 steps, every 5th step dumped for the theory check; about 4 minutes a run on one core.
SCALES["full"] = dict(
    steps=120,
    prompts_per_step=16,
    group_size=8,
    max_new_tokens=64,
    val_every=5,
    val_problems=500,
    val_greedy=False,
    dump_every=5,
    checkpoint_every=60,
    lr=1e-4,
    threads=1,
)
#: The seeds of every preset run per scale: the figures draw the mean and ± one standard deviation over them.
SEEDS: dict[str, tuple[int, ...]] = {"quick": (0,), "demo": (0,), "full": (0, 1, 2)}
#: The task (and shipped model of the same name) that the demo and `benchmarks/bench_world.py` train on by default.
DEFAULT_TASK = "ladder"
#: The task (and shipped model) of the power-sampling figures: `fork`, built so that p^alpha and low temperature
#: disagree (on ladder both favour the likely, worst route).
SAMPLING_TASK = "fork"
#: Power-sampling comparison sizes per scale.
COMPARE_SCALES: dict[str, dict] = {
    "quick": dict(
        n_problems=4, k_max=2, methods=("plain", "temp", "mh"), options={"mh": {"mcmc_steps": 2, "block_size": 16}}
    ),
    "demo": dict(
        n_problems=24,
        k_max=8,
        methods=("plain", "temp", "mh", "smc"),
        options={"mh": {"mcmc_steps": 4, "block_size": 16}, "smc": {"n_particles": 8}},
    ),
    "full": dict(
        n_problems=64,
        k_max=8,
        methods=("plain", "temp", "mh", "mh_entropy", "smc", "sps"),
        options={"mh": {"mcmc_steps": 10, "block_size": 16}, "smc": {"n_particles": 16}},
    ),
}
#: The presets the demo trains, and those the figures and notebooks train.
DEMO_PRESETS: tuple[str, ...] = ("grpo", "clip_cov", "kl_cov", "top20")
FIGURE_PRESETS: tuple[str, ...] = ("grpo", "clip_cov", "kl_cov", "entropy_bonus", "clip_higher", "top20", "bottom80")
#: Tiny Qwen2 sizes of the law-against-model-size experiment ("m" is the shipped model's size).
MODEL_SIZES: dict[str, dict] = {
    "xs": dict(hidden_size=64, num_layers=2),
    "s": dict(hidden_size=128, num_layers=3),
    "m": dict(hidden_size=192, num_layers=4),
}
#: The task of the law-against-model-size experiment: every size is pretrained from scratch, as the arith recipe
#: does (ladder and fork continue from the arith checkpoint of their size).
SIZE_TASK = "arith"
#: Per scale: the sizes trained, their pretraining steps (None: the shipped recipe, `models.RECIPES`, so the
#: size of the shipped model reuses it) and evaluation problems, and the overrides of the short GRPO run on
#: each (on top of `SCALES[scale]`).
SIZE_SCALES: dict[str, dict] = {
    "quick": dict(sizes=("xs", "s"), pretrain_steps=8, eval_problems=4, overrides=()),
    "demo": dict(sizes=("xs", "s", "m"), pretrain_steps=150, eval_problems=50, overrides=("steps=24", "val_every=3")),
    "full": dict(
        sizes=("xs", "s", "m"),
        pretrain_steps=None,
        eval_problems=200,
        difficulty=1,
        overrides=("steps=60", "val_every=4", "val_problems=200", "dump_every=0"),
    ),
}
#: `difficulty` (when set) is the arith level of both pretraining and GRPO for every size: at the default level
#: the two small models barely learn the task (pass@1 0.01 and 0.04), so their law fits say nothing.
#: Sampler sweeps per scale: problems, samples per problem, the swept values and the MH options.
SWEEP_SCALES: dict[str, dict] = {
    "quick": dict(n_problems=2, n=2, alpha=(1.0, 4.0), mcmc_steps=(0, 2), options={"mcmc_steps": 2, "block_size": 16}),
    "demo": dict(
        n_problems=12,
        n=4,
        alpha=(1.0, 2.0, 4.0, 8.0),
        mcmc_steps=(0, 1, 2, 4, 8),
        options={"mcmc_steps": 4, "block_size": 16},
    ),
    "full": dict(
        n_problems=32,
        n=4,
        alpha=(1.0, 2.0, 3.0, 4.0, 6.0, 8.0),
        mcmc_steps=(0, 1, 2, 5, 10),
        options={"mcmc_steps": 5, "block_size": 16},
    ),
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
#: Sampler frontier per scale (`entropylab.compare.frontier`): problems, answers per problem, the budgets in
#: tokens evaluated per answer (2.5, 5, 10 and 20 times the 64 that plain sampling spends on arith: every method gets
#: at least two candidates, particles or MH steps' worth) and the methods.
FRONTIER_SCALES: dict[str, dict] = {
    "quick": dict(n_problems=2, k_max=1, budgets=(160.0,), methods=("best_of_n", "smc"), max_new_tokens=32),
    "demo": dict(
        n_problems=24,
        k_max=2,
        budgets=(160.0, 320.0, 640.0),
        methods=("best_of_n", "smc", "mh", "mh_entropy", "sps"),
        max_new_tokens=64,
    ),
    "full": dict(
        n_problems=100,
        k_max=2,
        budgets=(160.0, 320.0, 640.0, 1280.0),
        methods=("best_of_n", "smc", "mh", "mh_entropy", "sps"),
        max_new_tokens=64,
    ),
}


def check_scale(scale: str, table: dict) -> dict:
    """The sizes of `scale` in `table`; an unknown scale gets a one-line error naming the known ones."""
    if scale not in table:
        raise EntropylabError(f"unknown scale '{scale}'; known: {', '.join(table)}")
    return table[scale]
