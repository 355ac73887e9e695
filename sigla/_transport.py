"""The HTTP clients sigla hands to mistralai, and the transport under them.

Imported lazily (it imports ``httpx`` and ``httpcore``). We give the SDK clients of our own
because that solves, in one place and for every mistralai major version:

- cost and sharing: one sync client per process and one async client per event loop (per
  :class:`~sigla._core.Wire`), all sharing one SSL context;
- one HTTP library: mistralai 3.x uses ``httpx2`` internally but accepts ``httpx``
  clients, so transport errors are always ``httpx``'s or ``httpcore``'s;
- what the SDK cannot express: the body rewrite of :func:`~sigla._core.rewrite_body`,
  query parameters (Azure's ``api-version``, a key given in the endpoint URL), our
  User-Agent, the Foundry route for mistralai 1.x's Azure client;
- what a hostile or broken server must not do to the caller (contract of issue 10):
  ``timeout`` bounds a whole non-streamed attempt (a server dripping one byte at a time
  cannot hold a call forever), decoded bodies are bounded (a gzip bomb inflates in small
  pieces and stops at ``max_response_bytes``), error bodies are cut at
  :data:`ERROR_BODY_LIMIT`, and redirects are refused rather than followed (the credential
  never goes to another address).

The deadline reaches the sockets through a network backend that cuts every read, write and
connect to the time left (:data:`DEADLINE`, a context variable, so each thread and each
task has its own); httpcore alone only bounds each read.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextvars
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urljoin

import httpcore
import httpx

from . import __version__
from ._core import Wire, fill_completion_body, rewrite_body
from ._network import (
    DEADLINE,
    AsyncBody,
    AsyncDeadlineBackend,
    Body,
    DeadlineBackend,
    Inflater,
)
from ._sse import Event, SSEDecoder
from .errors import ConfigurationError, InvalidResponseError

__all__ = [
    "CLAIMED_TYPE",
    "ERROR_BODY_LIMIT",
    "Claim",
    "LoopLocal",
    "aiter_events",
    "async_client",
    "idle_async_client",
    "iter_events",
    "release",
    "sync_client",
]

ERROR_BODY_LIMIT = 64 * 1024  # bytes of an error answer kept; the rest is never downloaded
# httpx's own pool limits (httpcore's default of 10 connections would make the 11th
# concurrent call or open stream to one endpoint wait, then time out); how many requests
# may run at once is the client-side limiter's business, not the pool's.
_POOL: dict[str, Any] = {
    "max_connections": 100,
    "max_keepalive_connections": 20,
    "keepalive_expiry": 5.0,
}

# mistralai 1.x's Azure client posts {endpoint}/v1/chat/completions; Foundry's
# model-inference route, which 2.x/3.x use, has no /v1.
_AZURE_V1_ROUTE = "/models/v1/chat/completions"
_AZURE_ROUTE = "/models/chat/completions"
_DROPPED_HEADERS = ("content-encoding", "content-length", "transfer-encoding")

# ---------------------------------------------------------------- requests and answers


def _is_chat(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/chat/completions")


def _where(url: httpx.URL) -> str:
    """The address for messages: no credential, no query."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


def prepare(request: httpx.Request, wire: Wire) -> httpx.Request:
    """The request as the service must see it (credentials from the URL added only here)."""
    headers = request.headers.copy()
    headers["user-agent"] = f"sigla/{__version__} {headers.get('user-agent', '')}".strip()
    headers["accept-encoding"] = "gzip, deflate"
    url = request.url
    if url.path.endswith(_AZURE_V1_ROUTE):
        url = url.copy_with(path=url.path[: -len(_AZURE_V1_ROUTE)] + _AZURE_ROUTE)
    if wire.query:
        url = url.copy_merge_params({k: v.reveal() for k, v in wire.query})
    if wire.userinfo is not None:
        basic = base64.b64encode(wire.userinfo.reveal().encode()).decode()
        headers["authorization"] = f"Basic {basic}"
    content = request.content
    if _is_chat(request):
        content = rewrite_body(content, wire)
        headers.pop("content-length", None)
    return httpx.Request(
        request.method, url, headers=headers, content=content, extensions=request.extensions
    )


def _core_request(request: httpx.Request) -> httpcore.Request:
    url = request.url
    return httpcore.Request(
        method=request.method,
        url=httpcore.URL(
            scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
        ),
        headers=request.headers.raw,
        content=request.stream,  # type: ignore[arg-type]
        extensions=request.extensions,
    )


