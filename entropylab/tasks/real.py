"""Real math data from local files: GSM8K, MATH and verl Parquet/JSONL, with a verifier and chat templates.

Formats recognised (by column names, or chosen with ``prompt_key``/``answer_key``):
- GSM8K: ``question``, ``answer`` (reasoning then ``#### 42``);
- MATH: ``problem``, ``solution`` with ``\\boxed{...}`` (or an ``answer`` column);
- verl: ``prompt`` = chat messages, ``reward_model`` = ``{"ground_truth": ...}``, ``data_source``.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from entropylab.tasks.base import SPLITS, Problem, Task, TaskError, split_of


class TaskDataError(TaskError):
    """A data file that cannot be read as problems; the message names the file (and line)."""


# -- answers --------------------------------------------------------------------------------------


def extract_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), nested braces allowed; None when absent."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)", text)]
    for i in reversed(starts):
        j = i
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            depth = 0
            for k in range(j, len(text)):
                if text[k] == "{":
                    depth += 1
                elif text[k] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[j + 1 : k].strip()
            continue  # unbalanced: try an earlier one
        m = re.match(r"\s*([^\s$]+)", text[i:])  # \boxed 5
        if m and j > i:
            return m.group(1)
    return None


def extract_gsm8k(text: str) -> str | None:
    """The text after the last ``####`` (first line), or None."""
    i = text.rfind("####")
    if i < 0:
        return None
    rest = text[i + 4 :].strip().split("\n", 1)[0].strip()
    return rest or None


def _strip_command(s: str, name: str) -> str:
    """``\\name{x}`` -> ``x`` for every occurrence (nested braces allowed)."""
    tag = "\\" + name + "{"
    while (i := s.find(tag)) >= 0:
        depth, k = 0, i + len(tag) - 1
        for k in range(i + len(tag) - 1, len(s)):
            depth += {"{": 1, "}": -1}.get(s[k], 0)
            if depth == 0:
                break
        else:
            return s
        s = s[:i] + s[i + len(tag) : k] + s[k + 1 :]
    return s


def normalize_math(text: str) -> str:
    """Normalised answer for exact match: no spaces, ``$``, trailing ``.``, ``\\left``/``\\right``, ``\\text{}``, digit commas."""
    s = text.strip()
    for name in ("text", "textbf", "mathrm", "mbox"):
        s = _strip_command(s, name)
    s = s.replace("\\left", "").replace("\\right", "").replace("$", "")
    s = s.replace("\\!", "").replace("\\,", "").replace("\\;", "").replace("\\ ", "")
    s = s.replace("dfrac", "frac").replace("tfrac", "frac").replace("^\\circ", "").replace("^{\\circ}", "")
    s = re.sub(r"\s+", "", s).rstrip(".")
    while re.search(r"\d,\d{3}(?!\d)", s):
        s = re.sub(r"(\d),(\d{3})(?!\d)", r"\1\2", s)
    if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", s):
        try:
            d = Decimal(s)
            s = str(d.quantize(Decimal(1))) if d == d.to_integral_value() else str(d.normalize())
        except InvalidOperation:  # pragma: no cover
            pass
        if s == "-0":
            s = "0"
    return s


def _math_verify(gold: str, pred: str) -> bool | None:
    """math_verify's judgement when the package is importable and parses both, else None."""
    try:
        from math_verify import parse, verify
    except ImportError:
        return None
    try:
        g, p = parse(f"${gold}$"), parse(f"${pred}$")
        if not g or not p:
            return None
        return bool(verify(g, p))
    except Exception:  # noqa: BLE001 - any parser failure falls back to exact match
        return None


def answers_match(pred: str, gold: str, *, use_math_verify: bool = True) -> bool:
    """Normalised exact match, then math_verify's equivalence when available."""
    if normalize_math(pred) == normalize_math(gold):
        return True
    if use_math_verify:
        return bool(_math_verify(gold, pred))
    return False


# -- reading files ----------------------------------------------------------------------------------


