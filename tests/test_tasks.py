"""Synthetic tasks: registry, determinism, disjoint splits, difficulty, verifier, corpus, alphabet."""

from __future__ import annotations

import pytest

from entropylab.errors import EntropylabError
from entropylab.tasks import ALPHABET, TASKS, get_task, list_tasks, mixed_corpus
from entropylab.tasks.arith import no_carry
from entropylab.tasks.base import TaskError, normalize_answer

SYNTHETIC = ["arith", "fork"]


def test_registry_lists_and_rejects_unknown() -> None:
    assert {"arith", "fork", "ladder", "math"} <= set(list_tasks()) == set(TASKS)
    with pytest.raises(
        EntropylabError, match="known tasks: arith, fork, ladder, ladder_even, ladder_practice, ladder_twin, math"
    ):
        get_task("nope")


@pytest.mark.parametrize("name", SYNTHETIC)
def test_problems_deterministic_and_seeded(name: str) -> None:
    task = get_task(name)
    a, b = task.problems("val", 50), task.problems("val", 50)
    assert a == b
    assert [p.id for p in a][:2] == [f"{name}-val-000000", f"{name}-val-000001"]
    c = task.problems("val", 50, seed=1)
    assert [p.prompt for p in a] != [p.prompt for p in c]
    assert c[0].id == f"{name}-val-s1-000000"


@pytest.mark.parametrize("name", SYNTHETIC)
def test_default_sizes_and_disjoint_splits(name: str) -> None:
    task = get_task(name)
    splits = {s: task.problems(s) for s in ("train", "val", "test")}
    assert {s: len(v) for s, v in splits.items()} == {"train": 5000, "val": 200, "test": 500}
    prompts = {s: {p.prompt for p in v} for s, v in splits.items()}
    for s, v in splits.items():
        assert len(prompts[s]) == len(v)  # deduplicated
    assert not prompts["train"] & prompts["val"]
    assert not prompts["train"] & prompts["test"]
    assert not prompts["val"] & prompts["test"]
    # other seeds and difficulties keep the same ownership
    other = {p.prompt for p in task.problems("train", 2000, seed=7)}
    assert not other & prompts["test"]


@pytest.mark.parametrize("name", SYNTHETIC)
def test_solutions_verify_and_alphabet_and_budget(name: str) -> None:
    task = get_task(name)
    alphabet = set(ALPHABET)
    for d in (1, 2, 3, 4, 5):
        probs = task.problems("test", 100, difficulty=d)
        for p in probs:
            assert task.verify(p.solution, p.answer) == 1.0
            assert set(p.prompt + p.solution) <= alphabet
            assert p.prompt.endswith("a:") and p.solution.endswith(f"answer: {p.answer}")
            assert len(p.prompt + p.solution) < (200 if d <= 2 else 250)
            assert p.meta["difficulty"] == d


@pytest.mark.parametrize("name", SYNTHETIC)
def test_difficulty_changes_lengths(name: str) -> None:
    task = get_task(name)
    means = []
    for d in (1, 2, 3, 5):
        probs = task.problems("test", 200, difficulty=d)
        means.append(sum(len(p.prompt + p.solution) for p in probs) / len(probs))
    assert means == sorted(means) and means[0] < means[-1] - 20
    with pytest.raises(TaskError, match="difficulty"):
        task.problems("test", 5, difficulty=9)
    with pytest.raises(TaskError, match="unknown split"):
        task.problems("dev", 5)


def test_arith_format_example() -> None:
    p = get_task("arith").problems("test", 1)[0]
    assert p.prompt.startswith("q: ") and p.prompt.endswith("=?\na:")
    lines = p.solution.strip().split("\n")
    assert len(lines) - 1 == p.meta["n_ops"]
    assert 2 <= p.meta["n_ops"] <= 4


def test_no_carry_mistakes() -> None:
    assert no_carry(37, "+", 48) == 75
    assert no_carry(52, "-", 17) == 45
    assert no_carry(5, "+", 97) == 92
    assert no_carry(12, "+", 34) == 46  # no carry: same as correct


@pytest.mark.parametrize(
    ("completion", "answer", "expected"),
    [
        (" 1+2=3\nanswer: 3", "3", 1.0),
        (" 1+2=3\n3", "3", 0.0),  # no marker
        ("", "3", 0.0),
        ("answer: 4\nanswer: 3", "3", 1.0),  # last marker wins
        ("answer: 3\nanswer: 4", "3", 0.0),
        ("answer:    3   ", "3", 1.0),
        ("answer:3", "3", 1.0),
        ("answer: 003", "3", 1.0),
        ("answer: -7", "-7", 1.0),
        ("answer: -07", "-7", 1.0),
        ("answer: 7", "-7", 0.0),
        ("answer: +7", "7", 1.0),
        ("answer: 3.", "3", 1.0),
        ("answer: 3\nq: 5+5=?\na: 5+5=10", "3", 1.0),  # junk on later lines ignored
        ("answer: 3 because", "3", 0.0),  # junk on the answer line is wrong
        ("answer: 33", "3", 0.0),
        ("answer:", "3", 0.0),
    ],
)
def test_verifier_edge_cases(completion: str, answer: str, expected: float) -> None:
    assert get_task("arith").verify(completion, answer) == expected