def _attempt_timeout(request: httpx.Request) -> float:
    timeouts = request.extensions.get("timeout") or {}
    read = timeouts.get("read")
    return float(read) if read else 600.0


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def _redirect_error(request: httpx.Request, status: int, location: str) -> ConfigurationError:
    target = httpx.URL(urljoin(str(request.url), location)) if location else None
    where = _where(target) if target is not None else "an address it did not give"
    return ConfigurationError(
        f"The endpoint {_where(request.url)} redirected (HTTP {status}) to {where}. sigla does "
        "not follow redirects, so that the credential is never sent to another address: "
        "if you trust it, use that URL as the endpoint (endpoint= or SIGLA_LLM_ENDPOINT)."
    )


class _Plan:
    """What to do with an answer once its headers are in: I/O-free, shared by both twins."""

    def __init__(
        self, request: httpx.Request, status: int, headers: list[tuple[bytes, bytes]], wire: Wire
    ) -> None:
        self.where = _where(request.url)
        if 300 <= status < 400:
            raise _redirect_error(request, status, _header(headers, b"location"))
        self.inflater = Inflater(_header(headers, b"content-encoding"), self.where)
        self.headers = [(k, v) for k, v in headers if k.lower().decode() not in _DROPPED_HEADERS]
        content_type = _header(headers, b"content-type").lower()
        wants_events = "text/event-stream" in request.headers.get("accept", "")
        self.stream = status == 200 and "text/event-stream" in content_type
        if wants_events and status == 200 and not self.stream:
            self.limit = ERROR_BODY_LIMIT
            self.refuse = (
                f"{self.where} answered a streaming request with "
                f"{content_type or 'no Content-Type'} instead of an event stream "
                "(text/event-stream): this server may not stream; call chat() instead."
            )
        else:
            self.refuse = ""
            self.limit = ERROR_BODY_LIMIT if status >= 400 else wire.max_response_bytes
        self.truncate = status >= 400  # keep the start of an error answer, drop the rest
        self._pieces: list[bytes] = []
        self._size = 0

    def body_deadline(self, attempt_deadline: float, timeout: float) -> float:
        """A whole answer must end by the attempt's deadline; a stream's first event, within
        ``timeout`` from now (then each next one: :func:`iter_events` moves it on)."""
        return time.monotonic() + timeout if self.stream else attempt_deadline

    def streamed(self, response: Any, body: Any) -> httpx.Response:
        """The open answer handed to the SDK, its body reachable by :func:`iter_events`."""
        return httpx.Response(
            200,
            headers=self.headers,
            stream=body,
            extensions={**response.extensions, "sigla.body": body},
        )

    def keep(self, piece: bytes) -> bool:
        """Keep a piece of a whole answer; whether to read on (raises when a 2xx is too big)."""
        self._pieces.append(piece)
        self._size += len(piece)
        if self._size <= self.limit:
            return True
        if self.truncate or self.refuse:
            return False
        raise InvalidResponseError(
            f"The answer from {self.where} is larger than {self.limit} bytes "
            "(max_response_bytes), so sigla stopped reading it. Check the endpoint, or raise "
            "max_response_bytes if such answers are expected."
        )

    def answer(self, request: httpx.Request, status: int, extensions: Any) -> httpx.Response:
        """The whole answer as the SDK gets it (or the refusal of a non-stream)."""
        content = b"".join(self._pieces)
        if self.refuse:
            said = content[:200].decode("utf-8", "replace").strip()
            raise InvalidResponseError(self.refuse + (f" It said: {said!r}" if said else ""))
        content = content[: self.limit]
        headers = self.headers
        if status == 200 and _is_chat(request):
            content = fill_completion_body(content) or content
            claim = _CLAIM.get()
            if claim is not None and claim.take(content):
                headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
                headers.append((b"content-type", CLAIMED_TYPE.encode()))
        return httpx.Response(
            status, headers=headers, content=content, request=request, extensions=extensions
        )


CLAIMED_TYPE = "application/vnd.sigla.claimed+json"
"""The Content-Type the SDK sees on a chat answer a :class:`Claim` took: one it never parses."""


class Claim:
    """A chat answer validated by sigla itself: mistralai's parse costs up to a tenth of a call.

    For every JSON answer, mistralai's ``utils.unmarshal`` builds a pydantic model class
    (``pydantic.create_model``, ~0.5 ms) before validating the answer with it. A claim
    carries the SDK's own validation of that same class, minus the class building
    (``validate``: the answer's bytes to the SDK's ``ChatCompletionResponse``). While a
    claim is set (:meth:`held`), the transport runs it on a chat answer it has read in
    full; if the answer passes, the claim keeps the result and the SDK gets the answer
    unchanged but labelled :data:`CLAIMED_TYPE`, which it does not parse: it raises its
    "unexpected response" error instead, which the claimant expects and drops. An answer
    that fails ``validate`` reaches the SDK as it came, and the SDK refuses it as always.
    """

    __slots__ = ("answer", "validate")

    def __init__(self, validate: Any) -> None:
        self.validate = validate
        self.answer: Any = None

    def take(self, content: bytes) -> bool:
        """Whether ``content`` passed ``validate`` (then ``answer`` holds the result)."""
        try:
            self.answer = self.validate(content)
        except Exception:
            return False
        return True

    def held(self) -> contextvars.Token[Claim | None]:
        """Set this claim for this thread's or task's requests, until :func:`release`."""
        return _CLAIM.set(self)


