"""LawForecastCallback in TRL's GRPOTrainer: a short run on the shipped tiny arith model refits the law at
every evaluation, logs law/* keys through the trainer, and stops when the headroom is below a threshold."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip(
    "trl", reason="TRL is not installed (pip install 'entropylab[trl]'): the TRL integration is optional"
)

import torch  # noqa: E402

from entropylab import law  # noqa: E402
from entropylab.errors import ConfigError  # noqa: E402
from entropylab.integrations.trl import EntropyGRPOConfig, EntropyGRPOTrainer, LawForecastCallback, problems_dataset  # noqa: E402

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
ARITH = str(Path(__file__).resolve().parents[1] / "data" / "models" / "arith")


@pytest.fixture(scope="module")
def data():
    from entropylab.tasks import get_task

    task = get_task("arith")
    return problems_dataset(task.problems("train", 16)), problems_dataset(task.problems("val", 8))


def digits(prompts, completions, **kwargs) -> list[float]:
    """Dense toy reward (the share of digits): 12-token completions rarely finish an arith answer."""
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


def run(tmp_path: Path, data, callback: LawForecastCallback, max_steps: int) -> EntropyGRPOTrainer:
    train, val = data
    args = EntropyGRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        num_generations=4,
        num_generations_eval=4,
        max_completion_length=12,
        max_steps=max_steps,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="steps",
        eval_steps=1,
        report_to=[],
        seed=0,
        learning_rate=1e-3,
        disable_tqdm=True,
    )
    trainer = EntropyGRPOTrainer(
        model=ARITH, reward_funcs=digits, args=args, train_dataset=train, eval_dataset=val, callbacks=[callback]
    )
    assert callback.trainer is trainer  # bound by the trainer
    trainer.evaluate()  # step 0: the law's first point, before training
    trainer.train()
    return trainer


def test_callback_logs_the_law_at_each_evaluation(tmp_path: Path, data):
    cb = LawForecastCallback(val_size=8)
    trainer = run(tmp_path, data, cb, max_steps=2)
    history = trainer.state.log_history  # train() starts a new history: the evaluation at step 0 is not in it
    evals = [h for h in history if "eval_reward" in h]
    assert [h["step"] for h in evals] == [1, 2] and cb.live.steps == [0.0, 1.0, 2.0]
    assert cb.live.H[1:] == [h["eval_entropy"] for h in evals] and cb.live.R[1:] == [h["eval_reward"] for h in evals]
    logged = [h for h in history if "law/ceiling" in h]
    assert [h["step"] for h in logged] == [2]  # the third evaluation gives the third point: the first fit
    entry = logged[0]
    assert set(law.LAW_KEYS) <= set(entry) and all(math.isfinite(entry[k]) for k in law.LAW_KEYS)
    assert not any(k.startswith(("eval_", "entropylab/")) for k in entry)  # only the law's keys in its entry
    fit = law.fit_law(H=cb.live.H, R=cb.live.R, steps=cb.live.steps, val_size=8)
    assert entry["law/ceiling"] == pytest.approx(fit.ceiling)
    assert [entry["law/ceiling_low"], entry["law/ceiling_high"]] == pytest.approx(list(fit.ceiling_ci))
    assert entry["law/headroom"] == pytest.approx(law.headroom(fit, fit.H[-1]))
    state = json.loads((tmp_path / "trainer_state.json").read_text())  # what logs.load and watch read
    assert any("law/ceiling" in h for h in state["log_history"])
    assert cb.stopped_at is None and trainer.state.global_step == 2


def test_stop_when_headroom_below(tmp_path: Path, data):
    cb = LawForecastCallback(stop_when_headroom_below=math.inf, require_ok=False)
    trainer = run(tmp_path, data, cb, max_steps=4)
    assert cb.stopped_at == 2 and trainer.state.global_step == 2  # stopped at the first fit, 2 steps early


def test_callback_options():
    with pytest.raises(ConfigError, match="stop_when_headroom_below"):
        LawForecastCallback(stop_when_headroom_below=float("nan"))
    cb = LawForecastCallback()

    class State:
        global_step, log_history, is_world_process_zero = 3, [{"entropy": 0.5, "step": 3}], True

    class Control:
        should_training_stop = False

    with pytest.warns(UserWarning, match="no evaluation score"):
        cb.on_evaluate(None, State(), Control(), metrics={"eval_loss": 0.1})
    for step, (h, r) in enumerate([(0.9, 0.1), (0.7, 0.3), (0.5, 0.45)], 1):
        State.global_step, State.log_history = step, [{"entropy": h, "step": step}]
        cb.on_evaluate(None, State(), Control(), metrics={"eval_rewards/acc/mean": r, "eval_loss": 0.1})
    assert len(cb.live.H) == 3 and cb.live.H == [0.9, 0.7, 0.5]  # the training entropy, without a trainer
    assert State.log_history[-1]["law/ceiling"] == pytest.approx(cb.live.fit.ceiling)
