"""The decoding core: KV-cached decoders, the statistics of a logits row, truncation, EOS ids and the decode loop.

Decoders share one interface: `prefill(ids, mask)` runs left-padded prompts and returns the next-token logits
[B, V], `step(tokens)` appends one token per row, `select(idx)` keeps / reorders / copies rows and `fork(idx)`
makes a new decoder from rows of this one. `FastDecoder` re-implements Llama/Qwen2/Qwen3 decoders in plain
torch with a preallocated static KV cache (and prepacked oneDNN matrices on CPU for steps of 4 rows or more);
`HFDecoder` runs any `transformers` causal LM through its own forward and a `DynamicCache`. They agree up to
float rounding; `new_decoder` picks one by `backend` ("auto": the fast one where the model allows).

`token_stats` turns logits [..., V] into log-probs, entropy and top tokens (at a temperature, or scaled by
alpha, optionally truncated by `truncate`); `Proposal` is the distribution tokens are drawn from; `draw` is
the Gumbel-max draw; `decode` continues a primed decoder row by row until EOS or each row's horizon.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from entropylab.errors import ModelError

__all__ = [
    "BACKENDS",
    "FastDecoder",
    "HFDecoder",
    "Proposal",
    "StepDecoder",
    "TokenStats",
    "cache_kwargs",
    "decode",
    "draw",
    "entropy_moments",
    "eos_ids",
    "fast_path_supported",
    "new_decoder",
    "pad_id",
    "returned_cache",
    "token_stats",
    "truncate",
    "use_fast_path",
]

#: The decoding back-ends: "auto" (the fast one where the model allows), "fast" and "hf".
BACKENDS = ("auto", "fast", "hf")


# ------------------------------------------------------------------------------------------------
# the statistics of a logits row


@dataclass
class TokenStats:
    """Statistics of next-token distributions: log-probs [..., V], entropy [...], the log-probs of given
    tokens [...], the top tokens [..., k]."""

    logp: Tensor
    entropy: Tensor | None = None
    target_logp: Tensor | None = None
    top_logp: Tensor | None = None
    top_ids: Tensor | None = None


def token_stats(
    logits: Tensor,
    *,
    temperature: float = 1.0,
    alpha: float | None = None,
    top_k: int = 0,
    top_p: float = 1.0,
    entropy: bool = True,
    targets: Tensor | None = None,
    top: int = 0,
) -> TokenStats:
    """Log-probs (float32) of softmax(logits / temperature), or of softmax(logits * alpha) when alpha is given,
    over the last dimension, truncated to the top-k / top-p tokens when asked (`truncate`).

    With `entropy`, the entropy of each distribution (-inf entries count 0; under autograd, whose gradient
    through such entries is undefined, the logits must be finite, as a model's are); with `targets` [...],
    the log-prob of those tokens (`target_logp`); with `top` > 0, the `top` most likely tokens (`top_ids`)
    and their log-probs (`top_logp`).
    """
    z = logits.float()
    if alpha is not None:
        z = z * alpha
    elif temperature != 1.0:
        z = z / temperature
    logp = torch.log_softmax(truncate(z, top_k, top_p), dim=-1)
    out = TokenStats(logp)
    if targets is not None:  # before the entropy: the order autograd sums the gradients of logp in
        out.target_logp = logp.gather(-1, targets[..., None])[..., 0]
    if entropy:
        plogp = logp.exp() * logp
        if not plogp.requires_grad:
            plogp.masked_fill_(torch.isneginf(logp), 0.0)
        out.entropy = -plogp.sum(-1)
    if top > 0:
        out.top_logp, out.top_ids = torch.topk(logp, min(top, logp.shape[-1]), dim=-1)
    return out


def entropy_moments(logp: Tensor) -> tuple[Tensor, Tensor]:
    """Entropy and varentropy of rows of finite log-probs [c, V] (from `token_stats`, no autograd), with one
    extra [c, V] buffer: `logp` is overwritten (the memory-bounded path of long token profiles)."""
    p = logp.exp()
    entropy = -torch.bmm(p[:, None, :], logp[:, :, None])[:, 0, 0]
    logp.add_(entropy[:, None]).square_()  # (log p + H)^2, in place
    varentropy = torch.bmm(p[:, None, :], logp[:, :, None])[:, 0, 0]
    return entropy, varentropy.clamp_min(0)


def truncate(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Logits [..., V] with tokens outside the top-k / the top-p nucleus set to -inf (HF semantics, ties kept)."""
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs  # mass of strictly more likely tokens
        drop = before >= top_p
        drop[..., 0] = False
        logits = logits.masked_fill(drop.scatter(-1, order, drop), -math.inf)
    return logits


@dataclass(frozen=True)
class Proposal:
    """The distribution tokens are drawn from: softmax(logits / temperature) (0: greedy) or, when `alpha` is
    given, softmax(logits * alpha); reshaped first by `processor(logits) -> logits` and truncated to top-k /
    top-p."""

    temperature: float = 1.0
    alpha: float | None = None
    top_k: int = 0
    top_p: float = 1.0
    processor: Callable[[Tensor], Tensor] | None = None

    @property
    def greedy(self) -> bool:
        """Whether tokens are the argmax of the model's distribution (temperature 0)."""
        return self.alpha is None and self.temperature == 0

    @property
    def plain(self) -> bool:
        """Whether this is the model's own distribution at temperature 1 (no truncation, no processor)."""
        scale = self.temperature if self.alpha is None else self.alpha
        return scale == 1.0 and self.top_k <= 0 and self.top_p >= 1.0 and self.processor is None

    def logprobs(self, logits: Tensor, logp: Tensor | None = None) -> Tensor:
        """Log-probs [..., V] of the proposal; `logp`, the model's at temperature 1, is returned as is when
        the proposal is plain."""
        if self.plain and logp is not None:
            return logp
        z = logits.float() if self.processor is None else self.processor(logits.float())
        return token_stats(
            z, temperature=self.temperature, alpha=self.alpha, top_k=self.top_k, top_p=self.top_p, entropy=False
        ).logp


def draw(logq: Tensor, generator: torch.Generator | None) -> Tensor:
    """One token per row from softmax(logq) by Gumbel-max (exact; -inf entries are never drawn)."""
    u = torch.rand(logq.shape, generator=generator, device=logq.device)
    return (logq - u.log_().neg_().log_()).argmax(-1)


# ------------------------------------------------------------------------------------------------
# EOS and padding


def eos_ids(model, tokenizer, eos_token_id: int | Sequence[int] | None = None) -> list[int]:
    """The ids that end a row: explicit, else the tokenizer's and the generation config's EOS."""
    if eos_token_id is not None:
        return [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    ids: list[int] = []
    for src in (
        getattr(tokenizer, "eos_token_id", None),
        getattr(getattr(model, "generation_config", None), "eos_token_id", None),
    ):
        if src is None:
            continue
        ids += [src] if isinstance(src, int) else list(src)
    return sorted(set(ids))


def pad_id(tokenizer, eos: Sequence[int]) -> int:
    """The padding id: the tokenizer's, else the first EOS id, else 0."""
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = eos[0] if eos else 0
    return int(pad)


# ------------------------------------------------------------------------------------------------
# decoders: prefill(ids, mask) -> last logits; step(tokens) -> next logits; select(idx); fork(idx)


def cache_kwargs(model, cache) -> dict[str, object]:
    """The keyword argument that hands a KV cache to `model`'s forward: `cache` where the model's forward
    takes it (transformers 5.x renamed it), else the older `past_key_values`."""
    return {_cache_keyword(type(model)): cache}


@functools.cache
def _cache_keyword(cls: type) -> str:
    params = inspect.signature(cls.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def returned_cache(out) -> object | None:
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

    The packed copies are stored beside the plain ones as `p_wqkv`, ...; `FastDecoder._lin` picks one by
    the number of rows.
    """
    try:
        pack, run = torch.ops.mkldnn._reorder_linear_weight, torch.ops.mkldnn._linear_pointwise
        rows = max(batch, _PACK_MIN_ROWS)
        packed = [{"p_" + k: pack(w[k], rows) for k in _LINEARS} for w in layers]
        x = torch.randn(2, layers[0]["wqkv"].shape[1])
        if not torch.allclose(
            run(x, packed[0]["p_wqkv"], None, "none", [], ""), F.linear(x, layers[0]["wqkv"]), atol=1e-4
        ):
            return False
    except (AttributeError, RuntimeError):
        return False
    for w, p in zip(layers, packed):
        w.update(p)
    return True


class FastDecoder:
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
        freqs = torch.arange(n_pos, device=device, dtype=torch.float32)[:, None] * rot.inv_freq.to(
            device, torch.float32
        )
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

    def hidden(
        self, ids: Tensor, pos: Tensor, mask: Tensor | None, slots: Tensor | None = None, n_keys: int = 0
    ) -> Tensor:
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
                qk = torch.cat(
                    [
                        F.rms_norm(qk[:, :, :nq], (d,), w["qn"], self.eps),
                        F.rms_norm(qk[:, :, nq:], (d,), w["kn"], self.eps),
                    ],
                    2,
                )
            qk_c = torch.view_as_complex(qk.float().unflatten(-1, (d // 2, 2)))  # no-op .float() in fp32
            qk = torch.view_as_real(qk_c * rope).flatten(-2).to(x.dtype)
            if batch_rows is None:
                self.k[i, :, :, s0:s1] = qk[:, :, nq:].transpose(1, 2)
                self.v[i, :, :, s0:s1] = qkv[:, :, nq + nkv :].transpose(1, 2)
            else:
                self.k[i][batch_rows, :, slots] = qk[:, 0, nq:]
                self.v[i][batch_rows, :, slots] = qkv[:, 0, nq + nkv :]
            att = F.scaled_dot_product_attention(
                qk[:, :, :nq].transpose(1, 2),
                self.k[i, :, :, :n_keys],
                self.v[i, :, :, :n_keys],
                attn_mask=mask,
                scale=w["scaling"],
                enable_gqa=nq != nkv,
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
        """Run the left-padded prompts [B, P] (`mask` True on tokens); returns next-token logits [B, V]."""
        return self.logits(self.prefill_hidden(ids, mask))

    def step(self, tokens: Tensor) -> Tensor:
        """Append one token per row [B]; returns next-token logits [B, V]."""
        mask = self.key_valid[:, None, None, : self.cur + 1]
        logits = self._forward(tokens[:, None], self.pos[:, None], mask)
        self.pos += 1
        return logits

    def select(self, idx: Tensor) -> None:
        """Rows become rows `idx` of the old batch (cache included): drops, reorders or copies rows."""
        self.k, self.v = self.k[:, idx], self.v[:, idx]
        self.key_valid, self.pos = self.key_valid[idx], self.pos[idx]

    def fork(self, idx: Tensor) -> FastDecoder:
        """A new decoder whose rows are copies of rows `idx` of this one; this one is left as it is."""
        new = copy.copy(self)
        new.select(idx)  # select builds new tensors, so this decoder's stay untouched
        return new

    def fresh(self, batch: int, max_len: int) -> FastDecoder:
        """A decoder that shares these prepared weights, with an empty cache for `batch` rows of `max_len` tokens."""
        new = copy.copy(self)
        shape = (len(self.layers), batch, self.n_kv, max_len, self.head_dim)
        new.k = torch.empty(shape, dtype=self.k.dtype, device=self.k.device)
        new.v = torch.empty_like(new.k)
        new.key_valid = torch.ones((batch, max_len), dtype=torch.bool, device=self.k.device)
        new.cur, new.pos = 0, None
        return new


class HFDecoder:
    """Any `transformers` causal LM through its own forward and a `DynamicCache`."""

    def __init__(self, model, batch: int, max_len: int, device: torch.device):
        from transformers import DynamicCache

        self.model = model
        self.cache = DynamicCache(config=model.config)
        self.mask = torch.ones((batch, max_len), dtype=torch.long, device=device)
        self.cur = 0
        self.pos: Tensor | None = None

    def prefill(self, ids: Tensor, mask: Tensor) -> Tensor:
        """Run the left-padded prompts [B, P] (`mask` True on tokens); returns next-token logits [B, V]."""
        p = ids.shape[1]
        self.mask[:, :p] = mask.long()
        pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=ids,
            attention_mask=self.mask[:, :p],
            position_ids=pos,
            **cache_kwargs(self.model, self.cache),
            use_cache=True,
            logits_to_keep=1,
        )
        self.cur, self.pos = p, pos[:, -1] + 1
        return out.logits[:, -1]

    def step(self, tokens: Tensor) -> Tensor:
        """Append one token per row [B]; returns next-token logits [B, V]."""
        self.cur += 1
        out = self.model(
            input_ids=tokens[:, None],
            attention_mask=self.mask[:, : self.cur],
            position_ids=self.pos[:, None],
            **cache_kwargs(self.model, self.cache),
            use_cache=True,
        )
        self.pos = self.pos + 1
        return out.logits[:, -1]

    def select(self, idx: Tensor) -> None:
        """Rows become rows `idx` of the old batch (cache included): drops, reorders or copies rows."""
        self.cache.reorder_cache(idx)
        self.mask, self.pos = self.mask[idx], self.pos[idx]

    def fork(self, idx: Tensor) -> HFDecoder:
        """A new decoder whose rows are copies of rows `idx` of this one; this one is left as it is."""
        new = copy.copy(self)
        new.cache = copy.deepcopy(self.cache)  # reorder_cache works in place
        new.select(idx)
        return new


def use_fast_path(model, backend: str = "auto") -> bool:
    """Whether `backend` means `FastDecoder` for `model`; ModelError for an unknown backend or for "fast" on a
    model it does not reproduce."""
    if backend not in BACKENDS:
        raise ModelError(f"backend must be 'auto', 'fast' or 'hf', got {backend!r}")
    if backend == "hf":
        return False
    fast = fast_path_supported(model)
    if backend == "fast" and not fast:
        raise ModelError(f"the fast decoder does not support model type {model.config.model_type!r}; use backend='hf'")
    return fast


def new_decoder(
    model, batch: int, max_len: int, device: torch.device, backend: str = "auto"
) -> FastDecoder | HFDecoder:
    """A decoder with an empty cache for `batch` rows of up to `max_len` tokens, on the `backend` asked for."""
    return (FastDecoder if use_fast_path(model, backend) else HFDecoder)(model, batch, max_len, device)


# ------------------------------------------------------------------------------------------------
# the decode loop


class StepDecoder(Protocol):
    """What `decode` needs of a decoder: `step` one token per row, `select` rows."""

    def step(self, tokens: Tensor) -> Tensor: ...

    def select(self, idx: Tensor) -> None: ...


def decode(
    dec: StepDecoder,
    logits: Tensor,
    horizon: int | Tensor,
    q: Proposal,
    *,
    generator: torch.Generator | None,
    eos: Sequence[int],
    pad: int,
    compact: float = 0.75,
    sync_every: int = 1,
    first: Tensor | None = None,
) -> dict:
    """Draw continuations from `q` given the first next-token `logits` [R, V] of a primed decoder `dec`.

    Row r draws at most `horizon` (an int, or [R] per row) tokens or stops at an `eos` id. Every
    `sync_every` steps, rows that are done leave the batch (`dec.select`) once fewer than `compact` of them
    still run. `first` [R]: the first token of each row, drawn by the caller. Returns tokens [R, H] (pad past
    each row's end), logp (the model at temperature 1), logq (q; 0 when greedy) and entropy (of the model at
    temperature 1) [R, H], zero past each row's end; n [R] tokens drawn, eos [R] whether the row ended with
    EOS, and steps, the number of steps run (H = the largest horizon).
    """
    device = logits.device
    n_rows = logits.shape[0]
    per_row = isinstance(horizon, Tensor)
    h_max = int(horizon.max()) if per_row else int(horizon)
    eos_t = torch.as_tensor(list(eos), dtype=torch.long, device=device)
    check = per_row or bool(len(eos))  # rows can end early: look for finished rows
    tokens = torch.full((n_rows, h_max), pad, dtype=torch.long, device=device)
    logp_out = torch.zeros((n_rows, h_max), dtype=torch.float32, device=device)
    logq_out, ent_out = torch.zeros_like(logp_out), torch.zeros_like(logp_out)
    n = torch.zeros(n_rows, dtype=torch.long, device=device)
    ended = torch.zeros(n_rows, dtype=torch.bool, device=device)
    rows = torch.arange(n_rows, device=device)  # original index of each row still in the batch
    alive = torch.ones(n_rows, dtype=torch.bool, device=device)
    steps = 0
    for t in range(h_max):
        p = token_stats(logits)
        if t == 0 and first is not None:
            tok, logq = first, None if q.greedy else q.logprobs(logits, p.logp)
        elif q.greedy:
            tok, logq = p.logp.argmax(-1), None
        else:
            logq = q.logprobs(logits, p.logp)
            tok = draw(logq, generator)
        tok = tok.masked_fill(~alive, pad)
        tokens[rows, t] = tok
        logp_out[rows, t] = torch.where(alive, p.logp.gather(1, tok[:, None])[:, 0], 0.0)
        if logq is not None:
            logq_out[rows, t] = torch.where(alive, logq.gather(1, tok[:, None])[:, 0], 0.0)
        ent_out[rows, t] = torch.where(alive, p.entropy, 0.0)
        n[rows] += alive
        hit = alive & torch.isin(tok, eos_t)
        ended[rows] |= hit
        alive &= ~hit
        if per_row:
            alive &= n[rows] < horizon[rows]
        steps = t + 1
        if steps == h_max:
            break
        if check and steps % sync_every == 0:
            live = int(alive.sum())
            if live == 0:
                break
            if live <= compact * len(rows):
                keep = alive.nonzero()[:, 0]
                dec.select(keep)
                rows, alive, tok = rows[keep], alive[keep], tok[keep]
        logits = dec.step(tok)
    return dict(tokens=tokens, logp=logp_out, logq=logq_out, entropy=ent_out, n=n, eos=ended, steps=steps)
