"""Benchmark: on `ladder_practice`, do Clip-Cov and KL-Cov keep entropy up at GRPO's accuracy?

Run: .venv/bin/python benchmarks/bench_practice.py [--seeds 0 1] [--presets grpo clip_cov kl_cov]
                                                  [--root runs/practice] [--workers 2] [--set key=value ...]

`ladder_practice` is ladder with an unpractised sure route: its corpus writes add's carries right a quarter of
the time, so the base model's add (right on about 40% of problems) starts below half (about 66%). The script
pre-trains that model by its recipe (`entropylab pretrain --task ladder_practice`, 400 steps from the shipped
ladder model, float32) into ROOT/model unless it is there, then trains every preset on every seed from it (80
steps of 16 prompts x 8, lr 1e-4, validation on 300 problems every 5 steps), two runs at a time, and prints per
run and per preset: mean token entropy over the first and the last 10% of steps, the final entropy as a multiple
of GRPO's on the same seed, best and final validation accuracy, the paired difference of best accuracy from GRPO
with its 95% t-interval, and the final validation route shares. Finished runs are reused.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from bench_world import run_summary, t_interval  # the same summary and interval as the ladder study

from entropylab import experiments as ex

TASK = "ladder_practice"
#: On top of `experiments.SCALES["full"]` (16 prompts x 8, lr 1e-4, validation every 5 steps): shorter, and
#: 300 validation problems (standard error at most 0.029), no dumps, a checkpoint at the end only.
OVERRIDES = ("steps=80", "val_problems=300", "dump_every=0", "checkpoint_every=0")


def pretrained(root: Path) -> Path:
    """The ladder_practice base model in ROOT/model, pre-trained by its recipe when missing."""
    from entropylab.models.pretraining import pretrain

    out = root / "model"
    if not (out / "config.json").exists():
        pretrain(TASK, out, threads=1, precision="float32", progress=False)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--presets", nargs="+", default=["grpo", "clip_cov", "kl_cov"])
    ap.add_argument("--root", default="runs/practice")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    if "grpo" not in args.presets:
        args.presets.insert(0, "grpo")
    root = Path(args.root)
    model = str(pretrained(root).resolve())
    keys = [(p, s) for p in args.presets for s in args.seeds]
    overrides = (*OVERRIDES, *args.extra)
    jobs = [
        (ex.ensure_run, (root, p), dict(scale="full", task=TASK, model=model, seed=s, overrides=overrides))
        for p, s in keys
    ]
    runs = dict(zip(keys, ex.run_jobs(jobs, args.workers, progress=True)))
    rows = {key: run_summary(path) for key, path in runs.items()}
    print(f"\n{TASK}: {len(args.seeds)} seed(s), the full scale with {' '.join(overrides)}")
    print("preset    seed  entropy first -> last   x GRPO   best acc  final acc  final shares fast/half/add")
    for (p, s), r in rows.items():
        ratio = r["H_last"] / rows[("grpo", s)]["H_last"]
        shares = "/".join(f"{r.get(f'end_share_{x}', math.nan):.2f}" for x in ("fast", "half", "add"))
        print(
            f"{p:9s} {s:4d}  {r['H_first']:.4f} -> {r['H_last']:.4f}   {ratio:5.2f}   {r['acc_best']:.3f}"
            f"     {r['acc_final']:.3f}      {shares}"
        )
    for p in args.presets:
        if p == "grpo":
            continue
        ratios = np.array([rows[(p, s)]["H_last"] / rows[("grpo", s)]["H_last"] for s in args.seeds])
        diff = np.array([rows[(p, s)]["acc_best"] - rows[("grpo", s)]["acc_best"] for s in args.seeds])
        mean, lo, hi = t_interval(diff)
        print(
            f"{p}: final entropy {ratios.mean():.2f}x GRPO's ({', '.join(f'{x:.2f}' for x in ratios)}); "
            f"best accuracy {mean:+.3f} [95% {lo:+.3f}, {hi:+.3f}] from GRPO's"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
