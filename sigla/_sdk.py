"""The only module that imports ``mistralai`` (lazily): the compatibility seam.

It hides what differs between mistralai 1.x, 2.x and 3.x (where ``Mistral`` and the Azure
client live, their constructors) and hands the SDK our own HTTP clients (``_transport``).
Requests are built, sent and checked by the SDK; streams are read straight from the SDK's
open HTTP response (``EventStream.response``) and parsed as plain JSON, because the SDK
rejects GitHub's first chunk (it has no ``model``), returns a truncated stream as if
complete, and costs ~0.3 ms of pydantic per event.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ._core import Wire
from ._secret import Secret
from .errors import MissingDependencyError

__all__ = ["Backend", "sdk_version", "missing_packages"]

# What calling a model needs: (module to import, its name on PyPI, the version range).
# `pip install "sigla[llm]"` is no hint: on the public index "sigla" is another project.
_NEEDED = (
    ("mistralai", "mistralai", ">=1.12,<4"),
    ("httpx", "httpx", ">=0.27,<1"),
    ("httpcore", "httpcore", ">=1,<2"),
)


def missing_packages() -> list[str]:
    """The pip requirements of the ``llm`` extra that are not importable, all at once."""
    missing = []
    for module, name, spec in _NEEDED:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(f"{name}{spec}")
    return missing


def _missing_error(what: str) -> MissingDependencyError:
    needed = missing_packages() or [f"{name}{spec}" for _, name, spec in _NEEDED]
    quoted = " ".join(f'"{requirement}"' for requirement in needed)
    return MissingDependencyError(
        f"{what}: calling a model needs {', '.join(needed)}. Install them with "
        f'`pip install {quoted}`, or, from sigla\'s source tree, `pip install -e ".[llm]"`.'
    )


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise _missing_error(f"{module} is not installed") from None


def _mistral_class() -> type:
    """``Mistral`` from 2.x/3.x (``mistralai.client``) or 1.x (top level).

    In 1.x ``mistralai.client`` exists but holds a legacy stub, so the *name* is what we try.
    """
    try:
        from mistralai.client import Mistral  # type: ignore[attr-defined]
    except ImportError:
        try:
            from mistralai import Mistral  # type: ignore[attr-defined,no-redef]
        except ImportError:
            raise _missing_error("mistralai is not installed (or older than 1.x)") from None
    return Mistral


def _azure_client(base: str, api_key: Any, client: Any, aclient: Any) -> Any:
    """mistralai's own Azure client, whose constructor and route differ by major version.

    2.x/3.x: ``MistralAzure(api_key=, server_url=base)`` → ``{base}/models/chat/completions``.
    1.x: ``mistralai_azure.MistralAzure(azure_endpoint=)`` appends ``/v1``; it gets
    ``{base}/models`` and the transport shim drops the ``/v1`` (``_transport.prepare``).
    """
    try:
        from mistralai.azure.client import MistralAzure  # type: ignore[import-not-found]
    except ImportError:
        try:
            from mistralai_azure import MistralAzure  # type: ignore[import-not-found,no-redef]
        except ImportError:
            raise _missing_error("mistralai's Azure client is not installed") from None
        return MistralAzure(  # type: ignore[call-arg]  # 1.x's signature
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


class Backend:
    """One model endpoint as the SDK sees it: the calls ``GitHubLLM`` makes, sync and async.

    The SDK gets the key as a callable (every mistralai major version accepts one), so no
    SDK object holds it in clear.
    """

    def __init__(
        self, *, endpoint: str, api_key: Secret | None, wire: Wire, azure: bool = False
    ) -> None:
        self._endpoint = endpoint
        self._azure = azure
        # Never None or "": mistralai would send $MISTRAL_API_KEY, or raise a raw error.
        self._api_key = api_key if api_key is not None and len(api_key) else Secret("none")
        self._wire = wire
        self._sync: Any = None
        self._async: Any = None  # a _transport.LoopLocal of SDK objects, made on first use

    def __repr__(self) -> str:
        return f"Backend(endpoint={self._endpoint!r})"

    def _transport(self) -> Any:
        _require("httpx")  # a clear MissingDependencyError rather than a bare ImportError
        _require("httpcore")
        from . import _transport

        return _transport

    def _build(self, client: Any, aclient: Any) -> Any:
        if self._azure:
            return _azure_client(self._endpoint, self._api_key.reveal, client, aclient)
        mistral = _mistral_class()
        return mistral(
            api_key=self._api_key.reveal,
            server_url=self._endpoint,
            client=client,
            async_client=aclient,
        )

    def sync_sdk(self) -> Any:
        if self._sync is None:
            transport = self._transport()
            self._sync = self._build(
                transport.sync_client(self._wire), transport.idle_async_client()
            )
        return self._sync

    async def async_sdk(self) -> Any:
        """The SDK object for the running event loop: one async client serves one loop."""
        transport = self._transport()
        if self._async is None:
            self._async = transport.LoopLocal()
        sdk = self._async.get()
        if sdk is None:
            aclient = await transport.async_client(self._wire)
            sdk = self._async.set(self._build(transport.sync_client(self._wire), aclient))
        return sdk

    def get(self, url: str, *, token: Secret | None, timeout: float) -> Any:
        """A plain GET through the shared client (the model catalog).

        The header is built here, below the error boundary, whose errors keep no frame of
        this one: a local holding ``Bearer <token>`` must not be reachable from them.
        """
        client = self._transport().sync_client(self._wire)
        auth = {"Authorization": f"Bearer {token.reveal()}"} if token is not None else {}
        return client.get(url, headers=auth, timeout=timeout)

    # -- calls: each returns the SDK's answer; errors are translated by the caller

    def complete(self, call: dict[str, Any]) -> Any:
        return self.sync_sdk().chat.complete(**call)

    async def acomplete(self, call: dict[str, Any]) -> Any:
        return await (await self.async_sdk()).chat.complete_async(**call)

    def stream_events(self, call: dict[str, Any], deadline: float | None = None) -> Iterator[Any]:
        """SSE events of one streamed call; the response is closed when iteration stops.

        Each event must come within the call's timeout of the one before (and all before
        ``deadline``, in ``time.monotonic()`` time), and none may be larger than
        ``max_response_bytes``.
        """
        transport = self._transport()
        response = self.sync_sdk().chat.stream(**call).response
        try:
            yield from transport.iter_events(
                response, call["timeout_ms"] / 1000, self._wire.max_response_bytes, deadline
            )
        finally:
            response.close()

    async def astream_events(
        self, call: dict[str, Any], deadline: float | None = None
    ) -> AsyncIterator[Any]:
        transport = self._transport()
        stream = await (await self.async_sdk()).chat.stream_async(**call)
        response = stream.response
        events = transport.aiter_events(
            response, call["timeout_ms"] / 1000, self._wire.max_response_bytes, deadline
        )
        try:
            async for event in events:
                yield event
        finally:
            try:
                if not events.ag_running:  # already being closed by the loop's shutdown
                    await events.aclose()
            finally:
                await response.aclose()
