"""Token statistics, rollout-dump reading, the split-temperature decoding helpers and the token figures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from entropylab import rundir
from entropylab.errors import EntropylabError
from entropylab.tokens import (
    TokensError,
    entropy_cutoff,
    entropy_stats,
    forking_tokens,
    high_entropy_mask,
    low_entropy_tokens,
    read_rollouts,
    sequences,
    top_position_overlap,
)
from entropylab.tokens.decoding import (
    EntropySplitTemperature,
    entropy_split_temperature,
    sample_split_temperature,
    split_temperature_runner,
    temperature_grid,
)


def token_frame(seed: int = 0) -> pd.DataFrame:
    """'wait' and ' however' always high entropy, 'the' and '7' always low, others in between."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(40):
        for pos, tok in enumerate(["the", " wait", "x", "7", " however", "y", "the", "z", "q", "r"]):
            h = {"the": 0.0, "7": 0.001, " wait": 2.0 + rng.random(), " however": 1.5 + rng.random()}.get(tok)
            rows.append(dict(text_id=t, position=pos, token=tok, entropy=h if h is not None else 0.3 * rng.random()))
    return pd.DataFrame(rows)


def test_entropy_stats_matches_numpy():
    rng = np.random.default_rng(1)
    h = np.concatenate([np.zeros(600), rng.exponential(1.0, 400), [np.nan, np.nan]])
    s = entropy_stats(h)
    finite = h[np.isfinite(h)]
    assert s["n"] == 1000
    assert s["p50"] == pytest.approx(np.quantile(finite, 0.5))
    assert s["p80"] == pytest.approx(np.quantile(finite, 0.8))
    # the cutoff is the 200th largest of 1000 values, so exactly 200 tokens lie at or above it
    assert s["cutoff"] == np.sort(finite)[-200] and (finite >= s["cutoff"]).sum() == 200
    assert s["p95"] == pytest.approx(np.quantile(finite, 0.95))
    assert s["mean"] == pytest.approx(finite.mean())
    assert s["frac_below"] == pytest.approx((finite < 0.01).mean()) and s["frac_below"] >= 0.6
    assert entropy_stats(pd.DataFrame({"entropy": h}))["p80"] == s["p80"]
    with pytest.raises(TokensError):
        entropy_stats([np.nan])
    with pytest.raises(TokensError):
        entropy_cutoff([1.0, 2.0], rho=0)


def test_high_entropy_mask_top_share():
    h = np.arange(100, dtype=float)
    mask = high_entropy_mask(h, rho=0.2)
    assert mask.sum() == 20 and mask[80:].all()
    h2 = np.array([[0.1, np.nan], [3.0, 0.2]])
    assert high_entropy_mask(h2, cutoff=0.15).tolist() == [[False, False], [True, True]]


def test_forking_and_low_entropy_tokens():
    df = token_frame()
    cut = entropy_cutoff(df)
    fork = forking_tokens(df)
    assert fork.attrs["cutoff"] == pytest.approx(cut)
    assert set(fork["token"].head(2)) == {" wait", " however"}
    wait = fork.set_index("token").loc[" wait"]
    assert wait["count"] == 40 and wait["occurrences"] == 40 and wait["share_high"] == 1.0
    assert wait["mean_entropy"] == pytest.approx(df.loc[df.token == " wait", "entropy"].mean())
    assert wait["visible"] == "␣wait"
    assert "the" not in set(fork["token"])
    low = low_entropy_tokens(df)
    the = low.set_index("token").loc["the"]
    assert low["token"].iloc[0] == "the" and the["count"] == 80 and the["share_low"] == 1.0
    assert " wait" not in set(low["token"])
    # explicit cutoff, min_count, normalisation, top
    assert set(forking_tokens(df, cutoff=1.9, min_count=1)["token"]) <= {" wait", " however"}
    assert forking_tokens(df, min_count=1000).empty
    assert " wait" not in set(forking_tokens(df, normalize=True)["token"])
    assert "wait" in set(forking_tokens(df, normalize=True)["token"])
    assert len(forking_tokens(df, top=1)) == 1
    with pytest.raises(TokensError, match="token"):
        forking_tokens(df.drop(columns="token"))


