"""Benchmark: the law's closed-form fit with a vectorised 1,000-resample bootstrap vs a curve_fit loop.

Run: .venv/bin/python benchmarks/bench_fit.py [--points 1000] [--resamples 1000] [--repeat 5]

The baseline is what one would write without the closed form: scipy.optimize.curve_fit refitted on each of
the same kind of case-bootstrap resamples, one at a time. Both are timed in this run on the same data.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.optimize import curve_fit

from entropylab.law import fit_law


def law(h: np.ndarray, a: float, b: float) -> np.ndarray:
    return b - a * np.exp(h)


def best_of(fn, repeat: int) -> float:
    """Smallest wall time of `repeat` calls (seconds)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def curve_fit_bootstrap(H: np.ndarray, R: np.ndarray, resamples: int, seed: int = 0) -> np.ndarray:
    """The baseline: one curve_fit per resample, percentile interval of the ceiling b - a."""
    rng = np.random.default_rng(seed)
    p0, _ = curve_fit(law, H, R, p0=[1.0, 1.0])
    ceilings = np.empty(resamples)
    for i in range(resamples):
        idx = rng.integers(0, len(H), len(H))
        (a, b), _ = curve_fit(law, H[idx], R[idx], p0=p0)
        ceilings[i] = b - a
    return np.percentile(ceilings, [2.5, 97.5])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    steps = np.arange(args.points)
    H = 0.1 + 1.2 * np.exp(-steps / (args.points / 5)) + rng.normal(0, 0.01, args.points)
    R = 1.23 - 0.63 * np.exp(H) + rng.normal(0, 0.02, args.points)

    fit_law(H=H, R=R, steps=steps, bootstrap=10)  # warm up
    t_fit = best_of(lambda: fit_law(H=H, R=R, steps=steps), args.repeat)
    t_boot = best_of(lambda: fit_law(H=H, R=R, steps=steps, bootstrap=args.resamples), args.repeat)
    t0 = time.perf_counter()
    base_ci = curve_fit_bootstrap(H, R, args.resamples)
    t_base = time.perf_counter() - t0

    fit = fit_law(H=H, R=R, steps=steps, bootstrap=args.resamples)
    print(
        f"{args.points} points, {args.resamples} resamples; ceiling {fit.ceiling:.4f}, "
        f"bootstrap 95% CI [{fit.bootstrap.ceiling_ci[0]:.4f}, {fit.bootstrap.ceiling_ci[1]:.4f}] "
        f"(curve_fit loop: [{base_ci[0]:.4f}, {base_ci[1]:.4f}])"
    )
    print(f"fit alone: {t_fit * 1e3:.2f} ms")
    print(
        f"fit+bootstrap({args.resamples}): {t_boot:.4f} s; curve_fit loop: {t_base:.2f} s; "
        f"{t_base / t_boot:.0f}x faster"
    )


if __name__ == "__main__":
    main()
