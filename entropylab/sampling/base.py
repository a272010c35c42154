"""What every sampler returns (`PowerSamples`) and the input checks and set-up they share."""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from entropylab.decoder import eos_ids, pad_id, returned_cache
from entropylab.errors import ConfigError, ModelError
from entropylab.generation import Samples, encode_prompts, fit_to_context, left_pad

__all__ = [
    "PowerSamples",
    "Setup",
    "prepare",
    "check_alpha",
    "check_int",
    "check_top_p",
    "check_kv_cache",
    "decode_texts",
    "Stopwatch",
]


@dataclass
class PowerSamples(Samples):
    """`Samples` from any sampler of `entropylab.sampling`, with the cost and the sampler's own statistics.

    `logprobs` holds log q (the proposal that drew each kept token), `logprobs_t1` log p (the model at
    temperature 1); `loglik` is the sum of log p over each response, the quantity power sampling favours.
    """

    loglik: Tensor | None = None  # [B] sum_t log p(x_t | x_<t) of each response
    method: str = ""
    tokens_evaluated: int = 0  # token positions passed through the model (prefill + decode, padding included)
    tokens_generated: int = 0  # tokens sampled, rejected proposals and discarded particles included
    wall_time: float = 0.0  # seconds
    acceptance_rate: float | None = None  # MH: accepted / proposed, all chains and steps
    acceptance_per_block: list[float] = field(default_factory=list)  # MH: the same per block
    acceptance_per_row: Tensor | None = None  # MH: [B] per chain
    log_weights: Tensor | None = None  # SMC, all particles returned: [B] normalised log weight within its system
    log_evidence: Tensor | None = None  # SMC: [n_prompts * n] log of the estimate of sum_x p(x)^alpha
    stats: dict = field(default_factory=dict)  # sampler-specific extras (resampling counts, ESS trace, ...)

    @property
    def mean_logp(self) -> Tensor:
        """[B] mean log p per token of each response."""
        return self.loglik / self.n_tokens.clamp(min=1)

    @property
    def confidence(self) -> Tensor:
        """[B] mean probability p(x_t | x_<t) of the sampled tokens of each response."""
        probs = torch.where(self.response_mask, self.logprobs_t1.exp(), torch.zeros_like(self.logprobs_t1))
        return probs.sum(1) / self.n_tokens.clamp(min=1)

    def to(self, device: str | torch.device) -> PowerSamples:
        out = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()}
        return PowerSamples(**out)

    def ordinary(self) -> PowerSamples:
        """A copy without inference-mode tensors (the samplers run under `torch.inference_mode`, ~30% faster
        small decode steps on CPU), so callers may use the results in autograd-tracked computations."""
        with torch.inference_mode(False):
            out = {
                k: (v.clone() if isinstance(v, Tensor) and v.is_inference() else v) for k, v in self.__dict__.items()
            }
        return PowerSamples(**out)


# ------------------------------------------------------------------------------------------------ checks


def check_alpha(alpha: float) -> float:
    """alpha as float; ConfigError unless it is a finite number > 0."""
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ConfigError(f"alpha must be a number > 0, got {alpha!r}") from None
    if not a > 0 or a == float("inf"):
        raise ConfigError(f"alpha must be a finite number > 0, got {alpha!r}")
    return a


