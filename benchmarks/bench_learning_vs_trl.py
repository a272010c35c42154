"""Learning parity: entropylab's GRPO trainer against TRL's GRPOTrainer, validation accuracy after N steps.

Not a speed benchmark. Both trainers start from the same checkpoint and see the same prompts in the same
order (the ones entropylab's trainer draws), with the same learning rate (constant, AdamW, no weight decay),
group size G, prompts per step, max completion length, temperature 1, the task's verifier as reward, no KL,
one optimizer step per rollout batch (entropylab: one epoch, one mini-batch; TRL: num_iterations=1, one
gradient-accumulation step). Afterwards both final models are scored by the same evaluator
(`entropylab.evaluate.evaluate_task`: held-out validation problems, one sample each at temperature 1), next
to the starting model. The baseline is TRL at the same learning rate; each row prints the accuracy with its
standard error, and the difference to TRL with a 95% interval (unpaired: different samples).

Usage: python benchmarks/bench_learning_vs_trl.py [--task ladder] [--model ladder] [--steps 30]
       [--prompts 16] [--group-size 8] [--lrs 1e-4 3e-4] [--val-problems 500] [--threads 1] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import warnings
from pathlib import Path

import torch
from bench_trainer_vs_trl import step_prompts


def accuracy(model_path: str, task: str, n: int, max_new_tokens: int) -> tuple[float, float]:
    """(accuracy, standard error) of one temperature-1 sample on each of `n` validation problems."""
    from entropylab.evaluate import evaluate_task
    from entropylab.models import load_model
    from entropylab.tasks import get_task

    model, tok = load_model(model_path)
    m = evaluate_task(
        model,
        tok,
        get_task(task),
        split="val",
        n_problems=n,
        n_samples=1,
        temperature=1.0,
        seed=0,
        max_new_tokens=max_new_tokens,
    )
    acc = float(m["pass@1"])
    return acc, math.sqrt(max(acc * (1 - acc), 1e-12) / m["n_problems"])


def train_entropylab(model: str, a: argparse.Namespace, lr: float, work: Path) -> str:
    from entropylab.rl.config import TrainConfig
    from entropylab.rl.trainer import train
    from entropylab.rundir import latest_checkpoint

    rows = a.prompts * a.group_size
    cfg = TrainConfig(
        model=model,
        task=a.task,
        seed=a.seed,
        device="cpu",
        threads=a.threads,
        steps=a.steps,
        prompts_per_step=a.prompts,
        group_size=a.group_size,
        max_new_tokens=a.max_new_tokens,
        temperature=1.0,
        ppo_epochs=1,
        mini_batches=1,
        micro_batch_size=rows,
        val_every=0,
        dump_every=0,
        checkpoint_every=a.steps,
        keep_checkpoints=1,
        lr=lr,
        weight_decay=0.0,
    )
    run = train(cfg, work / f"entropylab-{lr:g}", progress=False)
    return str(latest_checkpoint(run))


def train_trl(model: str, a: argparse.Namespace, lr: float, work: Path) -> str:
    from transformers import AutoTokenizer, PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from entropylab.integrations.trl import problems_dataset, task_reward_function
    from entropylab.models import quiet_progress
    from entropylab.tasks import get_task

    task = get_task(a.task)
    problems = step_prompts(a.seed, a.steps, a.prompts, task.problems("train", seed=a.seed))
    rows = a.prompts * a.group_size
    out = work / f"trl-{lr:g}"
    args = GRPOConfig(
        output_dir=str(out),
        use_cpu=True,
        bf16=False,
        seed=a.seed,
        max_steps=a.steps,
        per_device_train_batch_size=rows,
        num_generations=a.group_size,
        gradient_accumulation_steps=1,
        num_iterations=1,
        max_completion_length=a.max_new_tokens,
        temperature=1.0,
        beta=0.0,
        learning_rate=lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        shuffle_dataset=False,
        disable_tqdm=True,
        activation_checkpointing=False,
    )
    tok = AutoTokenizer.from_pretrained(model)
    with quiet_progress(), warnings.catch_warnings():
        # TRL 1.16 itself reads the renamed `is_gradient_checkpointing` of transformers 5 (not ours to fix)
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=task_reward_function(task),
            args=args,
            train_dataset=problems_dataset(problems),
            processing_class=tok,
        )
        trainer.remove_callback(PrinterCallback)
        trainer.train()
        final = out / "final"
        trainer.model.save_pretrained(final)
    tok.save_pretrained(final)
    return str(final)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="ladder", help="task (default: the trainer's default world)")
    p.add_argument("--model", default=None, help="checkpoint directory or shipped name (default: the task's)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 3e-4])
    p.add_argument("--val-problems", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="training seed of both trainers (the same prompts)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    from entropylab.models import resolve_checkpoint

    model = str(resolve_checkpoint(a.model or a.task))
    start = time.perf_counter()
    base = accuracy(model, a.task, a.val_problems, a.max_new_tokens)
    print(
        f"{a.task}: model {model}; {a.steps} steps of {a.prompts} prompts x G={a.group_size}, <= {a.max_new_tokens} "
        f"new tokens; validation accuracy on {a.val_problems} problems, one sample each at temperature 1"
    )
    print(f"  {'start':28s} {base[0]:.3f} ± {base[1]:.3f}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for lr in a.lrs:
            ours = accuracy(train_entropylab(model, a, lr, work), a.task, a.val_problems, a.max_new_tokens)
            theirs = accuracy(train_trl(model, a, lr, work), a.task, a.val_problems, a.max_new_tokens)
            diff, se = ours[0] - theirs[0], math.hypot(ours[1], theirs[1])
            print(f"  lr {lr:<8g} {'TRL GRPOTrainer':15s} {theirs[0]:.3f} ± {theirs[1]:.3f}")
            print(
                f"  lr {lr:<8g} {'entropylab':15s} {ours[0]:.3f} ± {ours[1]:.3f}   "
                f"vs TRL {diff:+.3f} [{diff - 1.96 * se:+.3f}, {diff + 1.96 * se:+.3f}]"
            )
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
