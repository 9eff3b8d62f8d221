"""One error type for bad input, so users can catch it and tests can match its message."""

from __future__ import annotations


class InterpError(ValueError):
    """Bad input or an impossible request. The message always says what to do instead."""
