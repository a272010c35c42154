"""Benchmark: power sampling by SMC against MH at matched token budgets, on the shipped `arith` model.

Both target p(x)^alpha (alpha 4 by default). MH runs `mcmc_steps` in a list of values (block-wise, exact,
KV caches kept), SMC a list of particle counts (one response drawn by weight from each particle system).
Every method answers the same test problems with the same seed, `--samples` answers per problem, and is
scored by the task's verifier (single-shot accuracy: the share of correct answers) and by the mean
log-likelihood of its answers under p (the model at temperature 1, the quantity power sampling favours).
Cost: token positions the model evaluated (prefill and decode; rejected proposals and discarded particles
included), as both samplers report them in `tokens_evaluated`, per answer and as a multiple of plain
sampling's: plain sampling (temperature 1) is the baseline; low temperature (1/alpha) is the token-level
reference. The second table pairs every SMC setting with the MH setting of the nearest budget.

Usage: python benchmarks/bench_smc_vs_mh.py [--problems 150] [--samples 2] [--alpha 4]
       [--mh-steps 1,2,4,8,16,32,64] [--particles 2,4,8,16] [--block-size 16] [--threads 1] [--model arith]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from entropylab.compare import default_max_new_tokens
from entropylab.models import load_model
from entropylab.sampling import power_sample_mh, power_sample_smc, sample_low_temperature, sample_plain
from entropylab.tasks import get_task


def run(label: str, setting: str, fn, task, problems, **kwargs) -> dict:
    """One method on every problem: accuracy, mean log p, cost (token-evaluations) and CPU seconds."""
    c0 = time.process_time()
    s = fn(**kwargs)
    cpu = time.process_time() - c0
    rewards = task.reward(s.texts, [problems[i] for i in s.prompt_index.tolist()])
    return dict(
        method=label,
        setting=setting,
        answers=len(s),
        tokens=s.tokens_evaluated / len(s),
        accuracy=sum(r > 0.5 for r in rewards) / len(rewards),
        loglik=float(s.loglik.mean()),
        mean_logp=float(s.mean_logp.mean()),
        length=float(s.n_tokens.float().mean()),
        cpu=cpu,
        acceptance=s.acceptance_rate,
        replayed=s.stats.get("replayed_tokens", 0) / max(s.tokens_generated, 1),
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="arith", help="shipped name or checkpoint directory")
    ap.add_argument("--task", default="arith")
    ap.add_argument("--problems", type=int, default=150, help="test problems")
    ap.add_argument("--samples", type=int, default=2, help="answers per problem and method")
    ap.add_argument("--alpha", type=float, default=4.0)
    ap.add_argument("--mh-steps", default="1,2,4,8,16,32,64", help="MH mcmc_steps values")
    ap.add_argument("--particles", default="2,4,8,16", help="SMC particle counts")
    ap.add_argument("--block-size", type=int, default=16, help="MH block size (tokens)")
    ap.add_argument("--max-new-tokens", type=int, default=0, help="0: 1.5 x the longest reference + 8")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tok = load_model(args.model)
    task = get_task(args.task)
    problems = task.problems("test", args.problems, seed=args.seed)
    prompts = [p.prompt for p in problems]
    t_max = args.max_new_tokens or default_max_new_tokens(model, tok, problems)
    common = dict(model=model, tokenizer=tok, prompts=prompts, alpha=args.alpha, max_new_tokens=t_max, seed=args.seed)
    n = args.samples
    print(
        f"model {args.model!r}, task {args.task!r}: {len(problems)} test problems x {n} answers, alpha {args.alpha}, "
        f"max_new_tokens {t_max}, MH block {args.block_size}, seed {args.seed}, {args.threads} thread(s)"
    )
    sample_plain(**{**common, "prompts": prompts[:2]}, n=1)  # warm-up

    rows = [
        run("plain", "temperature 1", sample_plain, task, problems, **common, n=n),
        run("low temperature", f"temperature 1/{args.alpha:g}", sample_low_temperature, task, problems, **common, n=n),
    ]
    for steps in (int(v) for v in args.mh_steps.split(",") if v):
        rows.append(
            run(
                "MH",
                f"mcmc_steps {steps}",
                power_sample_mh,
                task,
                problems,
                **common,
                n_chains=n,
                mcmc_steps=steps,
                block_size=args.block_size,
            )
        )
    for parts in (int(v) for v in args.particles.split(",") if v):
        rows.append(
            run("SMC", f"{parts} particles", power_sample_smc, task, problems, **common, n=n, n_particles=parts)
        )
    base = rows[0]["tokens"]

    print(f"\nbaseline: plain sampling, {base:.1f} token-evaluations per answer\n")
    head = (
        f"{'method':16s} {'setting':16s} {'tokens/answer':>13s} {'x plain':>7s} {'accuracy':>8s} "
        f"{'loglik':>8s} {'logp/token':>10s} {'length':>6s} {'accept':>6s} {'replayed':>8s} {'cpu s':>6s}"
    )
    print(head)
    for r in rows:
        acc = "" if r["acceptance"] is None else f"{r['acceptance']:.2f}"
        rep = f"{r['replayed']:.2f}" if r["method"] == "MH" else ""
        print(
            f"{r['method']:16s} {r['setting']:16s} {r['tokens']:13.1f} {r['tokens'] / base:7.2f} {r['accuracy']:8.3f} "
            f"{r['loglik']:8.3f} {r['mean_logp']:10.4f} {r['length']:6.1f} {acc:>6s} {rep:>8s} {r['cpu']:6.1f}"
        )

    mh = [r for r in rows if r["method"] == "MH"]
    smc = [r for r in rows if r["method"] == "SMC"]
    if mh and smc:
        print("\nmatched budgets (each SMC setting against the MH setting of the nearest token cost):")
        print(
            f"{'SMC':14s} {'x plain':>7s} {'acc':>6s} {'loglik':>8s}  |  {'MH':16s} {'x plain':>7s} {'acc':>6s} {'loglik':>8s}"
        )
        for s in smc:
            m = min(mh, key=lambda r: abs(r["tokens"] - s["tokens"]))
            print(
                f"{s['setting']:14s} {s['tokens'] / base:7.2f} {s['accuracy']:6.3f} {s['loglik']:8.3f}  |  "
                f"{m['setting']:16s} {m['tokens'] / base:7.2f} {m['accuracy']:6.3f} {m['loglik']:8.3f}"
            )
    se = (0.25 / (len(problems) * n)) ** 0.5
    print(
        f"\n(accuracy: {len(problems) * n} answers per row; binomial standard error at most {se:.3f}, more when "
        f"the answers to one problem agree)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
