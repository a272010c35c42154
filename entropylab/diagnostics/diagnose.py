"""`diagnose(RUN_DIR)`: Table 1 and the entropy-change theory check for one run, as data, text and CSV tables.

``entropylab diagnose RUN_DIR [--out DIR] [--scope batch|micro|state]`` prints this and draws its figures with
`entropylab.plots.diagnostics`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from entropylab.diagnostics.covariance import DEFAULT_QUANTILES, covariance_table, dump_covariance_agreement
from entropylab.diagnostics.theory import FORMS, entropy_change_check
from entropylab.rundir import ROLLOUTS, DumpError, dump_columns, metrics_frame, read_dumps

#: per covariance scope: what it centres over, in words, and its log-probability factor
CENTRING = {
    "batch": ("step", "logp - mean logp"),
    "micro": ("micro-batch", "logp - mean logp"),
    "state": ("state (logp + H)", "logp + H"),
}

_MEASURED = {
    "update": "entropy of the step's own tokens after its update minus before (entropylab runs log both)",
    "metrics": "entropy(step+1) - entropy(step) from metrics.jsonl (new prompts each step: noisy)",
    "dump": "change of the dump's mean token entropy between consecutive dumped steps (metrics have no entropy)",
    "none": "unavailable (no entropy in metrics.jsonl or the dumps)",
}
_ETA = {
    "metrics": "the learning rate logged in metrics.jsonl",
    "constant": "the given constant",
    "unit": "1 (no learning rate logged: predictions are in units of eta)",
}


@dataclass
class Diagnosis:
    """The covariance diagnostics of one run.

    `table`: Table 1 per dumped step (see `covariance_table`). `theory`: predicted vs measured entropy change
    per step (see `entropy_change_check`). `correlations`: agreement per form (npg, pg). `files`: the CSV
    tables written (empty without `out_dir`). `covariance_check`: max |trainer's covariance - recomputed| per scope.
    """

    run_dir: Path
    scope: str
    table: pd.DataFrame
    theory: pd.DataFrame
    correlations: pd.DataFrame
    measured_source: str
    eta_source: str
    covariance_check: dict[str, float] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def table1(self) -> pd.DataFrame:
        """Table 1 at the first, middle and last dumped steps (`table1_frame`)."""
        return table1_frame(self.table)

    def report(self, figures: Sequence[Path] = ()) -> str:
        """The text `entropylab diagnose RUN_DIR` prints; `figures` (PNG paths) are listed at the end."""
        t = self.table
        steps = t["step"].tolist()
        picks = _picks(steps)
        lines = [
            f"entropylab diagnose {self.run_dir}",
            f"{len(steps)} dumped step(s) ({steps[0]}..{steps[-1]}), {int(t['n_tokens'].sum()):,} tokens; "
            f"covariance centred per {CENTRING[self.scope][0]} (scope {self.scope})",
            "",
            f"Table 1: mean covariance (A - mean A)({CENTRING[self.scope][1]}) of the top tokens ranked by covariance",
            "(top q takes k = max(1, ceil(q*n)) tokens)",
        ]
        sub = t.set_index("step").loc[picks]
        value_cols = [c for c in t.columns if c.startswith("top ")] + ["all"]
        header = ["", *[f"step {s}" for s in picks]]
        rows = [[c, *[_num(sub.loc[s, c]) for s in picks]] for c in value_cols]
        rows.append(["n_tokens", *[f"{int(sub.loc[s, 'n_tokens']):,}" for s in picks]])
        lines += _table(header, rows)
        if self.covariance_check:
            best = min(self.covariance_check, key=self.covariance_check.get)
            diffs = ", ".join(f"{k} {v:.2g}" for k, v in self.covariance_check.items())
            lines += [
                "",
                f"Trainer's covariance column vs recomputed, max |difference|: {diffs} (closest: {best} centring)",
            ]
        lines += [
            "",
            "Entropy change per step, predicted by the one-step softmax theory vs measured",
            f"  measured: {_MEASURED[self.measured_source]}",
            f"  eta: {_ETA[self.eta_source]}",
        ]
        header = ["form", "n", "Pearson", "Spearman", "sign agree", "scale"]
        rows = [
            [
                FORMS[f],
                str(int(r["n"])),
                _num(r["pearson"], 3),
                _num(r["spearman"], 3),
                _num(r["sign_agreement"], 2),
                _num(r["scale"], 3),
            ]
            for f, r in self.correlations.iterrows()
        ]
        lines += _table(header, rows)
        if int(self.correlations["n"].max()) < 3:
            lines.append(
                "  (fewer than 3 steps with both a prediction and a measurement: no correlation; "
                "dump consecutive steps or log entropy every step)"
            )
        pngs = [p for p in figures if Path(p).suffix == ".png"]
        if pngs:
            lines += ["", "Figures:", *[f"  {p}" for p in pngs]]
        return "\n".join(lines)


def _picks(steps: list[int]) -> list[int]:
    """The first, middle and last of some steps (fewer when they coincide)."""
    return sorted({steps[0], steps[len(steps) // 2], steps[-1]}) if steps else []


def table1_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Table 1 at the first, middle and last dumped steps: one row per token group, one column per step."""
    picks = _picks(table["step"].tolist())
    cols = [c for c in table.columns if c.startswith("top ")] + ["all", "n_tokens"]
    sub = table.set_index("step").loc[picks, cols].T
    sub.columns = [f"step {s}" for s in picks]
    return sub.rename_axis("tokens").reset_index()


def _num(x, digits: int = 4) -> str:
    x = float(x)
    if not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:.3e}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(vals):
        return "  " + "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(vals, widths)))

    return [line(header), "  " + "  ".join("-" * w for w in widths), *[line(r) for r in rows]]


def diagnose(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    scope: str = "batch",
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    lr: float | None = None,
    steps: Sequence[int] | None = None,
) -> Diagnosis:
    """Read a run's dumps and metrics, compute Table 1 and the theory check; with `out_dir`, write them as CSVs.

    `lr` overrides the logged learning rate as eta; `steps` restricts the dumps read. Raises `DumpError`
    when the run has no usable dumps.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DumpError(f"run directory {run_dir} does not exist")
    present = dump_columns(run_dir)
    optional = [c for c in ("entropy", "covariance", "micro_batch") if c in present]
    dump = read_dumps(run_dir, steps=steps, columns=["logprob", "advantage", *optional])
    if dump.empty:
        raise DumpError(f"rollout dumps in {run_dir / ROLLOUTS} hold no tokens")
    metrics = metrics_frame(run_dir)
    table = covariance_table(dump, quantiles, scope)
    check = entropy_change_check(dump, metrics if len(metrics) else None, lr=lr, scope=scope)
    diag = Diagnosis(
        run_dir=run_dir,
        scope=scope,
        table=table,
        theory=check.frame,
        correlations=check.correlations,
        measured_source=check.measured_source,
        eta_source=check.eta_source,
        covariance_check=dump_covariance_agreement(dump),
    )
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, frame in (("covariance_table", table), ("entropy_change", check.frame)):
            frame.to_csv(out / f"{name}.csv", index=False)
            diag.files.append(out / f"{name}.csv")
    return diag
