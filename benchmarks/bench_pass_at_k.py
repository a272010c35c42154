"""pass@k of the base model against a trained checkpoint on the same held-out problems (diversity after RL).

Run: `.venv/bin/python benchmarks/bench_pass_at_k.py RUN_DIR_OR_CHECKPOINT [--base MODEL] [--task TASK]
      [--problems 300] [--samples 64] [--seed 1]` (one torch thread; base model and task default to
      `experiments.DEFAULT_TASK`). A run directory means its last checkpoint.
Prints pass@k for k = 1, 2, 4, ... up to `--samples` (the unbiased estimator from `--samples` samples at
temperature 1) of both models and the trained model's lead over the base, paired by problem, with its standard
error and 95% interval over problems.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from entropylab import experiments as ex
from entropylab.evaluate import pass_at_k, sample_and_score
from entropylab.models import load_model
from entropylab.rundir import latest_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trained", help="a run directory (its last checkpoint) or a checkpoint directory")
    ap.add_argument("--base", default=ex.DEFAULT_TASK, help="base model (default: the default world's)")
    ap.add_argument("--task", default=ex.DEFAULT_TASK)
    ap.add_argument("--problems", type=int, default=300)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    trained = Path(args.trained)
    if (trained / "checkpoints").is_dir():
        trained = latest_checkpoint(trained)
    ks = [2**i for i in range(args.samples.bit_length())]  # 1, 2, 4, ... up to --samples
    rows = {}
    for name, path in (("base", args.base), ("trained", trained)):
        model, tok = load_model(path)
        *_, correct = sample_and_score(model, tok, args.task, "test", args.problems, args.samples, 1.0, args.seed)
        n = np.full(len(correct), args.samples)
        rows[name] = {k: pass_at_k(n, correct, k) for k in ks}
    print(f"{args.task}: {args.problems} problems x {args.samples} samples at temperature 1; trained = {trained}")
    print(f"{'k':>4} {'base':>7} {'trained':>8} {'lead':>7} {'se':>6}  95% interval")
    for k in rows["base"]:
        b, t = rows["base"][k], rows["trained"][k]
        d = t - b
        se = d.std(ddof=1) / np.sqrt(len(d))
        lo, hi = d.mean() - 1.96 * se, d.mean() + 1.96 * se
        print(f"{k:>4} {b.mean():7.3f} {t.mean():8.3f} {d.mean():+7.3f} {se:6.3f}  [{lo:+.3f}, {hi:+.3f}]")


if __name__ == "__main__":
    main()