def release(token: contextvars.Token[Claim | None]) -> None:
    """End the claim set by :meth:`Claim.held`."""
    _CLAIM.reset(token)


# Per thread and per task, like the deadline: the transport runs in the caller's context.
_CLAIM: contextvars.ContextVar[Claim | None] = contextvars.ContextVar("sigla_claim", default=None)


class Gate(Protocol):
    """Where a request waits for its turn right before it goes on the wire (the client's
    limits: ``_limits.Admission``); :meth:`leave` runs once the answer is read or the
    stream closed, so a slot is held only around the exchange on the wire."""

    def enter(self) -> None: ...

    async def aenter(self) -> None: ...

    def leave(self) -> None: ...


_GATE: contextvars.ContextVar[Gate | None] = contextvars.ContextVar("sigla_gate", default=None)


def gated(gate: Gate | None) -> contextvars.Token[Gate | None]:
    """Make this thread's or task's next requests pass ``gate``, until :func:`ungated`."""
    return _GATE.set(gate)


def ungated(token: contextvars.Token[Gate | None]) -> None:
    _GATE.reset(token)


class _Transport(httpx.BaseTransport):
    def __init__(self, wire: Wire, ssl_context: Any) -> None:
        self._wire = wire
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context, network_backend=DeadlineBackend(), **_POOL
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request = prepare(request, self._wire)
        gate = _GATE.get()
        if gate is not None:
            gate.enter()
        try:
            timeout = _attempt_timeout(request)
            deadline = time.monotonic() + timeout
            token = DEADLINE.set(deadline)
            try:
                response = self._pool.handle_request(_core_request(request))
            finally:
                DEADLINE.reset(token)
            if response.status == 429:
                # The slot is freed once the refusal has paused the budget (the caller's
                # `with` block does both): freed here, a waiter would go into the pause.
                gate = None
            try:
                plan = _Plan(request, response.status, response.headers, self._wire)
                deadline = plan.body_deadline(deadline, timeout)
                body = Body(response.stream, plan.inflater, deadline, plan.where)
            except BaseException:
                response.close()
                raise
            if plan.stream:
                body.on_close = gate
                gate = None  # the stream's body leaves the gate when it is closed
                return plan.streamed(response, body)
            try:
                for piece in body:
                    if not plan.keep(piece):
                        break
            finally:
                response.close()
        finally:
            if gate is not None:
                gate.leave()
        return plan.answer(request, response.status, response.extensions)

    def close(self) -> None:
        self._pool.close()


class _AsyncTransport(httpx.AsyncBaseTransport):
    def __init__(self, wire: Wire, ssl_context: Any) -> None:
        self._wire = wire
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context, network_backend=AsyncDeadlineBackend(), **_POOL
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request = prepare(request, self._wire)
        gate = _GATE.get()
        if gate is not None:
            await gate.aenter()
        try:
            timeout = _attempt_timeout(request)
            deadline = time.monotonic() + timeout
            token = DEADLINE.set(deadline)
            try:
                response = await self._pool.handle_async_request(_core_request(request))
            finally:
                DEADLINE.reset(token)
            if response.status == 429:
                # The slot is freed once the refusal has paused the budget (the caller's
                # `with` block does both): freed here, a waiter would go into the pause.
                gate = None
            try:
                plan = _Plan(request, response.status, response.headers, self._wire)
                deadline = plan.body_deadline(deadline, timeout)
                body = AsyncBody(response.stream, plan.inflater, deadline, plan.where)
            except BaseException:
                await response.aclose()
                raise
            if plan.stream:
                body.on_close = gate
                gate = None  # the stream's body leaves the gate when it is closed
                return plan.streamed(response, body)
            try:
                async for piece in body:
                    if not plan.keep(piece):
                        break
            finally:
                await response.aclose()
        finally:
            if gate is not None:
                gate.leave()
        return plan.answer(request, response.status, response.extensions)

    async def aclose(self) -> None:
        await self._pool.aclose()


# ---------------------------------------------------------------- event streams


def _next_deadline(timeout: float, deadline: float | None) -> float:
    due = time.monotonic() + timeout
    return due if deadline is None else min(due, deadline)


