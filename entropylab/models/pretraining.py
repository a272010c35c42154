"""The pre-training recipe of the shipped checkpoints: the task corpus, length-bucketed batches, the
learning-rate schedule and the training loop, then evaluation and `save_checkpoint`."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

from entropylab.errors import ModelError
from entropylab.models.checkpoints import load_model, save_checkpoint
from entropylab.models.config import n_params, tiny_model
from entropylab.models.tokenizer import build_tokenizer
from entropylab.precision import autocast, check_precision, model_step, workload_key
from entropylab.precision import resolve as resolve_precision

#: The recipe of the shipped checkpoints, per task (`pretrain` defaults are the arith ones).
#: arith learns its arithmetic first: `clean_steps` steps of correct solutions, a share `easy_share` of them
#: problems with round operands (see `ArithTask._sample_easy`), then the corpus with mistakes at `error_rate`,
#: from which it learns to make them. Without the warm-up the step at which the model starts to get the last
#: digits right varied from about 800 to past 1,500 between seeds.
RECIPES: dict[str, dict] = {
    "arith": dict(steps=1500, lr=2e-3, error_rate=0.5, clean_steps=1100, easy_share=0.3, init="scratch"),
    "fork": dict(steps=800, lr=1e-3, error_rate=0.0, clean_steps=0, easy_share=0.0, init="arith"),  # from arith
    "ladder": dict(steps=800, lr=1e-3, error_rate=0.0, clean_steps=0, easy_share=0.0, init="arith"),  # from arith
    "ladder_practice": dict(steps=400, lr=1e-3, error_rate=0.0, clean_steps=0, easy_share=0.0, init="ladder"),
    "ladder_even": dict(steps=400, lr=1e-3, error_rate=0.0, clean_steps=0, easy_share=0.0, init="ladder"),
}


def _corpus(
    task, steps: int, clean_steps: int, batch_size: int, seed: int, error_rate: float, easy_share: float, difficulty
) -> list:
    """The documents of a run, in phase order: `clean_steps * batch_size` correct solutions (a share
    `easy_share` of the task's warm-up kind), then the corpus with mistakes at `error_rate` (fresh problems)."""
    n_clean = clean_steps * batch_size
    clean = task.documents(n_clean, seed=seed, error_rate=0.0, difficulty=difficulty, easy_share=easy_share)
    rest = task.documents(
        (steps - clean_steps) * batch_size,
        seed=seed + 1 if n_clean else seed,
        error_rate=error_rate,
        difficulty=difficulty,
    )
    return clean + rest


def _encode_documents(tokenizer, docs, prompt_loss: bool):
    """Token rows `<bos> prompt completion <eos>` and loss weights (0 on the prompt unless `prompt_loss`)."""
    prompts = tokenizer([d.problem.prompt for d in docs], add_special_tokens=True)["input_ids"]
    texts = tokenizer([d.text for d in docs], add_special_tokens=True)["input_ids"]
    rows, weights = [], []
    for p, t in zip(prompts, texts):
        ids = [*t, tokenizer.eos_token_id]
        start = 1 if prompt_loss else len(p)  # first token whose prediction counts
        rows.append(ids)
        weights.append([0.0] * start + [1.0] * (len(ids) - start))
    return rows, weights


def _batch(rows, weights, idx: list[int], pad_id: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded token ids [B, L] and loss weights for targets [B, L-1]; one document per row, no packing."""
    width = min(seq_len, max(len(rows[i]) for i in idx))
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    w = torch.zeros((len(idx), width), dtype=torch.float32)
    for r, i in enumerate(idx):
        n = min(width, len(rows[i]))
        ids[r, :n] = torch.as_tensor(rows[i][:n])
        w[r, :n] = torch.as_tensor(weights[i][:n])
    return ids, w[:, 1:]


def _bucketed_batches(lengths: list[int], batch_size: int, steps: int, seed: int, group: int = 8) -> list[list[int]]:
    """`steps` batches of document indices in a seeded random order; within each run of `group` batches the
    documents are sorted by length (less padding), and those batches are shuffled."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lengths), generator=g).tolist()
    out: list[list[int]] = []
    span = batch_size * group
    for s in range(0, steps * batch_size, span):
        chunk = sorted(order[s : s + span], key=lambda i: lengths[i])
        parts = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
        out += [parts[i] for i in torch.randperm(len(parts), generator=g).tolist()]
    return out[:steps]


def _schedule(lengths: list[int], batch_size: int, steps: int, clean_steps: int, seed: int) -> list[list[int]]:
    """The document indices of every step: the first `clean_steps` batches from the first
    `clean_steps * batch_size` documents (the clean ones), the rest from the others; bucketed by length."""
    n_clean = clean_steps * batch_size
    clean = _bucketed_batches(lengths[:n_clean], batch_size, clean_steps, seed)
    rest = _bucketed_batches(lengths[n_clean:], batch_size, steps - clean_steps, seed)
    return clean + [[n_clean + i for i in b] for b in rest]


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with `torch.set_num_threads(n)` (None: leave as is), restoring the previous count."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up then cosine decay to 10% of `lr`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def pretrain(
    task: str,
    out: str | Path,
    *,
    steps: int | None = None,
    batch_size: int = 32,
    seq_len: int = 256,
    lr: float | None = None,
    seed: int = 0,
    error_rate: float | None = None,
    clean_steps: int | None = None,
    easy_share: float | None = None,
    init: str | Path | None = None,
    difficulty: int | None = None,
    hidden_size: int = 192,
    num_layers: int = 4,
    prompt_loss: bool = False,
    eval_problems: int = 200,
    eval_samples: int = 16,
    progress: bool = True,
    threads: int | None = None,
    precision: str = "auto",
) -> dict:
    """Pre-train a tiny Qwen2 on `task`'s corpus by next-token prediction, evaluate it, save it to `out`.

    Each step sees `batch_size` fresh documents `<bos> prompt completion <eos>` (one per row, right-padded,
    cut at `seq_len`); the loss covers completion and `<eos>` (and the random prompt if `prompt_loss`).
    The first `clean_steps` steps show correct solutions only (a share `easy_share` of them warm-up problems,
    `Task._sample_easy`), the rest fresh problems with flawed solutions at `error_rate`.
    Seeded and reproducible (same arguments and threads: same weights). Writes the `transformers` files,
    `model_card.md` and `entropylab.json` (metrics on held-out test problems at temperature 1); returns
    a dict with the parameters, `n_params`, `train_seconds`, `final_loss`, `loss_curve` and `metrics`.
    `init`: "scratch" (random init), or a shipped name / checkpoint directory to continue from (its
    architecture is kept; `hidden_size`/`num_layers` then ignored). `steps`, `lr`, `error_rate`, `clean_steps`,
    `easy_share` and `init` default to the task's shipped recipe (`RECIPES`: fork continues from the arith checkpoint).
    `precision`: "float32", "bfloat16" (autocast) or "auto", the faster of the two on this CPU by a timing probe
    (`entropylab.precision`); the choice is recorded in the parameters and the model card.
    """
    from entropylab.evaluate import evaluate_task
    from entropylab.tasks import get_task

    t_start = time.perf_counter()
    load_start = _load_avg()
    recipe = RECIPES.get(task, RECIPES["arith"])
    steps = int(recipe["steps"] if steps is None else steps)
    lr = float(recipe["lr"] if lr is None else lr)
    error_rate = recipe["error_rate"] if error_rate is None else float(error_rate)
    init = str(recipe["init"] if init is None else init)
    clean_steps = min(steps, int(recipe["clean_steps"] if clean_steps is None else clean_steps))
    easy_share = float(recipe["easy_share"] if easy_share is None else easy_share)
    if steps < 1:
        raise ModelError(f"pretrain: steps must be >= 1, got {steps}")
    if clean_steps < 0:
        raise ModelError(f"pretrain: clean_steps must be >= 0, got {clean_steps}")
    check_precision(precision)
    task_obj = get_task(task)
    with torch_threads(threads):
        torch.manual_seed(seed)
        tokenizer = build_tokenizer()
        n_docs = steps * batch_size  # every step sees fresh documents
        docs = _corpus(task_obj, steps, clean_steps, batch_size, seed, error_rate, easy_share, difficulty)
        rows, weights = _encode_documents(tokenizer, docs, prompt_loss)
        if init == "scratch":
            model = tiny_model(tokenizer, seed=None, hidden_size=hidden_size, num_layers=num_layers)
        else:
            model = _init_from(init, tokenizer, task)
            hidden_size, num_layers = model.config.hidden_size, model.config.num_hidden_layers
        order = _schedule([len(r) for r in rows], batch_size, steps, clean_steps, seed)
        batches = [_batch(rows, weights, b, tokenizer.pad_token_id, seq_len) for b in order]
        losses, prec = _train(model, batches, lr, precision, desc=f"pretrain {task}" if progress else None)
        train_seconds = time.perf_counter() - t_start
        metrics = evaluate_task(
            model,
            tokenizer,
            task_obj,
            split="test",
            n_problems=eval_problems,
            n_samples=eval_samples,
            temperature=1.0,
            seed=seed,
            difficulty=difficulty,
        )
        params = dict(
            task=task,
            steps=steps,
            batch_size=batch_size,
            seq_len=seq_len,
            lr=lr,
            seed=seed,
            error_rate=error_rate,
            clean_steps=clean_steps,
            easy_share=easy_share,
            init=init,
            difficulty=difficulty,
            hidden_size=hidden_size,
            num_layers=num_layers,
            prompt_loss=prompt_loss,
            eval_problems=eval_problems,
            eval_samples=eval_samples,
            threads=torch.get_num_threads(),
            precision=prec["precision"],
        )
        machine = dict(
            cpus=os.cpu_count(),
            threads=torch.get_num_threads(),
            load_avg_start=load_start,
            load_avg_end=_load_avg(),
            cpu_capability=prec["cpu_capability"],
            precision_requested=prec["requested"],
            precision_probe_seconds=prec["seconds"],
        )
    result = dict(
        params=params,
        n_params=n_params(model),
        n_docs=n_docs,
        train_tokens=sum(len(r) for r in rows),
        train_seconds=round(train_seconds, 1),
        total_seconds=round(time.perf_counter() - t_start, 1),
        initial_loss=losses[0],
        final_loss=sum(losses[-20:]) / len(losses[-20:]),
        loss_curve=[round(v, 4) for v in losses],
        metrics=metrics,
        machine=machine,
    )
    save_checkpoint(model, tokenizer, out, task_obj, result)
    return result


def _init_from(init: str, tokenizer, task: str):
    """The model of checkpoint `init` (name or path), checked to share the character tokenizer."""
    try:
        model, tok = load_model(init)
    except ModelError as e:
        raise ModelError(
            f"pretrain {task}: cannot start from {init!r} ({e}); pretrain it first or use init='scratch'"
        ) from None
    if tok.get_vocab() != tokenizer.get_vocab():
        raise ModelError(f"pretrain {task}: checkpoint {init!r} uses a different tokenizer; use init='scratch'")
    return model


def _train(
    model, batches: list[tuple[torch.Tensor, torch.Tensor]], lr: float, precision: str, desc: str | None
) -> tuple[list[float], dict]:
    """AdamW (wd 0.1 on matrices), warm-up + cosine schedule, in `precision` ("auto": the faster of float32
    and bf16 autocast on this CPU, probed on the widest batch); one step per (ids, weights) batch.
    Returns the losses and the precision record (`entropylab.precision.resolve`).

    Attention is plain matmul-softmax ("eager") while training: at these lengths a CPU step is 1.37x faster
    than with SDPA, whose CPU backward is slow. The model is handed back with its own attention.
    """
    attn = model.config._attn_implementation
    model.set_attn_implementation("eager")
    model.train()
    try:
        widest = max((ids for ids, _ in batches), key=lambda t: t.shape[1])
        prec = resolve_precision(precision, model_step(model, widest), workload_key(model, widest))
        return _train_loop(model, batches, lr, prec["precision"], desc), prec
    finally:
        model.set_attn_implementation(attn)
        model.eval()


def _train_loop(
    model, batches: list[tuple[torch.Tensor, torch.Tensor]], lr: float, precision: str, desc: str | None
) -> list[float]:
    """The optimisation steps of `_train`: one AdamW step per batch, the losses in order."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))
    steps = len(batches)
    warmup = max(1, min(50, steps // 10))
    losses: list[float] = []
    bar = range(steps)
    if desc:
        from entropylab.progress import bar as progress_bar

        bar = progress_bar(bar, desc=desc, unit="step")
    for step in bar:
        ids, w = batches[step]
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, steps, lr, warmup)
        with autocast(precision):  # right padding + causal attention: no mask needed
            logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none")
        loss = (nll * w.reshape(-1)).sum() / w.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
        if desc:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    return losses


def _load_avg() -> float | None:
    """The 1-minute load average (None where the platform has none)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
