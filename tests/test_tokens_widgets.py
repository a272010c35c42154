"""TokenExplorer callbacks, called directly (no front end): selection, colouring, threshold, branching."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from entropylab import rundir
from entropylab.tokens import TokensError
from entropylab.tokens.widgets import TokenExplorer


@pytest.fixture(scope="module")
def toy(sharp_model, tiny_tokenizer):
    return sharp_model, tiny_tokenizer


def synthetic_dump(tok, steps=(0, 10), prompts=3, samples=2, covariance=True) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    inv = {v: k for k, v in tok.get_vocab().items()}
    rows = []
    for step in steps:
        for p in range(prompts):
            for s in range(samples + p % 2):  # prompts have different group sizes
                length, adv = int(rng.integers(6, 12)), float(rng.normal())
                for pos in range(length):
                    tid = int(rng.integers(4, len(tok)))
                    rows.append(
                        dict(
                            step=step,
                            prompt_id=p,
                            sample_id=s,
                            position=pos,
                            token_id=tid,
                            token=inv[tid],
                            logprob=-rng.exponential(),
                            old_logprob=-rng.exponential(),
                            entropy=rng.exponential(0.5),
                            advantage=adv,
                            reward=float(adv > 0),
                            covariance=rng.normal() * 0.1,
                        )
                    )
    df = pd.DataFrame(rows)
    return df if covariance else df.drop(columns="covariance")


def n_spans(html: str) -> int:
    return html.count('class="tok')


def test_dump_explorer_selection_and_values(toy, tmp_path):
    model, tok = toy
    df = synthetic_dump(tok)
    for step, g in df.groupby("step"):
        rundir.write_dump(tmp_path, step, g)
    ex = TokenExplorer(tmp_path, model, tok)  # a run directory
    assert ex.kind == "dump" and ex.key() == {"step": 0, "prompt_id": 0, "sample_id": 0}
    assert ex.values[:4] == ["entropy", "logprob", "advantage", "covariance"]
    assert n_spans(ex.view.value) == len(ex.rows()) and "mean entropy" in ex.info.value
    # choosing a step restricts prompts; prompt 1 has three samples
    ex.step_w.value = 10
    ex.prompt_w.value = 1
    assert list(ex.sample_w.options) == [0, 1, 2]
    ex.sample_w.value = 2
    ex.on_select()
    rows = ex.rows()
    assert ex.key() == {"step": 10, "prompt_id": 1, "sample_id": 2} and n_spans(ex.view.value) == len(rows)
    assert ex.position_w.max == len(rows) - 1
    # colour by advantage: diverging scale shared by the step
    ex.select(value="advantage")
    assert ex.scale.vmin == -ex.scale.vmax and 'data-value="' + f"{rows['advantage'].iloc[0]:.4g}" in ex.view.value
    # the forking threshold follows the percentile slider
    ex.select(value="entropy", percentile=50)
    low = ex.view.value.count("tok fork")
    ex.select(percentile=95)
    assert ex.view.value.count("tok fork") <= low
    step_h = np.sort(df[df.step == 10]["entropy"].to_numpy())
    assert ex.cutoff == step_h[-int(np.ceil(0.05 * step_h.size))]  # the top 5%: the k-th largest entropy
    with pytest.raises(TokensError, match="unknown selector"):
        ex.select(colour="red")


def test_only_present_values_are_offered(toy):
    _, tok = toy
    ex = TokenExplorer(synthetic_dump(tok, covariance=False))
    assert "covariance" not in ex.values and "advantage" in ex.values
    with pytest.raises(TokensError, match="model and a tokenizer"):
        ex.branch(2)
    ex._branch_clicked()
    assert "cannot branch" in ex.branch_view.value


def test_branch_from_dump_with_prompts(toy):
    model, tok = toy
    prompts = {0: "12+3=", 1: "7*8=", 2: "(1+2)="}
    ex = TokenExplorer(synthetic_dump(tok), model, tok, prompts=prompts, max_new_tokens=12)
    ex.select(prompt=2, sample=1)
    seq = ex.current()
    prefix = ex.prefix_ids(3)
    assert prefix == tok(prompts[2])["input_ids"] + seq.token_ids[:3].tolist()
    table = ex.branch(3, n=2)
    assert table["branch"].tolist() == [-1, 0, 1]
    assert table["tokens"].iloc[0] == seq.tokens[3:]
    for _, row in table.iloc[1:].iterrows():
        assert 1 <= len(row["tokens"]) <= max(12, len(seq.tokens) - 3 + 8)
        assert len(row["entropy"]) == len(row["tokens"]) and all(np.isfinite(row["entropy"]))
        assert re.sub(r"<(pad|bos|eos|unk)>", "", "".join(row["tokens"])) == row["text"]
    html = ex.branch_view.value
    assert "original" in html and "branch 0" in html and "branch 1" in html and "branching at position 3" in html
    # the button path does the same with the widget values
    ex.position_w.value, ex.n_w.value = 1, 1
    ex._branch_clicked()
    assert ex.last_branches["branch"].tolist() == [-1, 0]
    with pytest.raises(TokensError, match="position"):
        ex.branch(999)


def test_text_explorer_profiles_and_branches(toy):
    model, tok = toy
    ex = TokenExplorer(["12+3=15\n", "so x = 4"], model, tok)
    assert ex.kind == "profile" and ex.values[:2] == ["entropy", "logprob"]
    assert "varentropy" in ex.values and "advantage" not in ex.values
    ex.select(text=1)
    assert n_spans(ex.view.value) == len(tok("so x = 4")["input_ids"])
    assert "alternatives:" in ex.view.value
    table = ex.branch(4, n=2, max_new_tokens=5)
    assert ex.prefix_ids(4) == tok("so x = 4")["input_ids"][:4]
    assert len(table) == 3 and all(len(t) <= 5 for t in table["tokens"].iloc[1:])
    assert "alternatives there" in ex.branch_view.value
    with pytest.raises(TokensError, match="position >= 1"):
        ex.branch(0)
    with pytest.raises(TokensError, match="model and tokenizer"):
        TokenExplorer(["abc"])
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
