"""Values as error messages show them: short, and never a crash of the message itself."""

from __future__ import annotations

from typing import Any

__all__ = ["shown"]


def shown(value: Any, limit: int = 60) -> str:
    """A short ``repr`` for an error message (an int of 5,000 digits has none: Python refuses
    to print it, and the error about a bad value must not fail in turn)."""
    try:
        text = repr(value)
    except ValueError:
        return f"an int of {value.bit_length()} bits"
    return text if len(text) <= limit else text[: limit - 3] + "..."
