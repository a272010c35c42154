"""The error type of `entropylab.tokens`."""

from __future__ import annotations

from entropylab.errors import EntropylabError


class TokensError(EntropylabError, ValueError):
    """Input the token tools cannot use: empty text, missing columns, mismatched lengths."""
