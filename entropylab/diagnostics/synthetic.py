"""Synthetic run directories for tests, benchmarks and demos: a softmax bandit trained by natural PG.

`simulate_bandit_run` writes what entropylab's trainer writes (metrics.jsonl and per-token Parquet dumps in
the `entropylab.rundir.DUMP_COLUMNS` schema) for a policy whose entropy change is known exactly, so `diagnose` has a ground
truth: the tokens are independent draws from one softmax state, the advantage is GRPO's group-normalised
response reward, and the update is the sample natural-PG step ``z[a] += lr * mean advantage of a``.
`random_dump` makes a large dump of only the columns Table 1 needs, quickly, for benchmarks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from entropylab.diagnostics.covariance import token_covariance
from entropylab.rundir import coerce_dump, write_dump, write_metrics


def softmax_entropy(z: np.ndarray) -> float:
    """Entropy in nats of softmax(z)."""
    z = np.asarray(z, dtype=np.float64)
    logp = z - z.max()
    logp -= np.log(np.exp(logp).sum())
    return float(-(np.exp(logp) * logp).sum())


def _log_softmax(z: np.ndarray) -> np.ndarray:
    logp = z - z.max()
    return logp - np.log(np.exp(logp).sum())


def simulate_bandit_run(
    run_dir: str | Path,
    *,
    steps: int = 30,
    vocab: int = 64,
    prompts: int = 8,
    group: int = 8,
    length: int = 32,
    lr: float = 0.3,
    micro_batches: int = 4,
    dump_steps=None,
    seed: int = 0,
) -> Path:
    """Write a synthetic run: metrics for steps 0..`steps` and dumps for `dump_steps` (default: every step).

    Each step samples prompts*group responses of `length` tokens; a response's reward is the mean of a fixed
    per-token value plus noise; advantages are normalised within each prompt's group; responses are split
    into `micro_batches` consecutive micro-batches. Returns the run directory.
    """
    rng = np.random.default_rng(seed)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_steps = set(range(steps)) if dump_steps is None else {int(s) for s in dump_steps}
    z = rng.normal(0.0, 1.5, vocab)
    # a decent "pretrained" policy: likely tokens tend to be good ones, so the covariance is positive and
    # entropy collapses, as in the paper
    value = 0.6 * (z - z.mean()) / z.std() + 0.8 * rng.normal(0.0, 1.0, vocab)
    n_resp = prompts * group
    prompt_id = np.repeat(np.arange(prompts), group * length)
    sample_id = np.tile(np.repeat(np.arange(group), length), prompts)
    position = np.tile(np.arange(length), n_resp)
    micro = np.repeat(np.arange(n_resp) * micro_batches // n_resp, length)
    records = []
    for step in range(steps + 1):
        logp_all = _log_softmax(z)
        pi = np.exp(logp_all)
        entropy = softmax_entropy(z)
        tokens = rng.choice(vocab, size=(n_resp, length), p=pi)
        reward = value[tokens].mean(axis=1) + rng.normal(0.0, 0.1, n_resp)
        r = reward.reshape(prompts, group)
        adv = ((r - r.mean(axis=1, keepdims=True)) / (r.std(axis=1, keepdims=True) + 1e-6)).reshape(-1)
        records.append(
            {
                "step": step,
                "entropy": entropy,
                "reward": float(reward.mean()),
                "lr": lr,
                "val/acc": float(pi @ (value > 0)),
            }
        )
        if step == steps:
            break
        tok = tokens.reshape(-1)
        tok_adv = np.repeat(adv, length)
        tok_logp = logp_all[tok]
        if step in dump_steps:
            df = pd.DataFrame(
                {
                    "step": step,
                    "prompt_id": prompt_id,
                    "sample_id": sample_id,
                    "position": position,
                    "token_id": tok,
                    "token": [f"t{t}" for t in tok],
                    "logprob": tok_logp,
                    "old_logprob": tok_logp,
                    "entropy": entropy,
                    "advantage": tok_adv,
                    "reward": np.repeat(reward, length),
                    "covariance": token_covariance(tok_logp, tok_adv),
                    "micro_batch": micro,
                }
            )
            write_dump(run_dir, step, coerce_dump(df))
        counts = np.bincount(tok, minlength=vocab)
        mean_adv = np.bincount(tok, weights=tok_adv, minlength=vocab) / np.maximum(counts, 1)
        z = z + lr * mean_adv
    write_metrics(run_dir, records)
    return run_dir


def random_dump(
    n_tokens: int, n_steps: int, *, micro_batches: int = 0, seed: int = 0, dtype=np.float32
) -> pd.DataFrame:
    """A large random dump with only step, logprob, advantage (and micro_batch): for benchmarks.

    Log-probs are mostly near 0 with a heavy low tail (like an LM's sampled tokens); advantages are +-1-ish
    and shared by runs of tokens (a response). Steps are contiguous and ascending, as `read_dumps` returns.
    """
    rng = np.random.default_rng(seed)
    step = np.repeat(
        np.arange(n_steps, dtype=np.int64), np.diff(np.linspace(0, n_tokens, n_steps + 1).astype(np.int64))
    )
    logprob = -rng.exponential(0.5, n_tokens).astype(dtype)
    n_resp = max(1, n_tokens // 256)
    advantage = np.repeat(rng.normal(0.0, 1.0, n_resp).astype(dtype), 256)
    advantage = np.resize(advantage, n_tokens)
    cols = {"step": step, "logprob": logprob, "advantage": advantage}
    if micro_batches:
        within = np.arange(n_tokens) - np.searchsorted(step, step, side="left")
        sizes = np.bincount(step, minlength=n_steps)
        cols["micro_batch"] = (within * micro_batches // sizes[step]).astype(np.int64)
    return pd.DataFrame(cols)
