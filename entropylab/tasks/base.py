"""The task contract: `Problem`, the `Task` base class, deterministic disjoint splits and answer checking."""

from __future__ import annotations

import hashlib
import random
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field

from entropylab.errors import ModelError

#: Every character a synthetic task may produce; the character tokenizer is built from it.
ALPHABET: str = "\n " + string.digits + string.ascii_lowercase + "+-*=():,.?>#"

SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Share of the problem space (by content hash, in percent) that each split owns.
SPLIT_SHARES: dict[str, tuple[int, int]] = {"train": (0, 80), "val": (80, 90), "test": (90, 100)}


class TaskError(ModelError):
    """A task that cannot be built or used as asked: unknown name, split, difficulty or data."""


@dataclass(frozen=True)
class Problem:
    """One problem: the prompt the model continues, the canonical answer and one correct solution."""

    id: str
    prompt: str
    answer: str
    solution: str
    meta: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Document:
    """A pre-training document before joining: the problem, the completion written and whether it is flawed."""

    problem: Problem
    completion: str
    flawed: bool
    mistake: str | None = None

    @property
    def text(self) -> str:
        """The document text: prompt followed by the (correct or flawed) completion."""
        return self.problem.prompt + self.completion


def split_of(key: str) -> str:
    """The split that owns a problem, from a stable hash of its canonical content."""
    bucket = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % 100
    for name, (lo, hi) in SPLIT_SHARES.items():
        if lo <= bucket < hi:
            return name
    raise AssertionError(bucket)  # pragma: no cover


_INT_RE = re.compile(r"^[+-]?\d+$")


def normalize_answer(text: str) -> str:
    """Canonical form of a short answer: trimmed, no trailing period, integers without sign/leading zeros."""
    s = text.strip().rstrip(".").strip()
    if _INT_RE.match(s):
        return str(int(s))
    return " ".join(s.split())


