"""The training precision: the probe keeps the faster candidate, leaves the weights alone, and pre-training
records what it used; float32 and bf16 autocast train alike."""

from __future__ import annotations

import json

import pytest
import torch

from entropylab import precision as prec
from entropylab.errors import ConfigError
from entropylab.models import pretrain


class FakeClock:
    """A clock that a fake step advances by the cost given for each precision."""

    def __init__(self, cost: dict[str, float]):
        self.now, self.cost, self.calls = 0.0, cost, []

    def __call__(self) -> float:
        return self.now

    def step(self, precision: str) -> None:
        self.calls.append(precision)
        self.now += self.cost[precision]


@pytest.mark.parametrize(
    "cost, fastest", [({"float32": 0.4, "bfloat16": 3.0}, "float32"), ({"float32": 0.4, "bfloat16": 0.1}, "bfloat16")]
)
def test_probe_keeps_the_faster_precision(monkeypatch, cost, fastest):
    clock = FakeClock(cost)
    monkeypatch.setattr(prec.time, "perf_counter", clock)
    got = prec.probe(clock.step)
    assert got["precision"] == fastest
    assert got["seconds"] == pytest.approx(cost)
    if cost["bfloat16"] > 3 * cost["float32"]:  # a very slow candidate is timed once only
        assert clock.calls.count("bfloat16") == 1 and clock.calls.count("float32") == 3


def test_resolve_probes_once_per_workload_and_respects_a_fixed_choice(monkeypatch):
    monkeypatch.setattr(prec, "_chosen", {})
    clock = FakeClock({"float32": 0.2, "bfloat16": 0.1})
    monkeypatch.setattr(prec.time, "perf_counter", clock)
    first = prec.resolve("auto", clock.step, key="w")
    n = len(clock.calls)
    again = prec.resolve("auto", clock.step, key="w")
    assert first["precision"] == again["precision"] == "bfloat16" and len(clock.calls) == n
    assert first["cpu_capability"] == str(torch.backends.cpu.get_cpu_capability())
    fixed = prec.resolve("float32", clock.step, key="other")
    assert fixed["precision"] == "float32" and fixed["seconds"] == {} and len(clock.calls) == n
    with pytest.raises(ConfigError, match="precision = 'fp8'"):
        prec.resolve("fp8", clock.step, key="w")
    with pytest.raises(ConfigError, match="resolved precision"):
        with prec.autocast("auto"):
            pass


def test_model_step_leaves_the_weights_and_gradients_alone(tiny_model):
    model = tiny_model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    step = prec.model_step(model, torch.randint(4, 40, (4, 12)))
    for name in prec.PRECISIONS:
        step(name)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_pretrain_records_its_precision_and_both_precisions_learn(tmp_path):
    """The same short recipe in float32 and in bf16 autocast: both lower the loss alike, and the manifest,
    the card and the reproduce command name the precision used."""
    kw = dict(
        steps=40,
        batch_size=16,
        seq_len=96,
        lr=3e-3,
        hidden_size=64,
        num_layers=2,
        eval_problems=2,
        eval_samples=2,
        progress=False,
    )
    runs = {p: pretrain("arith", tmp_path / p, precision=p, **kw) for p in prec.PRECISIONS}
    for p, res in runs.items():
        assert res["params"]["precision"] == p
        assert res["final_loss"] < 0.7 * res["initial_loss"]
        manifest = json.loads((tmp_path / p / "entropylab.json").read_text())
        assert manifest["params"]["precision"] == p and f"--precision {p}" in manifest["command"]
        assert manifest["machine"]["cpu_capability"] == prec.cpu_capability()
        assert f"| precision | {p} |" in (tmp_path / p / "model_card.md").read_text()
    f32, b16 = (runs[p]["loss_curve"] for p in prec.PRECISIONS)
    assert abs(f32[-1] - b16[-1]) < 0.15 * f32[-1] + 0.05  # same curve up to rounding
    auto = pretrain(
        "arith",
        tmp_path / "auto",
        steps=2,
        batch_size=4,
        seq_len=32,
        hidden_size=32,
        num_layers=1,
        eval_problems=1,
        eval_samples=1,
        progress=False,
    )
    machine = auto["machine"]
    assert machine["precision_requested"] == "auto" and auto["params"]["precision"] in prec.PRECISIONS
    assert set(machine["precision_probe_seconds"]) == set(prec.PRECISIONS)
    assert "timing probe" in (tmp_path / "auto" / "model_card.md").read_text()
    with pytest.raises(ConfigError, match="precision"):
        pretrain("arith", tmp_path / "bad", precision="half", steps=1)
