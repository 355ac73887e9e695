"""``sigla serve``: run the team server (:mod:`sigla.server`) with uvicorn.

The options become the environment of the app (``SIGLA_SERVER_*``, ``SIGLA_LLM_*``), which
:func:`sigla.server.create_app` reads in each worker: one way in, whether uvicorn runs one
process or several. With ``--workers N`` (N > 1) the workers share one rate-limit budget (an
SQLite limiter file in a temporary folder unless ``SIGLA_LIMITER_URL``/``--limiter`` names a
store) and ``/metrics`` sums them (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import click

__all__ = ["add_serve_command", "is_loopback"]

Command = Callable[..., Any]


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` only accepts connections from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's own loggers plus ``sigla.server`` (one line per request) on stderr.
    uvicorn's access log stays off: it prints query strings, where the seed's form puts
    the prompt."""
    handler = {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"}
        },
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "sigla": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
    }


def _environment(options: Mapping[str, Any]) -> dict[str, str]:
    """The variables that carry the options to the app (``None``: not given): the names
    :meth:`~sigla.server.ServerConfig.from_env` and ``GitHubLLM`` read."""
    from ._limit_store import LIMITER_ENV
    from .server import _config as server

    names = {
        "models": server.MODELS_ENV,
        **server.NUMBER_ENVS,
        "provider": "SIGLA_LLM_PROVIDER",
        "endpoint": "SIGLA_LLM_ENDPOINT",
        "limiter": LIMITER_ENV,
        "prompts": server.PROMPTS_ENV,
    }
    env = {var: str(options[name]) for name, var in names.items() if options.get(name) is not None}
    if options.get("log_prompts"):
        env[server.LOG_PROMPTS_ENV] = "1"
    limits = {
        "requests_per_minute": options.get("rpm"),
        "requests_per_day": options.get("rpd"),
        "tokens_per_minute": options.get("tpm"),
        "concurrent_requests": options.get("concurrency"),
    }
    if any(v is not None for v in limits.values()):
        env[server.LIMITS_ENV] = ",".join(f"{k}={v}" for k, v in limits.items() if v)
    return env


def add_serve_command(group: click.Group, command: Callable[[Command], Command]) -> None:
    """Add ``serve`` to ``group``, wrapped by ``command``."""

    @group.command(name="serve")
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
    @click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
    @click.option(
        "--workers",
        default=1,
        show_default=True,
        type=click.IntRange(min=1),
        help="Processes; more than one share one rate-limit budget through a store.",
    )
    @click.option(
        "--allow-unauthenticated",
        is_flag=True,
        help="Bind a non-loopback address without SIGLA_API_KEY(S): anyone who reaches it "
        "spends the credential owner's quota.",
    )
    @click.option(
        "--models",
        help="Comma-separated models callers may use; the first is "
        "the default (default: the configured model). Env: SIGLA_SERVER_MODELS.",
    )
    @click.option("-p", "--provider", help="Provider of the model service (SIGLA_LLM_PROVIDER).")
    @click.option("-e", "--endpoint", help="Endpoint of the model service (SIGLA_LLM_ENDPOINT).")
    @click.option("--limiter", help="Shared rate-limit store URL (SIGLA_LIMITER_URL).")
    @click.option("--max-body-bytes", type=click.IntRange(min=1), help="Largest request body.")
    @click.option("--max-prompt-chars", type=click.IntRange(min=1), help="Longest prompt.")
    @click.option(
        "--max-retry-wait",
        type=click.FloatRange(min=0),
        help="Longest upstream 429 wait honoured before answering 429 (default 5 s).",
    )
    @click.option(
        "--queue-timeout",
        type=click.FloatRange(min=0.001),
        help="Longest wait for an upstream slot before answering 503 (default 30 s).",
    )
    @click.option(
        "--concurrency",
        type=click.IntRange(min=1),
        help="Upstream requests at once (client-side limit; default: the provider's known limits).",
    )
    @click.option("--rpm", type=click.IntRange(min=1), help="Upstream requests per minute.")
    @click.option("--rpd", type=click.IntRange(min=1), help="Upstream requests per day.")
    @click.option("--tpm", type=click.IntRange(min=1), help="Upstream tokens per minute.")
    @click.option(
        "--prompts",
        type=click.Path(file_okay=False),
        help="Directory of the .prompt.yml files /prompts serves (default: prompts/).",
    )
    @click.option("--log-prompts", is_flag=True, help="Put prompts in the request log lines.")
    @command
    def serve(
        host: str, port: int, workers: int, allow_unauthenticated: bool, **options: Any
    ) -> None:
        """Run the team server: sigla's API, an OpenAI-compatible /v1, health and metrics."""
        from .server._config import ApiKeys

        try:
            import uvicorn
        except ImportError:
            raise click.UsageError(
                "sigla serve needs the server extra: pip install 'sigla[server]' "
                '(from sigla\'s source tree: pip install -e ".[server]").'
            ) from None
        if not ApiKeys.from_env(os.environ) and not is_loopback(host) and not allow_unauthenticated:
            raise click.UsageError(
                f"Refusing to serve {host} without an API key: anyone who reaches it would "
                "spend this credential's quota. Set SIGLA_API_KEY (or SIGLA_API_KEYS), bind "
                "127.0.0.1, or pass --allow-unauthenticated."
            )
        os.environ.update(_environment(options))
        scratch = None
        if workers > 1:
            scratch = tempfile.mkdtemp(prefix="sigla-serve-")
            if not os.environ.get("SIGLA_LIMITER_URL", "").strip():
                os.environ["SIGLA_LIMITER_URL"] = f"sqlite:///{scratch}/limits.db"
            metrics = os.path.join(scratch, "metrics")
            os.mkdir(metrics)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics
        # Settings fail here, once, rather than in every worker.
        from .server._config import ServerConfig

        ServerConfig.from_env()
        level = logging.getLevelName(logging.getLogger("sigla").getEffectiveLevel())
        click.echo(
            f"sigla: serving on http://{host}:{port} ({workers} worker"
            f"{'s' if workers > 1 else ''}); Ctrl-C stops",
            err=True,
        )
        try:
            uvicorn.run(
                "sigla.server:create_app",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                access_log=False,
                log_config=_log_config("INFO" if level in ("NOTSET", "WARNING") else level),
                timeout_graceful_shutdown=10,
                # uvicorn's 5 s closes a pooled connection that a client is about to reuse
                # when a busy event loop reads its next request late (benchmarks/server.py,
                # 200 clients: a few ReadErrors); behind a proxy, keep it above the proxy's.
                timeout_keep_alive=30,
            )
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        sys.stderr.flush()
