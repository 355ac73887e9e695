"""A credential as a value whose ``repr`` and ``str`` never show it.

Error-reporting tools (Sentry, pytest ``--showlocals``, rich tracebacks) render the locals
of every frame in a traceback, and debuggers show attributes: a token held as a plain
``str`` anywhere in sigla would end up in their reports. So credentials (the token, and a
key or password found in an endpoint URL) travel as :class:`Secret` from the moment they
are read, and are unwrapped with :meth:`Secret.reveal` only where a header or URL is built.
"""

from __future__ import annotations

import hashlib

__all__ = ["Secret", "fingerprint"]

_MIN_FINGERPRINT_LENGTH = 16  # shorter keys would give away too large a share of themselves


def fingerprint(value: str) -> str | None:
    """``ghp_…Fvcu``: enough for a person to tell which key was used, or None when short."""
    if len(value) < _MIN_FINGERPRINT_LENGTH:
        return None
    return f"{value[:4]}…{value[-4:]}"


class Secret:
    """A credential. ``repr``/``str`` show ``***``; :meth:`reveal` returns the value.

    Compared and hashed by value, so settings holding one can key a cache of clients.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The credential itself: call it only where the request is built."""
        return self._value

    @property
    def fingerprint(self) -> str | None:
        """A short masked form (``ghp_…Fvcu``) for ``sigla doctor``, or None for short keys."""
        return fingerprint(self._value)

    @property
    def digest(self) -> str:
        """SHA-256 of the value: a key for per-credential state that never holds it."""
        return hashlib.sha256(self._value.encode("utf-8", "surrogatepass")).hexdigest()

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __len__(self) -> int:
        return len(self._value)
