"""The embedded models: a character tokenizer, a tiny Qwen2 config, the pre-training recipe and `load_model`.

A shipped checkpoint is a plain `transformers` directory (config.json, model.safetensors, tokenizer files)
plus `model_card.md` and `entropylab.json` (task, answer marker, measured metrics), so
`AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained` read it without entropylab.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from entropylab.errors import ModelError
from entropylab.precision import autocast, check_precision, model_step, workload_key
from entropylab.precision import resolve as resolve_precision

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]
MANIFEST = "entropylab.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")

#: The recipe of the shipped checkpoints, per task (`pretrain` defaults are the arith ones).
#: arith learns its arithmetic first: `clean_steps` steps of correct solutions, a share `easy_share` of them
#: problems with round operands (see `ArithTask._sample_easy`), then the corpus with mistakes at `error_rate`,
#: from which it learns to make them. Without the warm-up the step at which the model starts to get the last
#: digits right varied from about 800 to past 1,500 between seeds.
RECIPES: dict[str, dict] = {
    "arith": dict(steps=1500, lr=2e-3, error_rate=0.5, clean_steps=1100, easy_share=0.3, init="scratch"),
    "fork": dict(steps=800, lr=1e-3, error_rate=0.0, clean_steps=0, easy_share=0.0, init="arith"),  # from arith
    "ladder": dict(steps=800, lr=1e-3, error_rate=0.0, clean_steps=0, easy_share=0.0, init="arith"),  # from arith
}


def data_dir() -> Path:
    """Where shipped checkpoints live: `$ENTROPYLAB_DATA/models` if set, else the repository's data/models."""
    root = os.environ.get("ENTROPYLAB_DATA")
    return Path(root) / "models" if root else Path(__file__).resolve().parents[1] / "data" / "models"


def shipped_models() -> list[str]:
    """Names of the shipped checkpoints (directories of `data_dir()` holding a config.json)."""
    d = data_dir()
    return sorted(p.name for p in d.iterdir() if (p / "config.json").is_file()) if d.is_dir() else []


# ------------------------------------------------------------------------------------------------
# tokenizer and config


def _byte_char(ch: str) -> str:
    """GPT-2 byte-level symbol of a one-byte character (space -> 'Ġ', newline -> 'Ċ', printable ASCII as is)."""
    b = ord(ch)
    if b > 255 or len(ch.encode()) != 1:
        raise ModelError(f"build_tokenizer: only one-byte characters are supported, got {ch!r}")
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    if b in keep:
        return ch
    return chr(256 + sum(1 for x in range(b) if x not in keep))