def check_int(name: str, value, minimum: int) -> int:
    """`value` as int; ConfigError naming `name` unless it is an integer >= minimum."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or int(value) != value:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_top_p(top_p: float) -> float:
    """top_p as float; ConfigError unless it is in (0, 1]."""
    if not 0.0 < float(top_p) <= 1.0:
        raise ConfigError(f"top_p must be in (0, 1], got {top_p!r}")
    return float(top_p)


def check_kv_cache(model) -> None:
    """ModelError unless the model keeps a KV cache: power sampling continues from cached prefixes."""
    cfg = getattr(model, "config", None)
    if cfg is None or not callable(model):
        raise ModelError(f"model must be a transformers causal LM with a config, got {type(model).__name__}")
    if getattr(cfg, "use_cache", True) is False:
        raise ModelError(
            "model.config.use_cache is False: the samplers need a model that returns a KV cache "
            "(set model.config.use_cache = True)"
        )
    dev = next(model.parameters()).device
    with torch.inference_mode():
        out = model(input_ids=torch.zeros((1, 1), dtype=torch.long, device=dev), use_cache=True)
    if returned_cache(out) is None:
        raise ModelError(f"model {type(model).__name__} returned no KV cache (past_key_values): the samplers need one")


# ------------------------------------------------------------------------------------------------ set-up


@dataclass
class Setup:
    """Encoded prompts and the ids, device and length every sampler needs; `clock` runs from `prepare`."""

    prompt_ids: list[list[int]]
    eos: list[int]
    pad: int
    device: torch.device
    max_new_tokens: int
    clock: Stopwatch

    def batch(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """Left-padded prompts repeated n times, prompt-major: (ids [R, P], mask [R, P], prompt_index [R])."""
        index = torch.arange(len(self.prompt_ids)).repeat_interleave(n)
        ids, mask = left_pad([self.prompt_ids[i] for i in index.tolist()], self.pad, device=self.device)
        return ids, mask, index.to(self.device)

    def collect(
        self,
        tokenizer,
        *,
        tokens: Tensor,
        length: Tensor,
        logq: Tensor,
        logp: Tensor,
        entropy: Tensor,
        prompt_index: Tensor,
        n: int,
        method: str,
        meta: dict,
        evaluated: int,
        generated: int,
        finished: Tensor | None = None,
        width: int | None = None,
        **fields,
    ) -> PowerSamples:
        """A sampler's `PowerSamples` from per-row arrays [R, T] with `length` [R] tokens each, cut to `width`
        columns (default: the longest row); `finished` defaults to rows that end with EOS. Made ordinary."""
        width = max(int(length.max()), 1) if width is None else width
        mask = seq_columns(width, tokens.device) < length[:, None]
        ids, logp = tokens[:, :width], logp[:, :width]
        if finished is None:
            last = ids.gather(1, (length - 1).clamp(min=0)[:, None])[:, 0]
            finished = (length > 0) & torch.isin(last, torch.as_tensor(self.eos, dtype=torch.long, device=ids.device))
        return PowerSamples(
            prompt_ids=self.prompt_ids,
            response_ids=ids,
            response_mask=mask,
            logprobs=logq[:, :width],
            logprobs_t1=logp,
            entropy=entropy[:, :width],
            texts=decode_texts(tokenizer, ids, mask),
            prompt_index=prompt_index,
            n_tokens=length,
            finished=finished,
            n=n,
            pad_token_id=self.pad,
            meta=dict(method=method, **meta),
            loglik=masked_sum(logp, mask),
            method=method,
            tokens_evaluated=int(evaluated),
            tokens_generated=int(generated),
            wall_time=self.clock(),
            **fields,
        ).ordinary()


def prepare(model, tokenizer, prompts, max_new_tokens: int, *, eos_token_id=None, check_cache: bool = True) -> Setup:
    """Encode prompts, check them against the context (clamping `max_new_tokens` with a warning) and find EOS/pad;
    the set-up's clock starts here."""
    clock = Stopwatch()
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, 1)
    if isinstance(prompts, str):
        prompts = [prompts]
    if tokenizer is None and any(isinstance(p, str) for p in prompts):
        raise ConfigError("string prompts need a tokenizer; pass token-id lists or a tokenizer")
    prompt_ids = encode_prompts(tokenizer, prompts)
    max_new_tokens = fit_to_context(model, prompt_ids, max_new_tokens, where="prompts: ", stacklevel=4)
    if check_cache:
        check_kv_cache(model)
    eos = eos_ids(model, tokenizer, eos_token_id)
    return Setup(prompt_ids, eos, pad_id(tokenizer, eos), next(model.parameters()).device, max_new_tokens, clock)


def decode_texts(tokenizer, ids: Tensor, mask: Tensor) -> list[str]:
    """Decoded responses (special tokens skipped); without a tokenizer, the ids joined by spaces."""
    rows = [r[m].tolist() for r, m in zip(ids.cpu(), mask.cpu())]
    if tokenizer is None:
        return [" ".join(map(str, r)) for r in rows]
    return tokenizer.batch_decode(rows, skip_special_tokens=True)


class Stopwatch:
    """Wall time since construction, in seconds."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.t0


def seq_columns(width: int, device) -> Tensor:
    """[1, width] column indices, for building masks by broadcasting."""
    return torch.arange(width, device=device)[None, :]


def masked_sum(x: Tensor, mask: Tensor) -> Tensor:
    """Row sums of x over mask, safe for -inf outside the mask."""
    return torch.where(mask, x, torch.zeros_like(x)).sum(-1)
