"""The shared batched, KV-cached sampler and a forward-pass log-prob helper.

`sample` draws `n` continuations of each prompt in one batch (prompts left-padded) and records, per
generated token, its log-prob under the sampling distribution (after temperature / top-k / top-p), its
log-prob under the model at temperature 1, and the entropy of the model's full temperature-1 next-token
distribution. Rows are prompt-major: prompt 0 samples 0..n-1, then prompt 1, ...

Two decoding back-ends give the same numbers (to float rounding): a lean plain-torch re-implementation of
Llama/Qwen2/Qwen3 decoders with a preallocated static KV cache and prepacked oneDNN matrices on CPU for
steps of 4 rows or more (used automatically for those architectures; about 1.5-1.8x the tokens/s of
`model.generate` at batch 64 on two CPU cores, see benchmarks/bench_sampler.py), and the generic
`transformers` forward with a `DynamicCache` for any other causal LM (`backend="hf"`). Finished rows are
dropped from the batch as they accumulate.

Randomness: one `torch.Generator` seeded with `seed` drives Gumbel-max draws, so the same seed, prompts
and `batch_size` give identical samples (a different `batch_size` gives different, equally valid, draws).

Context: when the longest prompt plus `max_new_tokens` exceeds `config.max_position_embeddings`,
`max_new_tokens` is clamped with a warning; a prompt that leaves no room at all raises `ModelError`.
"""

from __future__ import annotations

import functools
import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from entropylab.errors import ModelError

__all__ = ["Samples", "sample", "continue_sampling", "logprobs_of", "encode_prompts", "left_pad"]


@dataclass
class Samples:
    """Sampled responses with per-token statistics; rows are prompt-major (prompt i -> rows i*n..i*n+n-1)."""

    prompt_ids: list[list[int]]  # one unpadded token list per prompt
    response_ids: Tensor  # [B, T] long, pad_token_id after the end of a row
    response_mask: Tensor  # [B, T] bool, True for generated tokens (EOS included)
    logprobs: Tensor  # [B, T] float32, log q(token): the sampling distribution (temperature/top-k/top-p)
    logprobs_t1: Tensor  # [B, T] float32, log p(token): the model at temperature 1, untruncated
    entropy: Tensor  # [B, T] float32, entropy of p(. | prefix) at temperature 1
    texts: list[str]  # decoded responses, special tokens removed
    prompt_index: Tensor  # [B] long, which prompt each row continues
    n_tokens: Tensor  # [B] long, generated tokens per row (EOS included)
    finished: Tensor  # [B] bool, row emitted EOS
    n: int = 1  # samples per prompt
    pad_token_id: int = 0
    meta: dict = field(default_factory=dict)  # sampling settings

    def __len__(self) -> int:
        return self.response_ids.shape[0]

    @property
    def n_prompts(self) -> int:
        return len(self.prompt_ids)

    def group(self, x: Tensor | Sequence) -> Tensor | list[list]:
        """Per-row values regrouped by prompt: a tensor [n_prompts, n, ...] or a list of lists."""
        if isinstance(x, Tensor):
            return x.reshape(self.n_prompts, self.n, *x.shape[1:])
        return [list(x[i * self.n : (i + 1) * self.n]) for i in range(self.n_prompts)]

    def texts_by_prompt(self) -> list[list[str]]:
        """`texts` grouped by prompt: one list of n responses per prompt."""
        return self.group(self.texts)  # type: ignore[return-value]

    def to_batch(self) -> tuple[Tensor, Tensor, Tensor]:
        """(input_ids [B, P+T], attention_mask [B, P+T], response_mask [B, T]): left-padded prompt + response.

        The response occupies the last T columns, as `logprobs_of` expects.
        """
        prompts = [self.prompt_ids[i] for i in self.prompt_index.tolist()]
        p_ids, p_mask = left_pad(prompts, self.pad_token_id, device=self.response_ids.device)
        input_ids = torch.cat([p_ids, self.response_ids], dim=1)
        attention_mask = torch.cat([p_mask, self.response_mask], dim=1)
        return input_ids, attention_mask, self.response_mask

    def to(self, device: str | torch.device) -> Samples:
        """A copy with all tensors on `device`."""
        out = dict(self.__dict__)
        for k, v in out.items():
            if isinstance(v, Tensor):
                out[k] = v.to(device)
        return Samples(**out)


