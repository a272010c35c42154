"""Errors a user can fix. The CLI prints them on one line, never as a traceback."""

from __future__ import annotations


class EntropylabError(Exception):
    """Base class: the message alone tells the user what is wrong and where (file, line, key or field)."""


class LogFormatError(EntropylabError, ValueError):
    """A training log that cannot be read: unknown format, no step lines, missing or non-numeric keys."""


class FitError(EntropylabError, ValueError):
    """Data that cannot be fitted: too few points, non-finite values, degenerate entropy."""


class ConfigError(EntropylabError, ValueError):
    """An invalid configuration value; the message names the field."""


class ModelError(EntropylabError, ValueError):
    """A checkpoint, tokenizer or task that cannot be loaded or used as asked."""
