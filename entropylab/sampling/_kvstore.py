"""`ChainKV`: the KV cache of every MH chain's current state, kept across moves so no proposal re-encodes its prefix.

Layout [R, layers, kv_heads, P + T, head_dim] (rows first): the prompt, left-padded, in slots [0, P); the
generated token t in slot P + t. It holds every token a proposal can condition on (all but the state's
last token). A move with per-row cut points m (rows differ) runs as one batch:

1. gather: each row's prefix slots [.., P + m_r - 1) are copied right-aligned into a fresh working
   decoder, so all rows end at the same slot W0 (a memory copy instead of a prefill forward; the keys
   carry their rotary positions, so moving them along the slot axis changes nothing);
2. re-feed the prefix's last token (at position len(prompt_r) + m_r - 1) to get the first next-token
   distribution, then decode the suffixes in lockstep (`decode_suffixes`);
3. spill: each row's new K/V entries are copied out before it leaves the batch;
4. commit: on acceptance the spilled entries overwrite the state's slots from P + m_r - 1 on.

Uses the plain-torch fast decoder of `entropylab.generation` (Llama / Qwen2 / Qwen3); other models use
the recompute path of `power_sample_mh` (one batched prefill per move).
"""

from __future__ import annotations

import torch
from torch import Tensor

from entropylab.errors import ModelError
from entropylab.sampling._decoding import Decoder, DecoderFactory, decode_suffixes


class ChainKV:
    """Per-chain K/V of the current MH states (see the module docstring)."""

    def __init__(self, factory: DecoderFactory, prompt: Tensor, prompt_mask: Tensor, t_max: int):
        if not factory.fast:
            raise ModelError("ChainKV needs the fast decoder (a Llama/Qwen2/Qwen3 model)")
        self.factory = factory
        self.prompt, self.prompt_mask = prompt, prompt_mask.bool()
        self.rows, self.width = prompt.shape
        self.slots = self.width + t_max
        self.prompt_len = self.prompt_mask.sum(1)
        self.device = prompt.device
        t = factory.template
        shape = (self.rows, len(t.layers), t.n_kv, self.slots, t.head_dim)
        self.k = torch.zeros(shape, dtype=t.k.dtype, device=self.device)
        self.v = torch.zeros_like(self.k)
        # the prompts' K/V, once
        dec = factory.raw(self.rows, self.width)
        dec.prefill(self.prompt, self.prompt_mask)
        self.k[:, :, :, : self.width] = dec.k.transpose(0, 1)
        self.v[:, :, :, : self.width] = dec.v.transpose(0, 1)
        self.evaluated = self.prompt.numel()

    @torch.no_grad()
    def propose(self, rows: Tensor, tokens: Tensor, m: Tensor, horizon: Tensor, **sampling) -> dict:
        """Suffixes from q after prompt + tokens[:, :m] for chains `rows` (tokens: their states [n, T]).

        The fields of `decode_suffixes` plus `k`, `v` [n, layers, kv, H, head_dim] (the new entries, from
        slot P + m - 1 on), `evaluated` and `prefilled` (always 0: nothing is re-encoded).
        """
        n, p = rows.numel(), self.width
        m_max, h_max = int(m.max()), int(horizon.max())
        w0 = p + m_max - 1  # working slots holding the prefixes without their last token
        src = torch.arange(w0, device=self.device)[None, :] - (m_max - m)[:, None]
        valid = (src >= 0) & (src < (p + m - 1)[:, None])
        src = src.clamp(min=0)
        valid &= torch.cat([self.prompt_mask[rows], torch.ones_like(tokens, dtype=torch.bool)], 1).gather(1, src)
        dec = self.factory.raw(n, w0 + h_max)
        idx = src[:, None, None, :, None].expand(n, self.k.shape[1], self.k.shape[2], w0, self.k.shape[4])
        dec.k[:, :, :, :w0] = self.k[rows].gather(3, idx).transpose(0, 1)
        dec.v[:, :, :, :w0] = self.v[rows].gather(3, idx).transpose(0, 1)
        dec.key_valid[:, :w0] = valid
        dec.cur, dec.pos = w0, self.prompt_len[rows] + m - 1
        seq = torch.cat([self.prompt[rows], tokens], 1)
        last = seq.gather(1, (p + m - 1)[:, None])[:, 0]

        new_k = torch.zeros((n, *self.k.shape[1:3], h_max, self.k.shape[4]), dtype=self.k.dtype, device=self.device)
        new_v = torch.zeros_like(new_k)

        def spill(pos: Tensor, orig: Tensor) -> None:
            t = dec.cur - w0
            new_k[orig, :, :, :t] = dec.k[:, pos, :, w0 : w0 + t].transpose(0, 1)
            new_v[orig, :, :, :t] = dec.v[:, pos, :, w0 : w0 + t].transpose(0, 1)

        counted = Decoder(dec)
        logits = counted.step(last)
        out = decode_suffixes(counted, logits, horizon, spill=spill, **sampling)  # select() updates `dec` in place
        return {**out, "k": new_k, "v": new_v, "evaluated": counted.evaluated, "prefilled": 0}

    def commit(self, rows: Tensor, m: Tensor, prop: dict) -> None:
        """Chains `rows` (accepted) now hold prompt + x_<m + the proposal: copy its K/V into their slots."""
        if rows.numel() == 0:
            return
        rel = torch.arange(self.slots, device=self.device)[None, :] - (self.width + m - 1)[:, None]
        take = ((rel >= 0) & (rel < prop["n"][:, None]))[:, None, None, :, None]
        h = prop["k"].shape[3]
        idx = rel.clamp(0, h - 1)[:, None, None, :, None].expand(-1, *self.k.shape[1:3], -1, self.k.shape[4])
        self.k[rows] = torch.where(take, prop["k"].gather(3, idx), self.k[rows])
        self.v[rows] = torch.where(take, prop["v"].gather(3, idx), self.v[rows])
