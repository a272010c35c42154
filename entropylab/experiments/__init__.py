"""The experiments behind the demo, the figures and the notebooks, each computed once and then reused.

Each `ensure_*` takes a cache (a `Cache`, or a root folder) first and returns the result kept there,
computing it only when missing (a half-finished training run is resumed); `run_jobs` runs several of them
in worker processes. Sizes come from the scale tables of `scales`.
"""

from entropylab.experiments.cache import (
    Cache,
    Job,
    NotCached,
    as_cache,
    default_workers,
    files_key,
    fingerprint,
    model_key,
    run_jobs,
    weights_key,
)
from entropylab.experiments.laws import (
    REAL_LOGS,
    law_by_size,
    law_of_logs,
    law_of_runs,
    run_metrics,
    run_points,
    run_summary,
)
from entropylab.experiments.profiles import (
    ensure_overlap,
    ensure_temperature_grid,
    ensure_token_profiles,
    overlap_over_training,
    token_profiles,
)
from entropylab.experiments.runs import (
    ensure_base_model,
    ensure_figure_runs,
    ensure_run,
    ensure_runs,
    ensure_size_run,
    ensure_size_runs,
    figure_run_job,
    grpo_chain,
    keep_checkpoints_overrides,
    run_config,
    run_location,
    run_name,
)
from entropylab.experiments.samplers import ensure_comparison, ensure_exactness, ensure_frontier, ensure_sweep
from entropylab.experiments.scales import (
    COMPARE_SCALES,
    DEFAULT_TASK,
    DEMO_PRESETS,
    EXACTNESS_SCALES,
    FIGURE_PRESETS,
    FRONTIER_SCALES,
    GRID_SCALES,
    MODEL_SIZES,
    PROFILE_SCALES,
    SCALES,
    SIZE_SCALES,
    SWEEP_SCALES,
    check_scale,
)

__all__ = [
    "COMPARE_SCALES", "DEFAULT_TASK", "DEMO_PRESETS", "EXACTNESS_SCALES", "FIGURE_PRESETS", "FRONTIER_SCALES",
    "GRID_SCALES", "MODEL_SIZES", "PROFILE_SCALES", "REAL_LOGS", "SCALES", "SIZE_SCALES", "SWEEP_SCALES", "Cache",
    "Job", "NotCached", "as_cache", "check_scale", "default_workers", "ensure_base_model", "ensure_comparison",
    "ensure_exactness", "ensure_figure_runs", "ensure_frontier", "ensure_overlap", "ensure_run", "ensure_runs",
    "ensure_size_run", "ensure_size_runs", "ensure_sweep", "ensure_temperature_grid", "ensure_token_profiles",
    "figure_run_job", "files_key", "fingerprint", "grpo_chain", "keep_checkpoints_overrides", "law_by_size",
    "law_of_logs", "law_of_runs", "model_key", "overlap_over_training", "run_config", "run_jobs", "run_location",
    "run_metrics", "run_name", "run_points", "run_summary", "token_profiles", "weights_key",
]
