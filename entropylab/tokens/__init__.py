"""Per-token entropy: profiles of texts under a model, forking-token statistics, HTML rendering, an explorer.

The statistics (`stats`), rollout-dump reading (`io`) and rendering (`render`) need only numpy, pandas and
matplotlib; the parts that run a model (`profile`, `decoding`, `widgets`) import torch when first used::

    from entropylab.tokens import entropy_profile, entropy_stats, forking_tokens, show_tokens
"""

from __future__ import annotations

import importlib

from entropylab.tokens.errors import TokensError
from entropylab.tokens.io import read_rollouts, sequences
from entropylab.tokens.render import ColorScale, TokenHTML, export_html, show_frame, show_tokens
from entropylab.tokens.stats import (
    entropy_cutoff,
    entropy_stats,
    forking_tokens,
    high_entropy_mask,
    low_entropy_tokens,
    top_position_overlap,
)

_LAZY = {
    "entropy_profile": "entropylab.tokens.profile",
    "entropy_split_temperature": "entropylab.tokens.decoding",
    "EntropySplitTemperature": "entropylab.tokens.decoding",
    "sample_split_temperature": "entropylab.tokens.decoding",
    "split_temperature_runner": "entropylab.tokens.decoding",
    "temperature_grid": "entropylab.tokens.decoding",
    "TokenExplorer": "entropylab.tokens.widgets",
}


def __getattr__(name: str):
    """Import the torch-using parts on first access."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'entropylab.tokens' has no attribute {name!r}")


__all__ = [
    "ColorScale",
    "TokenHTML",
    "TokensError",
    "entropy_cutoff",
    "entropy_stats",
    "export_html",
    "forking_tokens",
    "high_entropy_mask",
    "low_entropy_tokens",
    "read_rollouts",
    "sequences",
    "show_frame",
    "show_tokens",
    "top_position_overlap",
    *_LAZY,
]
