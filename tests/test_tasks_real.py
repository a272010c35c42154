"""Real-data loaders (GSM8K, MATH, verl), extract_boxed, MathTask verification, chat templates, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from entropylab.errors import EntropylabError
from entropylab.tasks import MathTask, apply_chat_template, extract_boxed, get_task, load_problems
from entropylab.tasks.real import TaskDataError, answers_match, normalize_math

GSM8K = [
    {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3+4=<<3+4=7>>7\n#### 7"},
    {"question": "A box holds 1,200 pens. How many?", "answer": "It holds 1,200.\n#### 1,200"},
]
MATH = [
    {
        "problem": "What is $\\frac{1}{2}+\\frac{1}{2}$?",
        "solution": "We get $\\boxed{1}$.",
        "level": "Level 2",
        "type": "Algebra",
    },
    {"problem": "Simplify.", "solution": "So $\\boxed{\\frac{\\sqrt{2}}{2}}$.", "level": "Level 5", "type": "Geo"},
]
VERL = [
    {
        "data_source": "openai/gsm8k",
        "prompt": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 6*7? Output the final answer after ####."},
        ],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": "42"},
        "extra_info": {"split": "test", "index": 0, "answer": "6*7=42\n#### 42"},
    }
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_gsm8k_jsonl(tmp_path: Path) -> None:
    probs = load_problems(write_jsonl(tmp_path / "gsm.jsonl", GSM8K))
    assert [p.answer for p in probs] == ["7", "1,200"]
    assert probs[0].prompt == GSM8K[0]["question"]
    assert "<<" not in probs[0].solution and probs[0].solution.endswith("#### 7")
    assert probs[0].id == "gsm-000000" and probs[0].meta["format"] == "gsm8k"
    task = MathTask(probs)
    assert task.verify("so 1200 pens\n#### 1200", probs[1].answer) == 1.0
    assert task.verify("#### 1,200.", probs[1].answer) == 1.0
    assert task.verify("#### 1201", probs[1].answer) == 0.0
    assert load_problems(tmp_path / "gsm.jsonl", limit=1) == probs[:1]


def test_math_parquet_and_json_array(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(MATH), tmp_path / "math.parquet")
    probs = load_problems(tmp_path / "math.parquet")
    assert [p.answer for p in probs] == ["1", "\\frac{\\sqrt{2}}{2}"]
    assert probs[1].meta["difficulty"] == 5 and probs[1].meta["type"] == "Geo"
    (tmp_path / "math.json").write_text(json.dumps(MATH, indent=1))
    assert [p.answer for p in load_problems(tmp_path / "math.json")] == ["1", "\\frac{\\sqrt{2}}{2}"]
    task = get_task("math", data=tmp_path / "math.parquet", use_math_verify=False)
    test_and_rest = sum(len(task.problems(s)) for s in ("train", "val", "test"))
    assert test_and_rest == 2
    split_task = MathTask({"test": probs})
    assert split_task.problems("test", difficulty=5) == probs[1:]
    with pytest.raises(EntropylabError, match="no data for split 'train'"):
        split_task.problems("train")


def test_verl_format(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(VERL), tmp_path / "verl.parquet")
    (p,) = load_problems(tmp_path / "verl.parquet")
    assert p.answer == "42" and p.prompt.startswith("What is 6*7?")
    assert p.meta["data_source"] == "openai/gsm8k" and p.meta["format"] == "verl"
    assert p.meta["messages"][0]["role"] == "system"
    assert p.solution.endswith("#### 42")
    (q,) = load_problems(write_jsonl(tmp_path / "verl.jsonl", VERL))
    assert q.answer == "42"


def test_custom_keys(tmp_path: Path) -> None:
    rows = [{"q": "1+1?", "gold": 2}, {"q": "2+2?", "gold": "\\boxed{4}"}]
    probs = load_problems(write_jsonl(tmp_path / "c.jsonl", rows), prompt_key="q", answer_key="gold")
    assert [(p.prompt, p.answer) for p in probs] == [("1+1?", "2"), ("2+2?", "4")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{42}", "42"),
        ("a \\boxed{1} then \\boxed{2}", "2"),
        ("\\boxed{\\frac{a}{b^{2}}}", "\\frac{a}{b^{2}}"),
        ("\\boxed{ {x} }", "{x}"),
        ("\\fbox{7}", "7"),
        ("\\boxed 5$", "5"),
        ("\\boxed{1} and \\boxed{2", "1"),  # unbalanced last one: the earlier one
        ("no box", None),
    ],
)
def test_extract_boxed(text: str, expected: str | None) -> None:
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    ("pred", "gold", "ok"),
    [
        ("$42$", "42", True),
        ("42.", "42", True),
        ("1,000", "1000", True),
        ("\\left( 1, 2 \\right)", "(1,2)", True),
        ("5 \\text{ cm}", "5cm", True),
        ("\\dfrac{1}{2}", "\\frac{1}{2}", True),
        ("2.50", "2.5", True),
        ("3.0", "3", True),
        ("-0", "0", True),
        ("43", "42", False),
        ("\\frac{1}{3}", "\\frac{1}{2}", False),
    ],
)
def test_normalised_match(pred: str, gold: str, ok: bool) -> None:
    assert answers_match(pred, gold, use_math_verify=False) is ok
    assert normalize_math(" 1, 234 ") == "1234"


def test_math_task_extraction() -> None:
    task = MathTask(use_math_verify=False)
    assert task.extract_answer("so \\boxed{3} wait \\boxed{4}") == "4"
    assert task.extract_answer("#### 12\n") == "12"
    assert task.extract_answer("Answer: 9") == "9"
    assert task.extract_answer("nothing") is None
    assert task.verify("The answer is $\\boxed{\\dfrac{1}{2}}$.", "\\frac{1}{2}") == 1.0
    assert task.verify("no answer", "1") == 0.0
    with pytest.raises(EntropylabError, match="no data"):
        task.problems("test")


def test_apply_chat_template() -> None:
    from entropylab.models import build_tokenizer

    tok = build_tokenizer()  # a fresh one: the test sets its chat template
    assert apply_chat_template(tok, "what is 2") == "what is 2"
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    assert apply_chat_template(tok, "what is 2") == "<|user|>what is 2\n<|assistant|>"
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert apply_chat_template(tok, msgs) == "<|system|>be brief\n<|user|>hi\n<|assistant|>"


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(TaskDataError, match="missing.jsonl: no such file"):
        load_problems(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(TaskDataError, match="empty.jsonl: no records"):
        load_problems(tmp_path / "empty.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"question": "a", "answer": "#### 1"}\n{"question": \n')
    with pytest.raises(TaskDataError, match="bad.jsonl, line 2: invalid JSON"):
        load_problems(tmp_path / "bad.jsonl")
    write_jsonl(tmp_path / "cols.jsonl", [{"text": "x", "label": "1"}])
    with pytest.raises(TaskDataError, match=r"columns found: \['label', 'text'\].*prompt_key=") as err:
        load_problems(tmp_path / "cols.jsonl")
    assert "cols.jsonl" in str(err.value)
    with pytest.raises(TaskDataError, match="no column 'gold' \\(answer_key\\)"):
        load_problems(tmp_path / "cols.jsonl", prompt_key="text", answer_key="gold")
    write_jsonl(tmp_path / "gt.jsonl", [{"prompt": "x", "reward_model": {"style": "rule"}}])
    with pytest.raises(TaskDataError, match="gt.jsonl, line 1: .*ground_truth"):
        load_problems(tmp_path / "gt.jsonl")
    (tmp_path / "notobj.jsonl").write_text("[1, 2]\n")
    with pytest.raises(TaskDataError, match="line 1: expected a JSON object"):
        load_problems(tmp_path / "notobj.jsonl")
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(TaskDataError, match="x.parquet: cannot read as Parquet"):
        load_problems(tmp_path / "x.parquet")
    assert issubclass(TaskDataError, EntropylabError)
