"""Power sampling against low temperature on `fork`, the task built to tell them apart, with each route's share.

`fork` opens every answer with a route: ` way: guess` (likely, mostly wrong) or ` way: add` (unlikely, mostly
right). Token-level low temperature sharpens the likely first token, so it guesses; p^alpha weighs whole
sequences and prefers the sure route. The script estimates the p^alpha mass of each route from plain samples
(self-normalised importance weights p(x)^(alpha-1)), then runs each sampler on the same problems and prints
its accuracy (95% bootstrap interval over problems), its share of the add route and its tokens per answer
relative to plain sampling (the named baseline), and a paired comparison with low temperature (McNemar's exact
test on the same problems and sample index, and the bootstrap interval of the difference).

Run: `.venv/bin/python benchmarks/bench_fork_routes.py [--problems 200] [--n 2]` (one torch thread).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from entropylab.evaluate import mcnemar, paired_bootstrap
from entropylab.models import load_model
from entropylab.sampling import get_sampler
from entropylab.tasks import get_task

ALPHA = 4.0
METHODS: list[tuple[str, str, dict]] = [
    ("plain", "plain", {}),
    ("low temperature", "temp", {}),
    ("MH, uniform cuts (paper)", "mh", dict(mcmc_steps=10)),
    ("MH, entropy cuts, cut token at T=1", "mh", dict(mcmc_steps=10, cuts="entropy", cut_temperature=1.0)),
    ("MH, entropy cuts, cut token at T=1, 40 steps", "mh", dict(mcmc_steps=40, cuts="entropy", cut_temperature=1.0)),
    ("MH, entropy cuts, cut token at T=2, 40 steps", "mh", dict(mcmc_steps=40, cuts="entropy", cut_temperature=2.0)),
]


def bootstrap(values: np.ndarray, rng: np.random.Generator, reps: int = 2000) -> tuple[float, float]:
    """95% interval of the mean of per-problem values [problems, samples], resampling problems."""
    idx = rng.integers(0, len(values), size=(reps, len(values)))
    means = values[idx].mean(axis=(1, 2))
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--n", type=int, default=2, help="answers per problem")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, tok = load_model("fork")
    task = get_task("fork")
    problems = task.problems("test", args.problems, seed=args.seed)
    prompts = [p.prompt for p in problems]
    rng = np.random.default_rng(0)
    rows, correct = [], {}
    for label, name, opts in METHODS:
        t0 = time.perf_counter()
        s = get_sampler(name)(model, tok, prompts, n=args.n, alpha=ALPHA, max_new_tokens=64, seed=args.seed, **opts)
        wall = time.perf_counter() - t0
        owner = [problems[i] for i in s.prompt_index.tolist()]
        reward = np.asarray(task.reward(s.texts, owner), dtype=float).reshape(len(problems), args.n)
        route_add = np.array([task.route(t) == "add" for t in s.texts], dtype=float).reshape(len(problems), args.n)
        if name == "plain":  # p^alpha mass of the add route: weights p(x)^(alpha - 1) on samples from p
            lw = (ALPHA - 1) * s.loglik.double().numpy().reshape(len(problems), args.n)
            w = np.exp(lw - lw.max())
            mass = float((w * route_add).sum() / w.sum())
            boot = [(w[i] * route_add[i]).sum() / w[i].sum() for i in rng.integers(0, len(w), (2000, len(w)))]
            mass_ci = (float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975)))
            plain_tokens = s.tokens_evaluated
        correct[label] = reward
        lo, hi = bootstrap(reward, rng)
        rows.append((label, reward.mean(), lo, hi, route_add.mean(), s.tokens_evaluated / plain_tokens, wall))
    print(f"fork, {args.problems} test problems x {args.n} answers, alpha {ALPHA:g}, seed {args.seed}")
    print(f"p^alpha mass of the add route (from the plain samples): {mass:.3f} [{mass_ci[0]:.3f}, {mass_ci[1]:.3f}]\n")
    print(f"{'method':46s} {'accuracy [95%]':>22s} {'add share':>10s} {'tokens x plain':>15s} {'wall s':>7s}")
    for label, acc, lo, hi, add, cost, wall in rows:
        print(f"{label:46s} {acc:8.3f} [{lo:.3f}, {hi:.3f}] {add:10.3f} {cost:15.2f} {wall:7.1f}")
    base = correct["low temperature"]
    print("\npaired against low temperature (same problems and sample index):")
    for label, reward in correct.items():
        if label == "low temperature":
            continue
        t = mcnemar(reward.ravel(), base.ravel())
        d = paired_bootstrap(reward.mean(1), base.mean(1))
        print(
            f"  {label:46s} difference {d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}], "
            f"McNemar {t['a_only']} vs {t['b_only']} discordant, p = {t['p_value']:.2g}"
        )


if __name__ == "__main__":
    main()
