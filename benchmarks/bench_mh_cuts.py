"""Does MH mix faster with entropy-placed cuts and a temperature-1 proposal at the cut? Accuracy and mean
log-likelihood against MH steps, on `fork` and `arith`, for the paper's move (uniform cuts, q throughout),
entropy cuts alone, and both (`mh_entropy`), on the same problems and seeds (`entropylab.compare.sweep`).
The baseline is the paper's move at the same number of steps, measured in the same run.

Run: `.venv/bin/python benchmarks/bench_mh_cuts.py [--problems 100] [--n 2] [--steps 0 2 5 10 20]` (one thread).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from entropylab.compare import sweep
from entropylab.models import load_model

VARIANTS = {
    "paper (uniform cuts)": ("mh", {}),
    "entropy cuts": ("mh", {"cuts": "entropy"}),
    "entropy cuts + cut token at T=1": ("mh_entropy", {}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["fork", "arith"])
    ap.add_argument("--problems", type=int, default=100)
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--steps", type=int, nargs="+", default=[0, 2, 5, 10, 20])
    args = ap.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    for task in args.tasks:
        model, tok = load_model(task)
        frames = []
        for label, (method, opts) in VARIANTS.items():
            df = sweep(
                model,
                tok,
                task,
                "mcmc_steps",
                args.steps,
                method,
                n_problems=args.problems,
                n=args.n,
                max_new_tokens=96,
                options={"block_size": 192, **opts},
            )
            frames.append(df.assign(variant=label))
        table = pd.concat(frames)
        print(
            f"\n{task}: {args.problems} test problems x {args.n}, alpha 4, one block; accuracy / mean log p per token"
        )
        acc = table.pivot(index="value", columns="variant", values="accuracy")[list(VARIANTS)]
        lp = table.pivot(index="value", columns="variant", values="mean_logp")[list(VARIANTS)]
        cost = table.pivot(index="value", columns="variant", values="tokens_per_sample")[list(VARIANTS)]
        print("accuracy\n" + acc.to_string(float_format=lambda v: f"{v:.3f}"))
        print("mean log p per token\n" + lp.to_string(float_format=lambda v: f"{v:.3f}"))
        print("tokens evaluated per answer\n" + cost.to_string(float_format=lambda v: f"{v:.1f}"))
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
