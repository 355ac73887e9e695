"""The only module that imports ``mistralai`` (lazily): the compatibility seam.

It hides what differs between mistralai 1.x, 2.x and 3.x (where ``Mistral`` and the Azure
client live, their constructors) and hands the SDK our own HTTP clients (``_transport``).
Requests are built, sent and checked by the SDK; streams are read straight from the SDK's
open HTTP response (``EventStream.response``) and parsed as plain JSON, because the SDK
rejects GitHub's first chunk (it has no ``model``), returns a truncated stream as if
complete, and costs ~0.3 ms of pydantic per event.

Messages reach the SDK as its own message objects, and the answers of ``complete`` are
validated here by the SDK's own answer class (:class:`_Models`, and the transport's
:class:`~sigla._transport.Claim`): either way the SDK would build a pydantic model class on
every call first, ~0.5 ms each, together about a fifth of a call on loopback.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
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


_MESSAGE_CLASSES = {
    "system": "SystemMessage",
    "user": "UserMessage",
    "assistant": "AssistantMessage",
    "tool": "ToolMessage",
}


class _Models:
    """The SDK's own model classes that sigla hands it (messages) or takes from it (answers).

    They live next to the client class: ``mistralai.models`` (1.x),
    ``mistralai.client.models`` (2.x/3.x), and the Azure client's own package. Handed
    dicts, and for every JSON answer, each mistralai version goes through
    ``utils.unmarshal``, which builds a pydantic model class on every call
    (``pydantic.create_model``, ~0.5 ms each, two of the eight or so a call pays); handed
    its own objects, it takes them as they are, and an answer validated here by its class
    is the same object the SDK would have made. An SDK laid out otherwise is handed dicts
    and parses its answers, as before.
    """

    def __init__(self, sdk_class: type) -> None:
        self.messages: dict[str, Any] = {}
        self.answer: Any = None
        package = sdk_class.__module__.rpartition(".")[0]
        try:
            models = importlib.import_module(f"{package}.models")
        except (ImportError, TypeError, ValueError):  # no package, or no models in it
            return
        classes = {role: getattr(models, cls, None) for role, cls in _MESSAGE_CLASSES.items()}
        if all(classes.values()):
            self.messages = classes
        self.answer = getattr(models, "ChatCompletionResponse", None)

    def typed(self, messages: Sequence[Mapping[str, Any]]) -> Sequence[Any]:
        """Message dicts as the SDK's message objects, each validated by its class as the SDK
        would. When one fails, the SDK gets the dicts and validates them itself, so that its
        error names the message's place in the list (``messages.1.tool_call_id``).

        An assistant message whose ``prefix`` is not set gets ``prefix=None``, which the SDK
        leaves out of the body, instead of the ``"prefix": false`` that services refuse.
        """
        typed = []
        for message in messages:
            role = message.get("role") if isinstance(message, Mapping) else None
            cls = self.messages.get(role) if isinstance(role, str) else None
            if cls is None:
                return messages  # not ours to judge: the SDK validates what it gets
            if role == "assistant" and not message.get("prefix"):
                message = {**message, "prefix": None}
            try:
                typed.append(cls.model_validate(message))
            except Exception:  # pydantic's ValidationError: the SDK says where, below
                return messages
        return typed

    def validate_answer(self, body: bytes) -> Any:
        """A chat answer's bytes as the SDK's ``ChatCompletionResponse``, validated as the SDK
        validates it (python-mode ``model_validate`` of the parsed JSON); raises if it fails."""
        return self.answer.model_validate(json.loads(body))


def _light(response: Any) -> Any:
    """An open stream's response, without the SDK's copy of the request body.

    httpx keeps on each response the request it answers, body included, for as long as the
    response lives: a whole prompt per open stream. The transport sent a copy of its own
    (rewritten), so this one is dead weight; its method and URL are all a message needs.
    """
    request = response.request
    response.request = type(request)(request.method, request.url)
    return response


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
        self._models: _Models | None = None

    def __repr__(self) -> str:
        return f"Backend(endpoint={self._endpoint!r})"

    def _transport(self) -> Any:
        _require("httpx")  # a clear MissingDependencyError rather than a bare ImportError
        _require("httpcore")
        from . import _transport

        return _transport

    def _build(self, client: Any, aclient: Any) -> Any:
        if self._azure:
            sdk = _azure_client(self._endpoint, self._api_key.reveal, client, aclient)
        else:
            sdk = _mistral_class()(
                api_key=self._api_key.reveal,
                server_url=self._endpoint,
                client=client,
                async_client=aclient,
            )
        if self._models is None:
            self._models = _Models(type(sdk))
        return sdk

    def _typed(self, call: dict[str, Any]) -> dict[str, Any]:
        """``call`` with its messages as the SDK's objects (the caller's dict is left alone)."""
        assert self._models is not None  # set with the first SDK object
        return {**call, "messages": self._models.typed(call["messages"])}

    def _claim(self, transport: Any) -> Any:
        """A claim on the next chat answer (``_transport.Claim``), or None if the SDK's answer
        class is unknown."""
        assert self._models is not None
        if self._models.answer is None:
            return None
        return transport.Claim(self._models.validate_answer)

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

    def complete(self, call: dict[str, Any], gate: Any = None) -> Any:
        """The SDK's ``ChatCompletionResponse``, validated by the transport's claim when it
        could be: the SDK then raises on the answer it was not to parse, and that is dropped.

        ``gate`` (a ``_transport.Gate``) is passed right before the request goes out."""
        transport = self._transport()
        sdk = self.sync_sdk()
        claim = self._claim(transport)
        gating = transport.gated(gate)
        try:
            if claim is None:
                return sdk.chat.complete(**self._typed(call))
            token = claim.held()
            try:
                return sdk.chat.complete(**self._typed(call))
            except Exception:
                if claim.answer is None:
                    raise
            finally:
                transport.release(token)
        finally:
            transport.ungated(gating)
        return claim.answer

    async def acomplete(self, call: dict[str, Any], gate: Any = None) -> Any:
        transport = self._transport()
        sdk = await self.async_sdk()
        claim = self._claim(transport)
        gating = transport.gated(gate)
        try:
            if claim is None:
                return await sdk.chat.complete_async(**self._typed(call))
            token = claim.held()
            try:
                return await sdk.chat.complete_async(**self._typed(call))
            except Exception:
                if claim.answer is None:
                    raise
            finally:
                transport.release(token)
        finally:
            transport.ungated(gating)
        return claim.answer

    def stream_events(
        self, call: dict[str, Any], deadline: float | None = None, gate: Any = None
    ) -> Iterator[Any]:
        """SSE events of one streamed call; the response is closed when iteration stops.

        Each event must come within the call's timeout of the one before (and all before
        ``deadline``, in ``time.monotonic()`` time), and none may be larger than
        ``max_response_bytes``.
        """
        transport = self._transport()
        sdk = self.sync_sdk()
        gating = transport.gated(gate)
        try:
            response = _light(sdk.chat.stream(**self._typed(call)).response)
        finally:
            transport.ungated(gating)
        try:
            yield from transport.iter_events(
                response, call["timeout_ms"] / 1000, self._wire.max_response_bytes, deadline
            )
        finally:
            response.close()

    async def astream_events(
        self, call: dict[str, Any], deadline: float | None = None, gate: Any = None
    ) -> AsyncIterator[Any]:
        transport = self._transport()
        sdk = await self.async_sdk()
        gating = transport.gated(gate)
        try:
            stream = await sdk.chat.stream_async(**self._typed(call))
        finally:
            transport.ungated(gating)
        response = _light(stream.response)
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
