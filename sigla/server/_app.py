"""The FastAPI app of :mod:`sigla.server`: its routes, access control and error handlers."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from .._constants import DEFAULT_TEMPERATURE
from ..errors import ConfigurationError, LLMError
from ._asgi import BodyLimit, Metrics, Observed
from ._config import ApiKeys, ClientPool, ServerConfig
from ._playground import add_playground
from ._streams import CallerGone, Primed, openai_events, unless_caller_leaves
from ._wire import (
    ChatCompletionRequest,
    Failure,
    LLMRequest,
    failure_of,
    llm_answer,
    openai_completion,
)

__all__ = ["ApiKeys", "ServerConfig", "create_app"]

logger = logging.getLogger("sigla.server")


_BEARER = HTTPBearer(auto_error=False, description="One of the server's API keys.")
_QueryPrompt = Annotated[
    str | None, Query(description="The seed's form: the prompt in the query string.")
]
_QueryTemperature = Annotated[float | None, Query(description="The seed's form: 0 to 2.")]
_Body = Annotated[LLMRequest | None, Body()]


class Refusal(Exception):
    """The server's own refusal of a request (auth, size), answered as ``failure``."""

    def __init__(self, failure: Failure, headers: dict[str, str] | None = None) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.headers = headers or {}


def _openai_dialect(request: Request) -> bool:
    return request.url.path.startswith("/v1/")


def _error_response(
    request: Request, failure: Failure, headers: dict[str, str] | None = None, param: Any = None
) -> JSONResponse:
    if _openai_dialect(request):
        if failure.status == 422:  # OpenAI answers invalid input with 400
            failure = Failure(400, failure.type, failure.message, failure.retry_after)
        body = failure.openai_json(param)
    else:
        body = failure.sigla_json()
    return JSONResponse(body, failure.status, headers={**failure.headers(), **(headers or {})})


def _validation_failure(exc: RequestValidationError) -> tuple[Failure, str | None]:
    first = exc.errors()[0] if exc.errors() else {}
    where = [str(part) for part in first.get("loc", ()) if part != "body"]
    field = ".".join(where) or None
    message = str(first.get("msg", "invalid request"))
    return Failure(422, "invalid_request", f"{field}: {message}" if field else message), field


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LLMError)
    async def on_llm_error(request: Request, exc: LLMError) -> JSONResponse:
        return _error_response(request, failure_of(exc))

    @app.exception_handler(CallerGone)
    async def on_gone(request: Request, exc: CallerGone) -> Response:
        return Response(status_code=499)  # nginx's "client closed request": nobody reads it

    @app.exception_handler(Refusal)
    async def on_refusal(request: Request, exc: Refusal) -> JSONResponse:
        return _error_response(request, exc.failure, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        failure, field = _validation_failure(exc)
        if _openai_dialect(request):
            return _error_response(request, failure, param=field)
        detail = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": e.get("type")}
            for e in exc.errors()
        ]
        return JSONResponse({**failure.sigla_json(), "detail": detail}, failure.status)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
        message = str(exc.detail)
        failure = Failure(exc.status_code, kinds.get(exc.status_code, "http_error"), message)
        return _error_response(request, failure, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unexpected failure in %s", request.url.path, exc_info=exc)
        return _error_response(request, failure_of(exc))


class _Server:
    """What the routes share: settings, clients, metrics, the catalog cache."""

    def __init__(self, config: ServerConfig, pool: ClientPool) -> None:
        self.config = config
        self.pool = pool
        self.metrics = Metrics()
        self._catalog: tuple[float, list[dict[str, Any]] | None] | None = None
        self._catalog_lock = anyio.Lock()

    async def authorize(
        self,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
    ) -> None:
        keys = self.config.api_keys
        if not keys:
            return
        if credentials is None or not keys.accepts(credentials.credentials):
            raise Refusal(
                Failure(
                    401,
                    "unauthorized",
                    "Missing or unknown API key: send Authorization: Bearer <key> with a key "
                    "this server's operator gave you.",
                ),
                {"WWW-Authenticate": "Bearer"},
            )

    async def client(self, request: Request, asked: str | None, prompt: str | None) -> Any:
        """The shared client of the model a request asks for (404 if not served)."""
        model = self.pool.choose(asked)
        request.state.model = model
        request.state.prompt = prompt
        existing = self.pool.existing(model)
        if existing is not None:
            return existing
        # Building may run `gh auth token` or open a store: not on the event loop.
        return await anyio.to_thread.run_sync(self.pool.client, model)

    def check_size(self, chars: int) -> None:
        if chars > self.config.max_prompt_chars:
            raise Refusal(
                Failure(
                    413,
                    "prompt_too_large",
                    f"The prompt has {chars} characters; this server accepts at most "
                    f"{self.config.max_prompt_chars}. Shorten it, or split the work.",
                )
            )

    async def catalog(self) -> list[dict[str, Any]] | None:
        """The service's catalog, kept ``catalog_ttl`` seconds; None if it has none."""
        async with self._catalog_lock:
            now = time.monotonic()
            if self._catalog is not None and now - self._catalog[0] < self.config.catalog_ttl:
                return self._catalog[1]
            llm = await anyio.to_thread.run_sync(self.pool.client, self.pool.served[0])
            try:
                models = await anyio.to_thread.run_sync(llm.models)
            except ConfigurationError:  # Azure AI Foundry: the models are deployments
                entries = None
            else:
                entries = [asdict(m) for m in models]
            self._catalog = (now, entries)
            return entries


def _llm_request(
    prompt: str | None, temperature: float | None, body: LLMRequest | None
) -> LLMRequest:
    """The seed's query form or the JSON body (not both), validated as one model."""
    if body is not None:
        if prompt is not None or temperature is not None:
            raise Refusal(
                Failure(
                    422,
                    "invalid_request",
                    "Give the request either as query parameters or as a JSON body, not both.",
                )
            )
        return body
    try:
        return LLMRequest(prompt=prompt, temperature=temperature)
    except ValidationError as exc:  # the same 422 as a body's
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_input=False)]
        ) from None


