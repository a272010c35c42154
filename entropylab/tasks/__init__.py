"""Verifiable reasoning tasks: synthetic families (`arith`, `fork`, `ladder`), the toy of power sampling, real-data loaders.

``get_task("arith").problems("test")`` gives problems; ``task.corpus(n)`` pre-training documents;
``task.reward(completions, problems)`` the verifier's 0/1 rewards.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from entropylab.tasks.arith import ArithTask
from entropylab.tasks.base import ALPHABET, SPLITS, Document, Problem, Task, TaskError, normalize_answer, split_of
from entropylab.tasks.fork import ForkTask
from entropylab.tasks.ladder import EvenLadderTask, LadderTask, PracticeLadderTask, TwinLadderTask
from entropylab.tasks.real import MathTask, apply_chat_template, extract_boxed, load_problems

#: name -> task class; `get_task` builds one.
TASKS: dict[str, type[Task]] = {
    "arith": ArithTask,
    "fork": ForkTask,
    "ladder": LadderTask,
    "ladder_practice": PracticeLadderTask,
    "ladder_twin": TwinLadderTask,
    "ladder_even": EvenLadderTask,
    "math": MathTask,
}


def list_tasks() -> list[str]:
    """The registered task names, sorted."""
    return sorted(TASKS)


def get_task(name: str, **kwargs) -> Task:
    """A task by registered name; keyword arguments go to its constructor."""
    try:
        cls = TASKS[name]
    except (KeyError, TypeError):
        raise TaskError(f"unknown task {name!r}; known tasks: {', '.join(list_tasks())}") from None
    return cls(**kwargs)


def mixed_corpus(
    weights: Mapping[str, float],
    n: int,
    *,
    seed: int = 0,
    error_rate: float | None = None,
    difficulty: int | list[int] | None = None,
) -> list[str]:
    """`n` shuffled documents drawn from several tasks in proportion to `weights` (e.g. {"arith": 1, "fork": 1})."""
    names = list(weights)
    total = float(sum(weights.values()))
    if not names or total <= 0:
        raise TaskError("mixed_corpus: weights must name at least one task with a positive weight")
    counts = [int(n * weights[k] / total) for k in names]
    counts[0] += n - sum(counts)
    docs: list[str] = []
    for name, k in zip(names, counts):
        docs += get_task(name).corpus(k, seed=seed, error_rate=error_rate, difficulty=difficulty)
    random.Random(f"mix|{seed}").shuffle(docs)
    return docs


__all__ = [
    "ALPHABET",
    "SPLITS",
    "TASKS",
    "ArithTask",
    "Document",
    "EvenLadderTask",
    "ForkTask",
    "LadderTask",
    "MathTask",
    "PracticeLadderTask",
    "Problem",
    "Task",
    "TaskError",
    "TwinLadderTask",
    "apply_chat_template",
    "extract_boxed",
    "get_task",
    "list_tasks",
    "load_problems",
    "mixed_corpus",
    "normalize_answer",
    "split_of",
]
