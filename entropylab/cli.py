"""`entropylab <subcommand>`: a thin face over the library. Errors a user can fix print on one line."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from entropylab.errors import EntropylabError
from entropylab.report import format_table

EPILOG = """examples:
  entropylab ingest data/real-logs/gemma-2-2b-it-ppo-bsz512_4-prompt1024-resp-512-0.640.log
  entropylab fit data/real-logs/*.log --shared --plot figures/law
  entropylab watch runs/verl/train.log --forecasts forecasts.jsonl
  entropylab demo
"""


# --------------------------------------------------------------------------- ingest


def _load_kw(args: argparse.Namespace) -> dict:
    """The reading options every log subcommand shares."""
    return {
        "format": args.format,
        "entropy_key": args.entropy_key,
        "score_key": args.score_key,
        "step_key": args.step_key,
        "run_key": args.run_key,
    }


def cmd_ingest(args: argparse.Namespace) -> int:
    from entropylab import logs

    print(logs.inspect(args.logs, **_load_kw(args)))
    return 0


# --------------------------------------------------------------------------- fit


def cmd_fit(args: argparse.Namespace) -> int:
    from entropylab import law, logs

    df = _load_summarised(args)
    points = logs.points(df)
    score_of = points.attrs.get("score", {})
    meta = df.attrs.get("entropylab", {})
    val_size = {run: args.val_size or meta.get(run, {}).get("val_size") for run in meta}
    fit_first = None if args.first_steps else args.fit_first
    results = {}
    for run, group in points.groupby("run", sort=False):
        try:
            results[str(run)] = law.fit_law(
                group,
                form=args.form,
                loss=args.loss,
                bootstrap=args.bootstrap,
                seed=args.seed,
                val_size=val_size.get(str(run)),
            )
        except EntropylabError as err:
            raise type(err)(f"run {run!r}: {err}") from None
    forecasts = {}
    rows = []
    for run, fit in results.items():
        run_points = points[points["run"] == run]
        fc = None
        try:
            fc = law.forecast(
                run_points,
                fit_first=fit_first,
                first_steps=args.first_steps,
                reverse=args.reverse,
                form=args.form,
                val_size=val_size.get(run),
            )
        except EntropylabError as err:
            print(f"{run}: no forecast: {err}", file=sys.stderr)
        forecasts[run] = fc
        rows.append(summary_row(run, fit, fc, score_of.get(run, "")))
        if args.report:
            print(fit.report())
            if fc is not None:
                print(fc.report())
            print()
    cols = [
        "run",
        "score",
        "n",
        "a",
        "b",
        "ceiling b-a [95% CI]",
        "R2",
        "RMSE",
        "forecast RMSE",
        "final err",
        "verdict",
    ]
    print(format_table(rows, cols))
    shared = None
    if args.shared:
        if len(results) < 2:
            print("\n--shared needs at least two runs; fitted one.", file=sys.stderr)
        else:
            shared = law.fit_shared(points, form=args.form)
            print()
            print(shared.report())
    if args.plot:
        from entropylab.plots import law as law_plots

        written = law_plots.write_law_figures(results, forecasts, args.plot)
        print(f"\nfigures: {len(written)} files in {args.plot}/ (" + ", ".join(sorted({p.stem for p in written})) + ")")
    if args.history:
        from entropylab.plots import law as law_plots

        histories = {
            run: law.forecast_history(points[points["run"] == run], val_size=val_size.get(run)) for run in results
        }
        written = law_plots.write_history_figures(histories, args.history)
        print(f"\nforecast history: {len(written)} files in {args.history}/")
        for run, history in histories.items():
            print(f"  {run}: {history_sentence(history)}")
    if args.json:
        payload = {
            "runs": {
                run: {"fit": fit.to_dict(), "forecast": fc.to_dict() if fc else None}
                for (run, fit), fc in zip(results.items(), forecasts.values())
            },
            "shared": shared.to_dict() if shared is not None else None,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(payload, indent=2, default=float))
        print(f"json: {args.json}")
    return 0


def _load_summarised(args: argparse.Namespace):
    """load() with its warnings printed on stderr, one line each (they are already one line per kind)."""
    import warnings

    from entropylab import logs

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", logs.LogWarning)
        df = logs.load(args.logs, progress=len(args.logs) > 3, **_load_kw(args))
    for w in caught:
        if issubclass(w.category, logs.LogWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return df


def history_sentence(history, tol: float = 0.02) -> str:
    """When the replayed predictions settled: the ceiling and the final score within `tol` of the end."""
    from entropylab import law

    r = law.reliable_from(history, tol)
    if r["ceiling_step"] is None:
        return f"the ceiling never settled within {tol:g} of its full-run value"
    final = (
        "the final score never within " + f"{tol:g}"
        if r["final_step"] is None
        else f"the final score within {tol:g} from step {r['final_step']:g} ({r['final_share']:.0%} of the run)"
    )
    return (
        f"ceiling within {tol:g} of its full-run value from step {r['ceiling_step']:g} "
        f"({r['ceiling_share']:.0%} of the run); {final}"
    )


def summary_row(run: str, fit, fc, score: str) -> dict:
    """One line of the `fit` table: estimates, ceiling interval, forecast errors and the verdict."""
    from entropylab import law

    lo, hi = fit.ceiling_ci
    return {
        "run": run,
        "score": score,
        "n": fit.n,
        "a": f"{fit.a:.3f}±{fit.a_stderr:.3f}",
        "b": f"{fit.b:.3f}±{fit.b_stderr:.3f}",
        "ceiling b-a [95% CI]": f"{fit.ceiling:.3f} [{lo:.3f}, {hi:.3f}]",
        "R2": f"{fit.r2:.3f}",
        "RMSE": f"{fit.rmse:.4f}",
        "forecast RMSE": f"{fc.rmse:.4f}" if fc is not None else "-",
        "final err": f"{fc.final_error:+.4f}" if fc is not None else "-",
        "verdict": law.verdict_line(fit),
    }


# --------------------------------------------------------------------------- watch


def cmd_watch(args: argparse.Namespace) -> int:
    from entropylab.watch import watch

    return watch(
        args.logs,
        interval=args.interval,
        once=args.once,
        forecasts=args.forecasts,
        val_size=args.val_size,
        **_load_kw(args),
    )


# --------------------------------------------------------------------------- pretrain / sample


def cmd_pretrain(args: argparse.Namespace) -> int:
    from entropylab.models import pretrain

    result = pretrain(
        args.task,
        args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        lr=args.lr,
        seed=args.seed,
        error_rate=args.error_rate,
        clean_steps=args.clean_steps,
        easy_share=args.easy_share,
        init=args.init,
        difficulty=args.difficulty,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        progress=not args.quiet,
        threads=args.threads,
        precision=args.precision,
    )
    m = result["metrics"]
    print(
        f"model: {args.out}  ({result['n_params']:,} parameters, {result['train_seconds']:.0f} s, "
        f"{result['params']['precision']} on {result['machine']['cpu_capability']})\n"
        f"held-out test, temperature 1: pass@1 {m['pass@1']:.3f}, pass@16 {m.get('pass@16', float('nan')):.3f}; "
        f"token entropy p50/p80/p95 {m['entropy_p50']:.3f}/{m['entropy_p80']:.3f}/{m['entropy_p95']:.3f}"
    )
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from entropylab.compare import run_sample_cli

    run_sample_cli(
        args.model,
        args.task,
        method=args.method,
        alpha=args.alpha,
        n_problems=args.problems,
        n=args.n,
        split=args.split,
        max_new_tokens=args.max_new_tokens,
        mcmc_steps=args.mcmc_steps,
        block_size=args.block_size,
        cuts=args.cuts,
        cut_temperature=args.cut_temperature,
        n_particles=args.particles,
        n_candidates=args.candidates,
        n_rollouts=args.rollouts,
        rollout_len=args.rollout_len,
        entropy_threshold=args.entropy_threshold,
        top_k=args.top_k,
        top_p=args.top_p,
        budget=args.budget,
        seed=args.seed,
        device=args.device,
        out=args.out,
        progress=not args.quiet,
    )
    return 0


# --------------------------------------------------------------------------- train / diagnose


def cmd_train(args: argparse.Namespace) -> int:
    from entropylab.rl.config import resolve_config
    from entropylab.rl.trainer import train

    cfg = resolve_config(args.preset, args.config, args.set)
    run_dir = train(cfg, args.out, resume=args.resume, progress=not args.quiet)
    print(
        f"run: {run_dir}  (metrics.jsonl, rollouts/, checkpoints/; next: entropylab fit {run_dir}, "
        f"entropylab diagnose {run_dir})"
    )
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from entropylab.diagnostics import diagnose
    from entropylab.plots.diagnostics import write_diagnostics_figures

    out = args.out or str(Path(args.run_dir) / "diagnostics")
    diagnosis = diagnose(args.run_dir, out, scope=args.scope)
    figures = write_diagnostics_figures(diagnosis.table, diagnosis.theory, diagnosis.correlations, out)
    print(diagnosis.report(figures))
    print(f"\nfigures and tables: {out}/")
    return 0


# --------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from entropylab import demo

    demo.run_demo(out=Path(args.out), fresh=args.fresh, quick=args.quick, workers=args.workers)
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from entropylab.figures import make_figures

    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    make_figures(args.out, scale=args.scale, runs_dir=args.runs_dir, progress=not args.quiet, only=only)
    return 0


# --------------------------------------------------------------------------- parser


class _RegistryNames:
    """argparse `choices` read from a registry when first asked, so that building the parser imports no torch."""

    def __init__(self, load: Callable[[], Iterable[str]]) -> None:
        self._load = load
        self._names: list[str] | None = None

    def _get(self) -> list[str]:
        if self._names is None:
            self._names = list(self._load())
        return self._names

    def __contains__(self, name: object) -> bool:
        return name in self._get()

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())


def _sampler_names() -> list[str]:
    from entropylab.sampling.registry import SAMPLERS

    return SAMPLERS.names()


def add_log_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every subcommand that reads training logs."""
    from entropylab.logs.formats import format_names

    p.add_argument(
        "logs",
        nargs="+",
        metavar="LOG",
        help="log files or run directories (verl console/JSONL, TRL, OpenRLHF, TensorBoard, wandb CSV, CSV/JSONL/Parquet, entropylab runs)",
    )
    p.add_argument(
        "--format",
        default="auto",
        choices=("auto", *format_names()),
        metavar="FORMAT",
        help="force a format instead of detecting it: %(choices)s",
    )
    p.add_argument("--entropy-key", metavar="K", help="metric key to use as entropy (default: the alias table)")
    p.add_argument(
        "--score-key",
        metavar="K",
        help="metric key to fit as R (default: the first validation metric, else the training reward)",
    )
    p.add_argument(
        "--step-key",
        metavar="K",
        help="step field of a CSV/JSONL log (default: step, global_step, grpo_step, iteration, _step, ...)",
    )
    p.add_argument(
        "--run-key",
        metavar="K",
        help="column telling several runs of one table apart (default: run, run_id, experiment, name, ...)",
    )


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" to an option's help, unless the help already names its default, there is none, or
    the option is an on/off flag."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is None or (action.nargs == 0 and action.default is False):
            return text
        return super()._get_help_string(action)


def add_val_size(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--val-size",
        type=int,
        metavar="N",
        help="validation problems behind each score: the verdict judges residuals against their binomial "
        "noise (default: read from the log where it says, e.g. verl's 'dataset len'; else the "
        "noise is estimated from the score's scatter). Not the @N of mean@N: that is samples per problem",
    )


def build_parser() -> argparse.ArgumentParser:
    """The `entropylab` argument parser with one sub-parser per subcommand."""
    parser = argparse.ArgumentParser(
        prog="entropylab",
        description="Entropy in RL of reasoning language models: fit the reward-entropy law R = -a*exp(H) + b "
        "to training logs and predict the ceiling b - a.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from entropylab import __version__

    parser.add_argument("--version", action="version", version=f"entropylab {__version__}")
    # every subcommand's help shows its defaults (DefaultsHelp), unless the text already states them
    sub = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        parser_class=functools.partial(argparse.ArgumentParser, formatter_class=DefaultsHelp),
    )

    p = sub.add_parser(
        "ingest",
        help="read logs and show which entropy / reward / validation keys were found and chosen",
        description="Read training logs and print, per run, the format, the number of steps and "
        "validation points, and which keys were found and chosen.",
    )
    add_log_options(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser(
        "fit",
        help="fit R = -a*exp(H) + b per run, predict the ceiling, forecast from early steps",
        description="Fit the reward-entropy law per run, print estimates with 95%% intervals, the "
        "ceiling b - a, the forecast from the first steps and a verdict.",
    )
    add_log_options(p)
    p.add_argument(
        "--fit-first",
        type=float,
        default=0.15,
        metavar="FRAC",
        help="forecast: fit on this first fraction of the run's steps, predict the rest",
    )
    p.add_argument("--first-steps", type=int, metavar="N", help="forecast: fit on the first N steps instead")
    p.add_argument("--reverse", action="store_true", help="forecast backwards: late points predict early ones")
    p.add_argument(
        "--form",
        default="exp",
        choices=["exp", "linear", "exp_c"],
        help="law form: -a*exp(H)+b, -a*H+b or -a*exp(c*H)+b",
    )
    p.add_argument(
        "--loss",
        default="linear",
        choices=["linear", "soft_l1", "huber"],
        help="least squares, or a robust loss against outlier points",
    )
    p.add_argument(
        "--bootstrap", type=int, default=0, metavar="N", help="also give bootstrap intervals from N resamples"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument(
        "--shared", action="store_true", help="also fit one (a, b) across all runs and test whether sharing fits"
    )
    p.add_argument("--report", action="store_true", help="print the full fit report of every run")
    p.add_argument("--plot", metavar="DIR", help="write the law, forecast and residual figures (PNG and SVG) to DIR")
    p.add_argument("--json", metavar="FILE", help="write every fit and forecast as JSON")
    p.add_argument(
        "--history",
        metavar="DIR",
        help="replay each run: the ceiling and final score predicted at every validation point (figures)",
    )
    add_val_size(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser(
        "watch",
        help="follow logs while they grow: refit at each validation point, live ceiling",
        description="Follow training logs (verl console/JSONL, JSONL, CSV, TRL trainer_state.json, "
        "TensorBoard) while they are written. At each new validation point the law is "
        "refitted; the view shows the ceiling with its interval, the headroom, the "
        "forecast's last error, the verdict and alarms. Ctrl-C stops.",
    )
    add_log_options(p)
    add_val_size(p)
    p.add_argument("--interval", type=float, default=5.0, metavar="S", help="seconds between polls")
    p.add_argument("--forecasts", metavar="FILE", help="append every forecast as one JSON line to FILE")
    p.add_argument("--once", action="store_true", help="read the logs once, print one snapshot and exit")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser(
        "pretrain",
        help="pre-train the tiny base model on a synthetic task's corpus",
        description="Train a tiny Qwen2-style model by next-token prediction on a task corpus; "
        "writes a transformers checkpoint with a model card.",
    )
    p.add_argument("--task", required=True, help="task family: arith, fork, ladder, ladder_practice or ladder_even")
    p.add_argument("--out", required=True, metavar="DIR", help="checkpoint directory to write")
    p.add_argument("--steps", type=int, help="optimizer steps (default: the task's shipped recipe)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=256, help="tokens per training row")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the recipe's)")
    p.add_argument("--init", help="start from this checkpoint or shipped name, or 'scratch' (default: the recipe's)")
    p.add_argument("--hidden-size", type=int, default=192)
    p.add_argument("--num-layers", type=int, default=4)
    p.add_argument("--error-rate", type=float, help="share of flawed solutions in the corpus (default: the recipe's)")
    p.add_argument(
        "--clean-steps", type=int, help="first steps trained on correct solutions only (default: the recipe's)"
    )
    p.add_argument(
        "--easy-share",
        type=float,
        help="share of warm-up problems among those first steps' documents (default: the recipe's)",
    )
    p.add_argument("--difficulty", type=int, help="task difficulty (default: the task's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "float32", "bfloat16"],
        help="training precision; auto: the faster on this CPU, by a timing probe",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser(
        "sample",
        help="power sampling (MH, SMC) and baselines on a task; writes samples and a summary",
        description="Sample answers to a task's problems with one method and score them.",
    )
    p.add_argument("--model", default="fork", help="shipped model name or checkpoint directory")
    p.add_argument("--task", default="fork", help="task family")
    p.add_argument(
        "--method",
        default="mh",
        choices=_RegistryNames(_sampler_names),
        metavar="METHOD",
        help="sampling method: %(choices)s",
    )
    p.add_argument("--alpha", type=float, default=4.0, help="power of the target p^alpha (temp: temperature 1/alpha)")
    p.add_argument("--problems", type=int, default=20, help="number of problems")
    p.add_argument("--n", type=int, default=1, help="samples per problem")
    p.add_argument("--split", default="test")
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--mcmc-steps", type=int, default=10)
    p.add_argument("--block-size", type=int, default=192)
    p.add_argument(
        "--cuts",
        default="uniform",
        choices=["uniform", "entropy"],
        help="MH: where a move cuts (entropy: more often where the model forks)",
    )
    p.add_argument(
        "--cut-temperature",
        type=float,
        metavar="T",
        help="MH: temperature of the proposal of a move's first token (default: 1/alpha, as the rest)",
    )
    p.add_argument("--particles", type=int, default=16, help="SMC particles")
    p.add_argument("--candidates", type=int, help="best_of_n: samples to pick from (16); sps: top-K candidates (4)")
    p.add_argument("--rollouts", type=int, help="sps: rollouts per candidate (2)")
    p.add_argument("--rollout-len", type=int, help="sps: tokens per rollout (32)")
    p.add_argument(
        "--entropy-threshold",
        type=float,
        metavar="NATS",
        help="sps: estimate only where the next-token entropy exceeds this (0.3; 0: every token)",
    )
    p.add_argument(
        "--budget",
        type=float,
        metavar="TOKENS",
        help="tokens per answer: sets the method's knob (MH steps, SMC particles, best-of-n candidates)",
    )
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu, cuda or auto")
    p.add_argument("--out", metavar="DIR", help="write samples.jsonl and summary.json here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sample)

    from entropylab.rl.presets import PRESET_NAMES

    p = sub.add_parser(
        "train",
        help="GRPO with the entropy interventions on a transformers causal LM",
        description="Train with GRPO and write a run directory: config.yaml, metrics.jsonl "
        "(flushed every step), rollouts/*.parquet, checkpoints/.",
    )
    p.add_argument("--preset", default="grpo", choices=PRESET_NAMES, help="named intervention preset")
    p.add_argument("--config", metavar="FILE", help="YAML file of config values (applied after the preset)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one value, e.g. --set steps=50 --set loss.rho=0.2 (repeatable)",
    )
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to write")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "diagnose",
        help="covariance tables (the paper's Table 1) and the entropy-change theory check",
        description="Per-token covariance diagnostics of a run's rollout dumps.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `entropylab train`")
    p.add_argument("--out", metavar="DIR", help="where to write figures and CSVs (default: RUN_DIR/diagnostics)")
    p.add_argument(
        "--scope",
        default="batch",
        choices=["batch", "micro", "state"],
        help="covariance centring: per step, per micro-batch, or log-prob per state (logp + H)",
    )
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser(
        "demo",
        help="the main job on the embedded default: runs, fits and figures in one report",
        description="Run the demo and write a self-contained HTML report.",
    )
    p.add_argument("--out", default="runs/demo", help="output folder")
    p.add_argument("--fresh", action="store_true", help="recompute every piece instead of reusing finished ones")
    p.add_argument("--quick", action="store_true", help="smallest settings (used by the tests)")
    p.add_argument("--workers", type=int, help="processes for the training runs (default: one per core, at most 2)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "figures",
        help="regenerate every paper figure (figures/), producing the runs it needs",
        description="Write the figures of the three papers and of the real logs, PNG and SVG.",
    )
    p.add_argument("--out", default="figures", help="output folder")
    p.add_argument("--scale", default="full", choices=["quick", "demo", "full"], help="size of the runs behind them")
    p.add_argument("--runs-dir", default="runs/figures", help="where the runs are kept and reused")
    p.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        help="draw only these figures, computing only what they need (default: every figure)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_figures)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, dispatch, and print user errors as one line on stderr (exit 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        with sigterm_as_interrupt():
            return func(args)
    except EntropylabError as err:
        print(f"entropylab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except _Terminated:
        print(f"entropylab {args.command}: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"entropylab {args.command}: interrupted", file=sys.stderr)
        return 130


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, so that it stops as on Ctrl-C: workers stopped, files closed."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, `kill` (SIGTERM) raises `_Terminated` in the main thread instead of ending the process
    at once, which would leave the worker pool's semaphores to the resource tracker; the old handler after it."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise _Terminated

    old = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


if __name__ == "__main__":
    sys.exit(main())
