"""Baselines, the sampler registry, the comparison harness, the `sample` CLI body and the sampling plots."""

from __future__ import annotations

import json
import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from entropylab.compare import compare_methods, exactness_demo, run_sample_cli, sweep  # noqa: E402
from entropylab.errors import ConfigError  # noqa: E402
from entropylab.models import enumerable_model  # noqa: E402
from entropylab.sampling import (  # noqa: E402
    PowerSamples,
    get_sampler,
    list_samplers,
    sample_best_of_n,
    sample_low_temperature,
    sample_plain,
)
from entropylab.sampling.exact import empirical, sequence_logprobs, tv_distance  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def char_model(tiny_model, tiny_tokenizer):
    """A random tiny Qwen2 over the task alphabet (the shipped tokenizer), small and fast."""
    return tiny_model, tiny_tokenizer


def test_registry():
    assert list_samplers() == ["plain", "temp", "best_of_n", "mh", "smc", "sps", "mh_entropy"]
    with pytest.raises(ConfigError, match="plain, temp, best_of_n, mh, smc, sps, mh_entropy"):
        get_sampler("beam")
    model, tok = enumerable_model(5, seed=1)
    for name in list_samplers():
        s = get_sampler(name)(model, tok, ["ab", "c"], n=3, alpha=2.0, max_new_tokens=5, seed=0)
        assert isinstance(s, PowerSamples) and s.method == name
        assert len(s) == 6 and s.n == 3 and s.prompt_index.tolist() == [0, 0, 0, 1, 1, 1]
        assert s.tokens_evaluated > 0 and s.wall_time > 0
        assert torch.allclose(s.loglik, (s.logprobs_t1 * s.response_mask).sum(1), atol=1e-5)
        assert ((s.confidence > 0) & (s.confidence <= 1)).all()


def test_low_temperature_is_tokenwise_tempering():
    model, tok = enumerable_model(4, init_scale=0.2, seed=3)
    s = sample_low_temperature(model, tok, [[0]], alpha=2.0, n=16000, max_new_tokens=4, seed=0)
    exact = {k: math.exp(v) for k, v in sequence_logprobs(model, [0], 4, 3, temperature=0.5).items()}
    got = empirical(r[:k].tolist() for r, k in zip(s.response_ids, s.n_tokens))
    assert tv_distance(got, exact) < 0.05


def test_best_of_n_keeps_the_most_likely_candidate():
    model, tok = enumerable_model(5, init_scale=0.3, seed=1)
    pool = sample_plain(model, tok, ["ab", "c"], n=2 * 6, max_new_tokens=6, seed=3)
    best = sample_best_of_n(model, tok, ["ab", "c"], n=2, n_candidates=6, max_new_tokens=6, seed=3)
    assert torch.allclose(best.loglik, pool.loglik.view(4, 6).max(1).values)
    assert best.prompt_index.tolist() == [0, 0, 1, 1]
    assert best.tokens_evaluated == pool.tokens_evaluated


def test_compare_methods_on_a_task(char_model, tmp_path):
    model, tok = char_model
    opts = {"mh": {"mcmc_steps": 2, "block_size": 8}, "smc": {"n_particles": 4}, "best_of_n": {"n_candidates": 3}}
    comp = compare_methods(
        model,
        tok,
        "arith",
        n_problems=3,
        k_max=4,
        alpha=4.0,
        max_new_tokens=12,
        options=opts,
        extra_checkpoints={"same": (model, tok)},
    )
    t = comp.table.set_index("method")
    assert list(t.index) == ["plain", "temp", "best_of_n", "mh", "smc", "same"]
    assert t.loc["plain", "cost_x"] == pytest.approx(1.0)
    assert t.loc["mh", "cost_x"] > 1.0 and t.loc["best_of_n", "cost_x"] > 2.0
    assert ((t["accuracy"] >= 0) & (t["accuracy"] <= 1)).all()
    # another checkpoint's samples are re-scored with the base model: here the same model, same seed
    assert t.loc["same", "mean_logp"] == pytest.approx(t.loc["plain", "mean_logp"], abs=1e-4)
    curve = comp.pass_at_k[comp.pass_at_k["method"] == "mh"]
    assert curve["k"].tolist() == [1, 2, 3, 4] and curve["pass@k"].is_monotonic_increasing
    assert len(comp.samples) == 6 * 3 * 4
    assert {"reward", "loglik", "mean_logp", "confidence", "length"} <= set(comp.samples.columns)
    text = comp.report()
    assert "mh" in text and "cost_x" in text
    paths = comp.save(tmp_path / "cmp")
    assert all(p.exists() for p in paths)

    from entropylab.plots.sampling import plot_accuracy, plot_likelihood, plot_pass_at_k

    for fn in (plot_accuracy, plot_pass_at_k, plot_likelihood):
        fn(comp, path=tmp_path / fn.__name__)
        assert (tmp_path / f"{fn.__name__}.png").exists()
    plot_likelihood(comp, column="confidence")


