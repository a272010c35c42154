"""Benchmark: one full GRPO step of entropylab's trainer against TRL's GRPOTrainer, tokens per second on CPU.

Same model (the shipped tiny ``arith`` checkpoint when present, else a random tiny Qwen2 of the same shape), the
same prompts (each step's prompts are the ones entropylab's trainer draws, fed to TRL in that order), group size
G, max completion length, temperature 1, one PPO epoch, one optimizer step per rollout batch, one micro-batch,
the task's verifier as reward, no KL, no validation, dumps or checkpoints inside the timed window.

A step is rollout + reward + advantages + scoring + loss + backward + optimizer step: entropylab's ``step_s``
(from ``metrics.jsonl``), TRL's wall time between ``on_step_begin`` and ``on_step_end``. Tokens are the
completion tokens generated in the step (EOS included, padding not): ``response_length * rows`` for
entropylab, ``completions/mean_length * rows`` for TRL. The first step of each is a warm-up and not timed.
TRL is timed twice: with GRPOConfig's defaults (gradient checkpointing on) and with gradient checkpointing off,
as entropylab runs (it keeps activations); the target holds against both. entropylab's own savings: the sampler
(`entropylab.generation`), old log-probs taken from the rollout, each prompt's forward shared by its G samples.
Target: entropylab >= 1.5x TRL.

Usage: python benchmarks/bench_trainer_vs_trl.py [--steps 3] [--prompts 8] [--group-size 8]
       [--max-new-tokens 48] [--threads 1] [--model PATH] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def tiny_model(out: Path) -> str:
    """The shipped arith checkpoint if present, else a random tiny Qwen2 (the shipped shape) saved to `out`."""
    from entropylab.models import build_tokenizer, data_dir
    from entropylab.models import tiny_model as build_tiny_model

    shipped = data_dir() / "arith"
    if (shipped / "config.json").is_file():
        return str(shipped)
    tok = build_tokenizer()
    build_tiny_model(tok, seed=0).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def step_prompts(seed: int, steps: int, per_step: int, pool: list) -> list:
    """The problems entropylab's trainer draws at steps 1..steps, in order (its own seeding)."""
    from entropylab.rl.trainer import _seed

    out = []
    for step in range(1, steps + 1):
        rng = np.random.default_rng(_seed(seed, step))
        out += [pool[i] for i in rng.choice(len(pool), size=per_step, replace=False)]
    return out


def bench_entropylab(model: str, a: argparse.Namespace, work: Path) -> dict:
    from entropylab import rundir
    from entropylab.rl.config import TrainConfig
    from entropylab.rl.trainer import train

    rows = a.prompts * a.group_size
    cfg = TrainConfig(
        model=model,
        task="arith",
        seed=0,
        device="cpu",
        threads=a.threads,
        steps=a.steps + 1,
        prompts_per_step=a.prompts,
        group_size=a.group_size,
        max_new_tokens=a.max_new_tokens,
        temperature=1.0,
        ppo_epochs=1,
        mini_batches=1,
        micro_batch_size=rows,
        val_every=0,
        dump_every=0,
        checkpoint_every=10**6,
        keep_checkpoints=1,
        lr=5e-5,
    )
    run = train(cfg, work / "entropylab", progress=False)
    records = rundir.read_metrics(run)[1:]  # skip warm-up
    seconds = [r["step_s"] for r in records]
    tokens = [r["response_length"] * rows for r in records]
    return {"tokens": sum(tokens), "seconds": sum(seconds), "step_s": seconds}


def bench_trl(model: str, a: argparse.Namespace, work: Path, checkpointing: bool = True) -> dict:
    from transformers import AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from entropylab.integrations.trl import problems_dataset, task_reward_function
    from entropylab.tasks import get_task

    task = get_task("arith")
    problems = step_prompts(0, a.steps + 1, a.prompts, task.problems("train", seed=0))

    class Timer(TrainerCallback):
        def __init__(self):
            self.step_s: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            self._t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.step_s.append(time.perf_counter() - self._t0)

    rows = a.prompts * a.group_size
    args = GRPOConfig(
        output_dir=str(work / f"trl-{checkpointing}"),
        use_cpu=True,
        bf16=False,
        seed=0,
        max_steps=a.steps + 1,
        per_device_train_batch_size=rows,
        num_generations=a.group_size,
        gradient_accumulation_steps=1,
        num_iterations=1,
        max_completion_length=a.max_new_tokens,
        temperature=1.0,
        beta=0.0,
        learning_rate=5e-5,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        shuffle_dataset=False,
        disable_tqdm=True,
        activation_checkpointing=checkpointing,
    )
    timer = Timer()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=task_reward_function(task),
        args=args,
        train_dataset=problems_dataset(problems),
        processing_class=AutoTokenizer.from_pretrained(model),
        callbacks=[timer],
    )
    trainer.remove_callback(PrinterCallback)  # no per-step log dicts on stdout
    trainer.train()
    lengths = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    tokens = [n * rows for n in lengths[1:]]
    return {"tokens": sum(tokens), "seconds": sum(timer.step_s[1:]), "step_s": timer.step_s[1:]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3, help="timed steps of each trainer (after one warm-up step)")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model", default=None, help="checkpoint directory (default: shipped arith, else random tiny)")
    p.add_argument("--trl-defaults-only", action="store_true", help="skip the TRL run without gradient checkpointing")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    import transformers

    transformers.logging.set_verbosity_error()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = a.model or tiny_model(work / "model")
        ours = bench_entropylab(model, a, work)
        theirs = {"TRL defaults": bench_trl(model, a, work)}  # gradient checkpointing on, as GRPOConfig has it
        if not a.trl_defaults_only:  # what entropylab does: keep activations, no recomputation
            theirs["TRL, no grad. checkpointing"] = bench_trl(model, a, work, checkpointing=False)
    rate_ours = ours["tokens"] / ours["seconds"]
    print(
        f"model {model}; {a.prompts} prompts x G={a.group_size}, <= {a.max_new_tokens} new tokens, "
        f"{a.steps} timed steps, {a.threads} thread(s)"
    )
    print(
        f"  {'entropylab':30s} {ours['tokens'] / a.steps:7,.0f} tokens/step, "
        f"{', '.join(f'{s:.2f}' for s in ours['step_s'])} s/step, {rate_ours:,.0f} tokens/s"
    )
    speedups = {}
    for name, res in theirs.items():
        rate = res["tokens"] / res["seconds"]
        speedups[name] = rate_ours / rate
        print(
            f"  {name:30s} {res['tokens'] / a.steps:7,.0f} tokens/step, "
            f"{', '.join(f'{s:.2f}' for s in res['step_s'])} s/step, {rate:,.0f} tokens/s"
        )
    print(
        "entropylab GRPO step against TRL GRPOTrainer: "
        + "; ".join(f"{v:.2f}x ({k})" for k, v in speedups.items())
        + " (target >= 1.5x)"
    )
    if a.json:
        Path(a.json).write_text(
            json.dumps(
                {"entropylab": ours, "trl": theirs, "speedup": speedups, "args": vars(a), "model": model}, indent=1
            )
        )


if __name__ == "__main__":
    main()
