"""The alias table: which original metric keys mean entropy, training reward, validation score and step.

One place for every framework's spelling (verl, TRL, OpenRLHF, entropylab's trainer). Earlier entries win.
"""

from __future__ import annotations

import re

#: Policy entropy, in priority order: verl, legacy verl, TRL / entropylab, TRL on TensorBoard / OpenRLHF, others.
ENTROPY_KEYS: tuple[str, ...] = (
    "actor/entropy",
    "actor/entropy_loss",
    "entropy",
    "train/entropy",
    "train/entropy_loss",
    "policy/entropy",
    "objective/entropy",
    "train/policy_entropy",
    "entropy/mean",
    "rollout/entropy",
)


#: The entropy of the validation samples themselves (entropylab's trainer measures it on the very completions it
#: scores). When a log has it, a validation score is paired with it rather than with the training entropy.
VAL_ENTROPY_KEYS: tuple[str, ...] = ("val/entropy",)


def entropy_keys(own: str | None = None) -> tuple[str, ...]:
    """The entropy candidates in priority order, a format's own entropy key (`LogFormat.entropy_key`) first."""
    return ENTROPY_KEYS if own is None else (own,) + tuple(k for k in ENTROPY_KEYS if k != own)


#: Training reward, in priority order: verl raw verifier score, verl reward after KL, TRL, OpenRLHF, others.
REWARD_KEYS: tuple[str, ...] = (
    "critic/score/mean",
    "critic/rewards/mean",
    "reward",
    "train/reward",
    "rewards/mean",
    "objective/scores",
    "env/reward_mean",
    "train/rewards",
    "rollout/reward",
)

#: Step fields of tabular logs, in priority order, per row (an epoch is never a step).
STEP_KEYS: tuple[str, ...] = (
    "step",
    "global_step",
    "train/global_step",
    "trainer/global_step",
    "eval/global_step",
    "_step",
    "iteration",
    "grpo_step",
    "ppo_step",
    "rl_step",
    "train/step",
    "global_steps",
    "iter",
)

#: Columns that tell several runs of one table apart, in priority order (string values only).
RUN_KEYS: tuple[str, ...] = (
    "run",
    "run_id",
    "run_name",
    "experiment",
    "experiment_name",
    "exp_name",
    "exp",
    "name",
    "trial",
    "seed_run",
)

#: Fields that give a row's kind in JSON lines; rows of an evaluation kind hold validation metrics.
KIND_KEYS: tuple[str, ...] = ("type", "split", "mode", "phase", "stage", "kind")
EVAL_KINDS = frozenset({"eval", "evaluation", "val", "valid", "validation", "test", "testing"})
TRAIN_KINDS = frozenset({"train", "training", "update", "optim", "optimizer"})
OTHER_KINDS = frozenset({"rollout", "rollouts", "generation", "generate", "sample", "sampling", "inference"})


def kind_key(kind: str, key: str) -> str:
    """The key of a metric in a row of the given kind: evaluation rows' metrics are validation (`eval/<key>`),
    rollout-like kinds prefix it (`rollout/<key>`); training rows and values that are not a known kind (a `mode`
    field holding a setting) leave it as it is."""
    low = kind.strip().lower()
    if low in TRAIN_KINDS or low not in EVAL_KINDS | OTHER_KINDS:
        return key
    if low in EVAL_KINDS:
        return key if is_validation(canonical_key(key)) else f"eval/{key}"
    return key if key.startswith(f"{low}/") else f"{low}/{key}"


VAL_PREFIX = "val/"

# Default-score tiers, decided on the original key (lower is preferred).
_TIERS: tuple[tuple[int, re.Pattern[str]], ...] = (
    (0, re.compile(r"^val-core/.+/acc/mean@\d+$")),
    (1, re.compile(r"^val-core/.+/reward/mean@\d+$")),
    (2, re.compile(r"^(?:val/)?test_score/.+$")),
    (3, re.compile(r"^val/acc$")),
    (4, re.compile(r"^(?:eval_|eval/)reward$")),
    (5, re.compile(r"^eval/eval_.+_pass1$")),
)
_OTHER_TIER = 6
# Validation metrics that are never a default score: timings, losses, lengths, entropies, spreads...
_NOT_A_SCORE = re.compile(
    r"(?:^|[/_.@-])(?:runtime|samples_per_second|steps_per_second|loss|entropy|kl|length|clip_ratio|clipped_ratio|"
    r"time|timing|epoch|std|lr|learning_rate|grad_norm|flos|num_tokens|min|max)(?:$|[/_.@-])"
)


def canonical_key(key: str) -> str:
    """The canonical column name of an original key: validation metrics become `val/<name>`, others stay.

    verl `val-core/X` and `val-aux/X` -> `val/X`; `test_score/X` -> `val/test_score/X`; TRL `eval_X`,
    TensorBoard `eval/X` and OpenRLHF `eval/eval_X` -> `val/X`; `val/...` is kept.
    """
    if key.startswith(VAL_PREFIX):
        return key
    for prefix in ("val-core/", "val-aux/"):
        if key.startswith(prefix):
            return VAL_PREFIX + key[len(prefix) :]
    if key.startswith("test_score/"):
        return VAL_PREFIX + key
    if key.startswith("eval/"):
        rest = key[len("eval/") :]
        return VAL_PREFIX + (rest[len("eval_") :] if rest.startswith("eval_") else rest)
    if key.startswith("eval_") and len(key) > len("eval_"):
        return VAL_PREFIX + key[len("eval_") :]
    return key


def is_validation(canonical: str) -> bool:
    """Whether a canonical column holds a validation metric."""
    return canonical.startswith(VAL_PREFIX)


def score_tier(original: str) -> int | None:
    """Priority of an original validation key as the default score (lower first); None if it never is one."""
    for tier, pattern in _TIERS:
        if pattern.match(original):
            return tier
    canonical = canonical_key(original)
    if not is_validation(canonical) or _NOT_A_SCORE.search(canonical[len(VAL_PREFIX) :].lower()):
        return None
    return _OTHER_TIER


def first_present(candidates: tuple[str, ...], keys: list[str] | tuple[str, ...]) -> list[str]:
    """The candidates present in `keys`, in the candidates' priority order."""
    present = set(keys)
    return [k for k in candidates if k in present]
