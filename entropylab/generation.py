"""Batched sampling of prompts for RL and the training log-probs, on the decoding core (`entropylab.decoder`).

`sample` draws `n` continuations of each prompt in one batch (prompts left-padded) and records, per
generated token, its log-prob under the sampling distribution (after temperature / top-k / top-p), its
log-prob under the model at temperature 1, and the entropy of the model's full temperature-1 next-token
distribution. Rows are prompt-major: prompt 0 samples 0..n-1, then prompt 1, ... `continue_sampling` does
the same from left-padded token ids; `logprobs_of` scores given responses (with gradients).

The decoders are the core's: a lean plain-torch re-implementation of Llama/Qwen2/Qwen3 decoders with a
preallocated static KV cache and prepacked oneDNN matrices on CPU for steps of 4 rows or more (used
automatically for those architectures; about 1.5-1.8x the tokens/s of `model.generate` at batch 64 on two
CPU cores, see benchmarks/bench_sampler.py), and the generic `transformers` forward with a `DynamicCache`
for any other causal LM (`backend="hf"`); both give the same numbers to float rounding. Finished rows are
dropped from the batch as they accumulate.

Randomness: one `torch.Generator` seeded with `seed` drives Gumbel-max draws, so the same seed, prompts
and `batch_size` give identical samples (a different `batch_size` gives different, equally valid, draws).

Context: when the longest prompt plus `max_new_tokens` exceeds `config.max_position_embeddings`,
`max_new_tokens` is clamped with a warning; a prompt that leaves no room at all raises `ModelError`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from entropylab.decoder import Proposal, cache_kwargs, decode, eos_ids, new_decoder, pad_id, returned_cache, token_stats
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


def left_pad(
    seqs: Sequence[Sequence[int]], pad_id: int, device: str | torch.device | None = None
) -> tuple[Tensor, Tensor]:
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
                bad = lost | {
                    c for c in p if unk is not None and unk in tokenizer(c, add_special_tokens=False)["input_ids"]
                }
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


def _context_length(model) -> int | None:
    return getattr(model.config, "max_position_embeddings", None)


def fit_to_context(
    model, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int, *, where: str = "", stacklevel: int = 3
) -> int:
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
        warnings.warn(
            f"max_new_tokens={max_new_tokens} clamped to {ctx - longest}: the longest prompt has {longest} "
            f"tokens and the model's context is {ctx}",
            stacklevel=stacklevel,
        )
        return ctx - longest
    return max_new_tokens


# ------------------------------------------------------------------------------------------------
# sampling


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
    """Sample continuations of left-padded `input_ids` [B, P] with the core's `decode`; no tokenizer, no context
    checks.

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
    device = input_ids.device
    bsz, p = input_ids.shape
    t_max = int(max_new_tokens)
    dec = new_decoder(model, bsz, p + t_max, device, backend)
    eos = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id or [])
    q = Proposal(temperature=temperature, top_k=top_k, top_p=top_p, processor=logits_processor)
    logits = dec.prefill(input_ids, attention_mask.bool())
    out = decode(
        dec,
        logits,
        t_max,
        q,
        generator=generator,
        eos=eos if stop_at_eos else [],
        pad=pad_token_id,
        compact=compact,
        sync_every=1 if device.type == "cpu" else 8,
    )  # host syncs are cheap on CPU only
    steps = out["steps"]
    mask = torch.arange(steps, device=device)[None, :] < out["n"][:, None]
    return dict(
        response_ids=out["tokens"][:, :steps],
        response_mask=mask,
        logprobs=out["logq"][:, :steps],
        logprobs_t1=out["logp"][:, :steps],
        entropy=out["entropy"][:, :steps],
        n_tokens=out["n"],
        finished=out["eos"],
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
    eos = eos_ids(model, tokenizer, eos_token_id)
    pad = pad_id(tokenizer, eos)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(int(seed))
    rows = [i for i in range(len(prompt_ids)) for _ in range(n)]
    bs = len(rows) if not batch_size else int(batch_size)
    chunks = [rows[i : i + bs] for i in range(0, len(rows), bs)]
    if progress:
        from entropylab.progress import bar as progress_bar

        chunks = progress_bar(chunks, desc="sample", unit="batch")
    was_training = model.training
    model.eval()
    parts = []
    try:
        for chunk in chunks:
            ids, mask = left_pad([prompt_ids[i] for i in chunk], pad, device=device)
            parts.append(
                continue_sampling(
                    model,
                    ids,
                    mask,
                    max_new_tokens=max_new_tokens,
                    temperature=temperature,
                    top_k=top_k,
                    top_p=top_p,
                    generator=generator,
                    eos_token_id=eos,
                    pad_token_id=pad,
                    stop_at_eos=stop_at_eos,
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
            logits = _response_pass(
                model,
                input_ids[rows],
                attention_mask[rows],
                prompt_cache,
                first_logits,
                inverse[rows],
                p_pos[inverse[rows], -1:],
                p_len,
                n,
            )
        else:
            out = model(
                input_ids=input_ids[rows, : p_len + n],
                attention_mask=attention_mask[rows, : p_len + n],
                position_ids=position_ids[rows, : p_len + n],
                use_cache=False,
                logits_to_keep=n + 1,
            )
            logits = out.logits[:, :-1]  # position j predicts token j + 1
        lp, ent = _score(logits, input_ids[rows, p_len : p_len + n], temperature)
        lps.append(F.pad(lp, (0, t - n)))
        ents.append(F.pad(ent, (0, t - n)))
    back = torch.argsort(order)  # chunk order -> row order (a differentiable gather)
    return torch.cat(lps)[back].where(mask, 0.0), torch.cat(ents)[back].where(mask, 0.0)


def _score(logits: Tensor, targets: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """(log-prob of `targets`, entropy) under softmax(logits / temperature)."""
    stats = token_stats(logits, temperature=temperature, targets=targets)
    return stats.target_logp, stats.entropy


def _shares_prompts(model) -> bool:
    """Whether the model's forward can continue from a `DynamicCache` of prompt keys and values."""
    return not getattr(model.config, "is_encoder_decoder", False)


def _prompt_pass(model, prompts: Tensor, attention_mask: Tensor, inverse: Tensor, p_len: int):
    """Run each distinct (left-padded) prompt once: its key/value cache, last-position logits and positions."""
    from transformers import DynamicCache

    first = inverse.new_zeros(len(prompts)).scatter_(0, inverse, torch.arange(len(inverse), device=inverse.device))
    p_mask = attention_mask[first, :p_len]
    p_pos = (p_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=prompts,
        attention_mask=p_mask,
        position_ids=p_pos,
        **cache_kwargs(model, DynamicCache(config=model.config)),
        use_cache=True,
        logits_to_keep=1,
    )
    cache = returned_cache(out)
    return (cache, [(layer.keys, layer.values) for layer in cache.layers]), out.logits[:, -1:], p_pos


def _response_pass(
    model,
    ids: Tensor,
    attn: Tensor,
    prompt_cache,
    first_logits: Tensor,
    prompt_of: Tensor,
    last_pos: Tensor,
    p_len: int,
    n: int,
) -> Tensor:
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
    out = model(
        input_ids=ids[:, p_len : p_len + n - 1],
        attention_mask=attn[:, : p_len + n - 1],
        position_ids=pos,
        **cache_kwargs(model, cache),
        use_cache=True,
    )
    return torch.cat([first, out.logits], dim=1)
