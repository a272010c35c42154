"""Step-level decoding for the samplers: generation's KV-cached decoders, a position count, per-row horizons.

`generation.continue_sampling` decodes every row to one shared length; the MH proposals need each row
cut at its own horizon (the block end minus its m), and SMC needs to step token by token and reorder the
cache rows after resampling. Both use the decoders of `entropylab.generation` (the plain-torch fast path
for Llama/Qwen2/Qwen3, else the `transformers` forward with a `DynamicCache`) through `Decoder`, which
also counts every token position passed through the model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor

from entropylab.errors import ModelError
from entropylab.generation import _FastDecoder, _HFDecoder, _truncate, fast_path_supported


class Decoder:
    """A KV-cached decoder over a batch: `prefill`, `step`, `select` (keep / reorder / duplicate rows).

    Wraps one of generation's decoders and counts the token positions passed through the model.
    """

    def __init__(self, impl):
        self.impl = impl
        self.evaluated = 0  # token positions passed through the model, padding included
        self.prefilled = 0  # of which in prefill calls

    def prefill(self, ids: Tensor, mask: Tensor) -> Tensor:
        """Run the left-padded prompts [B, P]; returns next-token logits [B, V]."""
        self.evaluated += ids.numel()
        self.prefilled += ids.numel()
        return self.impl.prefill(ids, mask.bool())

    def step(self, tokens: Tensor) -> Tensor:
        """Append one token per row [B]; returns next-token logits [B, V]."""
        self.evaluated += tokens.numel()
        return self.impl.step(tokens)

    def select(self, idx: Tensor) -> None:
        """Rows become rows `idx` of the old batch (cache included): drops, reorders or copies rows."""
        self.impl.select(idx)

    def fork(self, idx: Tensor) -> Decoder:
        """A new decoder whose rows are copies of rows `idx` of this one, caches included; this one is left
        as it is (branches, such as rollouts from a prefix, continue without re-encoding it)."""
        impl = copy.copy(self.impl)
        if hasattr(impl, "cache"):  # the transformers path reorders its DynamicCache in place
            impl.cache = copy.deepcopy(impl.cache)
        impl.select(idx)  # the fast path's select builds new tensors, so the original's stay untouched
        return Decoder(impl)


class DecoderFactory:
    """Decoders for one model; the fast path's weight preparation (fusing, packing) happens once, not per decoder."""

    def __init__(self, model, device: torch.device, backend: str = "auto", batch_hint: int = 1):
        if backend not in ("auto", "fast", "hf"):
            raise ModelError(f"backend must be 'auto', 'fast' or 'hf', got {backend!r}")
        fast = fast_path_supported(model)
        if backend == "fast" and not fast:
            raise ModelError(f"the fast decoder does not support model type {model.config.model_type!r}; use backend='hf'")
        self.model, self.device = model, device
        self.fast = backend == "fast" or (backend == "auto" and fast)
        self.template = _FastDecoder(model, batch_hint, 1, device) if self.fast else None

    def raw(self, batch: int, max_len: int):
        """A bare generation decoder with an empty cache for `batch` rows of up to `max_len` tokens."""
        if self.template is None:
            return _HFDecoder(self.model, batch, max_len, self.device)
        d = copy.copy(self.template)  # shares the prepared weights
        shape = (len(d.layers), batch, d.n_kv, max_len, d.head_dim)
        d.k = torch.empty(shape, dtype=self.template.k.dtype, device=self.device)
        d.v = torch.empty_like(d.k)
        d.key_valid = torch.ones((batch, max_len), dtype=torch.bool, device=self.device)
        d.cur, d.pos = 0, None
        return d

    def new(self, batch: int, max_len: int) -> Decoder:
        """A counting `Decoder` with an empty cache."""
        return Decoder(self.raw(batch, max_len))


def next_token_logprobs(logits: Tensor, alpha: float, top_k: int = 0, top_p: float = 1.0) -> tuple[Tensor, Tensor]:
    """(log p, log q) [B, V]: the model at temperature 1 and the proposal at temperature 1/alpha (truncated)."""
    logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    if alpha == 1.0 and top_k <= 0 and top_p >= 1.0:
        return logp, logp
    return logp, torch.log_softmax(_truncate(logits * alpha, top_k, top_p), dim=-1)


def row_entropy(logp: Tensor) -> Tensor:
    """Entropy [B] of each row of log-probabilities [B, V] (-inf entries contribute 0)."""
    return -(logp.exp() * logp.masked_fill(torch.isneginf(logp), 0.0)).sum(-1)


def draw(logq: Tensor, generator: torch.Generator | None) -> Tensor:
    """One token per row from softmax(logq) by Gumbel-max (exact; -inf entries are never drawn)."""
    u = torch.rand(logq.shape, generator=generator, device=logq.device)
    return (logq - u.log_().neg_().log_()).argmax(-1)


