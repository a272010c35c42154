"""Compare samplers on a task: accuracy, pass@k, sample likelihoods, confidence and cost, per method.

`compare_methods` draws k_max responses per problem with each method of `entropylab.sampling` (and,
optionally, plain samples of other checkpoints such as a GRPO-trained model), scores them with the task's
verifier and with the *base* model's log-likelihood, and returns a `Comparison` of tidy DataFrames.
`sweep` varies one sampler option (alpha, mcmc_steps, ...). `run_sample_cli` is the body of
`entropylab sample`. Plots: `entropylab.plots.sampling`.

Definitions. Accuracy: mean verifier reward over all samples (single-shot accuracy, = pass@1).
pass@k: the unbiased estimator of `evaluate.pass_at_k` from the k_max samples of each problem.
loglik: sum_t log p(x_t | x_<t) under the base model at temperature 1; mean_logp: loglik / length;
confidence: mean p(x_t | x_<t) of the sampled tokens. Cost: token positions the model evaluated
(prefill and decode, rejected proposals and discarded particles included), and its multiple of plain
sampling's.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from entropylab.errors import ConfigError
from entropylab.evaluate import mcnemar, paired_bootstrap, pass_at_k
from entropylab.report import format_table
from entropylab.sampling import PowerSamples, get_sampler
from entropylab.sampling.base import check_int

__all__ = [
    "Comparison",
    "compare_methods",
    "budget_options",
    "frontier",
    "BUDGET_KNOBS",
    "sweep",
    "run_sample_cli",
    "sample_table",
    "method_summary",
    "exactness_demo",
    "DEFAULT_OPTIONS",
]

#: Options each method receives unless overridden (`options={"mh": {...}}`).
DEFAULT_OPTIONS: dict[str, dict] = {
    "mh": {"mcmc_steps": 10, "block_size": 192},
    "mh_entropy": {"mcmc_steps": 10, "block_size": 192},
    "sps": {"n_candidates": 4, "n_rollouts": 2, "rollout_len": 32, "entropy_threshold": 0.3},
    "smc": {"n_particles": 16, "ess_threshold": 0.5},
    "best_of_n": {"n_candidates": 16},
}
#: The options a method accepts from the CLI's flags.
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {
    "mh": ("mcmc_steps", "block_size", "exact", "cuts", "cut_temperature"),
    "mh_entropy": ("mcmc_steps", "block_size", "cut_temperature"),
    "sps": ("n_candidates", "n_rollouts", "rollout_len", "entropy_threshold"),
    "smc": ("n_particles", "ess_threshold", "alpha_ramp"),
    "best_of_n": ("n_candidates",),
    "plain": (),
    "temp": (),
}
TABLE_COLUMNS = [
    "method",
    "accuracy",
    "pass@1",
    "pass@k_max",
    "mean_logp",
    "loglik",
    "confidence",
    "length",
    "tokens_per_sample",
    "cost_x",
    "wall_s",
    "acceptance",
]


@dataclass
class Comparison:
    """The result of `compare_methods`: one row per method, pass@k curves and one row per sample."""

    table: pd.DataFrame  # per method: accuracy, pass@k, likelihood, confidence, cost
    pass_at_k: pd.DataFrame  # method, k, pass@k
    samples: pd.DataFrame  # per sample: method, problem, sample, reward, loglik, mean_logp, confidence, ...
    meta: dict = field(default_factory=dict)

    def report(self, digits: int = 3) -> str:
        """A fixed-width text table of `table`."""
        rows = [{c: _fmt(v, digits) for c, v in r.items()} for r in self.table.to_dict("records")]
        cols = [c for c in TABLE_COLUMNS if c in self.table.columns]
        head = (
            f"task {self.meta.get('task')}  problems {self.meta.get('n_problems')}  samples/problem "
            f"{self.meta.get('k_max')}  alpha {self.meta.get('alpha')}"
        )
        return head + "\n" + format_table(rows, cols)

    def paired(self, reference: str, k: int = 1, reps: int = 2000) -> pd.DataFrame:
        """Every other method against `reference` on the same problems: McNemar's exact test of single-shot
        correctness (sample 0 of each problem) and a paired bootstrap of pass@k over problems."""

        def per_problem(method: str) -> pd.DataFrame:
            rows = self.samples[self.samples["method"] == method]
            if rows.empty:
                raise ConfigError(
                    f"reference: no samples of method {method!r}; methods: "
                    f"{', '.join(dict.fromkeys(self.samples['method']))}"
                )
            by = rows.groupby("problem_index")
            return pd.DataFrame(
                {"first": by["reward"].first(), "n": by.size(), "c": by["reward"].apply(lambda r: int((r > 0.5).sum()))}
            )

        ref = per_problem(reference)
        out = []
        for method in dict.fromkeys(self.samples["method"]):
            if method == reference:
                continue
            other = per_problem(method).reindex(ref.index)
            test = mcnemar(other["first"], ref["first"])
            boot = paired_bootstrap(pass_at_k(other["n"], other["c"], k), pass_at_k(ref["n"], ref["c"], k), reps=reps)
            out.append(
                {
                    "method": method,
                    "reference": reference,
                    "accuracy_difference": test["difference"],
                    "method_only": test["a_only"],
                    "reference_only": test["b_only"],
                    "mcnemar_p": test["p_value"],
                    f"pass@{k}_difference": boot["difference"],
                    f"pass@{k}_low": boot["low"],
                    f"pass@{k}_high": boot["high"],
                    f"pass@{k}_p": boot["p_value"],
                }
            )
        return pd.DataFrame(out)

    def save(self, out: str | Path) -> list[Path]:
        """Write table.csv, pass_at_k.csv, samples.csv and meta.json under `out`."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "table.csv", out / "pass_at_k.csv", out / "samples.csv", out / "meta.json"]
        self.table.to_csv(paths[0], index=False)
        self.pass_at_k.to_csv(paths[1], index=False)
        self.samples.to_csv(paths[2], index=False)
        paths[3].write_text(json.dumps(self.meta, indent=2, default=str))
        return paths

    @classmethod
    def load(cls, out: str | Path) -> Comparison:
        """Read back what `save` wrote."""
        out = Path(out)
        return cls(
            pd.read_csv(out / "table.csv"),
            pd.read_csv(out / "pass_at_k.csv"),
            pd.read_csv(out / "samples.csv"),
            json.loads((out / "meta.json").read_text()),
        )


