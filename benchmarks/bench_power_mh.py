"""Benchmark: entropylab's batched power MH against the straightforward re-encoding implementation.

Same algorithm (exact block-wise MH, proposal p at temperature 1/alpha), same alpha, mcmc_steps, block
size, max_new_tokens and seeds; fork-task prompts. The baseline (`naive_power_mh.py`) runs one chain at
a time through the `transformers` forward and re-encodes the prefix for every proposal and the whole
sequence for every likelihood, as the reference code does. Reported per chain: wall time, CPU time of
this process (steadier than wall time on a shared machine) and model token-evaluations (token positions
passed through the model). entropylab runs at batch 1 (the `transformers` forward re-encoding prefixes;
the fast decoder re-encoding prefixes; the fast decoder keeping each chain's KV cache) and at batch 4
and 16 (chains of different prompts in one batch). Targets: >= 3x faster than the baseline per chain on
CPU; time per chain falling with the batch.

Model: the shipped `fork` checkpoint when data/models/fork exists, else a random model of the same shape.
Usage: python benchmarks/bench_power_mh.py [--naive-chains 2] [--batches 1,4,16] [--mcmc-steps 4]
       [--block-size 16] [--max-new-tokens 48] [--alpha 4] [--threads 1] [--repeat 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from naive_power_mh import naive_power_mh  # noqa: E402

from entropylab.sampling import power_sample_mh  # noqa: E402
from entropylab.tasks import get_task  # noqa: E402


def load(name: str):
    """The shipped checkpoint if present, else a random Qwen2 of the shipped shape (and a note saying so)."""
    from entropylab.models import build_tokenizer, data_dir, load_model, tiny_config

    if (data_dir() / name / "config.json").is_file() or (Path(name) / "config.json").is_file():
        model, tok = load_model(name)
        return model, tok, f"checkpoint {name!r}"
    from transformers import Qwen2ForCausalLM

    tok = build_tokenizer()
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(tiny_config(len(tok))).eval()
    return model, tok, f"random model of the shipped shape (no data/models/{name} yet)"


def timed(repeat: int, fn, *args, **kwargs) -> tuple[object, float, float]:
    """(result, wall s, cpu s) of the fastest (by CPU time) of `repeat` identical runs."""
    best = None
    for _ in range(max(repeat, 1)):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        run = (out, time.perf_counter() - w0, time.process_time() - c0)
        best = run if best is None or run[2] < best[2] else best
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fork", help="shipped name or checkpoint directory")
    ap.add_argument("--alpha", type=float, default=4.0)
    ap.add_argument("--mcmc-steps", type=int, default=4)
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--naive-chains", type=int, default=2, help="chains (prompts) timed with the baseline")
    ap.add_argument("--batches", default="1,4,16", help="batch sizes (chains in one batch) for entropylab")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared machine)")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per variant; the fastest counts")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tok, what = load(args.model)
    batches = [int(b) for b in args.batches.split(",")]
    n = args.naive_chains
    problems = get_task("fork").problems("test", max(batches + [n]), seed=args.seed)
    prompts = [tok(p.prompt)["input_ids"] for p in problems]
    cfg = dict(alpha=args.alpha, mcmc_steps=args.mcmc_steps, block_size=args.block_size,
               max_new_tokens=args.max_new_tokens)
    print(f"model: {what}; alpha {args.alpha}, mcmc_steps {args.mcmc_steps}, block {args.block_size}, "
          f"max_new_tokens {args.max_new_tokens}, threads {args.threads}, best of {args.repeat}")
    for kv in ("reuse", "recompute"):  # warm-up
        power_sample_mh(model, tok, prompts[:2], seed=99, kv=kv, **cfg)
    power_sample_mh(model, tok, prompts[:1], seed=99, backend="hf", kv="recompute", **cfg)

    rows = []  # (label, batch, wall s/chain, cpu s/chain, token-evaluations/chain, mean length, prefill share)
    # 1. the baseline, one chain at a time
    acc = [0.0, 0.0, 0, 0]
    for i in range(n):
        r, wall, cpu = timed(args.repeat, naive_power_mh, model, prompts[i], eos_token_id=tok.eos_token_id,
                             seed=args.seed + i, **cfg)
        acc = [acc[0] + wall, acc[1] + cpu, acc[2] + r["tokens_evaluated"], acc[3] + len(r["tokens"])]
    rows.append(("naive (HF forward, re-encode)", 1, acc[0] / n, acc[1] / n, acc[2] / n, acc[3] / n, float("nan")))
    # 2. entropylab at batch 1, same prompts and seeds as the baseline
    variants = [("hf", "recompute", "HF forward, re-encode"), ("auto", "recompute", "fast, re-encode"),
                ("auto", "reuse", "fast, KV kept")]
    for backend, kv, label in variants:
        acc = [0.0, 0.0, 0, 0.0, 0]
        for i in range(n):
            s, wall, cpu = timed(args.repeat, power_sample_mh, model, tok, prompts[i : i + 1], seed=args.seed + i,
                                 backend=backend, kv=kv, **cfg)
            acc = [acc[0] + wall, acc[1] + cpu, acc[2] + s.tokens_evaluated, acc[3] + float(s.n_tokens.float().mean()),
                   acc[4] + s.stats["prefill_positions"]]
        rows.append((f"entropylab ({label})", 1, acc[0] / n, acc[1] / n, acc[2] / n, acc[3] / n, acc[4] / max(acc[2], 1)))
    # 3. entropylab batched: b chains (b prompts) in one batch
    for b in batches:
        if b == 1:
            continue
        for kv, label in (("recompute", "fast, re-encode"), ("reuse", "fast, KV kept")):
            s, wall, cpu = timed(args.repeat, power_sample_mh, model, tok, prompts[:b], seed=args.seed, kv=kv, **cfg)
            rows.append((f"entropylab ({label})", b, wall / b, cpu / b, s.tokens_evaluated / b,
                         float(s.n_tokens.float().mean()), s.stats["prefill_positions"] / max(s.tokens_evaluated, 1)))

    print(f"\n{'implementation':38s} {'batch':>5s} {'wall s/chain':>12s} {'cpu s/chain':>11s} "
          f"{'tok-evals/chain':>15s} {'length':>6s} {'prefill':>7s}")
    for label, b, wall, cpu, te, ln, pre in rows:
        print(f"{label:38s} {b:5d} {wall:12.3f} {cpu:11.3f} {te:15.0f} {ln:6.1f} {pre:7.2f}")
    _, _, n_wall, n_cpu, n_te, _, _ = rows[0]
    print("\nagainst the baseline, per chain (wall / cpu time / token-evaluations):")
    for label, b, wall, cpu, te, _, _ in rows[1:]:
        print(f"  {label:38s} batch {b:2d}: {n_wall / wall:5.1f}x / {n_cpu / cpu:5.1f}x faster, {n_te / te:5.1f}x fewer")
    print("scaling (cpu time per chain; throughput against batch 1 of the same variant):")
    for label in ("fast, re-encode", "fast, KV kept"):
        mine = [(b, cpu) for lab, b, _, cpu, *_ in rows if lab.endswith(f"({label})")]
        print(f"  {label:16s} " + "  ".join(f"batch {b}: {cpu:.3f} s ({mine[0][1] / cpu:.1f}x)" for b, cpu in mine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
