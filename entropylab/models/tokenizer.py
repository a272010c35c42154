"""entropylab's character tokenizer: one token per character, GPT-2 byte-level symbols, no merges."""

from __future__ import annotations

from typing import TYPE_CHECKING

from entropylab.errors import ModelError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]


def _byte_char(ch: str) -> str:
    """GPT-2 byte-level symbol of a one-byte character (space -> 'Ġ', newline -> 'Ċ', printable ASCII as is)."""
    b = ord(ch)
    if b > 255 or len(ch.encode()) != 1:
        raise ModelError(f"build_tokenizer: only one-byte characters are supported, got {ch!r}")
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    if b in keep:
        return ch
    return chr(256 + sum(1 for x in range(b) if x not in keep))


def build_tokenizer(alphabet: str | None = None, *, minimal: bool = False, eos: str = EOS) -> PreTrainedTokenizerFast:
    """A character-level `PreTrainedTokenizerFast`: one token per character, `<bos>` prepended, exact decode.

    Ids: `<pad> <bos> <eos> <unk>` (the end token spelt `eos`), then the characters of `alphabet` (default:
    the tasks' `ALPHABET`) in order; a character outside it encodes as `<unk>`. Tokens are GPT-2 byte-level
    symbols with no merges, so `AutoTokenizer.from_pretrained` gives the same ids whether it builds this
    pipeline or, for a Qwen2 checkpoint, transformers' own `Qwen2Tokenizer`.
    `minimal=True`: the characters then `eos` alone (the last id, also the padding), no `<bos>`, `<pad>` or
    `<unk>`: a vocabulary small enough to enumerate every short sequence (`entropylab.sampling.exact`).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if alphabet is None:
        from entropylab.tasks import ALPHABET as alphabet
    vocab = {} if minimal else {tok: i for i, tok in enumerate([PAD, BOS, eos, UNK])}
    for ch in alphabet:
        vocab.setdefault(_byte_char(ch), len(vocab))
    if minimal:
        if eos in vocab:
            raise ModelError(f"build_tokenizer: the end token {eos!r} is also a character of the alphabet")
        vocab[eos] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None if minimal else UNK, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()  # concatenates: no spaces inserted between tokens
    common = dict(padding_side="left", clean_up_tokenization_spaces=False, model_max_length=256)
    if minimal:
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, eos_token=eos, pad_token=eos, add_bos_token=False, **common
        )
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=eos, pad_token=PAD, unk_token=UNK, add_bos_token=True, **common
    )
