"""Clip-Cov, KL-Cov and the 80/20 entropy mask inside TRL's ``GRPOTrainer``, plus entropylab's rollout dumps.

TRL has no loss registry: ``GRPOTrainer._compute_loss(model, inputs)`` is its override point. ``EntropyGRPOTrainer``
overrides it, computes TRL's own tensors (per-token log-probs and entropies of the current policy, the
behaviour policy's ``old_per_token_logps``, the advantages, the completion mask, the reference log-probs)
and hands them to entropylab's :func:`~entropylab.rl.losses.compute_policy_loss` -- the very function
entropylab's own trainer calls. Options live in :class:`EntropyGRPOConfig` as flat ``entropylab_*`` fields,
so ``HfArgumentParser`` and TRL's CLI read them like any other GRPO option::

    from entropylab.integrations.trl import EntropyGRPOConfig, EntropyGRPOTrainer

    args = EntropyGRPOConfig(output_dir="out", epsilon=1.0, entropylab_policy_loss="clip_cov",
                             entropylab_dump_every=10)
    EntropyGRPOTrainer(model=path, reward_funcs=reward, args=args, train_dataset=ds).train()

What comes from TRL's own options (one source of truth): the PPO window (``epsilon``, ``epsilon_high``: the
Clip-Cov recipe's window [0, 2] is ``epsilon=1.0``), the reference KL (``beta`` -> ``kl_coef`` with TRL's
k3 estimator, without TRL's importance-sampling correction of the KL) and the aggregation (``loss_type``:
``dapo`` and ``bnpo`` -> token-mean, ``grpo`` -> seq-mean-token-mean, ``dr_grpo`` ->
seq-mean-token-sum-norm over ``max_completion_length``, each scaled for gradient accumulation exactly as
TRL scales it). TRL's own ``top_entropy_quantile = q < 1`` is translated into entropylab's mask (top,
rho = q, batch scope, TRL's quantile cutoff, normalised by all tokens), which reproduces TRL's behaviour.

Scopes with several processes. The tensors of one ``_compute_loss`` call are one micro-batch of one process
(entropylab's ``"micro"`` scope, the reference implementation's behaviour). ``"batch"`` scope means all
processes' tokens of that micro-step -- with ``gradient_accumulation_steps = 1`` the whole rollout batch:

- ``entropylab_entropy_scope="batch"``: the cutoff is computed over every process's entropies (gathered,
  as TRL gathers them for its own ``top_entropy_quantile``) and passed as ``entropy_cutoff``;
- ``entropylab_cov_scope="batch"`` (Clip-Cov/KL-Cov): the centre comes from the all-reduced
  ``covariance_sums``; and so that the token *selection* (Clip-Cov's ``int(r * n)`` random draws, KL-Cov's
  top-k) is exactly the one a single process would make over all tokens, every process gathers the
  (detached) tensors of all processes, splices its own gradient-carrying tensors in, and evaluates the loss
  over the whole micro-step with the same random seed. The loss is multiplied by the number of processes,
  because data parallelism averages gradients (so TRL's logged ``loss`` is then that multiple of
  ``entropylab/loss``, the loss itself). This costs an all-gather of a few ``[B, T]`` tensors.
  With one process both scopes give the same numbers. ``cov_scope="batch"`` with ``entropy_scope="micro"``
  on several processes is refused: the shared loss needs a shared mask.

Per-process ("micro") losses are weighted as entropylab's own trainer weights micro-batches: for
``loss_type="dapo"`` by the micro-batch's share of the rollout batch's valid tokens (TRL's own normaliser),
otherwise by ``1 / gradient_accumulation_steps``.

Rollout dumps: a ``transformers.TrainerCallback`` never sees the loss tensors, so the trainer records the
rows and :class:`EntropyDumpCallback` gathers them across processes and writes
``OUTPUT_DIR/rollouts/step_000010.parquet`` (``entropylab.rundir.DUMP_COLUMNS``) at the end of the
step: the rollouts that update N trains on, with ``logprob`` and ``entropy`` from the policy before update N (at
TRL's ``temperature``: exact temperature-1 values for the usual temperature 1), rows recorded at the first pass
over a rollout batch only (later ``num_iterations`` passes reuse it and are not dumped again); ``prompt_id`` and
``sample_id`` index the rollout batch (``prompt_id = row // num_generations``). ``entropylab diagnose OUTPUT_DIR`` and ``entropylab.logs.load(OUTPUT_DIR)`` (TRL's
``trainer_state.json``) then read the run. Metrics are logged through TRL's own metric store as
``entropylab/<name>`` (``entropylab/clip_cov_frac``, ``entropylab/cov/top0.2%``, ...).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from entropylab.errors import ConfigError

try:
    import trl
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"entropylab.integrations.trl needs TRL ({err}); install it with: pip install 'entropylab[trl]'"
    ) from err

from entropylab.cutoff import quantile_cutoff
from entropylab.integrations.law_callback import LawForecastCallback
from entropylab.rl.losses import (
    COV_POLICY_LOSSES,
    LossOptions,
    center_from_sums,
    compute_policy_loss,
    covariance_sums,
    entropy_threshold,
    token_covariance,
)
from entropylab.seeding import derive_seed

__all__ = [
    "SUPPORTED_TRL",
    "EntropyDumpCallback",
    "LawForecastCallback",
    "EntropyGRPOConfig",
    "EntropyGRPOTrainer",
    "ScopeLoss",
    "TrainerStateWriter",
    "batch_center",
    "batch_entropy_cutoff",
    "check_trl_version",
    "entropylab_loss",
    "loss_options",
    "problems_dataset",
    "task_reward_function",
]

#: TRL versions whose ``GRPOTrainer._compute_loss(model, inputs)``, 3-tuple
#: ``_get_per_token_logps_and_entropies``, ``_calculate_rewards`` and ``inputs`` keys this module relies on
#: (read in the 1.14.0, 1.15.0 and 1.16.0 sources; tested on 1.16.0).
SUPPORTED_TRL = ">=1.14,<1.17"
_TRL_MIN, _TRL_MAX = (1, 14), (1, 17)

#: TRL loss_type -> entropylab aggregation; the other loss types have their own per-token losses.
AGG_OF_LOSS_TYPE = {
    "dapo": "token-mean",
    "bnpo": "token-mean",
    "grpo": "seq-mean-token-mean",
    "dr_grpo": "seq-mean-token-sum-norm",
}
CUTOFFS = ("topk", "quantile")
COV_QUANTILES = (0.002, 0.02, 0.2)  # as entropylab's trainer: logged as entropylab/cov/top0.2% ...
PREFIX = "entropylab/"
# multimodal / tool inputs TRL forwards to the model when it scores completions
_FORWARD_KEYS = (
    "pixel_values",
    "image_grid_thw",
    "num_images",
    "pixel_attention_mask",
    "spatial_shapes",
    "num_tiles",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
)


def _version_tuple(version: str) -> tuple[int, ...]:
    from packaging.version import Version

    return Version(version).release


def check_trl_version(version: str | None = None) -> str:
    """The installed (or given) TRL version; ConfigError when it is outside :data:`SUPPORTED_TRL`."""
    version = trl.__version__ if version is None else version
    release = _version_tuple(version)[:2]
    if not _TRL_MIN <= release < _TRL_MAX:
        raise ConfigError(
            f"entropylab.integrations.trl supports trl{SUPPORTED_TRL}, but trl {version} is installed: it relies "
            f"on GRPOTrainer._compute_loss and the tensors TRL hands it; install a supported version with "
            f"pip install 'trl{SUPPORTED_TRL}'"
        )
    return version


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


@dataclass
class EntropyGRPOConfig(GRPOConfig):
    """``GRPOConfig`` plus entropylab's loss options (flat ``entropylab_*`` fields, as HfArgumentParser needs).

    Defaults are entropylab's (``LossOptions``); the PPO window, KL and aggregation come from TRL's own
    ``epsilon``/``epsilon_high``, ``beta`` and ``loss_type`` (see the module docstring).
    """

    entropylab_policy_loss: str = field(default="vanilla", metadata={"help": "vanilla | clip_cov | kl_cov"})
    entropylab_clip_ratio_c: float | None = field(
        default=None, metadata={"help": "dual-clip bound for vanilla (None: off, as TRL)"}
    )
    entropylab_clip_cov_ratio: float = field(default=2e-4, metadata={"help": "Clip-Cov: fraction r of tokens zeroed"})
    entropylab_clip_cov_lb: float = field(default=1.0, metadata={"help": "Clip-Cov: lower covariance bound"})
    entropylab_clip_cov_ub: float = field(default=5.0, metadata={"help": "Clip-Cov: upper covariance bound"})
    entropylab_kl_cov_ratio: float = field(default=2e-3, metadata={"help": "KL-Cov: fraction k of tokens penalised"})
    entropylab_kl_cov_coef: float = field(default=1.0, metadata={"help": "KL-Cov: coefficient beta"})
    entropylab_cov_scope: str = field(
        default="micro",
        metadata={"help": "micro | batch (all processes) | state (advantage centred over this process)"},
    )
    entropylab_entropy_mask: str | None = field(default=None, metadata={"help": "None | top | bottom"})
    entropylab_rho: float = field(default=0.2, metadata={"help": "entropy mask: top fraction rho"})
    entropylab_entropy_scope: str = field(default="micro", metadata={"help": "micro | batch (all processes)"})
    entropylab_mask_normalise: str = field(
        default="selected", metadata={"help": "selected (the 80/20 paper) | all (TRL)"}
    )
    entropylab_entropy_cutoff: str = field(
        default="topk", metadata={"help": "batch-scope cutoff: topk (k-th largest) | quantile (TRL's torch.quantile)"}
    )
    entropylab_entropy_coef: float = field(default=0.0, metadata={"help": "entropy bonus coefficient"})
    entropylab_loss_agg_mode: str | None = field(
        default=None, metadata={"help": "None: from loss_type; if given it must agree with loss_type"}
    )
    entropylab_dump_every: int = field(
        default=0, metadata={"help": "write OUTPUT_DIR/rollouts/step_N.parquet every N steps (0: never)"}
    )

    def __post_init__(self) -> None:
        check_trl_version()
        if isinstance(self.entropylab_entropy_mask, str) and self.entropylab_entropy_mask.lower() in ("", "none"):
            self.entropylab_entropy_mask = None  # the command line spells None as a string
        super().__post_init__()
        validate_config(self)


def _entropylab_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(EntropyGRPOConfig) if f.name.startswith("entropylab_")]


def loss_options(args: GRPOConfig) -> LossOptions:
    """The ``LossOptions`` an ``EntropyGRPOConfig`` stands for (ConfigError naming the ``entropylab_`` field)."""
    loss_type = args.loss_type
    agg = AGG_OF_LOSS_TYPE.get(loss_type)
    if agg is None:
        raise ConfigError(
            f"loss_type = {loss_type!r}: TRL computes its own per-token loss for it, which entropylab's policy losses "
            f"replace; use one of {', '.join(AGG_OF_LOSS_TYPE)} (the aggregation entropylab then applies)"
        )
    wanted = getattr(args, "entropylab_loss_agg_mode", None)
    if wanted is not None and wanted != agg:
        matching = [k for k, v in AGG_OF_LOSS_TYPE.items() if v == wanted]
        raise ConfigError(
            f"entropylab_loss_agg_mode = {wanted!r} conflicts with loss_type = {loss_type!r}, which normalises as "
            f"{agg!r}" + (f"; set loss_type to {' or '.join(map(repr, matching))}" if matching else "")
        )
    mask, rho, scope = args.entropylab_entropy_mask, args.entropylab_rho, args.entropylab_entropy_scope
    normalise = args.entropylab_mask_normalise
    if args.top_entropy_quantile < 1.0:  # TRL's own mask, reproduced by entropylab's
        mask, rho, scope, normalise = "top", args.top_entropy_quantile, "batch", "all"
    try:
        return LossOptions(
            policy_loss=args.entropylab_policy_loss,
            clip_ratio_low=args.epsilon,
            clip_ratio_high=args.epsilon_high if args.epsilon_high is not None else args.epsilon,
            clip_ratio_c=args.entropylab_clip_ratio_c,
            clip_cov_ratio=args.entropylab_clip_cov_ratio,
            clip_cov_lb=args.entropylab_clip_cov_lb,
            clip_cov_ub=args.entropylab_clip_cov_ub,
            kl_cov_ratio=args.entropylab_kl_cov_ratio,
            kl_cov_coef=args.entropylab_kl_cov_coef,
            cov_scope=args.entropylab_cov_scope,
            loss_agg_mode=agg,
            norm_len=args.max_completion_length if loss_type == "dr_grpo" else None,
            entropy_mask=mask,
            rho=rho,
            entropy_scope=scope,
            mask_normalise=normalise,
            entropy_coef=args.entropylab_entropy_coef,
            kl_coef=args.beta,
            kl_kind="k3",
        )
    except ConfigError as err:
        text = str(err).replace("LossOptions.", "entropylab_")
        raise ConfigError(f"EntropyGRPOConfig: {text}") from None


def _entropy_cutoff_method(args: GRPOConfig) -> str:
    return "quantile" if args.top_entropy_quantile < 1.0 else args.entropylab_entropy_cutoff


def validate_config(args: GRPOConfig, *, warn: bool = True) -> LossOptions:
    """Refuse, with a ConfigError naming the options, what TRL and entropylab's losses cannot combine; return the
    ``LossOptions``. With ``warn``, also warn about combinations that run but do nothing (on-policy KL-Cov)."""

    def refuse(why: str) -> None:
        raise ConfigError(f"EntropyGRPOConfig: {why}")

    if getattr(args, "use_liger_loss", False):
        refuse(
            "use_liger_loss=True computes the loss in a fused kernel that bypasses _compute_loss, so entropylab's "
            "losses and masks would be ignored; set use_liger_loss=False"
        )
    if args.top_entropy_quantile < 1.0 and args.entropylab_entropy_mask is not None:
        refuse(
            f"top_entropy_quantile = {args.top_entropy_quantile} (TRL's entropy mask) and entropylab_entropy_mask "
            f"= {args.entropylab_entropy_mask!r} are two masks; keep one (TRL's is reproduced by "
            "entropylab_entropy_mask='top', entropylab_rho=q, entropylab_entropy_scope='batch', "
            "entropylab_mask_normalise='all', entropylab_entropy_cutoff='quantile')"
        )
    if args.entropy_coef != 0.0 or getattr(args, "use_adaptive_entropy", False):
        refuse(
            "TRL's entropy bonus (entropy_coef / use_adaptive_entropy) is not applied by entropylab's loss; "
            "use entropylab_entropy_coef instead and leave entropy_coef = 0"
        )
    if args.importance_sampling_level != "token":
        refuse(
            f"importance_sampling_level = {args.importance_sampling_level!r}: entropylab's policy losses are "
            "token-level; use 'token'"
        )
    if args.delta is not None:
        refuse(
            "delta (TRL's two-sided clipping) has no counterpart in entropylab's losses; use "
            "entropylab_clip_ratio_c (dual clip) or leave delta = None"
        )
    if args.off_policy_mask_threshold is not None:
        refuse("off_policy_mask_threshold is TRL's own loss mask; leave it None with entropylab's losses")
    if args.use_vllm and args.vllm_importance_sampling_correction:
        refuse(
            "vllm_importance_sampling_correction multiplies TRL's per-token loss, which entropylab's losses "
            "replace; set vllm_importance_sampling_correction=False"
        )
    if args.entropylab_entropy_cutoff not in CUTOFFS:
        refuse(f"entropylab_entropy_cutoff = {args.entropylab_entropy_cutoff!r}: must be one of {', '.join(CUTOFFS)}")
    if not isinstance(args.entropylab_dump_every, int) or args.entropylab_dump_every < 0:
        refuse(f"entropylab_dump_every = {args.entropylab_dump_every!r}: must be an integer >= 0")
    opts = loss_options(args)
    if (
        warn
        and opts.policy_loss == "kl_cov"
        and args.num_iterations == 1
        and args.steps_per_generation is not None
        and args.steps_per_generation <= args.gradient_accumulation_steps
    ):
        warnings.warn(
            "entropylab_policy_loss='kl_cov' with num_iterations=1 and steps_per_generation <= "
            "gradient_accumulation_steps is fully on-policy (logp == old logp): KL-Cov then has no effect; "
            "raise num_iterations or steps_per_generation",
            UserWarning,
            stacklevel=3,
        )
    return opts


# --------------------------------------------------------------------------------------------------
# The loss over one micro-step, on one or several processes
# --------------------------------------------------------------------------------------------------


def batch_center(accelerator: Any, logp: Tensor, advantages: Tensor, mask: Tensor) -> tuple[float, float]:
    """``(mean A, mean logp)`` over the valid tokens of every process (all-reduce of ``covariance_sums``)."""
    sums = covariance_sums(logp, advantages, mask)
    if accelerator.num_processes > 1:
        sums = accelerator.reduce(sums, reduction="sum")
    return center_from_sums(sums)


def _gather_valid(accelerator: Any, values: Tensor, mask: Tensor) -> Tensor:
    """The valid entries of ``values`` of every process, flattened (NaN-padded across processes, then dropped)."""
    local = values.detach().float()[mask.bool()]
    if accelerator.num_processes == 1:
        return local
    padded = accelerator.pad_across_processes(local, dim=0, pad_index=math.nan)
    gathered = accelerator.gather(padded)
    return gathered[~torch.isnan(gathered)]


def batch_entropy_cutoff(accelerator: Any, entropy: Tensor, mask: Tensor, rho: float, method: str = "topk") -> float:
    """The top-rho entropy cutoff over every process's valid tokens.

    ``topk``: entropylab's :func:`entropy_threshold` (the k-th largest, ``k = ceil(n * rho)``); ``quantile``:
    TRL's ``torch.quantile(H, 1 - rho)``. +inf when no process has a valid token.
    """
    values = _gather_valid(accelerator, entropy, mask)
    if values.numel() == 0:
        return math.inf
    if method == "quantile":
        return quantile_cutoff(values, rho)
    if method != "topk":
        raise ConfigError(f"entropy cutoff method {method!r}: must be one of {', '.join(CUTOFFS)}")
    return entropy_threshold(values, None, rho)


def _gather_rows(accelerator: Any, tensor: Tensor) -> Tensor:
    """``[B, T]`` of every process, zero-padded to a common B and T, stacked in process order (detached)."""
    t = accelerator.pad_across_processes(tensor.detach().contiguous(), dim=1, pad_index=0)
    t = accelerator.pad_across_processes(t, dim=0, pad_index=0)
    return accelerator.gather(t)


@dataclass
class ScopeLoss:
    """The loss over the scope's tokens and what it was computed with.

    ``shared``: the loss covers every process's tokens (batch cov scope on several processes); each process
    then back-propagates only into its own tokens, so the caller multiplies by the process count to undo
    data parallelism's gradient averaging. ``n_tokens``: valid tokens in the scope.
    """

    loss: Tensor
    metrics: dict[str, float]
    n_tokens: int
    shared: bool
    center: tuple[float, float] | None = None
    cutoff: float | None = None


def entropylab_loss(
    accelerator: Any,
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    opts: LossOptions,
    *,
    entropy: Tensor | None = None,
    ref_logp: Tensor | None = None,
    generator: torch.Generator | None = None,
    cutoff_method: str = "topk",
) -> ScopeLoss:
    """entropylab's ``compute_policy_loss`` over this process's ``[B, T]`` tensors, or over all processes'.

    "micro" scopes use the local tensors. ``opts.entropy_scope == "batch"`` passes a cutoff computed over all
    processes. ``opts.cov_scope == "batch"`` with Clip-Cov/KL-Cov on several processes evaluates the loss over
    the gathered tensors of all processes (own tensors spliced in with their gradient), so token selection and
    aggregation equal one process's over the concatenated tokens; give every process the same ``generator``
    seed for identical Clip-Cov draws. ``accelerator``: anything with ``num_processes``, ``process_index``,
    ``reduce``, ``gather`` and ``pad_across_processes`` (an ``accelerate.Accelerator``).
    """
    n_proc = accelerator.num_processes
    advantages = advantages.expand_as(logp) if advantages.dim() == 2 else advantages.unsqueeze(1).expand_as(logp)
    uses_cov = opts.policy_loss in COV_POLICY_LOSSES
    center = batch_center(accelerator, logp, advantages, mask) if uses_cov and opts.cov_scope == "batch" else None
    cutoff = None
    if opts.entropy_mask is not None and opts.entropy_scope == "batch":
        if entropy is None:
            raise ConfigError("entropy_scope = 'batch' needs the per-token entropy")
        cutoff = batch_entropy_cutoff(accelerator, entropy, mask, opts.rho, cutoff_method)
    shared = center is not None and n_proc > 1
    if not shared:
        loss, metrics = compute_policy_loss(
            logp,
            old_logp,
            advantages,
            mask,
            opts,
            entropy=entropy,
            ref_logp=ref_logp,
            generator=generator,
            center=center,
            entropy_cutoff=cutoff,
        )
        return ScopeLoss(loss, metrics, int(mask.bool().sum()), False, center, cutoff)

    if opts.entropy_mask is not None and opts.entropy_scope == "micro":
        raise ConfigError(
            "cov_scope = 'batch' with entropy_scope = 'micro' on several processes: the loss covers all "
            "processes' tokens, so the entropy mask must too; use entropy_scope = 'batch'"
        )
    rows, cols = logp.shape
    rank = accelerator.process_index

    def full(x: Tensor) -> Tensor:
        return _gather_rows(accelerator, x.float())

    def spliced(x: Tensor) -> Tensor:  # everyone's tensor, with this process's rows carrying the gradient
        everyone = full(x)
        width, height = everyone.shape[1], everyone.shape[0] // n_proc
        own = F.pad(x.float(), (0, width - cols, 0, height - rows))
        return torch.cat([everyone[: rank * height], own, everyone[(rank + 1) * height :]])

    all_mask = full(mask) > 0
    loss, metrics = compute_policy_loss(
        spliced(logp),
        full(old_logp),
        full(advantages),
        all_mask,
        opts,
        entropy=spliced(entropy) if entropy is not None else None,
        ref_logp=full(ref_logp) if ref_logp is not None else None,
        generator=generator,
        center=center,
        entropy_cutoff=cutoff,
    )
    return ScopeLoss(loss, metrics, int(all_mask.sum()), True, center, cutoff)


# --------------------------------------------------------------------------------------------------
# Rollout dumps
# --------------------------------------------------------------------------------------------------


class EntropyDumpCallback(TrainerCallback):
    """Writes entropylab's per-token rollout dump every ``every`` steps (and at step 1).

    ``output_dir`` defaults to the trainer's ``args.output_dir``; files land in ``output_dir/rollouts/``. A
    callback cannot see the loss tensors, so :class:`EntropyGRPOTrainer` records the rows (at the first pass
    over each rollout batch, with the policy before the step's update) and binds itself to every
    ``EntropyDumpCallback`` it is given; this callback gathers the rows of all processes at the end of the step
    and the main process writes them. The ``covariance`` column is centred over the whole dumped step.
    """

    def __init__(self, output_dir: str | Path | None = None, every: int = 10):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"EntropyDumpCallback: every = {every!r} must be an integer >= 1")
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.every = every
        self.written: list[Path] = []
        self._trainer: Any = None
        self._pending: dict[int, list[dict[str, np.ndarray]]] = {}

    def bind(self, trainer: Any) -> None:
        """Called by EntropyGRPOTrainer: where rows come from (and the default output directory)."""
        self._trainer = trainer
        if self.output_dir is None:
            self.output_dir = Path(trainer.args.output_dir)

    def due(self, step: int) -> bool:
        return step == 1 or step % self.every == 0

    def record(self, step: int, rows: dict[str, np.ndarray]) -> None:
        self._pending.setdefault(step, []).append(rows)

    def on_train_begin(self, args, state, control, **kwargs):
        if self._trainer is None:
            raise ConfigError(
                "EntropyDumpCallback: the per-token tensors come from EntropyGRPOTrainer; pass the "
                "callback to an EntropyGRPOTrainer (or set entropylab_dump_every in EntropyGRPOConfig)"
            )

    def on_step_end(self, args, state, control, **kwargs):
        self._flush(state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        self._flush(None)

    def _flush(self, upto: int | None) -> None:
        import pandas as pd

        from entropylab.rundir import coerce_dump, write_dump

        accelerator = self._trainer.accelerator
        for step in sorted(s for s in self._pending if upto is None or s <= upto):
            parts = self._pending.pop(step)
            local = pd.concat([pd.DataFrame(p) for p in parts], ignore_index=True)
            frames = [local]
            if accelerator.num_processes > 1:
                from accelerate.utils import gather_object

                frames = gather_object([local])
            if not accelerator.is_main_process:
                continue
            df = pd.concat(frames, ignore_index=True).sort_values(["prompt_id", "sample_id", "position"], kind="stable")
            a = df["advantage"].to_numpy(np.float64)
            lp = df["logprob"].to_numpy(np.float64)
            df["covariance"] = ((a - a.mean()) * (lp - lp.mean())) if len(df) else np.zeros(0)
            self.written.append(write_dump(Path(self.output_dir), step, coerce_dump(df.reset_index(drop=True))))


class TrainerStateWriter(TrainerCallback):
    """Keeps ``OUTPUT_DIR/trainer_state.json`` current at every log (atomically), so ``entropylab.logs.load``
    reads a TRL run while it trains and after it ends, even with ``save_strategy="no"``."""

    def __init__(self, output_dir: str | Path):
        self.path = Path(output_dir) / "trainer_state.json"

    def _write(self, state: Any) -> None:
        if not state.is_world_process_zero:
            return
        import os

        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        state.save_to_json(str(tmp))
        os.replace(tmp, self.path)

    def on_log(self, args, state, control, **kwargs):
        self._write(state)

    def on_train_end(self, args, state, control, **kwargs):
        self._write(state)


# --------------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------------


class EntropyGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` whose loss is entropylab's ``compute_policy_loss`` (Clip-Cov, KL-Cov, entropy masks).

    Takes an :class:`EntropyGRPOConfig` as ``args``; everything else is ``GRPOTrainer``'s. Raises ConfigError at
    construction for an unsupported TRL version or options that cannot be combined. ``entropylab_dump_every``
    adds an :class:`EntropyDumpCallback`; one passed in ``callbacks`` is bound too, and so is a
    :class:`~entropylab.integrations.law_callback.LawForecastCallback`. ``OUTPUT_DIR/trainer_state.json``
    is rewritten at every log (:class:`TrainerStateWriter`), so ``entropylab.logs.load(OUTPUT_DIR)`` always reads
    the run.
    """

    def __init__(self, model: Any, reward_funcs: Any = None, args: EntropyGRPOConfig | None = None, **kwargs: Any):
        check_trl_version()
        if args is None:
            args = EntropyGRPOConfig()
        if not isinstance(args, EntropyGRPOConfig):
            raise ConfigError(f"EntropyGRPOTrainer: args must be an EntropyGRPOConfig, got {type(args).__name__}")
        self.entropylab_options = validate_config(args, warn=False)  # the config warned when it was built
        self._entropylab_cutoff = _entropy_cutoff_method(args)
        self._entropylab_rewards: Tensor | None = None
        super().__init__(model, reward_funcs, args=args, **kwargs)
        opts = self.entropylab_options
        if (
            self.accelerator.num_processes > 1
            and opts.cov_scope == "batch"
            and opts.entropy_mask is not None
            and opts.entropy_scope == "micro"
            and opts.policy_loss != "vanilla"
        ):
            raise ConfigError(
                "EntropyGRPOConfig: entropylab_cov_scope='batch' with entropylab_entropy_scope='micro' on "
                f"{self.accelerator.num_processes} processes: the loss then covers all processes' tokens, "
                "so the entropy mask must too; set entropylab_entropy_scope='batch'"
            )
        dumps = [cb for cb in self.callback_handler.callbacks if isinstance(cb, EntropyDumpCallback)]
        if args.entropylab_dump_every and not dumps:
            dumps = [EntropyDumpCallback(args.output_dir, args.entropylab_dump_every)]
            self.add_callback(dumps[0])
        for cb in dumps:
            cb.bind(self)
        self._dump_callbacks = dumps
        for cb in self.callback_handler.callbacks:  # the law's callback logs law/* through this trainer
            if isinstance(cb, LawForecastCallback) and cb.trainer is None:
                cb.bind(self)
        self.add_callback(TrainerStateWriter(args.output_dir))

    # -- rollouts: remember each completion's reward and its index in the generation batch ---------------

    def _calculate_rewards(self, *args: Any, **kwargs: Any):
        rewards_per_func = super()._calculate_rewards(*args, **kwargs)
        self._entropylab_rewards = rewards_per_func
        return rewards_per_func

    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        n = output["completion_ids"].size(0)
        start = self.accelerator.process_index * n
        device = output["completion_ids"].device
        output["entropylab_index"] = torch.arange(start, start + n, device=device)
        per_func = self._entropylab_rewards
        if per_func is not None and per_func.size(0) >= start + n:
            weights = self.reward_weights.to(per_func.device).unsqueeze(0)
            output["entropylab_reward"] = (per_func * weights).nansum(dim=1)[start : start + n].float().to(device)
        else:
            output["entropylab_reward"] = torch.full((n,), math.nan, device=device)
        return output

    # -- the loss ------------------------------------------------------------------------------------

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> Tensor:
        mode = "train" if self.model.training else "eval"
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([inputs["prompt_ids"], completion_ids], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], completion_mask], dim=1)
        mask = completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        logps, entropies, aux_loss = self._get_per_token_logps_and_entropies(
            model,
            input_ids,
            attention_mask,
            completion_ids.size(1),
            compute_entropy=True,
            compute_aux_loss=self.aux_loss_enabled,
            **{k: inputs.get(k) for k in _FORWARD_KEYS},
        )
        advantages = inputs["advantages"]
        advantages = (advantages if advantages.dim() == 2 else advantages.unsqueeze(1)).expand_as(logps)
        old_logps = inputs.get("old_per_token_logps")
        old_logps = logps.detach() if old_logps is None else old_logps
        ref_logps = inputs.get("ref_per_token_logps") if self.beta != 0.0 else None

        opts = self.entropylab_options
        n_proc = self.accelerator.num_processes
        seed_parts = [self.args.seed, self.state.global_step, self._step]
        if not (opts.cov_scope == "batch" and n_proc > 1):
            seed_parts.append(self.accelerator.process_index)  # independent draws per process
        generator = torch.Generator(device=logps.device).manual_seed(derive_seed(*seed_parts))
        result = entropylab_loss(
            self.accelerator,
            logps,
            old_logps,
            advantages,
            mask,
            opts,
            entropy=entropies,
            ref_logp=ref_logps,
            generator=generator,
            cutoff_method=self._entropylab_cutoff,
        )

        # the scaling TRL applies for its loss_type (gradient accumulation, dapo's global token count)
        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1
        if self.loss_type == "dapo":
            normalizer = inputs["num_items_in_batch"].clamp(min=1.0) / n_proc
            if mode == "train":
                normalizer = normalizer * accumulation / self.args.steps_per_generation
            loss = result.loss * result.n_tokens / normalizer
        else:
            loss = result.loss * (n_proc if result.shared else 1) / accumulation
        if self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * aux_loss / accumulation
            self._metrics[mode]["aux_loss"].append(self.accelerator.gather(aux_loss.detach()).mean().item())

        self._log_entropylab_metrics(mode, result, logps, entropies, advantages, mask, ref_logps)
        if mode == "train" and self._dump_callbacks:
            self._record_dump(inputs, logps, old_logps, entropies, advantages, mask, result.shared)
        return loss

    def _log_entropylab_metrics(
        self,
        mode: str,
        result: ScopeLoss,
        logps: Tensor,
        entropies: Tensor,
        advantages: Tensor,
        mask: Tensor,
        ref_logps: Tensor | None,
    ) -> None:
        """entropylab's loss metrics (averaged over processes) and Table-1 covariances, via TRL's metric store."""
        store = self._metrics[mode]
        keys = sorted(result.metrics)
        values = torch.tensor([float(result.metrics[k]) for k in keys], dtype=torch.float64, device=logps.device)
        if not result.shared and self.accelerator.num_processes > 1:
            values = self.accelerator.reduce(values, reduction="mean")
        for key, value in zip(keys, values.tolist()):
            store[PREFIX + key].append(value)

        from entropylab.diagnostics.covariance import top_means

        center = result.center or batch_center(self.accelerator, logps, advantages, mask)
        cov = _gather_valid(self.accelerator, token_covariance(logps, advantages, mask, center), mask)
        means, overall = top_means(cov.double().cpu().numpy(), COV_QUANTILES)
        store[PREFIX + "cov/mean"].append(overall)
        for q, value in zip(COV_QUANTILES, means):
            store[f"{PREFIX}cov/top{q * 100:g}%"].append(value)

        # TRL's own keys, so TRL dashboards and entropylab.logs find them where they expect
        valid = mask.bool()

        def global_mean(x: Tensor) -> float:
            totals = torch.stack([torch.where(valid, x.detach().float(), 0.0).sum(), valid.sum().float()])
            totals = self.accelerator.reduce(totals, reduction="sum") if self.accelerator.num_processes > 1 else totals
            return float(totals[0] / totals[1].clamp(min=1.0))

        store["entropy"].append(global_mean(entropies))
        if ref_logps is not None:
            diff = ref_logps - logps.detach()
            store["kl"].append(global_mean(torch.exp(diff) - diff - 1))

    def _record_dump(
        self,
        inputs: dict[str, Any],
        logps: Tensor,
        old_logps: Tensor,
        entropies: Tensor,
        advantages: Tensor,
        mask: Tensor,
        shared: bool,
    ) -> None:
        """Hand this micro-batch's token rows to the dump callbacks (first pass over a rollout batch only)."""
        spg = self.args.steps_per_generation
        if self._step % (spg * self.num_iterations) >= spg:
            return  # a later PPO iteration over rollouts already dumped
        step = self.state.global_step + 1  # the update this micro-batch feeds
        callbacks = [cb for cb in self._dump_callbacks if cb.due(step)]
        if not callbacks:
            return
        valid = mask.bool().cpu()
        rows, cols = (t.numpy() for t in torch.nonzero(valid, as_tuple=True))
        index = inputs["entropylab_index"].cpu().numpy()[rows]
        ids = inputs["completion_ids"].cpu().numpy()[rows, cols]
        text = {
            int(i): self.processing_class.decode([int(i)])
            if hasattr(self.processing_class, "decode")
            else self.processing_class.tokenizer.decode([int(i)])
            for i in np.unique(ids)
        }
        micro = self._step % self.args.gradient_accumulation_steps
        micro = micro if shared else micro * self.accelerator.num_processes + self.accelerator.process_index

        def at(x: Tensor) -> np.ndarray:
            return x.detach().float().cpu().numpy()[rows, cols].astype(np.float32)

        g = self.num_generations
        data = {
            "step": np.full(rows.size, step, dtype=np.int64),
            "prompt_id": (index // g).astype(np.int64),
            "sample_id": (index % g).astype(np.int64),
            "position": cols.astype(np.int64),
            "token_id": ids.astype(np.int64),
            "token": np.array([text[int(i)] for i in ids], dtype=object),
            "logprob": at(logps),
            "old_logprob": at(old_logps),
            "entropy": at(entropies),
            "advantage": at(advantages),
            "reward": inputs["entropylab_reward"].float().cpu().numpy()[rows].astype(np.float32),
            "covariance": np.zeros(rows.size, dtype=np.float32),  # centred over the whole step when written
            "micro_batch": np.full(rows.size, micro, dtype=np.int64),
        }
        for cb in callbacks:
            cb.record(step, data)


# --------------------------------------------------------------------------------------------------
# Data and rewards from entropylab tasks
# --------------------------------------------------------------------------------------------------


def problems_dataset(problems: Sequence[Any], tokenizer: Any = None):
    """A ``datasets.Dataset`` with ``prompt``, ``answer`` and ``problem_id`` columns from entropylab Problems.

    With a ``tokenizer`` that has a chat template, prompts are wrapped in it (``entropylab.tasks.apply_chat_template``).
    """
    from datasets import Dataset

    from entropylab.tasks import apply_chat_template

    def prompt(p: Any) -> str:
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            return apply_chat_template(tokenizer, p.meta.get("messages") or p.prompt)
        return p.prompt

    return Dataset.from_dict(
        {
            "prompt": [prompt(p) for p in problems],
            "answer": [p.answer for p in problems],
            "problem_id": [p.id for p in problems],
        }
    )


def task_reward_function(task: Any, name: str | None = None) -> Callable[..., list[float]]:
    """A TRL reward function scoring completions with ``task.verify`` against the dataset's ``answer`` column.

    TRL logs it as ``rewards/<name>/mean`` (default name: ``<task>_verifier``).
    """

    def reward(prompts: list, completions: list, answer: list[str], **kwargs: Any) -> list[float]:
        texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
        return [float(task.verify(t, a)) for t, a in zip(texts, answer)]

    reward.__name__ = name or f"{getattr(task, 'name', 'task')}_verifier"
    return reward
