"""The decoding experiment of Wang et al. 2025: one temperature at high-entropy positions, another elsewhere.

`entropy_split_temperature` is the pure logits transform; `EntropySplitTemperature` wraps it as a
`transformers` logits processor (it also counts how many positions were high-entropy);
`sample_split_temperature` samples with it; `temperature_grid` runs a (t_high, t_low) grid through any
callable and returns the accuracy table. The paper: lowering the temperature only at high-entropy tokens
hurts a lot, raising it moderately helps, and the low-entropy temperature matters little.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import pandas as pd
import torch
from torch import Tensor

from entropylab import generation
from entropylab.decoder import token_stats
from entropylab.tokens.errors import TokensError

__all__ = [
    "EntropySplitTemperature",
    "entropy_split_temperature",
    "sample_split_temperature",
    "split_temperature_runner",
    "temperature_grid",
]


def entropy_split_temperature(
    logits: Tensor, entropy_cutoff: float, t_high: float, t_low: float, *, entropy: Tensor | None = None
) -> Tensor:
    """Logits [..., V] divided per position by `t_high` where the temperature-1 entropy is >= `entropy_cutoff`,
    by `t_low` elsewhere (float32 out). A temperature of 0 means greedy: the argmax keeps its logit, the rest
    become -inf. `entropy` ([...], temperature 1) may be passed when the caller has it already.
    """
    if t_high < 0 or t_low < 0:
        raise TokensError(f"temperatures must be >= 0, got t_high={t_high}, t_low={t_low}")
    logits = logits.float()
    h = token_stats(logits).entropy if entropy is None else entropy.to(logits.device, torch.float32)
    high = h >= entropy_cutoff
    temp = torch.where(high, torch.tensor(float(t_high)), torch.tensor(float(t_low))).to(logits.device)
    greedy = temp == 0
    out = logits / torch.where(greedy, torch.ones_like(temp), temp)[..., None]
    if bool(greedy.any()):
        top = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, logits.argmax(-1, keepdim=True), True)
        out = torch.where(greedy[..., None] & ~top, torch.tensor(-math.inf, device=logits.device), out)
    return out


try:  # subclass transformers' LogitsProcessor where available, so `generate` accepts it without question
    from transformers import LogitsProcessor as _Base
except ImportError:  # pragma: no cover - transformers is a dependency
    _Base = object


class EntropySplitTemperature(_Base):
    """Logits processor: `entropy_split_temperature` with fixed settings; counts high-entropy positions.

    Call it HF-style, ``proc(input_ids, scores)``, or as ``proc(scores)`` (a sampler hook that passes only
    the logits [B, V]).
    """

    def __init__(self, entropy_cutoff: float, t_high: float, t_low: float):
        self.entropy_cutoff = float(entropy_cutoff)
        self.t_high = float(t_high)
        self.t_low = float(t_low)
        self.n_high = 0
        self.n_total = 0

    def __call__(self, input_ids: Tensor, scores: Tensor | None = None) -> Tensor:
        logits = input_ids if scores is None else scores
        h = token_stats(logits).entropy
        self.n_high += int((h >= self.entropy_cutoff).sum())
        self.n_total += int(h.numel())
        return entropy_split_temperature(logits, self.entropy_cutoff, self.t_high, self.t_low, entropy=h)

    @property
    def high_fraction(self) -> float:
        """Share of the positions processed so far that were at or above the cutoff."""
        return self.n_high / self.n_total if self.n_total else float("nan")


@torch.inference_mode()
def sample_split_temperature(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    entropy_cutoff: float,
    t_high: float,
    t_low: float,
    n: int = 1,
    max_new_tokens: int = 64,
    seed: int = 0,
) -> tuple[list[list[str]], float]:
    """`n` completions per prompt with the split temperature; returns (texts grouped by prompt, high fraction).

    Draws with `entropylab.generation.sample`, the processor reshaping each next-token distribution.
    """
    proc = EntropySplitTemperature(entropy_cutoff, t_high, t_low)
    out = generation.sample(
        model,
        tokenizer,
        list(prompts),
        n=n,
        max_new_tokens=max_new_tokens,
        temperature=1.0,
        seed=seed,
        logits_processor=proc,
    )
    return out.texts_by_prompt(), proc.high_fraction


def split_temperature_runner(
    model,
    tokenizer,
    problems: Sequence,
    reward: Callable[[Sequence[str], Sequence], Sequence[float]],
    *,
    entropy_cutoff: float,
    n: int = 1,
    max_new_tokens: int = 64,
    seed: int = 0,
) -> Callable[[float, float], dict[str, float]]:
    """A `temperature_grid` callable: sample each problem's prompt at (t_high, t_low), score with `reward`
    (e.g. ``task.reward``), return {"accuracy", "high_fraction"}."""

    def run(t_high: float, t_low: float) -> dict[str, float]:
        texts, frac = sample_split_temperature(
            model,
            tokenizer,
            [p.prompt for p in problems],
            entropy_cutoff=entropy_cutoff,
            t_high=t_high,
            t_low=t_low,
            n=n,
            max_new_tokens=max_new_tokens,
            seed=seed,
        )
        flat = [t for group in texts for t in group]
        probs = [p for p in problems for _ in range(n)]
        scores = list(reward(flat, probs))
        return {"accuracy": sum(scores) / len(scores), "high_fraction": frac}

    return run


def temperature_grid(
    run: Callable[[float, float], float | Mapping[str, float]],
    t_high: Iterable[float] = (0.5, 0.75, 1.0, 1.25, 1.5),
    t_low: Iterable[float] = (0.5, 1.0, 1.5),
    *,
    metric: str = "accuracy",
    progress: bool = False,
) -> pd.DataFrame:
    """Call `run(t_high, t_low)` for every pair; one row per pair with the returned metric(s).

    `run` returns a number (stored as `metric`) or a mapping of metrics. When the (1, 1) cell is in the grid a
    `delta` column gives `metric` minus its value (the plain temperature-1 baseline). Pivot with
    ``grid.pivot(index="t_high", columns="t_low", values="accuracy")``.
    """
    pairs = list(itertools.product([float(t) for t in t_high], [float(t) for t in t_low]))
    if not pairs:
        raise TokensError("temperature_grid: empty temperature lists")
    if progress:
        from entropylab.progress import bar as progress_bar

        pairs = progress_bar(pairs, desc="temperature grid")
    rows = []
    for th, tl in pairs:
        result = run(th, tl)
        metrics = dict(result) if isinstance(result, Mapping) else {metric: float(result)}
        rows.append({"t_high": th, "t_low": tl, **metrics})
    grid = pd.DataFrame(rows)
    if metric in grid.columns:
        base = grid.loc[(grid["t_high"] == 1.0) & (grid["t_low"] == 1.0), metric]
        if len(base):
            grid["delta"] = grid[metric] - float(base.iloc[0])
    return grid
