"""`KeptChains`: power MH with every chain's KV cache kept, run with continuous batching.

Nothing is re-encoded or re-scored: a proposal's prefix is already in its chain's cache, and the
distribution of its first token, p(. | x_<m), is the stored final hidden state h_m of the current state
pushed through the LM head. More generally, while the proposal repeats the state's tokens (y_<j = x_<j)
its next-token distribution is the state's own, h_j, so those tokens are drawn without any forward
(`replay`); forwards start at the first token that departs from the state (and the last token drawn is
never fed). Each chain runs its own sequence of jobs (block k: extend with q to E_k, then `mcmc_steps`
MH moves), and a batch row whose job ends takes that chain's next job at once, so rows never wait for
the longest proposal of a lockstep batch: every forward advances every running chain by one token.

Storage (P prompt slots, left-padded; response token t in slot P + t; T = max_new_tokens):

- committed, per chain r: the state in `Chains` (tokens, log p, log q, entropy, length, EOS), the K/V of
  prompt + x_0..x_{L-2} in `k_st` / `v_st` [layers, R, kv, P + T, head_dim] (all a proposal can condition
  on), and `h_st` [R, T, hidden]: h_t, whose logits give p(. | x_<t), for t < L;
- working, per batch row b (running chain `chain[b]`): the same fields for the state being built, with the
  K/V in the decoder's own cache, written at per-row slots (`FastDecoder.hidden(..., slots=...)`).

A job cut at m keeps the working copy's x_<m, draws its first token from h_m (a move) or feeds x_{m-1}
first (an extension at m = L > 0, whose h_L was never computed), and decodes until EOS or the block end.
When it ends the MH ratio is formed from the stored per-token log p / log q of both suffixes (nothing is
re-scored); on acceptance the job's range (tokens, slots [P + m - 1, P + L' - 1), hidden states
[m, L')) is copied to the committed state, on rejection the committed values are copied back over it.
Chains that are done leave the batch once a quarter of its rows are idle.

The lockstep alternative (`kv="recompute"`, any model) is `power_sample_mh`'s own loop.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from entropylab.decoder import Proposal, draw, token_stats
from entropylab.errors import ModelError
from entropylab.sampling._decoding import DecoderFactory
from entropylab.sampling.cuts import cut_weights, pick_cuts

__all__ = ["KeptChains"]


class KeptChains:
    """Continuous-batching runner of block-wise power MH over kept caches (see the module docstring)."""

    def __init__(self, factory: DecoderFactory, prompt: Tensor, prompt_mask: Tensor, t_max: int):
        if not factory.fast:
            raise ModelError("kept caches need the fast decoder (a Llama/Qwen2/Qwen3 model)")
        self.factory = factory
        self.device = prompt.device
        self.rows, self.width = prompt.shape
        self.t_max = t_max
        self.slots = self.width + t_max
        self.prompt, self.prompt_mask = prompt, prompt_mask.bool()
        self.prompt_len = self.prompt_mask.sum(1)
        self.dec = factory.raw(self.rows, self.slots)
        # rows attend over the batch's widest range; masked slots weigh 0, but 0 * (garbage NaN) is NaN
        self.dec.k.zero_()
        self.dec.v.zero_()
        h0 = self.dec.prefill_hidden(self.prompt, self.prompt_mask)  # the prompts' K/V, once
        self.k_st, self.v_st = self.dec.k.clone(), self.dec.v.clone()
        self.h_st = torch.zeros((self.rows, t_max, h0.shape[-1]), dtype=h0.dtype, device=self.device)
        self.h_st[:, 0] = h0
        self.evaluated = self.prompt.numel()
        self.generated = 0
        self.replayed = 0  # of the generated tokens, drawn from stored distributions (no forward)

    @torch.inference_mode()
    def run(
        self,
        chains,
        ends: list[int],
        mcmc_steps: int,
        log_ratio: Callable[..., Tensor],
        accept: Callable[[Tensor, Tensor], Tensor],
        q: Proposal,
        *,
        generator: torch.Generator,
        eos: list[int],
        pad: int,
        exact: bool,
        freeze_finished: bool,
        cuts: str = "uniform",
        cut_floor: float = 0.0,
        cut_temperature: float | None = None,
        compact: float = 0.75,
        progress=None,
    ) -> dict:
        """Run every chain through all blocks; fills `chains` (the `Chains` of `power_sample_mh`) in place.

        `log_ratio(logp_new, logp_old, logq_new, logq_old, norm_new, norm_old)` and `accept(log_r, u)` are
        the MH rule; `q` the proposal; `cuts` / `cut_floor` choose where a move cuts (`cut_weights`) and
        `cut_temperature` the proposal of its first token (None: q, like the rest). Returns accepted [R] and
        proposed [R] counts and per-block (accepted, proposed) pairs.
        """
        dev, P, T, R = self.device, self.width, self.t_max, self.rows
        dec = self.dec
        eos_t = torch.as_tensor(eos, dtype=torch.long, device=dev)
        ends_t = torch.as_tensor(ends, dtype=torch.long, device=dev)
        cols = torch.arange(T, device=dev)[None, :]
        n_blocks = len(ends)
        accepted = torch.zeros(R, dtype=torch.long, device=dev)
        proposed = torch.zeros(R, dtype=torch.long, device=dev)
        blk_acc = torch.zeros(n_blocks, dtype=torch.long, device=dev)
        blk_prop = torch.zeros(n_blocks, dtype=torch.long, device=dev)
        block = torch.zeros(R, dtype=torch.long, device=dev)  # the block each chain is in
        moves_left = torch.full((R,), mcmc_steps, dtype=torch.long, device=dev)  # MH moves still to make in it

        # working state, one row per running chain (batch row b runs chain[b])
        w = dict(
            chain=torch.arange(R, device=dev),
            tok=chains.tokens.clone(),
            lp=chains.logp.clone(),
            lq=chains.logq.clone(),
            ent=chains.entropy.clone(),
            h=self.h_st.clone(),
            prompt=self.prompt,
            pmask=self.prompt_mask,
            plen=self.prompt_len,
            pos=torch.zeros(R, dtype=torch.long, device=dev),  # next position to draw
            stop=torch.full((R,), ends[0], dtype=torch.long, device=dev),  # the job's horizon (a block end)
            cut=torch.zeros(R, dtype=torch.long, device=dev),  # the job's m
            move=torch.zeros(R, dtype=torch.bool, device=dev),  # MH move (else an extension)
            lo=torch.full((R,), P, dtype=torch.long, device=dev),  # first cache slot the job writes
            idle=torch.zeros(R, dtype=torch.bool, device=dev),
            z_old=torch.ones(R, device=dev),  # a move's index-choice normaliser Z(x) of the current state
            lc_new=torch.zeros(R, device=dev),  # with cut_temperature: log q_cut of the new / the old token at m
            lc_old=torch.zeros(R, device=dev),
        )
        # every chain begins with block 0's extension from position 0, whose distribution the prefill gave
        cur_h = self.h_st[:, 0].clone()  # per row: the hidden state giving its next-token distribution

        def ranges(lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
            """(which, index): every index lo[i] <= index < hi[i], with i, as flat vectors."""
            n = (hi - lo).clamp(min=0)
            which = torch.repeat_interleave(torch.arange(n.numel(), device=dev), n)
            first = torch.cumsum(n, 0) - n
            return which, lo[which] + torch.arange(which.numel(), device=dev) - first[which]

        def start(bs: Tensor) -> Tensor:
            """Give batch rows `bs` (their chains' last jobs are committed) their next jobs.

            Block k of a chain: its extension, then `mcmc_steps` moves; then it is done (ended, when
            frozen; or the last block) or goes on to block k + 1 (an extension, or moves if it ended with
            EOS and keeps moving). Returns the rows that start a move (`replay` draws their first tokens
            from the stored h); extensions wait for the forward that feeds x_{L-1}, done rows idle.
            """
            rs = w["chain"][bs]
            length, ended = chains.length[rs], chains.eos[rs]
            has_move = moves_left[rs] > 0
            over = ~has_move
            frozen = over & freeze_finished & (ended | (length >= T))
            last = over & ~frozen & (block[rs] + 1 >= n_blocks)
            nxt = over & ~frozen & ~last
            block[rs] += nxt.long()
            ext = nxt & ~ended
            move = has_move | (nxt & ended & (mcmc_steps > 0))
            moves_left[rs] = torch.where(nxt, mcmc_steps, moves_left[rs]) - move.long()
            w["idle"][bs] = ~(ext | move)
            stop = ends_t[block[rs]]
            if bool(ext.any()):
                e, L = bs[ext], length[ext]  # L > 0: only block 0 starts at 0
                w["pos"][e], w["cut"][e], w["move"][e], w["lo"][e], w["stop"][e] = L, L, False, P + L - 1, stop[ext]
            mv = bs[move]
            if mv.numel():
                L = length[move]
                weights = cut_weights(chains.entropy[rs[move]], L, cuts, cut_floor)
                m, w["z_old"][mv] = pick_cuts(weights, torch.rand(mv.numel(), generator=generator, device=dev))
                keep = cols < m[:, None]
                w["tok"][mv] = torch.where(keep, w["tok"][mv], pad)
                for key in ("lp", "lq", "ent"):
                    w[key][mv] = torch.where(keep, w[key][mv], 0.0)
                w["pos"][mv], w["cut"][mv], w["move"][mv], w["lo"][mv], w["stop"][mv] = m, m, True, P + m, stop[move]
            return mv

        def finish(bs: Tensor) -> Tensor:
            """Batch rows `bs` ended their jobs: accept or reject, commit or restore, start their next jobs."""
            rs = w["chain"][bs]
            new_len, cut = w["pos"][bs], w["cut"][bs]
            new_eos = torch.isin(w["tok"][bs].gather(1, (new_len - 1)[:, None])[:, 0], eos_t)
            ok = ~w["move"][bs]  # extensions are always kept
            mv = ~ok
            if bool(mv.any()):
                mb, mr, m, nl = bs[mv], rs[mv], cut[mv], new_len[mv]
                old_len = chains.length[mr]
                new_mask = (cols >= m[:, None]) & (cols < nl[:, None])
                old_stop = old_len if exact else torch.minimum(old_len, nl)
                old_mask = (cols >= m[:, None]) & (cols < old_stop[:, None])

                def total(x: Tensor, mask: Tensor) -> Tensor:
                    return torch.where(mask, x, torch.zeros_like(x)).sum(-1)

                if cut_temperature is None:
                    lq_new, lq_old = total(w["lq"][mb], new_mask), total(chains.logq[mr], old_mask)
                else:  # the first token came from q_cut, the rest from q
                    after = cols > m[:, None]
                    lq_new = w["lc_new"][mb] + total(w["lq"][mb], new_mask & after)
                    lq_old = w["lc_old"][mb] + total(chains.logq[mr], old_mask & after)
                if cuts == "uniform":
                    z_new, z_old = nl, old_len
                else:
                    z_new, z_old = cut_weights(w["ent"][mb], nl, cuts, cut_floor).sum(-1), w["z_old"][mb]
                log_r = log_ratio(
                    total(w["lp"][mb], new_mask), total(chains.logp[mr], old_mask), lq_new, lq_old, z_new, z_old
                )
                take = accept(log_r, torch.rand(mb.numel(), generator=generator, device=dev))
                ok[mv] = take
                accepted[mr] += take.long()
                proposed[mr] += 1
                blk_acc.index_add_(0, block[mr], take.long())
                blk_prop.index_add_(0, block[mr], torch.ones_like(mr))
            yb, yr, nb, nr = bs[ok], rs[ok], bs[~ok], rs[~ok]
            # token rows: whole rows (small); cache slots [lo, P + L' - 1) and hidden states [m, L'): the job's
            if yb.numel():
                chains.tokens[yr], chains.logp[yr] = w["tok"][yb], w["lp"][yb]
                chains.logq[yr], chains.entropy[yr] = w["lq"][yb], w["ent"][yb]
                chains.length[yr], chains.eos[yr] = new_len[ok], new_eos[ok]
                i, s = ranges(w["lo"][yb], P + new_len[ok] - 1)
                self.k_st[:, yr[i], :, s] = dec.k[:, yb[i], :, s]
                self.v_st[:, yr[i], :, s] = dec.v[:, yb[i], :, s]
                i, t = ranges(cut[ok], new_len[ok])
                self.h_st[yr[i], t] = w["h"][yb[i], t]
            if nb.numel():
                w["tok"][nb], w["lp"][nb] = chains.tokens[nr], chains.logp[nr]
                w["lq"][nb], w["ent"][nb] = chains.logq[nr], chains.entropy[nr]
                i, s = ranges(w["lo"][nb], P + new_len[~ok] - 1)
                dec.k[:, nb[i], :, s] = self.k_st[:, nr[i], :, s]
                dec.v[:, nb[i], :, s] = self.v_st[:, nr[i], :, s]
                i, t = ranges(cut[~ok], new_len[~ok])
                w["h"][nb[i], t] = self.h_st[nr[i], t]
            if progress is not None:
                progress.update(bs.numel())
            return start(bs)

        def sample(h: Tensor, first: Tensor | None = None, old: Tensor | None = None):
            """(token drawn from q, its log p, its log q, entropy of p) for hidden states h [n, hidden]; with
            `first` (rows at a move's cut) and a cut temperature, those rows draw from q_cut instead, and
            (log q_cut of the drawn token, of the `old` token) come back too."""
            logits = dec.logits(h)
            p = token_stats(logits)
            logp, logq, ent = p.logp, q.logprobs(logits, p.logp), p.entropy
            logc = None if first is None else token_stats(logits, temperature=cut_temperature, entropy=False).logp
            tok = draw(logq if logc is None else torch.where(first[:, None], logc, logq), generator)
            lp, lq = logp.gather(1, tok[:, None])[:, 0], logq.gather(1, tok[:, None])[:, 0]
            if logc is None:
                return tok, lp, lq, ent
            return tok, lp, lq, ent, logc.gather(1, tok[:, None])[:, 0], logc.gather(1, old[:, None])[:, 0]

        def record(bs: Tensor, t: Tensor, tok: Tensor, lp: Tensor, lq: Tensor, ent: Tensor, h: Tensor) -> None:
            w["tok"][bs, t], w["lp"][bs, t], w["lq"][bs, t], w["ent"][bs, t], w["h"][bs, t] = tok, lp, lq, ent, h

        def replay(bs: Tensor) -> Tensor:
            """Moves `bs` (at their cuts m) draw while their suffix repeats the state's: no forward needed.

            Given y_<j = x_<j the proposal's distribution at j is the state's own, stored as h_j (j < L), so
            positions are drawn `chunk` at a time from the stored h until the first that differs from x_j,
            is EOS, reaches the horizon or is x's last (j = L - 1); draws after it are discarded (each
            position has its own noise, so the kept ones are exactly the sequential draws). Returns the rows
            whose job ended; the others continue from the forward.
            """
            ended_rows = []
            while bs.numel():
                rs, p0, stop = w["chain"][bs], w["pos"][bs], w["stop"][bs]
                j = p0[:, None] + span  # [n, chunk]
                jc = j.clamp(max=T - 1)
                h = w["h"][bs[:, None], jc]
                if cut_temperature is None:
                    tok, lp, lq, ent = (v.view(j.shape) for v in sample(h.flatten(0, 1)))
                else:
                    first = j == w["cut"][bs][:, None]
                    old = chains.tokens[rs[:, None], jc]
                    tok, lp, lq, ent, lc, lc_old = (
                        v.view(j.shape) for v in sample(h.flatten(0, 1), first.flatten(), old.flatten())
                    )
                    at = first[:, 0]
                    w["lc_new"][bs[at]], w["lc_old"][bs[at]] = lc[at, 0], lc_old[at, 0]
                is_eos = torch.isin(tok, eos_t)
                last = (j + 1 >= chains.length[rs][:, None]) | (j + 1 >= stop[:, None])
                end = (tok != chains.tokens[rs[:, None], jc]) | is_eos | last
                has_end = end.any(1)
                first = torch.where(has_end, end.int().argmax(1), chunk - 1)
                take = span < (first + 1)[:, None]
                rows_t = bs[:, None].expand_as(j)[take]
                record(rows_t, j[take], tok[take], lp[take], lq[take], ent[take], h[take])
                w["pos"][bs] = p0 + first + 1
                self.generated += int(take.sum())
                self.replayed += int(take.sum())
                k = first[:, None]
                done = has_end & (is_eos.gather(1, k)[:, 0] | (j.gather(1, k)[:, 0] + 1 >= stop))
                ended_rows.append(bs[done])
                bs = bs[~has_end]
            return torch.cat(ended_rows) if ended_rows else bs

        full_prompt = bool(self.prompt_mask.all())
        chunk = 16
        span = torch.arange(chunk, device=dev)[None, :]
        ready = torch.arange(R, device=dev)
        while True:
            # 1. one draw for every row that ran the forward (at first: the prefill)
            full = ready.numel() == w["pos"].numel()
            t, h, stop = (w["pos"], cur_h, w["stop"]) if full else (w["pos"][ready], cur_h[ready], w["stop"][ready])
            tok, lp, lq, ent = sample(h)
            record(ready, t, tok, lp, lq, ent, h)
            nxt = t + 1
            if full:
                w["pos"] = nxt
            else:
                w["pos"][ready] = nxt
            self.generated += ready.numel()
            fin = torch.isin(tok, eos_t) | (nxt >= stop)
            if bool(fin.any()):
                # 2. jobs that ended: accept or reject, commit, start the next; new moves replay stored draws
                pending = ready[fin]
                while pending.numel():
                    moves = finish(pending)
                    pending = replay(moves) if moves.numel() else moves
                live = int((~w["idle"]).sum())
                if live == 0:
                    break
                # drop finished chains' rows once a quarter of the batch idles
                if live <= compact * w["idle"].numel():
                    keep = (~w["idle"]).nonzero()[:, 0]
                    for key in w:
                        w[key] = w[key][keep]
                    cur_h = cur_h[keep]
                    dec.k, dec.v = dec.k[:, keep], dec.v[:, keep]
                ready = (~w["idle"]).nonzero()[:, 0]
            # 3. one forward: every row feeds the token before its next position, at its own cache slot
            pos = w["pos"]
            before = (pos - 1).clamp(min=0)[:, None]
            feed = torch.where(pos > 0, w["tok"].gather(1, before)[:, 0], w["prompt"][:, -1])
            n_keys = P + int(pos.max())
            mask = None  # one row and no prompt padding: every slot up to the fed token is valid
            if pos.numel() > 1 or not full_prompt:
                mask = torch.cat([w["pmask"], cols < pos[:, None]], 1)[:, None, None, :n_keys]
            cur_h = dec.hidden(feed[:, None], (w["plen"] + pos - 1)[:, None], mask, slots=P + pos - 1, n_keys=n_keys)
            self.evaluated += pos.numel()
        per_block = [(a, p) for a, p in zip(blk_acc.tolist(), blk_prop.tolist()) if p]
        return dict(accepted=accepted, proposed=proposed, per_block=per_block)
