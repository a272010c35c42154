"""A tiny random Qwen2 model and a one-character-per-token tokenizer, for tests, docs and benchmarks.

Small enough that every sequence of a few tokens can be enumerated (see `entropylab.sampling.exact`);
`init_scale` spreads the random logits so the model's next-token distributions are far from uniform.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class CharTokenizer:
    """One character per token; the last id is EOS (also used as padding). Enough for `entropylab.sampling`."""

    def __init__(self, chars: str = "abc", eos: str = "$"):
        self.chars = chars + eos
        self.eos_token = eos
        self.eos_token_id = len(chars)
        self.pad_token_id = self.eos_token_id
        self.unk_token_id = None
        self.bos_token_id = None
        self.all_special_ids = [self.eos_token_id]

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return [self.chars.index(c) for c in text]

    def __call__(self, texts: str | Sequence[str], add_special_tokens: bool = True) -> dict:
        if isinstance(texts, str):
            return {"input_ids": self.encode(texts)}
        return {"input_ids": [self.encode(t) for t in texts]}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False, **_: object) -> str:
        ids = [int(i) for i in ids]
        if skip_special_tokens:
            ids = [i for i in ids if i != self.eos_token_id]
        return "".join(self.chars[i] for i in ids)

    def batch_decode(self, batch: Sequence[Sequence[int]], skip_special_tokens: bool = False, **_: object) -> list[str]:
        return [self.decode(ids, skip_special_tokens=skip_special_tokens) for ids in batch]


def tiny_model(
    vocab: int = 4,
    *,
    hidden: int = 32,
    layers: int = 1,
    heads: int = 2,
    context: int = 64,
    init_scale: float = 0.6,
    seed: int = 0,
):
    """(model, tokenizer): a randomly initialised `Qwen2ForCausalLM` over `vocab` tokens, the last one EOS."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=context,
        initializer_range=init_scale, tie_word_embeddings=False, eos_token_id=vocab - 1, pad_token_id=vocab - 1,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(cfg).eval()
    chars = "abcdefghijklmnopqrstuvwxyz0123456789"[: vocab - 1]
    return model, CharTokenizer(chars)
