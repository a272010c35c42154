"""entropy_profile: agreement with the naive full softmax, batching/padding, chunking, long texts, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from entropylab import models
from entropylab.errors import ModelError
from entropylab.tokens import TokensError
from entropylab.tokens.profile import PROFILE_COLUMNS, auto_chunk_size, entropy_profile

TEXTS = ["12+3=15\n", "what is 7*8? 56", "a", "x = (4 + 5) * 2\nso x = 18.", "##"]


@pytest.fixture(scope="module")
def qwen(sharp_model, tiny_tokenizer):
    return sharp_model, tiny_tokenizer


def naive(model, ids: list[int], top_k: int = 5) -> dict[str, np.ndarray]:
    """Reference: full logits of the whole sequence, one softmax."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits, -1)[:-1]
    p = logp.exp()
    h = -(p * logp).sum(-1)
    tgt = torch.tensor(ids[1:])
    lp = logp.gather(1, tgt[:, None])[:, 0]
    return dict(
        entropy=h.numpy(),
        varentropy=(p * (logp + h[:, None]) ** 2).sum(-1).numpy(),
        logprob=lp.numpy(),
        rank=((logp > lp[:, None]).sum(-1) + 1).numpy(),
        top_ids=torch.topk(logp, top_k, -1).indices.numpy(),
        top_probs=torch.topk(logp, top_k, -1).values.exp().numpy(),
    )


def check_against_naive(df, model, ids_list, atol=1e-4):
    for t, ids in enumerate(ids_list):
        rows = df[df.text_id == t].sort_values("position")
        assert rows["token_id"].tolist() == ids
        ref = naive(model, ids)
        assert np.isnan(rows["entropy"].iloc[0]) and rows["rank"].isna().iloc[0]
        for col in ("entropy", "varentropy", "logprob"):
            np.testing.assert_allclose(rows[col].to_numpy()[1:], ref[col], atol=atol, rtol=1e-4, err_msg=col)
        np.testing.assert_allclose(rows["prob"].to_numpy()[1:], np.exp(ref["logprob"]), rtol=1e-3, atol=1e-7)
        assert rows["rank"].to_numpy()[1:].astype(int).tolist() == ref["rank"].tolist()
        got_top = np.array(rows["top_probs"].tolist()[1:])
        np.testing.assert_allclose(got_top, ref["top_probs"], atol=1e-5)


def test_matches_naive_softmax_with_padding_and_chunks(qwen):
    model, tok = qwen
    df = entropy_profile(model, tok, TEXTS, batch_size=2, chunk_size=3, top_k=5)
    assert list(df.columns) == PROFILE_COLUMNS
    ids_list = [tok(t)["input_ids"] for t in TEXTS]
    assert len(df) == sum(len(i) for i in ids_list)
    check_against_naive(df, model, ids_list)
    # token strings decode the ids; top tokens decode the top ids
    first = df[df.text_id == 0]
    assert "".join(first["token"].tolist()[1:]) == TEXTS[0]
    row = first.iloc[3]
    assert row["top_tokens"] == [tok.decode([i]) for i in row["top_ids"]]


def test_batch_size_and_chunk_size_do_not_change_results(qwen):
    model, tok = qwen
    a = entropy_profile(model, tok, TEXTS, batch_size=1, chunk_size=1)
    b = entropy_profile(model, tok, TEXTS, batch_size=8)
    for col in ("entropy", "logprob", "varentropy"):
        np.testing.assert_allclose(a[col], b[col], atol=1e-5, equal_nan=True)


def test_inputs_ids_tensors_and_single_text(qwen):
    model, tok = qwen
    ids = tok("12+3=15")["input_ids"]
    one = entropy_profile(model, tok, "12+3=15")
    assert one["text_id"].unique().tolist() == [0]
    from_ids = entropy_profile(model, tok, ids)
    from_tensor = entropy_profile(model, tok, torch.tensor([ids, ids]))
    np.testing.assert_allclose(one["entropy"], from_ids["entropy"], equal_nan=True)
    assert from_tensor["text_id"].nunique() == 2
    no_tok = entropy_profile(model, None, [ids], top_k=0)
    assert no_tok["token"].iloc[1] == f"<{ids[1]}>" and no_tok["top_ids"].iloc[1] == []