def test_extract_and_normalize() -> None:
    task = get_task("arith")
    assert task.extract_answer("answer: 1\nanswer:  42 \n") == "42"
    assert task.extract_answer("nothing") is None
    assert normalize_answer(" 0042 ") == "42" and normalize_answer("-0") == "0"


def test_reward_batch() -> None:
    task = get_task("arith")
    probs = task.problems("test", 3)
    comps = [probs[0].solution, "answer: x", probs[2].solution]
    assert task.reward(comps, probs) == [1.0, 0.0, 1.0]
    with pytest.raises(TaskError):
        task.reward(comps[:2], probs)


def test_arith_corpus_error_rate_and_flaws() -> None:
    task = get_task("arith")
    docs = task.documents(3000, seed=3, error_rate=0.3)
    rate = sum(d.flawed for d in docs) / len(docs)
    assert 0.27 < rate < 0.33
    kinds = {d.mistake for d in docs if d.flawed}
    assert {"carry", "off1", "off10", "copy", "sign"} <= kinds
    for d in docs:
        assert task.verify(d.completion, d.problem.answer) == (0.0 if d.flawed else 1.0)
        assert d.text.startswith(d.problem.prompt)
        assert set(d.text) <= set(ALPHABET)
        if d.flawed and d.mistake != "final":
            # a flawed solution looks like a solution: same number of lines, written answer = last result
            lines = d.completion.strip().split("\n")
            assert len(lines) == d.problem.meta["n_ops"] + 1
            assert lines[-1] == "answer: " + lines[-2].split("=")[-1]
    texts = task.corpus(3000, seed=3, error_rate=0.3)
    assert texts == [d.text for d in docs]
    assert texts == task.corpus(3000, seed=3, error_rate=0.3)
    assert texts != task.corpus(3000, seed=4, error_rate=0.3)
    assert all(not d.flawed for d in task.documents(200, error_rate=0.0))
    assert all(d.flawed for d in task.documents(200, error_rate=1.0))
    with pytest.raises(TaskError):
        task.corpus(10, error_rate=1.5)


def test_corpus_uses_train_split_only() -> None:
    task = get_task("arith")
    test_prompts = {p.prompt for p in task.problems("test")}
    docs = task.documents(2000, difficulty=[1, 2, 3])
    assert not {d.problem.prompt for d in docs} & test_prompts
    assert {d.problem.meta["difficulty"] for d in docs} == {1, 2, 3}
    assert {d.problem.meta["split"] for d in docs} == {"train"}


def test_fork_routes_and_probabilities() -> None:
    task = get_task("fork")
    p = task.problems("test", 1)[0]
    assert p.solution.startswith(" way: add\n") and task.route(p.solution) == "add"
    docs = task.documents(4000, seed=1)
    routes = [task.route(d.completion) for d in docs]
    assert None not in routes
    share_guess = routes.count("guess") / len(routes)
    assert 0.67 < share_guess < 0.73
    guess_docs = [d for d in docs if d.mistake == "guess"]
    right = sum(task.verify(d.completion, d.problem.answer) for d in guess_docs) / len(guess_docs)
    assert 0.07 < right < 0.13
    for d in docs:
        assert task.verify(d.completion, d.problem.answer) == (0.0 if d.flawed else 1.0)
        if d.mistake is None:
            assert d.completion == d.problem.solution
    # the guesses are scattered: many distinct answers per problem
    offsets = {int(task.extract_answer(d.completion)) - int(d.problem.answer) for d in guess_docs}
    assert offsets == set(range(-5, 5))


def test_fork_parameters_and_errors() -> None:
    task = get_task("fork", p_guess=0.0)
    docs = task.documents(300)
    assert all(task.route(d.completion) == "add" and not d.flawed for d in docs)
    flawed = get_task("fork", p_guess=0.0).documents(300, error_rate=1.0)
    assert all(d.flawed and task.route(d.completion) == "add" for d in flawed)
    with pytest.raises(TaskError, match="p_guess"):
        get_task("fork", p_guess=2.0)


def test_mixed_corpus() -> None:
    docs = mixed_corpus({"arith": 1, "fork": 1}, 400, seed=2)
    assert len(docs) == 400
    assert sum(d.startswith("q: ") for d in docs) == 200 and sum(d.startswith("s: ") for d in docs) == 200
    assert docs == mixed_corpus({"arith": 1, "fork": 1}, 400, seed=2)
    with pytest.raises(TaskError):
        mixed_corpus({}, 10)


def test_arith_warmup_problems_have_round_operands():
    """`easy` problems: operands end in 0 about half the time (ordinary ones: a tenth), same splits and checks."""
    task = get_task("arith")
    easy = task.problems("train", 400, seed=2, easy=True)
    plain = task.problems("train", 400, seed=2)

    def round_share(probs):
        ops = [int(p.meta["start"]) for p in probs] + [int(o[1:]) for p in probs for o in p.meta["ops"]]
        return sum(x % 10 == 0 for x in ops) / len(ops)

    assert 0.4 < round_share(easy) < 0.65 and round_share(plain) < 0.2
    assert all(p.id.startswith("arith-train-s2-easy-") for p in easy)
    assert all(task.verify(p.solution, p.answer) == 1.0 for p in easy)
    assert task.problems("test", 3)[2].prompt == "q: 23+10+15+80-49=?\na:"  # evaluation problems as before
    with pytest.raises(TaskError, match="easy_share"):
        task.documents(10, easy_share=1.5)
