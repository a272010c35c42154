"""`arith`: chains of additions and subtractions with every intermediate result written out.

Prompt ``"q: 37+48-19=?\\na:"``, solution ``" 37+48=85\\n85-19=66\\nanswer: 66"``. Each line is
deterministic given the previous one, so a model's entropy concentrates on the result digits where
the corpus shows common mistakes (forgotten carry/borrow, off by 1 or 10, a miscopied operand, a
flipped sign, a miscopied final answer). A mistake propagates: later lines compute correctly from
the wrong value, so the final answer is wrong.

Difficulty: 1: 1-2 operations on 2..49; 2 (default): 2-4 operations on 10..99; 3: 3-5 operations
on 10..99; 4: 3-5 operations on 100..999; 5: 4-6 operations on 100..999. Values never go negative.
"""

from __future__ import annotations

import random

from entropylab.tasks.base import Problem, Task

#: difficulty -> (min ops, max ops, smallest operand, largest operand)
LEVELS: dict[int, tuple[int, int, int, int]] = {
    1: (1, 2, 2, 49),
    2: (2, 4, 10, 99),
    3: (3, 5, 10, 99),
    4: (3, 5, 100, 999),
    5: (4, 6, 100, 999),
}

#: mistake kind -> relative weight in flawed documents
MISTAKES: dict[str, float] = {"carry": 0.3, "off1": 0.2, "off10": 0.2, "copy": 0.15, "sign": 0.1, "final": 0.05}

Step = tuple[int, str, int]


def apply(left: int, op: str, right: int) -> int:
    """The exact result of one step."""
    return left + right if op == "+" else left - right


def no_carry(left: int, op: str, right: int) -> int:
    """The result with the carry (addition) or borrow (subtraction) forgotten, column by column."""
    a, b = str(left), str(right).rjust(len(str(left)), "0")
    if op == "+":
        a = a.rjust(len(b), "0")
        digits = [(int(x) + int(y)) % 10 for x, y in zip(a, b)]
    else:
        digits = [abs(int(x) - int(y)) for x, y in zip(a, b)]
    return int("".join(map(str, digits)))


def chain(start: int, ops: list[tuple[str, int]]) -> list[Step]:
    """The written steps (left, op, right) of a chain from `start`, each left the previous result."""
    steps, cur = [], start
    for op, right in ops:
        steps.append((cur, op, right))
        cur = apply(cur, op, right)
    return steps


def render(steps: list[Step], results: list[int], final: int) -> str:
    """A completion from steps, the results written for them and the final answer line."""
    lines = [f"{left}{op}{right}={res}" for (left, op, right), res in zip(steps, results)]
    return " " + "\n".join(lines) + f"\nanswer: {final}"


def _nudge(rng: random.Random, value: int, sizes: tuple[int, ...]) -> int:
    """`value` moved by ±one of `sizes`, staying non-negative and different from `value`."""
    options = [value + s for s in sizes] + [value - s for s in sizes if value - s >= 0]
    return rng.choice(options)


class ArithTask(Task):
    """Multi-step addition/subtraction with intermediate results (see module docstring)."""

    name = "arith"
    answer_marker = "answer:"

    def _sample(self, rng: random.Random, difficulty: int, round_p: float = 0.0) -> tuple[str, str, str, str, dict]:
        lo_ops, hi_ops, lo, hi = LEVELS[difficulty]

        def operand() -> int:
            x = rng.randint(lo, hi)
            return max(lo, x - x % 10) if round_p and rng.random() < round_p else x

        n_ops = rng.randint(lo_ops, hi_ops)
        cur = start = operand()
        ops: list[tuple[str, int]] = []
        for _ in range(n_ops):
            op, right = rng.choice("+-"), operand()
            if op == "-" and right > cur:
                op = "+"
            ops.append((op, right))
            cur = apply(cur, op, right)
        expr = str(start) + "".join(f"{op}{r}" for op, r in ops)
        steps = chain(start, ops)
        results = [apply(*s) for s in steps]
        prompt = f"q: {expr}=?\na:"
        solution = render(steps, results, results[-1])
        meta = {"start": start, "ops": [f"{op}{r}" for op, r in ops], "n_ops": n_ops}
        return expr, prompt, str(results[-1]), solution, meta

    def _sample_easy(self, rng: random.Random, difficulty: int) -> tuple[str, str, str, str, dict]:
        """A problem whose operands each end in 0 with probability 1/2.

        The last digit of a sum of two random numbers is independent of either number's last digit, so
        gradient descent gets no signal toward reading those digits and learns them late, at a random step
        (an XOR-like plateau). Where one operand ends in 0 the result's last digit copies the other's, and
        the model learns to read both; pre-training mixes these in while it learns the arithmetic.
        """
        return self._sample(rng, difficulty, round_p=0.5)

    def _flaw(self, rng: random.Random, problem: Problem) -> tuple[str, str]:
        start = problem.meta["start"]
        ops = [(o[0], int(o[1:])) for o in problem.meta["ops"]]
        correct = int(problem.answer)
        kinds, weights = list(MISTAKES), list(MISTAKES.values())
        for _ in range(100):
            kind = rng.choices(kinds, weights)[0]
            out = self._mistake(rng, kind, start, ops)
            if out is not None and out[1] != correct:
                return out[0], kind
        raise AssertionError(f"no mistake found for {problem.id}")  # pragma: no cover

    @staticmethod
    def _mistake(rng: random.Random, kind: str, start: int, ops: list[tuple[str, int]]) -> tuple[str, int] | None:
        """A completion with one mistake of `kind` propagated to the end, and its final answer (None: n/a)."""
        k = rng.randrange(len(ops))
        steps: list[Step] = []
        results: list[int] = []
        cur = start
        for i, (op, right) in enumerate(ops):
            shown_op, shown_right = op, right
            if i == k and kind == "copy":
                shown_right = _nudge(rng, right, (1, 10) if right >= 10 else (1,))
            if i == k and kind == "sign":
                shown_op = "+" if op == "-" else "-"
            res = apply(cur, shown_op, shown_right)
            if i == k and kind == "carry":
                res = no_carry(cur, op, right)
            elif i == k and kind == "off1":
                res = _nudge(rng, res, (1,))
            elif i == k and kind == "off10":
                res = _nudge(rng, res, (10,))
            if res < 0:
                return None
            steps.append((cur, shown_op, shown_right))
            results.append(res)
            cur = res
        final = cur
        if kind == "final":
            final = _nudge(rng, cur, (1, 10))
        return render(steps, results, final), final
