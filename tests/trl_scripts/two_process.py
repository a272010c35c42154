"""Two CPU processes (gloo) vs one: entropylab's TRL loss in batch scope, then one real trainer step.

Run with ``python -m torch.distributed.run --nproc_per_node 2 two_process.py MODEL_DIR OUT_DIR``
(``accelerate launch`` needs mpirun for several CPU processes; on GPUs use ``accelerate launch``).

1. Token selection. Fixed tensors of 8 responses are split 4 + 4 across the ranks (their padded lengths
   differ); each rank calls ``entropylab_loss`` on its share -- the function ``EntropyGRPOTrainer._compute_loss``
   calls -- and back-propagates. Rank 0 then evaluates ``compute_policy_loss`` once over the concatenated tokens
   (batch centre, batch cutoff, the same random seed) and compares, case by case: the loss, the metrics, the
   per-token gradients of the log-probs (zero exactly where Clip-Cov zeroed a token or the entropy mask dropped
   one; larger by ``beta*sign`` where KL-Cov penalised one), hence the selected token sets. -> OUT_DIR/selection.json
2. One EntropyGRPOTrainer step with Clip-Cov and the top-20% mask in batch scope -> OUT_DIR/run
   (``trainer_state.json`` and a rollout dump holding both processes' tokens).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)

from accelerate import Accelerator  # noqa: E402

from entropylab.integrations.trl import (  # noqa: E402
    EntropyGRPOConfig,
    EntropyGRPOTrainer,
    batch_center,
    batch_entropy_cutoff,
    entropylab_loss,
    problems_dataset,
)
from entropylab.rl.losses import LossOptions, compute_policy_loss, covariance_center, entropy_threshold  # noqa: E402
from entropylab.tasks import get_task  # noqa: E402

CASES = {
    "clip_cov": dict(
        policy_loss="clip_cov",
        cov_scope="batch",
        clip_cov_ratio=0.2,
        clip_cov_lb=0.0,
        clip_cov_ub=50.0,
        clip_ratio_low=1.0,
        clip_ratio_high=1.0,
    ),
    "kl_cov": dict(policy_loss="kl_cov", cov_scope="batch", kl_cov_ratio=0.1),
    "top20_selected": dict(entropy_mask="top", rho=0.2, entropy_scope="batch", mask_normalise="selected"),
    "bottom80_all": dict(entropy_mask="bottom", rho=0.2, entropy_scope="batch", mask_normalise="all"),
    "top25_quantile": dict(entropy_mask="top", rho=0.25, entropy_scope="batch", mask_normalise="all"),
    "clip_cov_top20_seqmean": dict(
        policy_loss="clip_cov",
        cov_scope="batch",
        clip_cov_ratio=0.2,
        clip_cov_lb=0.0,
        clip_cov_ub=50.0,
        entropy_mask="top",
        rho=0.3,
        entropy_scope="batch",
        loss_agg_mode="seq-mean-token-mean",
    ),
}


def fixed_tensors() -> dict[str, torch.Tensor]:
    """8 responses of up to 12 tokens: rows 0-3 end by position 10 (rank 0's width is 10), rows 4-7 use 12."""
    g = torch.Generator().manual_seed(1234)
    lengths = torch.tensor([10, 7, 4, 9, 12, 5, 11, 8])
    mask = torch.arange(12)[None, :] < lengths[:, None]
    logp = -torch.rand(8, 12, generator=g) * 3.0
    old = logp + 0.3 * torch.randn(8, 12, generator=g)
    adv = torch.randn(8, 1, generator=g).expand(8, 12).clone()
    ent = torch.rand(8, 12, generator=g) * 2.0
    return {
        k: torch.where(mask, v, torch.zeros_like(v)) for k, v in dict(logp=logp, old=old, adv=adv, ent=ent).items()
    } | {"mask": mask}


def run_case(acc: Accelerator, name: str, opts: LossOptions, data: dict[str, torch.Tensor]) -> dict | None:
    rank, width = acc.process_index, (10 if acc.process_index == 0 else 12)
    rows = slice(4 * rank, 4 * rank + 4)
    local = {k: v[rows, :width].clone() for k, v in data.items()}
    logp = local["logp"].clone().requires_grad_(True)
    ent = local["ent"].clone().requires_grad_(True)
    method = "quantile" if name.endswith("quantile") else "topk"
    gen = torch.Generator().manual_seed(7)
    res = entropylab_loss(
        acc, logp, local["old"], local["adv"], local["mask"], opts, entropy=ent, generator=gen, cutoff_method=method
    )
    res.loss.backward()
    grad = torch.nn.functional.pad(logp.grad, (0, 12 - width))
    grads = acc.gather(grad)  # [8, 12] in rank order
    center = batch_center(acc, local["logp"], local["adv"], local["mask"])
    cutoff = batch_entropy_cutoff(acc, local["ent"], local["mask"], opts.rho, method)
    if rank != 0:
        return None

    # one process over the concatenated tokens
    full_logp = data["logp"].clone().requires_grad_(True)
    ref_center = covariance_center(data["logp"], data["adv"], data["mask"])
    ref_cutoff = (
        float(torch.quantile(data["ent"][data["mask"]], 1 - opts.rho))
        if method == "quantile"
        else entropy_threshold(data["ent"], data["mask"], opts.rho)
    )
    ref_loss, ref_metrics = compute_policy_loss(
        full_logp,
        data["old"],
        data["adv"],
        data["mask"],
        opts,
        entropy=data["ent"],
        generator=torch.Generator().manual_seed(7),
        center=ref_center if opts.cov_scope == "batch" else None,
        entropy_cutoff=ref_cutoff if opts.entropy_scope == "batch" and opts.entropy_mask else None,
    )
    ref_loss.backward()
    ref_grad = full_logp.grad
    mask = data["mask"]
    selected_2p = (grads.abs() > 0) & mask
    selected_1p = (ref_grad.abs() > 0) & mask
    if opts.policy_loss == "kl_cov":  # penalised tokens: the gradient differs from the plain -A*ratio/N
        base = -data["adv"] * torch.exp(data["logp"] - data["old"]) / mask.sum()
        selected_2p = ((grads - base).abs() > 1e-6) & mask
        selected_1p = ((ref_grad - base).abs() > 1e-6) & mask
    # a per-process loss (not shared) is that process's token mean: with mask_normalise="all", scaling it by the
    # process's share of the valid tokens (what EntropyGRPOTrainer does for loss_type="dapo") gives the global one
    share = torch.cat([mask[:4].sum().expand(4), mask[4:].sum().expand(4)]).float()[:, None] / mask.sum()
    return {
        "shared": res.shared,
        "grad_rescaled_max_diff": float((grads * share - ref_grad).abs().max()),
        "loss_2p": res.loss.item(),
        "loss_1p": ref_loss.item(),
        "metrics_equal": all(abs(res.metrics[k] - ref_metrics[k]) < 1e-6 for k in ref_metrics),
        "metrics_2p": res.metrics,
        "metrics_1p": ref_metrics,
        "grad_max_diff": float((grads - ref_grad).abs().max()),
        "selection_equal": bool(torch.equal(selected_2p, selected_1p)),
        "n_selected": int(selected_1p.sum()),
        "n_valid": int(mask.sum()),
        "center_2p": list(center),
        "center_1p": list(ref_center),
        "cutoff_2p": cutoff,
        "cutoff_1p": ref_cutoff,
    }


def selection(path: Path) -> None:
    acc = Accelerator(cpu=True)
    assert acc.num_processes == 2, f"expected 2 processes, got {acc.num_processes}"
    data = fixed_tensors()
    results = {}
    for name, kwargs in CASES.items():
        out = run_case(acc, name, LossOptions(**kwargs), data)
        if out is not None:
            results[name] = out
    if acc.is_main_process:
        path.write_text(json.dumps(results, indent=1))
        print("two-process selection:", {k: (v["selection_equal"], v["grad_max_diff"]) for k, v in results.items()})


# ------------------------------------------------------------------ one real trainer step


def digits(prompts, completions, **kwargs) -> list[float]:
    """A dense toy reward (share of digits), so a random model's advantages are not all zero."""
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


def trainer_step(model_dir: str, output_dir: Path) -> None:
    args = EntropyGRPOConfig(
        output_dir=str(output_dir),
        use_cpu=True,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        max_steps=1,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
        learning_rate=1e-3,
        epsilon=1.0,
        entropylab_policy_loss="clip_cov",
        entropylab_cov_scope="batch",
        entropylab_clip_cov_ratio=0.1,
        entropylab_clip_cov_lb=0.0,
        entropylab_entropy_mask="top",
        entropylab_entropy_scope="batch",
        entropylab_dump_every=1,
        disable_tqdm=True,
    )
    dataset = problems_dataset(get_task("arith").problems("train", 8))
    trainer = EntropyGRPOTrainer(model=model_dir, reward_funcs=digits, args=args, train_dataset=dataset)
    assert trainer.accelerator.num_processes == 2, trainer.accelerator.num_processes
    trainer.train()
    if trainer.accelerator.is_main_process:
        print("two-process trainer done:", trainer.state.log_history[0].get("entropylab/clip_cov_frac"))


def main() -> None:
    model_dir, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    selection(out / "selection.json")
    trainer_step(model_dir, out / "run")


if __name__ == "__main__":
    main()
