"""The team server: one process holds the credential and the quota, everyone else calls it.

``sigla serve`` runs :func:`create_app` with uvicorn. Routes:

=====  =========================  ==========================================================
POST   ``/llm``                   ``?prompt=&temperature=`` (the seed's form) or a JSON body
                                  -> ``{"answer", "model", "usage", "finish_reason"}``
POST   ``/llm/stream``            the same body -> SSE: ``data: {"delta"}``..., then
                                  ``event: done`` (usage, finish_reason) or ``event: error``
POST   ``/v1/chat/completions``   OpenAI's shapes, ``stream: true`` included
GET    ``/v1/models``             the served models, OpenAI's list shape
GET    ``/models``                the served models and the service's catalog (cached)
GET    ``/healthz``               liveness: no upstream call, open to anyone
GET    ``/readyz``                settings resolved, credential present, limiter store up
GET    ``/metrics``               Prometheus text format
=====  =========================  ==========================================================

With API keys set (``SIGLA_API_KEY``, ``SIGLA_API_KEYS``) every route but ``/healthz`` and
the docs asks for ``Authorization: Bearer <key>``. Errors are ``{"error": {"type",
"message"}}`` (OpenAI's error shape under ``/v1``); an upstream 429 is a 429 with
``Retry-After``. Each served model has one shared :class:`~sigla.llm.GitHubLLM` for the
app's lifetime, so its limiter, cache and connections serve every request.
"""

from __future__ import annotations

from ..errors import MissingDependencyError

try:
    import fastapi  # noqa: F401
    import prometheus_client  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # the dev extra installs them; a user may not have
    raise MissingDependencyError(
        f"The sigla server needs FastAPI, uvicorn and prometheus-client ({exc.name} is "
        "missing): pip install 'sigla[server]' (from sigla's source tree: "
        'pip install -e ".[server]").'
    ) from None

from ._app import create_app
from ._config import ApiKeys, ServerConfig

__all__ = ["ApiKeys", "ServerConfig", "create_app"]
