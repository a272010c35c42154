"""A tiny randomly initialised character-level Qwen2 model and tokenizer, for tests, demos and benchmarks."""

from __future__ import annotations

import torch

from entropylab.tasks.base import ALPHABET

__all__ = ["char_tokenizer", "tiny_random_model"]

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]


def char_tokenizer(alphabet: str = ALPHABET):
    """A `PreTrainedTokenizerFast` with one token per character of `alphabet`; prepends `<bos>`."""
    from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + sorted(set(alphabet)))}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def tiny_random_model(
    tokenizer=None, *, vocab_size: int | None = None, hidden: int = 64, layers: int = 2, context: int = 256, seed: int = 0
):
    """(model, tokenizer): a random `Qwen2ForCausalLM` sized for `tokenizer` (default `char_tokenizer()`), in eval mode."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = tokenizer if tokenizer is not None else char_tokenizer()
    cfg = Qwen2Config(
        vocab_size=vocab_size or len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():  # sharper logits than the default init, so entropies spread out
        model.lm_head.weight.mul_(40.0)
    return model, tokenizer
