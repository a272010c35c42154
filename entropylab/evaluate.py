"""Evaluation helpers: unbiased pass@k, accuracy, paired tests between methods, and a task evaluation at a
given temperature."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from entropylab.errors import ModelError
from entropylab.tokens.stats import entropy_stats

PASS_KS = (1, 2, 4, 8, 16)


def pass_at_k(n, c, k: int) -> np.ndarray | float:
    """Unbiased pass@k = 1 - C(n-c, k) / C(n, k) from n samples with c correct (vectorised over n and c).

    Product form 1 - prod_{i=n-c+1}^{n} (1 - k/i), stable for large n. Needs k <= n.
    """
    n_arr, c_arr = np.broadcast_arrays(np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64))
    if np.any(c_arr < 0) or np.any(c_arr > n_arr):
        raise ValueError("pass_at_k: need 0 <= c <= n")
    if k < 1 or np.any(k > n_arr):
        raise ValueError(f"pass_at_k: need 1 <= k <= n, got k={k}")
    j = np.arange(int(c_arr.max(initial=0)))  # term j uses i = n - j, for j < c
    i = (n_arr[..., None] - j).astype(np.float64)
    terms = np.where(j < c_arr[..., None], 1.0 - k / np.maximum(i, 1.0), 1.0)
    out = 1.0 - np.clip(np.prod(terms, axis=-1), 0.0, 1.0)  # a zero term (i == k) means certain success
    return float(out) if out.ndim == 0 else out


def mean_at_k(n, c, k: int) -> float:
    """Mean of pass@k over problems (n, c arrays with one entry per problem)."""
    return float(np.mean(pass_at_k(n, c, k)))


def accuracy(rewards: Sequence[float] | np.ndarray, threshold: float = 0.5) -> float:
    """Share of rewards above `threshold` (0/1 verifier rewards: the mean)."""
    r = np.asarray(rewards, dtype=np.float64)
    if r.size == 0:
        raise ValueError("accuracy: no rewards")
    return float(np.mean(r > threshold))


def mcnemar(a, b, threshold: float = 0.5) -> dict[str, float]:
    """McNemar's exact test of paired single-shot outcomes (same problems, same sample index) of methods a, b.

    Returns the discordant counts `a_only` (a right, b wrong) and `b_only`, the difference of accuracies and
    the two-sided exact p-value: 2 * P(X <= min(a_only, b_only)), X ~ Binomial(a_only + b_only, 1/2), at most 1.
    """
    x, y = np.asarray(a, dtype=np.float64) > threshold, np.asarray(b, dtype=np.float64) > threshold
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"mcnemar: need two non-empty outcome arrays of one shape, got {x.shape} and {y.shape}")
    a_only, b_only = int((x & ~y).sum()), int((~x & y).sum())
    n, k = a_only + b_only, min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n if n else 1.0
    return {
        "a_only": a_only,
        "b_only": b_only,
        "difference": float(x.mean() - y.mean()),
        "p_value": min(1.0, 2.0 * tail),
    }


def paired_bootstrap(
    per_problem_a, per_problem_b, *, reps: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Difference of means of two methods' per-problem values (same problems; e.g. pass@k per problem),
    with a percentile interval from resampling problems and the two-sided bootstrap p-value of no difference."""
    a, b = np.asarray(per_problem_a, dtype=np.float64), np.asarray(per_problem_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired_bootstrap: need two per-problem arrays of one length, got {a.shape} and {b.shape}")
    d = a - b
    idx = np.random.default_rng(seed).integers(0, d.size, size=(reps, d.size))
    means = d[idx].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    p = min(1.0, 2.0 * min(float(np.mean(means <= 0)), float(np.mean(means >= 0))))
    return {"difference": float(d.mean()), "low": float(lo), "high": float(hi), "p_value": p}


def _entropy_metrics(entropy, mask) -> dict[str, float]:
    """The token-entropy summary (:func:`entropylab.tokens.stats.entropy_stats`) where `mask` is set, as the
    evaluation's keys: entropy_p50 / _p80 / _p95, entropy_mean and entropy_frac_below_0.01 (NaN when empty)."""
    e = np.asarray(entropy, dtype=np.float64)[np.asarray(mask, dtype=bool)]
    keys = {
        "p50": "entropy_p50",
        "p80": "entropy_p80",
        "p95": "entropy_p95",
        "mean": "entropy_mean",
        "frac_below": "entropy_frac_below_0.01",
    }
    if e.size == 0:
        return dict.fromkeys(keys.values(), float("nan"))
    stats = entropy_stats(e, low=0.01)
    return {name: stats[k] for k, name in keys.items()}


def sample_and_score(
    model,
    tokenizer,
    task,
    split: str = "test",
    n_problems: int = 200,
    n_samples: int = 16,
    temperature: float = 1.0,
    seed: int = 0,
    *,
    max_new_tokens: int | None = None,
    batch_size: int | None = 512,
    top_k: int = 0,
    top_p: float = 1.0,
    difficulty: int | None = None,
    progress: bool = False,
) -> tuple:
    """`n_samples` responses to each of `n_problems` problems of `split`, scored by the task's verifier:
    (task, problems, Samples, number of right responses per problem)."""
    from entropylab.generation import sample
    from entropylab.tasks import get_task

    task = get_task(task) if isinstance(task, str) else task
    problems = task.problems(split, n_problems, seed=seed, difficulty=difficulty)
    if not problems:
        raise ModelError(f"evaluate_task: no {split} problems")
    if max_new_tokens is None:
        longest = max(len(p.solution) for p in problems)
        ctx = getattr(model.config, "max_position_embeddings", 10**9)
        longest_prompt = max(len(tokenizer(p.prompt)["input_ids"]) for p in problems)
        max_new_tokens = min(int(1.5 * longest) + 8, ctx - longest_prompt)
    s = sample(
        model,
        tokenizer,
        [p.prompt for p in problems],
        n=n_samples,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        batch_size=batch_size,
        progress=progress,
    )
    rewards = np.asarray(task.reward(s.texts, [problems[i] for i in s.prompt_index.tolist()]), dtype=np.float64)
    correct = (rewards > 0.5).reshape(len(problems), n_samples).sum(1)
    return task, problems, s, correct


def evaluate_task(
    model,
    tokenizer,
    task,
    split: str = "test",
    n_problems: int = 200,
    n_samples: int = 16,
    temperature: float = 1.0,
    seed: int = 0,
    **options,
) -> dict:
    """Sample `n_samples` responses for `n_problems` problems of `split` and score them with the task's verifier
    (`sample_and_score`; `options` are its max_new_tokens, batch_size, top_k, top_p, difficulty, progress).

    Returns pass@k for k in 1, 2, 4, 8, 16 (k <= n_samples), mean response length, share ending in EOS,
    and token-entropy statistics (temperature-1 entropy of the model at every generated token).
    """
    task, problems, s, correct = sample_and_score(
        model, tokenizer, task, split, n_problems, n_samples, temperature, seed, **options
    )
    out: dict = {
        "task": task.name,
        "split": split,
        "n_problems": len(problems),
        "n_samples": n_samples,
        "temperature": temperature,
        "seed": seed,
    }
    for k in PASS_KS:
        if k <= n_samples:
            out[f"pass@{k}"] = mean_at_k(n_samples, correct, k)
    mask = s.response_mask.cpu().numpy()
    out["mean_length"] = float(s.n_tokens.float().mean())
    out["frac_finished"] = float(s.finished.float().mean())
    out.update(_entropy_metrics(s.entropy.cpu().numpy(), mask))
    if hasattr(task, "route_stats"):  # tasks whose completions choose a route: how often each, how often right
        stats = task.route_stats(s.texts, [problems[i] for i in s.prompt_index.tolist()])
        for key, v in stats.items():
            kind, route = key.split("/", 1)
            if v == v:  # no accuracy for a route never taken
                out[f"route_{kind}/{route}"] = v
    return out
