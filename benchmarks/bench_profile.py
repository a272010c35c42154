"""Peak memory and speed of the chunked `entropy_profile` against the naive full-softmax baseline.

A random 1-layer Qwen2 with a large vocabulary scores one sequence; each variant runs in a fresh subprocess
so its peak is clean. CPU memory: the peak resident set size during the call (getrusage when the call set a
new lifetime peak, else a 1 ms psutil sampler) minus the RSS before it; CUDA: `torch.cuda.max_memory_allocated`
minus the allocation before the call.

    python benchmarks/bench_profile.py                      # vocab 150,000 x 4,096 positions
    python benchmarks/bench_profile.py --vocab 32000 --positions 1024
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import threading
import time

GB = 1024**3
MB = 1024**2


def naive_profile(model, ids, top_k: int = 5) -> dict:
    """The named baseline: full logits of the sequence, one log_softmax over [positions, vocab]."""
    import torch

    with torch.inference_mode():
        logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
        logp = torch.log_softmax(logits, dim=-1)
        p = logp.exp()
        entropy = -(p * logp).sum(-1)
        varentropy = (p * (logp + entropy[:, None]).square()).sum(-1)
        target = logp.gather(1, ids[0, 1:, None])[:, 0]
        rank = (logp > target[:, None]).sum(-1) + 1
        top = torch.topk(logp, top_k, dim=-1)
    return dict(
        entropy=entropy.cpu(), varentropy=varentropy.cpu(), logprob=target.cpu(), rank=rank.cpu(), top=top.values.cpu()
    )


def chunked_profile(model, ids, top_k: int = 5, chunk_size: int | None = None):
    from entropylab.tokens.profile import entropy_profile

    return entropy_profile(model, None, ids, top_k=top_k, chunk_size=chunk_size)


def rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def child(args) -> dict:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    torch.set_num_threads(args.threads) if args.threads else None
    cfg = Qwen2Config(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=2 * args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=args.positions + 1,
        tie_word_embeddings=False,
    )
    model = Qwen2ForCausalLM(cfg).eval().to(args.device)
    ids = torch.randint(0, args.vocab, (1, args.positions), device=args.device)
    with torch.inference_mode():  # warm up kernels on a short prefix
        (chunked_profile if args.variant == "chunked" else naive_profile)(model, ids[:, :16])
    gc.collect()
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before, before_max = rss(), maxrss()
    peak = [before]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.001)

    sampler = None if cuda else threading.Thread(target=sample, daemon=True)
    if sampler:
        sampler.start()
    start = time.perf_counter()
    if args.variant == "chunked":
        df = chunked_profile(model, ids, chunk_size=args.chunk_size)
        checksum = float(df["entropy"].sum())
    else:
        out = naive_profile(model, ids)
        checksum = float(out["entropy"].sum())
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if cuda:
        extra = torch.cuda.max_memory_allocated() - before
    else:
        stop.set()
        sampler.join()
        after_max = maxrss()
        extra = (after_max if after_max > before_max else peak[0]) - before
    return dict(
        variant=args.variant,
        seconds=seconds,
        positions_per_s=(args.positions - 1) / seconds,
        peak_extra_bytes=int(extra),
        checksum=checksum,
    )


def run_variant(variant: str, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--variant",
        variant,
        "--vocab",
        str(args.vocab),
        "--positions",
        str(args.positions),
        "--hidden",
        str(args.hidden),
        "--layers",
        str(args.layers),
        "--device",
        args.device,
        "--threads",
        str(args.threads),
    ]
    if args.chunk_size:
        cmd += ["--chunk-size", str(args.chunk_size)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def fmt_bytes(n: float) -> str:
    return f"{n / GB:.2f} GB" if abs(n) >= GB else f"{n / MB:.0f} MB"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=150_000)
    ap.add_argument("--positions", type=int, default=4096)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--chunk-size", type=int, default=None, help="positions per LM-head chunk (default: automatic)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--variant", choices=["chunked", "naive"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.variant:
        print(json.dumps(child(args)))
        return
    if args.device == "cpu":
        import psutil

        need = 5 * args.vocab * args.positions * 4  # the naive variant holds ~5 [positions, vocab] float32 tensors
        avail = psutil.virtual_memory().available
        if need > 0.7 * avail:
            scaled = max(256, int(args.positions * 0.7 * avail / need))
            print(
                f"note: the naive baseline needs ~{fmt_bytes(need)} and {fmt_bytes(avail)} is free; "
                f"positions {args.positions} -> {scaled}"
            )
            args.positions = scaled
    from entropylab.tokens.profile import auto_chunk_size

    chunk = args.chunk_size or auto_chunk_size(args.vocab)
    print(
        f"entropy_profile benchmark: vocab {args.vocab:,}, {args.positions:,} positions, hidden {args.hidden}, "
        f"{args.layers} layer(s), {args.device}, chunk {chunk} positions"
    )
    results = {v: run_variant(v, args) for v in ("naive", "chunked")}
    for r in results.values():
        print(
            f"  {r['variant']:8s} {r['seconds']:7.2f} s  {r['positions_per_s']:10,.0f} positions/s  "
            f"peak extra {fmt_bytes(r['peak_extra_bytes'])}"
        )
    n, c = results["naive"], results["chunked"]
    if abs(n["checksum"] - c["checksum"]) > 1e-3 * max(1.0, abs(n["checksum"])):
        raise SystemExit(f"entropy mismatch: naive sum {n['checksum']:.6f} vs chunked {c['checksum']:.6f}")
    saved = n["peak_extra_bytes"] - c["peak_extra_bytes"]
    print(
        f"chunked: {fmt_bytes(saved)} less peak memory (peak extra {fmt_bytes(c['peak_extra_bytes'])} vs "
        f"{fmt_bytes(n['peak_extra_bytes'])}), {c['positions_per_s'] / n['positions_per_s']:.2f}x the speed of naive"
    )


if __name__ == "__main__":
    main()
