"""The only module that imports ``mistralai`` (lazily): the compatibility seam.

It hides what differs between mistralai 1.x, 2.x and 3.x (where ``Mistral`` lives, which
HTTP library it uses) by handing the SDK HTTP clients of our own, built on ``httpx``:

- one sync client per process and one async client per event loop, per wire profile, so a
  ``GitHubLLM`` costs no SSL context and all of them share connection pools;
- a transport shim on those clients that fixes the wire body the SDK cannot fix itself
  (``random_seed`` → ``seed``, no ``"prefix": false``, ``stream_options``) and the
  User-Agent;
- streams read straight from the SDK's open HTTP response (``EventStream.response``) and
  parsed as plain JSON, because the SDK rejects GitHub's first chunk (it has no ``model``)
  and would return a truncated stream as if complete.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from .errors import MissingDependencyError

if TYPE_CHECKING:
    import httpx

__all__ = ["Wire", "Backend", "sdk_version"]

_INSTALL_HINT = 'pip install "sigla[llm]"'


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is not installed, and calling a model needs it: {_INSTALL_HINT}"
        ) from exc


def _mistral_class() -> type:
    """``Mistral`` from 2.x/3.x (``mistralai.client``) or 1.x (top level).

    In 1.x ``mistralai.client`` exists but holds a legacy stub, so the *name* is what we try.
    """
    try:
        from mistralai.client import Mistral  # type: ignore[attr-defined]
    except ImportError:
        try:
            from mistralai import Mistral  # type: ignore[attr-defined,no-redef]
        except ImportError as exc:
            raise MissingDependencyError(
                "mistralai is not installed (or too old: sigla needs 1.x or newer): "
                + _INSTALL_HINT
            ) from exc
    return Mistral


def _azure_client(base: str, api_key: str, client: Any, aclient: Any) -> Any:
    """mistralai's own Azure client, whose constructor and route differ by major version.

    2.x/3.x: ``MistralAzure(api_key=, server_url=base)`` → ``{base}/models/chat/completions``.
    1.x: ``mistralai_azure.MistralAzure(azure_endpoint=)`` appends ``/v1``; it gets
    ``{base}/models`` and the transport shim drops the ``/v1`` (see ``_rebuild``).
    """
    try:
        from mistralai.azure.client import MistralAzure  # type: ignore[import-not-found]
    except ImportError:
        try:
            from mistralai_azure import MistralAzure  # type: ignore[import-not-found,no-redef]
        except ImportError as exc:
            raise MissingDependencyError(
                f"mistralai's Azure client is not installed: {_INSTALL_HINT}"
            ) from exc
        return MistralAzure(
            azure_api_key=api_key,
            azure_endpoint=f"{base}/models",
            client=client,
            async_client=aclient,
        )
    return MistralAzure(api_key=api_key, server_url=base, client=client, async_client=aclient)


def sdk_version() -> str | None:
    """The installed mistralai version (2.x/3.x have no ``__version__``), or None."""
    try:
        return version("mistralai")
    except PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Wire:
    """How the request body must look on the wire for one family of services."""

    seed_field: str = "seed"
    stream_usage: bool = True  # ask OpenAI-style servers for usage on streams
    query: tuple[tuple[str, str], ...] = ()  # e.g. Azure's api-version


def rewrite_body(body: bytes, wire: Wire) -> bytes:
    """The SDK's JSON body, fixed for the service (pure, so it is tested directly)."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict):
        return body
    if wire.seed_field != "random_seed" and "random_seed" in data:
        data[wire.seed_field] = data.pop("random_seed")
    for message in data.get("messages") or ():
        if isinstance(message, dict) and message.get("prefix") is False:
            del message["prefix"]
    if wire.stream_usage and data.get("stream"):
        data.setdefault("stream_options", {"include_usage": True})
    return json.dumps(data, separators=(",", ":")).encode()


def _rebuild(request: httpx.Request, wire: Wire) -> httpx.Request:
    import httpx

    from . import __version__

    headers = request.headers.copy()
    headers["user-agent"] = f"sigla/{__version__} {headers.get('user-agent', '')}".strip()
    url = request.url
    if url.path.endswith(_AZURE_V1_ROUTE):
        # mistralai 1.x's Azure client posts {endpoint}/v1/chat/completions; Foundry's
        # model-inference route, which 2.x/3.x use, has no /v1.
        url = url.copy_with(path=url.path[: -len(_AZURE_V1_ROUTE)] + "/models/chat/completions")
    if wire.query:
        url = url.copy_merge_params(dict(wire.query))
    if request.method != "POST" or not url.path.endswith("/chat/completions"):
        request.headers = headers
        request.url = url
        return request
    body = rewrite_body(request.content, wire)
    headers.pop("content-length", None)
    return httpx.Request(
        request.method, url, headers=headers, content=body, extensions=request.extensions
    )