def test_errors_empty_and_vocab_mismatch(qwen):
    model, tok = qwen
    with pytest.raises(TokensError, match="empty"):
        entropy_profile(model, tok, "")
    with pytest.raises(TokensError, match="empty"):
        entropy_profile(model, tok, [])
    with pytest.raises(TokensError, match="no tokens"):
        entropy_profile(model, tok, [[1, 5], []])
    vocab = model.config.vocab_size
    with pytest.raises(ModelError, match="does not match the model"):
        entropy_profile(model, tok, [[1, 5, vocab + 3]])
    with pytest.raises(ModelError, match="token id -1"):
        entropy_profile(model, tok, [[1, -1]])
    with pytest.raises(TokensError, match="window"):
        entropy_profile(model, tok, "ab", window="wrap")


def test_long_text_truncates_with_warning(qwen):
    model, tok = qwen
    text = "1234567890+" * 8  # 88 chars + bos > context 64
    with pytest.warns(UserWarning, match="window='slide'"):
        df = entropy_profile(model, tok, text)
    assert len(df) == 64
    check_against_naive(df, model, [tok(text)["input_ids"][:64]])


def test_sliding_window_scores_every_token_with_enough_context(qwen):
    model, tok = qwen
    ctx, stride = 16, 6
    ids = tok("abcdefghij0123456789" * 3)["input_ids"]  # 61 tokens
    df = entropy_profile(model, tok, ids, max_length=ctx, window="slide", stride=stride)
    assert len(df) == len(ids) and df["entropy"].iloc[1:].notna().all()
    got = df["entropy"].to_numpy()
    for j in range(1, len(ids)):
        begin = 0 if j < ctx else next(b for b in range(0, len(ids), stride) if b + ctx > j)
        assert j - begin >= (ctx - stride if j >= ctx else 1)
        ref = naive(model, ids[begin : begin + ctx])["entropy"][j - begin - 1]
        assert got[j] == pytest.approx(ref, abs=1e-4), j


def test_lm_head_only_sees_chunks(qwen):
    """The full [positions, vocab] logits never exist: the head runs on <= chunk_size rows at a time."""
    model = models.tiny_model(qwen[1], vocab_size=20_000, hidden_size=32, num_layers=1, max_position_embeddings=512)
    seen = []
    handle = model.lm_head.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    try:
        ids = torch.randint(0, 20_000, (2, 500))
        df = entropy_profile(model, None, ids, top_k=2)
    finally:
        handle.remove()
    chunk = auto_chunk_size(20_000)
    assert len(df) == 1000 and seen
    assert all(len(s) == 2 and s[0] <= chunk for s in seen)
    assert sum(s[0] for s in seen) == 998
    assert auto_chunk_size(150_000) * 150_000 * 4 <= 64 * 2**20


def test_any_causal_lm_gpt2(qwen):
    from transformers import GPT2Config, GPT2LMHeadModel

    _, tok = qwen
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=64)).eval()
    df = entropy_profile(model, tok, TEXTS[:3], batch_size=2, chunk_size=4)
    check_against_naive(df, model, [tok(t)["input_ids"] for t in TEXTS[:3]])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(qwen):
    model, tok = qwen
    cpu = entropy_profile(model, tok, TEXTS)
    gpu = entropy_profile(model.to("cuda"), tok, TEXTS)
    model.to("cpu")
    np.testing.assert_allclose(cpu["entropy"], gpu["entropy"], atol=1e-3, equal_nan=True)


def test_prompts_mark_and_condition_completions(qwen):
    model, tok = qwen
    prompts, completions = ["q: 1+2=?\na:", "q: 3*3=?\na:"], [" 3\n", " 9"]
    df = entropy_profile(model, tok, completions, prompts=prompts)
    full = entropy_profile(model, tok, [p + c for p, c in zip(prompts, completions)])
    np.testing.assert_allclose(df["entropy"], full["entropy"], equal_nan=True, atol=1e-6)
    assert not full["in_prompt"].any()
    for t, (p, c) in enumerate(zip(prompts, completions)):
        rows = df[df.text_id == t]
        assert rows["in_prompt"].sum() == len(tok(p)["input_ids"])
        assert "".join(rows.loc[~rows["in_prompt"], "token"]) == c
    with pytest.raises(TokensError, match="2 prompts for 1 texts"):
        entropy_profile(model, tok, [" 3"], prompts=prompts)
    with pytest.raises(TokensError, match="completion 0 is empty"):
        entropy_profile(model, tok, [""], prompts=prompts[:1])
