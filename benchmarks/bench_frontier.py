"""The accuracy-against-tokens frontier of the samplers, at equal compute, on the same problems.

Each budget is tokens evaluated per answer; `entropylab.compare.frontier` sets every method's knob to spend it
(best-of-n candidates, SMC particles, MH steps from pilot runs) and reports what each spent. The baseline is
plain sampling, measured in the same run (tokens × plain). Writes the figure and the table to OUT.

Run: `.venv/bin/python benchmarks/bench_frontier.py [--model fork] [--task fork] [--problems 100] [--n 2]
      [--budgets 100 200 400 800] [--out runs/frontier]` (one torch thread).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from entropylab.compare import frontier
from entropylab.models import load_model
from entropylab.plots.sampling import plot_frontier
from entropylab.plots.style import save_figure


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fork")
    ap.add_argument("--task", default="fork")
    ap.add_argument("--problems", type=int, default=100)
    ap.add_argument("--n", type=int, default=2, help="answers per problem")
    ap.add_argument("--budgets", type=float, nargs="+", default=[100, 200, 400, 800])
    ap.add_argument("--methods", nargs="+", default=["best_of_n", "smc", "mh", "mh_entropy", "sps"])
    ap.add_argument("--out", default="runs/frontier")
    args = ap.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    model, tok = load_model(args.model)
    table = frontier(
        model, tok, args.task, args.budgets, args.methods, n_problems=args.problems, k_max=args.n, max_new_tokens=64
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "frontier.csv", index=False)
    save_figure(plot_frontier(table), out / "frontier")
    cols = ["method", "budget", "knob", "accuracy", "tokens_per_sample", "cost_x"]
    print(f"{args.task}: {args.problems} problems x {args.n} answers, alpha 4, budgets {args.budgets}")
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"figure and table: {out}/frontier.png, frontier.csv ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
