"""Server-sent events, decoded from bytes with a bound on what one event may hold.

I/O-free: the transport feeds it the bytes it reads. httpx-sse (which sigla used before)
keeps a line until its end arrives however long it grows, so a server sending one
endless line could fill the memory; here a line or an event over ``max_size`` bytes is an
:class:`~sigla.errors.InvalidResponseError`, and the bytes of an unfinished line are
scanned once, not again with every chunk (a server dripping one byte at a time costs
linear time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidResponseError

__all__ = ["Event", "SSEDecoder"]

_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class Event:
    """One dispatched event: its ``event`` name (``message`` by default) and its ``data``."""

    event: str
    data: str


class SSEDecoder:
    """Turns chunks of an event stream into :class:`Event` objects (the WHATWG rules we need:
    ``data``/``event`` fields, comments, CR/LF/CRLF line ends, one leading space dropped)."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer already known to hold no line end
        self._data: list[str] = []
        self._size = 0
        self._event = ""

    def feed(self, chunk: bytes) -> list[Event]:
        """The events completed by ``chunk`` (often none, sometimes several)."""
        buffer = self._buffer
        buffer += chunk
        events: list[Event] = []
        start = 0
        while True:
            found = _LINE_END.search(buffer, max(start, self._scanned))
            if found is None or (found.end() == len(buffer) and found.group() == b"\r"):
                break  # no line end yet, or a CR whose LF may come in the next chunk
            self._line(bytes(buffer[start : found.start()]), events)
            start = found.end()
            self._scanned = start
        del buffer[:start]
        self._scanned = max(0, len(buffer) - 1)
        if len(buffer) > self.max_size:
            raise self._too_large()
        return events

    def close(self) -> list[Event]:
        """At the end of the stream: an event whose closing blank line never came."""
        events: list[Event] = []
        if self._buffer:
            self._line(bytes(self._buffer.rstrip(b"\r")), events)
            self._buffer.clear()
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[Event]) -> None:
        if not line:
            if self._data:
                events.append(Event(self._event or "message", "\n".join(self._data)))
            self._data, self._size, self._event = [], 0, ""
            return
        if line[:1] == b":":
            return  # a comment: servers send them as keep-alives
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._size += len(value) + 1
            if self._size > self.max_size:
                raise self._too_large()
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")

    def _too_large(self) -> InvalidResponseError:
        return InvalidResponseError(
            f"One event of the stream is larger than {self.max_size} bytes "
            "(max_response_bytes), so sigla stopped reading it: the server is not sending "
            "chat-completion chunks. Check the endpoint, or raise max_response_bytes."
        )
