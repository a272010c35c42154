"""Benchmark: entropylab's `sample()` against `model.generate(do_sample=True)` on the shipped arith model.

1. Speed: tokens/s at batch 64 (64 test prompts), a fixed number of new tokens, EOS disabled in both
   (every row generates exactly `--new-tokens` tokens, so the count is honest). Best of `--repeat` runs,
   the two samplers interleaved. Target: sample() >= 1.5x generate() on CPU.
2. Distribution: thousands of 3-token continuations of one fixed prefix (the prompt + solution prefix
   of 32 test problems where the model's next-token entropy is highest) from each sampler; total-variation distance between the two empirical
   distributions (next to the TV between two sample() runs with other seeds: the noise floor), and of each
   against the exact model probabilities of the first token, plus a chi-square test of the first token
   counts against the model.

Usage: python benchmarks/bench_sampler.py [--threads 2] [--repeat 3] [--samples 4000] [--model arith]
"""

from __future__ import annotations

import argparse
import collections
import copy
import time

import numpy as np
import torch

from entropylab.generation import logprobs_of, sample
from entropylab.models import load_model, shipped_models
from entropylab.tasks import get_task


def gen_config(model, tokenizer):
    """Pure ancestral sampling at temperature 1 with EOS disabled (no top-k 50 default, no early stop).

    `generate` falls back to the model's own generation config for a None EOS, so that one is cleared too.
    """
    model.generation_config.eos_token_id = None
    cfg = copy.deepcopy(model.generation_config)
    cfg.do_sample, cfg.temperature, cfg.top_k, cfg.top_p = True, 1.0, 0, 1.0
    cfg.eos_token_id = None
    cfg.pad_token_id = tokenizer.pad_token_id
    return cfg


def uncertain_prefix(model, tokenizer, problems) -> str:
    """The prompt + solution prefix, over `problems`, where the model's next-token entropy is highest."""
    best = (-1.0, "")
    for p in problems:
        ids = tokenizer(p.prompt + p.solution, return_tensors="pt")["input_ids"]
        n_sol = ids.shape[1] - len(tokenizer(p.prompt)["input_ids"])
        with torch.inference_mode():
            _, ent = logprobs_of(model, ids, torch.ones_like(ids), torch.ones(1, n_sol, dtype=torch.bool))
        j = int(ent[0].argmax())
        if float(ent[0, j]) > best[0]:
            best = (float(ent[0, j]), p.prompt + p.solution[:j])
    return best[1]


def bench_speed(model, tokenizer, prompts: list[str], new_tokens: int, repeat: int) -> dict:
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    cfg = gen_config(model, tokenizer)
    cfg.max_new_tokens = new_tokens
    times: dict[str, list[float]] = {"sample": [], "generate": []}
    counts: dict[str, int] = {}
    for r in range(repeat + 1):  # the first round warms up
        t0 = time.perf_counter()
        s = sample(model, tokenizer, prompts, max_new_tokens=new_tokens, stop_at_eos=False, seed=r)
        dt_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**enc, generation_config=cfg)
        dt_g = time.perf_counter() - t0
        counts = {
            "sample": int(s.n_tokens.sum()),
            "generate": (out.shape[1] - enc["input_ids"].shape[1]) * len(prompts),
        }
        if r:
            times["sample"].append(dt_s)
            times["generate"].append(dt_g)
    tps = {k: counts[k] / min(v) for k, v in times.items()}
    return {
        "tokens": counts,
        "best_s": {k: min(v) for k, v in times.items()},
        "tok_per_s": tps,
        "ratio": tps["sample"] / tps["generate"],
    }