def iter_events(
    response: httpx.Response, timeout: float, max_size: int, deadline: float | None = None
) -> Iterator[Event]:
    """The events of a streamed answer; each must arrive within ``timeout`` of the last,
    and all before ``deadline`` (``time.monotonic()`` time) when one is given."""
    body = response.extensions.get("sigla.body")
    if body is not None and deadline is not None:
        body.deadline = min(body.deadline, deadline)
    decoder = SSEDecoder(max_size)
    for chunk in response.iter_raw():
        events = decoder.feed(chunk)
        if events and body is not None:
            body.deadline = _next_deadline(timeout, deadline)
        yield from events
    yield from decoder.close()


async def aiter_events(
    response: httpx.Response, timeout: float, max_size: int, deadline: float | None = None
) -> AsyncIterator[Event]:
    """Async twin of :func:`iter_events`."""
    body = response.extensions.get("sigla.body")
    if body is not None and deadline is not None:
        body.deadline = min(body.deadline, deadline)
    decoder = SSEDecoder(max_size)
    async for chunk in response.aiter_raw():
        events = decoder.feed(chunk)
        if events and body is not None:
            body.deadline = _next_deadline(timeout, deadline)
        for event in events:
            yield event
    for event in decoder.close():
        yield event


# ---------------------------------------------------------------- clients, shared

T = TypeVar("T")


class LoopLocal(Generic[T]):
    """Values kept per running event loop and forgotten once their loop is closed.

    A ``WeakKeyDictionary`` keyed by the loop cannot do this: its values (clients whose
    pooled connections refer to the loop) keep their own key alive, so every
    ``asyncio.run()`` would leak a loop and its sockets.
    """

    def __init__(self) -> None:
        self._items: dict[tuple[int, object], tuple[asyncio.AbstractEventLoop, T]] = {}
        self._lock = threading.Lock()

    def get(self, key: object = None) -> T | None:
        loop = asyncio.get_running_loop()
        with self._lock:
            for ident, (other, _) in list(self._items.items()):
                if other.is_closed():
                    del self._items[ident]
            entry = self._items.get((id(loop), key))
            return entry[1] if entry is not None and entry[0] is loop else None

    def set(self, value: T, key: object = None) -> T:
        loop = asyncio.get_running_loop()
        with self._lock:
            self._items[(id(loop), key)] = (loop, value)
        return value

    def __len__(self) -> int:
        return len(self._items)


_lock = threading.Lock()
_ssl_context: Any = None
_sync_clients: dict[Wire, httpx.Client] = {}
_async_clients: LoopLocal[tuple[httpx.AsyncClient, AsyncIterator[None]]] = LoopLocal()
_idle: httpx.AsyncClient | None = None


def _ssl() -> Any:
    """One SSL context for every client: building one costs ~35 ms."""
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = httpx.create_ssl_context()
    return _ssl_context


@atexit.register
def _close_sync_clients() -> None:
    """Close pooled connections at exit rather than leave them to the socket finalizers."""
    with _lock:
        clients = list(_sync_clients.values())
        _sync_clients.clear()
    for client in clients:
        client.close()


def sync_client(wire: Wire) -> httpx.Client:
    """The process-wide sync client for ``wire`` (thread-safe; built once)."""
    with _lock:
        client = _sync_clients.get(wire)
        if client is None:
            client = httpx.Client(transport=_Transport(wire, _ssl()), follow_redirects=False)
            _sync_clients[wire] = client
        return client


async def _close_with_the_loop(client: httpx.AsyncClient) -> AsyncIterator[None]:
    """Stays suspended while its loop lives; ``loop.shutdown_asyncgens()`` (which
    ``asyncio.run`` calls before closing the loop) resumes it, and it closes the client."""
    try:
        yield
    finally:
        await client.aclose()


async def async_client(wire: Wire) -> httpx.AsyncClient:
    """The async client for ``wire`` on the running event loop (one per loop).

    It is closed, its connections with it, when the loop shuts down its async generators.
    """
    entry = _async_clients.get(wire)
    if entry is None:
        client = httpx.AsyncClient(transport=_AsyncTransport(wire, _ssl()), follow_redirects=False)
        closer = _close_with_the_loop(client)
        await closer.__anext__()  # registers it with the loop's async-generator shutdown
        entry = _async_clients.set((client, closer), wire)
    return entry[0]


def idle_async_client() -> httpx.AsyncClient:
    """Handed to sync-only SDK objects so the SDK does not build (and pay for) its own."""
    global _idle
    with _lock:
        if _idle is None:
            _idle = httpx.AsyncClient(verify=_ssl())
        return _idle
