"""Checkpoint I/O: where the shipped checkpoints live, saving a pretrained model with its card, loading one.

A shipped checkpoint is a plain `transformers` directory (config.json, model.safetensors, tokenizer files)
plus `model_card.md` and `entropylab.json` (task, answer marker, measured metrics), so
`AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained` read it without entropylab.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from entropylab.errors import ModelError
from entropylab.models.card import MANIFEST, render_card, render_manifest

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")


def data_dir() -> Path:
    """Where shipped checkpoints live: `$ENTROPYLAB_DATA/models` if set, else the repository's data/models."""
    root = os.environ.get("ENTROPYLAB_DATA")
    return Path(root) / "models" if root else Path(__file__).resolve().parents[2] / "data" / "models"


def shipped_models() -> list[str]:
    """Names of the shipped checkpoints (directories of `data_dir()` holding a config.json)."""
    d = data_dir()
    return sorted(p.name for p in d.iterdir() if (p / "config.json").is_file()) if d.is_dir() else []


def save_checkpoint(model: Any, tokenizer: Any, out: str | Path, task: Any, result: dict) -> Path:
    """Write the HF files, `entropylab.json` and `model_card.md` for a pretraining `result` into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with quiet_progress():
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    (out / MANIFEST).write_text(json.dumps(render_manifest(task, result, out), indent=2) + "\n")
    (out / "model_card.md").write_text(render_card(model, tokenizer, task, result, out))
    return out


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """Hide transformers' own progress bars ("Loading weights", "Writing model shards") within a block."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def resolve_checkpoint(path_or_name: str | Path) -> Path:
    """The directory of a shipped name (`"arith"`) or of a local checkpoint path; `ModelError` otherwise."""
    p = Path(path_or_name).expanduser()
    if p.is_dir():
        return p
    name = str(path_or_name)
    if os.sep not in name and "/" not in name and not p.exists():
        cand = data_dir() / name
        if cand.is_dir():
            return cand
        shipped = shipped_models()
        raise ModelError(
            f"unknown model {name!r}: not a shipped name ({', '.join(shipped) or 'none found in ' + str(data_dir())}) "
            "and not a directory"
        )
    if p.exists():
        raise ModelError(f"model path {str(p)!r} is a file; give a checkpoint directory")
    raise ModelError(f"model path {str(p)!r} does not exist")


def load_model(
    path_or_name: str | Path, *, device: str | torch.device | None = None, dtype: torch.dtype | str | None = None
) -> tuple[Any, Any]:
    """(model, tokenizer) from a shipped name or a checkpoint directory; model in eval mode on `device`.

    device: None/"cpu", "cuda", "auto" (cuda when available). The tokenizer always has pad and eos ids
    (pad falls back to eos).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path = resolve_checkpoint(path_or_name)
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} is not a model checkpoint: no config.json")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
        if not isinstance(dtype, torch.dtype):
            raise ModelError(f"unknown dtype {dtype!r}")
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"{path}: unreadable config.json ({str(e).splitlines()[0]})") from None
    try:
        with quiet_progress():
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        kind = getattr(config, "model_type", "?")
        raise ModelError(
            f"{path} is not a causal language model checkpoint (model type {kind!r}): {str(e).splitlines()[0]}"
        ) from None
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise ModelError(f"{path}: no tokenizer files (expected one of {', '.join(TOKENIZER_FILES)})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelError(f"{path}: no usable tokenizer ({str(e).splitlines()[0]})") from None
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise ModelError(
            f"{path}: the tokenizer has {len(tokenizer)} tokens but the model embeds only "
            f"{model.get_input_embeddings().num_embeddings}"
        )
    if tokenizer.eos_token_id is None:
        eos = getattr(model.generation_config, "eos_token_id", None) or config.eos_token_id
        if eos is None:
            raise ModelError(f"{path}: the tokenizer has no eos token and the config names none")
        eos = eos if isinstance(eos, int) else eos[0]
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if device is not None:
        model.to(device)
    model.eval()
    return model, tokenizer
