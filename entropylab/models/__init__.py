"""The embedded models: a character tokenizer, a tiny Qwen2, the pre-training recipe, model cards, loading.

- `tokenizer`: `build_tokenizer`, the one character tokenizer (the shipped checkpoints' and the tests').
- `config`: `tiny_config` and `tiny_model`, the one tiny Qwen2 (sizes, init scale, seed); `enumerable_model`,
  its preset over a vocabulary small enough to enumerate.
- `pretraining`: `pretrain` and the shipped `RECIPES`.
- `card`: `model_card.md` and `entropylab.json` of a pretrained checkpoint, `read_manifest`.
- `checkpoints`: `save_checkpoint`, `load_model`, `resolve_checkpoint`, `shipped_models`, `data_dir`.

A shipped checkpoint is a plain `transformers` directory, so `AutoModelForCausalLM.from_pretrained` /
`AutoTokenizer.from_pretrained` read it without entropylab::

    from entropylab import models
    model, tokenizer = models.load_model("arith")
"""

from entropylab.models.card import MANIFEST, read_manifest, render_card, render_manifest
from entropylab.models.checkpoints import (
    TOKENIZER_FILES,
    data_dir,
    load_model,
    quiet_progress,
    resolve_checkpoint,
    save_checkpoint,
    shipped_models,
)
from entropylab.models.config import enumerable_model, n_params, tiny_config, tiny_model
from entropylab.models.pretraining import RECIPES, pretrain, torch_threads
from entropylab.models.tokenizer import BOS, EOS, PAD, SPECIAL_TOKENS, UNK, build_tokenizer

__all__ = [
    "BOS",
    "EOS",
    "MANIFEST",
    "PAD",
    "RECIPES",
    "SPECIAL_TOKENS",
    "TOKENIZER_FILES",
    "UNK",
    "build_tokenizer",
    "data_dir",
    "enumerable_model",
    "load_model",
    "n_params",
    "pretrain",
    "quiet_progress",
    "read_manifest",
    "render_card",
    "render_manifest",
    "resolve_checkpoint",
    "save_checkpoint",
    "shipped_models",
    "tiny_config",
    "tiny_model",
    "torch_threads",
]