_AZURE_V1_ROUTE = "/models/v1/chat/completions"


_lock = threading.Lock()
_ssl_context: Any = None
_sync_clients: dict[Wire, Any] = {}
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Wire, Any]] = (
    weakref.WeakKeyDictionary()
)


def _ssl() -> Any:
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = _require("httpx").create_ssl_context()
    return _ssl_context


def sync_client(wire: Wire) -> httpx.Client:
    """The process-wide sync client for ``wire`` (thread-safe; built once)."""
    with _lock:
        client = _sync_clients.get(wire)
        if client is None:
            httpx = _require("httpx")

            class Shim(httpx.BaseTransport):
                def __init__(self) -> None:
                    self.inner = httpx.HTTPTransport(verify=_ssl())

                def handle_request(self, request: httpx.Request) -> httpx.Response:
                    response = self.inner.handle_request(_rebuild(request, wire))
                    if response.status_code >= 400:
                        response.read()  # mistralai reads an error body of a stream unread
                    return response

                def close(self) -> None:
                    self.inner.close()

            client = _sync_clients[wire] = httpx.Client(transport=Shim(), follow_redirects=True)
        return client


def async_client(wire: Wire) -> httpx.AsyncClient:
    """The async client for ``wire`` on the running event loop (one per loop)."""
    loop = asyncio.get_running_loop()
    with _lock:
        per_loop = _async_clients.setdefault(loop, {})
        client = per_loop.get(wire)
        if client is None:
            httpx = _require("httpx")

            class Shim(httpx.AsyncBaseTransport):
                def __init__(self) -> None:
                    self.inner = httpx.AsyncHTTPTransport(verify=_ssl())

                async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                    response = await self.inner.handle_async_request(_rebuild(request, wire))
                    if response.status_code >= 400:
                        await response.aread()  # see the sync shim
                    return response

                async def aclose(self) -> None:
                    await self.inner.aclose()

            client = per_loop[wire] = httpx.AsyncClient(transport=Shim(), follow_redirects=True)
        return client


_idle_async: Any = None


def _unused_async_client() -> Any:
    """Handed to sync-only SDK objects so the SDK does not build (and pay for) its own."""
    global _idle_async
    if _idle_async is None:
        _idle_async = _require("httpx").AsyncClient(verify=_ssl())
    return _idle_async


class Backend:
    """One model endpoint as the SDK sees it: the calls ``GitHubLLM`` makes, sync and async."""

    def __init__(self, *, endpoint: str, api_key: str, wire: Wire, azure: bool = False) -> None:
        self._endpoint = endpoint
        self._azure = azure
        # Never None or "": mistralai would send $MISTRAL_API_KEY, or raise a raw error.
        self._api_key = api_key or "none"
        self._wire = wire
        self._sync: Any = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"Backend(endpoint={self._endpoint!r})"

    def _build(self, client: Any, aclient: Any) -> Any:
        if self._azure:
            return _azure_client(self._endpoint, self._api_key, client, aclient)
        mistral = _mistral_class()
        return mistral(
            api_key=self._api_key, server_url=self._endpoint, client=client, async_client=aclient
        )

    def sync_sdk(self) -> Any:
        if self._sync is None:
            self._sync = self._build(sync_client(self._wire), _unused_async_client())
        return self._sync

    def async_sdk(self) -> Any:
        loop = asyncio.get_running_loop()
        sdk = self._async.get(loop)
        if sdk is None:
            sdk = self._async[loop] = self._build(sync_client(self._wire), async_client(self._wire))
        return sdk

    # -- calls: each returns the SDK's answer; errors are translated by the caller

    def complete(self, call: dict[str, Any]) -> Any:
        return self.sync_sdk().chat.complete(**call)

    async def acomplete(self, call: dict[str, Any]) -> Any:
        return await self.async_sdk().chat.complete_async(**call)

    def stream_events(self, call: dict[str, Any]) -> Iterator[Any]:
        """SSE events of one streamed call; the response is closed when iteration stops."""
        EventSource = _require("httpx_sse").EventSource
        response = self.sync_sdk().chat.stream(**call).response
        try:
            yield from EventSource(response).iter_sse()
        finally:
            response.close()

    async def astream_events(self, call: dict[str, Any]) -> AsyncIterator[Any]:
        EventSource = _require("httpx_sse").EventSource
        stream = await self.async_sdk().chat.stream_async(**call)
        response = stream.response
        try:
            async for event in EventSource(response).aiter_sse():
                yield event
        finally:
            await response.aclose()