class Task:
    """Base class of a synthetic task family; subclasses implement `_sample` and `_flaw`."""

    name: str = "task"
    answer_marker: str = "answer:"
    default_difficulty: int = 2
    difficulties: tuple[int, ...] = (1, 2, 3, 4, 5)
    default_sizes: dict[str, int] = {"train": 5000, "val": 200, "test": 500}
    default_error_rate: float = 0.3

    # -- to implement -------------------------------------------------------------------------------
    def _sample(self, rng: random.Random, difficulty: int) -> tuple[str, str, str, str, dict]:
        """Draw one problem: (canonical key, prompt, answer, correct solution, meta)."""
        raise NotImplementedError

    def _flaw(self, rng: random.Random, problem: Problem) -> tuple[str, str]:
        """A plausible flawed completion whose final answer is wrong: (completion, mistake kind)."""
        raise NotImplementedError

    def _sample_easy(self, rng: random.Random, difficulty: int) -> tuple[str, str, str, str, dict]:
        """A problem of the easier kind that pre-training warms up on (`documents(easy_share=...)`);
        a task without one draws an ordinary problem."""
        return self._sample(rng, difficulty)

    # -- problems -----------------------------------------------------------------------------------
    def _check_difficulty(self, difficulty: int | None) -> int:
        d = self.default_difficulty if difficulty is None else difficulty
        if d not in self.difficulties:
            raise TaskError(f"task {self.name!r}: difficulty must be one of {list(self.difficulties)}, got {d!r}")
        return int(d)

    def problems(
        self, split: str, n: int | None = None, *, seed: int = 0, difficulty: int | None = None, easy: bool = False
    ) -> list[Problem]:
        """`n` distinct problems of one split, deterministic in (split, n, seed, difficulty); splits are disjoint.
        `easy`: the task's warm-up kind (`_sample_easy`), used by the pre-training corpus."""
        if split not in SPLITS:
            raise TaskError(f"task {self.name!r}: unknown split {split!r}; known splits: {list(SPLITS)}")
        d = self._check_difficulty(difficulty)
        n = self.default_sizes[split] if n is None else int(n)
        if n < 0:
            raise TaskError(f"task {self.name!r}: n must be >= 0, got {n}")
        rng = random.Random(f"{self.name}|{split}|{seed}|{d}" + ("|easy" if easy else ""))
        draw = self._sample_easy if easy else self._sample
        tags = (
            ("" if d == self.default_difficulty else f"-d{d}")
            + ("" if seed == 0 else f"-s{seed}")
            + ("-easy" if easy else "")
        )
        seen: set[str] = set()
        out: list[Problem] = []
        attempts, max_attempts = 0, 200 * n + 1000
        while len(out) < n:
            attempts += 1
            if attempts > max_attempts:
                raise TaskError(
                    f"task {self.name!r}: found only {len(out)} distinct {split} problems at difficulty {d} "
                    f"(asked for {n}); ask for fewer or raise the difficulty"
                )
            key, prompt, answer, solution, meta = draw(rng, d)
            if key in seen or split_of(key) != split:
                continue
            seen.add(key)
            meta = {"difficulty": d, "split": split, "seed": seed, "key": key, **meta}
            pid = f"{self.name}-{split}{tags}-{len(out):06d}"
            out.append(Problem(id=pid, prompt=prompt, answer=answer, solution=solution, meta=meta))
        return out

    # -- verification -------------------------------------------------------------------------------
    def extract_answer(self, completion: str) -> str | None:
        """The text on the line after the LAST answer marker (stripped), or None when there is no marker."""
        i = completion.rfind(self.answer_marker)
        if i < 0:
            return None
        rest = completion[i + len(self.answer_marker) :].split("\n", 1)[0].strip()
        return rest or None

    def verify(self, completion: str, answer: str) -> float:
        """1.0 when the extracted answer equals `answer` after normalisation, else 0.0."""
        got = self.extract_answer(completion)
        if got is None:
            return 0.0
        return 1.0 if normalize_answer(got) == normalize_answer(answer) else 0.0

    def reward(self, completions: Sequence[str], problems: Sequence[Problem]) -> list[float]:
        """Batch `verify`: one reward per (completion, problem) pair."""
        if len(completions) != len(problems):
            raise TaskError(f"reward: {len(completions)} completions for {len(problems)} problems")
        return [self.verify(c, p.answer) for c, p in zip(completions, problems)]

    # -- pre-training corpus ------------------------------------------------------------------------
    def documents(
        self,
        n: int,
        *,
        seed: int = 0,
        error_rate: float | None = None,
        difficulty: int | Sequence[int] | None = None,
        easy_share: float = 0.0,
    ) -> list[Document]:
        """`n` corpus documents from the train split; a share `error_rate` carries a mistake (wrong final answer),
        a share `easy_share` are problems of the task's warm-up kind (`_sample_easy`)."""
        rate = self.default_error_rate if error_rate is None else float(error_rate)
        if not 0.0 <= rate <= 1.0:
            raise TaskError(f"task {self.name!r}: error_rate must be in [0, 1], got {rate}")
        if not 0.0 <= easy_share <= 1.0:
            raise TaskError(f"task {self.name!r}: easy_share must be in [0, 1], got {easy_share}")
        levels = [difficulty] if difficulty is None or isinstance(difficulty, int) else list(difficulty)
        if not levels:
            raise TaskError(f"task {self.name!r}: empty difficulty list")
        per = [n // len(levels) + (1 if i < n % len(levels) else 0) for i in range(len(levels))]
        probs: list[Problem] = []
        for lvl, k in zip(levels, per):
            n_easy = round(k * easy_share)
            probs += self.problems("train", k - n_easy, seed=seed, difficulty=lvl)
            probs += self.problems("train", n_easy, seed=seed, difficulty=lvl, easy=True)
        rng = random.Random(f"{self.name}|corpus|{seed}|{rate}")
        rng.shuffle(probs)
        return [self._document(rng, p, rate) for p in probs]

    def _document(self, rng: random.Random, problem: Problem, rate: float) -> Document:
        """One document: the correct solution, or with probability `rate` a flawed one."""
        if rng.random() < rate:
            completion, kind = self._flaw(rng, problem)
            return Document(problem, completion, True, kind)
        return Document(problem, problem.solution, False, None)

    def corpus(
        self, n: int, *, seed: int = 0, error_rate: float | None = None, difficulty: int | Sequence[int] | None = None
    ) -> list[str]:
        """Pre-training documents (prompt + solution text, no EOS), deterministic from the seed."""
        return [d.text for d in self.documents(n, seed=seed, error_rate=error_rate, difficulty=difficulty)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
