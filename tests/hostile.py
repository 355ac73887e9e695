"""A hostile OpenAI-compatible server on 127.0.0.1, for the client's hardening tests.

Where :mod:`sigla.testing` imitates one well-behaved service, :class:`HostileServer` misbehaves
on purpose, with real bytes and real timing: gzip bombs, endless lines, drips, cut streams,
huge error bodies, redirects, and the error bodies of real servers. Each request pops the next
scripted :class:`Response` (built by the module functions below); with none queued it answers
an echoing chat completion, an echoing SSE stream when the body asks ``"stream": true``, or a
model list for ``GET .../models``. Standard library only::

    with HostileServer() as server:
        server.script(drip(b'{"choices": []}', interval=0.05), gzip_bomb())
        llm = GitHubLLM(provider="openai", endpoint=server.url + "/v1", model="m", token="t")
        ...
        assert server.wait_connections(0)  # the client closed what it opened
        assert server.sent[-1].bytes_sent < 10 * 1024 * 1024  # and stopped downloading
"""

from __future__ import annotations

import contextlib
import functools
import json
import select
import socket
import socketserver
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Event = Mapping[str, Any] | str | bytes  # an SSE event: a JSON object, or raw text
_MIB = b"a" * (1 << 20)
_PIECE = 1 << 16  # bytes per write of a lazily generated body
_CREATED = 1700000000
_PHRASES = {status.value: status.phrase for status in HTTPStatus}
_JSON_PREFIX = (
    b'{"id":"chatcmpl-hostile","object":"chat.completion","created":1700000000,"model":"m",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"'
)
_JSON_SUFFIX = b'"},"finish_reason":"stop","logprobs":null}]}'
_SSE_PREFIX = (
    b'data: {"id":"chatcmpl-hostile","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"m","choices":[{"index":0,"delta":{"content":"'
)


# -- what the server records ------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request as received: header names lower-cased, the body as raw bytes."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class Sent:
    """What one response put on the wire: ``bytes_sent`` counts the bytes the socket accepted
    (status line and headers included); ``complete`` is False when the client went away first."""

    label: str
    bytes_sent: int = 0
    complete: bool = False


class ClientGone(Exception):
    """The client closed or reset the connection (or the server is stopping)."""


