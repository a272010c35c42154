"""Every registered sampler's speed against plain sampling and against MH, at batch 1 and batch 16.

One torch thread, the shipped `fork` model, α = 4, 48 new tokens, each sampler with its default options
(`entropylab.compare.DEFAULT_OPTIONS`). Batch B means B prompts in one call, one answer each. Reported per
sampler: answers per second, tokens evaluated per second (positions the model computed), and the ratio of
answers per second to plain sampling's and to MH's at the same batch, all measured in this run (best of
`--repeats` after a warm-up call).

Run: `.venv/bin/python benchmarks/bench_sampler_speed.py [--batches 1 16] [--repeats 2]`.
"""

from __future__ import annotations

import argparse
import time

import torch

from entropylab.compare import DEFAULT_OPTIONS
from entropylab.models import load_model
from entropylab.sampling import get_sampler, list_samplers
from entropylab.tasks import get_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, tok = load_model("fork")
    problems = get_task("fork").problems("test", max(args.batches), seed=0)
    print(f"fork, alpha 4, {args.max_new_tokens} new tokens, one thread; ratios of answers/s at the same batch")
    print(f"{'sampler':12s} {'batch':>5s} {'answers/s':>10s} {'tokens/s':>10s} {'x plain':>8s} {'x mh':>7s}")
    for batch in args.batches:
        prompts = [p.prompt for p in problems[:batch]]
        rates = {}
        for name in list_samplers():
            fn = get_sampler(name)
            opts = DEFAULT_OPTIONS.get(name, {})
            fn(model, tok, prompts[:1], n=1, alpha=4.0, max_new_tokens=8, seed=0, **opts)  # warm-up
            best, evaluated = float("inf"), 0
            for r in range(args.repeats):
                t0 = time.perf_counter()
                s = fn(model, tok, prompts, n=1, alpha=4.0, max_new_tokens=args.max_new_tokens, seed=r, **opts)
                dt = time.perf_counter() - t0
                if dt < best:
                    best, evaluated = dt, s.tokens_evaluated
            rates[name] = (batch / best, evaluated / best)
        for name, (answers, tokens) in rates.items():
            print(
                f"{name:12s} {batch:5d} {answers:10.2f} {tokens:10.0f} {answers / rates['plain'][0]:8.3f} "
                f"{answers / rates['mh'][0]:7.2f}"
            )


if __name__ == "__main__":
    main()
