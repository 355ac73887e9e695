"""A real uvicorn serving a sigla app on 127.0.0.1, in a thread of the test process.

Not a test module. ``with serving(app) as url:`` starts it on a free port, waits until it
accepts connections, and stops it (graceful shutdown, lifespan included) afterwards;
``server_config`` is the settings the server tests put it in front of the double with.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from conftest import TOKEN

from sigla.llm import RateLimits
from sigla.server import ServerConfig


def no_sleep(seconds: float) -> None:
    pass


async def no_async_sleep(seconds: float) -> None:
    pass


def server_config(
    endpoint: str,
    *,
    models: tuple[str, ...],
    client_options: dict[str, Any] | None = None,
    **given: Any,
) -> ServerConfig:
    """A server in front of the double at ``endpoint``: the tests' token, no client-side
    limits and no real waits between retries unless ``client_options`` say otherwise."""
    options = {
        "endpoint": endpoint,
        "token": TOKEN,
        "limits": RateLimits(),
        "sleep": no_sleep,
        "async_sleep": no_async_sleep,
        **(client_options or {}),
    }
    return ServerConfig(models=models, client_options=options, **given)


@contextmanager
def serving(app: Any, *, startup_timeout: float = 20.0) -> Iterator[str]:
    """Run ``app`` on a free loopback port; yield its base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn stopped before it started")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("uvicorn did not start in time")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def parse_sse(text: str) -> list[tuple[str, str]]:
    """An SSE body as (event, data) pairs; ``event`` is ``"message"`` when not named.
    Comments (``: ping``) are skipped; multi-line data joined with newlines, per the spec."""
    events: list[tuple[str, str]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if data:
            events.append((name, "\n".join(data)))
    return events
