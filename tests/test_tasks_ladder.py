"""The `ladder` task: routes, their correctness by problem kind, the corpus's route shares, splits."""

from __future__ import annotations

import itertools
import random

import pytest

from entropylab.tasks import ALPHABET, get_task, list_tasks
from entropylab.tasks.base import TaskError
from entropylab.tasks.ladder import KINDS, RIGHT_ON, ROUTES, carries, kind_of, render_route, route_results


def test_registered_and_deterministic() -> None:
    assert "ladder" in list_tasks()
    task = get_task("ladder")
    a, b = task.problems("val", 50), task.problems("val", 50)
    assert a == b and a[0].id == "ladder-val-000000"
    assert [p.prompt for p in a] != [p.prompt for p in task.problems("val", 50, seed=1)]


def test_disjoint_splits_and_default_sizes() -> None:
    task = get_task("ladder")
    splits = {s: task.problems(s) for s in ("train", "val", "test")}
    assert {s: len(v) for s, v in splits.items()} == {"train": 5000, "val": 200, "test": 500}
    prompts = {s: {p.prompt for p in v} for s, v in splits.items()}
    assert not prompts["train"] & prompts["val"] and not prompts["train"] & prompts["test"]
    assert not prompts["val"] & prompts["test"]


def test_format_example() -> None:
    nums = [14, 25, 33]
    assert render_route("add", nums) == " add\n14+25=39\n39+33=72\nanswer: 72"
    assert render_route("fast", nums) == " fast\n14+25=39\n39+33=62\nanswer: 62"  # 9+3: the carry is forgotten
    assert render_route("half", [57, 68, 13]) == " half\n57+68=125\n125+13=138\nanswer: 138"
    assert route_results("half", [41, 38, 17]) == [79, 86]  # only the last step forgets its carry
    assert carries(9, 3) and not carries(41, 20)
    with pytest.raises(TaskError, match="unknown route"):
        route_results("guess", nums)


def test_kinds_decide_which_routes_are_right() -> None:
    """Exhaustively on small numbers: a route's answer is right exactly on the kinds it is right on."""
    rng = random.Random(0)
    seen = set()
    for nums in itertools.islice((rng.sample(range(10, 100), 3) for _ in itertools.count()), 3000):
        kind = kind_of(nums)
        seen.add(kind)
        for route in ROUTES:
            right = route_results(route, nums)[-1] == sum(nums)
            assert right == (kind in RIGHT_ON[route]), (nums, route, kind)
    assert seen == set(KINDS)
    for d in (1, 3, 4, 5):  # every level: the same rule
        for p in get_task("ladder").problems("test", 30, difficulty=d):
            for route in ROUTES:
                right = route_results(route, p.meta["numbers"])[-1] == sum(p.meta["numbers"])
                assert right == (p.meta["kind"] in RIGHT_ON[route])


@pytest.mark.parametrize("difficulty", [1, 2, 3, 4, 5])
def test_solutions_verify_alphabet_and_length(difficulty: int) -> None:
    task = get_task("ladder")
    for p in task.problems("test", 60, difficulty=difficulty):
        assert task.verify(p.solution, p.answer) == 1.0 and task.route(p.solution) == "add"
        assert p.prompt.startswith("s: ") and p.prompt.endswith("=?\na:")
        assert set(p.prompt + p.solution) <= set(ALPHABET)
        assert len(p.prompt + p.solution) < 120


def test_problem_kinds_follow_the_shares() -> None:
    task = get_task("ladder")
    probs = task.problems("test", 500)
    share = {k: sum(p.meta["kind"] == k for p in probs) / len(probs) for k in KINDS}
    assert abs(share["clean"] - 0.4) < 0.06 and abs(share["early"] - 0.3) < 0.06 and abs(share["late"] - 0.3) < 0.06
    other = get_task("ladder", kinds={"clean": 0.0, "early": 0.0, "late": 1.0}).problems("test", 50)
    assert {p.meta["kind"] for p in other} == {"late"}


def test_corpus_route_shares_and_accuracy() -> None:
    """The corpus: fast 55% (right on 40%), half 35% (70%), add 10% (always right); flawed iff wrong."""
    task = get_task("ladder")
    docs = task.documents(4000, seed=1)
    routes = [task.route(d.completion) for d in docs]
    assert None not in routes
    for route, share, acc in (("fast", 0.55, 0.4), ("half", 0.35, 0.7), ("add", 0.10, 1.0)):
        mine = [d for d, r in zip(docs, routes) if r == route]
        assert abs(len(mine) / len(docs) - share) < 0.03
        right = sum(task.verify(d.completion, d.problem.answer) for d in mine) / len(mine)
        assert abs(right - acc) < 0.05, (route, right)
    for d in docs:
        assert task.verify(d.completion, d.problem.answer) == (0.0 if d.flawed else 1.0)
        assert d.text.startswith(d.problem.prompt) and set(d.text) <= set(ALPHABET)
    assert task.expected_accuracy() == pytest.approx(0.55 * 0.4 + 0.35 * 0.7 + 0.1)
    assert task.expected_accuracy({"add": 1.0}) == pytest.approx(1.0)
    assert [d.text for d in docs] == task.corpus(4000, seed=1)