def test_top_position_overlap():
    rng = np.random.default_rng(0)
    a = rng.random((8, 50))
    assert top_position_overlap(a, a) == 1.0
    assert top_position_overlap(a, -a) == 0.0
    b = a.copy()
    flat = b.ravel()
    order = np.argsort(-flat)
    k = math.ceil(flat.size * 0.2)  # 80 positions
    flat[order[:20]] = -1.0  # 20 of the top 80 of a drop out of b's top set
    assert top_position_overlap(a, b) == pytest.approx(60 / 80)
    # NaN padding is ignored; frames are aligned on their keys whatever the row order
    a_nan = np.where(np.arange(50) < 45, a, np.nan)
    assert top_position_overlap(a_nan, a_nan) == 1.0
    fa = pd.DataFrame(
        {"text_id": np.repeat(np.arange(8), 50), "position": np.tile(np.arange(50), 8), "entropy": a.ravel()}
    )
    fb = fa.assign(entropy=b.ravel()).sample(frac=1.0, random_state=0)
    assert top_position_overlap(fa, fb) == pytest.approx(60 / 80)
    assert k == 80
    with pytest.raises(TokensError, match="shape"):
        top_position_overlap(a, a[:2])


def dump_frame(steps=(0, 5)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for step in steps:
        for p in range(2):
            for s in range(2):
                for pos in range(6):
                    rows.append(
                        dict(
                            step=step,
                            prompt_id=p,
                            sample_id=s,
                            position=pos,
                            token_id=10 + pos,
                            token="ab c\nd"[pos],
                            logprob=-rng.random(),
                            old_logprob=-rng.random(),
                            entropy=rng.random(),
                            advantage=1.0 - 2 * s,
                            reward=float(s == 0),
                            covariance=rng.normal(),
                        )
                    )
    return pd.DataFrame(rows)


def test_read_rollouts_and_sequences(tmp_path):
    df = dump_frame()
    for step, g in df.groupby("step"):
        rundir.write_dump(tmp_path, step, g.sample(frac=1.0, random_state=1))
    back = read_rollouts(tmp_path)
    assert len(back) == len(df) and back["position"].iloc[:6].tolist() == list(range(6))
    assert read_rollouts(tmp_path, steps=[5])["step"].unique().tolist() == [5]
    assert len(read_rollouts(rundir.dump_path(tmp_path, 0))) == len(df) // 2
    with pytest.raises(EntropylabError, match="dumped steps"):
        read_rollouts(tmp_path, steps=[99])
    with pytest.raises(EntropylabError, match="no rollout dumps"):
        read_rollouts(tmp_path / rundir.ROLLOUTS / "missing")
    seqs = sequences(back, "advantage")
    assert len(seqs) == 8 and seqs[0].key == (0, 0, 0) and seqs[0].tokens == list("ab c\nd")
    assert seqs[1].values.tolist() == [-1.0] * 6
    np.testing.assert_allclose(seqs[0].probs, np.exp(back["logprob"].iloc[:6]))
    # the statistics work on a dump as on a profile
    assert entropy_stats(back)["n"] == len(df)
    assert forking_tokens(back, min_count=1)["count"].sum() == int(high_entropy_mask(back).sum())


# ------------------------------------------------------------------------------------------------ decoding


def test_entropy_split_temperature_applies_per_position():
    logits = torch.tensor([[0.0, 0.1, -0.1, 0.05], [10.0, 0.0, -2.0, 1.0]])  # row 0 high entropy, row 1 low
    out = entropy_split_temperature(logits, 0.5, t_high=2.0, t_low=0.5)
    torch.testing.assert_close(out[0], logits[0] / 2.0)
    torch.testing.assert_close(out[1], logits[1] / 0.5)
    batched = entropy_split_temperature(logits[None].repeat(3, 1, 1), 0.5, 2.0, 0.5)
    torch.testing.assert_close(batched[1], out)
    greedy = entropy_split_temperature(logits, 0.5, t_high=0.0, t_low=1.0)
    assert torch.isinf(greedy[0]).sum() == 3 and greedy[0, 1] == 0.1
    torch.testing.assert_close(greedy[1], logits[1])
    proc = EntropySplitTemperature(0.5, 2.0, 0.5)
    torch.testing.assert_close(proc(torch.zeros(2, 1, dtype=torch.long), logits), out)
    torch.testing.assert_close(proc(logits), out)
    assert proc.high_fraction == 0.5
    with pytest.raises(TokensError):
        entropy_split_temperature(logits, 0.5, -1.0, 1.0)


def test_split_temperature_sampling_and_grid(sharp_model, tiny_tokenizer):
    from entropylab.tasks import get_task

    model, tok = sharp_model, tiny_tokenizer
    prompts = ["12+3=", "7*8="]
    greedy, frac = sample_split_temperature(
        model, tok, prompts, entropy_cutoff=0.3, t_high=0.0, t_low=0.0, max_new_tokens=6
    )
    with torch.no_grad():
        ref = model.generate(
            torch.tensor([tok(prompts[0])["input_ids"]]), do_sample=False, max_new_tokens=6, pad_token_id=0
        )
    assert greedy[0][0] == tok.decode(ref[0, len(tok(prompts[0])["input_ids"]) :], skip_special_tokens=True)
    assert 0.0 <= frac <= 1.0
    task = get_task("arith")
    problems = task.problems("test", 3)
    run = split_temperature_runner(model, tok, problems, task.reward, entropy_cutoff=0.3, max_new_tokens=8)
    grid = temperature_grid(run, t_high=[0.5, 1.0], t_low=[1.0])
    assert list(grid.columns) == ["t_high", "t_low", "accuracy", "high_fraction", "delta"]
    assert len(grid) == 2 and grid["accuracy"].between(0, 1).all()
    fake = temperature_grid(lambda th, tl: th * 10 + tl, t_high=[1.0, 2.0], t_low=[1.0, 0.5])
    assert fake.set_index(["t_high", "t_low"])["delta"].to_dict() == {
        (1.0, 1.0): 0.0,
        (1.0, 0.5): -0.5,
        (2.0, 1.0): 10.0,
        (2.0, 0.5): 9.5,
    }
    assert fake.pivot(index="t_high", columns="t_low", values="accuracy").shape == (2, 2)


# ------------------------------------------------------------------------------------------------ figures


def test_token_figures(tmp_path):
    from entropylab.plots.style import save_figure
    from entropylab.plots.tokens import (
        plot_entropy_distribution,
        plot_forking_tokens,
        plot_temperature_grid,
        plot_token_lists,
        token_lists_text,
    )

    df = token_frame()
    fork, low = forking_tokens(df), low_entropy_tokens(df)
    figs = {
        "dist_x": plot_entropy_distribution(df),
        "dist_y": plot_entropy_distribution(df["entropy"], log="y"),
        "fork": plot_forking_tokens(fork),
        "lists": plot_token_lists(fork, low),
        "grid": plot_temperature_grid(temperature_grid(lambda a, b: a + b, [0.5, 1.0], [1.0, 2.0])),
    }
    ax = figs["dist_x"].axes[0]
    assert ax.get_xscale() == "log" and any("p80" in t.get_text() for t in ax.get_legend().get_texts())
    for name, fig in figs.items():
        paths = save_figure(fig, tmp_path / name, formats=("png",))
        assert paths[0].stat().st_size > 2000
    text = token_lists_text(fork, low)
    assert "␣wait" in text and "the" in text.splitlines()[2]
    with pytest.raises(ValueError):
        plot_entropy_distribution(df, log="z")


def test_statistics_and_rendering_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, entropylab.tokens, entropylab.plots.tokens; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-1000:]


