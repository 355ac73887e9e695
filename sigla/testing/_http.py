"""HTTP plumbing of the double: routing and parsing of incoming requests (the credential is
hashed and dropped on the spot), the request handler, the server and its connections, and the
writer of plain and streamed answers.

Calls flow one way: this module knows the double only through :class:`_Service`, the small
interface it serves, which :class:`~sigla.testing._fake.FakeGitHubModels` implements; it imports
nothing from ``_fake``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import select
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from ._contract import Route
from ._payloads import _Answer

__all__ = [
    "_Exchange",
    "_GITHUB_MODEL_ID",
    "_Handler",
    "_Incoming",
    "_METHODS",
    "_Server",
    "_Service",
    "_parse_incoming",
    "_sha256",
]

# --------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------

_ROUTES: tuple[tuple[re.Pattern[str], str, Route], ...] = (
    (re.compile(r"(?:/orgs/(?P<org>[^/]+))?/inference(?:/v1)?/chat/completions"), "chat", "github"),
    (re.compile(r"(?:/orgs/(?P<org>[^/]+))?/inference(?:/v1)?/embeddings"), "embeddings", "github"),
    (re.compile(r"/catalog/models"), "catalog", "github"),
    (re.compile(r"/models/chat/completions"), "chat", "azure"),
    (re.compile(r"/models/embeddings"), "embeddings", "azure"),
    (re.compile(r"/v1/chat/completions"), "chat", "v1"),
    (re.compile(r"/v1/embeddings"), "embeddings", "v1"),
    (re.compile(r"/v1/models"), "model_list", "v1"),
)
_METHODS = {"chat": "POST", "embeddings": "POST", "catalog": "GET", "model_list": "GET"}
_GITHUB_MODEL_ID = re.compile(r"[^/\s]+/[^/\s]+")


@dataclass
class _Incoming:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # redacted
    body: Any
    body_ok: bool
    token_sha256: str | None
    kind: str | None
    route: Route | None
    org: str | None


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _parse_incoming(
    method: str, target: str, raw_headers: Iterable[tuple[str, str]], raw_body: bytes
) -> _Incoming:
    """Parse a request, hashing and dropping its credential on the spot."""
    parts = urlsplit(target)
    headers: dict[str, str] = {}
    token: str | None = None
    for name, value in raw_headers:
        name = name.lower()
        if name == "authorization":
            scheme, _, credential = value.strip().partition(" ")
            if scheme.lower() == "bearer" and credential.strip():
                token = credential.strip()
            value = "Bearer ***" if scheme.lower() == "bearer" else "***"
        elif name == "api-key":
            token = token or value.strip() or None
            value = "***"
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    body: Any = None
    body_ok = True
    if raw_body:
        try:
            body = json.loads(raw_body)
        except ValueError:
            body_ok = False
    kind = route = org = None
    for pattern, route_kind, route_name in _ROUTES:
        match = pattern.fullmatch(parts.path)
        if match:
            kind, route = route_kind, route_name
            org = match.groupdict().get("org")
            break
    return _Incoming(
        method=method,
        path=parts.path,
        query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        headers=headers,
        body=body,
        body_ok=body_ok,
        token_sha256=_sha256(token) if token else None,
        kind=kind,
        route=route,
        org=org,
    )


# --------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------


class _Service(Protocol):
    """What the plumbing needs from the double it serves.

    :class:`_Handler` hands every parsed request to :meth:`_serve`; :class:`_Exchange` reads
    ``latency`` and ``chunk_delay`` when it writes (a test may change them while the double
    runs) and waits through :meth:`_sleep`, which the double cuts short when it stops.
    """

    latency: float
    chunk_delay: float

    def _sleep(self, seconds: float) -> None: ...

    def _serve(self, handler: _Handler, received_at: float, incoming: _Incoming) -> None: ...


class _Exchange:
    """Writes one answer (plain, streamed or none at all) and reports what it wrote.

    ``on_status`` is called once with the status line's code just before it is sent;
    ``chunk_times`` receives a :func:`time.perf_counter` reading after each SSE content event;
    ``on_finish`` gets one when the answer has been written whole (never for a dropped one).
    """

    def __init__(
        self,
        service: _Service,
        handler: _Handler,
        *,
        on_status: Callable[[int], None],
        on_finish: Callable[[float], None],
        chunk_times: list[float],
    ) -> None:
        self.service, self.handler = service, handler
        self.on_status, self.on_finish, self.chunk_times = on_status, on_finish, chunk_times
        self.answered = False
        # Frees the in-flight slot. Called just before the bytes that complete the answer, so
        # a client that has read a whole answer and sends its next request at once (on
        # another connection, served by another thread) never finds its slot still taken.
        self.on_last_bytes: Callable[[], None] | None = None

    def end_flight(self) -> None:
        """Free the in-flight slot, if one is held; safe to call any number of times."""
        release, self.on_last_bytes = self.on_last_bytes, None
        if release is not None:
            release()

    def wait(self, seconds: float) -> None:
        """Wait ``seconds`` before writing, as the service does, but notice a client that
        hangs up meanwhile, as real servers do: the request then ends unanswered (its
        in-flight slot freed, ``finished_at`` left None) with an ``OSError``, which the
        server treats as routine. A stopping double shuts the sockets, which ends it too."""
        if seconds <= 0:
            return
        connection = self.handler.connection
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            readable, _, _ = select.select([connection], [], [], min(left, 0.05))
            if not readable:
                continue
            try:
                gone = connection.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                gone = True
            if gone:
                self.end_flight()
                raise ConnectionAbortedError("the client closed the connection")
            self.service._sleep(left)  # bytes of a next request: nothing more to watch
            return

    def send(self, answer: _Answer) -> None:
        self.wait(self.service.latency)
        self.answered = True
        if answer.disconnect:
            self.end_flight()
            self.handler.drop()
            return
        self.on_status(answer.status)
        h = self.handler
        h.send_response(answer.status)
        h.send_header("x-request-id", str(uuid.uuid4()))
        for name, value in answer.headers.items():
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(answer.body)))
        self.end_flight()
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(answer.body)
        self.on_finish(time.perf_counter())

    def stream(self, events: Iterable[tuple[str, bytes]], headers: Mapping[str, str]) -> None:
        """Send SSE events with hand-made chunked transfer-encoding, keeping the connection."""
        self.wait(self.service.latency)
        self.answered = True
        self.on_status(200)
        h, times = self.handler, self.chunk_times
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("x-request-id", str(uuid.uuid4()))
        for name, value in headers.items():
            h.send_header(name, value)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        # One event of look-ahead tells which one is the last: the slot is freed before it
        # (usually "[DONE]"), which leaves together with the terminating zero-length chunk.
        upcoming = enumerate(events)
        following = next(upcoming, None)
        while following is not None:
            (i, (kind, data)), following = following, next(upcoming, None)
            if kind == "stall":
                self.wait(float(data))
                continue
            if kind == "cut":
                self.end_flight()
                h.drop()  # no terminating zero-length chunk: the body is incomplete
                return
            if i:
                self.wait(self.service.chunk_delay)
            frame = b"%x\r\n%s\r\n" % (len(data), data)
            if following is None:
                self.end_flight()
                frame += b"0\r\n\r\n"
            h.wfile.write(frame)
            if kind == "content":
                times.append(time.perf_counter())
            if following is None:
                break
        else:  # no event at all, or a stall last
            self.end_flight()
            h.wfile.write(b"0\r\n\r\n")
        self.on_finish(time.perf_counter())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sigla-fake-github-models"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request logging of http.server."""

    def _dispatch(self) -> None:
        raw_body = self._read_body()
        received_at = time.perf_counter()
        incoming = _parse_incoming(self.command, self.path, self.headers.items(), raw_body)
        self.server.service._serve(self, received_at, incoming)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def drop(self) -> None:
        """Close the connection now, whatever has been sent so far."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], service: _Service) -> None:
        self.service = service
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # Skip HTTPServer.server_bind's getfqdn(), a reverse DNS lookup that can be slow.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = (
            str(self.server_address[0]),
            int(self.server_address[1]),
        )

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        # Without this, Nagle's algorithm plus delayed ACKs add ~40 ms to small responses.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._connections_lock:
            self._connections.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake handler threads parked on idle keep-alive connections so they exit."""
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client hanging up is routine here
        super().handle_error(request, client_address)