class Wire:
    """The socket of one exchange: writes counted to the byte, pauses that notice a hang-up."""

    def __init__(self, sock: socket.socket, sent: Sent, stopping: threading.Event) -> None:
        self._sock, self._sent, self._stopping = sock, sent, stopping

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            try:
                n = self._sock.send(view)
            except OSError as exc:
                raise ClientGone(str(exc)) from exc
            self._sent.bytes_sent += n
            view = view[n:]

    def chunk(self, data: bytes | memoryview) -> None:
        """Write one chunk of a ``Transfer-Encoding: chunked`` body (never the empty last one)."""
        if len(data):
            self.write(b"%x\r\n" % len(data) + bytes(data) + b"\r\n")

    def pause(self, seconds: float) -> None:
        """Wait, but raise ClientGone as soon as the client hangs up or the server stops."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._stopping.is_set():
                raise ClientGone("server stopping")
            readable, _, _ = select.select([self._sock], [], [], min(left, 0.02))
            if readable:
                try:
                    if not self._sock.recv(1, socket.MSG_PEEK):
                        raise ClientGone("client closed the connection")
                except OSError as exc:
                    raise ClientGone(str(exc)) from exc
                self._stopping.wait(left)  # a pipelined request is waiting: just sleep
                return


@dataclass(frozen=True)
class Response:
    """A scripted answer: ``write`` puts it on the wire; ``keep_alive=False`` closes after."""

    label: str
    write: Callable[[Wire, Request], None]
    keep_alive: bool = True


# -- the server -------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence http.server's per-request log."""

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        if not self.server.owner._answer(self, Request(self.command, self.path, headers, body)):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: HostileServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # no getfqdn(): no DNS lookup
        self.server_name, self.server_port = "127.0.0.1", int(self.server_address[1])

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.owner._track(sock, opened=True)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self.owner._track(request, opened=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up is routine here."""


class HostileServer:
    """An HTTP/1.1 server on 127.0.0.1 (port 0) answering each request with the next scripted
    :class:`Response`; use it as a context manager."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._queue: deque[Response] = deque()
        self.requests: list[Request] = []  # every request received, in order
        self.sent: list[Sent] = []  # what each response sent, in request order
        self._sockets: set[socket.socket] = set()
        self.accepted = 0  # client connections accepted, closed since or not
        self._stopping = threading.Event()
        self._server: _Server | None = None

    def __enter__(self) -> HostileServer:
        self._server = _Server(self)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:  # wake handler threads blocked on idle or stuck connections
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        server.server_close()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (append ``/v1`` for an OpenAI-style endpoint)."""
        assert self._server is not None, "use HostileServer as a context manager"
        return f"http://127.0.0.1:{self._server.server_port}"

    def script(self, *responses: Response) -> None:
        """Queue responses; each request takes the next one."""
        with self._lock:
            self._queue.extend(responses)

    @property
    def open_connections(self) -> int:
        """Client connections accepted and not closed yet."""
        with self._lock:
            return len(self._sockets)

    def wait_connections(self, count: int = 0, timeout: float = 2.0) -> bool:
        """Wait until at most ``count`` connections are open; False if ``timeout`` ran out."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._sockets) <= count, timeout)

    def _track(self, sock: socket.socket, *, opened: bool) -> None:
        with self._lock:
            if opened:
                self._sockets.add(sock)
                self.accepted += 1
            else:
                self._sockets.discard(sock)
            self._lock.notify_all()

    def _answer(self, handler: _Handler, request: Request) -> bool:
        """Send the next response; False when the connection must close afterwards."""
        with self._lock:
            self.requests.append(request)
            response = self._queue.popleft() if self._queue else _default(request)
            sent = Sent(response.label)
            self.sent.append(sent)
        try:
            response.write(Wire(handler.connection, sent, self._stopping), request)
        except ClientGone:
            return False
        sent.complete = True
        return response.keep_alive


# -- response builders ------------------------------------------------------------------


def _head(
    status: int, headers: Mapping[str, str], length: int | None = None, reason: str = ""
) -> bytes:
    fields = {**headers, **({} if length is None else {"Content-Length": str(length)})}
    lines = [f"HTTP/1.1 {status} {reason or _PHRASES.get(status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in fields.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


Parts = Callable[[], Iterable[bytes | memoryview]]


def _send(
    label: str, head: bytes, parts: Parts, *, chunked: bool = False, cut: bool = False
) -> Response:
    """Write ``head``, then each part (as one chunk of a chunked body when ``chunked``); ``cut``
    closes the connection without the last chunk."""

    def write(wire: Wire, request: Request) -> None:
        wire.write(head)
        for part in parts():
            if chunked:
                wire.chunk(part)
            else:
                wire.write(part)
        if chunked and not cut:
            wire.write(b"0\r\n\r\n")

    return Response(label, write, keep_alive=not cut)


def _json(label: str, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(obj).encode()
    head = _head(status, {"Content-Type": "application/json", **(headers or {})}, len(body))
    return _send(label, head, lambda: [body])


def _filled(size: int, prefix: bytes = b"", suffix: bytes = b"") -> Iterator[memoryview]:
    """Exactly ``size`` bytes, generated lazily: prefix, ``a`` filler, suffix (if they fit)."""
    if size < len(prefix) + len(suffix):
        prefix = suffix = b""
    yield memoryview(prefix)
    left = size - len(prefix) - len(suffix)
    while left > 0:
        yield memoryview(_MIB)[: min(left, _PIECE)]
        left -= _PIECE
    yield memoryview(suffix)


_SSE = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
_SSE_HEAD = _head(200, {**_SSE, "Transfer-Encoding": "chunked"})
_BASE = {"id": "chatcmpl-hostile", "created": _CREATED, "model": "m"}


def _event(item: Event) -> bytes:
    if isinstance(item, Mapping):
        return b"data: %s\n\n" % json.dumps(item).encode()
    return item.encode() if isinstance(item, str) else item


def chunk(
    content: str | None = None, finish_reason: str | None = None, **extra: Any
) -> dict[str, Any]:
    """An OpenAI ``chat.completion.chunk`` carrying ``content`` (or an empty delta)."""
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
    return {**_BASE, "object": "chat.completion.chunk", "choices": [choice], **extra}


def completion(
    text: str | None, finish_reason: str | None = "stop", usage: bool = True, **extra: Any
) -> Response:
    """A well-formed OpenAI chat completion (JSON); ``extra`` adds or replaces top-level keys."""
    message = {"role": "assistant", "content": text}
    choice = {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
    obj: dict[str, Any] = {**_BASE, "object": "chat.completion", "choices": [choice]}
    if usage:
        out = len((text or "").split())
        obj["usage"] = {"prompt_tokens": 5, "completion_tokens": out, "total_tokens": 5 + out}
    return _json(f"completion {text!r}", 200, {**obj, **extra})


def compressed(text: str, encoding: str = "gzip", status: int = 200) -> Response:
    """A chat completion of ``text`` (or, for a ``status`` from 400, an error saying it) sent
    with ``Content-Encoding: encoding``: gzip and deflate (zlib-wrapped) are compressed so;
    any other name goes out uncompressed, as a proxy using an encoding the client never
    asked for would label it."""
    message = {"role": "assistant", "content": text}
    choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
    obj: dict[str, Any] = {**_BASE, "object": "chat.completion", "choices": [choice]}
    data = json.dumps({"error": {"message": text}} if status >= 400 else obj).encode()
    if encoding in ("gzip", "deflate"):
        packer = zlib.compressobj(9, zlib.DEFLATED, 31 if encoding == "gzip" else 15)
        data = packer.compress(data) + packer.flush()
    fields = {"Content-Type": "application/json", "Content-Encoding": encoding}
    return _send(f"{encoding} {status}", _head(status, fields, len(data)), lambda: [data])


def sse(
    chunks: Sequence[Event],
    done: bool = True,
    *,
    head_after: float = 0.0,
    first_after: float = 0.0,
) -> Response:
    """An SSE stream, chunked as real servers send it: dicts become ``data: {json}`` events,
    strings and bytes go out verbatim; ``done`` ends it with ``data: [DONE]``. A busy
    server: ``head_after`` seconds pass before the headers, ``first_after`` more between
    them and the first event (both cut short when the client hangs up)."""
    events = [_event(c) for c in chunks] + ([b"data: [DONE]\n\n"] if done else [])
    label = f"sse of {len(events)} events"
    if not head_after and not first_after:
        return _send(label, _SSE_HEAD, lambda: events, chunked=True)

    def write(wire: Wire, request: Request) -> None:
        wire.pause(head_after)
        wire.write(_SSE_HEAD)
        wire.pause(first_after)
        for event in events:
            wire.chunk(event)
        wire.write(b"0\r\n\r\n")

    return Response(f"{label}, headers after {head_after} s, then {first_after} s", write)


def empty(status: int = 200, content_type: str = "application/json") -> Response:
    """A response with an empty body, as a misconfigured proxy may send."""
    return _send(f"empty {status}", _head(status, {"Content-Type": content_type}, 0), tuple)


@functools.lru_cache(maxsize=8)
def _gzip_bomb_bytes(size: int, stream: bool) -> bytes:
    """A gzip member inflating to ``size`` bytes, built without ever holding them: a MiB of
    filler deflated after a full flush has one compressed form, repeated verbatim, and the
    CRC-32 of the repeats is combined arithmetically, as zlib's crc32_combine does."""
    prefix, suffix = (_SSE_PREFIX, b"") if stream else (_JSON_PREFIX, _JSON_SUFFIX)
    if size < len(prefix) + len(suffix):
        raise ValueError(f"a gzip bomb needs at least {len(prefix) + len(suffix)} bytes")
    blocks, rest = divmod(size - len(prefix) - len(suffix), len(_MIB))
    tail_data = _MIB[:rest] + suffix
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = deflate.compress(prefix) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(_MIB) + deflate.flush(zlib.Z_FULL_FLUSH) if blocks else b""
    tail = deflate.compress(tail_data) + deflate.flush()
    crc, block_crc, shift = zlib.crc32(prefix), zlib.crc32(_MIB), _x_pow_8n(len(_MIB))
    for _ in range(blocks):
        crc = _gf2_multiply(shift, crc) ^ block_crc
    crc = zlib.crc32(tail_data, crc)
    total = len(prefix) + blocks * len(_MIB) + len(tail_data)
    trailer = struct.pack("<II", crc, total & 0xFFFFFFFF)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + head + block * blocks + tail + trailer


def _gf2_multiply(a: int, b: int) -> int:
    """a * b modulo the reflected CRC-32 polynomial (zlib's multmodp)."""
    product = 0
    for bit in range(31, -1, -1):
        product ^= b if a >> bit & 1 else 0
        b = (b >> 1) ^ 0xEDB88320 if b & 1 else b >> 1
    return product


def _x_pow_8n(n: int) -> int:
    """x**(8 * n) modulo the CRC-32 polynomial: appending n bytes multiplies a CRC by this."""
    result, square = 1 << 31, 1 << 23  # x**0 and x**8, bit-reflected
    while n:
        result = _gf2_multiply(square, result) if n & 1 else result
        square, n = _gf2_multiply(square, square), n >> 1
    return result


def gzip_bomb(size: int = 1 << 30, stream: bool = False) -> Response:
    """``Content-Encoding: gzip``, about 1 MB on the wire per GiB inflated: a JSON completion
    whose content is one huge string, or (``stream``) ``data: `` and a huge line without a
    newline. Imitates a hostile or broken upstream behind a compressing proxy."""
    body = memoryview(_gzip_bomb_bytes(size, stream))
    kind = _SSE if stream else {"Content-Type": "application/json"}
    head = _head(200, {**kind, "Content-Encoding": "gzip"}, len(body))
    pieces = lambda: (body[i : i + _PIECE] for i in range(0, len(body), _PIECE))  # noqa: E731
    return _send(f"gzip bomb of {size} bytes", head, pieces)


def huge_line(size: int, stream: bool = True) -> Response:
    """One line of ``size`` bytes and no newline, generated lazily, as a runaway model or a
    broken proxy may send: an SSE ``data:`` line (chunked) or a JSON completion."""
    label = f"huge line of {size} bytes"
    if stream:
        return _send(label, _SSE_HEAD, lambda: _filled(size, _SSE_PREFIX), chunked=True)
    head = _head(200, {"Content-Type": "application/json"}, size)
    return _send(label, head, lambda: _filled(size, _JSON_PREFIX, _JSON_SUFFIX))


def drip(
    body: bytes | str,
    interval: float,
    headers_too: bool = False,
    *,
    content_type: str = "application/json",
    head_after: float = 0.0,
) -> Response:
    """A slowloris upstream: status line and headers at once (or dripped too, with
    ``headers_too``), then the body one byte every ``interval`` seconds, stopping as soon as
    the client hangs up. Every byte resets a read timeout; only a total deadline ends it.
    ``head_after`` seconds pass before anything is sent."""
    data = body.encode() if isinstance(body, str) else body
    head = _head(200, {"Content-Type": content_type}, len(data))

    def write(wire: Wire, request: Request) -> None:
        wire.pause(head_after)
        if not headers_too:
            wire.write(head)
        payload = head + data if headers_too else data
        for i in range(len(payload)):
            if i:
                wire.pause(interval)
            wire.write(payload[i : i + 1])

    return Response(f"drip every {interval}s", write)


def gathered(count: int, timeout: float = 2.0) -> list[Response]:
    """``count`` echoing chat completions, each held until all ``count`` requests are in
    (a barrier): they can all be answered only if the client sends them at once. A request
    still alone after ``timeout`` seconds gets a 504 instead."""
    barrier = threading.Barrier(count)

    def write(wire: Wire, request: Request) -> None:
        try:
            barrier.wait(timeout)
        except threading.BrokenBarrierError:
            return error(504, {"error": {"message": "not all together"}}).write(wire, request)
        return _default(request).write(wire, request)

    return [Response(f"gathered {i + 1} of {count}", write) for i in range(count)]


def redirect(status: int = 307, location: str = "/redirected/v1/chat/completions") -> Response:
    """A redirect; the default target is this same server, so a follow shows in ``requests``."""
    return _send(f"redirect {status}", _head(status, {"Location": location}, 0), tuple)


def error(
    status: int,
    body: bytes | str | Mapping[str, Any] = b"",
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
    *,
    size: int | None = None,
) -> Response:
    """An error answer; with ``size``, that many bytes of lazily made filler instead of
    ``body`` (shaped ``{"error":{"message":"aaa…"}}`` for a JSON type), as a proxy dumping a
    whole upstream page or log into its error may send."""
    fields = {"Content-Type": content_type, **(headers or {})}
    if size is not None:
        shape = (b'{"error":{"message":"', b'"}}') if "json" in content_type else (b"", b"")
        head = _head(status, fields, size)
        return _send(f"error {status} of {size} bytes", head, lambda: _filled(size, *shape))
    if isinstance(body, Mapping):
        body = json.dumps(body)
    data = body.encode() if isinstance(body, str) else body
    return _send(f"error {status}", _head(status, fields, len(data)), lambda: [data])


# nginx's own pages, from src/http/ngx_http_special_response.c (with its 503/504 wording).
_NGINX_TITLES = {
    500: "500 Internal Server Error",
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
    504: "504 Gateway Time-out",
}


def html_error(status: int = 502) -> Response:
    """The HTML page nginx sends when its upstream fails (``Server: nginx``, ``text/html``)."""
    title = _NGINX_TITLES.get(status, f"{status} {HTTPStatus(status).phrase}")
    page = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1>"
        "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    ).encode()
    fields = {"Server": "nginx", "Content-Type": "text/html"}
    head = _head(status, fields, len(page), reason=title.partition(" ")[2])
    return _send(f"nginx {status}", head, lambda: [page])


def close() -> Response:
    """Read the request, then close the connection without a single byte of answer."""
    return Response("close without answering", lambda wire, request: None, keep_alive=False)


def cut_after(events: int | Sequence[Event]) -> Response:
    """Start an SSE stream, send ``events`` (or that many content chunks), then close the
    socket mid-body: no finish_reason, no ``[DONE]``, no last chunk of the chunked encoding."""
    items = [chunk(f"piece{i} ") for i in range(events)] if isinstance(events, int) else events
    data = [_event(item) for item in items]
    return _send(f"cut after {len(data)} events", _SSE_HEAD, lambda: data, chunked=True, cut=True)


# -- error bodies of real OpenAI-compatible servers -------------------------------------

# OpenAI's {"error": {message, type, param, code}}: code -> (status, type, param, message), as
# recorded in public reports: context_length_exceeded (crewAIInc/crewAI-examples#121,
# chathub-dev/chathub#126), model_not_found (abi/screenshot-to-code#332),
# content_policy_violation (songquanpeng/one-api#737); the others from OpenAI's error-code
# guide (platform.openai.com/docs/guides/error-codes).
# fmt: off
_OPENAI_ERRORS: dict[str, tuple[int, str, str | None, str]] = {
    "context_length_exceeded": (400, "invalid_request_error", "messages",
        "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 204308 tokens. Please reduce the length of the messages."),
    "model_not_found": (404, "invalid_request_error", None,
        "The model `m` does not exist or you do not have access to it."),
    "content_policy_violation": (400, "invalid_request_error", None,
        "Your request was rejected as a result of our safety system. Your prompt may contain "
        "text that is not allowed by our safety system."),
    "rate_limit_exceeded": (429, "tokens", None,
        "Rate limit reached for gpt-4o in organization org-hostile on tokens per min (TPM): "
        "Limit 30000, Used 29500, Requested 1200. Please try again in 1.4s."),
    "insufficient_quota": (429, "insufficient_quota", None,
        "You exceeded your current quota, please check your plan and billing details."),
    "invalid_api_key": (401, "invalid_request_error", None,
        "Incorrect API key provided: sk-abc***xyz. You can find your API key at "
        "https://platform.openai.com/account/api-keys."),
}
# fmt: on


def openai_error(code: str = "context_length_exceeded", message: str | None = None) -> Response:
    """OpenAI's error for ``code`` (a key of ``_OPENAI_ERRORS``) with its real status and type;
    ``insufficient_quota`` is the 429 that waiting does not cure."""
    if code not in _OPENAI_ERRORS:
        raise ValueError(f"unknown OpenAI error {code!r}; known: {', '.join(_OPENAI_ERRORS)}")
    status, kind, param, text = _OPENAI_ERRORS[code]
    fields = {"message": message or text, "type": kind, "param": param, "code": code}
    headers = {"x-request-id": "req_hostile"}
    if code == "rate_limit_exceeded":
        headers["x-ratelimit-reset-tokens"] = "1.4s"
    return _json(f"openai {code}", status, {"error": fields}, headers)


def azure_content_filter(category: str = "violence") -> Response:
    """Azure OpenAI's 400 for a filtered prompt (Azure OpenAI "Content filtering" docs, the
    contract's §5): code ``content_filter``, ``innererror`` with per-category results."""
    results: dict[str, Any] = {
        name: {"filtered": name == category, "severity": "medium" if name == category else "safe"}
        for name in ("hate", "self_harm", "sexual", "violence")
    }
    results["jailbreak"] = {"filtered": False, "detected": False}
    inner = {"code": "ResponsibleAIPolicyViolation", "content_filter_result": results}
    message = (
        "The response was filtered due to the prompt triggering Azure OpenAI's content "
        "management policy. Please modify your prompt and retry."
    )
    fields = {"message": message, "type": None, "param": "prompt", "code": "content_filter"}
    return _json(
        "azure content_filter", 400, {"error": {**fields, "status": 400, "innererror": inner}}
    )


def llamacpp_context_error(n_prompt_tokens: int = 4476, n_ctx: int = 4096) -> Response:
    """llama.cpp server's 400 for a prompt over its context (ggml-org/llama.cpp tools/server:
    ERROR_TYPE_EXCEED_CONTEXT_SIZE is ``exceed_context_size_error``, and
    server_task_result_error::to_json adds ``n_prompt_tokens``/``n_ctx``); ``code`` is a number."""
    message = (
        f"request ({n_prompt_tokens} tokens) exceeds the available context size "
        f"({n_ctx} tokens), try increasing it"
    )
    fields = {"code": 400, "message": message, "type": "exceed_context_size_error"}
    body = {"error": {**fields, "n_prompt_tokens": n_prompt_tokens, "n_ctx": n_ctx}}
    return _json("llama.cpp context size", 400, body, {"Server": "llama.cpp"})


def litellm_rate_limit(retry_after: int = 7) -> Response:
    """A LiteLLM proxy relaying a provider's 429 (BerriAI/litellm: ProxyException.to_dict in
    proxy/_types.py, RateLimitError in exceptions.py). The provider's ``retry-after`` comes
    back only as ``llm_provider-retry-after``: process_response_headers prefixes every provider
    header and keeps bare names only for x-ratelimit-*. ``code`` is the status as a string."""
    message = (
        "litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached for "
        f"gpt-4o. Please try again in {retry_after}s."
    )
    fields = {"message": message, "type": "throttling_error", "param": None, "code": "429"}
    headers = {"llm_provider-retry-after": str(retry_after), "x-litellm-version": "1.74.0"}
    return _json("litellm 429", 429, {"error": fields}, headers)


def _default(request: Request) -> Response:
    """With nothing scripted: a model list, else an echo of the last message's content."""
    if request.method == "GET" and request.path.rstrip("/").endswith("/models"):
        model = {"id": "m", "object": "model", "created": _CREATED, "owned_by": "hostile"}
        return _json("model list", 200, {"object": "list", "data": [model]})
    body = request.json()
    messages = body.get("messages") if isinstance(body, dict) else None
    last = messages[-1] if isinstance(messages, list) and messages else None
    text = f"Echo: {last.get('content') if isinstance(last, dict) else ''}"
    if isinstance(body, dict) and body.get("stream") is True:
        return sse([chunk(""), chunk(text), chunk(None, "stop")])
    return completion(text)
