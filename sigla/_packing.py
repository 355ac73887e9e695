"""Fitting texts into requests: split a text that is too long, pack many into few requests.

Pure functions over token counts; the counting function is passed in, so these know nothing
of models. Nothing is ever dropped: :func:`split_text` returns slices that join back into
the text, and :func:`pack` places every item in exactly one pack.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence

__all__ = ["split_text", "pack"]

Count = Callable[[str], int]

# Boundaries tried in turn: paragraphs, then sentences (or lines), then words; characters last.
_BOUNDARIES = (
    re.compile(r"\n[ \t]*\n\s*"),
    re.compile(r"(?<=[.!?;\u3002\uff01\uff1f])\s+|\n\s*"),
    re.compile(r"\s+"),
)
_CHARS_PER_TOKEN_CAP = 16  # a prefix longer than this many characters per token is not tried


def _units(text: str, boundary: re.Pattern[str]) -> list[str]:
    """``text`` cut after each boundary (the blank stays with the piece before it)."""
    cuts = [m.end() for m in boundary.finditer(text) if m.start() > 0 and m.end() < len(text)]
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def _split_chars(text: str, limit: int, count: Count) -> list[str]:
    """The longest prefixes within ``limit`` (one character at least), by binary search."""
    parts = []
    while text:
        low, high = 1, min(len(text), max(1, limit) * _CHARS_PER_TOKEN_CAP)
        if count(text[:high]) <= limit:
            low = high
        while low < high:
            mid = (low + high + 1) // 2
            if count(text[:mid]) <= limit:
                low = mid
            else:
                high = mid - 1
        parts.append(text[:low])
        text = text[low:]
    return parts


def split_text(text: str, limit: int, count: Count) -> list[str]:
    """Cut ``text`` into consecutive slices of at most ``limit`` tokens each.

    Cuts fall on paragraph boundaries where they can, else sentence, else word boundaries,
    and inside a word only as a last resort; neighbouring pieces are joined again while
    they fit. ``"".join(split_text(t, ...)) == t`` always.
    """
    tokens = count(text)
    return [text] if tokens <= limit else [p for p, _ in _split(text, tokens, limit, count, 0)]


def _split(text: str, tokens: int, limit: int, count: Count, level: int) -> list[tuple[str, int]]:
    """``text`` (of ``tokens`` > ``limit``) as (slice, tokens) pairs, cut at ``level`` or finer."""
    if level >= len(_BOUNDARIES):
        return [(p, count(p)) for p in _split_chars(text, limit, count)]
    units = _units(text, _BOUNDARIES[level])
    if len(units) == 1:
        return _split(text, tokens, limit, count, level + 1)
    pieces: list[tuple[str, int]] = []
    for unit in units:
        unit_tokens = count(unit)
        if unit_tokens <= limit:
            pieces.append((unit, unit_tokens))
        else:
            pieces.extend(_split(unit, unit_tokens, limit, count, level + 1))
    # Join neighbours while the sum of their counts fits. The estimate of a joined text is
    # never above the sum (no piece of it straddles a blank); a tokenizer may merge across
    # the cut, so a joined group is counted again and halved while it is over.
    groups: list[list[tuple[str, int]]] = []
    total = 0
    for piece in pieces:
        if groups and total + piece[1] <= limit:
            groups[-1].append(piece)
            total += piece[1]
        else:
            groups.append([piece])
            total = piece[1]
    return [part for group in groups for part in _fit(group, limit, count)]


def _fit(group: list[tuple[str, int]], limit: int, count: Count) -> list[tuple[str, int]]:
    """The pieces of ``group`` joined, or cut in halves until each half fits."""
    if len(group) == 1:
        return group
    text = "".join(piece for piece, _ in group)
    tokens = count(text)
    if tokens <= limit:
        return [(text, tokens)]
    half = len(group) // 2
    return _fit(group[:half], limit, count) + _fit(group[half:], limit, count)


def pack(sizes: Sequence[int], room: int) -> list[list[int]]:
    """Group item indices into packs whose sizes sum to at most ``room`` (best fit, in order).

    Items are taken in the order given (the caller puts the best first); each goes to the
    fullest pack it still fits in, else opens a new one, so the first packs hold the first
    items and later small items fill the gaps left in earlier packs. Every size must be at
    most ``room``.
    """
    packs: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, pack number), sorted
    for index, size in enumerate(sizes):
        if size > room:
            raise ValueError(f"item {index} has size {size}, over the room of {room}")
        at = bisect.bisect_left(free, (size, -1))
        if at < len(free):
            left, number = free.pop(at)
        else:
            left, number = room, len(packs)
            packs.append([])
        packs[number].append(index)
        if left - size > 0:
            bisect.insort(free, (left - size, number))
    return packs