def _fmt(v, digits: int) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.{digits}g}" if abs(v) >= 1000 else f"{v:.{digits}f}"
    return str(v)


# ------------------------------------------------------------------------------------------------ scoring


def default_max_new_tokens(model, tokenizer, problems) -> int:
    """1.5 x the longest reference solution + 8 tokens, within the context (as `evaluate.evaluate_task`)."""
    longest = max(len(tokenizer(p.solution, add_special_tokens=False)["input_ids"]) for p in problems)
    longest_prompt = max(len(tokenizer(p.prompt)["input_ids"]) for p in problems)
    ctx = getattr(model.config, "max_position_embeddings", None) or 10**9
    return max(1, min(int(1.5 * longest) + 8, ctx - longest_prompt))


@torch.inference_mode()
def rescore(base_model, samples: PowerSamples) -> torch.Tensor:
    """[B, T] per-token log p of `samples` under `base_model` (temperature 1), for samples of another model."""
    from entropylab.generation import logprobs_of

    ids, mask, resp = samples.to_batch()
    dev = next(base_model.parameters()).device
    logp, _ = logprobs_of(base_model, ids.to(dev), mask.to(dev), resp.to(dev))
    return logp


def sample_table(
    samples: PowerSamples, problems: Sequence, rewards: Sequence[float], method: str, logp: torch.Tensor | None = None
) -> pd.DataFrame:
    """One row per response: problem, sample index, reward, length, loglik, mean_logp, confidence, finished."""
    logp = samples.logprobs_t1 if logp is None else logp
    mask = samples.response_mask.to(logp.device)
    lp = torch.where(mask, logp.float(), torch.zeros_like(logp.float()))
    length = samples.n_tokens.to(logp.device).clamp(min=1).float()
    loglik = lp.sum(1)
    conf = torch.where(mask, lp.exp(), torch.zeros_like(lp)).sum(1) / length
    idx = samples.prompt_index.tolist()
    return pd.DataFrame(
        {
            "method": method,
            "problem": [problems[i].id for i in idx],
            "problem_index": idx,
            "sample": [j % samples.n for j in range(len(idx))],
            "reward": np.asarray(rewards, dtype=float),
            "length": samples.n_tokens.cpu().numpy(),
            "loglik": loglik.cpu().numpy(),
            "mean_logp": (loglik / length).cpu().numpy(),
            "confidence": conf.cpu().numpy(),
            "finished": samples.finished.cpu().numpy(),
            "text": samples.texts,
        }
    )


