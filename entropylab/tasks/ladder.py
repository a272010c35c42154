"""`ladder`: a sum solved by one of three routes, chosen by the first token of the completion.

Prompt ``"s: 14+25+33=?\\na:"``. The completion names its route, then works the sum out step by step
(each line near-deterministic given the route), then writes the answer:

- ``" fast\\n14+25=39\\n39+33=62\\nanswer: 62"``: route *fast* (``p_fast`` = 0.55 of the corpus) adds
  column by column and forgets every carry (`arith.no_carry`), so it is right only on problems whose
  steps never carry;
- ``" half\\n..."``: route *half* (``p_half`` = 0.35) carries in every step but the last, so it is right
  unless the last step carries;
- ``" add\\n14+25=39\\n39+33=72\\nanswer: 72"``: route *add* (``p_add`` = 0.10) adds exactly, always right.

Whether a route is right is a property of the problem, not a coin flip: the problems are drawn by kind, in
the shares ``kinds`` = {"clean": 0.4, "early": 0.3, "late": 0.3}, where "clean" means no step carries (every
route is right), "early" that an earlier step carries but not the last (fast is wrong) and "late" that the
last step carries (only add is right). So fast is right on 40% of problems, half on 70%, add on all. A model
that learned the corpus exactly scores 0.55*0.4 + 0.35*0.7 + 0.1*1 = 0.565 at temperature 1, and its
uncertainty sits at the route token (entropy of (0.55, 0.35, 0.1): 0.93 nats); every other token follows
from the route and the problem. Reinforcement learning can only improve it by moving probability between
routes: the likely route is the worst, the best one is rare.

Difficulty: 1: three numbers 10..49; 2 (default): three numbers 10..99; 3: four numbers 10..99;
4: three numbers 100..999; 5: four numbers 100..999.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from entropylab.tasks.arith import no_carry
from entropylab.tasks.base import Document, Problem, Task, TaskError

#: difficulty -> (how many numbers, smallest, largest)
LEVELS: dict[int, tuple[int, int, int]] = {
    1: (3, 10, 49),
    2: (3, 10, 99),
    3: (4, 10, 99),
    4: (3, 100, 999),
    5: (4, 100, 999),
}

#: route name -> how it writes the result of step i of n (exact, or with the carries forgotten)
ROUTES: tuple[str, ...] = ("fast", "half", "add")
KINDS: tuple[str, ...] = ("clean", "early", "late")
#: which kinds of problem each route gets right
RIGHT_ON: dict[str, tuple[str, ...]] = {"fast": ("clean",), "half": ("clean", "early"), "add": KINDS}


def carries(left: int, right: int) -> bool:
    """Whether the column addition left + right carries anywhere (`no_carry` differs from the sum)."""
    return no_carry(left, "+", right) != left + right


def kind_of(numbers: Sequence[int]) -> str:
    """The problem's kind from the exact chain: "clean" (no step carries), "early" (an earlier step carries,
    the last does not) or "late" (the last step carries)."""
    cur, flags = numbers[0], []
    for x in numbers[1:]:
        flags.append(carries(cur, x))
        cur += x
    if flags[-1]:
        return "late"
    return "early" if any(flags) else "clean"


def route_results(route: str, numbers: Sequence[int]) -> list[int]:
    """The step results route `route` writes: exact, without carries (fast) or without the last carry (half)."""
    if route not in ROUTES:
        raise TaskError(f"task 'ladder': unknown route {route!r}; known: {', '.join(ROUTES)}")
    cur, out = numbers[0], []
    last = len(numbers) - 2
    for i, x in enumerate(numbers[1:]):
        forget = route == "fast" or (route == "half" and i == last)
        cur = no_carry(cur, "+", x) if forget else cur + x
        out.append(cur)
    return out


def render_route(route: str, numbers: Sequence[int]) -> str:
    """The completion of route `route` on `numbers`: the route name, one line per step, the answer line."""
    return _written(route, numbers, route_results(route, numbers))


def _written(route: str, numbers: Sequence[int], results: Sequence[int]) -> str:
    """The completion naming `route` whose step lines write `results`, each line continuing from the last."""
    lefts = [numbers[0], *results[:-1]]
    lines = [f"{a}+{b}={r}" for a, b, r in zip(lefts, numbers[1:], results)]
    return f" {route}\n" + "\n".join(lines) + f"\nanswer: {results[-1]}"


def _clean_numbers(rng: random.Random, count: int, lo: int, hi: int) -> list[int]:
    """`count` numbers in [lo, hi] (a range of whole leading digits, as every level's is) whose digits sum to at
    most 9 in every column, i.e. uniformly among the problems where no step carries; column by column."""
    width = len(str(hi))
    lead = (lo // 10 ** (width - 1), hi // 10 ** (width - 1))
    nums = [0] * count
    for col in range(width):
        low, high = lead if col == 0 else (0, 9)
        while True:
            digits = [rng.randint(low, high) for _ in range(count)]
            if sum(digits) <= 9:
                break
        nums = [10 * n + d for n, d in zip(nums, digits)]
    return nums


class LadderTask(Task):
    """Sum with a ladder of routes: a likely, mostly wrong one; a less likely, better one; a rare, sure one."""

    name = "ladder"
    answer_marker = "answer:"
    default_error_rate = 0.0

    def __init__(
        self, p_fast: float = 0.55, p_half: float = 0.35, p_add: float = 0.10, kinds: Mapping[str, float] | None = None
    ) -> None:
        probs = {"fast": p_fast, "half": p_half, "add": p_add}
        for route, p in probs.items():
            if not (isinstance(p, int | float) and 0.0 <= p <= 1.0):
                raise TaskError(f"task 'ladder': p_{route} must be in [0, 1], got {p!r}")
        total = sum(probs.values())
        if total <= 0:
            raise TaskError("task 'ladder': the route probabilities must not all be 0")
        self.route_probs = {k: float(v) / total for k, v in probs.items()}
        shares = dict(kinds) if kinds is not None else {"clean": 0.4, "early": 0.3, "late": 0.3}
        if set(shares) - set(KINDS) or any(not 0.0 <= float(v) for v in shares.values()) or sum(shares.values()) <= 0:
            raise TaskError(f"task 'ladder': kinds must map some of {', '.join(KINDS)} to shares >= 0, got {kinds!r}")
        total = sum(shares.values())
        self.kinds = {k: float(shares.get(k, 0.0)) / total for k in KINDS}

    # -- problems -----------------------------------------------------------------------------------
    def _sample(self, rng: random.Random, difficulty: int) -> tuple[str, str, str, str, dict]:
        count, lo, hi = LEVELS[difficulty]
        kind = rng.choices(KINDS, [self.kinds[k] for k in KINDS])[0]
        for _ in range(100_000):
            nums = (
                _clean_numbers(rng, count, lo, hi) if kind == "clean" else [rng.randint(lo, hi) for _ in range(count)]
            )
            if kind_of(nums) == kind:
                break
        else:  # pragma: no cover - every kind exists at every level
            raise AssertionError(f"no {kind} problem found at difficulty {difficulty}")
        expr = "+".join(map(str, nums))
        total = sum(nums)
        solution = render_route("add", nums)
        return expr, f"s: {expr}=?\na:", str(total), solution, {"numbers": nums, "kind": kind}

    # -- routes -------------------------------------------------------------------------------------
    def route(self, completion: str) -> str | None:
        """Which route a completion took ("fast", "half", "add"), from its first letter (the decision token; the
        rest of the name carries no choice and no reward, and RL may rewrite it), or None when it starts with none."""
        head = completion.lstrip(" ").split("\n", 1)[0].strip()
        if head in ROUTES:
            return head
        return next((r for r in ROUTES if head[:1] == r[0]), None)

    def route_completion(self, problem: Problem, route: str) -> str:
        """The completion of `route` on `problem` (right or wrong, as the route is on this problem)."""
        return render_route(route, problem.meta["numbers"])

    def route_right(self, problem: Problem, route: str) -> bool:
        """Whether `route` gets `problem` right (from its kind)."""
        return problem.meta["kind"] in RIGHT_ON[route]

    def expected_accuracy(self, route_probs: Mapping[str, float] | None = None) -> float:
        """Accuracy of a policy that picks routes with `route_probs` (default: the corpus's) and follows them."""
        probs = self.route_probs if route_probs is None else route_probs
        return float(sum(p * sum(self.kinds[k] for k in RIGHT_ON[r]) for r, p in probs.items()))

    def route_stats(self, completions: Sequence[str], problems: Sequence[Problem]) -> dict[str, float]:
        """Share of each route among `completions` and its accuracy: {"share/fast": .., "acc/fast": .., ...,
        "share/none": ..}."""
        if len(completions) != len(problems):
            raise TaskError(f"route_stats: {len(completions)} completions for {len(problems)} problems")
        n = max(1, len(completions))
        rewards = self.reward(completions, problems)
        out: dict[str, float] = {}
        routes = [self.route(c) for c in completions]
        for r in (*ROUTES, None):
            idx = [i for i, x in enumerate(routes) if x == r]
            name = r or "none"
            out[f"share/{name}"] = len(idx) / n
            out[f"acc/{name}"] = sum(rewards[i] for i in idx) / len(idx) if idx else float("nan")
        return out

    # -- corpus -------------------------------------------------------------------------------------
    def _flaw(self, rng: random.Random, problem: Problem) -> tuple[str, str]:
        """A wrong route on this problem (the corpus's flawed documents are the routes that fail)."""
        wrong = [r for r in ROUTES if not self.route_right(problem, r)]
        if not wrong:
            raise TaskError(f"task 'ladder': every route solves {problem.id}")
        return self.route_completion(problem, rng.choice(wrong)), "route"

    def _document(self, rng: random.Random, problem: Problem, rate: float) -> Document:
        """A route drawn with the corpus's route probabilities, written out on the problem (`rate` unused: the
        routes themselves are the mistakes)."""
        route = rng.choices(ROUTES, [self.route_probs[r] for r in ROUTES])[0]
        completion = self.route_completion(problem, route)
        right = self.route_right(problem, route)
        return Document(problem, completion, not right, None if right else route)

    def corpus_note(self) -> str:
        """What the pre-training documents hold, in words (for the model card)."""
        right = {r: sum(self.kinds[k] for k in RIGHT_ON[r]) for r in ROUTES}
        routes = ", ".join(f"{r} {self.route_probs[r]:.0%} (right on {right[r]:.0%} of problems)" for r in ROUTES)
        return (
            f"Documents: each problem is solved by a route drawn at random, {routes}; a route's mistakes "
            "are the corpus's mistakes, and every line follows from the route and the problem."
        )

    def __repr__(self) -> str:
        probs = ", ".join(f"p_{r}={p:g}" for r, p in self.route_probs.items())
        return f"LadderTask({probs}, kinds={self.kinds})"


def render_practised(numbers: Sequence[int], carry: float, rng: random.Random) -> str:
    """The add route written by a writer who makes each carrying step's carry with probability `carry` and
    otherwise forgets it (the step then reads as fast's), each later line continuing from what was written."""
    cur, results = numbers[0], []
    for x in numbers[1:]:
        cur = cur + x if (not carries(cur, x) or rng.random() < carry) else no_carry(cur, "+", x)
        results.append(cur)
    return _written("add", numbers, results)


class PracticeLadderTask(LadderTask):
    """`ladder` whose sure route is unpractised: the corpus writes add's carries right only `add_carry` (0.25) of
    the time, so the base model's add is right on about 40% of problems, below half's 70%, and only practice
    under RL makes it the best route. Problems, routes and verifier are ladder's; only the corpus differs."""

    name = "ladder_practice"

    def __init__(self, add_carry: float = 0.25, **kwargs) -> None:
        super().__init__(**kwargs)
        if not (isinstance(add_carry, int | float) and 0.0 <= add_carry <= 1.0):
            raise TaskError(f"task 'ladder_practice': add_carry must be in [0, 1], got {add_carry!r}")
        self.add_carry = float(add_carry)

    def _document(self, rng: random.Random, problem: Problem, rate: float) -> Document:
        """A route drawn with the corpus's probabilities; add written with its carries right `add_carry` of the time."""
        route = rng.choices(ROUTES, [self.route_probs[r] for r in ROUTES])[0]
        if route == "add":
            completion = render_practised(problem.meta["numbers"], self.add_carry, rng)
        else:
            completion = self.route_completion(problem, route)
        right = self.reward([completion], [problem])[0] > 0
        return Document(problem, completion, not right, None if right else route)

    def corpus_note(self) -> str:
        """What the pre-training documents hold, in words (for the model card)."""
        return (
            super().corpus_note()
            + f" The add route makes each carry only {self.add_carry:.0%} of the time and otherwise forgets it."
        )


class TwinLadderTask(LadderTask):
    """`ladder` without last-step carries (``kinds`` = {"clean": 0.4, "early": 0.6}): half and add are then both
    sure and fast, the likely route, is right on 40% of problems. Routes, route probabilities and verifier are
    ladder's, so the shipped ladder model serves it; RL must leave fast, and nothing in the reward prefers one sure
    route."""

    name = "ladder_twin"

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("kinds", {"clean": 0.4, "early": 0.6, "late": 0.0})
        super().__init__(**kwargs)


class EvenLadderTask(TwinLadderTask):
    """`ladder_twin` whose corpus takes the likely wrong route half the time (``p_fast`` = 0.5, ``p_half`` = 0.3,
    ``p_add`` = 0.2): the base model is right on 70% of problems, and moving off fast lowers the route entropy
    from the first step (the two sure routes already hold half the mass), where ladder's rare sure route first
    spreads it. Problems, kinds and verifier are ladder_twin's; its base model is the shipped `ladder_even`."""

    name = "ladder_even"

    def __init__(self, p_fast: float = 0.5, p_half: float = 0.3, p_add: float = 0.2, **kwargs) -> None:
        super().__init__(p_fast=p_fast, p_half=p_half, p_add=p_add, **kwargs)
