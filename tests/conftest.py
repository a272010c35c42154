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
