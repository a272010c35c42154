"""Benchmark: does the embedded world show the papers' phenomena (collapse, law, interventions, theory)?

Run: .venv/bin/python benchmarks/bench_world.py [--seeds 0 1 2] [--presets grpo clip_cov kl_cov top20 bottom80]
                                               [--scale full] [--root runs/figures] [--workers 2] [--set key=value ...]

Trains every preset on every seed on the shipped default (`experiments.DEFAULT_TASK`, its shipped model) at
`experiments.SCALES[scale]`, in `--workers` processes of one torch thread. These are the runs of `make figures`
(the same jobs, `experiments.figure_run_job`, in the same cache), so runs either has made are reused. It then
prints, with the spread over seeds:

1. collapse: plain GRPO's mean token entropy, first 10% of steps against the last 10%, and its validation
   accuracy at temperature 1 from step 0 to the end (with the binomial standard error of one validation);
2. the law on each GRPO run (`entropylab fit RUN_DIR`): verdict, and the forecast from its first 15% of steps
   against the final validation accuracy;
3. interventions against GRPO on the same seeds: final entropy (last 10% of steps) as a multiple of GRPO's,
   best and final validation accuracy, and the paired difference of best accuracy with its 95% t-interval;
4. the theory check per GRPO run: Spearman between the predicted -eta*Cov(log pi, A) and the measured entropy
   change of each dumped step's own tokens (`entropylab diagnose`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from entropylab import experiments as ex
from entropylab import rundir


def run_summary(run: Path) -> dict:
    """Entropy, accuracy, route shares and the theory check of one run directory."""
    from entropylab.diagnostics.theory import entropy_change_check

    m = pd.DataFrame(rundir.read_metrics(run))
    tr = m[m.step > 0].dropna(subset=["entropy"]).sort_values("step")
    k = max(1, round(0.1 * len(tr)))
    val = m.dropna(subset=["val/acc"]).sort_values("step")
    out = {
        "H_first": tr.entropy.iloc[:k].mean(),
        "H_last": tr.entropy.iloc[-k:].mean(),
        "acc_0": val["val/acc"].iloc[0],
        "acc_best": val["val/acc"].max(),
        "acc_final": val["val/acc"].iloc[-1],
        "reward_last": tr.reward.iloc[-k:].mean(),
    }
    out["H_fall"] = 1 - out["H_last"] / out["H_first"]
    out["gain"] = out["acc_final"] - out["acc_0"]
    for key in [c for c in val.columns if c.startswith("route/val_share_")]:
        out[key.replace("route/val_share_", "end_share_")] = val[key].iloc[-1]
    if (run / rundir.ROLLOUTS).is_dir():
        chk = entropy_change_check(rundir.read_dumps(run), m)
        out["theory_spearman"] = float(chk.correlations.loc["npg", "spearman"])
        out["theory_sign"] = float(chk.correlations.loc["npg", "sign_agreement"])
    return out


def law_check(run: Path, val_size: int | None) -> dict:
    """The verdict of the law on the run and the forecast of its final accuracy from its first 15% of steps."""
    from entropylab import law, logs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        points = logs.points(logs.load(run))
        fit = law.fit_law(points, val_size=val_size)
        fc = law.forecast(points, fit_first=0.15, val_size=val_size)
    final = fc.to_dict()
    return {
        "law_ok": bool(fit.ok),
        "law_reasons": "; ".join(fit.reasons),
        "a": fit.a,
        "b": fit.b,
        "ceiling": fit.ceiling,
        "r2": fit.r2,
        "forecast_final_error": final.get("final_error"),
        "forecast_rmse": final.get("rmse"),
    }


def t_interval(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% t-interval of paired differences."""
    from scipy import stats

    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return float(x.mean()), math.nan, math.nan
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--presets", nargs="+", default=["grpo", "clip_cov", "kl_cov", "top20", "bottom80"])
    p.add_argument("--scale", default="full")
    p.add_argument("--task", default=None, help="task (default: experiments.DEFAULT_TASK)")
    p.add_argument("--model", default=None, help="base model (default: the task's shipped model)")
    p.add_argument("--root", default="runs/figures", help="the cache (default: make figures' own)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", default=None, help="write every number to this file")
    args = p.parse_args(argv)
    task = args.task or ex.DEFAULT_TASK
    jobs = [
        ex.figure_run_job(args.root, preset, scale=args.scale, task=task, model=args.model, seed=seed, progress=False)
        for seed in args.seeds
        for preset in args.presets
    ]
    if args.set:  # a variant: its own runs, with the overrides on top of the figures' ones
        jobs = [ex.Job(f, a, {**k, "overrides": (*k["overrides"], *args.set)}) for f, a, k in jobs]
    dirs = ex.run_jobs(jobs, ex.default_workers(args.workers))
    cfg = ex.run_config(args.presets[0], args.scale, task, args.model, args.seeds[0], tuple(args.set))
    rows = []
    for (_, (_root, preset), kw), run in zip(jobs, dirs):
        rows.append({"preset": preset, "seed": kw["seed"], **run_summary(Path(run))})
    df = pd.DataFrame(rows)
    se = math.sqrt(0.25 / cfg.val_problems)
    pd.set_option("display.width", 200)
    print(
        f"task {task}, model {cfg.model}, {cfg.steps} steps of {cfg.prompts_per_step} prompts x {cfg.group_size}, "
        f"lr {cfg.lr:g}, validation on {cfg.val_problems} problems (standard error at most {se:.3f})\n"
    )
    cols = [
        "preset",
        "seed",
        "H_first",
        "H_last",
        "H_fall",
        "acc_0",
        "acc_best",
        "acc_final",
        "gain",
        *[c for c in df.columns if c.startswith("end_share_")],
        "theory_spearman",
    ]
    print(df[[c for c in cols if c in df.columns]].round(4).to_string(index=False))
    agg = df.groupby("preset", sort=False).agg(["mean", "std"])
    print("\nmean (std) over seeds")
    show = ["H_first", "H_last", "H_fall", "acc_0", "acc_best", "acc_final", "gain", "theory_spearman"]
    print(
        pd.DataFrame(
            {
                c: [f"{agg.loc[pr, (c, 'mean')]:.4f} ({agg.loc[pr, (c, 'std')]:.4f})" for pr in agg.index]
                for c in show
                if c in df.columns
            },
            index=agg.index,
        ).to_string()
    )
    result: dict = {"runs": rows}
    if "grpo" in set(df.preset):
        g = df[df.preset == "grpo"].set_index("seed")
        print(
            "\n1. collapse (grpo): entropy fall "
            + ", ".join(f"{v:.1%}" for v in g.H_fall)
            + "; accuracy gain "
            + ", ".join(f"{v:+.3f}" for v in g.gain)
        )
        laws = {}
        for (_, (_root, preset), kw), run in zip(jobs, dirs):
            if preset == "grpo":
                laws[kw["seed"]] = law_check(Path(run), None)  # as `entropylab fit RUN_DIR` reads the run
        print(
            "2. the law (grpo): "
            + "; ".join(
                f"seed {s}: {'ok' if r['law_ok'] else 'NOT TRUSTWORTHY (' + r['law_reasons'] + ')'}, ceiling "
                f"{r['ceiling']:.3f}, R2 {r['r2']:.2f}, forecast of the final accuracy off by {r['forecast_final_error']:+.3f}"
                for s, r in laws.items()
            )
        )
        result["law"] = laws
        print("3. against grpo on the same seeds (paired):")
        for preset in [x for x in dict.fromkeys(df.preset) if x != "grpo"]:
            o = df[df.preset == preset].set_index("seed")
            seeds = sorted(set(o.index) & set(g.index))
            ratio = (o.loc[seeds, "H_last"] / g.loc[seeds, "H_last"]).to_numpy()
            d_best = (o.loc[seeds, "acc_best"] - g.loc[seeds, "acc_best"]).to_numpy()
            d_final = (o.loc[seeds, "acc_final"] - g.loc[seeds, "acc_final"]).to_numpy()
            mb, lo, hi = t_interval(d_best)
            mf, flo, fhi = t_interval(d_final)
            print(
                f"   {preset:9s} final entropy {ratio.mean():.2f}x grpo's (per seed "
                + ", ".join(f"{r:.2f}" for r in ratio)
                + f"); best val acc {mb:+.3f} [95% CI {lo:+.3f}, {hi:+.3f}]; "
                f"final val acc {mf:+.3f} [{flo:+.3f}, {fhi:+.3f}]"
            )
        print("4. theory check (grpo): Spearman " + ", ".join(f"{v:.2f}" for v in g.get("theory_spearman", [])))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
