"""Training precision chosen from what the CPU does fast: float32, or bfloat16 autocast, by a timing probe.

A CPU without bf16 instructions (AVX2 only) computes bf16 matrix products in a reference kernel, about ten
times slower than float32; one with AVX-512 bf16 or AMX runs them about three times faster. So "auto" times
a few forward+backward passes of the real workload in each precision, once per process and workload shape,
and keeps the faster one. The probe never steps an optimizer: the weights are left exactly as they were.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Hashable, Iterator

import torch

from entropylab.errors import ConfigError

PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")
CHOICES: tuple[str, ...] = ("auto", *PRECISIONS)

_chosen: dict[Hashable, dict] = {}  # probe results of this process, by workload key


def check_precision(name: str) -> str:
    """`name` if it is one of `CHOICES`, else a `ConfigError` naming the field."""
    if name not in CHOICES:
        raise ConfigError(f"precision = {name!r}: choose one of {', '.join(CHOICES)}")
    return name


@contextlib.contextmanager
def autocast(precision: str, device_type: str = "cpu") -> Iterator[None]:
    """Run a block in `precision`: "float32" as is, "bfloat16" under `torch.autocast` on `device_type`."""
    if precision == "bfloat16":
        with torch.autocast(device_type, dtype=torch.bfloat16):
            yield
    elif precision == "float32":
        yield
    else:
        raise ConfigError(f"precision = {precision!r}: a resolved precision is one of {', '.join(PRECISIONS)}")


def cpu_capability() -> str:
    """torch's CPU kernel level on this machine ("AVX2", "AVX512", ...)."""
    return str(torch.backends.cpu.get_cpu_capability())


def probe(step: Callable[[str], None], candidates: tuple[str, ...] = PRECISIONS, *, repeats: int = 2) -> dict:
    """Time `step(precision)` for each candidate (one warm-up call, then the best of `repeats`) and return
    {"precision": fastest, "seconds": {candidate: seconds per call}}.

    A candidate whose warm-up call already takes over 3x the best time so far is not timed further.
    """
    seconds: dict[str, float] = {}
    for name in candidates:
        t0 = time.perf_counter()
        step(name)
        warm = time.perf_counter() - t0
        if seconds and warm > 3 * min(seconds.values()):
            seconds[name] = warm
            continue
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            step(name)
            best = min(best, time.perf_counter() - t0)
        seconds[name] = best
    fastest = min(seconds, key=seconds.get)
    return {"precision": fastest, "seconds": {k: round(v, 4) for k, v in seconds.items()}}


def resolve(requested: str, step: Callable[[str], None], key: Hashable) -> dict:
    """The precision to train in: `requested` itself, or for "auto" the probe's choice for workload `key`
    (probed once per process). Returns {"precision", "requested", "cpu_capability", "seconds"}."""
    check_precision(requested)
    info = {"requested": requested, "cpu_capability": cpu_capability()}
    if requested != "auto":
        return {**info, "precision": requested, "seconds": {}}
    if key not in _chosen:
        _chosen[key] = probe(step)
    return {**info, **_chosen[key]}


def model_step(model, batch: torch.Tensor, device_type: str = "cpu") -> Callable[[str], None]:
    """A probe step for a causal LM: forward and backward of `batch` [B, L] in a given precision, gradients
    cleared afterwards (no optimizer step, no change to the weights)."""

    def step(precision: str) -> None:
        with autocast(precision, device_type):
            logits = model(input_ids=batch, use_cache=False).logits.float()
        logits.logsumexp(-1).mean().backward()
        model.zero_grad(set_to_none=True)

    return step


def workload_key(model, batch: torch.Tensor, threads: int | None = None) -> tuple:
    """What a probe result depends on: model shape, batch shape, thread count and device."""
    c = model.config
    dev = next(model.parameters()).device
    return (
        c.model_type,
        c.hidden_size,
        c.num_hidden_layers,
        c.vocab_size,
        tuple(batch.shape),
        threads or torch.get_num_threads(),
        str(dev),
    )
