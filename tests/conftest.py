"""Test-wide settings. One torch thread: the models here are tiny, so per-op overhead dominates, and two
threads on a 2-core CI machine that is also running the test process spin against each other."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