def build_tokenizer(alphabet: str | None = None):
    """A character-level `PreTrainedTokenizerFast`: one token per character, `<bos>` prepended, exact decode.

    Tokens are GPT-2 byte-level symbols with no merges, so `AutoTokenizer.from_pretrained` gives the same
    ids whether it builds this pipeline or, for a Qwen2 checkpoint, transformers' own `Qwen2Tokenizer`.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if alphabet is None:
        from entropylab.tasks import ALPHABET as alphabet
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in alphabet:
        vocab.setdefault(_byte_char(ch), len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()  # concatenates: no spaces inserted between tokens
    bos_id = vocab[BOS]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        padding_side="left", clean_up_tokenization_spaces=False, model_max_length=256, add_bos_token=True,
    )


def tiny_config(
    vocab_size: int,
    *,
    hidden_size: int = 192,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 256,
    pad_token_id: int = 0,
    bos_token_id: int = 1,
    eos_token_id: int = 2,
):
    """A small `Qwen2Config` (defaults: about 1.8M parameters, tied embeddings, 256-token context)."""
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 3 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        rms_norm_eps=1e-6,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
    )


def n_params(model) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


# ------------------------------------------------------------------------------------------------
# pre-training


def _corpus(task, steps: int, clean_steps: int, batch_size: int, seed: int, error_rate: float, easy_share: float,
            difficulty) -> list:
    """The documents of a run, in phase order: `clean_steps * batch_size` correct solutions (a share
    `easy_share` of the task's warm-up kind), then the corpus with mistakes at `error_rate` (fresh problems)."""
    n_clean = clean_steps * batch_size
    clean = task.documents(n_clean, seed=seed, error_rate=0.0, difficulty=difficulty, easy_share=easy_share)
    rest = task.documents((steps - clean_steps) * batch_size, seed=seed + 1 if n_clean else seed,
                          error_rate=error_rate, difficulty=difficulty)
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
def torch_threads(n: int | None):
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
    from transformers import AutoModelForCausalLM

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
            model = AutoModelForCausalLM.from_config(tiny_config(len(tokenizer), hidden_size=hidden_size,
                                                                 num_layers=num_layers))
        else:
            model = _init_from(init, tokenizer, task)
            hidden_size, num_layers = model.config.hidden_size, model.config.num_hidden_layers
        order = _schedule([len(r) for r in rows], batch_size, steps, clean_steps, seed)
        batches = [_batch(rows, weights, b, tokenizer.pad_token_id, seq_len) for b in order]
        losses, prec = _train(model, batches, lr, precision, desc=f"pretrain {task}" if progress else None)
        train_seconds = time.perf_counter() - t_start
        metrics = evaluate_task(model, tokenizer, task_obj, split="test", n_problems=eval_problems,
                                n_samples=eval_samples, temperature=1.0, seed=seed, difficulty=difficulty)
        params = dict(
            task=task, steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr, seed=seed, error_rate=error_rate,
            clean_steps=clean_steps, easy_share=easy_share, init=init, difficulty=difficulty,
            hidden_size=hidden_size, num_layers=num_layers, prompt_loss=prompt_loss,
            eval_problems=eval_problems, eval_samples=eval_samples, threads=torch.get_num_threads(),
            precision=prec["precision"],
        )
        machine = dict(cpus=os.cpu_count(), threads=torch.get_num_threads(), load_avg_start=load_start,
                       load_avg_end=_load_avg(), cpu_capability=prec["cpu_capability"],
                       precision_requested=prec["requested"], precision_probe_seconds=prec["seconds"])
    result = dict(
        params=params, n_params=n_params(model), n_docs=n_docs, train_tokens=sum(len(r) for r in rows),
        train_seconds=round(train_seconds, 1), total_seconds=round(time.perf_counter() - t_start, 1),
        initial_loss=losses[0], final_loss=sum(losses[-20:]) / len(losses[-20:]),
        loss_curve=[round(v, 4) for v in losses], metrics=metrics, machine=machine,
    )
    save_checkpoint(model, tokenizer, out, task_obj, result)
    return result


def _init_from(init: str, tokenizer, task: str):
    """The model of checkpoint `init` (name or path), checked to share the character tokenizer."""
    try:
        model, tok = load_model(init)
    except ModelError as e:
        raise ModelError(f"pretrain {task}: cannot start from {init!r} ({e}); pretrain it first or use init='scratch'") from None
    if tok.get_vocab() != tokenizer.get_vocab():
        raise ModelError(f"pretrain {task}: checkpoint {init!r} uses a different tokenizer; use init='scratch'")
    return model


def _train(model, batches: list[tuple[torch.Tensor, torch.Tensor]], lr: float, precision: str,
           desc: str | None) -> tuple[list[float], dict]:
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


def _train_loop(model, batches: list[tuple[torch.Tensor, torch.Tensor]], lr: float, precision: str,
                desc: str | None) -> list[float]:
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))
    steps = len(batches)
    warmup = max(1, min(50, steps // 10))
    losses: list[float] = []
    bar = range(steps)
    if desc:
        from tqdm.auto import tqdm

        bar = tqdm(bar, desc=desc, unit="step")
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
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def _command(p: dict) -> str:
    """The CLI command that reproduces a pretraining run."""
    args = ["entropylab", "pretrain", "--task", p["task"], "--out", "OUT", "--steps", str(p["steps"]),
            "--batch-size", str(p["batch_size"]), "--seq-len", str(p["seq_len"]), "--lr", str(p["lr"]),
            "--seed", str(p["seed"]), "--error-rate", str(p["error_rate"]),
            "--clean-steps", str(p.get("clean_steps", 0)), "--easy-share", str(p.get("easy_share", 0.0))]
    if p.get("init", "scratch") != "scratch":
        args += ["--init", str(p["init"])]
    for key, flag, default in (("difficulty", "--difficulty", None), ("hidden_size", "--hidden-size", 192),
                               ("num_layers", "--num-layers", 4)):
        if key != "difficulty" and p.get("init", "scratch") != "scratch":
            continue
        if p.get(key, default) != default:
            args += [flag, str(p[key])]
    if p.get("threads"):
        args += ["--threads", str(p["threads"])]  # float summation order: same threads, same weights
    if p.get("precision"):
        args += ["--precision", str(p["precision"])]  # the precision the run used, not "auto"
    return shlex.join(args)


def _machine(m: dict) -> str:
    if not m:
        return "machine not recorded"
    loads = [v for v in (m.get("load_avg_start"), m.get("load_avg_end")) if v is not None]
    busy = bool(loads) and max(loads) > m["threads"] + 0.5
    cpu = f" (torch CPU capability {m['cpu_capability']})" if m.get("cpu_capability") else ""
    probe = m.get("precision_probe_seconds") or {}
    chose = ("; precision chosen by a timing probe, seconds per step: "
             + ", ".join(f"{k} {v:g}" for k, v in probe.items())) if probe else ""
    return (f"{m['threads']} torch threads on {m['cpus']} CPUs{cpu}; 1-min load average {m['load_avg_start']} at "
            f"the start, {m['load_avg_end']} at the end" + (": above the thread count, other processes shared the "
                                                            "CPUs" if busy else "") + chose)


def _origin(p: dict) -> str:
    init = p.get("init", "scratch")
    return "from scratch" if init == "scratch" else f"from the `{init}` checkpoint (further training)"


def _phases(p: dict, task=None) -> str:
    """The corpus schedule of a pretraining run, in words (a task that describes its own documents,
    `corpus_note()`, says what they hold)."""
    note = getattr(task, "corpus_note", None)
    if note is not None:
        return note()
    clean, rate = p.get("clean_steps", 0), p["error_rate"]
    mistakes = f"a share {rate:g} of the completions carry a plausible mistake" if rate else "all correct"
    if not clean:
        return f"Documents: {mistakes}."
    return (f"The first {clean} steps show correct solutions only ({p.get('easy_share', 0):.0%} of them the task's "
            f"warm-up problems), then {p['steps'] - clean} steps of fresh problems in which {mistakes}.")


def save_checkpoint(model, tokenizer, out: str | Path, task, result: dict) -> Path:
    """Write the HF files, `entropylab.json` and `model_card.md` for a pretraining `result` into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with quiet_progress():
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    m, p = result["metrics"], result["params"]
    manifest = dict(
        task=task.name, answer_marker=task.answer_marker, n_params=result["n_params"],
        params=p, metrics=m, train_seconds=result["train_seconds"], final_loss=round(result["final_loss"], 4),
        machine=result.get("machine", {}),
        command=_command(p).replace("OUT", str(out)),
    )
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    cfg = model.config
    passk = ", ".join(f"pass@{k} {m[f'pass@{k}']:.3f}" for k in (1, 2, 4, 8, 16) if f"pass@{k}" in m)
    routes = [k.split("/", 1)[1] for k in m if k.startswith("route_share/")]
    route_line = ("\n- routes taken (share, accuracy): " + ", ".join(
        f"{r} {m[f'route_share/{r}']:.3f}" + (f" ({m[f'route_acc/{r}']:.3f})" if f"route_acc/{r}" in m else "")
        for r in routes)) if routes else ""
    card = f"""# entropylab tiny model: `{task.name}`

A {result['n_params'] / 1e6:.2f}M-parameter Qwen2 (hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers,
{cfg.num_attention_heads} heads / {cfg.num_key_value_heads} KV heads, context {cfg.max_position_embeddings},
tied embeddings) with a character tokenizer ({len(tokenizer)} tokens), pre-trained {_origin(p)} by
next-token prediction on the synthetic `{task.name}` corpus: documents `<bos>` prompt completion `<eos>`,
one document per row, right-padded; the loss covers the completion and `<eos>`{' and the prompt' if p.get('prompt_loss') else ' (not the random prompt)'}.
{_phases(p, task)}

Made by:

    {_command(p).replace('OUT', str(out))}

| parameter | value |
|---|---|
""" + "\n".join(f"| {k} | {v} |" for k, v in p.items()) + f"""
| train tokens | {result['train_tokens']} |
| wall time (training, s) | {result['train_seconds']} ({_machine(result.get('machine', {}))}) |
| loss (first step -> last 20 steps) | {result['initial_loss']:.3f} -> {result['final_loss']:.3f} |

## Measured on {m['n_problems']} held-out test problems, {m['n_samples']} samples each, temperature 1

- {passk}{route_line}
- mean response length {m['mean_length']:.1f} tokens, {m['frac_finished']:.3f} of responses end with `<eos>`
- token entropy (nats): p50 {m['entropy_p50']:.4f}, p80 {m['entropy_p80']:.4f}, p95 {m['entropy_p95']:.4f};
  fraction of tokens below 0.01: {m['entropy_frac_below_0.01']:.3f}; mean {m['entropy_mean']:.4f}

Load with `entropylab.models.load_model("{out.name}")` or `AutoModelForCausalLM.from_pretrained(path)` and
`AutoTokenizer.from_pretrained(path)`; prompts are the task's prompts, the tokenizer prepends `<bos>`.
"""
    (out / "model_card.md").write_text(card)
    return out


# ------------------------------------------------------------------------------------------------
# loading


@contextlib.contextmanager
def quiet_progress():
    """Hide transformers' own progress bars ("Loading weights", "Writing model shards") within a block."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def resolve_checkpoint(path_or_name: str | Path) -> Path:
    """The directory of a shipped name (`"arith"`) or of a local checkpoint path; `ModelError` otherwise."""
    p = Path(path_or_name).expanduser()
    if p.is_dir():
        return p
    name = str(path_or_name)
    if os.sep not in name and "/" not in name and not p.exists():
        cand = data_dir() / name
        if cand.is_dir():
            return cand
        shipped = shipped_models()
        raise ModelError(
            f"unknown model {name!r}: not a shipped name ({', '.join(shipped) or 'none found in ' + str(data_dir())}) "
            "and not a directory"
        )
    if p.exists():
        raise ModelError(f"model path {str(p)!r} is a file; give a checkpoint directory")
    raise ModelError(f"model path {str(p)!r} does not exist")


def load_model(
    path_or_name: str | Path, *, device: str | torch.device | None = None, dtype: torch.dtype | str | None = None
):
    """(model, tokenizer) from a shipped name or a checkpoint directory; model in eval mode on `device`.

    device: None/"cpu", "cuda", "auto" (cuda when available). The tokenizer always has pad and eos ids
    (pad falls back to eos).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path = resolve_checkpoint(path_or_name)
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} is not a model checkpoint: no config.json")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
        if not isinstance(dtype, torch.dtype):
            raise ModelError(f"unknown dtype {dtype!r}")
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"{path}: unreadable config.json ({str(e).splitlines()[0]})") from None
    try:
        with quiet_progress():
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        kind = getattr(config, "model_type", "?")
        raise ModelError(
            f"{path} is not a causal language model checkpoint (model type {kind!r}): {str(e).splitlines()[0]}"
        ) from None
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise ModelError(f"{path}: no tokenizer files (expected one of {', '.join(TOKENIZER_FILES)})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelError(f"{path}: no usable tokenizer ({str(e).splitlines()[0]})") from None
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise ModelError(
            f"{path}: the tokenizer has {len(tokenizer)} tokens but the model embeds only "
            f"{model.get_input_embeddings().num_embeddings}"
        )
    if tokenizer.eos_token_id is None:
        eos = getattr(model.generation_config, "eos_token_id", None) or config.eos_token_id
        if eos is None:
            raise ModelError(f"{path}: the tokenizer has no eos token and the config names none")
        eos = eos if isinstance(eos, int) else eos[0]
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if device is not None:
        model.to(device)
    model.eval()
    return model, tokenizer


def read_manifest(path_or_name: str | Path) -> dict:
    """The `entropylab.json` of a checkpoint ({} when absent): task name, answer marker, metrics."""
    f = resolve_checkpoint(path_or_name) / MANIFEST
    return json.loads(f.read_text()) if f.is_file() else {}