def test_sweep_and_plot(char_model, tmp_path):
    model, tok = char_model
    df = sweep(
        model,
        tok,
        "arith",
        param="mcmc_steps",
        values=[0, 2],
        method="mh",
        n_problems=2,
        n=2,
        max_new_tokens=8,
        options={"block_size": 4},
    )
    assert df["value"].tolist() == [0, 2] and (df["tokens_per_sample"].diff().dropna() > 0).all()
    from entropylab.plots.sampling import plot_sweep

    plot_sweep(df, path=tmp_path / "sweep")
    assert (tmp_path / "sweep.svg").exists()


def test_run_sample_cli_writes_samples_and_summary(char_model, tmp_path):
    lines = []
    summary = run_sample_cli(
        char_model,
        "arith",
        "mh",
        4.0,
        2,
        n=2,
        max_new_tokens=8,
        mcmc_steps=1,
        block_size=4,
        out=tmp_path / "run",
        echo=lines.append,
    )
    assert summary["method"] == "mh" and summary["n_problems"] == 2 and "pass@2" in summary
    assert summary["options"] == {
        "mcmc_steps": 1,
        "block_size": 4,
        "exact": True,
        "cuts": "uniform",
        "cut_temperature": None,
    }
    rows = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {"problem", "text", "reward", "loglik"} <= set(rows[0])
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["method"] == "mh"
    assert "accuracy" in lines[0]
    with pytest.raises(ConfigError, match="known methods"):
        run_sample_cli(char_model, "arith", "greedy", echo=None)


def test_exactness_and_toy_figures(tmp_path):
    from entropylab.plots.sampling import plot_exactness, plot_toy
    from entropylab.tasks.toy import (
        first_token_marginal,
        low_temperature_distribution,
        power_distribution,
        toy_distribution,
    )

    res = exactness_demo(n_chains=500, mcmc_steps=10, n_particles=8)
    assert set(res["tv"]) == set(res["samplers"]) and res["tv"]["low temperature"] > 0.3
    assert abs(sum(res["exact"].values()) - 1) < 1e-9 and "c$" in res["exact"]
    plot_exactness(res, path=tmp_path / "exact")
    assert (tmp_path / "exact.png").exists()
    # the paper's Example 1, exactly: power prefers first token a, low temperature prefers b
    power = first_token_marginal(power_distribution(toy_distribution(), 2.0))["a"]
    low = first_token_marginal(low_temperature_distribution(toy_distribution(), 2.0))["a"]
    assert power == pytest.approx(0.16 / (0.16 + 0.125)) and low == pytest.approx(0.16 / (0.16 + 0.25))
    plot_toy(2.0, path=tmp_path / "toy")
    assert (tmp_path / "toy.png").exists()


def test_budget_sets_each_methods_knob_and_refuses_too_little():
    from entropylab.compare import budget_options
    from entropylab.errors import ConfigError

    assert budget_options("best_of_n", 400, 50)["n_candidates"] == 8
    assert budget_options("smc", 400, 50)["n_particles"] == 8
    assert budget_options("mh", 400, 50, {"block_size": 16}, unit_cost=0.5) == {"block_size": 16, "mcmc_steps": 14}
    assert budget_options("sps", 400, 50, unit_cost=2.0, base_cost=0.5)["n_rollouts"] == 3
    assert budget_options("plain", 60, 50) == {}
    with pytest.raises(ConfigError, match="n_particles would be 1"):
        budget_options("smc", 60, 50)
    with pytest.raises(ConfigError, match="mcmc_steps would be 0"):
        budget_options("mh", 60, 50, unit_cost=0.5)
    with pytest.raises(ConfigError, match="budget = 10 tokens per answer: temp needs about 50"):
        budget_options("temp", 10, 50)


def test_compare_at_a_budget_spends_about_it():
    from entropylab.compare import compare_methods
    from entropylab.models import load_model

    model, tok = load_model("fork")
    comp = compare_methods(
        model,
        tok,
        "fork",
        ["plain", "mh", "smc"],
        n_problems=6,
        k_max=2,
        budget=150,
        options={"mh": {"block_size": 64}},
    )
    spent = comp.table.set_index("method")["tokens_per_sample"]
    assert comp.meta["options"]["smc"]["n_particles"] >= 2 and comp.meta["options"]["mh"]["mcmc_steps"] >= 1
    assert 0.4 * 150 < spent["mh"] < 2.0 * 150 and 0.4 * 150 < spent["smc"] < 2.0 * 150


def test_mh_entropy_keeps_its_cut_options_when_the_cli_passes_none():
    model, tok = enumerable_model(5, seed=1)
    s = get_sampler("mh_entropy")(
        model, tok, ["ab"], n=2, alpha=2.0, max_new_tokens=4, seed=0, mcmc_steps=2, cut_temperature=None
    )
    assert s.method == "mh_entropy" and s.meta["cuts"] == "entropy" and s.meta["cut_temperature"] == 1.0
    s = get_sampler("mh_entropy")(
        model, tok, ["ab"], n=2, alpha=2.0, max_new_tokens=4, seed=0, mcmc_steps=2, cut_temperature=2.0
    )
    assert s.meta["cut_temperature"] == 2.0
