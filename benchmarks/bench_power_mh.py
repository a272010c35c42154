"""Benchmark: entropylab's batched power MH against the straightforward re-encoding implementation.

Same algorithm (exact block-wise MH, proposal p at temperature 1/alpha), same alpha, mcmc_steps, block
size, max_new_tokens and seeds; fork-task prompts. The baseline (`naive_power_mh.py`) runs one chain at
a time through the `transformers` forward and re-encodes the prefix for every proposal and the whole
sequence for every likelihood, as the reference code does. Reported per chain: wall time, CPU time of
this process (steadier than wall time on a shared machine) and model token-evaluations (token positions
passed through the model), with the acceptance rate and, for the kept-cache runner, the share of
proposed tokens drawn from the state's stored distributions (a proposal that repeats the state's tokens
needs no forward until it departs from them; the more confident the model, the larger this share).
entropylab runs at batch 1 (the `transformers` forward re-encoding prefixes; the fast decoder
re-encoding prefixes; the fast decoder keeping each chain's KV cache) and at batch 4 and 16 (chains of
different prompts in one batch). Targets: >= 3x faster than the baseline per chain on CPU; cost per
chain falling close to linearly with the batch.

Model: the shipped `fork` checkpoint (`--model fork`, the default; a random model of the same shape when
it is missing), a checkpoint directory, or `--model random`: the random model of the shipped shape, whose
high-entropy proposals almost never repeat the state (the case without that saving).
Usage: python benchmarks/bench_power_mh.py [--model fork|random|DIR] [--naive-chains 8] [--batches 1,4,16]
       [--mcmc-steps 4] [--block-size 16] [--max-new-tokens 48] [--alpha 4] [--threads 1] [--repeat 3]
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
    """The shipped checkpoint (or a checkpoint directory); "random", or a missing checkpoint: a random Qwen2 of the shipped shape."""
    from entropylab.models import build_tokenizer, data_dir, load_model, tiny_model

    if name != "random" and ((data_dir() / name / "config.json").is_file() or (Path(name) / "config.json").is_file()):
        model, tok = load_model(name)
        return model, tok, f"checkpoint {name!r}"
    tok = build_tokenizer()
    model = tiny_model(tok, seed=0)
    why = "" if name == "random" else f" (no data/models/{name} yet)"
    return model, tok, f"random model of the shipped shape{why}: high entropy, proposals rarely repeat the state"


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
    ap.add_argument("--naive-chains", type=int, default=8, help="chains (prompts) timed with the baseline")
    ap.add_argument("--batches", default="1,4,16", help="batch sizes (chains in one batch) for entropylab")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared machine)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per variant; the fastest counts")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tok, what = load(args.model)
    batches = [int(b) for b in args.batches.split(",")]
    n = args.naive_chains
    problems = get_task("fork").problems("test", max(batches + [n]), seed=args.seed)
    prompts = [tok(p.prompt)["input_ids"] for p in problems]
    cfg = dict(
        alpha=args.alpha, mcmc_steps=args.mcmc_steps, block_size=args.block_size, max_new_tokens=args.max_new_tokens
    )
    print(
        f"model: {what}; alpha {args.alpha}, mcmc_steps {args.mcmc_steps}, block {args.block_size}, "
        f"max_new_tokens {args.max_new_tokens}, threads {args.threads}, best of {args.repeat}"
    )
    for kv in ("reuse", "recompute"):  # warm-up
        power_sample_mh(model, tok, prompts[:2], seed=99, kv=kv, **cfg)
    power_sample_mh(model, tok, prompts[:1], seed=99, backend="hf", kv="recompute", **cfg)

    rows = []  # label, batch, wall s/chain, cpu s/chain, token-evaluations/chain, length, acceptance, replayed, prefill

    def row(label, b, wall, cpu, te, ln, acc, rep, pre):
        rows.append(dict(label=label, b=b, wall=wall, cpu=cpu, te=te, ln=ln, acc=acc, rep=rep, pre=pre))

    # 1. the baseline, one chain at a time
    acc = [0.0, 0.0, 0, 0, 0.0]
    for i in range(n):
        r, wall, cpu = timed(
            args.repeat, naive_power_mh, model, prompts[i], eos_token_id=tok.eos_token_id, seed=args.seed + i, **cfg
        )
        acc = [
            acc[0] + wall,
            acc[1] + cpu,
            acc[2] + r["tokens_evaluated"],
            acc[3] + len(r["tokens"]),
            acc[4] + r["acceptance"],
        ]
    nan = float("nan")
    row("naive (HF forward, re-encode)", 1, acc[0] / n, acc[1] / n, acc[2] / n, acc[3] / n, acc[4] / n, nan, nan)

    def stats(s):
        """(length, acceptance, replayed share, prefill share) of one entropylab run."""
        gen = max(s.tokens_generated, 1)
        return (
            float(s.n_tokens.float().mean()),
            s.acceptance_rate or 0.0,
            s.stats.get("replayed_tokens", 0) / gen,
            s.stats["prefill_positions"] / max(s.tokens_evaluated, 1),
        )

    # 2. entropylab at batch 1, same prompts and seeds as the baseline
    variants = [
        ("hf", "recompute", "HF forward, re-encode"),
        ("auto", "recompute", "fast, re-encode"),
        ("auto", "reuse", "fast, KV kept"),
    ]
    for backend, kv, label in variants:
        acc = [0.0] * 7
        for i in range(n):
            s, wall, cpu = timed(
                args.repeat,
                power_sample_mh,
                model,
                tok,
                prompts[i : i + 1],
                seed=args.seed + i,
                backend=backend,
                kv=kv,
                **cfg,
            )
            acc = [a + v for a, v in zip(acc, (wall, cpu, s.tokens_evaluated, *stats(s)))]
        row(f"entropylab ({label})", 1, *(a / n for a in acc))
    # 3. entropylab batched: b chains (b prompts) in one batch
    for b in batches:
        if b == 1:
            continue
        for kv, label in (("recompute", "fast, re-encode"), ("reuse", "fast, KV kept")):
            s, wall, cpu = timed(args.repeat, power_sample_mh, model, tok, prompts[:b], seed=args.seed, kv=kv, **cfg)
            row(f"entropylab ({label})", b, wall / b, cpu / b, s.tokens_evaluated / b, *stats(s))

    print(
        f"\n{'implementation':38s} {'batch':>5s} {'wall s/chain':>12s} {'cpu s/chain':>11s} "
        f"{'tok-evals/chain':>15s} {'length':>6s} {'accept':>6s} {'replayed':>8s} {'prefill':>7s}"
    )
    for r in rows:
        print(
            f"{r['label']:38s} {r['b']:5d} {r['wall']:12.4f} {r['cpu']:11.4f} {r['te']:15.0f} {r['ln']:6.1f} "
            f"{r['acc']:6.2f} {r['rep']:8.2f} {r['pre']:7.2f}"
        )
    base = rows[0]
    print("\nagainst the baseline, per chain (wall / cpu time / token-evaluations):")
    for r in rows[1:]:
        print(
            f"  {r['label']:38s} batch {r['b']:2d}: {base['wall'] / r['wall']:5.1f}x / {base['cpu'] / r['cpu']:5.1f}x "
            f"faster, {base['te'] / r['te']:5.1f}x fewer"
        )
    print("scaling (cpu s per chain; throughput per chain against batch 1; cost of the whole batch against batch 1):")
    for label in ("fast, re-encode", "fast, KV kept"):
        mine = [r for r in rows if r["label"].endswith(f"({label})")]
        one = mine[0]["cpu"]
        print(
            f"  {label:16s} "
            + "  ".join(
                f"batch {r['b']}: {r['cpu']:.4f} s ({one / r['cpu']:.1f}x, batch costs {r['cpu'] * r['b'] / one:.1f}x)"
                for r in mine
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