def _read_records(path: Path) -> list[tuple[int, dict]]:
    """(line or row number, record) pairs from JSONL, a JSON array or Parquet."""
    if not path.exists():
        raise TaskDataError(f"{path}: no such file")
    if path.is_dir():
        raise TaskDataError(f"{path}: is a directory, expected a .jsonl, .json or .parquet file")
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            rows = pq.read_table(path).to_pylist()
        except Exception as e:  # noqa: BLE001
            raise TaskDataError(f"{path}: cannot read as Parquet: {e}") from None
        return [(i + 1, r) for i, r in enumerate(rows)]
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise TaskDataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise TaskDataError(f"{path}, line {e.lineno}: invalid JSON: {e.msg}") from None
        out = list(enumerate(rows, 1))
    else:
        out = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append((lineno, json.loads(line)))
            except json.JSONDecodeError as e:
                raise TaskDataError(f"{path}, line {lineno}: invalid JSON: {e.msg}") from None
    for lineno, rec in out:
        if not isinstance(rec, dict):
            raise TaskDataError(f"{path}, line {lineno}: expected a JSON object, got {type(rec).__name__}")
    return out


def _prompt_text(value: Any) -> tuple[str, list | None]:
    """Prompt text from a string or chat messages (the last user message), and the messages if any."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, Sequence) and value and all(isinstance(m, Mapping) for m in value):
        msgs = [dict(m) for m in value]
        users = [m.get("content", "") for m in msgs if m.get("role") == "user"]
        return (users[-1] if users else msgs[-1].get("content", "")), msgs
    raise ValueError(f"expected a string or a list of chat messages, got {type(value).__name__}")


def _answer_text(value: Any) -> str:
    """A canonical answer from a string, number, ``{"ground_truth": ...}``, ``#### x`` or ``\\boxed{x}`` text."""
    if isinstance(value, Mapping):
        if "ground_truth" not in value:
            raise ValueError(f"answer object has no 'ground_truth' (keys: {sorted(value)})")
        value = value["ground_truth"]
    if isinstance(value, (list, tuple)) and value:
        value = value[0]
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected an answer, got {value!r}")
    s = str(value)
    return extract_gsm8k(s) or extract_boxed(s) or s.strip()


def _detect(columns: set[str]) -> str | None:
    if {"prompt", "reward_model"} <= columns:
        return "verl"
    if {"question", "answer"} <= columns:
        return "gsm8k"
    if "problem" in columns and ({"solution", "answer"} & columns):
        return "math"
    return None


_KEYS = {"verl": ("prompt", "reward_model"), "gsm8k": ("question", "answer"), "math": ("problem", None)}


def load_problems(
    path: str | Path, *, prompt_key: str | None = None, answer_key: str | None = None, limit: int | None = None
) -> list[Problem]:
    """Problems from a local JSONL/JSON/Parquet file in GSM8K, MATH or verl format (or the named columns)."""
    path = Path(path)
    records = _read_records(path)
    if not records:
        raise TaskDataError(f"{path}: no records (empty file)")
    columns = set().union(*(r.keys() for _, r in records[:100]))
    fmt = _detect(columns)
    if (prompt_key is None or answer_key is None) and fmt is None:
        raise TaskDataError(
            f"{path}: cannot tell which columns hold the prompt and the answer; columns found: "
            f"{sorted(columns)}; expected GSM8K (question, answer), MATH (problem, solution) or verl "
            f"(prompt, reward_model), or pass prompt_key=... and answer_key=..."
        )
    pkey = prompt_key or _KEYS[fmt][0]
    akey = answer_key or _KEYS[fmt][1] or ("answer" if "answer" in columns else "solution")
    for key, opt in ((pkey, "prompt_key"), (akey, "answer_key")):
        if key not in columns:
            raise TaskDataError(f"{path}: no column {key!r} ({opt}); columns found: {sorted(columns)}")
    problems: list[Problem] = []
    for i, (lineno, rec) in enumerate(records):
        if limit is not None and len(problems) >= limit:
            break
        where = f"{path}, line {lineno}" if path.suffix != ".parquet" else f"{path}, row {lineno}"
        try:
            prompt, messages = _prompt_text(rec[pkey])
            answer = _answer_text(rec[akey])
        except KeyError as e:
            raise TaskDataError(f"{where}: missing column {e.args[0]!r}") from None
        except ValueError as e:
            raise TaskDataError(f"{where}: {e}") from None
        problems.append(_problem(path, i, rec, prompt, answer, messages, fmt, akey))
    return problems


