"""Seeds derived from integers (a run's seed, a step, a stream): one rule for the trainer and the TRL subclass."""

from __future__ import annotations

import numpy as np


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers, stable across runs, processes and machines (``numpy.random.SeedSequence``)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))
