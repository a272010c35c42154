"""Test-wide settings and the tiny test models. One torch thread: the models here are tiny, so per-op
overhead dominates, and two threads on a 2-core CI machine that is also running the test process spin
against each other.

The tiny models are `entropylab.models.tiny_model` over `build_tokenizer()`, seeded, so every run builds the
same weights; tests that need a vocabulary small enough to enumerate use `entropylab.models.enumerable_model`.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

#: `tiny_model` and `tiny_checkpoint`: hidden 32, one layer, 2 heads / 1 KV head, tied, 256-token context.
TINY = dict(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1)
#: `sharp_model`: hidden 64, two layers, untied, the head scaled by 40 (entropies spread out), 64-token context.
SHARP = dict(
    hidden_size=64,
    num_layers=2,
    intermediate_size=128,
    tie_word_embeddings=False,
    head_scale=40.0,
    max_position_embeddings=64,
)


@pytest.fixture(scope="session")
def shared_runs_dir(tmp_path_factory):
    """One runs directory for the figure and notebook tests: quick-scale runs trained once, then reused."""
    return tmp_path_factory.mktemp("shared_runs")


@pytest.fixture
def one_thread():
    """One torch thread for the test: several threads on two shared cores thrash."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """entropylab's character tokenizer (`build_tokenizer()`, the shipped checkpoints'); shared: do not modify."""
    from entropylab.models import build_tokenizer

    return build_tokenizer()


@pytest.fixture(scope="module")
def tiny_model(tiny_tokenizer):
    """A seeded random tiny Qwen2 (`TINY`) for `tiny_tokenizer`, in eval mode; one per test module."""
    from entropylab.models import tiny_model

    return tiny_model(tiny_tokenizer, seed=0, **TINY)


@pytest.fixture(scope="module")
def sharp_model(tiny_tokenizer):
    """A seeded random Qwen2 (`SHARP`) for `tiny_tokenizer`, next-token entropies from near 0 to high."""
    from entropylab.models import tiny_model

    return tiny_model(tiny_tokenizer, seed=0, **SHARP)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_tokenizer):
    """The `tiny_model` saved as a checkpoint directory with its tokenizer: its samples vary, so GRPO groups
    have reward variance when a dense reward is used."""
    from entropylab.models import quiet_progress, tiny_model

    out = tmp_path_factory.mktemp("tiny")
    with quiet_progress():
        tiny_model(tiny_tokenizer, seed=0, **TINY).save_pretrained(out)
    tiny_tokenizer.save_pretrained(out)
    return out
