"""The network under sigla's transport: deadlines for every socket operation, and bodies
decoded in bounded steps.

httpcore bounds each read by the timeout, not a whole answer: a server dripping a byte at a
time would hold a call forever. The network backends here cut every connect, read and write
to what is left of :data:`DEADLINE` (a context variable, so each thread and each task has
its own), which the transport sets for an attempt and the event reader moves on after each
event. :class:`Body` reads a response under such a deadline and decodes it in pieces of at
most 64 KiB, so that a gzip bomb cannot inflate all at once.
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpcore
import httpx

from ._cancel import SCOPE
from .errors import InvalidResponseError

__all__ = [
    "DEADLINE",
    "AsyncBody",
    "AsyncDeadlineBackend",
    "Body",
    "DeadlineBackend",
    "Inflater",
    "cut",
]

_PIECE = 64 * 1024  # most bytes one step of decompression may produce
_MIN_TIMEOUT = 0.001  # a socket timeout of 0 would mean "non-blocking", not "expired"

DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "sigla_deadline", default=None
)


def cut(timeout: float | None) -> float | None:
    """An operation's own timeout, cut to what is left of the current deadline."""
    deadline = DEADLINE.get()
    if deadline is None:
        return timeout
    left = max(_MIN_TIMEOUT, deadline - time.monotonic())
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        scope = SCOPE.get()
        if scope is None:
            return self._inner.read(max_bytes, cut(timeout))
        scope.enter(self)
        try:
            return self._inner.read(max_bytes, cut(timeout))
        finally:
            scope.leave(self)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        scope = SCOPE.get()
        if scope is None:
            return self._inner.write(buffer, cut(timeout))
        scope.enter(self)
        try:
            self._inner.write(buffer, cut(timeout))
        finally:
            scope.leave(self)

    def abort(self) -> None:
        """Shut the socket down from another thread: a blocked read or write returns."""
        sock = self._inner.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # closed already
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, cut(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        scope = SCOPE.get()
        if scope is not None:
            scope.check()
        return _Stream(
            self._inner.connect_tcp(host, port, cut(timeout), local_address, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, cut(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _AsyncStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, cut(timeout))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, cut(timeout))

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        inner = await self._inner.start_tls(ssl_context, server_hostname, cut(timeout))
        return _AsyncStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class AsyncDeadlineBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        inner = await self._inner.connect_tcp(
            host, port, cut(timeout), local_address, socket_options
        )
        return _AsyncStream(inner)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        inner = await self._inner.connect_unix_socket(path, cut(timeout), socket_options)
        return _AsyncStream(inner)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# ---------------------------------------------------------------- bodies, decoded in bounds


class Inflater:
    """Content-Encoding decoding whose every step yields at most :data:`_PIECE` bytes.

    httpx decodes each network chunk whole: 64 KiB of gzip bomb can inflate to 64 MiB at
    once. sigla asks for ``gzip, deflate`` only, so those are the encodings it decodes.
    """

    def __init__(self, encoding: str, where: str) -> None:
        self._where = where
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self._zlib: Any = None
        elif encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj()
        else:
            raise InvalidResponseError(
                f"{where} answered with Content-Encoding {encoding[:40]!r}, which sigla did not "
                "ask for (it accepts gzip and deflate). Check the endpoint."
            )

    def decode(self, data: bytes) -> Iterator[bytes]:
        z = self._zlib
        if z is None:
            yield data
            return
        try:
            while data:
                piece = z.decompress(data, _PIECE)
                data = z.unconsumed_tail
                if piece:
                    yield piece
        except zlib.error:
            raise InvalidResponseError(
                f"{self._where} sent a compressed answer that does not decompress."
            ) from None

    def flush(self) -> bytes:
        return self._zlib.flush() if self._zlib is not None else b""


class _Reading:
    """What both body twins hold: the raw stream, its decoder, and the deadline (settable
    between reads: the event reader moves it on after each event)."""

    def __init__(self, raw: Any, inflater: Inflater, deadline: float, where: str) -> None:
        self._raw = raw
        self._inflater = inflater
        self.deadline = deadline
        self._where = where
        self.on_close: Any = None  # left (its ``leave()``) once the body is closed

    def _closed(self) -> None:
        gate, self.on_close = self.on_close, None
        if gate is not None:
            gate.leave()

    def _check_deadline(self) -> None:
        if time.monotonic() >= self.deadline:
            raise httpx.ReadTimeout(f"{self._where} did not finish answering in time")


class Body(_Reading, httpx.SyncByteStream):
    """A response body read under a deadline and decoded in bounds."""

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._raw)
        while True:
            self._check_deadline()
            token = DEADLINE.set(self.deadline)
            try:
                chunk = next(chunks, None)
            finally:
                DEADLINE.reset(token)
            if chunk is None:
                break
            yield from self._inflater.decode(chunk)
        tail = self._inflater.flush()
        if tail:
            yield tail

    def close(self) -> None:
        try:
            close = getattr(self._raw, "close", None)
            if close is not None:
                close()
        finally:
            self._closed()


class AsyncBody(_Reading, httpx.AsyncByteStream):
    """Async twin of :class:`Body`."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._raw.__aiter__()
        while True:
            self._check_deadline()
            token = DEADLINE.set(self.deadline)
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            finally:
                DEADLINE.reset(token)
            for piece in self._inflater.decode(chunk):
                yield piece
        tail = self._inflater.flush()
        if tail:
            yield tail

    async def aclose(self) -> None:
        try:
            aclose = getattr(self._raw, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            self._closed()
