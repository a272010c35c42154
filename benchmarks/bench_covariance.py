"""Benchmark: Table 1 (`covariance_table`) throughput against a straightforward pandas groupby + nlargest.

    python benchmarks/bench_covariance.py [--tokens 20000000] [--steps 20] [--scope batch|micro]

Builds a synthetic float32 dump in memory (step, logprob, advantage, micro_batch), times both versions on
the same data (best of --repeat for entropylab, one run of the baseline), checks they agree, and prints
tokens per second. Single-threaded: numpy's partition and pandas' groupby use one core.
"""

from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from entropylab.diagnostics.covariance import DEFAULT_QUANTILES, covariance_table  # noqa: E402
from entropylab.diagnostics.synthetic import random_dump  # noqa: E402


def pandas_groupby_baseline(df: pd.DataFrame, quantiles=DEFAULT_QUANTILES, scope: str = "batch") -> pd.DataFrame:
    """The obvious pandas version: centre with groupby-transform, then nlargest(k).mean() per step."""
    keys = ["step"] if scope == "batch" else ["step", "micro_batch"]
    g = df.groupby(keys)
    cov = (df["advantage"] - g["advantage"].transform("mean")) * (df["logprob"] - g["logprob"].transform("mean"))
    cov = cov.astype(np.float64)
    rows = []
    for step, c in cov.groupby(df["step"]):
        n = len(c)
        row = {"step": step, "n_tokens": n}
        for q in quantiles:
            k = max(1, math.ceil(round(q * n, 9)))
            row[f"top {q * 100:.6g}%"] = c.nlargest(k).mean()
        row["all"] = c.mean()
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=20_000_000, help="tokens in the synthetic dump")
    ap.add_argument("--steps", type=int, default=20, help="steps the tokens are spread over")
    ap.add_argument("--scope", choices=["batch", "micro"], default="batch")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of covariance_table (best is reported)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the (slow) pandas baseline")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    df = random_dump(args.tokens, args.steps, micro_batches=8 if args.scope == "micro" else 0)
    print(
        f"synthetic dump: {args.tokens:,} tokens over {args.steps} steps, float32 "
        f"({df.memory_usage().sum() / 2**20:.0f} MiB, built in {time.perf_counter() - t0:.1f} s), scope {args.scope}"
    )

    times = []
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        fast = covariance_table(df, scope=args.scope)
        times.append(time.perf_counter() - t0)
    best = min(times)
    rate = args.tokens / best
    line = f"covariance_table: {rate / 1e6:.1f} M tokens/s ({best:.3f} s best of {len(times)})"
    if args.no_baseline:
        print(line)
        return
    t0 = time.perf_counter()
    slow = pandas_groupby_baseline(df, scope=args.scope)
    base = time.perf_counter() - t0
    diff = float(np.max(np.abs(fast.iloc[:, 2:].to_numpy() - slow.iloc[:, 2:].to_numpy())))
    print(
        f"{line}, {best and base / best:.1f}x the pandas groupby + nlargest baseline "
        f"({args.tokens / base / 1e6:.1f} M tokens/s, {base:.2f} s); max |difference| {diff:.1e}"
    )


if __name__ == "__main__":
    main()
