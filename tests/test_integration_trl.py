"""entropylab's losses inside TRL's GRPOTrainer: runs, equality with compute_policy_loss, scopes, guards, dumps.

Tiny CPU runs (a seeded random tiny Qwen2) with a dense toy reward, so
advantages are not all zero. The two-process checks run under ``torch.distributed.run`` with gloo
(``accelerate launch`` needs mpirun for several CPU processes).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip(
    "trl", reason="TRL is not installed (pip install 'entropylab[trl]'): the TRL integration is optional"
)

from entropylab import rundir  # noqa: E402
from entropylab.errors import ConfigError  # noqa: E402
from entropylab.integrations import trl as etrl  # noqa: E402
from entropylab.integrations.trl import (  # noqa: E402
    EntropyDumpCallback,
    EntropyGRPOConfig,
    EntropyGRPOTrainer,
    check_trl_version,
    loss_options,
    problems_dataset,
)
from entropylab.rl.losses import LossOptions, compute_policy_loss, covariance_center, entropy_threshold  # noqa: E402

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent / "trl_scripts"


@pytest.fixture(scope="module")
def model_dir(tiny_checkpoint) -> str:
    """The random tiny model: its samples vary, so every group has reward variance and the covariance-based
    losses have tokens to act on (the trained arith model often does not)."""
    return str(tiny_checkpoint)


@pytest.fixture(scope="module")
def dataset():
    from entropylab.tasks import get_task

    return problems_dataset(get_task("arith").problems("train", 16))


def digits(prompts, completions, **kwargs) -> list[float]:
    """Dense toy reward: the share of digits in the completion."""
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


def config(out: Path, **overrides) -> EntropyGRPOConfig:
    kw = dict(
        output_dir=str(out),
        use_cpu=True,
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=12,
        max_steps=2,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
        learning_rate=1e-3,
        disable_tqdm=True,
    )
    kw.update(overrides)
    return EntropyGRPOConfig(**kw)


def train(model_dir, dataset, out: Path, **overrides) -> EntropyGRPOTrainer:
    trainer = EntropyGRPOTrainer(
        model=model_dir, reward_funcs=digits, args=config(out, **overrides), train_dataset=dataset
    )
    trainer.train()
    return trainer


CASES = {
    "clip_cov": dict(
        entropylab_policy_loss="clip_cov",
        epsilon=1.0,
        entropylab_clip_cov_ratio=0.1,
        entropylab_clip_cov_lb=0.0,
        entropylab_dump_every=1,
    ),
    "kl_cov": dict(entropylab_policy_loss="kl_cov", num_iterations=2, entropylab_kl_cov_ratio=0.05),
    "top20": dict(entropylab_entropy_mask="top", entropylab_rho=0.2),
    "bottom80": dict(entropylab_entropy_mask="bottom", entropylab_rho=0.2, entropylab_mask_normalise="all"),
}


@pytest.fixture(scope="module")
def runs(model_dir, dataset, tmp_path_factory) -> dict[str, EntropyGRPOTrainer]:
    """One 2-step run per added loss (trained once, shared by the tests below)."""
    root = tmp_path_factory.mktemp("trl_runs")
    return {name: train(model_dir, dataset, root / name, **kw) for name, kw in CASES.items()}


def history(trainer) -> list[dict]:
    state = json.loads((Path(trainer.args.output_dir) / "trainer_state.json").read_text())
    return [h for h in state["log_history"] if "entropylab/loss" in h]


@pytest.mark.parametrize("name", list(CASES))
def test_added_losses_train_and_log(runs, name):
    steps = history(runs[name])
    assert [h["step"] for h in steps] == [1, 2]
    for h in steps:
        for key in (
            "entropylab/pg_loss",
            "entropylab/mask_selected_frac",
            "entropylab/cov/top0.2%",
            "entropylab/cov/top20%",
            "entropylab/cov/mean",
            "entropy",
        ):
            assert math.isfinite(h[key]), (name, key, h)
        assert h["entropylab/cov/top0.2%"] >= h["entropylab/cov/top20%"] >= h["entropylab/cov/mean"]
    assert math.isfinite(steps[0]["reward"])  # logged when rollouts are generated
    if name == "clip_cov":
        assert all(0 < h["entropylab/clip_cov_frac"] <= 0.1 for h in steps)
    if name == "kl_cov":
        assert all(h["entropylab/kl_cov_frac"] > 0 for h in steps)
        assert steps[0]["entropylab/ppo_kl_abs"] == 0.0  # first pass: on-policy
        assert steps[1]["entropylab/ppo_kl_abs"] > 0.0  # second PPO iteration over the same rollouts
    if name == "top20":
        assert all(0.2 - 1e-6 <= h["entropylab/mask_selected_frac"] < 0.3 for h in steps)  # ceil(0.2 n) of n
    if name == "bottom80":
        assert all(0.7 < h["entropylab/mask_selected_frac"] <= 0.8 + 1e-6 for h in steps)


class _Spy:
    """Records what EntropyGRPOTrainer._compute_loss receives, hands to entropylab_loss and returns."""

    def __init__(self, trainer, monkeypatch):
        self.calls: list[dict] = []
        real_loss, real_compute = etrl.entropylab_loss, trainer._compute_loss

        def spy_loss(acc, logp, old, adv, mask, opts, *, generator=None, **kw):
            self.calls[-1]["generator_state"] = generator.get_state()
            return real_loss(acc, logp, old, adv, mask, opts, generator=generator, **kw)

        def spy_compute(model, inputs):
            self.calls.append({"inputs": inputs})
            loss = real_compute(model, inputs)
            ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
            att = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
            with torch.no_grad():  # TRL's own scoring of the same batch, before the optimizer step
                logps, ent, _ = trainer._get_per_token_logps_and_entropies(
                    model, ids, att, inputs["completion_ids"].size(1), compute_entropy=True
                )
            self.calls[-1].update(loss=loss.detach(), logps=logps, entropies=ent)
            return loss

        monkeypatch.setattr(etrl, "entropylab_loss", spy_loss)
        monkeypatch.setattr(trainer, "_compute_loss", spy_compute)


@pytest.mark.parametrize(
    "setup",
    [
        dict(
            entropylab_policy_loss="clip_cov",
            epsilon=1.0,
            entropylab_clip_cov_ratio=0.1,
            entropylab_clip_cov_lb=0.0,
            entropylab_entropy_mask="top",
        ),
        dict(
            entropylab_policy_loss="kl_cov",
            loss_type="grpo",
            gradient_accumulation_steps=2,
            num_iterations=2,
            per_device_train_batch_size=4,
            entropylab_kl_cov_ratio=0.05,
            entropylab_entropy_mask="bottom",
            entropylab_mask_normalise="all",
        ),
    ],
    ids=["dapo-clip_cov-top20", "grpo-accum2-kl_cov-bottom80"],
)
def test_loss_equals_compute_policy_loss(model_dir, dataset, tmp_path, monkeypatch, setup):
    trainer = EntropyGRPOTrainer(
        model=model_dir, reward_funcs=digits, args=config(tmp_path, **setup), train_dataset=dataset
    )
    spy = _Spy(trainer, monkeypatch)
    trainer.train()
    assert len(spy.calls) == 2 * trainer.args.gradient_accumulation_steps
    accumulation = trainer.args.gradient_accumulation_steps
    for call in spy.calls:
        inputs = call["inputs"]
        mask = inputs["completion_mask"]
        old = inputs.get("old_per_token_logps")
        old = call["logps"] if old is None else old
        adv = inputs["advantages"].unsqueeze(1).expand_as(call["logps"])
        gen = torch.Generator().manual_seed(0)
        gen.set_state(call["generator_state"])
        expected, _ = compute_policy_loss(
            call["logps"], old, adv, mask, trainer.entropylab_options, entropy=call["entropies"], generator=gen
        )
        if trainer.loss_type == "dapo":  # token sum over TRL's global token count of the accumulation window
            expected = (
                expected
                * mask.sum()
                / (inputs["num_items_in_batch"] * accumulation / trainer.args.steps_per_generation)
            )
        else:
            expected = expected / accumulation
        torch.testing.assert_close(call["loss"], expected.float(), rtol=1e-5, atol=1e-6)


def test_batch_scope_on_one_process_equals_micro(runs):
    acc = runs["clip_cov"].accelerator
    assert acc.num_processes == 1
    g = torch.Generator().manual_seed(3)
    logp, ent = -3 * torch.rand(6, 9, generator=g), 2 * torch.rand(6, 9, generator=g)
    old = logp + 0.2 * torch.randn(6, 9, generator=g)
    adv = torch.randn(6, 1, generator=g).expand(6, 9)
    mask = torch.arange(9)[None] < torch.tensor([9, 3, 7, 5, 8, 6])[:, None]
    assert etrl.batch_center(acc, logp, adv, mask) == covariance_center(logp, adv, mask)
    assert etrl.batch_entropy_cutoff(acc, ent, mask, 0.2) == entropy_threshold(ent, mask, 0.2)
    assert etrl.batch_entropy_cutoff(acc, ent, mask, 0.3, "quantile") == pytest.approx(
        float(torch.quantile(ent[mask], 0.7))
    )
    for policy in ("clip_cov", "kl_cov"):
        common = dict(policy_loss=policy, clip_cov_ratio=0.2, clip_cov_lb=0.0, kl_cov_ratio=0.1, entropy_mask="top")
        batch = etrl.entropylab_loss(
            acc,
            logp,
            old,
            adv,
            mask,
            LossOptions(cov_scope="batch", entropy_scope="batch", **common),
            entropy=ent,
            generator=torch.Generator().manual_seed(5),
        )
        micro, metrics = compute_policy_loss(
            logp, old, adv, mask, LossOptions(**common), entropy=ent, generator=torch.Generator().manual_seed(5)
        )
        assert not batch.shared
        assert batch.center == covariance_center(logp, adv, mask)
        assert batch.cutoff == entropy_threshold(ent, mask, 0.2)
        torch.testing.assert_close(batch.loss, micro)
        assert batch.metrics == metrics


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(script: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "TOKENIZERS_PARALLELISM": "false",
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(script),
        *args,
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def two_processes(model_dir, tmp_path_factory) -> Path:
    """tests/trl_scripts/two_process.py on 2 CPU processes (gloo): the selection check and one trainer step."""
    out = tmp_path_factory.mktemp("two_processes")
    _torchrun(SCRIPTS / "two_process.py", model_dir, str(out))
    return out


def test_two_processes_select_the_tokens_one_process_selects(two_processes):
    results = json.loads((two_processes / "selection.json").read_text())
    assert set(results) == {
        "clip_cov",
        "kl_cov",
        "top20_selected",
        "bottom80_all",
        "top25_quantile",
        "clip_cov_top20_seqmean",
    }
    for name, r in results.items():
        assert r["selection_equal"], name
        assert 0 < r["n_selected"] < r["n_valid"], name
        assert r["center_2p"] == pytest.approx(r["center_1p"], abs=1e-12), name
        assert r["cutoff_2p"] == pytest.approx(r["cutoff_1p"], abs=1e-7), name
        if r["shared"]:  # Clip-Cov / KL-Cov in batch scope: the very loss of one process over all tokens
            assert r["loss_2p"] == pytest.approx(r["loss_1p"], abs=1e-6), name
            assert r["grad_max_diff"] < 1e-6 and r["metrics_equal"], name
        elif name != "top20_selected":  # per-process token means, rescaled as the trainer does, give the global one
            assert r["grad_rescaled_max_diff"] < 1e-6, name
    assert {n for n, r in results.items() if r["shared"]} == {"clip_cov", "kl_cov", "clip_cov_top20_seqmean"}


def test_two_process_trainer_step(two_processes):
    import pandas as pd

    run = two_processes / "run"
    state = json.loads((run / "trainer_state.json").read_text())
    step1 = state["log_history"][0]
    assert step1["step"] == 1 and 0 < step1["entropylab/clip_cov_frac"] <= 0.1
    assert 0.2 - 1e-6 <= step1["entropylab/mask_selected_frac"] < 0.3
    dump = pd.read_parquet(rundir.dump_path(run, 1))
    assert sorted(dump["prompt_id"].unique()) == [0, 1]  # one prompt's group on each process
    assert set(dump["sample_id"]) == {0, 1, 2, 3}


# ------------------------------------------------------------------------------------------- guards


@pytest.mark.parametrize("version", ["1.13.0", "1.17.0", "0.20.0", "2.0.0"])
def test_version_outside_the_range_is_refused(version):
    with pytest.raises(ConfigError, match=r"supports trl>=1\.14,<1\.17"):
        check_trl_version(version)


def test_version_guard_at_construction(monkeypatch, tmp_path, model_dir):
    import trl

    assert check_trl_version() == trl.__version__
    monkeypatch.setattr(trl, "__version__", "1.20.0")
    with pytest.raises(ConfigError, match="trl 1.20.0 is installed"):
        config(tmp_path)
    with pytest.raises(ConfigError, match="trl 1.20.0 is installed"):
        EntropyGRPOTrainer(model=model_dir, reward_funcs=digits, args=None)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(top_entropy_quantile=0.2, entropylab_entropy_mask="top"), "two masks"),
        (dict(loss_type="cispo"), "loss_type = 'cispo'"),
        (dict(loss_type="sapo"), "loss_type = 'sapo'"),
        (dict(entropylab_loss_agg_mode="seq-mean-token-mean"), "conflicts with loss_type = 'dapo'.*'grpo'"),
        (dict(entropy_coef=0.01), "entropylab_entropy_coef"),
        (dict(importance_sampling_level="sequence", loss_type="grpo"), "importance_sampling_level"),
        (dict(delta=2.0), "delta"),
        (dict(entropylab_rho=0.0), "entropylab_rho"),
        (dict(entropylab_policy_loss="clip_higher"), "entropylab_policy_loss"),
        (dict(entropylab_cov_scope="global"), "entropylab_cov_scope"),
        (dict(entropylab_entropy_cutoff="median"), "entropylab_entropy_cutoff"),
    ],
)
def test_incompatible_options_fail_at_construction(tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match):
        config(tmp_path, **overrides)


def test_liger_loss_and_plain_config_refused_by_the_trainer(tmp_path, model_dir, dataset):
    from trl import GRPOConfig

    args = config(tmp_path, entropylab_policy_loss="clip_cov")
    args.use_liger_loss = True  # the flag of TRL versions with a fused GRPO loss
    with pytest.raises(ConfigError, match="use_liger_loss"):
        EntropyGRPOTrainer(model=model_dir, reward_funcs=digits, args=args, train_dataset=dataset)
    with pytest.raises(ConfigError, match="EntropyGRPOConfig"):
        EntropyGRPOTrainer(
            model=model_dir,
            reward_funcs=digits,
            args=GRPOConfig(output_dir=str(tmp_path), use_cpu=True),
            train_dataset=dataset,
        )


def test_kl_cov_on_policy_warns(tmp_path):
    with pytest.warns(UserWarning, match="no effect"):
        config(tmp_path, entropylab_policy_loss="kl_cov")


def test_trl_entropy_quantile_is_translated(tmp_path):
    args = config(tmp_path, top_entropy_quantile=0.2)
    opts = loss_options(args)
    assert (opts.entropy_mask, opts.rho, opts.entropy_scope, opts.mask_normalise) == ("top", 0.2, "batch", "all")
    assert etrl._entropy_cutoff_method(args) == "quantile"
    dr = loss_options(config(tmp_path, loss_type="dr_grpo", max_completion_length=12))
    assert (dr.loss_agg_mode, dr.norm_len) == ("seq-mean-token-sum-norm", 12)
    assert loss_options(config(tmp_path, loss_type="grpo", beta=0.04)).kl_coef == 0.04


def test_hf_argument_parser_reads_the_options(tmp_path):
    from transformers import HfArgumentParser

    (args,) = HfArgumentParser(EntropyGRPOConfig).parse_args_into_dataclasses(
        [
            "--output_dir",
            str(tmp_path),
            "--use_cpu",
            "true",
            "--entropylab_policy_loss",
            "clip_cov",
            "--entropylab_entropy_mask",
            "top",
            "--entropylab_clip_ratio_c",
            "3.0",
            "--entropylab_rho",
            "0.3",
            "--entropylab_cov_scope",
            "batch",
            "--entropylab_dump_every",
            "5",
        ]
    )
    opts = loss_options(args)
    assert (opts.policy_loss, opts.entropy_mask, opts.clip_ratio_c, opts.rho, opts.cov_scope) == (
        "clip_cov",
        "top",
        3.0,
        0.3,
        "batch",
    )
    (none,) = HfArgumentParser(EntropyGRPOConfig).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--use_cpu", "true", "--entropylab_entropy_mask", "none"]
    )
    assert none.entropylab_entropy_mask is None


# ------------------------------------------------------------------------------------ dumps and logs


def test_dump_is_readable_and_the_run_loads(runs, tmp_path):
    from entropylab import logs
    from entropylab.diagnostics import diagnose

    run = Path(runs["clip_cov"].args.output_dir)
    dump = rundir.read_dumps(run)
    assert set(rundir.DUMP_COLUMNS) <= set(dump.columns) and "micro_batch" in dump.columns
    assert sorted(dump["step"].unique()) == [1, 2]
    assert (dump["sample_id"] < 4).all() and dump["prompt_id"].nunique() == 2
    assert dump["reward"].between(0, 1).all() and (dump["entropy"] > 0).all()
    one = dump[dump["step"] == 1]
    a, lp = one["advantage"].astype(float), one["logprob"].astype(float)
    assert one["covariance"].to_numpy() == pytest.approx(((a - a.mean()) * (lp - lp.mean())).to_numpy(), abs=1e-5)
    diag = diagnose(run, tmp_path / "diag")
    assert len(diag.table) and diag.files

    df = logs.load(run)
    assert list(df["step"]) == [1, 2]
    assert df["entropy"].notna().all() and df["reward"].notna().all()
    assert "entropylab/clip_cov_frac" in df.columns
    assert not (Path(runs["top20"].args.output_dir) / rundir.ROLLOUTS).exists()  # no dumps unless asked


def test_dump_callback_needs_the_entropylab_trainer():
    with pytest.raises(ConfigError, match="EntropyGRPOTrainer"):
        EntropyDumpCallback(every=2).on_train_begin(None, None, None)
    with pytest.raises(ConfigError, match="every"):
        EntropyDumpCallback(every=0)


def test_example_runs_on_cpu(model_dir, tmp_path):
    spec = importlib.util.spec_from_file_location("trl_clip_cov", ROOT / "examples" / "trl_clip_cov.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "example"
    assert (
        example.main(
            [
                "--model",
                model_dir,
                "--task",
                "arith",
                "--output-dir",
                str(out),
                "--policy-loss",
                "clip_cov",
                "--max-steps",
                "2",
                "--batch-size",
                "8",
                "--num-generations",
                "4",
                "--max-completion-length",
                "12",
                "--n-problems",
                "16",
                "--dump-every",
                "1",
                "--cpu",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    state = json.loads((out / "trainer_state.json").read_text())
    assert any("entropylab/clip_cov_frac" in h for h in state["log_history"])
    assert rundir.dump_path(out, 2).is_file() and (out / "config.json").is_file()
