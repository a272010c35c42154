"""The batched KV-cached sampler: determinism, exact log-probs/entropy, truncation, EOS, ordering, errors."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, Qwen3Config

from entropylab import models
from entropylab.decoder import truncate
from entropylab.errors import ModelError
from entropylab.generation import continue_sampling, left_pad, logprobs_of, sample

PROMPTS = ["q: 12+7=?\na:", "q: 3+4-1=?\na:", "x", "q: 99-12+40-3=?\na: 99"]


@pytest.fixture(scope="module")
def tok(tiny_tokenizer):
    return tiny_tokenizer


def _model(config):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.fixture(scope="module")
def model(tok):
    return models.tiny_model(tok, seed=0, hidden_size=64, num_layers=2, max_position_embeddings=128)


def _reference(model, s):
    """Per-row log p(token) and entropy from a plain full forward of each unpadded sequence."""
    lp = torch.zeros_like(s.logprobs_t1)
    ent = torch.zeros_like(s.entropy)
    with torch.no_grad():
        for r in range(len(s)):
            prompt = s.prompt_ids[int(s.prompt_index[r])]
            resp = s.response_ids[r][s.response_mask[r]].tolist()
            ids = torch.tensor([prompt + resp])
            logp = torch.log_softmax(model(ids).logits[0].float(), -1)[len(prompt) - 1 : -1]
            lp[r, : len(resp)] = logp.gather(1, torch.tensor(resp)[:, None])[:, 0]
            ent[r, : len(resp)] = -(logp.exp() * logp).sum(-1)
    return lp, ent


def test_same_seed_same_samples(model, tok):
    a = sample(model, tok, PROMPTS, n=3, max_new_tokens=12, seed=5)
    b = sample(model, tok, PROMPTS, n=3, max_new_tokens=12, seed=5)
    c = sample(model, tok, PROMPTS, n=3, max_new_tokens=12, seed=6)
    assert torch.equal(a.response_ids, b.response_ids) and a.texts == b.texts
    assert torch.equal(a.logprobs, b.logprobs)
    assert not torch.equal(a.response_ids, c.response_ids)


@pytest.mark.parametrize("backend", ["fast", "hf"])
def test_logprobs_and_entropy_match_full_forward(model, tok, backend):
    s = sample(model, tok, PROMPTS, n=2, max_new_tokens=15, seed=1, backend=backend, eos_token_id=[5, 9])
    assert s.response_mask.sum(1).min() < s.response_mask.shape[1]  # some rows stopped early (mixed lengths)
    lp, ent = _reference(model, s)
    torch.testing.assert_close(s.logprobs_t1, lp, atol=1e-4, rtol=0)
    torch.testing.assert_close(s.entropy, ent, atol=1e-4, rtol=0)
    torch.testing.assert_close(s.logprobs, s.logprobs_t1)  # temperature 1, no truncation: q == p
    ids, mask, rmask = s.to_batch()  # left-padded prompts + responses
    with torch.no_grad():
        lp2, ent2 = logprobs_of(model, ids, mask, rmask, chunk_size=3)
    torch.testing.assert_close(lp2, lp, atol=1e-4, rtol=0)
    torch.testing.assert_close(ent2, ent, atol=1e-4, rtol=0)


def test_fast_and_hf_backends_agree(model, tok):
    a = sample(model, tok, PROMPTS, n=2, max_new_tokens=10, seed=3, backend="fast")
    b = sample(model, tok, PROMPTS, n=2, max_new_tokens=10, seed=3, backend="hf")
    assert torch.equal(a.response_ids, b.response_ids)
    torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "config",
    [
        LlamaConfig(
            vocab_size=60,
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=1,
            max_position_embeddings=64,
        ),
        Qwen3Config(
            vocab_size=60,
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            max_position_embeddings=64,
        ),
        GPT2Config(vocab_size=60, n_embd=32, n_layer=2, n_head=2, n_positions=64),
    ],
    ids=["llama", "qwen3", "gpt2-generic"],
)
def test_other_architectures(tok, config):
    m = _model(config)
    s = sample(m, tok, PROMPTS[:3], n=2, max_new_tokens=10, seed=0, eos_token_id=7)
    lp, ent = _reference(m, s)
    torch.testing.assert_close(s.logprobs_t1, lp, atol=1e-4, rtol=0)
    torch.testing.assert_close(s.entropy, ent, atol=1e-4, rtol=0)


def _sampling_logprobs(model, s, temperature, top_k, top_p):
    """Log-prob of each sampled token under the truncated, renormalised tempered distribution."""
    out = torch.zeros_like(s.logprobs)
    with torch.no_grad():
        for r in range(len(s)):
            prompt = s.prompt_ids[int(s.prompt_index[r])]
            resp = s.response_ids[r][s.response_mask[r]].tolist()
            logits = model(torch.tensor([prompt + resp])).logits[0, len(prompt) - 1 : -1].float()
            lq = torch.log_softmax(truncate(logits / temperature, top_k, top_p), -1)
            out[r, : len(resp)] = lq.gather(1, torch.tensor(resp)[:, None])[:, 0]
    return out


@pytest.mark.parametrize("temperature,top_k,top_p", [(0.7, 0, 1.0), (1.3, 5, 1.0), (1.0, 0, 0.6), (0.5, 8, 0.9)])
def test_truncated_sampling_logprobs(model, tok, temperature, top_k, top_p):
    s = sample(model, tok, PROMPTS, n=4, max_new_tokens=12, seed=2, temperature=temperature, top_k=top_k, top_p=top_p)
    torch.testing.assert_close(s.logprobs, _sampling_logprobs(model, s, temperature, top_k, top_p), atol=1e-4, rtol=0)
    assert torch.isfinite(s.logprobs).all()  # a token outside the kept set would have log q = -inf
    lp, _ = _reference(model, s)
    torch.testing.assert_close(s.logprobs_t1, lp, atol=1e-4, rtol=0)


def test_top_k_never_samples_outside(model, tok):
    s = sample(model, tok, ["q: 1+1=?\na:"], n=64, max_new_tokens=1, seed=0, top_k=3)
    with torch.no_grad():
        logits = model(torch.tensor([s.prompt_ids[0]])).logits[0, -1]
    allowed = set(torch.topk(logits, 3).indices.tolist())
    assert set(s.response_ids[:, 0].tolist()) <= allowed
    assert len(set(s.response_ids[:, 0].tolist())) > 1


def test_truncate_helper():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    assert torch.isinf(truncate(logits, 2, 1.0)).tolist() == [[False, False, True, True]]
    probs = logits.softmax(-1)[0]  # 0.64, 0.24, 0.09, 0.03
    assert torch.isinf(truncate(logits, 0, float(probs[0]) - 1e-3)).tolist() == [[False, True, True, True]]
    assert torch.isinf(truncate(logits, 0, 0.8)).tolist() == [[False, False, True, True]]


def test_greedy_is_argmax_and_rows_follow_prompts(model, tok):
    s = sample(model, tok, PROMPTS, n=3, max_new_tokens=8, temperature=0.0)
    assert s.prompt_index.tolist() == [i for i in range(len(PROMPTS)) for _ in range(3)]
    for i, texts in enumerate(s.texts_by_prompt()):
        assert len(set(texts)) == 1
        alone = sample(model, tok, [PROMPTS[i]], n=1, max_new_tokens=8, temperature=0.0)
        assert alone.texts[0] == texts[0]
    assert (s.logprobs == 0).all()
    assert s.group(s.n_tokens).shape == (len(PROMPTS), 3)


def test_eos_stops_rows(model, tok):
    every = list(range(len(tok)))
    s = sample(model, tok, PROMPTS, n=2, max_new_tokens=10, eos_token_id=every)
    assert s.response_ids.shape[1] == 1 and s.finished.all() and (s.n_tokens == 1).all()
    eos = [5, 9, 11]
    s = sample(model, tok, PROMPTS, n=8, max_new_tokens=30, seed=4, eos_token_id=eos)
    for r in range(len(s)):
        n = int(s.n_tokens[r])
        row = s.response_ids[r].tolist()
        assert s.response_mask[r].tolist() == [True] * n + [False] * (len(row) - n)
        assert all(t == tok.pad_token_id for t in row[n:])
        assert not any(t in eos for t in row[: n - 1])
        assert bool(s.finished[r]) == (row[n - 1] in eos)
        assert (s.logprobs_t1[r, n:] == 0).all() and (s.entropy[r, n:] == 0).all()
    assert s.finished.any() and not s.finished.all()


def test_stop_at_eos_false_runs_full_length(model, tok):
    s = sample(model, tok, PROMPTS, max_new_tokens=9, stop_at_eos=False, eos_token_id=list(range(len(tok))))
    assert (s.n_tokens == 9).all() and s.response_mask.all() and not s.finished.any()


def test_batch_size_chunks(model, tok):
    s = sample(model, tok, PROMPTS, n=3, max_new_tokens=10, seed=0, batch_size=5, eos_token_id=[5, 9])
    assert len(s) == 12 and len(s.texts) == 12
    lp, ent = _reference(model, s)
    torch.testing.assert_close(s.logprobs_t1, lp, atol=1e-4, rtol=0)


def test_token_id_prompts_and_continue_sampling(model, tok):
    ids = tok(PROMPTS[:2])["input_ids"]
    a = sample(model, tok, PROMPTS[:2], n=2, max_new_tokens=6, seed=9)
    b = sample(model, tok, ids, n=2, max_new_tokens=6, seed=9)
    assert a.texts == b.texts
    x, m = left_pad([ids[0], ids[0], ids[1], ids[1]], tok.pad_token_id)
    g = torch.Generator().manual_seed(9)
    out = continue_sampling(model, x, m, max_new_tokens=6, generator=g, eos_token_id=tok.eos_token_id)
    assert torch.equal(out["response_ids"], a.response_ids)


def test_prompt_errors(model, tok):
    with pytest.raises(ModelError, match="prompt 1 .*cannot encode"):
        sample(model, tok, ["q: 1+1=?", "Q: €"], max_new_tokens=4)
    with pytest.raises(ModelError, match="not a mix"):
        sample(model, tok, ["a", [1, 2]], max_new_tokens=4)
    with pytest.raises(ModelError, match="prompt 1 has 200 tokens"):
        sample(model, tok, ["a", "1" * 199], max_new_tokens=4)
    with pytest.warns(UserWarning, match="clamped to 28"):
        s = sample(model, tok, ["1" * 99], max_new_tokens=50, stop_at_eos=False)
    assert s.response_ids.shape[1] == 28
    with pytest.raises(ModelError):
        sample(model, tok, PROMPTS, max_new_tokens=4, temperature=-1)


def test_logprobs_of_temperature_and_grad(model, tok):
    ids, mask = left_pad(tok(PROMPTS)["input_ids"], tok.pad_token_id)
    rmask = mask[:, -3:]
    lp, ent = logprobs_of(model, ids, mask, rmask, temperature=2.0)
    logits = model(ids, attention_mask=mask.long(), position_ids=(mask.long().cumsum(-1) - 1).clamp(min=0)).logits
    ref = torch.log_softmax(logits[:, -4:-1].float() / 2.0, -1).gather(-1, ids[:, -3:, None])[..., 0] * rmask
    torch.testing.assert_close(lp, ref, atol=1e-5, rtol=0)
    assert (ent[rmask] <= math.log(len(tok)) + 1e-4).all()
    lp.sum().backward()  # gradients flow for the trainer
    assert model.model.embed_tokens.weight.grad is not None
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_logprobs_of_shared_prompts_equal_the_full_forward_with_gradients(model, tok, attn):
    """G samples of a prompt scored through one prompt pass: same log-probs, entropies and gradients."""
    model.set_attn_implementation(attn)
    s = sample(model, tok, PROMPTS, n=3, max_new_tokens=12, seed=3)  # ragged responses, repeated prompts
    ids, attn_mask, rmask = s.to_batch()
    assert len(set(rmask.sum(1).tolist())) > 1
    results = []
    for share, chunk in ((False, 64), (True, 64), (True, 4), (False, 4)):
        lp, ent = logprobs_of(model, ids, attn_mask, rmask, temperature=0.8, share_prompts=share, chunk_size=chunk)
        model.zero_grad(set_to_none=True)
        (lp.sum() + 0.5 * ent.sum()).backward()
        results.append((lp.detach(), ent.detach(), [p.grad.clone() for p in model.parameters()]))
    model.zero_grad(set_to_none=True)
    model.set_attn_implementation("sdpa")
    lp0, ent0, g0 = results[0]
    for lp, ent, g in results[1:]:
        torch.testing.assert_close(lp, lp0, atol=2e-5, rtol=0)
        torch.testing.assert_close(ent, ent0, atol=2e-5, rtol=0)
        for a, b in zip(g, g0):
            torch.testing.assert_close(a, b, atol=1e-5 * float(b.abs().max()) + 1e-7, rtol=1e-4)
    assert (lp0[~rmask] == 0).all() and (ent0[~rmask] == 0).all()


def test_logits_processor_reshapes_the_sampling_distribution():
    """A processor that halves the temperature draws exactly what temperature 0.5 draws, same seed."""
    from entropylab.models import load_model

    model, tok = load_model("arith")
    prompts = ["q: 12+34-5=?\na:", "q: 50-17=?\na:"]
    a = sample(model, tok, prompts, n=3, max_new_tokens=24, temperature=0.5, seed=7)
    b = sample(model, tok, prompts, n=3, max_new_tokens=24, temperature=1.0, seed=7, logits_processor=lambda z: z / 0.5)
    assert torch.equal(a.response_ids, b.response_ids)
    assert torch.allclose(a.logprobs, b.logprobs, atol=1e-5)
    assert torch.allclose(a.logprobs_t1, b.logprobs_t1, atol=1e-5)  # temperature-1 statistics are untouched