def bench_distribution(model, tokenizer, prefix: str, n: int, k: int = 3, chunk: int = 500) -> dict:
    ids = tokenizer([prefix] * chunk, return_tensors="pt")
    cfg = gen_config(model, tokenizer)
    cfg.max_new_tokens = k
    ours: collections.Counter = collections.Counter()
    ours2: collections.Counter = collections.Counter()  # a second sample() run: the noise floor of the TV
    theirs: collections.Counter = collections.Counter()
    first_ours: collections.Counter = collections.Counter()
    first_theirs: collections.Counter = collections.Counter()
    torch.manual_seed(0)
    for c in range(n // chunk):
        s = sample(model, tokenizer, [prefix], n=chunk, max_new_tokens=k, stop_at_eos=False, seed=1000 + c)
        with torch.inference_mode():
            out = model.generate(**ids, generation_config=cfg)[:, ids["input_ids"].shape[1] :]
        for row in s.response_ids.tolist():
            ours[tuple(row)] += 1
            first_ours[row[0]] += 1
        s2 = sample(model, tokenizer, [prefix], n=chunk, max_new_tokens=k, stop_at_eos=False, seed=5000 + c)
        for row in s2.response_ids.tolist():
            ours2[tuple(row)] += 1
        for row in out.tolist():
            theirs[tuple(row)] += 1
            first_theirs[row[0]] += 1
    total = (n // chunk) * chunk
    keys = set(ours) | set(theirs)
    tv = 0.5 * sum(abs(ours[x] - theirs[x]) for x in keys) / total
    tv_floor = 0.5 * sum(abs(ours[x] - ours2[x]) for x in set(ours) | set(ours2)) / total
    with torch.inference_mode():
        p = torch.softmax(model(**tokenizer([prefix], return_tensors="pt")).logits[0, -1].double(), -1).numpy()
    emp_o = np.array([first_ours[i] for i in range(len(p))]) / total
    emp_g = np.array([first_theirs[i] for i in range(len(p))]) / total
    out = {
        "samples": total,
        "distinct_3grams": len(keys),
        "tv_3gram_sample_vs_generate": tv,
        "tv_3gram_sample_vs_sample_other_seeds": tv_floor,
        "tv_first_sample_vs_model": 0.5 * np.abs(emp_o - p).sum(),
        "tv_first_generate_vs_model": 0.5 * np.abs(emp_g - p).sum(),
    }
    try:
        from scipy.stats import chisquare

        keep = p * total >= 5  # chi-square cells with enough expected counts; the rest pooled
        for name, emp in (("sample", emp_o), ("generate", emp_g)):
            obs = np.append(emp[keep], emp[~keep].sum()) * total
            exp = np.append(p[keep], p[~keep].sum()) * total
            obs, exp = obs[exp > 0], exp[exp > 0]
            out[f"chi2_p_{name}"] = float(chisquare(obs, exp * obs.sum() / exp.sum()).pvalue)
    except ImportError:  # pragma: no cover
        pass
    top = sorted(((float(p[i]), tokenizer.convert_ids_to_tokens(i)) for i in range(len(p))), reverse=True)[:5]
    out["model_top_first_tokens"] = [(t, round(q, 3)) for q, t in top]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="arith")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--samples", type=int, default=4000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.model not in shipped_models():
        raise SystemExit(
            f"model {args.model!r} not shipped; run `entropylab pretrain --task arith --out data/models/arith`"
        )
    model, tok = load_model(args.model)
    task = get_task("arith")
    problems = task.problems("test", args.batch, seed=0)
    print(
        f"model {args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, threads {args.threads}, "
        f"batch {args.batch}, {args.new_tokens} new tokens, EOS disabled in both"
    )
    speed = bench_speed(model, tok, [p.prompt for p in problems], args.new_tokens, args.repeat)
    for k in ("sample", "generate"):
        print(
            f"  {k:9s} {speed['tokens'][k]:6d} tokens in {speed['best_s'][k]:.3f}s = {speed['tok_per_s'][k]:8.0f} tok/s"
        )
    print(f"  speed-up sample/generate: {speed['ratio']:.2f}x (target >= 1.5x)")
    prefix = uncertain_prefix(model, tok, problems[:32])
    dist = bench_distribution(model, tok, prefix, args.samples)
    print(f"distribution check on prefix {prefix!r}:")
    for k, v in dist.items():
        print(f"  {k}: {v:.4f}" if isinstance(v, float) else f"  {k}: {v}")


if __name__ == "__main__":
    main()
