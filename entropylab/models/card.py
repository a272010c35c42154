"""The model card (`model_card.md`) and manifest (`entropylab.json`) of a pretrained checkpoint."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

MANIFEST = "entropylab.json"


def _command(p: dict) -> str:
    """The CLI command that reproduces a pretraining run."""
    args = [
        "entropylab",
        "pretrain",
        "--task",
        p["task"],
        "--out",
        "OUT",
        "--steps",
        str(p["steps"]),
        "--batch-size",
        str(p["batch_size"]),
        "--seq-len",
        str(p["seq_len"]),
        "--lr",
        str(p["lr"]),
        "--seed",
        str(p["seed"]),
        "--error-rate",
        str(p["error_rate"]),
        "--clean-steps",
        str(p.get("clean_steps", 0)),
        "--easy-share",
        str(p.get("easy_share", 0.0)),
    ]
    if p.get("init", "scratch") != "scratch":
        args += ["--init", str(p["init"])]
    for key, flag, default in (
        ("difficulty", "--difficulty", None),
        ("hidden_size", "--hidden-size", 192),
        ("num_layers", "--num-layers", 4),
    ):
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
    chose = (
        ("; precision chosen by a timing probe, seconds per step: " + ", ".join(f"{k} {v:g}" for k, v in probe.items()))
        if probe
        else ""
    )
    return (
        f"{m['threads']} torch threads on {m['cpus']} CPUs{cpu}; 1-min load average {m['load_avg_start']} at "
        f"the start, {m['load_avg_end']} at the end"
        + (": above the thread count, other processes shared the CPUs" if busy else "")
        + chose
    )


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
    return (
        f"The first {clean} steps show correct solutions only ({p.get('easy_share', 0):.0%} of them the task's "
        f"warm-up problems), then {p['steps'] - clean} steps of fresh problems in which {mistakes}."
    )


def render_manifest(task: Any, result: dict, out: str | Path) -> dict:
    """The `entropylab.json` of a pretraining `result` saved in `out`: task, answer marker, parameters, metrics,
    machine and the command that reproduces it."""
    m, p = result["metrics"], result["params"]
    return dict(
        task=task.name,
        answer_marker=task.answer_marker,
        n_params=result["n_params"],
        params=p,
        metrics=m,
        train_seconds=result["train_seconds"],
        final_loss=round(result["final_loss"], 4),
        machine=result.get("machine", {}),
        command=_command(p).replace("OUT", str(out)),
    )


def render_card(model: Any, tokenizer: Any, task: Any, result: dict, out: str | Path) -> str:
    """The `model_card.md` text of a pretraining `result` saved in `out`: architecture, corpus, recipe and
    the metrics measured on held-out problems."""
    out = Path(out)
    m, p = result["metrics"], result["params"]
    cfg = model.config
    passk = ", ".join(f"pass@{k} {m[f'pass@{k}']:.3f}" for k in (1, 2, 4, 8, 16) if f"pass@{k}" in m)
    routes = [k.split("/", 1)[1] for k in m if k.startswith("route_share/")]
    route_line = (
        (
            "\n- routes taken (share, accuracy): "
            + ", ".join(
                f"{r} {m[f'route_share/{r}']:.3f}" + (f" ({m[f'route_acc/{r}']:.3f})" if f"route_acc/{r}" in m else "")
                for r in routes
            )
        )
        if routes
        else ""
    )
    return (
        f"""# entropylab tiny model: `{task.name}`

A {result["n_params"] / 1e6:.2f}M-parameter Qwen2 (hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers,
{cfg.num_attention_heads} heads / {cfg.num_key_value_heads} KV heads, context {cfg.max_position_embeddings},
tied embeddings) with a character tokenizer ({len(tokenizer)} tokens), pre-trained {_origin(p)} by
next-token prediction on the synthetic `{task.name}` corpus: documents `<bos>` prompt completion `<eos>`,
one document per row, right-padded; the loss covers the completion and `<eos>`{" and the prompt" if p.get("prompt_loss") else " (not the random prompt)"}.
{_phases(p, task)}

Made by:

    {_command(p).replace("OUT", str(out))}

| parameter | value |
|---|---|
"""
        + "\n".join(f"| {k} | {v} |" for k, v in p.items())
        + f"""
| train tokens | {result["train_tokens"]} |
| wall time (training, s) | {result["train_seconds"]} ({_machine(result.get("machine", {}))}) |
| loss (first step -> last 20 steps) | {result["initial_loss"]:.3f} -> {result["final_loss"]:.3f} |

## Measured on {m["n_problems"]} held-out test problems, {m["n_samples"]} samples each, temperature 1

- {passk}{route_line}
- mean response length {m["mean_length"]:.1f} tokens, {m["frac_finished"]:.3f} of responses end with `<eos>`
- token entropy (nats): p50 {m["entropy_p50"]:.4f}, p80 {m["entropy_p80"]:.4f}, p95 {m["entropy_p95"]:.4f};
  fraction of tokens below 0.01: {m["entropy_frac_below_0.01"]:.3f}; mean {m["entropy_mean"]:.4f}

Load with `entropylab.models.load_model("{out.name}")` or `AutoModelForCausalLM.from_pretrained(path)` and
`AutoTokenizer.from_pretrained(path)`; prompts are the task's prompts, the tokenizer prepends `<bos>`.
"""
    )


def read_manifest(path_or_name: str | Path) -> dict:
    """The `entropylab.json` of a checkpoint ({} when absent): task name, answer marker, metrics."""
    from entropylab.models.checkpoints import resolve_checkpoint

    f = resolve_checkpoint(path_or_name) / MANIFEST
    return json.loads(f.read_text()) if f.is_file() else {}