def pass_curve(rows: pd.DataFrame, k_max: int) -> dict[int, float]:
    """{k: mean unbiased pass@k} for k = 1..k_max from one method's per-sample rows."""
    by = rows.groupby("problem_index")["reward"]
    n = by.size().to_numpy()
    c = by.apply(lambda r: int((r > 0.5).sum())).to_numpy()
    return {k: float(np.mean(pass_at_k(n, c, k))) for k in range(1, min(k_max, int(n.min())) + 1)}


def method_summary(rows: pd.DataFrame, samples: PowerSamples, k_max: int) -> dict:
    """The per-method row of `Comparison.table` (without cost_x, which needs plain sampling's cost)."""
    curve = pass_curve(rows, k_max)
    return {
        "method": rows["method"].iloc[0],
        "accuracy": float((rows["reward"] > 0.5).mean()),
        "pass@1": curve.get(1, float("nan")),
        "pass@k_max": curve.get(max(curve), float("nan")) if curve else float("nan"),
        "mean_logp": float(rows["mean_logp"].mean()),
        "loglik": float(rows["loglik"].mean()),
        "confidence": float(rows["confidence"].mean()),
        "length": float(rows["length"].mean()),
        "tokens_evaluated": int(samples.tokens_evaluated),
        "tokens_per_sample": samples.tokens_evaluated / max(len(rows), 1),
        "wall_s": float(samples.wall_time),
        "acceptance": float("nan") if samples.acceptance_rate is None else float(samples.acceptance_rate),
        "_curve": curve,
    }


# ------------------------------------------------------------------------------------------------ harness


def _load_checkpoint(ref):
    if isinstance(ref, tuple):
        return ref
    from entropylab.models import load_model

    return load_model(ref)


#: The knob each method turns to spend a token budget (`budget_options`).
BUDGET_KNOBS: dict[str, str] = {
    "best_of_n": "n_candidates",
    "smc": "n_particles",
    "mh": "mcmc_steps",
    "mh_entropy": "mcmc_steps",
    "sps": "n_rollouts",
}
#: Knobs whose cost is measured by pilot runs at two values (and, for MH steps, again at the first estimate).
PILOT_KNOBS: dict[str, tuple[int, int]] = {"mcmc_steps": (0, 8), "n_rollouts": (1, 2)}