def decode_suffixes(
    dec,
    logits: Tensor,
    horizon: Tensor,
    *,
    alpha: float,
    top_k: int,
    top_p: float,
    generator: torch.Generator,
    eos: list[int],
    pad: int,
    compact: float = 0.75,
    spill: Callable[[Tensor, Tensor], None] | None = None,
    first_temperature: float | None = None,
    first_old: Tensor | None = None,
) -> dict:
    """Draw suffixes from q given the first next-token `logits` [R, V] of a primed decoder `dec`.

    Row r draws at most horizon[r] tokens or stops at EOS. Rows that are done leave the batch once fewer
    than `compact` still run; `spill(batch_positions, rows)` is called just before rows leave (and for the
    rows left at the end) so a caller can keep their cache entries. Returns tokens / logp / logq / entropy
    [R, H] (H = max horizon; zero / pad past each row's length), n [R] tokens drawn, eos [R].
    With `first_temperature`, the first token comes from the model at that temperature (untruncated), and
    `first_logq` / `first_logq_old` [R] give its log-probability there and that of the tokens `first_old`.
    """
    extra: dict = {}
    if first_temperature is not None:
        logc = torch.log_softmax(logits.float() / first_temperature, dim=-1)
        extra["first_token"] = draw(logc, generator)
        extra["first_logq"] = logc.gather(1, extra["first_token"][:, None])[:, 0]
        extra["first_logq_old"] = logc.gather(1, first_old[:, None])[:, 0]
    device = logits.device
    n_rows = logits.shape[0]
    h_max = int(horizon.max())
    eos_t = torch.as_tensor(eos, dtype=torch.long, device=device)
    tokens = torch.full((n_rows, h_max), pad, dtype=torch.long, device=device)
    logp_out = torch.zeros((n_rows, h_max), dtype=torch.float32, device=device)
    logq_out, ent_out = torch.zeros_like(logp_out), torch.zeros_like(logp_out)
    n = torch.zeros(n_rows, dtype=torch.long, device=device)
    ended = torch.zeros(n_rows, dtype=torch.bool, device=device)
    rows = torch.arange(n_rows, device=device)  # original index of each row still in the batch
    alive = torch.ones(n_rows, dtype=torch.bool, device=device)
    for t in range(h_max):
        logp, logq = next_token_logprobs(logits, alpha, top_k, top_p)
        tok = extra["first_token"] if t == 0 and extra else draw(logq, generator)
        tok = tok.masked_fill(~alive, pad)
        tokens[rows, t] = tok
        logp_out[rows, t] = torch.where(alive, logp.gather(1, tok[:, None])[:, 0], 0.0)
        logq_out[rows, t] = torch.where(alive, logq.gather(1, tok[:, None])[:, 0], 0.0)
        ent = row_entropy(logp)
        ent_out[rows, t] = torch.where(alive, ent, 0.0)
        n[rows] += alive
        hit = alive & torch.isin(tok, eos_t)
        ended[rows] |= hit
        alive &= ~hit & (n[rows] < horizon[rows])
        live = int(alive.sum())
        if live == 0 or t + 1 == h_max:
            break
        if live <= compact * len(rows):
            keep = alive.nonzero()[:, 0]
            if spill is not None:
                gone = (~alive).nonzero()[:, 0]
                spill(gone, rows[gone])
            dec.select(keep)
            rows, alive, tok = rows[keep], alive[keep], tok[keep]
        logits = dec.step(tok)
    if spill is not None:
        spill(torch.arange(len(rows), device=device), rows)
    extra.pop("first_token", None)
    return dict(tokens=tokens, logp=logp_out, logq=logq_out, entropy=ent_out, n=n, eos=ended, **extra)


@torch.inference_mode()
def sample_suffixes(
    factory: DecoderFactory,
    ids: Tensor,
    mask: Tensor,
    horizon: Tensor,
    *,
    alpha: float,
    top_k: int,
    top_p: float,
    generator: torch.Generator,
    eos: list[int],
    pad: int,
    compact: float = 0.75,
    first_temperature: float | None = None,
    first_old: Tensor | None = None,
) -> dict:
    """Continue left-padded prefixes [R, P] with the proposal q, row r for at most horizon[r] tokens or to EOS.

    The fields of `decode_suffixes`, plus `evaluated` / `prefilled`: token positions the model computed
    (all, and in the prefill).
    """
    dec = factory.new(ids.shape[0], ids.shape[1] + int(horizon.max()))
    logits = dec.prefill(ids, mask)
    out = decode_suffixes(dec, logits, horizon, alpha=alpha, top_k=top_k, top_p=top_p, generator=generator,
                          eos=eos, pad=pad, compact=compact, first_temperature=first_temperature,
                          first_old=first_old)
    return {**out, "evaluated": dec.evaluated, "prefilled": dec.prefilled}


def left_align_prefixes(prompt: Tensor, prompt_mask: Tensor, tokens: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
    """Left-padded batch of prompt + tokens[:, :m] per row (ids, mask [R, P + max m]): one prefill for all m."""
    p = prompt.shape[1]
    width = p + int(m.max())
    seq = torch.cat([prompt, tokens], dim=1)
    cols = torch.arange(tokens.shape[1], device=tokens.device)[None, :]
    valid = torch.cat([prompt_mask.bool(), cols < m[:, None]], dim=1)
    shift = (int(m.max()) - m)[:, None]  # row r moves right by max(m) - m_r
    out_cols = torch.arange(width, device=tokens.device)[None, :]
    src = (out_cols - shift).clamp(min=0)
    return seq.gather(1, src), valid.gather(1, src) & (out_cols >= shift)

