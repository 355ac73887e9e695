"""The HTTP clients sigla hands to mistralai, and the transport shim on them.

Imported lazily (it imports ``httpx``). We give the SDK clients of our own because that
solves, in one place and for every mistralai major version:

- cost and sharing: one sync client per process and one async client per event loop (per
  :class:`~sigla._core.Wire`), all sharing one SSL context, so a ``GitHubLLM`` is cheap
  and calls share connection pools;
- one HTTP library: mistralai 3.x uses ``httpx2`` internally but accepts ``httpx``
  clients, so transport errors are always ``httpx``'s;
- what the SDK cannot express: the body rewrite of :func:`~sigla._core.rewrite_body`,
  query parameters (Azure's ``api-version``), our User-Agent, the Foundry route for
  mistralai 1.x's Azure client, and reading error bodies of streamed responses (mistralai
  reads them unread and crashes with ``ResponseNotRead`` when they are empty).
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import AsyncIterator
from typing import Any, Generic, TypeVar

import httpx

from . import __version__
from ._core import Wire, fill_completion_body, rewrite_body

__all__ = ["LoopLocal", "sync_client", "async_client", "idle_async_client"]

# mistralai 1.x's Azure client posts {endpoint}/v1/chat/completions; Foundry's
# model-inference route, which 2.x/3.x use, has no /v1.
_AZURE_V1_ROUTE = "/models/v1/chat/completions"
_AZURE_ROUTE = "/models/chat/completions"


def _is_chat(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/chat/completions")


def prepare(request: httpx.Request, wire: Wire) -> httpx.Request:
    """The request as the service must see it."""
    headers = request.headers.copy()
    headers["user-agent"] = f"sigla/{__version__} {headers.get('user-agent', '')}".strip()
    url = request.url
    if url.path.endswith(_AZURE_V1_ROUTE):
        url = url.copy_with(path=url.path[: -len(_AZURE_V1_ROUTE)] + _AZURE_ROUTE)
    if wire.query:
        url = url.copy_merge_params(dict(wire.query))
    content = request.content
    if _is_chat(request):
        content = rewrite_body(content, wire)
        headers.pop("content-length", None)
    return httpx.Request(
        request.method, url, headers=headers, content=content, extensions=request.extensions
    )


def _needs_body(request: httpx.Request, response: httpx.Response) -> bool:
    if response.status_code >= 400:
        return True
    content_type = response.headers.get("content-type", "")
    return _is_chat(request) and response.status_code == 200 and "json" in content_type


def _finish(response: httpx.Response, request: httpx.Request) -> httpx.Response:
    """After the body was read: fill what some OpenAI-style servers leave out."""
    if response.status_code != 200:
        return response
    filled = fill_completion_body(response.content)
    if filled is None:
        return response
    headers = response.headers.copy()
    headers.pop("content-length", None)
    headers.pop("content-encoding", None)
    return httpx.Response(200, headers=headers, content=filled, request=request)


class _Shim(httpx.BaseTransport):
    def __init__(self, wire: Wire, verify: Any) -> None:
        self._wire = wire
        self._inner = httpx.HTTPTransport(verify=verify)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request = prepare(request, self._wire)
        response = self._inner.handle_request(request)
        if _needs_body(request, response):
            response.read()
            return _finish(response, request)
        return response

    def close(self) -> None:
        self._inner.close()


class _AsyncShim(httpx.AsyncBaseTransport):
    def __init__(self, wire: Wire, verify: Any) -> None:
        self._wire = wire
        self._inner = httpx.AsyncHTTPTransport(verify=verify)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request = prepare(request, self._wire)
        response = await self._inner.handle_async_request(request)
        if _needs_body(request, response):
            await response.aread()
            return _finish(response, request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


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
            client = httpx.Client(transport=_Shim(wire, _ssl()), follow_redirects=True)
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
        client = httpx.AsyncClient(transport=_AsyncShim(wire, _ssl()), follow_redirects=True)
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
