"""The one tiny model: a small Qwen2 config and a seeded random model built from it for a tokenizer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from entropylab.errors import ModelError
from entropylab.models.tokenizer import build_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, Qwen2Config

#: The characters of `enumerable_model`'s vocabulary, in id order (its end token comes after them).
ENUMERABLE_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


def tiny_config(
    vocab_size: int,
    *,
    hidden_size: int = 192,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 256,
    tie_word_embeddings: bool = True,
    init_scale: float = 0.02,
    pad_token_id: int | None = 0,
    bos_token_id: int | None = 1,
    eos_token_id: int | None = 2,
) -> Qwen2Config:
    """A small `Qwen2Config` (defaults: the shipped checkpoints' shape, about 1.8M parameters, tied
    embeddings, 256-token context); `init_scale` is the standard deviation of the random initialisation."""
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 3 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        initializer_range=init_scale,
        tie_word_embeddings=tie_word_embeddings,
        rms_norm_eps=1e-6,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
    )


def tiny_model(
    tokenizer: PreTrainedTokenizerBase,
    *,
    seed: int | None = 0,
    vocab_size: int | None = None,
    head_scale: float = 1.0,
    **config: Any,
) -> PreTrainedModel:
    """A random tiny Qwen2 for `tokenizer` (its size and special ids), in eval mode; `config`: `tiny_config`'s
    sizes, `tie_word_embeddings` and `init_scale`.

    `seed`: `torch.manual_seed` before the initialisation (None: draw from the current random state);
    `vocab_size` overrides the tokenizer's size; `head_scale` multiplies the output head (untied embeddings
    only), for sharper next-token distributions than the initialisation gives.
    """
    from transformers import AutoModelForCausalLM

    cfg = tiny_config(
        vocab_size or len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **config,
    )
    if head_scale != 1.0 and cfg.tie_word_embeddings:
        raise ModelError("tiny_model: head_scale needs untied embeddings (tie_word_embeddings=False)")
    if seed is not None:
        torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    if head_scale != 1.0:
        with torch.no_grad():
            model.lm_head.weight.mul_(head_scale)
    return model


def enumerable_model(
    vocab: int = 4, *, init_scale: float = 0.6, seed: int = 0, num_layers: int = 1, max_position_embeddings: int = 64
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model, tokenizer): `tiny_model` (hidden 32, 2 heads, untied) over `vocab` tokens, the characters `a`,
    `b`, ... then the end token `$` (`build_tokenizer(minimal=True)`), so every short sequence can be enumerated.

    `init_scale` spreads the random logits, so the next-token distributions are far from uniform.
    """
    if not 2 <= vocab <= len(ENUMERABLE_CHARS) + 1:
        raise ModelError(f"enumerable_model: vocab must be 2..{len(ENUMERABLE_CHARS) + 1}, got {vocab}")
    tokenizer = build_tokenizer(ENUMERABLE_CHARS[: vocab - 1], minimal=True, eos="$")
    model = tiny_model(
        tokenizer,
        seed=seed,
        hidden_size=32,
        num_layers=num_layers,
        num_heads=2,
        num_kv_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=False,
        init_scale=init_scale,
    )
    return model, tokenizer


def n_params(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
