"""Argument checks shared across the package."""

from __future__ import annotations

import numbers


def is_whole_number(value: object) -> bool:
    """An integer argument: ``int`` or a numpy integer, not ``bool`` (``True`` would read as 1)
    and not a float (``1.5`` would be truncated to another value than the one asked for)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