# ------------------------------------------------------------------------------------------------
# prompts


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: str | torch.device | None = None) -> tuple[Tensor, Tensor]:
    """Left-pad token lists into (ids [B, P] long, mask [B, P] bool)."""
    width = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, width - len(s) :] = torch.as_tensor(list(s), dtype=torch.long)
            mask[i, width - len(s) :] = True
    return ids.to(device), mask.to(device)


def encode_prompts(tokenizer, prompts: Sequence[str] | Sequence[Sequence[int]]) -> list[list[int]]:
    """Token lists for string prompts (with the tokenizer's special prefix, e.g. `<bos>`) or id prompts as given."""
    if len(prompts) == 0:
        raise ModelError("sample: no prompts given")
    if all(isinstance(p, str) for p in prompts):
        ids = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
        unk = tokenizer.unk_token_id
        for i, (p, s) in enumerate(zip(prompts, ids)):
            # unknown characters become <unk> or (byte-level BPE without them) silently vanish
            back = tokenizer.decode(s, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            lost = {c for c in p if not c.isspace() and c not in back}
            if lost or (unk is not None and unk in s):
                bad = lost | {c for c in p if unk is not None and unk in tokenizer(c, add_special_tokens=False)["input_ids"]}
                raise ModelError(
                    f"prompt {i} contains text the tokenizer cannot encode ({''.join(sorted(bad))!r}): {p[:60]!r}"
                )
        return [list(s) for s in ids]
    if any(isinstance(p, str) for p in prompts):
        raise ModelError("sample: prompts must be all strings or all token-id lists, not a mix")
    out = [[int(t) for t in p] for p in prompts]
    for i, p in enumerate(out):
        if not p:
            raise ModelError(f"prompt {i} is empty")
    return out


def _eos_ids(model, tokenizer, eos_token_id) -> list[int]:
    """The ids that end a row: explicit, else the tokenizer's and the generation config's EOS."""
    if eos_token_id is not None:
        return [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    ids: list[int] = []
    for src in (getattr(tokenizer, "eos_token_id", None), getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
        if src is None:
            continue
        ids += [src] if isinstance(src, int) else list(src)
    return sorted(set(ids))


def _pad_id(tokenizer, eos: list[int]) -> int:
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = eos[0] if eos else 0
    return int(pad)


def _context_length(model) -> int | None:
    return getattr(model.config, "max_position_embeddings", None)


def fit_to_context(model, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int, *, where: str = "",
                   stacklevel: int = 3) -> int:
    """`max_new_tokens`, clamped (with a warning) so the longest prompt plus its response fits the context.

    A prompt that alone fills the context is refused with its index named (`where` prefixes the message).
    """
    ctx = _context_length(model)
    if ctx is None:
        return max_new_tokens
    longest = max(len(p) for p in prompt_ids)
    if longest >= ctx:
        i = max(range(len(prompt_ids)), key=lambda j: len(prompt_ids[j]))
        raise ModelError(f"{where}prompt {i} has {longest} tokens; the model's context is {ctx} tokens")
    if longest + max_new_tokens > ctx:
        warnings.warn(f"max_new_tokens={max_new_tokens} clamped to {ctx - longest}: the longest prompt has {longest} "
                      f"tokens and the model's context is {ctx}", stacklevel=stacklevel)
        return ctx - longest
    return max_new_tokens


# ------------------------------------------------------------------------------------------------
# decoding back-ends: prefill(ids, mask) -> last logits; step(tokens) -> next logits


def cache_kwargs(model, cache) -> dict:
    """The keyword argument that hands a KV cache to `model`'s forward: `cache` where the model's forward
    takes it (transformers 5.x renamed it), else the older `past_key_values`."""
    return {_cache_keyword(type(model)): cache}


@functools.cache
def _cache_keyword(cls: type) -> str:
    params = inspect.signature(cls.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def returned_cache(out):
    """The KV cache a forward returned (None when it returned none), under either name."""
    for name in ("cache", "past_key_values"):
        value = out.get(name) if hasattr(out, "get") else getattr(out, name, None)
        if value is not None:
            return value
    return None


def fast_path_supported(model) -> bool:
    """Whether `model` is a Llama/Qwen2/Qwen3-style decoder the plain-torch fast path reproduces exactly."""
    cfg = model.config
    if getattr(cfg, "model_type", None) not in ("qwen2", "llama", "qwen3"):
        return False
    rope = getattr(cfg, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        return False
    if getattr(cfg, "hidden_act", "silu") != "silu":
        return False
    if any(t != "full_attention" for t in (getattr(cfg, "layer_types", None) or [])):
        return False
    inner = getattr(model, "model", None)
    return inner is not None and hasattr(inner, "layers") and hasattr(inner, "rotary_emb")


def _interleave(w: Tensor | None, n_heads: int, head_dim: int) -> Tensor | None:
    """Reorder each head's rows from rotate-half order [x_0..x_h-1, x_h..] to pairs (x_i, x_i+h)."""
    if w is None:
        return None
    h = head_dim // 2
    return w.reshape(n_heads, 2, h, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


# below this many rows the plain F.linear beats the prepacked oneDNN call (one AMD EPYC core, the shipped
# 192-wide model: 1 row 2x faster unpacked; from 4 rows on the packed call wins in a whole decode step)
_PACK_MIN_ROWS = 4
_LINEARS = ("wqkv", "wo", "wgu", "wd")


def _packed_linear(layers: list[dict], batch: int) -> bool:
    """On CPU, prepack the matrices for oneDNN (faster GEMMs from a few dozen rows on); False if unavailable.

    The packed copies are stored beside the plain ones as `p_wqkv`, ...; `_FastDecoder._lin` picks one by
    the number of rows.
    """
    try:
        pack, run = torch.ops.mkldnn._reorder_linear_weight, torch.ops.mkldnn._linear_pointwise
        rows = max(batch, _PACK_MIN_ROWS)
        packed = [{"p_" + k: pack(w[k], rows) for k in _LINEARS} for w in layers]
        x = torch.randn(2, layers[0]["wqkv"].shape[1])
        if not torch.allclose(run(x, packed[0]["p_wqkv"], None, "none", [], ""), F.linear(x, layers[0]["wqkv"]), atol=1e-4):
            return False
    except (AttributeError, RuntimeError):
        return False
    for w, p in zip(layers, packed):
        w.update(p)
    return True


class _FastDecoder:
    """Llama/Qwen2/Qwen3 decoder in plain torch with a static KV cache [L, B, kv_heads, S, head_dim].

    Equal to the `transformers` forward up to float rounding. Per-call weight preparation: q/k/v and
    gate/up projections fused, RMSNorm gains folded into the next matrix, q/k head dims reordered into
    (real, imaginary) pairs so RoPE is one complex multiply (q.k is unchanged by a shared reordering).
    """

    def __init__(self, model, batch: int, max_len: int, device: torch.device):
        cfg, inner = model.config, model.model
        nq = self.n_heads = cfg.num_attention_heads
        nkv = self.n_kv = cfg.num_key_value_heads or nq
        d = self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // nq
        self.eps = cfg.rms_norm_eps
        self.embed = inner.embed_tokens.weight
        self.lm_head = model.get_output_embeddings().weight * inner.norm.weight
        self.layers = []
        for layer in inner.layers:
            a, m = layer.self_attn, layer.mlp
            g1, g2 = layer.input_layernorm.weight, layer.post_attention_layernorm.weight
            wq, wk = _interleave(a.q_proj.weight, nq, d), _interleave(a.k_proj.weight, nkv, d)
            bias = None
            if a.q_proj.bias is not None:
                bq, bk = _interleave(a.q_proj.bias, nq, d), _interleave(a.k_proj.bias, nkv, d)
                bias = torch.cat([bq, bk, a.v_proj.bias])
            qn = getattr(a, "q_norm", None)
            kn = getattr(a, "k_norm", None)
            self.layers.append(
                dict(
                    wqkv=torch.cat([wq, wk, a.v_proj.weight]) * g1,
                    bqkv=bias,
                    wo=a.o_proj.weight,
                    bo=a.o_proj.bias,
                    qn=None if qn is None else _interleave(qn.weight, 1, d),
                    kn=None if kn is None else _interleave(kn.weight, 1, d),
                    wgu=torch.cat([m.gate_proj.weight, m.up_proj.weight]) * g2,
                    bgu=None if m.gate_proj.bias is None else torch.cat([m.gate_proj.bias, m.up_proj.bias]),
                    wd=m.down_proj.weight,
                    bd=m.down_proj.bias,
                    scaling=getattr(a, "scaling", d**-0.5),
                )
            )
        self.inter = inner.layers[0].mlp.gate_proj.weight.shape[0]
        fp32_cpu = device.type == "cpu" and self.embed.dtype == torch.float32
        # packing costs ~0.25 ms a matrix: only worth it when decode steps will run enough rows to use it
        self.packed = _packed_linear(self.layers, batch) if fp32_cpu and batch >= _PACK_MIN_ROWS else False
        dtype = self.embed.dtype
        n_pos = max(max_len, cfg.max_position_embeddings or 0)
        rot = inner.rotary_emb
        freqs = torch.arange(n_pos, device=device, dtype=torch.float32)[:, None] * rot.inv_freq.to(device, torch.float32)
        scale = getattr(rot, "attention_scaling", 1.0)
        cos, sin = (freqs.cos() * scale).to(dtype), (freqs.sin() * scale).to(dtype)  # rounded as HF does
        self.rope = torch.complex(cos.float(), sin.float())  # [n_pos, d/2]
        shape = (len(self.layers), batch, nkv, max_len, d)
        self.k = torch.empty(shape, dtype=dtype, device=device)
        self.v = torch.empty(shape, dtype=dtype, device=device)
        self.key_valid = torch.ones((batch, max_len), dtype=torch.bool, device=device)
        self.cur = 0  # filled cache slots
        self.pos: Tensor | None = None  # [B] position of the next token

    def _norm(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def _lin(self, x: Tensor, w: dict, key: str) -> Tensor:
        """x @ w[key].T + bias, through the prepacked oneDNN matrix when there are enough rows."""
        bias = w["b" + key[1:]]
        if self.packed and x.numel() >= _PACK_MIN_ROWS * x.shape[-1]:
            return torch.ops.mkldnn._linear_pointwise(x, w["p_" + key], bias, "none", [], "")
        return F.linear(x, w[key], bias)

    def hidden(self, ids: Tensor, pos: Tensor, mask: Tensor | None, slots: Tensor | None = None, n_keys: int = 0) -> Tensor:
        """Run `ids` [B, q]; returns the last position's final hidden state, normalised, [B, hidden].

        `logits(h)` turns it into next-token logits. Without `slots` the tokens go to cache slots
        cur..cur+q (and `cur` advances); with `slots` [B] (q = 1) row b's token goes to slot slots[b] and
        attends to slots [0, n_keys) as `mask` [B, 1, 1, n_keys] allows (`cur` is left alone).
        `pos` [B, q]: rotary positions; `mask`: boolean (True: attend), additive float, or None (a single
        query per row that attends to every key slot).
        """
        bsz, q = ids.shape
        s0, s1 = self.cur, self.cur + q
        if slots is None:
            n_keys = s1
        elif bsz == 1:  # one row: a slice write is cheaper than an indexed one
            s0 = int(slots[0])
            s1 = s0 + 1
        nq, nkv, d = self.n_heads, self.n_kv, self.head_dim
        rope = self.rope[pos][:, :, None]  # [B, q, 1, d/2]
        x = F.embedding(ids, self.embed)
        if mask is not None and mask.dtype == torch.bool:  # one additive mask for all layers (SDPA converts per call)
            mask = torch.zeros(mask.shape, dtype=x.dtype, device=x.device).masked_fill_(~mask, -math.inf)
        batch_rows = torch.arange(bsz, device=ids.device) if slots is not None and bsz > 1 else None
        for i, w in enumerate(self.layers):
            qkv = self._lin(self._norm(x), w, "wqkv").view(bsz, q, nq + 2 * nkv, d)
            qk = qkv[:, :, : nq + nkv]
            if w["qn"] is not None:
                qk = torch.cat([F.rms_norm(qk[:, :, :nq], (d,), w["qn"], self.eps), F.rms_norm(qk[:, :, nq:], (d,), w["kn"], self.eps)], 2)
            qk_c = torch.view_as_complex(qk.float().unflatten(-1, (d // 2, 2)))  # no-op .float() in fp32
            qk = torch.view_as_real(qk_c * rope).flatten(-2).to(x.dtype)
            if batch_rows is None:
                self.k[i, :, :, s0:s1] = qk[:, :, nq:].transpose(1, 2)
                self.v[i, :, :, s0:s1] = qkv[:, :, nq + nkv :].transpose(1, 2)
            else:
                self.k[i][batch_rows, :, slots] = qk[:, 0, nq:]
                self.v[i][batch_rows, :, slots] = qkv[:, 0, nq + nkv :]
            att = F.scaled_dot_product_attention(
                qk[:, :, :nq].transpose(1, 2), self.k[i, :, :, :n_keys], self.v[i, :, :, :n_keys], attn_mask=mask,
                scale=w["scaling"], enable_gqa=nq != nkv,
            )
            x = x + self._lin(att.transpose(1, 2).reshape(bsz, q, nq * d), w, "wo")
            gate, up = self._lin(self._norm(x), w, "wgu").split(self.inter, dim=-1)
            x = x + self._lin(F.silu(gate) * up, w, "wd")
        if slots is None:
            self.cur = s1
        return self._norm(x[:, -1])

    def logits(self, h: Tensor) -> Tensor:
        """Next-token logits [B, V] from final hidden states [B, hidden] (as `hidden` returns them)."""
        return F.linear(h, self.lm_head)

    def _forward(self, ids: Tensor, pos: Tensor, mask: Tensor) -> Tensor:
        """Run `ids` [B, q] at slots cur..cur+q with positions `pos` [B, q]; returns last-position logits."""
        return self.logits(self.hidden(ids, pos, mask))

    def prefill_hidden(self, ids: Tensor, mask: Tensor) -> Tensor:
        """Run the left-padded prompts [B, P] into slots 0..P; returns the last position's hidden state [B, hidden]."""
        p = ids.shape[1]
        self.key_valid[:, :p] = mask
        pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
        causal = torch.ones(p, p, dtype=torch.bool, device=ids.device).tril()
        eye = torch.eye(p, dtype=torch.bool, device=ids.device)
        att_mask = (causal & mask[:, None, :]) | eye  # pad queries see themselves: no all-masked rows
        self.pos = pos[:, -1] + 1
        return self.hidden(ids, pos, att_mask[:, None])

    def prefill(self, ids: Tensor, mask: Tensor) -> Tensor:
        return self.logits(self.prefill_hidden(ids, mask))

    def step(self, tokens: Tensor) -> Tensor:
        mask = self.key_valid[:, None, None, : self.cur + 1]
        logits = self._forward(tokens[:, None], self.pos[:, None], mask)
        self.pos += 1
        return logits

    def select(self, idx: Tensor) -> None:
        """Keep only batch rows `idx` (drop finished rows)."""
        self.k, self.v = self.k[:, idx], self.v[:, idx]
        self.key_valid, self.pos = self.key_valid[idx], self.pos[idx]


class _HFDecoder:
    """Any `transformers` causal LM through its own forward and a `DynamicCache`."""

    def __init__(self, model, batch: int, max_len: int, device: torch.device):
        from transformers import DynamicCache

        self.model = model
        self.cache = DynamicCache(config=model.config)
        self.mask = torch.ones((batch, max_len), dtype=torch.long, device=device)
        self.cur = 0
        self.pos: Tensor | None = None

    def prefill(self, ids: Tensor, mask: Tensor) -> Tensor:
        p = ids.shape[1]
        self.mask[:, :p] = mask.long()
        pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=ids, attention_mask=self.mask[:, :p], position_ids=pos, **cache_kwargs(self.model, self.cache),
            use_cache=True, logits_to_keep=1,
        )
        self.cur, self.pos = p, pos[:, -1] + 1
        return out.logits[:, -1]

    def step(self, tokens: Tensor) -> Tensor:
        self.cur += 1
        out = self.model(
            input_ids=tokens[:, None], attention_mask=self.mask[:, : self.cur], position_ids=self.pos[:, None],
            **cache_kwargs(self.model, self.cache), use_cache=True,
        )
        self.pos = self.pos + 1
        return out.logits[:, -1]

    def select(self, idx: Tensor) -> None:
        self.cache.reorder_cache(idx)
        self.mask, self.pos = self.mask[idx], self.pos[idx]


# ------------------------------------------------------------------------------------------------
# sampling


def _truncate(logits: Tensor, top_k: int, top_p: float) -> Tensor:
    """Logits with tokens outside the top-k / the top-p nucleus set to -inf (HF semantics, ties kept)."""
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs  # mass of strictly more likely tokens
        drop = before >= top_p
        drop[:, 0] = False
        logits = logits.masked_fill(drop.scatter(1, order, drop), -math.inf)
    return logits


@torch.inference_mode()
def continue_sampling(
    model,
    input_ids: Tensor,
    attention_mask: Tensor,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int = 0,
    stop_at_eos: bool = True,
    backend: str = "auto",
    compact: float = 0.75,
    logits_processor: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, Tensor]:
    """Sample continuations of left-padded `input_ids` [B, P]; no tokenizer, no context checks.

    Returns a dict of tensors: response_ids, response_mask, logprobs, logprobs_t1, entropy [B, T]
    and n_tokens, finished [B]; T <= max_new_tokens (stops early once every row has hit EOS).
    `temperature=0` is greedy decoding (logprobs then 0: the sampling distribution is a point mass).
    Finished rows are dropped from the batch once fewer than `compact` of its rows are still running.
    `logits_processor(logits [B, V]) -> logits` reshapes the sampling distribution (e.g. a temperature per
    position); it acts after log-probs and entropy at temperature 1 are taken and before temperature /
    top-k / top-p, so `logprobs` are under the processed distribution.
    """
    if temperature < 0:
        raise ModelError(f"temperature must be >= 0, got {temperature}")
    if not 0.0 < top_p <= 1.0:
        raise ModelError(f"top_p must be in (0, 1], got {top_p}")
    if backend not in ("auto", "fast", "hf"):
        raise ModelError(f"backend must be 'auto', 'fast' or 'hf', got {backend!r}")
    if backend == "fast" and not fast_path_supported(model):
        raise ModelError(f"the fast sampler does not support model type {model.config.model_type!r}; use backend='hf'")
    use_fast = backend == "fast" or (backend == "auto" and fast_path_supported(model))
    device = input_ids.device
    bsz, p = input_ids.shape
    t_max = int(max_new_tokens)
    dec = (_FastDecoder if use_fast else _HFDecoder)(model, bsz, p + t_max, device)
    eos_list = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id or [])
    eos = torch.as_tensor(eos_list, dtype=torch.long, device=device)
    stop = stop_at_eos and bool(eos_list)

    out_ids = torch.full((bsz, t_max), pad_token_id, dtype=torch.long, device=device)
    out_lp = torch.zeros((bsz, t_max), dtype=torch.float32, device=device)
    out_lp1 = torch.zeros_like(out_lp)
    out_ent = torch.zeros_like(out_lp)
    n_tokens = torch.zeros(bsz, dtype=torch.long, device=device)
    rows = torch.arange(bsz, device=device)  # original index of each row still in the batch
    alive = torch.ones(bsz, dtype=torch.bool, device=device)
    greedy = temperature == 0
    plain = temperature == 1.0 and top_k <= 0 and top_p >= 1.0 and logits_processor is None
    sync_every = 1 if device.type == "cpu" else 8  # host syncs are cheap on CPU only

    logits = dec.prefill(input_ids, attention_mask.bool())
    steps = 0
    for t in range(t_max):
        logp1 = torch.log_softmax(logits.float(), dim=-1)
        ent = (logp1.exp() * logp1).sum(-1).neg_()
        if greedy:
            tok = logp1.argmax(-1)
        else:
            shaped = logits.float() if logits_processor is None else logits_processor(logits.float())
            lq = logp1 if plain else torch.log_softmax(_truncate(shaped / temperature, top_k, top_p), dim=-1)
            u = torch.rand(lq.shape, generator=generator, device=device)
            tok = (lq - u.log_().neg_().log_()).argmax(-1)  # Gumbel-max: an exact draw from softmax(lq)
        if stop:
            tok.masked_fill_(~alive, pad_token_id)
        out_ids[rows, t] = tok
        out_lp1[rows, t] = logp1.gather(1, tok[:, None])[:, 0]
        if not greedy:
            out_lp[rows, t] = lq.gather(1, tok[:, None])[:, 0]
        out_ent[rows, t] = ent
        n_tokens[rows] += alive
        steps = t + 1
        if stop:
            alive &= ~torch.isin(tok, eos)
            if steps % sync_every == 0:
                live = int(alive.sum())
                if live == 0:
                    break
                if live <= compact * len(rows) and steps < t_max:
                    keep = alive.nonzero()[:, 0]
                    dec.select(keep)
                    rows, alive, tok = rows[keep], alive[keep], tok[keep]
        if steps < t_max:
            logits = dec.step(tok)

    mask = torch.arange(steps, device=device)[None, :] < n_tokens[:, None]
    finished = torch.zeros(bsz, dtype=torch.bool, device=device)
    if stop:
        last = out_ids.gather(1, (n_tokens - 1).clamp(min=0)[:, None])[:, 0]
        finished = torch.isin(last, eos) & (n_tokens > 0)
    return dict(
        response_ids=out_ids[:, :steps],
        response_mask=mask,
        logprobs=out_lp[:, :steps].where(mask, 0.0),  # where, not *: a pad token may have log q = -inf
        logprobs_t1=out_lp1[:, :steps].where(mask, 0.0),
        entropy=out_ent[:, :steps].where(mask, 0.0),
        n_tokens=n_tokens,
        finished=finished,
    )


def sample(
    model,
    tokenizer,
    prompts: Sequence[str] | Sequence[Sequence[int]],
    *,
    n: int = 1,
    max_new_tokens: int = 128,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
    stop_at_eos: bool = True,
    batch_size: int | None = None,
    progress: bool = False,
    eos_token_id: int | Sequence[int] | None = None,
    backend: str = "auto",
    logits_processor: Callable[[Tensor], Tensor] | None = None,
) -> Samples:
    """Sample `n` responses per prompt (strings are encoded with the tokenizer's `<bos>`; id lists used as is).

    All prompts x n rows run as one batch, or in chunks of `batch_size` rows. Same seed and batch_size:
    identical samples. Rows that emit EOS stop (pad after, masked out). See `Samples` for the fields.
    `logits_processor` reshapes the sampling distribution per position (see `continue_sampling`).
    """
    if n < 1:
        raise ModelError(f"n must be >= 1, got {n}")
    if max_new_tokens < 1:
        raise ModelError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    prompt_ids = encode_prompts(tokenizer, prompts)
    max_new_tokens = fit_to_context(model, prompt_ids, max_new_tokens)
    eos = _eos_ids(model, tokenizer, eos_token_id)
    pad = _pad_id(tokenizer, eos)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(int(seed))
    rows = [i for i in range(len(prompt_ids)) for _ in range(n)]
    bs = len(rows) if not batch_size else int(batch_size)
    chunks = [rows[i : i + bs] for i in range(0, len(rows), bs)]
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="sample", unit="batch")
    was_training = model.training
    model.eval()
    parts = []
    try:
        for chunk in chunks:
            ids, mask = left_pad([prompt_ids[i] for i in chunk], pad, device=device)
            parts.append(
                continue_sampling(
                    model, ids, mask, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                    top_p=top_p, generator=generator, eos_token_id=eos, pad_token_id=pad, stop_at_eos=stop_at_eos,
                    backend=backend,
                    logits_processor=logits_processor,
                )
            )
    finally:
        model.train(was_training)
    width = max(part["response_ids"].shape[1] for part in parts)

    def cat(key: str, fill) -> Tensor:
        return torch.cat([F.pad(part[key], (0, width - part[key].shape[1]), value=fill) for part in parts])

    response_ids = cat("response_ids", pad)
    response_mask = cat("response_mask", False)
    texts = tokenizer.batch_decode(
        [r[m].tolist() for r, m in zip(response_ids.cpu(), response_mask.cpu())], skip_special_tokens=True
    )
    return Samples(
        prompt_ids=prompt_ids,
        response_ids=response_ids,
        response_mask=response_mask,
        logprobs=cat("logprobs", 0.0),
        logprobs_t1=cat("logprobs_t1", 0.0),
        entropy=cat("entropy", 0.0),
        texts=texts,
        prompt_index=torch.as_tensor(rows, dtype=torch.long, device=device),
        n_tokens=torch.cat([part["n_tokens"] for part in parts]),
        finished=torch.cat([part["finished"] for part in parts]),
        n=n,
        pad_token_id=pad,
        meta=dict(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, max_new_tokens=max_new_tokens),
    )


# ------------------------------------------------------------------------------------------------
# scoring


def logprobs_of(
    model,
    input_ids: Tensor,
    attention_mask: Tensor,
    response_mask: Tensor,
    temperature: float = 1.0,
    *,
    chunk_size: int = 16,
    share_prompts: bool = True,
) -> tuple[Tensor, Tensor]:
    """Per-token log-prob of the response tokens and entropy of the full next-token distribution.

    `input_ids`/`attention_mask` [B, L] (left padding allowed); `response_mask` [B, T], T <= L, marks
    the last T columns as response tokens (right-padded). Returns (logprobs, entropy), both [B, T] float32
    and zero outside the mask, at `temperature` (softmax of logits / temperature). Keeps gradients unless the
    caller disables them. Rows run in chunks of `chunk_size`, longest responses first, each chunk cut after
    its longest response (logits materialised for at most `chunk_size` rows at a time, little padding).
    With `share_prompts`, rows whose prompt (the first L - T columns) is the same, as GRPO's G samples of
    one prompt are, run that prompt through the model once and attend to its keys and values (equal up to
    float rounding, gradients included; about 25% fewer positions for a GRPO batch).
    """
    if temperature <= 0:
        raise ModelError(f"logprobs_of: temperature must be > 0, got {temperature}")
    bsz, seq = input_ids.shape
    t = response_mask.shape[1]
    if t >= seq:
        raise ModelError(f"logprobs_of: response_mask has {t} columns; input_ids needs more than that ({seq})")
    p_len = seq - t
    attention_mask = attention_mask.long()
    mask = response_mask.bool()
    lengths = mask.sum(1)
    order = torch.argsort(lengths, descending=True, stable=True)
    prompts, inverse = torch.unique(input_ids[:, :p_len], dim=0, return_inverse=True)
    shared = share_prompts and len(prompts) < bsz and _shares_prompts(model)
    if shared:
        prompt_cache, first_logits, p_pos = _prompt_pass(model, prompts, attention_mask, inverse, p_len)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    lps, ents = [], []
    for rows in torch.split(order, chunk_size):
        n = max(int(lengths[rows].max()), 1)  # response columns this chunk needs
        if shared:
            logits = _response_pass(model, input_ids[rows], attention_mask[rows], prompt_cache, first_logits,
                                    inverse[rows], p_pos[inverse[rows], -1:], p_len, n)
        else:
            out = model(input_ids=input_ids[rows, : p_len + n], attention_mask=attention_mask[rows, : p_len + n],
                        position_ids=position_ids[rows, : p_len + n], use_cache=False, logits_to_keep=n + 1)
            logits = out.logits[:, :-1]  # position j predicts token j + 1
        lp, ent = _score(logits, input_ids[rows, p_len : p_len + n], temperature)
        lps.append(F.pad(lp, (0, t - n)))
        ents.append(F.pad(ent, (0, t - n)))
    back = torch.argsort(order)  # chunk order -> row order (a differentiable gather)
    return torch.cat(lps)[back].where(mask, 0.0), torch.cat(ents)[back].where(mask, 0.0)


def _score(logits: Tensor, targets: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """(log-prob of `targets`, entropy) under softmax(logits / temperature)."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return logp.gather(-1, targets[..., None])[..., 0], -(logp.exp() * logp).sum(-1)


def _shares_prompts(model) -> bool:
    """Whether the model's forward can continue from a `DynamicCache` of prompt keys and values."""
    return not getattr(model.config, "is_encoder_decoder", False)


def _prompt_pass(model, prompts: Tensor, attention_mask: Tensor, inverse: Tensor, p_len: int):
    """Run each distinct (left-padded) prompt once: its key/value cache, last-position logits and positions."""
    from transformers import DynamicCache

    first = inverse.new_zeros(len(prompts)).scatter_(0, inverse, torch.arange(len(inverse), device=inverse.device))
    p_mask = attention_mask[first, :p_len]
    p_pos = (p_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=prompts, attention_mask=p_mask, position_ids=p_pos,
                **cache_kwargs(model, DynamicCache(config=model.config)), use_cache=True, logits_to_keep=1)
    cache = returned_cache(out)
    return (cache, [(layer.keys, layer.values) for layer in cache.layers]), out.logits[:, -1:], p_pos


def _response_pass(model, ids: Tensor, attn: Tensor, prompt_cache, first_logits: Tensor, prompt_of: Tensor,
                   last_pos: Tensor, p_len: int, n: int) -> Tensor:
    """Logits [b, n, V] predicting the first n response tokens of rows whose prompts' cache rows are `prompt_of`.

    The first response token is predicted by the prompt's last position; the others by the response positions
    before them, which attend to the prompt's keys and values gathered (differentiably) to these rows.
    """
    cache, kv = prompt_cache
    for layer, (k, v) in zip(cache.layers, kv):
        layer.keys, layer.values = k[prompt_of], v[prompt_of]
    first = first_logits[prompt_of]
    if n == 1:
        return first
    pos = last_pos + attn[:, p_len : p_len + n - 1].cumsum(-1)
    out = model(input_ids=ids[:, p_len : p_len + n - 1], attention_mask=attn[:, : p_len + n - 1], position_ids=pos,
                **cache_kwargs(model, cache), use_cache=True)
    return torch.cat([first, out.logits], dim=1)
