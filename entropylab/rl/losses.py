"""Policy losses, token interventions and loss aggregation for GRPO-style training: pure tensor maths.

Modelled on verl's ``core_algos``: each policy loss is a pure function registered by name in
``POLICY_LOSSES``; aggregation, the top-rho entropy mask, the entropy bonus and the reference KL are
separate functions, and :func:`compute_policy_loss` composes them. Entropylab's trainer and the TRL
integration call the same functions, so nothing here knows about models, processes or config files.

Tensor conventions, all ``[B, T]`` (one row per response, T response positions):

- ``logp``: log-prob of the sampled tokens under the current policy (carries the gradient);
- ``old_logp``: the same under the behaviour policy that sampled them (detached);
- ``ref_logp``: the same under the reference model (optional, for the KL term);
- ``advantages``: the sequence advantage broadcast over its tokens;
- ``mask``: response mask, bool or 0/1 float, true on valid tokens; padding positions must hold
  finite values (they are ignored, but ``0 * inf`` is still NaN);
- ``entropy``: per-token entropy of the current policy, ``softmax(logits / temperature)``.

Policy losses return ``(per_token_loss [B, T], metrics)`` with the loss zero on padding and metrics as
plain floats; they never aggregate. Clip-Cov, KL-Cov and the entropy mask follow the reference
implementations described in docs/science.md sections 2 and 3.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from entropylab.cutoff import n_top, top_cutoff
from entropylab.errors import ConfigError
from entropylab.registry import Registry

__all__ = [
    "AGG_MODES",
    "ENTROPY_MASKS",
    "KL_KINDS",
    "POLICY_LOSSES",
    "LossOptions",
    "aggregate",
    "center_from_sums",
    "clip_cov_policy_loss",
    "compute_policy_loss",
    "covariance_center",
    "covariance_sums",
    "entropy_bonus",
    "entropy_mask",
    "entropy_threshold",
    "get_policy_loss",
    "kl_cov_policy_loss",
    "kl_penalty",
    "masked_mean",
    "register_policy_loss",
    "token_covariance",
    "vanilla_policy_loss",
]

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")
KL_KINDS = ("k1", "abs", "k2", "k3", "low_var_kl")
ENTROPY_MASKS = (None, "top", "bottom")
SCOPES = ("micro", "batch")
#: where Clip-Cov / KL-Cov centre log pi: the tensors handed in, the whole batch, or each token's own state
COV_SCOPES = ("micro", "batch", "state")
#: the policy losses that select tokens by covariance (and so read cov_scope)
COV_POLICY_LOSSES = ("clip_cov", "kl_cov")
NORMALISATIONS = ("selected", "all")

# exp() of a log-ratio beyond this is clamped (as verl does) so a stale token cannot overflow the ratio.
_LOG_RATIO_CLAMP = 20.0


class PolicyLossFn(Protocol):
    """A registered policy loss: per-token tensors in, per-token loss and float metrics out."""

    def __call__(
        self,
        logp: Tensor,
        old_logp: Tensor,
        advantages: Tensor,
        mask: Tensor,
        opts: LossOptions,
        *,
        generator: torch.Generator | None = None,
        center: tuple[float, float | Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, float]]: ...


POLICY_LOSSES: Registry[PolicyLossFn] = Registry(
    "policy loss", plural="policy losses", field="policy_loss", sort_names=True
)


def register_policy_loss(name: str, description: str = "") -> Callable[[PolicyLossFn], PolicyLossFn]:
    """Decorator registering a policy loss under ``name`` (a name taken by another function is refused)."""
    return POLICY_LOSSES.register(name, description=description)


def get_policy_loss(name: str) -> PolicyLossFn:
    """The policy loss registered as ``name``; ConfigError listing the known names otherwise."""
    return POLICY_LOSSES.get(name)


# --------------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LossOptions:
    """Everything the policy-loss maths needs; validated on construction (ConfigError names the field).

    PPO window (``vanilla``, ``clip_cov``):
        clip_ratio_low, clip_ratio_high: the ratio is clipped to ``[1 - low, 1 + high]``; 0.2 / 0.2 is
            PPO/GRPO, high > low is DAPO's clip-higher. The Clip-Cov paper recipes use 1.0 / 1.0
            (window [0, 2]); presets must set that explicitly.
        clip_ratio_c: dual-clip bound for negative advantages (``vanilla`` only, verl's default 3.0);
            ``None`` disables it. Must be > 1.
    Clip-Cov: clip_cov_ratio (r = 2e-4), clip_cov_lb (1.0), clip_cov_ub (5.0).
    KL-Cov: kl_cov_ratio (2e-3, the paper's value for 7B; 2e-4 for 32B), kl_cov_coef (beta = 1.0, the
        paper's value; upstream verl's config default is 0.1).
    cov_scope: "micro" centres the covariance over the tensors handed to the loss (the reference
        behaviour); "batch" requires the caller to pass ``center`` computed over the whole batch with
        :func:`covariance_center` / :func:`covariance_sums`; "state" centres each token's log-prob at its own
        state's expected log-prob, ``-H(state)`` (the per-state covariance of the entropy theorem), with the
        advantage centred as for "batch" when ``center`` is given (else over these tensors).
    Aggregation: loss_agg_mode (one of ``AGG_MODES``, default "token-mean" as in the recipes); norm_len
        (the constant divisor of "seq-mean-token-sum-norm", default T, the padded length).
    Entropy mask (80/20): entropy_mask None (off), "top" (train on the top-rho entropy tokens) or
        "bottom" (the complement); rho (0.2); entropy_scope "micro" (cutoff from these tensors) or
        "batch" (caller passes ``entropy_cutoff`` from :func:`entropy_threshold` over the batch);
        mask_normalise "selected" (DEFAULT: divide by the selected tokens, as the paper's code does) or
        "all" (divide by all valid tokens, as TRL does; about 1/rho = 5x smaller update at rho=0.2).
    Regularisers: entropy_coef (entropy bonus; 0 = off, negative minimises entropy); kl_coef
        (reference KL loss; 0 = off) with kl_kind (one of ``KL_KINDS``, default "low_var_kl" = k3
        clamped, verl's default).
    """

    policy_loss: str = "vanilla"
    clip_ratio_low: float = 0.2
    clip_ratio_high: float = 0.2
    clip_ratio_c: float | None = 3.0
    clip_cov_ratio: float = 2e-4
    clip_cov_lb: float = 1.0
    clip_cov_ub: float = 5.0
    kl_cov_ratio: float = 2e-3
    kl_cov_coef: float = 1.0
    cov_scope: str = "micro"
    loss_agg_mode: str = "token-mean"
    norm_len: int | None = None
    entropy_mask: str | None = None
    rho: float = 0.2
    entropy_scope: str = "micro"
    mask_normalise: str = "selected"
    entropy_coef: float = 0.0
    kl_coef: float = 0.0
    kl_kind: str = "low_var_kl"

    def __post_init__(self) -> None:
        def fail(field: str, why: str) -> None:
            raise ConfigError(f"LossOptions.{field} = {getattr(self, field)!r}: {why}")

        def choice(field: str, allowed: tuple) -> None:
            if getattr(self, field) not in allowed:
                fail(field, f"must be one of {', '.join(map(repr, allowed))}")

        if self.policy_loss not in POLICY_LOSSES:
            fail("policy_loss", f"unknown policy loss; known: {', '.join(sorted(POLICY_LOSSES))}")
        for field in ("clip_ratio_low", "clip_ratio_high", "kl_cov_coef", "kl_coef"):
            value = getattr(self, field)
            if not math.isfinite(value) or value < 0:
                fail(field, "must be a finite number >= 0")
        if self.clip_ratio_c is not None and not self.clip_ratio_c > 1.0:
            fail("clip_ratio_c", "the dual-clip bound must be > 1 (or None to disable it)")
        for field in ("clip_cov_ratio", "kl_cov_ratio", "rho"):
            value = getattr(self, field)
            if not 0.0 < value <= 1.0:
                fail(field, "must lie in (0, 1]")
        if not self.clip_cov_lb < self.clip_cov_ub:
            fail("clip_cov_ub", f"must be greater than clip_cov_lb = {self.clip_cov_lb!r}")
        if not math.isfinite(self.entropy_coef):
            fail("entropy_coef", "must be finite")
        if self.norm_len is not None and (
            isinstance(self.norm_len, bool) or not isinstance(self.norm_len, int) or self.norm_len < 1
        ):
            fail("norm_len", "must be a positive integer or None (= the padded response length)")
        choice("cov_scope", COV_SCOPES)
        choice("loss_agg_mode", AGG_MODES)
        choice("entropy_mask", ENTROPY_MASKS)
        choice("entropy_scope", SCOPES)
        choice("mask_normalise", NORMALISATIONS)
        choice("kl_kind", KL_KINDS)


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def _valid(mask: Tensor) -> Tensor:
    """The response mask as bool (accepts bool or 0/1 float masks)."""
    return mask if mask.dtype == torch.bool else mask > 0


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` over valid tokens (0 when there are none); padding values are ignored, even NaN."""
    valid = _valid(mask)
    total = torch.where(valid, values, torch.zeros_like(values)).sum()
    return total / valid.sum().clamp(min=1)


def _mean_float(values: Tensor, mask: Tensor) -> float:
    return float(masked_mean(values.detach().float(), mask))


# --------------------------------------------------------------------------------------------------
# Covariance between log-prob and advantage (Clip-Cov / KL-Cov token selection)
# --------------------------------------------------------------------------------------------------


def covariance_sums(logp: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """``[sum A, sum logp, n_valid]`` over valid tokens (float64): all-reduce this across processes for
    a batch-wide centre, then pass it to :func:`center_from_sums`."""
    valid = _valid(mask)
    a = torch.where(valid, advantages.detach().double(), 0.0)
    lp = torch.where(valid, logp.detach().double(), 0.0)
    return torch.stack([a.sum(), lp.sum(), valid.sum().double()])


def center_from_sums(sums: Tensor) -> tuple[float, float]:
    """``(mean A, mean logp)`` from (possibly all-reduced, possibly summed over micro-batches) sums."""
    n = max(float(sums[2]), 1.0)
    return float(sums[0]) / n, float(sums[1]) / n


def covariance_center(logp: Tensor, advantages: Tensor, mask: Tensor) -> tuple[float, float]:
    """``(mean A, mean logp)`` over the valid tokens given: call it on the whole batch for cov_scope="batch"."""
    return center_from_sums(covariance_sums(logp, advantages, mask))


def token_covariance(
    logp: Tensor, advantages: Tensor, mask: Tensor, center: tuple[float, float | Tensor] | None = None
) -> Tensor:
    """Per-token ``cov_i = (A_i - mean A) * (logp_i - mean logp)``, detached, 0 on padding.

    The means run over the valid tokens handed in (the reference: one micro-batch) unless ``center``
    supplies batch-wide means; its log-prob centre may be a tensor of per-token centres (cov_scope "state").
    """
    valid = _valid(mask)
    mean_a, mean_lp = center if center is not None else covariance_center(logp, advantages, mask)
    a = advantages.detach().float()
    lp = logp.detach().float()
    cov = (a - mean_a) * (lp - mean_lp)
    return torch.where(valid, cov, torch.zeros_like(cov))


# --------------------------------------------------------------------------------------------------
# Policy losses
# --------------------------------------------------------------------------------------------------


def _ppo_terms(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, low: float, high: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Unclipped ``-A*rho``, clipped ``-A*clip(rho, 1-low, 1+high)`` and the log-ratio ``logp - old_logp``."""
    log_ratio = logp - old_logp
    ratio = torch.exp(torch.clamp(log_ratio, -_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP))
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - low, 1.0 + high)
    return unclipped, clipped, log_ratio


def _zero_padding(loss: Tensor, valid: Tensor) -> Tensor:
    return torch.where(valid, loss, torch.zeros_like(loss))


@register_policy_loss("vanilla")
def vanilla_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    opts: LossOptions,
    *,
    generator: torch.Generator | None = None,
    center: tuple[float, float | Tensor] | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """PPO clipped surrogate with clip-higher and optional dual clip (verl's "vanilla").

    ``max(-A*rho, -A*clip(rho, 1-low, 1+high))``; for A < 0 additionally capped at ``-A*clip_ratio_c``.
    Metrics: pg_clipfrac (clip active), pg_clipfrac_lower (dual clip active), ppo_kl (mean old - new).
    """
    valid = _valid(mask)
    unclipped, clipped, log_ratio = _ppo_terms(logp, old_logp, advantages, opts.clip_ratio_low, opts.clip_ratio_high)
    loss = torch.maximum(unclipped, clipped)
    dual_active = torch.zeros_like(valid)
    if opts.clip_ratio_c is not None:
        dual = -advantages * opts.clip_ratio_c
        dual_active = (loss > dual) & (advantages < 0)
        loss = torch.where(advantages < 0, torch.minimum(loss, dual), loss)
    metrics = {
        "pg_clipfrac": _mean_float((clipped > unclipped).float(), valid),
        "pg_clipfrac_lower": _mean_float(dual_active.float(), valid),
        "ppo_kl": _mean_float(-log_ratio, valid),
    }
    return _zero_padding(loss, valid), metrics


@register_policy_loss("clip_cov")
def clip_cov_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    opts: LossOptions,
    *,
    generator: torch.Generator | None = None,
    center: tuple[float, float | Tensor] | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Clip-Cov (Cui et al. 2025): PPO loss with a few high-covariance tokens' loss zeroed.

    Tokens clipped by PPO and padding are excluded; candidates have ``lb < cov < ub`` (strict); of them
    ``min(max(int(r * n_valid), 1), #candidates)`` are drawn uniformly at random with ``generator``
    (the global RNG when None) and their loss -- value and gradient -- is set to 0. They stay in the
    aggregation's denominator, as in the reference. No dual clip. Metric clip_cov_frac = zeroed / valid.
    """
    valid = _valid(mask)
    unclipped, clipped, log_ratio = _ppo_terms(logp, old_logp, advantages, opts.clip_ratio_low, opts.clip_ratio_high)
    ppo_clipped = (clipped > unclipped) & valid

    cov = token_covariance(logp, advantages, mask, center)
    cov = cov.masked_fill(ppo_clipped | ~valid, -math.inf)
    candidates = ((cov > opts.clip_cov_lb) & (cov < opts.clip_cov_ub)).reshape(-1).nonzero().squeeze(1)

    n_valid = int(valid.sum())
    n_clip = max(int(opts.clip_cov_ratio * n_valid), 1)
    rng_device = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(candidates.numel(), generator=generator, device=rng_device).to(candidates.device)
    chosen = candidates[perm[: min(n_clip, candidates.numel())]]
    zeroed = torch.zeros(valid.numel(), dtype=torch.bool, device=valid.device)
    zeroed[chosen] = True
    zeroed = zeroed.view_as(valid)

    loss = torch.where(zeroed, torch.zeros_like(unclipped), torch.maximum(unclipped, clipped))
    metrics = {
        "pg_clipfrac": _mean_float(ppo_clipped.float(), valid),
        "pg_clipfrac_lower": 0.0,
        "ppo_kl": _mean_float(-log_ratio, valid),
        "clip_cov_frac": chosen.numel() / max(n_valid, 1),
    }
    return _zero_padding(loss, valid), metrics


@register_policy_loss("kl_cov")
def kl_cov_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    opts: LossOptions,
    *,
    generator: torch.Generator | None = None,
    center: tuple[float, float | Tensor] | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """KL-Cov (Cui et al. 2025): unclipped ``-A*rho``, plus ``beta*|logp - old_logp|`` on the top-k tokens by cov.

    ``k = max(1, int(kl_cov_ratio * n_valid))`` valid tokens with the largest covariance (ties broken by
    position, deterministically). On-policy (``logp == old_logp``) the penalty and its gradient vanish,
    so KL-Cov needs several updates per rollout. Metric kl_cov_frac = k / valid.
    """
    valid = _valid(mask)
    log_ratio = logp - old_logp
    ratio = torch.exp(torch.clamp(log_ratio, -_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP))
    base = -advantages * ratio

    cov = token_covariance(logp, advantages, mask, center).masked_fill(~valid, -math.inf)
    n_valid = int(valid.sum())
    k = min(max(1, int(opts.kl_cov_ratio * n_valid)), n_valid)
    top = torch.sort(cov.reshape(-1), descending=True, stable=True).indices[:k]
    penalised = torch.zeros(valid.numel(), dtype=torch.bool, device=valid.device)
    penalised[top] = True
    penalised = penalised.view_as(valid)

    loss = torch.where(penalised, base + opts.kl_cov_coef * log_ratio.abs(), base)
    metrics = {
        "pg_clipfrac": 0.0,
        "pg_clipfrac_lower": 0.0,
        "ppo_kl": _mean_float(-log_ratio, valid),
        "ppo_kl_abs": _mean_float(log_ratio.abs(), valid),
        "kl_cov_frac": k / max(n_valid, 1),
    }
    return _zero_padding(loss, valid), metrics


# --------------------------------------------------------------------------------------------------
# Token interventions: entropy mask, entropy bonus, reference KL
# --------------------------------------------------------------------------------------------------


def _check_rho(rho: float) -> None:
    if not 0.0 < rho <= 1.0:
        raise ConfigError(f"rho = {rho!r}: the entropy-mask fraction must lie in (0, 1]")


def entropy_threshold(entropy: Tensor, mask: Tensor | None = None, rho: float = 0.2) -> float:
    """The top-rho entropy cutoff: the k-th largest valid entropy, ``k = ceil(n_valid * rho)``.

    For the batch scope, call it on the entropies of the whole batch (gathered across processes; any
    shape, ``mask=None`` means all valid) and pass the result to :func:`entropy_mask` as ``threshold``.
    ``H >= cutoff`` then keeps exactly k tokens unless there are ties at the cutoff. (TRL instead uses
    ``torch.quantile(H, 1 - rho)``, which interpolates: :func:`entropylab.cutoff.quantile_cutoff`.)
    Returns +inf when there is no valid token.
    """
    _check_rho(rho)
    values = entropy.detach().reshape(-1)
    if mask is not None:
        values = values[_valid(mask).reshape(-1)]
    return top_cutoff(values, rho)


def entropy_mask(
    entropy: Tensor, mask: Tensor, rho: float = 0.2, keep: str = "top", threshold: float | None = None
) -> Tensor:
    """Bool ``[B, T]``: the top-rho highest-entropy valid tokens (``keep="top"``) or the rest ("bottom").

    Local scope (``threshold=None``): the top ``ceil(n_valid * rho)`` of the flattened valid tokens, as
    in the 80/20 paper's code; ties are broken by position (earlier token first), deterministically.
    With ``threshold`` (e.g. :func:`entropy_threshold` over the whole batch) "top" keeps valid tokens
    with ``H >= threshold``. "bottom" is always the valid complement of "top", so the two partition the
    valid tokens; padding is never selected.
    """
    _check_rho(rho)
    if keep not in ("top", "bottom"):
        raise ConfigError(f"keep = {keep!r}: must be 'top' or 'bottom'")
    valid = _valid(mask)
    h = entropy.detach()
    if threshold is not None:
        top = valid & (h >= threshold)
    else:
        valid_idx = valid.reshape(-1).nonzero().squeeze(1)
        k = n_top(valid_idx.numel(), rho)
        order = torch.sort(h.reshape(-1)[valid_idx].float(), descending=True, stable=True).indices[:k]
        top_flat = torch.zeros(valid.numel(), dtype=torch.bool, device=valid.device)
        top_flat[valid_idx[order]] = True
        top = top_flat.view_as(valid)
    return top if keep == "top" else valid & ~top


def entropy_bonus(entropy: Tensor, mask: Tensor, coef: float) -> Tensor:
    """Per-token term to ADD to the loss: ``-coef * H`` (0 on padding); minimising it raises entropy."""
    return _zero_padding(-coef * entropy, _valid(mask))


def kl_penalty(logp: Tensor, ref_logp: Tensor, kind: str = "low_var_kl") -> Tensor:
    """Per-token estimate of KL(pi || pi_ref) from the sampled tokens' log-probs.

    k1: ``logp - ref``; abs: ``|logp - ref|``; k2: ``(logp - ref)^2 / 2``; k3 (Schulman's unbiased,
    always >= 0): ``exp(ref - logp) - (ref - logp) - 1``; low_var_kl: k3 with verl's clamps (log-ratio
    to [-20, 20], result to [-10, 10]).
    """
    diff = logp - ref_logp
    if kind == "k1":
        return diff
    if kind == "abs":
        return diff.abs()
    if kind == "k2":
        return 0.5 * diff.square()
    if kind == "k3":
        return torch.exp(-diff) + diff - 1.0
    if kind == "low_var_kl":
        log_ratio = torch.clamp(-diff, -_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
        return torch.clamp(torch.exp(log_ratio) - log_ratio - 1.0, -10.0, 10.0)
    raise ConfigError(f"kl_kind = {kind!r}: must be one of {', '.join(KL_KINDS)}")


# --------------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------------


def aggregate(
    per_token_loss: Tensor,
    mask: Tensor,
    mode: str = "token-mean",
    *,
    selected: Tensor | None = None,
    normalise: str = "selected",
    norm_len: int | None = None,
) -> Tensor:
    """Reduce a ``[B, T]`` loss to a scalar over the valid (and, if given, ``selected``) tokens.

    Modes: "token-mean" (sum / token count); "seq-mean-token-mean" (mean over sequences of each
    sequence's token mean); "seq-mean-token-sum-norm" (each sequence's token sum / ``norm_len``,
    default T, the padded length, as Dr. GRPO; then mean over sequences).
    ``normalise`` matters only with ``selected``: "selected" (the default, the 80/20 paper's code)
    treats the selected tokens as the mask, so counts are of selected tokens; "all" (TRL) sums the
    selected tokens but counts all valid ones, which scales token-mean by the selected fraction.
    Sequences without any counted token are left out of the sequence mean; the result is 0, not NaN,
    when nothing is counted.
    """
    if mode not in AGG_MODES:
        raise ConfigError(f"loss_agg_mode = {mode!r}: must be one of {', '.join(AGG_MODES)}")
    if normalise not in NORMALISATIONS:
        raise ConfigError(f"mask_normalise = {normalise!r}: must be one of {', '.join(NORMALISATIONS)}")
    valid = _valid(mask)
    summed = valid & _valid(selected) if selected is not None else valid
    counted = summed if normalise == "selected" else valid
    loss = torch.where(summed, per_token_loss, torch.zeros_like(per_token_loss))

    if mode == "token-mean":
        return loss.sum() / counted.sum().clamp(min=1)
    n_seqs = counted.any(dim=-1).sum().clamp(min=1)
    if mode == "seq-mean-token-mean":
        per_seq = loss.sum(dim=-1) / counted.sum(dim=-1).clamp(min=1)
    else:
        per_seq = loss.sum(dim=-1) / float(norm_len if norm_len is not None else loss.shape[-1])
    return per_seq.sum() / n_seqs


# --------------------------------------------------------------------------------------------------
# The composed loss
# --------------------------------------------------------------------------------------------------


def compute_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    opts: LossOptions,
    *,
    entropy: Tensor | None = None,
    ref_logp: Tensor | None = None,
    generator: torch.Generator | None = None,
    center: tuple[float, float | Tensor] | None = None,
    entropy_cutoff: float | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The scalar training loss and its metrics: policy loss (+ entropy mask) + entropy bonus + ref KL.

    1. the registered ``opts.policy_loss`` gives a per-token loss (``center`` overrides the covariance
       centre; needed when ``opts.cov_scope == "batch"``; with "state" the log-prob centre is ``-entropy``);
    2. with ``opts.entropy_mask`` the loss keeps only the top-/bottom-rho entropy tokens (cutoff from
       these tensors, or ``entropy_cutoff`` for ``entropy_scope == "batch"``);
    3. it is aggregated with ``opts.loss_agg_mode`` / ``opts.mask_normalise``;
    4. the entropy bonus and ``kl_coef * KL`` are aggregated over ALL valid tokens and added.
    Metrics: the policy loss's own (pg_clipfrac, pg_clipfrac_lower, ppo_kl, clip_cov_frac/kl_cov_frac),
    pg_loss, mask_selected_frac (1.0 without a mask), entropy (token mean over all valid tokens, when
    ``entropy`` is given), kl (token mean, when ``ref_logp`` is given) and loss.
    """
    if opts.cov_scope == "batch" and center is None and opts.policy_loss in COV_POLICY_LOSSES:
        raise ConfigError("LossOptions.cov_scope = 'batch' needs center=covariance_center(...) over the batch")
    if opts.entropy_mask is not None or opts.entropy_coef != 0.0:
        if entropy is None:
            raise ConfigError("LossOptions.entropy_mask / entropy_coef need the per-token entropy tensor")
    if opts.entropy_mask is not None and opts.entropy_scope == "batch" and entropy_cutoff is None:
        raise ConfigError("LossOptions.entropy_scope = 'batch' needs entropy_cutoff=entropy_threshold(...)")
    if opts.kl_coef != 0.0 and ref_logp is None:
        raise ConfigError("LossOptions.kl_coef != 0 needs ref_logp, the reference model's log-probs")

    if opts.cov_scope == "state" and opts.policy_loss in COV_POLICY_LOSSES:
        if entropy is None:
            raise ConfigError("LossOptions.cov_scope = 'state' needs the per-token entropy tensor")
        mean_a = center[0] if center is not None else covariance_center(logp, advantages, mask)[0]
        center = (mean_a, -entropy.detach().float())

    valid = _valid(mask)
    policy_loss = get_policy_loss(opts.policy_loss)
    per_token, metrics = policy_loss(logp, old_logp, advantages, mask, opts, generator=generator, center=center)

    selected = None
    if opts.entropy_mask is not None:
        assert entropy is not None
        selected = entropy_mask(entropy, mask, opts.rho, keep=opts.entropy_mask, threshold=entropy_cutoff)
    metrics["mask_selected_frac"] = 1.0 if selected is None else _mean_float(selected.float(), valid)

    def agg(values: Tensor, sel: Tensor | None = None) -> Tensor:
        return aggregate(
            values, mask, opts.loss_agg_mode, selected=sel, normalise=opts.mask_normalise, norm_len=opts.norm_len
        )

    pg_loss = agg(per_token, selected)
    loss = pg_loss
    metrics["pg_loss"] = float(pg_loss.detach())

    if entropy is not None:
        metrics["entropy"] = _mean_float(entropy, valid)
        if opts.entropy_coef != 0.0:
            loss = loss + agg(entropy_bonus(entropy, mask, opts.entropy_coef))
    if ref_logp is not None:
        kl = kl_penalty(logp, ref_logp, opts.kl_kind)
        metrics["kl"] = _mean_float(kl, valid)
        if opts.kl_coef != 0.0:
            loss = loss + opts.kl_coef * agg(kl)
    metrics["loss"] = float(loss.detach())
    return loss, metrics
