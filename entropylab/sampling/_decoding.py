"""Step-level decoding for the samplers: the core's decoders with a position count, per-row horizons.

The samplers decode with `entropylab.decoder` (the plain-torch fast path for Llama/Qwen2/Qwen3, else the
`transformers` forward with a `DynamicCache`) through `Decoder`, which also counts every token position
passed through the model; `DecoderFactory` prepares the fast path's weights once per model. The MH
proposals cut each row at its own horizon (the block end minus its m), and SMC steps token by token and
reorders the cache rows after resampling.
"""

from __future__ import annotations

import torch
from torch import Tensor

from entropylab.decoder import FastDecoder, HFDecoder, Proposal, decode, draw, token_stats, use_fast_path


class Decoder:
    """A KV-cached decoder over a batch: `prefill`, `step`, `select` (keep / reorder / duplicate rows).

    Wraps one of the core's decoders and counts the token positions passed through the model.
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
        return Decoder(self.impl.fork(idx))


class DecoderFactory:
    """Decoders for one model; the fast path's weight preparation (fusing, packing) happens once, not per decoder."""

    def __init__(self, model, device: torch.device, backend: str = "auto", batch_hint: int = 1):
        self.model, self.device = model, device
        self.fast = use_fast_path(model, backend)
        self.template = FastDecoder(model, batch_hint, 1, device) if self.fast else None

    def raw(self, batch: int, max_len: int) -> FastDecoder | HFDecoder:
        """A bare core decoder with an empty cache for `batch` rows of up to `max_len` tokens."""
        if self.template is None:
            return HFDecoder(self.model, batch, max_len, self.device)
        return self.template.fresh(batch, max_len)

    def new(self, batch: int, max_len: int) -> Decoder:
        """A counting `Decoder` with an empty cache."""
        return Decoder(self.raw(batch, max_len))


@torch.inference_mode()
def sample_suffixes(
    factory: DecoderFactory,
    ids: Tensor,
    mask: Tensor,
    horizon: Tensor,
    q: Proposal,
    *,
    generator: torch.Generator,
    first_temperature: float | None = None,
    first_old: Tensor | None = None,
    **options,
) -> dict:
    """Continue left-padded prefixes [R, P] with the proposal q, row r for at most horizon[r] tokens or to EOS.

    `options`: `eos`, `pad` and `compact` of `entropylab.decoder.decode`, whose fields come back, plus
    `evaluated` / `prefilled`: token positions the model computed (all, and in the prefill). With
    `first_temperature`, the first token comes from the model at that temperature (untruncated), and
    `first_logq` / `first_logq_old` [R] give its log-probability there and that of the tokens `first_old`.
    """
    dec = factory.new(ids.shape[0], ids.shape[1] + int(horizon.max()))
    logits = dec.prefill(ids, mask)
    extra, first = {}, None
    if first_temperature is not None:
        logc = token_stats(logits, temperature=first_temperature, entropy=False).logp
        first = draw(logc, generator)
        extra = dict(
            first_logq=logc.gather(1, first[:, None])[:, 0], first_logq_old=logc.gather(1, first_old[:, None])[:, 0]
        )
    out = decode(dec, logits, horizon, q, generator=generator, first=first, **options)
    del out["steps"]
    return {**out, **extra, "evaluated": dec.evaluated, "prefilled": dec.prefilled}


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