def create_app(config: ServerConfig | None = None, *, factory: Any = None) -> FastAPI:
    """The FastAPI app of ``sigla serve``. ``config`` defaults to the environment's
    (:meth:`ServerConfig.from_env`); ``factory`` builds the clients (``GitHubLLM``)."""
    config = ServerConfig.from_env() if config is None else config
    pool = ClientPool(config, factory)
    server = _Server(config, pool)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        pool.close()

    app = FastAPI(
        title="sigla",
        version=__version__,
        description="A team server for large language models: sigla's API and an "
        "OpenAI-compatible /v1.",
        lifespan=lifespan,
        # With keys, nothing but /healthz and the page is open: the schema moves behind the
        # key (below) and the interactive docs, which fetch it without one, are off.
        openapi_url=None if config.api_keys else "/openapi.json",
        docs_url=None if config.api_keys else "/docs",
        redoc_url=None if config.api_keys else "/redoc",
    )
    app.state.sigla = server
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    app.add_middleware(Observed, metrics=server.metrics, log_prompts=config.log_prompts)

    open_routes = APIRouter(tags=["health"])
    api = APIRouter(dependencies=[Depends(server.authorize)])
    v1 = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(server.authorize)])

    @open_routes.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers. Calls nothing upstream, shows nothing of it."""
        return {"status": "ok"}

    @api.get("/readyz", tags=["health"])
    async def readyz() -> dict[str, Any]:
        """Ready: settings resolve, the credential is there, the shared limiter's store
        answers. 503 otherwise, saying what is missing."""
        await anyio.to_thread.run_sync(pool.client, pool.served[0])
        limiter = await anyio.to_thread.run_sync(_ping_store, config)
        return {"status": "ready", "models": list(pool.served), "limiter": limiter}

    @api.get("/models", tags=["models"])
    async def models() -> dict[str, Any]:
        """The models this server serves (the first is the default) and the service's
        catalog (``null`` where the service has none), cached ``catalog_ttl`` seconds."""
        return {
            "served": list(pool.served),
            "default": pool.served[0],
            "defaults": {"temperature": DEFAULT_TEMPERATURE, "max_tokens": None},
            "catalog": await server.catalog(),
        }

    @api.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus text format: requests, latency, in-flight, upstream 429s, retries, tokens."""
        for model in pool.served:
            llm = pool.existing(model)
            if llm is not None:
                server.metrics.publish(model, llm.usage)
        content, kind = server.metrics.exposition()
        return Response(content, media_type=kind)

    @api.post("/llm", tags=["llm"])
    async def llm(
        request: Request,
        prompt: _QueryPrompt = None,
        temperature: _QueryTemperature = None,
        body: _Body = None,
    ) -> dict[str, Any]:
        """One answer: ``{"answer", "model", "usage", "finish_reason"}``."""
        req = _llm_request(prompt, temperature, body)
        server.check_size(req.chars())
        client = await server.client(request, req.model, req.prompt)
        model = request.state.model
        try:
            completion = await unless_caller_leaves(
                request.receive,
                lambda: client.acomplete(
                    None if req.messages else req.prompt,
                    system=req.system,
                    messages=req.sigla_messages(),
                    temperature=req.temperature,
                    max_tokens=req.max_tokens,
                ),
            )
        finally:
            server.metrics.publish(model, client.usage)
        return llm_answer(completion, model)

    async def open_llm_stream(
        request: Request,
        prompt: _QueryPrompt = None,
        temperature: _QueryTemperature = None,
        body: _Body = None,
    ) -> Primed:
        req = _llm_request(prompt, temperature, body)
        server.check_size(req.chars())
        client = await server.client(request, req.model, req.prompt)
        return await unless_caller_leaves(
            request.receive,
            lambda: Primed.open(
                client,
                request.state.model,
                prompt=None if req.messages else req.prompt,
                system=req.system,
                messages=req.sigla_messages(),
                temperature=req.temperature,
                max_tokens=req.max_tokens,
            ),
        )

    @api.post("/llm/stream", tags=["llm"], response_class=EventSourceResponse)
    async def llm_stream(
        # Not Annotated[...]: the dependency is local, and annotations are strings here.
        primed: Primed = Depends(open_llm_stream),  # noqa: B008
    ) -> AsyncIterator[ServerSentEvent]:
        """Server-sent events: ``data: {"delta": text}`` per piece, then ``event: done``
        with ``usage``, ``finish_reason`` and ``model``, or ``event: error`` with the
        error JSON (never a silently short stream)."""
        async with aclosing(primed.outcome(server.metrics.publish)) as outcome:
            async for kind, value in outcome:
                if kind == "delta":
                    yield ServerSentEvent(data={"delta": value})
                elif kind == "done":
                    yield ServerSentEvent(event="done", data={**value, "model": primed.model})
                else:
                    yield ServerSentEvent(
                        event="error", data={**value.sigla_json(), "status": value.status}
                    )

    @v1.post("/chat/completions", response_model=None)
    async def chat_completions(request: Request, body: ChatCompletionRequest) -> Any:
        """OpenAI's chat completions (``stream: true`` included)."""
        server.check_size(body.chars())
        client = await server.client(request, body.model, body.messages[-1].text())
        model = request.state.model
        if not body.stream:
            try:
                completion = await unless_caller_leaves(
                    request.receive,
                    lambda: client.acomplete(messages=body.sigla_messages(), **body.options()),
                )
            finally:
                server.metrics.publish(model, client.usage)
            return openai_completion(completion, model)
        primed = await unless_caller_leaves(
            request.receive,
            lambda: Primed.open(client, model, messages=body.sigla_messages(), **body.options()),
        )
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return EventSourceResponse(
            openai_events(primed, usage, server.metrics.publish),
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @v1.get("/models")
    async def v1_models() -> dict[str, Any]:
        """The served models in OpenAI's list shape."""
        return {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "sigla"} for m in pool.served
            ],
        }

    if config.api_keys:

        @api.get("/openapi.json", include_in_schema=False)
        async def openapi() -> dict[str, Any]:
            return app.openapi()

    add_playground(app, api, server)
    app.include_router(open_routes)
    app.include_router(api)
    app.include_router(v1)
    return app


def _ping_store(config: ServerConfig) -> str:
    """The shared limiter's store (masked), pinged; ``"this process"`` without one."""
    from .._shared_limits import open_store, resolve_limiter

    target = resolve_limiter(config.client_options.get("limiter"))
    if target is None:
        return "this process"
    open_store(target).ping()  # the process's store, which the clients use too: kept open
    return target.shown
