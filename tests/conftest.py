"""Test-wide settings. One torch thread: the models here are tiny, so per-op overhead dominates, and two
threads on a 2-core CI machine that is also running the test process spin against each other."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def shared_runs_dir(tmp_path_factory):
    """One runs directory for the figure and notebook tests: quick-scale runs trained once, then reused."""
    return tmp_path_factory.mktemp("shared_runs")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A seeded random tiny Qwen2 (hidden 32, one layer) with entropylab's character tokenizer, saved as a
    checkpoint directory: its samples vary, so GRPO groups have reward variance when a dense reward is used."""
    import torch
    from transformers import AutoModelForCausalLM

    from entropylab.models import build_tokenizer, quiet_progress, tiny_config

    out = tmp_path_factory.mktemp("tiny")
    tok = build_tokenizer()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config(len(tok), hidden_size=32, num_layers=1, num_heads=2,
                                                         num_kv_heads=1))
    with quiet_progress():
        model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
