"""Entropy profiles: per-token next-token statistics of texts under any causal LM, in bounded memory.

`entropy_profile` runs the model body once per batch to get the last hidden states, then applies the LM head
and `log_softmax` to `chunk_size` positions at a time, so the full [positions, vocab] softmax never exists:
with a 150,000-token vocabulary and 4,096 positions the extra memory is one chunk's worth (a few hundred MB
at the automatic chunk size) instead of several copies of a 2.5 GB logits tensor.

Row j of a text describes token j: the entropy of the distribution it was drawn from (predicted from tokens
< j), its probability and log-prob, the varentropy, its rank, and the top-k alternatives at that position.
Token 0 has no prediction: its statistics are NaN (it is kept so that a rendering shows the whole text).

Texts longer than the context (`max_length`, default the model's `max_position_embeddings`):
``window="truncate"`` (default) keeps the first `max_length` tokens and warns; ``window="slide"`` scores
the whole text with overlapping windows of `max_length` tokens advanced by `stride` (default half the
window); each token is scored once, in the first window where it has at least `max_length - stride`
tokens of context (the first window scores all of its tokens).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from entropylab.decoder import entropy_moments, token_stats
from entropylab.errors import ModelError
from entropylab.tokens.errors import TokensError

__all__ = ["entropy_profile", "auto_chunk_size", "PROFILE_COLUMNS"]

#: Columns of the frame `entropy_profile` returns, in order.
PROFILE_COLUMNS = [
    "text_id",
    "position",
    "token_id",
    "token",
    "in_prompt",
    "entropy",
    "logprob",
    "prob",
    "varentropy",
    "rank",
    "top_ids",
    "top_tokens",
    "top_probs",
]
_CHUNK_ELEMENTS = 1 << 24  # logits elements per chunk at the automatic size (64 MB in float32)


def auto_chunk_size(vocab_size: int) -> int:
    """Positions per LM-head chunk: about 16M logits (64 MB float32) per chunk, between 1 and 4096."""
    return int(min(4096, max(1, _CHUNK_ELEMENTS // max(1, int(vocab_size)))))


@dataclass
class _Unit:
    """A window of one text to run through the model; scores local positions >= `score_from`."""

    text: int
    offset: int  # global position of the window's first token
    ids: list[int]
    score_from: int


# ------------------------------------------------------------------------------------------------
# inputs


def _as_id_lists(model_input, tokenizer, add_special_tokens: bool) -> list[list[int]]:
    """One list of token ids per text from a text, an id sequence, or a list of either."""
    if isinstance(model_input, str | Tensor | np.ndarray) or _is_id_sequence(model_input):
        items = [model_input]
    elif isinstance(model_input, Sequence):
        items = list(model_input)
        if not items:
            raise TokensError("entropy_profile: got an empty list of texts")
    else:
        raise TokensError(
            f"entropy_profile: expected a text, token ids or a list of them, got {type(model_input).__name__}"
        )
    out: list[list[int]] = []
    for i, item in enumerate(items):
        if isinstance(item, Tensor) and item.dim() == 2:
            out.extend(_as_id_lists(list(item), tokenizer, add_special_tokens))
            continue
        if isinstance(item, str):
            if not item:
                raise TokensError(f"entropy_profile: text {i} is empty; there is nothing to score")
            if tokenizer is None:
                raise TokensError("entropy_profile: a tokenizer is needed to profile strings (or pass token ids)")
            ids = list(tokenizer(item, add_special_tokens=add_special_tokens)["input_ids"])
        elif (
            isinstance(item, Tensor | np.ndarray) or _is_id_sequence(item) or (isinstance(item, Sequence) and not item)
        ):
            ids = [int(t) for t in (item.tolist() if hasattr(item, "tolist") else item)]
        else:
            raise TokensError(f"entropy_profile: text {i} is a {type(item).__name__}, not a string or token ids")
        if not ids:
            raise TokensError(f"entropy_profile: text {i} has no tokens; there is nothing to score")
        out.append(ids)
    return out


def _with_prompts(texts, prompts, tokenizer, add_special_tokens: bool) -> tuple[list[list[int]], list[int]]:
    """Prompt + completion ids per text, and the prompt lengths."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if len(prompts) != len(texts):
        raise TokensError(f"entropy_profile: {len(prompts)} prompts for {len(texts)} texts")
    ids, n_prompt = [], []
    for i, (prompt, text) in enumerate(zip(prompts, texts)):
        p = _as_id_lists([prompt], tokenizer, add_special_tokens)[0]
        if isinstance(text, str):
            if tokenizer is None:
                raise TokensError("entropy_profile: a tokenizer is needed to profile strings (or pass token ids)")
            t = list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []
        else:
            t = [int(x) for x in (text.tolist() if hasattr(text, "tolist") else text)]
        if not t:
            raise TokensError(f"entropy_profile: completion {i} is empty; there is nothing to score")
        ids.append(p + t)
        n_prompt.append(len(p))
    return ids, n_prompt