def test_split_temperature_samples_through_the_sampler_with_its_processor(monkeypatch):
    import entropylab.generation as generation

    calls = {}

    class Out:
        def texts_by_prompt(self):
            return [["a"], ["b"]]

    def fake_sample(
        model, tokenizer, prompts, *, n=1, max_new_tokens=8, temperature=1.0, seed=0, logits_processor=None
    ):
        calls.update(prompts=prompts, temperature=temperature, proc=logits_processor)
        logits_processor(torch.tensor([[0.0, 0.0], [9.0, -9.0]]))
        return Out()

    monkeypatch.setattr(generation, "sample", fake_sample)
    texts, frac = sample_split_temperature(None, None, ["p", "q"], entropy_cutoff=0.5, t_high=1.5, t_low=0.7)
    assert texts == [["a"], ["b"]] and frac == 0.5
    assert isinstance(calls["proc"], EntropySplitTemperature) and calls["temperature"] == 1.0


def test_one_top_rho_cutoff_for_numpy_torch_and_the_trainer_mask():
    import torch

    from entropylab.cutoff import n_top, quantile_cutoff, top_cutoff
    from entropylab.rl.losses import entropy_mask, entropy_threshold

    rng = np.random.default_rng(3)
    h = rng.exponential(1.0, 37)
    k = n_top(h.size, 0.2)
    assert k == 8 and n_top(10, 0.7) == 7 and n_top(0, 0.5) == 0 and n_top(3, 0.01) == 1
    assert top_cutoff(h, 0.2) == np.sort(h)[-k] == entropy_cutoff(h, 0.2)
    t = torch.tensor(h, dtype=torch.float32)
    assert top_cutoff(t, 0.2) == pytest.approx(np.sort(h)[-k], rel=1e-6)
    assert entropy_threshold(t.view(1, -1), None, 0.2) == top_cutoff(t, 0.2)
    assert int(entropy_mask(t.view(1, -1), torch.ones(1, 37), 0.2).sum()) == k
    assert quantile_cutoff(h, 0.2) == pytest.approx(np.quantile(h, 0.8))
    assert quantile_cutoff(t, 0.2) == pytest.approx(float(torch.quantile(t, 0.8)), rel=1e-6)
    assert top_cutoff(np.zeros(0), 0.2) == quantile_cutoff(np.zeros(0), 0.2) == float("inf")
