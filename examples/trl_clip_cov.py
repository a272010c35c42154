"""GRPO with Clip-Cov (or KL-Cov, or the 80/20 entropy mask) in TRL, through entropylab's EntropyGRPOTrainer.

One process (CPU or one GPU), the shipped tiny model on the synthetic arithmetic task::

    python examples/trl_clip_cov.py --model data/models/arith --task arith --output-dir runs/trl_clip_cov \\
        --policy-loss clip_cov

Several GPUs with DeepSpeed ZeRO-2 (set num_processes in the YAML to your GPU count), your own model and a
local GSM8K/MATH/verl file (JSONL, JSON or Parquet)::

    accelerate launch --config_file examples/accelerate_zero2.yaml examples/trl_clip_cov.py \\
        --model /path/to/Qwen2.5-7B --data /path/to/train.jsonl --output-dir runs/qwen7b_clip_cov \\
        --policy-loss clip_cov --cov-scope batch --bf16

Then read the run with entropylab: ``entropylab diagnose runs/trl_clip_cov`` (per-token dumps in
``runs/trl_clip_cov/rollouts/``) and ``entropylab fit runs/trl_clip_cov`` (TRL's ``trainer_state.json``).
The reward is the task's verifier (``entropylab.tasks``): 1 for a correct final answer, else 0.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from entropylab.rl.losses import POLICY_LOSSES

    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="arith", help="local checkpoint directory or a shipped name (default: arith)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--task", default="arith", help="synthetic entropylab task (default: arith)")
    src.add_argument("--data", help="local JSONL/JSON/Parquet of problems (GSM8K, MATH or verl format)")
    p.add_argument("--n-problems", type=int, default=1000, help="training problems to use (default: 1000)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--policy-loss", choices=POLICY_LOSSES.names(), default="clip_cov")
    p.add_argument("--entropy-mask", choices=["none", "top", "bottom"], default="none")
    p.add_argument("--rho", type=float, default=0.2, help="entropy mask: top fraction (default: 0.2)")
    p.add_argument("--cov-scope", choices=["micro", "batch"], default="micro")
    p.add_argument("--entropy-scope", choices=["micro", "batch"], default="micro")
    p.add_argument("--mask-normalise", choices=["selected", "all"], default="selected")
    p.add_argument(
        "--epsilon",
        type=float,
        default=None,
        help="PPO clip window [1-eps, 1+eps] (default: 1.0 for clip_cov, the paper's recipe; else 0.2)",
    )
    p.add_argument(
        "--num-iterations",
        type=int,
        default=None,
        help="PPO epochs per rollout batch (default: 2 for kl_cov, which needs off-policy updates; else 1)",
    )
    p.add_argument("--max-steps", type=int, default=50)
    p.add_argument("--num-generations", type=int, default=8, help="group size G")
    p.add_argument("--batch-size", type=int, default=32, help="completions per device and step (a multiple of G)")
    p.add_argument("--max-completion-length", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--dump-every", type=int, default=10, help="per-token rollout dump every N steps (0: never)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bf16", action="store_true", help="bf16 mixed precision (GPUs)")
    p.add_argument("--cpu", action="store_true", help="force CPU even when a GPU is visible")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process (default: torch's)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from entropylab.integrations.trl import (
        EntropyGRPOConfig,
        EntropyGRPOTrainer,
        problems_dataset,
        task_reward_function,
    )
    from entropylab.models import resolve_checkpoint
    from entropylab.tasks import get_task, load_problems

    model_dir = str(resolve_checkpoint(args.model))
    if args.data:
        problems = load_problems(args.data, limit=args.n_problems)
        task = get_task("math", data=problems)
    else:
        task = get_task(args.task)
        problems = task.problems("train", args.n_problems, seed=args.seed)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = EntropyGRPOConfig(
        output_dir=args.output_dir,
        seed=args.seed,
        use_cpu=args.cpu,
        bf16=args.bf16,
        max_steps=args.max_steps,
        learning_rate=args.lr,
        per_device_train_batch_size=args.batch_size,
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length,
        num_iterations=args.num_iterations or (2 if args.policy_loss == "kl_cov" else 1),
        epsilon=args.epsilon if args.epsilon is not None else (1.0 if args.policy_loss == "clip_cov" else 0.2),
        temperature=1.0,
        beta=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        entropylab_policy_loss=args.policy_loss,
        entropylab_cov_scope=args.cov_scope,
        entropylab_entropy_mask=None if args.entropy_mask == "none" else args.entropy_mask,
        entropylab_rho=args.rho,
        entropylab_entropy_scope=args.entropy_scope,
        entropylab_mask_normalise=args.mask_normalise,
        entropylab_dump_every=args.dump_every,
    )
    trainer = EntropyGRPOTrainer(
        model=model_dir,
        reward_funcs=task_reward_function(task),
        args=config,
        train_dataset=problems_dataset(problems, tokenizer),
        processing_class=tokenizer,
    )
    trainer.train()
    trainer.save_model(args.output_dir)
    if trainer.accelerator.is_main_process:
        last = next((h for h in reversed(trainer.state.log_history) if "entropy" in h), {})
        print(
            f"done: {trainer.state.global_step} steps in {args.output_dir}; last entropy {last.get('entropy')}, "
            f"reward {last.get('reward')}; read it with: entropylab diagnose {args.output_dir}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