def _is_id_sequence(x) -> bool:
    return (
        isinstance(x, Sequence)
        and not isinstance(x, str)
        and len(x) > 0
        and all(isinstance(t, int | np.integer) for t in x)
    )


def _vocab_limit(model) -> int:
    sizes = []
    for emb in (model.get_input_embeddings(), model.get_output_embeddings()):
        weight = getattr(emb, "weight", None)
        if weight is not None:
            sizes.append(int(weight.shape[0]))
    if not sizes:
        sizes.append(int(model.config.vocab_size))
    return min(sizes)


def _check_ids(ids: list[list[int]], model, tokenizer) -> None:
    limit = _vocab_limit(model)
    for i, seq in enumerate(ids):
        arr = np.asarray(seq)
        bad = arr[(arr < 0) | (arr >= limit)]
        if bad.size:
            tok = f"; the tokenizer has {len(tokenizer)} tokens" if tokenizer is not None else ""
            raise ModelError(
                f"entropy_profile: text {i} has token id {int(bad[0])} but the model's vocabulary has {limit} "
                f"entries{tok}: the tokenizer does not match the model"
            )


def _context_length(model, max_length: int | None) -> int | None:
    if max_length is not None:
        if max_length < 2:
            raise TokensError(f"entropy_profile: max_length must be >= 2, got {max_length}")
        return int(max_length)
    cfg = model.config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 1:
            return value
    return None


