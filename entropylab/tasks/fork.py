"""`fork`: a sum with an early route choice, built so power sampling beats low-temperature sampling.

Prompt ``"s: 14+25+33=?\\na:"``. The completion opens with ``" way: "`` and then one character picks
the route (docs/science.md section 4, the toy's structure at task scale):

- ``" way: guess\\nanswer: 75"`` (route *g*, shown with probability ``p_guess`` = 0.7 in the corpus):
  the answer is guessed, uniformly among ``n_guesses`` = 10 values around the true sum
  (true sum + offset, offset in -5..4), so it is right with probability 1/10. Many scattered,
  individually unlikely continuations (each ~0.07), mostly wrong.
- ``" way: add\\n14+25=39\\n39+33=72\\nanswer: 72"`` (route *a*, probability 0.3): the sum is worked
  out step by step, deterministic and correct (``error_rate``, default 0, adds arith-style mistakes).

Intended probabilities for a model that learned the corpus exactly:
- temperature 1: P(correct) = 0.3 + 0.7 / 10 = 0.37;
- low temperature 1/alpha (alpha = 4), greedy per token: route g gets 0.7^4 / (0.7^4 + 0.3^4) = 0.97,
  P(correct) ≈ 0.03 + 0.97 * 0.1 ≈ 0.13 (lower than temperature 1; up to ≈ 0.2 where tempering the
  guessed tens digit narrows the guess);
- power distribution p^alpha (alpha = 4), which weighs whole sequences: the add path has p = 0.3, each
  guess path p = 0.07, so route a gets 0.3^4 / (0.3^4 + 10 * 0.07^4) ≈ 0.97 and P(correct) ≈ 0.97
  (alpha = 2: 0.09 / (0.09 + 0.049) ≈ 0.65).

The high-entropy "forking" tokens are the route character and the guessed digits; the rest is
near-deterministic. Difficulty: 1: two numbers 10..99; 2 (default): three; 3: four; 4: three numbers
100..999; 5: four numbers 100..999.
"""

from __future__ import annotations

import random

from entropylab.tasks.arith import MISTAKES, ArithTask, chain, render
from entropylab.tasks.base import Document, Problem, Task, TaskError

#: difficulty -> (how many numbers, smallest, largest)
LEVELS: dict[int, tuple[int, int, int]] = {
    1: (2, 10, 99),
    2: (3, 10, 99),
    3: (4, 10, 99),
    4: (3, 100, 999),
    5: (4, 100, 999),
}

GUESS_ROUTE = " way: guess\n"
ADD_ROUTE = " way: add\n"


def guess_offsets(n_guesses: int) -> list[int]:
    """The offsets a guess adds to the true sum: n values centred on 0 (10 -> -5..4)."""
    return list(range(-(n_guesses // 2), n_guesses - n_guesses // 2))


class ForkTask(Task):
    """Sum with a route fork: a likely guessing route vs an unlikely sure route (see module docstring)."""

    name = "fork"
    answer_marker = "answer:"
    default_error_rate = 0.0

    def __init__(self, p_guess: float = 0.7, n_guesses: int = 10) -> None:
        if not 0.0 <= p_guess <= 1.0:
            raise TaskError(f"task 'fork': p_guess must be in [0, 1], got {p_guess}")
        if n_guesses < 1:
            raise TaskError(f"task 'fork': n_guesses must be >= 1, got {n_guesses}")
        self.p_guess = float(p_guess)
        self.n_guesses = int(n_guesses)

    def _sample(self, rng: random.Random, difficulty: int) -> tuple[str, str, str, str, dict]:
        count, lo, hi = LEVELS[difficulty]
        nums = [rng.randint(lo, hi) for _ in range(count)]
        expr = "+".join(map(str, nums))
        steps = chain(nums[0], [("+", x) for x in nums[1:]])
        results = [a + b for a, _, b in steps]
        solution = ADD_ROUTE + render(steps, results, results[-1])[1:]
        return expr, f"s: {expr}=?\na:", str(results[-1]), solution, {"numbers": nums}

    def guess_completion(self, problem: Problem, offset: int) -> str:
        """The guessing route's completion with the answer `offset` away from the truth."""
        return f"{GUESS_ROUTE}answer: {max(0, int(problem.answer) + offset)}"

    def route(self, completion: str) -> str | None:
        """Which route a completion took: "guess", "add" or None (neither)."""
        if completion.startswith(GUESS_ROUTE[:-1]):
            return "guess"
        if completion.startswith(ADD_ROUTE[:-1]):
            return "add"
        return None

    def _flaw(self, rng: random.Random, problem: Problem) -> tuple[str, str]:
        nums = problem.meta["numbers"]
        ops = [("+", x) for x in nums[1:]]
        kinds, weights = list(MISTAKES), list(MISTAKES.values())
        for _ in range(100):
            kind = rng.choices(kinds, weights)[0]
            out = ArithTask._mistake(rng, kind, nums[0], ops)
            if out is not None and out[1] != int(problem.answer):
                return ADD_ROUTE + out[0][1:], kind
        raise AssertionError(f"no mistake found for {problem.id}")  # pragma: no cover

    def _document(self, rng: random.Random, problem: Problem, rate: float) -> Document:
        if rng.random() < self.p_guess:
            offset = rng.choice(guess_offsets(self.n_guesses))
            completion = self.guess_completion(problem, offset)
            return Document(problem, completion, self.verify(completion, problem.answer) == 0.0, "guess")
        return super()._document(rng, problem, rate)

    def __repr__(self) -> str:
        return f"ForkTask(p_guess={self.p_guess}, n_guesses={self.n_guesses})"