def test_route_stats_and_flaws() -> None:
    task = get_task("ladder")
    probs = task.problems("test", 40)
    comps = [task.route_completion(p, "fast") for p in probs[:20]] + [
        task.route_completion(p, "add") for p in probs[20:]
    ]
    comps[0] = " xyz\nanswer: 3"
    stats = task.route_stats(comps, probs)
    assert stats["share/add"] == 0.5 and stats["acc/add"] == 1.0
    assert stats["share/fast"] == pytest.approx(19 / 40) and stats["share/none"] == pytest.approx(1 / 40)
    assert stats["acc/fast"] == pytest.approx(sum(p.meta["kind"] == "clean" for p in probs[1:20]) / 19)
    rng = random.Random(0)
    for p in probs:
        if p.meta["kind"] != "clean":
            completion, kind = task._flaw(rng, p)
            assert kind == "route" and task.verify(completion, p.answer) == 0.0


def test_route_is_read_from_the_first_letter() -> None:
    task = get_task("ladder")
    assert task.route(" add\n1+2=3\nanswer: 3") == "add" and task.route(" ald\n1+2=3") == "add"
    assert task.route(" fas\n") == "fast" and task.route(" h") == "half" and task.route("") is None
    assert task.route(" q\nanswer: 3") is None


def test_parameters_refused() -> None:
    with pytest.raises(TaskError, match="p_fast"):
        get_task("ladder", p_fast=1.5)
    with pytest.raises(TaskError, match="kinds"):
        get_task("ladder", kinds={"odd": 1.0})
    task = get_task("ladder", p_fast=0.0, p_half=0.0, p_add=1.0)
    assert {task.route(d.completion) for d in task.documents(100)} == {"add"}


def test_practice_ladder_writes_adds_carries_at_its_rate_and_keeps_ladders_verifier():
    """`ladder_practice`: add's documents make each carry `add_carry` of the time (so add is right on about 47% of
    the corpus's problems, below half's 70%); the other routes are written as on ladder, with ladder's verifier."""
    from entropylab.models.pretraining import RECIPES
    from entropylab.tasks import TaskError, get_task
    from entropylab.tasks.ladder import carries

    task = get_task("ladder_practice")
    docs = task.documents(6000, seed=0, error_rate=0.0)
    made = total = 0
    right: dict[str, list[float]] = {r: [] for r in ("fast", "half", "add")}
    for d in docs:
        route = task.route(d.completion)
        right[route].append(float(not d.flawed))
        assert d.flawed == (task.reward([d.completion], [d.problem])[0] == 0)
        if route != "add":
            assert d.completion == task.route_completion(d.problem, route)
            continue
        nums, lines = d.problem.meta["numbers"], d.completion.split("\n")[1:-1]
        cur = nums[0]
        for x, line in zip(nums[1:], lines):
            left, written = line.split("+")[0], int(line.split("=")[1])
            assert int(left) == cur  # each line continues from what was written
            if carries(cur, x):
                total += 1
                made += written == cur + x
            cur = written
    assert abs(made / total - 0.25) < 0.03
    assert abs(sum(right["add"]) / len(right["add"]) - 0.47) < 0.05 and sum(right["half"]) / len(right["half"]) > 0.65
    assert RECIPES["ladder_practice"]["init"] == "ladder"
    with pytest.raises(TaskError, match="add_carry"):
        get_task("ladder_practice", add_carry=1.5)


def test_twin_ladder_has_two_sure_routes_and_ladders_corpus():
    """`ladder_twin`: no problem carries in its last step, so half and add are right on every problem, fast on the
    clean 40%; the routes and their probabilities are ladder's."""
    from entropylab.tasks import get_task

    task, ladder = get_task("ladder_twin"), get_task("ladder")
    problems = task.problems("test", 400, seed=0)
    assert {p.meta["kind"] for p in problems} == {"clean", "early"}
    for route in ("half", "add"):
        assert all(task.route_right(p, route) for p in problems)
        assert task.reward([task.route_completion(p, route) for p in problems], problems) == [1.0] * len(problems)
    clean = sum(p.meta["kind"] == "clean" for p in problems) / len(problems)
    assert abs(clean - 0.4) < 0.07
    assert task.route_probs == ladder.route_probs
    assert task.expected_accuracy() == pytest.approx(0.55 * 0.4 + 0.35 + 0.10)


def test_even_ladder_is_twin_with_fast_at_even_odds():
    """`ladder_even`: ladder_twin's kinds (half and add both sure), with the corpus taking fast half the time."""
    from collections import Counter

    task = get_task("ladder_even")
    assert task.kinds == get_task("ladder_twin").kinds
    assert task.route_probs == pytest.approx({"fast": 0.5, "half": 0.3, "add": 0.2})
    assert task.expected_accuracy() == pytest.approx(0.5 * 0.4 + 0.5)
    docs = task.documents(3000, seed=0, error_rate=0.0)
    taken = Counter(task.route(d.completion) for d in docs)
    assert abs(taken["fast"] / 3000 - 0.5) < 0.03 and abs(taken["add"] / 3000 - 0.2) < 0.025