def _problem(
    path: Path, i: int, rec: dict, prompt: str, answer: str, messages: list | None, fmt: str | None, akey: str
) -> Problem:
    """Assemble one Problem with its solution text and metadata."""
    solution = ""
    if fmt == "gsm8k" and isinstance(rec.get("answer"), str):
        solution = re.sub(r"<<[^>]*>>", "", rec["answer"]).strip()
    elif isinstance(rec.get("solution"), str):
        solution = rec["solution"].strip()
    elif isinstance(rec.get("extra_info"), Mapping) and isinstance(rec["extra_info"].get("answer"), str):
        solution = rec["extra_info"]["answer"].strip()
    rid = rec.get("unique_id") or rec.get("id")
    pid = str(rid) if isinstance(rid, (str, int)) and not isinstance(rid, bool) else f"{path.stem}-{i:06d}"
    meta: dict[str, Any] = {"source": str(path), "format": fmt or "custom", "index": i}
    for key in ("data_source", "level", "type", "subject"):
        if key in rec and rec[key] is not None:
            meta[key] = rec[key]
    if messages is not None:
        meta["messages"] = messages
    level = str(meta.get("level", ""))
    if m := re.search(r"\d+", level):
        meta["difficulty"] = int(m.group())
    return Problem(id=pid, prompt=prompt, answer=answer, solution=solution, meta=meta)


# -- the task ---------------------------------------------------------------------------------------


class MathTask(Task):
    """Real math problems verified by ``\\boxed{}``/``####``/``answer:`` extraction and equivalence checking."""

    name = "math"
    answer_marker = "\\boxed"
    default_error_rate = 0.0

    def __init__(
        self,
        data: str | Path | Sequence[Problem] | Mapping[str, str | Path | Sequence[Problem]] | None = None,
        *,
        use_math_verify: bool = True,
        **load_kwargs: Any,
    ) -> None:
        self.use_math_verify = use_math_verify
        self._splits: dict[str, list[Problem]] | None = None
        self._pool: list[Problem] | None = None
        if isinstance(data, Mapping):
            self._splits = {s: self._load(v, load_kwargs) for s, v in data.items()}
        elif data is not None:
            self._pool = self._load(data, load_kwargs)

    @staticmethod
    def _load(data: Any, kwargs: dict) -> list[Problem]:
        if isinstance(data, (str, Path)):
            return load_problems(data, **kwargs)
        return list(data)

    def problems(
        self, split: str, n: int | None = None, *, seed: int = 0, difficulty: int | None = None
    ) -> list[Problem]:
        """Problems of a split: the file given for it, or a hash-split share of a single file (80/10/10)."""
        if split not in SPLITS:
            raise TaskError(f"task 'math': unknown split {split!r}; known splits: {list(SPLITS)}")
        if self._splits is not None:
            if split not in self._splits:
                raise TaskError(f"task 'math': no data for split {split!r}; given: {sorted(self._splits)}")
            probs = list(self._splits[split])
        elif self._pool is not None:
            probs = [p for p in self._pool if split_of(p.prompt) == split]
        else:
            raise TaskError("task 'math' has no data: build it with get_task('math', data='file.jsonl')")
        if difficulty is not None:
            probs = [p for p in probs if p.meta.get("difficulty") == difficulty]
        if seed:
            random.Random(f"math|{split}|{seed}").shuffle(probs)
        return probs if n is None else probs[:n]

    def extract_answer(self, completion: str) -> str | None:
        """Last ``\\boxed{}`` content, else the text after the last ``####``, else after the last ``answer:``."""
        boxed = extract_boxed(completion)
        if boxed is not None:
            return boxed
        gsm = extract_gsm8k(completion)
        if gsm is not None:
            return gsm
        low = completion.lower()
        i = low.rfind("answer:")
        if i < 0:
            return None
        return completion[i + 7 :].split("\n", 1)[0].strip() or None

    def verify(self, completion: str, answer: str) -> float:
        """1.0 when the extracted answer is equivalent to `answer` (math_verify if importable, else exact match)."""
        got = self.extract_answer(completion)
        if got is None:
            return 0.0
        return 1.0 if answers_match(got, answer, use_math_verify=self.use_math_verify) else 0.0

    def _document(self, rng: random.Random, problem: Problem, rate: float):  # type: ignore[override]
        if rate > 0:
            raise TaskError("task 'math': real data has no flawed solutions; use error_rate=0")
        return super()._document(rng, problem, 0.0)


# -- chat templates ---------------------------------------------------------------------------------


def apply_chat_template(tokenizer: Any, prompt: str | Sequence[Mapping[str, str]]) -> str:
    """The prompt wrapped in the tokenizer's chat template (generation prompt added) when it has one."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
    if not getattr(tokenizer, "chat_template", None):
        if isinstance(prompt, str):
            return prompt
        return "\n".join(m.get("content", "") for m in messages)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
