"""A compact GRPO trainer. Read it top to bottom: one step is rollout -> reward -> advantage -> PPO epochs.

The losses, interventions and advantage estimators are pure functions looked up by name
(`entropylab.rl.losses`, `entropylab.rl.advantages`); this file only composes them and writes the run
directory described in `entropylab.rundir`. Every random choice is seeded from (seed, step), so a
run resumed from a checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from entropylab import rundir
from entropylab.diagnostics.covariance import top_means
from entropylab.errors import ConfigError, EntropylabError
from entropylab.generation import logprobs_of, sample
from entropylab.law import LiveLaw
from entropylab.precision import autocast, workload_key
from entropylab.precision import resolve as resolve_precision
from entropylab.rl.advantages import broadcast_to_tokens, get_advantage_estimator
from entropylab.rl.config import TrainConfig
from entropylab.rl.losses import compute_policy_loss, covariance_center, entropy_threshold, token_covariance
from entropylab.seeding import derive_seed

COV_QUANTILES = (0.002, 0.02, 0.2)  # top fractions of tokens by covariance, logged every step (Table 1)


def _lr_lambda(cfg: TrainConfig):
    """Multiplier of the learning rate at optimizer step `i` (one scheduler step per training step)."""

    def f(i: int) -> float:
        if cfg.warmup_steps and i < cfg.warmup_steps:
            return (i + 1) / cfg.warmup_steps
        progress = min(1.0, (i - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
        if cfg.lr_schedule == "linear":
            return 1.0 - progress
        if cfg.lr_schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return f


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device = {name!r}: CUDA is not available on this machine")
    return torch.device(name)


def _top_means(cov: np.ndarray, quantiles=COV_QUANTILES) -> dict[str, float]:
    """The step's covariance summary in the paper's Table 1 form (`entropylab.diagnostics.top_means`)."""
    if cov.size == 0:
        return {}
    tops, all_mean = top_means(cov, quantiles)
    return {"cov/mean": all_mean, **{f"cov/top{q * 100:g}%": v for q, v in zip(quantiles, tops)}}


# --------------------------------------------------------------------------- validation


@torch.no_grad()
def validate(model, tokenizer, task, problems, cfg: TrainConfig, step: int) -> dict[str, float]:
    """Validation accuracy at temperature 1 (and greedy), with the entropy of the validation samples."""
    prompts = [p.prompt for p in problems]
    model.eval()
    out = {}
    s = sample(
        model,
        tokenizer,
        prompts,
        n=1,
        max_new_tokens=cfg.max_new_tokens,
        temperature=1.0,
        seed=derive_seed(cfg.seed, step, 1),
    )
    out["val/acc"] = float(np.mean(task.reward(s.texts, problems)))
    mask = s.response_mask
    out["val/entropy"] = float((s.entropy * mask).sum() / mask.sum().clamp(min=1))
    out["val/response_length"] = float(s.n_tokens.float().mean())
    out.update(route_shares(task, s.texts, problems, prefix="route/val_"))
    if cfg.val_greedy:
        g = sample(model, tokenizer, prompts, n=1, max_new_tokens=cfg.max_new_tokens, temperature=0.0, seed=0)
        out["val/acc_greedy"] = float(np.mean(task.reward(g.texts, problems)))
    return out


def route_shares(task, texts, problems, prefix: str = "route/") -> dict[str, float]:
    """The share of each solution route among `texts` (`route/share_<name>`), for tasks whose completions
    choose a route (`ladder`: its `route_stats`); {} for others. Not `val/` keys: never a score."""
    stats = getattr(task, "route_stats", None)
    if stats is None:
        return {}
    return {
        f"{prefix}share_{k.split('/', 1)[1]}": v for k, v in stats(texts, problems).items() if k.startswith("share/")
    }


# --------------------------------------------------------------------------- the dump


def rollout_dump(step: int, samples, tokenizer, problem_ids, old_logp, adv_tok, rewards, cov, micro) -> dict:
    """Per-token rows of one step (the schema of `entropylab.rundir.DUMP_COLUMNS`) as column arrays."""
    mask = samples.response_mask.cpu().numpy()
    rows, cols = np.nonzero(mask)
    ids = samples.response_ids.cpu().numpy()[rows, cols]
    text_of = {int(i): tokenizer.decode([int(i)]) for i in np.unique(ids)}  # decode each distinct id once
    g = samples.n
    return {
        "step": np.full(rows.size, step, dtype=np.int64),
        "prompt_id": np.asarray(problem_ids, dtype=np.int64)[rows // g],
        "sample_id": (rows % g).astype(np.int64),
        "position": cols.astype(np.int64),
        "token_id": ids.astype(np.int64),
        "token": [text_of[int(i)] for i in ids],
        "logprob": samples.logprobs_t1.cpu().numpy()[rows, cols].astype(np.float32),
        "old_logprob": old_logp.cpu().numpy()[rows, cols].astype(np.float32),
        "entropy": samples.entropy.cpu().numpy()[rows, cols].astype(np.float32),
        "advantage": adv_tok.cpu().numpy()[rows, cols].astype(np.float32),
        "reward": np.asarray(rewards, dtype=np.float32)[rows],
        "covariance": cov.cpu().numpy()[rows, cols].astype(np.float32),
        "micro_batch": micro[rows].astype(np.int64),
    }


# --------------------------------------------------------------------------- the trainer


def train(cfg: TrainConfig, out: str | Path, *, resume: bool = False, progress: bool = True) -> Path:
    """Run GRPO as configured and write the run directory `out`; returns it."""
    from entropylab.models import load_model, quiet_progress
    from entropylab.progress import bar as progress_bar
    from entropylab.tasks import get_task

    run_dir = Path(out)
    checkpoints = rundir.list_checkpoints(run_dir)
    if resume:
        saved = run_dir / rundir.CONFIG
        if not saved.exists():
            raise EntropylabError(f"{run_dir}: nothing to resume (no {rundir.CONFIG})")
        from entropylab.rl.config import resolve_config

        cfg = resolve_config("grpo", saved)
    elif rundir.read_metrics(run_dir):
        raise EntropylabError(f"{run_dir} already holds a run: pass --resume to continue it, or another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / rundir.CONFIG).write_text(cfg.to_yaml())

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = _device(cfg.device)
    torch.manual_seed(cfg.seed)

    # -- model, reference model, task, optimizer
    start = checkpoints[-1] if resume and checkpoints else 0
    source = rundir.checkpoint_dir(run_dir, start) if start else cfg.model
    model, tokenizer = load_model(str(source), device=device)
    ref_model = None
    if cfg.loss.kl_coef > 0:
        ref_model, _ = load_model(cfg.model, device=device)
        ref_model.requires_grad_(False)
    task = get_task(cfg.task)
    pool = task.problems("train", seed=cfg.seed, difficulty=cfg.difficulty)
    val_problems = task.problems("val", cfg.val_problems, seed=cfg.seed, difficulty=cfg.difficulty)
    if len(pool) < cfg.prompts_per_step:
        raise ConfigError(f"prompts_per_step = {cfg.prompts_per_step}: the task has only {len(pool)} train problems")
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg))
    estimator = get_advantage_estimator(cfg.advantage)
    adv_kwargs = {"norm_std": cfg.norm_std} if cfg.advantage == "grpo" else {}

    if start:
        state = torch.load(rundir.checkpoint_dir(run_dir, start) / rundir.TRAINER_STATE, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    rundir.prune_after(run_dir, start)  # forget metric lines and dumps written after the checkpoint
    writer = rundir.MetricsWriter(run_dir)
    t0 = time.perf_counter()
    if start == 0 and cfg.val_every:
        writer.write({"step": 0, **validate(model, tokenizer, task, val_problems, cfg, 0)})

    update_precision = None  # resolved at the first update (the probe needs a real batch)
    bar = progress_bar(
        range(start + 1, cfg.steps + 1),
        desc=f"train {cfg.task}",
        unit="step",
        show=progress,
        initial=start,
        total=cfg.steps,
    )
    last_val: dict[str, float] = {}
    # the law/* keys at each validation (torch-free entropylab.law), on the validation samples' own entropy and
    # accuracy, the pairing `entropylab fit RUN_DIR` reads
    live_law = LiveLaw(val_size=cfg.val_problems)
    for r in rundir.read_metrics(run_dir) if start else []:  # resumed: the points written so far
        if r.get("step") and r.get("val/entropy") is not None and r.get("val/acc") is not None:
            live_law.update(r["step"], r["val/entropy"], r["val/acc"])
    for step in bar:
        t_step = time.perf_counter()
        rng = np.random.default_rng(derive_seed(cfg.seed, step))
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, step, 2))

        # 1. rollout: G samples for each of the step's prompts
        ids = rng.choice(len(pool), size=cfg.prompts_per_step, replace=False)
        problems = [pool[i] for i in ids]
        model.eval()
        with torch.no_grad():
            samples = sample(
                model,
                tokenizer,
                [p.prompt for p in problems],
                n=cfg.group_size,
                max_new_tokens=cfg.max_new_tokens,
                temperature=cfg.temperature,
                seed=derive_seed(cfg.seed, step, 0),
            )
        t_rollout = time.perf_counter() - t_step

        # 2. reward by the verifier, 3. group-relative advantage
        rollout_problems = [p for p in problems for _ in range(cfg.group_size)]
        rewards = task.reward(samples.texts, rollout_problems)
        rewards_t = torch.tensor(rewards, dtype=torch.float32)
        adv_seq = estimator(rewards_t, group_size=cfg.group_size, **adv_kwargs)
        input_ids, attn, mask = (t.to(device) for t in samples.to_batch())
        adv_tok = broadcast_to_tokens(adv_seq.to(device), mask)

        # the behaviour policy's log-probs: at temperature 1 the sampler already measured them (to ~1e-5 of
        # a training forward); otherwise one extra forward at the training temperature
        with torch.no_grad():
            if cfg.temperature == 1.0:
                old_logp, old_ent = (samples.logprobs_t1 * mask).to(device), (samples.entropy * mask).to(device)
            else:
                old_logp, old_ent = logprobs_of(model, input_ids, attn, mask, cfg.temperature)
            ref_logp = logprobs_of(ref_model, input_ids, attn, mask, cfg.temperature)[0] if ref_model else None
        step_center = covariance_center(old_logp, adv_tok, mask)  # the whole step: the dump's covariance
        center = step_center if cfg.loss.cov_scope in ("batch", "state") else None
        cutoff = (
            entropy_threshold(old_ent, mask, cfg.loss.rho)
            if cfg.loss.entropy_mask and cfg.loss.entropy_scope == "batch"
            else None
        )
        cov = token_covariance(old_logp, adv_tok, mask, step_center)

        # 4. PPO epochs over shuffled mini-batches, each accumulated over micro-batches
        model.train()
        if update_precision is None:
            update_precision = _update_precision(cfg, run_dir, model, input_ids, attn, mask, device)
        n_seq = input_ids.shape[0]
        micro_of = np.zeros(n_seq, dtype=np.int64)
        sums: dict[str, float] = {}
        weight_total, grad_norms, updates, skipped = 0.0, [], 0, 0
        for _epoch in range(cfg.ppo_epochs):
            perm = torch.randperm(n_seq, generator=gen)
            for mb in torch.tensor_split(perm, cfg.mini_batches):
                optimizer.zero_grad(set_to_none=True)
                mb_tokens = float(mask[mb].sum())
                finite = True
                for k, micro in enumerate(torch.split(mb, cfg.micro_batch_size)):
                    micro_of[micro.numpy()] = k
                    with autocast(update_precision, device.type):
                        logp, ent = logprobs_of(model, input_ids[micro], attn[micro], mask[micro], cfg.temperature)
                    loss, metrics = compute_policy_loss(
                        logp,
                        old_logp[micro],
                        adv_tok[micro],
                        mask[micro],
                        cfg.loss,
                        entropy=ent,
                        ref_logp=ref_logp[micro] if ref_logp is not None else None,
                        generator=gen,
                        center=center,
                        entropy_cutoff=cutoff,
                    )
                    w = (
                        float(mask[micro].sum()) / max(mb_tokens, 1.0)
                        if cfg.loss.loss_agg_mode == "token-mean"
                        else len(micro) / len(mb)
                    )
                    if not torch.isfinite(loss):
                        finite = False
                        break
                    (loss * w).backward()
                    for key, v in metrics.items():
                        sums[key] = sums.get(key, 0.0) + w * float(v)
                    weight_total += w
                if not finite:  # never train on a NaN: drop this update and log it
                    optimizer.zero_grad(set_to_none=True)
                    skipped += 1
                    continue
                grad_norms.append(
                    float(
                        torch.nn.utils.clip_grad_norm_(
                            model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
                        )
                    )
                )
                optimizer.step()
                updates += 1
        dump_step = bool(cfg.dump_every) and (step % cfg.dump_every == 0 or step == 1)
        update_change = {}
        if dump_step:  # the theory check's measurement: entropy on the same tokens before and after the update
            model.eval()
            with torch.no_grad():
                ent_after = torch.cat(
                    [
                        logprobs_of(model, input_ids[c], attn[c], mask[c], cfg.temperature)[1]
                        for c in torch.split(torch.arange(n_seq), cfg.micro_batch_size)
                    ]
                )
            n_tok = mask.sum().clamp(min=1)
            update_change = {
                "entropy/before_update": float((old_ent * mask).sum() / n_tok),
                "entropy/after_update": float((ent_after * mask).sum() / n_tok),
            }
        lr = scheduler.get_last_lr()[0]
        with warnings.catch_warnings():  # a step whose updates were all skipped (NaN) still advances the schedule
            warnings.simplefilter("ignore", UserWarning)
            scheduler.step()

        # 5. metrics of the step, appended and flushed at once
        resp_mask = samples.response_mask
        per_resp_entropy = (samples.entropy * resp_mask).sum(1) / resp_mask.sum(1).clamp(min=1)
        cov_valid = cov[mask].float().cpu().numpy()
        elapsed = time.perf_counter() - t_step
        record = {
            "step": step,
            "entropy": float(per_resp_entropy.mean()),  # token entropy averaged per response, then over data
            "entropy_token_mean": float((samples.entropy * resp_mask).sum() / resp_mask.sum().clamp(min=1)),
            "reward": float(rewards_t.mean()),
            "reward_std": float(rewards_t.std()),
            "accuracy": float((rewards_t > 0.5).float().mean()),
            "response_length": float(samples.n_tokens.float().mean()),
            **route_shares(task, samples.texts, rollout_problems),
            **{f"actor/{k}": v / max(weight_total, 1e-12) for k, v in sums.items()},
            **_top_means(cov_valid),
            **update_change,
            "grad_norm": float(np.mean(grad_norms)) if grad_norms else float("nan"),
            "lr": lr,
            "updates": updates,
            "nan_skipped": skipped,
            "tokens_per_s": float(samples.n_tokens.sum()) / elapsed,
            "rollout_s": t_rollout,
            "step_s": elapsed,
            "time_s": time.perf_counter() - t0,
        }
        if cfg.val_every and (step % cfg.val_every == 0 or step == cfg.steps):
            last_val = validate(model, tokenizer, task, val_problems, cfg, step)
            record.update(last_val)
            record.update(live_law.update(step, last_val["val/entropy"], last_val["val/acc"]))
        try:
            writer.write(record)
            if dump_step:
                dump = rollout_dump(step, samples, tokenizer, ids, old_logp, adv_tok, rewards, cov, micro_of)
                rundir.write_dump(run_dir, step, rundir.coerce_dump(pd.DataFrame(dump)))
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.steps:
                kept = {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
                with quiet_progress():
                    rundir.save_checkpoint(
                        run_dir, step, model, tokenizer, partial(torch.save, kept), keep=cfg.keep_checkpoints
                    )
        except OSError as err:
            writer.close()
            raise EntropylabError(
                f"{run_dir}: cannot write step {step} ({err.strerror or err}); "
                f"metrics.jsonl is intact up to the last complete line: fix it and --resume"
            ) from None
        bar.set_postfix(
            reward=f"{record['reward']:.3f}",
            entropy=f"{record['entropy']:.3f}",
            val=f"{last_val.get('val/acc', float('nan')):.3f}",
        )
    writer.close()
    return run_dir


def _update_precision(cfg: TrainConfig, run_dir: Path, model, input_ids, attn, mask, device) -> str:
    """The policy update's precision (`cfg.precision`; "auto": probed on one micro-batch of this step),
    recorded in RUN_DIR/precision.json. The sampler and the behaviour log-probs stay float32."""
    rows = slice(0, cfg.micro_batch_size)

    def step(name: str) -> None:
        with autocast(name, device.type):
            logp, _ = logprobs_of(model, input_ids[rows], attn[rows], mask[rows], cfg.temperature)
        logp.sum().backward()
        model.zero_grad(set_to_none=True)

    key = ("trainer", *workload_key(model, input_ids[rows]), tuple(mask[rows].shape))
    record = resolve_precision(cfg.precision, step, key)
    (run_dir / rundir.PRECISION).write_text(json.dumps(record, indent=2) + "\n")
    return record["precision"]