def budget_options(
    method: str,
    budget: float,
    plain_tokens: float,
    options: Mapping | None = None,
    unit_cost: float | None = None,
    base_cost: float = 1.0,
) -> dict:
    """The options that make `method` spend about `budget` tokens per answer (positions the model evaluates),
    given plain sampling's `plain_tokens` per answer: n_candidates / n_particles = budget // plain_tokens;
    for a pilot-measured knob (MH steps, SPS rollouts) value = (budget / plain_tokens - `base_cost`) /
    `unit_cost`, the method's cost at value 0 and per unit, in plain answers. A budget below what the method
    needs is refused, naming the knob."""
    opts = dict(options or {})
    ratio = budget / plain_tokens
    if method in ("plain", "temp"):
        if ratio < 0.5:
            raise ConfigError(f"budget = {budget:g} tokens per answer: {method} needs about {plain_tokens:.0f}")
        return opts
    knob = BUDGET_KNOBS.get(method)
    if knob is None:
        raise ConfigError(f"budget: method {method!r} has no budget knob (known: {', '.join(BUDGET_KNOBS)})")
    if knob in PILOT_KNOBS:
        if unit_cost is None or unit_cost <= 0:
            raise ConfigError(f"budget: {method} needs the measured cost of one unit of {knob} (unit_cost > 0)")
        value = int((ratio - base_cost) // unit_cost)
        least = 1
    else:
        value, least = int(ratio), 2 if method == "smc" else 1
    if value < least:
        raise ConfigError(
            f"budget = {budget:g} tokens per answer is below what {method} needs: {knob} would be "
            f"{value} (at least {least}; plain sampling spends {plain_tokens:.0f} per answer)"
        )
    return {**opts, knob: value}


def compare_methods(
    model,
    tokenizer,
    task,
    methods: Sequence[str] = ("plain", "temp", "best_of_n", "mh", "smc"),
    n_problems: int = 20,
    k_max: int = 16,
    alpha: float = 4.0,
    seed: int = 0,
    extra_checkpoints: Mapping[str, str | Path | tuple] | None = None,
    *,
    split: str = "test",
    difficulty: int | None = None,
    max_new_tokens: int | None = None,
    options: Mapping[str, Mapping] | None = None,
    top_k: int = 0,
    top_p: float = 1.0,
    progress: bool = False,
    budget: float | None = None,
) -> Comparison:
    """Draw k_max responses per problem with each method (and plain samples of each extra checkpoint) and compare.

    `task`: a task name or object; `options`: per-method keyword arguments over `DEFAULT_OPTIONS`;
    `extra_checkpoints`: {label: checkpoint path or shipped name or (model, tokenizer)}, sampled at
    temperature 1 and re-scored with the base model. Same seed: same problems and samples.
    `budget`: tokens per answer for every method; each method's knob (`BUDGET_KNOBS`) is set to spend about
    that much (`budget_options`; MH's step cost from a 4-step pilot on up to 8 problems), and the table's
    `tokens_per_sample` says what each spent.
    """
    from entropylab.tasks import get_task

    task = get_task(task) if isinstance(task, str) else task
    k_max = check_int("k_max", k_max, 1)
    n_problems = check_int("n_problems", n_problems, 1)
    for name in methods:
        get_sampler(name)  # ConfigError listing the known names
    problems = task.problems(split, n_problems, seed=seed, difficulty=difficulty)
    prompts = [p.prompt for p in problems]
    if max_new_tokens is None:
        max_new_tokens = default_max_new_tokens(model, tokenizer, problems)
    options = dict(options or {})
    frames, summaries = [], []
    if budget is not None:
        options = _budgeted(
            model,
            tokenizer,
            prompts,
            methods,
            options,
            float(budget),
            alpha=alpha,
            max_new_tokens=max_new_tokens,
            seed=seed,
            top_k=top_k,
            top_p=top_p,
        )

    def score(label: str, s: PowerSamples, logp=None) -> None:
        rewards = task.reward(s.texts, [problems[i] for i in s.prompt_index.tolist()])
        rows = sample_table(s, problems, rewards, label, logp)
        frames.append(rows)
        summaries.append(method_summary(rows, s, k_max))

    for name in methods:
        opts = {**DEFAULT_OPTIONS.get(name, {}), **options.get(name, {})}
        s = get_sampler(name)(
            model,
            tokenizer,
            prompts,
            n=k_max,
            alpha=alpha,
            max_new_tokens=max_new_tokens,
            seed=seed,
            top_k=top_k,
            top_p=top_p,
            progress=progress,
            **opts,
        )
        score(name, s)
    for label, ref in (extra_checkpoints or {}).items():
        other, other_tok = _load_checkpoint(ref)
        s = get_sampler("plain")(
            other, other_tok, prompts, n=k_max, max_new_tokens=max_new_tokens, seed=seed, top_k=top_k, top_p=top_p
        )
        same_vocab = other.config.vocab_size == model.config.vocab_size
        score(label, s, rescore(model, s) if same_vocab else torch.full_like(s.logprobs_t1, float("nan")))

    table = pd.DataFrame([{k: v for k, v in r.items() if k != "_curve"} for r in summaries])
    plain_cost = table.loc[table["method"] == "plain", "tokens_per_sample"]
    base = float(plain_cost.iloc[0]) if len(plain_cost) else float("nan")
    table["cost_x"] = table["tokens_per_sample"] / base
    curves = pd.DataFrame(
        [{"method": r["method"], "k": k, "pass@k": v} for r in summaries for k, v in r["_curve"].items()]
    )
    meta = dict(
        task=task.name,
        split=split,
        n_problems=len(problems),
        k_max=k_max,
        alpha=alpha,
        seed=seed,
        max_new_tokens=max_new_tokens,
        methods=list(methods),
        extra=list(extra_checkpoints or {}),
        options={m: {**DEFAULT_OPTIONS.get(m, {}), **options.get(m, {})} for m in methods},
        budget=budget,
    )
    return Comparison(table, curves, pd.concat(frames, ignore_index=True), meta)


def _pilot_cost(
    sampler, model, tokenizer, prompts, opts: dict, sampling: dict, plain_tokens: float, knob: str, value: int
) -> float:
    """A sampler's tokens per answer with `knob` = `value` on the pilot prompts, in plain answers."""
    s = sampler(model, tokenizer, prompts, n=1, **sampling, **{**opts, knob: value})
    return s.tokens_evaluated / len(prompts) / plain_tokens


def _budgeted(model, tokenizer, prompts, methods, options: dict, budget: float, **sampling) -> dict:
    """Every method's options for a token budget per answer: plain sampling's cost measured on the prompts;
    MH's cost per step from pilots of 0 and 8 steps on up to 8 of them, then at the first estimate (kept
    caches and replayed draws make early steps far cheaper than later ones), SPS's per rollout from 1 and 2."""
    plain_kw = {k: v for k, v in sampling.items() if k != "alpha"}
    plain = get_sampler("plain")(model, tokenizer, prompts, n=1, **plain_kw)
    plain_tokens = plain.tokens_evaluated / len(prompts)
    out = dict(options)
    for m in methods:
        opts = {**DEFAULT_OPTIONS.get(m, {}), **options.get(m, {})}
        unit, base = None, 1.0
        knob = BUDGET_KNOBS.get(m)
        if knob in PILOT_KNOBS:
            cost = functools.partial(
                _pilot_cost, get_sampler(m), model, tokenizer, prompts[:8], opts, sampling, plain_tokens, knob
            )
            lo, hi = PILOT_KNOBS[knob]
            c_lo, c_hi = cost(lo), cost(hi)
            unit = max((c_hi - c_lo) / (hi - lo), 1e-3)
            base = c_lo - unit * lo
            guess = int((budget / plain_tokens - base) // unit)
            if knob == "mcmc_steps" and guess > hi:  # a step costs more once chains have left their start
                unit = max((cost(guess) - base) / guess, 1e-3)
        out[m] = budget_options(m, budget, plain_tokens, opts, unit_cost=unit, base_cost=base)
    return out


def frontier(
    model, tokenizer, task, budgets: Sequence[float], methods: Sequence[str] = ("best_of_n", "smc", "mh"), **kw
) -> pd.DataFrame:
    """Accuracy against tokens spent: `compare_methods` at each token budget per answer (plain and low
    temperature once, at their own cost); one row per method and budget, with the budget and the knob set.
    A budget below what a method needs leaves that point out."""
    fixed = compare_methods(model, tokenizer, task, ["plain", "temp"], **kw).table.assign(budget=float("nan"))
    rows = [fixed]
    for b in budgets:
        for m in methods:
            try:
                comp = compare_methods(model, tokenizer, task, [m], budget=b, **kw)
            except ConfigError:  # too small a budget for this method
                continue
            knob = f"{BUDGET_KNOBS[m]}={comp.meta['options'][m][BUDGET_KNOBS[m]]}"
            rows.append(comp.table.assign(budget=b, knob=knob))
    plain = float(fixed.loc[fixed["method"] == "plain", "tokens_per_sample"].iloc[0])
    out = pd.concat(rows, ignore_index=True)
    out["cost_x"] = out["tokens_per_sample"] / plain
    return out


def sweep(
    model,
    tokenizer,
    task,
    param: str = "alpha",
    values: Sequence = (1.0, 2.0, 4.0, 8.0),
    method: str = "mh",
    *,
    n_problems: int = 20,
    n: int = 4,
    alpha: float = 4.0,
    seed: int = 0,
    split: str = "test",
    max_new_tokens: int | None = None,
    options: Mapping | None = None,
) -> pd.DataFrame:
    """Accuracy, pass@n, mean log p per token and cost of one method as one option varies (alpha, mcmc_steps, ...)."""
    rows = []
    for v in values:
        opts = {**DEFAULT_OPTIONS.get(method, {}), **(options or {})}
        a = alpha
        if param == "alpha":
            a = float(v)
        else:
            opts[param] = v
        comp = compare_methods(
            model,
            tokenizer,
            task,
            [method],
            n_problems=n_problems,
            k_max=n,
            alpha=a,
            seed=seed,
            split=split,
            max_new_tokens=max_new_tokens,
            options={method: opts},
        )
        r = comp.table.iloc[0].to_dict()
        rows.append(
            {
                "param": param,
                "value": v,
                **{
                    k: r[k]
                    for k in (
                        "method",
                        "accuracy",
                        "pass@k_max",
                        "mean_logp",
                        "confidence",
                        "tokens_per_sample",
                        "wall_s",
                        "acceptance",
                    )
                },
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ exactness


def exactness_demo(
    *,
    vocab: int = 4,
    max_len: int = 4,
    alpha: float = 2.0,
    model_seed: int = 3,
    init_scale: float = 0.2,
    n_chains: int = 4000,
    mcmc_steps: int = 30,
    n_particles: int = 16,
    seed: int = 1,
) -> dict:
    """Empirical vs exact p^alpha on a tiny random model whose every sequence is enumerable.

    Returns {"exact": {text: prob}, "samplers": {label: {text: prob}}, "tv": {label: TV distance},
    "settings": ...} (texts show EOS as "$"): exact MH, MH without the index-choice correction, SMC, and
    low temperature. The defaults take a few seconds on a CPU.
    """
    from entropylab.models import enumerable_model
    from entropylab.sampling import power_sample_mh, power_sample_smc, sample_low_temperature
    from entropylab.sampling.exact import empirical, power_of, sequence_logprobs, tv_distance

    model, tok = enumerable_model(vocab, init_scale=init_scale, seed=model_seed)
    prompt = [[0]]
    exact = power_of(sequence_logprobs(model, prompt[0], max_len, vocab - 1), alpha)

    def dist(s: PowerSamples) -> dict:
        return empirical(r[:k].tolist() for r, k in zip(s.response_ids, s.n_tokens))

    common = dict(alpha=alpha, max_new_tokens=max_len, seed=seed)
    runs = {
        "MH (exact)": power_sample_mh(
            model, tok, prompt, mcmc_steps=mcmc_steps, block_size=max_len, n_chains=n_chains, **common
        ),
        "MH (reference, no 1/L terms)": power_sample_mh(
            model, tok, prompt, mcmc_steps=mcmc_steps, block_size=max_len, n_chains=n_chains, exact=False, **common
        ),
        f"SMC ({n_particles} particles)": power_sample_smc(
            model, tok, prompt, n_particles=n_particles, n=n_chains, **common
        ),
        "low temperature": sample_low_temperature(model, tok, prompt, n=n_chains, **common),
    }
    samplers = {k: dist(v) for k, v in runs.items()}
    tv = {k: tv_distance(v, exact) for k, v in samplers.items()}

    def named(d: dict) -> dict[str, float]:  # token ids -> text, EOS shown as "$"
        return {tok.decode(list(s)): p for s, p in d.items()}

    return {
        "exact": named(exact),
        "samplers": {k: named(v) for k, v in samplers.items()},
        "tv": tv,
        "settings": dict(
            vocab=vocab,
            max_len=max_len,
            alpha=alpha,
            model_seed=model_seed,
            init_scale=init_scale,
            n_chains=n_chains,
            mcmc_steps=mcmc_steps,
            n_particles=n_particles,
            seed=seed,
        ),
    }


# ------------------------------------------------------------------------------------------------ CLI body


def run_sample_cli(
    model,
    task,
    method: str = "mh",
    alpha: float = 4.0,
    n_problems: int = 20,
    *,
    n: int = 1,
    split: str = "test",
    difficulty: int | None = None,
    max_new_tokens: int | None = None,
    mcmc_steps: int = 10,
    block_size: int = 192,
    exact: bool = True,
    cuts: str = "uniform",
    cut_temperature: float | None = None,
    n_particles: int = 16,
    ess_threshold: float = 0.5,
    alpha_ramp: int | None = None,
    n_candidates: int | None = None,
    n_rollouts: int | None = None,
    rollout_len: int | None = None,
    entropy_threshold: float | None = None,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
    budget: float | None = None,
    device: str | None = None,
    out: str | Path | None = None,
    progress: bool = False,
    echo: Callable[[str], None] | None = print,
) -> dict:
    """`entropylab sample`: sample `n` responses for `n_problems` problems with one method; write and print results.

    `model`: a shipped name, a checkpoint directory or a (model, tokenizer) pair. Writes
    OUT/samples.jsonl (one line per response) and OUT/summary.json when `out` is given; prints a one-row
    table through `echo`. Returns the summary dict. Options left None take the method's defaults
    (`DEFAULT_OPTIONS`: best-of-16; SPS with 4 candidates, 2 rollouts of up to 32 tokens above 0.3 nats).
    """
    from entropylab.tasks import get_task

    get_sampler(method)
    if isinstance(model, tuple):
        lm, tok = model
        model_name = type(lm).__name__
    else:
        from entropylab.models import load_model

        lm, tok = load_model(model, device=device)
        model_name = str(model)
    task_obj = get_task(task) if isinstance(task, str) else task
    flags = dict(
        mcmc_steps=mcmc_steps,
        block_size=block_size,
        exact=exact,
        cuts=cuts,
        cut_temperature=cut_temperature,
        n_particles=n_particles,
        ess_threshold=ess_threshold,
        alpha_ramp=alpha_ramp,
        n_candidates=n_candidates,
        n_rollouts=n_rollouts,
        rollout_len=rollout_len,
        entropy_threshold=entropy_threshold,
    )
    unset = ("n_candidates", "n_rollouts", "rollout_len", "entropy_threshold")  # None: the method's default
    opts = {k: flags[k] for k in METHOD_OPTIONS.get(method, ()) if not (k in unset and flags[k] is None)}
    comp = compare_methods(
        lm,
        tok,
        task_obj,
        [method],
        n_problems=n_problems,
        k_max=n,
        alpha=alpha,
        seed=seed,
        split=split,
        difficulty=difficulty,
        max_new_tokens=max_new_tokens,
        options={method: opts},
        top_k=top_k,
        top_p=top_p,
        progress=progress,
        budget=budget,
    )
    opts = comp.meta["options"][method] if budget is not None else opts
    row = comp.table.iloc[0].to_dict()
    pk = {f"pass@{k}": v for k, v in comp.pass_at_k.set_index("k")["pass@k"].items() if k in (1, 2, 4, 8, 16)}
    summary = {
        "model": model_name,
        "task": task_obj.name,
        "method": method,
        "alpha": alpha,
        "budget": budget,
        "n_problems": comp.meta["n_problems"],
        "n": n,
        "seed": seed,
        "max_new_tokens": comp.meta["max_new_tokens"],
        "options": opts,
        **{
            k: row[k]
            for k in (
                "accuracy",
                "mean_logp",
                "loglik",
                "confidence",
                "length",
                "tokens_evaluated",
                "tokens_per_sample",
                "wall_s",
                "acceptance",
            )
        },
        **pk,
    }
    summary = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "samples.jsonl", "w", encoding="utf-8") as f:
            for r in comp.samples.to_dict("records"):
                f.write(json.dumps({k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}) + "\n")
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        summary["out"] = str(out)
    if echo is not None:
        cols = ["method", "accuracy", *pk, "mean_logp", "confidence", "length", "tokens_per_sample", "wall_s"]
        echo(format_table([{c: _fmt(summary.get(c, ""), 3) for c in cols}], cols))
    return summary