def _units(ids: list[list[int]], ctx: int | None, window: str, stride: int | None) -> list[_Unit]:
    """Split texts into windows the model can take, per the `window` policy."""
    if window not in ("truncate", "slide"):
        raise TokensError(f"entropy_profile: window must be 'truncate' or 'slide', got {window!r}")
    units: list[_Unit] = []
    for i, seq in enumerate(ids):
        if ctx is None or len(seq) <= ctx:
            units.append(_Unit(i, 0, seq, 1))
        elif window == "truncate":
            warnings.warn(
                f"entropy_profile: text {i} has {len(seq)} tokens, more than the context of {ctx}; keeping the "
                f"first {ctx} (pass window='slide' to score all of it)",
                stacklevel=3,
            )
            units.append(_Unit(i, 0, seq[:ctx], 1))
        else:
            step = int(stride) if stride else max(1, ctx // 2)
            if not 0 < step <= ctx - 1:
                raise TokensError(f"entropy_profile: stride must be in [1, {ctx - 1}], got {stride}")
            units.append(_Unit(i, 0, seq[:ctx], 1))
            end = ctx
            begin = step
            while end < len(seq):
                stop = min(begin + ctx, len(seq))
                units.append(_Unit(i, begin, seq[begin:stop], end - begin))
                end = stop
                begin += step
    return units


# ------------------------------------------------------------------------------------------------
# model


def _last_hidden(model, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """Final (normed) hidden states [B, T, d] without computing logits where the model allows it."""
    base = getattr(model, "base_model", None)
    if base is not None and base is not model:
        out = base(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, use_cache=False)
    try:
        out = model(**kwargs, logits_to_keep=1)
    except TypeError:
        out = model(**kwargs)
    return out.hidden_states[-1]


def _head(model) -> Callable[[Tensor], Tensor]:
    """hidden [N, d] -> float32 logits [N, V], with the model's logit scaling / soft-capping if any."""
    head = model.get_output_embeddings()
    if head is None:
        raise ModelError(f"entropy_profile: {type(model).__name__} has no output embeddings (LM head) to apply")
    cfg = getattr(model, "config", None)
    cap = getattr(cfg, "final_logit_softcapping", None)
    scale = getattr(model, "logit_scale", None) or getattr(cfg, "logit_scale", None)

    def apply(h: Tensor) -> Tensor:
        logits = head(h).float()
        if isinstance(scale, int | float) and scale != 1:
            logits = logits * scale
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    return apply


def _score(head: Callable[[Tensor], Tensor], h: Tensor, targets: Tensor, top_k: int) -> dict[str, Tensor]:
    """Entropy, varentropy, log-prob and rank of `targets`, top-k, for one chunk of hidden states [c, d].

    At most two [c, V] float32 buffers are alive at once: the logits are dropped once `log_softmax` has run,
    the reductions are batched dot products (`decoder.entropy_moments`), which reuse `logp` in place.
    """
    stats = token_stats(head(h), entropy=False, targets=targets, top=top_k)
    logp, target_lp = stats.logp, stats.target_logp
    rank = (logp > target_lp[:, None]).sum(-1) + 1
    out = dict(logprob=target_lp, rank=rank)
    if top_k > 0:
        out.update(top_logp=stats.top_logp, top_ids=stats.top_ids)
    del stats
    entropy, varentropy = entropy_moments(logp)
    out.update(entropy=entropy, varentropy=varentropy)
    return out


# ------------------------------------------------------------------------------------------------
# public


@torch.inference_mode()
def entropy_profile(
    model,
    tokenizer,
    texts,
    *,
    top_k: int = 5,
    batch_size: int = 8,
    chunk_size: int | None = None,
    max_length: int | None = None,
    window: str = "truncate",
    stride: int | None = None,
    add_special_tokens: bool = True,
    prompts=None,
    progress: bool = False,
) -> pd.DataFrame:
    """Per-token entropy profile of one or many texts (strings or token-id sequences) under a causal LM.

    Returns one row per token with columns `PROFILE_COLUMNS`: text_id, position, token_id, token (decoded
    alone), entropy and varentropy of the next-token distribution that predicted it (nats), logprob and prob
    of the token, its rank (1 = most likely) and the `top_k` alternatives (top_ids, top_tokens, top_probs as
    lists). With `prompts` (one per text), each text is a completion scored after its prompt: the prompt is
    encoded with special tokens, the completion without, and `in_prompt` marks the prompt's rows (statistics
    usually keep ``~in_prompt``); without prompts `in_prompt` is False everywhere. Texts run `batch_size` at a time (right-padded, sorted by length); the LM head runs on `chunk_size`
    positions at a time (default `auto_chunk_size(vocab)`). See the module docstring for long texts.
    Raises `TokensError` for empty input and `ModelError` for token ids outside the model's vocabulary.
    """
    if top_k < 0 or batch_size < 1:
        raise TokensError(f"entropy_profile: need top_k >= 0 and batch_size >= 1, got {top_k} and {batch_size}")
    n_prompt: list[int] | None = None
    if prompts is None:
        ids = _as_id_lists(texts, tokenizer, add_special_tokens)
    else:
        ids, n_prompt = _with_prompts(texts, prompts, tokenizer, add_special_tokens)
    _check_ids(ids, model, tokenizer)
    ctx = _context_length(model, max_length)
    units = _units(ids, ctx, window, stride)
    head = _head(model)
    chunk = int(chunk_size) if chunk_size else auto_chunk_size(_vocab_limit(model))
    device = next(model.parameters()).device
    pad = 0

    # per text: arrays indexed by global position
    n_tok = [len(seq) if ctx is None or window == "slide" else min(len(seq), ctx) for seq in ids]
    res = {key: [np.full(n, np.nan, dtype=np.float64) for n in n_tok] for key in ("entropy", "varentropy", "logprob")}
    ranks = [np.zeros(n, dtype=np.int64) for n in n_tok]
    top_ids = [np.full((n, top_k), -1, dtype=np.int64) for n in n_tok]
    top_lp = [np.full((n, top_k), np.nan, dtype=np.float64) for n in n_tok]

    order = sorted(range(len(units)), key=lambda u: len(units[u].ids))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if progress:
        from entropylab.progress import bar as progress_bar

        batches = progress_bar(batches, desc="entropy_profile", unit="batch")
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            group = [units[u] for u in batch]
            width = max(len(u.ids) for u in group)
            input_ids = torch.full((len(group), width), pad, dtype=torch.long)
            attention = torch.zeros((len(group), width), dtype=torch.long)
            select = torch.zeros((len(group), width), dtype=torch.bool)  # hidden rows that predict a scored token
            for r, u in enumerate(group):
                input_ids[r, : len(u.ids)] = torch.as_tensor(u.ids)
                attention[r, : len(u.ids)] = 1
                select[r, u.score_from - 1 : len(u.ids) - 1] = True
            hidden = _last_hidden(model, input_ids.to(device), attention.to(device))
            sel = select.to(device)
            h = hidden[sel]  # [N, d], row-major over (row, position)
            targets = input_ids[:, 1:][select[:, :-1]].to(device)
            del hidden
            parts: dict[str, list[Tensor]] = {}
            for s in range(0, h.shape[0], chunk):
                scored = _score(head, h[s : s + chunk], targets[s : s + chunk], top_k)
                for key, value in scored.items():
                    parts.setdefault(key, []).append(value.cpu())
            flat = {key: torch.cat(value).numpy() for key, value in parts.items()}
            k = 0
            for u in group:
                n = len(u.ids) - u.score_from
                dst = slice(u.offset + u.score_from, u.offset + len(u.ids))
                src = slice(k, k + n)
                for key in ("entropy", "varentropy", "logprob"):
                    res[key][u.text][dst] = flat[key][src]
                ranks[u.text][dst] = flat["rank"][src]
                if top_k:
                    top_ids[u.text][dst] = flat["top_ids"][src]
                    top_lp[u.text][dst] = flat["top_logp"][src]
                k += n
    finally:
        model.train(was_training)
    df = _frame(ids, n_tok, res, ranks, top_ids, top_lp, tokenizer, top_k, window, ctx)
    if n_prompt is not None:
        df["in_prompt"] = df["position"].to_numpy() < np.asarray(n_prompt)[df["text_id"].to_numpy()]
    return df


def _decoder(tokenizer) -> Callable[[int], str]:
    cache: dict[int, str] = {}

    def decode(i: int) -> str:
        if i not in cache:
            cache[i] = f"<{i}>" if tokenizer is None else tokenizer.decode([i], skip_special_tokens=False)
        return cache[i]

    return decode


def _nullable_rank(rank: np.ndarray) -> pd.arrays.IntegerArray:
    out = pd.array(rank, dtype="Int64")
    out[rank <= 0] = pd.NA
    return out


def _frame(ids, n_tok, res, ranks, top_ids, top_lp, tokenizer, top_k, window, ctx) -> pd.DataFrame:
    decode = _decoder(tokenizer)
    frames = []
    for t, n in enumerate(n_tok):
        seq = ids[t][:n]
        tids = top_ids[t]
        tprobs = np.exp(top_lp[t])
        frames.append(
            pd.DataFrame(
                {
                    "text_id": np.full(n, t, dtype=np.int64),
                    "position": np.arange(n, dtype=np.int64),
                    "token_id": np.asarray(seq, dtype=np.int64),
                    "token": [decode(i) for i in seq],
                    "in_prompt": np.zeros(n, dtype=bool),
                    "entropy": res["entropy"][t],
                    "logprob": res["logprob"][t],
                    "prob": np.exp(res["logprob"][t]),
                    "varentropy": res["varentropy"][t],
                    "rank": _nullable_rank(ranks[t]),
                    "top_ids": [list(map(int, r[r >= 0])) for r in tids] if top_k else [[] for _ in range(n)],
                    "top_tokens": [[decode(int(i)) for i in r[r >= 0]] for r in tids]
                    if top_k
                    else [[] for _ in range(n)],
                    "top_probs": [[float(p) for p in pr[~np.isnan(pr)]] for pr in tprobs]
                    if top_k
                    else [[] for _ in range(n)],
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    df.attrs.update(kind="profile", window=window, context=ctx if ctx is not None else -1, top_k=top_k)
    return df
