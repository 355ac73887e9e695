"""The server's ASGI layer: metrics (Prometheus, via ``prometheus-client``), the access
log, and the request-body limit.

:class:`Metrics` holds one app's collectors in its own registry (two apps in one process,
as in tests, never mix counts). Under ``sigla serve --workers N`` the workers write to
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums them (prometheus-client's multiprocess
mode). :class:`Observed` is a plain ASGI middleware: every request is counted by route
template (never the raw path: labels stay bounded), timed until its last byte, and logged
in one line without any credential or prompt. :class:`BodyLimit` answers 413 for a body
over the limit, in the server's JSON error shape. (FastAPI's own ``max_body_size`` answers a
too-large ``Content-Length`` in plain text, past the app's exception handlers.)
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .._usage import UsageTotals

__all__ = ["BodyLimit", "Metrics", "Observed"]

logger = logging.getLogger("sigla.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_UPSTREAM = {  # UsageTotals field -> (metric name, help)
    "requests": (
        "sigla_upstream_requests",
        "Requests sent to the model service, retries included.",
    ),
    "retries": ("sigla_upstream_retries", "Retries among the upstream requests."),
    "rate_limited": ("sigla_upstream_rate_limited", "429 answers of the model service."),
    "prompt_tokens": ("sigla_upstream_prompt_tokens", "Prompt tokens the service reported."),
    "completion_tokens": (
        "sigla_upstream_completion_tokens",
        "Completion tokens the service reported.",
    ),
    "cached": ("sigla_cache_hits", "Answers served from the response cache."),
}


class Metrics:
    """The collectors of one app."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "sigla_server_requests",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "sigla_server_request_duration_seconds",
            "Time from a request's arrival to its last byte, by route template.",
            ("route",),
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "sigla_server_requests_in_flight",
            "Requests being answered (streams until their last byte).",
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.upstream = {
            field: Counter(name, text, ("model",), registry=self.registry)
            for field, (name, text) in _UPSTREAM.items()
        }
        self._published: dict[str, UsageTotals] = {}
        self._lock = threading.Lock()

    def publish(self, model: str, usage: UsageTotals) -> None:
        """Add what a client spent since the last publish (exact under concurrency: the
        difference is taken under one lock from a consistent snapshot)."""
        with self._lock:
            now = usage.snapshot()
            before = self._published.get(model, UsageTotals())
            self._published[model] = now
        spent = now - before
        for field, counter in self.upstream.items():
            value = getattr(spent, field)
            if value > 0:
                counter.labels(model=model).inc(value)

    def exposition(self) -> tuple[bytes, str]:
        """The text format of every collector (summed over the workers in multiprocess mode)."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = self.registry
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST


# Any token is a method to the HTTP parser: a label per method sent would let anyone, before
# authentication, grow /metrics (and memory) without bound.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "(unmatched)"


class Observed:
    """ASGI middleware: metrics and one log line per HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, *, log_prompts: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.log_prompts = log_prompts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app fails before it answers
        state = scope.setdefault("state", {})

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_flight = self.metrics.in_flight
        in_flight.inc()
        try:
            await self.app(scope, receive, sending)
        finally:
            in_flight.dec()
            elapsed = time.perf_counter() - started
            route = _route_of(scope)
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self.metrics.requests.labels(route=route, method=method, status=status).inc()
            self.metrics.latency.labels(route=route).observe(elapsed)
            model = state.get("model")
            prompt = state.get("prompt") if self.log_prompts else None
            logger.info(
                "%s %s %d %.1f ms%s%s",
                method,
                route,
                status,
                elapsed * 1000,
                f" model={model}" if model else "",
                f" prompt={prompt!r}" if prompt is not None else "",
                extra={"sigla_route": route, "sigla_status": status, "sigla_model": model},
            )


def _too_large(limit: int) -> Exception:
    from starlette.exceptions import HTTPException

    return HTTPException(
        413, f"The request body is larger than this server accepts ({limit} bytes)."
    )


class BodyLimit:
    """ASGI middleware: at most ``limit`` bytes of request body. A ``Content-Length`` over
    it is refused before a byte is read; a chunked body is cut as it crosses the limit.
    Either way the refusal is an HTTP 413 that the app's handlers answer in the route's
    error shape, and memory stays bounded."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            if declared is not None and declared > self.limit:
                raise _too_large(self.limit)  # before a byte of it is read
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _too_large(self.limit)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
