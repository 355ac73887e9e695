"""What ``sigla serve`` runs with: its settings, its API keys and its pool of clients.

Nothing here imports FastAPI: the settings are resolved (argument > environment > default)
and checked before the web framework is even loaded, and the pool is a plain object the
routes of :mod:`sigla.server` ask for a client.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._secret import Secret
from ..errors import ConfigurationError, LLMError

if TYPE_CHECKING:
    from ..llm import GitHubLLM

__all__ = ["ApiKeys", "ClientPool", "ModelNotServed", "ServerConfig"]

KEY_ENV = "SIGLA_API_KEY"
KEYS_ENV = "SIGLA_API_KEYS"
MODELS_ENV = "SIGLA_SERVER_MODELS"
# The other settings' variables: `sigla serve` passes its options to its workers this way.
NUMBER_ENVS = {
    "max_body_bytes": "SIGLA_SERVER_MAX_BODY_BYTES",
    "max_prompt_chars": "SIGLA_SERVER_MAX_PROMPT_CHARS",
    "max_retry_wait": "SIGLA_SERVER_MAX_RETRY_WAIT",
    "queue_timeout": "SIGLA_SERVER_QUEUE_TIMEOUT",
    "catalog_ttl": "SIGLA_SERVER_CATALOG_TTL",
}
LOG_PROMPTS_ENV = "SIGLA_SERVER_LOG_PROMPTS"
PROMPTS_ENV = "SIGLA_SERVER_PROMPTS"  # the directory of the prompt files it serves
LIMITS_ENV = "SIGLA_SERVER_LIMITS"  # "concurrent_requests=2,requests_per_minute=10"


def parse_limits(text: str, source: str = LIMITS_ENV) -> Any:
    """``name=value`` pairs of :class:`~sigla.llm.RateLimits` fields, comma-separated; an
    empty text turns client-side limits off (``RateLimits()``)."""
    from .._limits import RateLimits

    fields = {f for f in RateLimits.__dataclass_fields__}
    given: dict[str, int] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = pair.partition("=")
        name = name.strip()
        if not eq or name not in fields or not value.strip().isdigit():
            raise ConfigurationError(
                f"{source}: {pair!r} is not name=N with a name among {', '.join(sorted(fields))}."
            )
        given[name] = int(value)
    return RateLimits(**given)


DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_PROMPT_CHARS = 200_000  # ~50k tokens: beyond most models' context anyway
DEFAULT_MAX_RETRY_WAIT = 5.0  # a 429 asking longer reaches the caller at once, as a 429
DEFAULT_QUEUE_TIMEOUT = 30.0  # how long a request waits for an upstream slot
DEFAULT_CATALOG_TTL = 300.0


class ApiKeys:
    """The keys callers present as ``Authorization: Bearer <key>``, kept only as SHA-256
    digests, compared in constant time. Empty: no access control."""

    def __init__(self, keys: tuple[str | Secret, ...] = ()) -> None:
        digests = []
        for key in keys:
            text = key.reveal() if isinstance(key, Secret) else key
            if text.strip():
                digests.append(hashlib.sha256(text.strip().encode()).digest())
        self._digests = tuple(digests)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ApiKeys:
        """``SIGLA_API_KEY`` and the comma-separated ``SIGLA_API_KEYS`` (a rotation lists the
        old key and the new one until every caller has moved)."""
        keys = [env.get(KEY_ENV, ""), *env.get(KEYS_ENV, "").split(",")]
        return cls(tuple(k for k in keys if k.strip()))

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"<{len(self._digests)} API keys>"

    def accepts(self, given: str) -> bool:
        """Whether ``given`` is one of the keys; every key is compared (no early exit)."""
        digest = hashlib.sha256(given.encode("utf-8", "surrogateescape")).digest()
        found = False
        for known in self._digests:
            found |= hmac.compare_digest(digest, known)
        return found


def _number(name: str, value: Any, low: float, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= low:
        raise ConfigurationError(f"{name} must be a number >= {low:g}, got {value!r}.")
    if kind is int and value != int(value):
        raise ConfigurationError(f"{name} must be a whole number, got {value!r}.")
    return kind(value)


@dataclass(frozen=True)
class ServerConfig:
    """The server's settings. ``client_options`` go to every :class:`~sigla.llm.GitHubLLM`
    it builds (``provider``, ``endpoint``, ``token``, ``limiter``, ``limits``, ``cache``,
    ``timeout``...): the server holds the credential, callers never see it.

    ``models`` are the models callers may ask for, the first one the default; empty means
    the configured model only. ``prompts_dir`` holds the ``.prompt.yml`` files of
    ``/prompts``. ``max_retry_wait`` is short so an upstream 429 reaches the
    caller promptly (as a 429 with ``Retry-After``); ``queue_timeout`` bounds how long a
    request waits for one of the upstream's concurrent slots before a 503.
    """

    models: tuple[str, ...] = ()
    api_keys: ApiKeys = field(default_factory=ApiKeys)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS
    max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT
    queue_timeout: float = DEFAULT_QUEUE_TIMEOUT
    catalog_ttl: float = DEFAULT_CATALOG_TTL
    log_prompts: bool = False
    prompts_dir: str = "prompts"
    client_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "max_body_bytes", _number("max_body_bytes", self.max_body_bytes, 1, int)
        )
        object.__setattr__(
            self, "max_prompt_chars", _number("max_prompt_chars", self.max_prompt_chars, 1, int)
        )
        for name in ("max_retry_wait", "catalog_ttl"):
            object.__setattr__(self, name, _number(name, getattr(self, name), 0, float))
        object.__setattr__(
            self, "queue_timeout", _number("queue_timeout", self.queue_timeout, 0.001, float)
        )
        models = tuple(m.strip() for m in self.models if m and m.strip())
        object.__setattr__(self, "models", models)
        if "model" in self.client_options:
            raise ConfigurationError("Name the served models with models=, not client_options.")

    def __repr__(self) -> str:  # client_options may hold the token: never shown
        return (
            f"ServerConfig(models={self.models!r}, api_keys={self.api_keys!r}, "
            f"max_body_bytes={self.max_body_bytes}, max_prompt_chars={self.max_prompt_chars})"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **given: Any) -> ServerConfig:
        """Arguments given (``None`` = not given) over ``SIGLA_SERVER_MODELS``,
        ``SIGLA_API_KEY``/``SIGLA_API_KEYS``, over the defaults."""
        env = os.environ if env is None else env
        chosen = {k: v for k, v in given.items() if v is not None}
        if "models" not in chosen and env.get(MODELS_ENV, "").strip():
            chosen["models"] = tuple(env[MODELS_ENV].split(","))
        elif isinstance(chosen.get("models"), str):
            chosen["models"] = tuple(chosen["models"].split(","))
        if "api_keys" not in chosen:
            chosen["api_keys"] = ApiKeys.from_env(env)
        for name, var in NUMBER_ENVS.items():
            raw = env.get(var, "").strip()
            if name not in chosen and raw:
                try:
                    chosen[name] = float(raw) if "." in raw or "e" in raw.lower() else int(raw)
                except ValueError:
                    raise ConfigurationError(f"{var} must be a number, got {raw!r}.") from None
        raw_limits = env.get(LIMITS_ENV)
        if raw_limits is not None and "limits" not in chosen.get("client_options", {}):
            options = dict(chosen.get("client_options", {}))
            options["limits"] = parse_limits(raw_limits)
            chosen["client_options"] = options
        if "prompts_dir" not in chosen and env.get(PROMPTS_ENV, "").strip():
            chosen["prompts_dir"] = env[PROMPTS_ENV].strip()
        if "log_prompts" not in chosen:
            chosen["log_prompts"] = env.get(LOG_PROMPTS_ENV, "").strip().lower() in (
                "1",
                "true",
                "yes",
            )
        return cls(**chosen)


class ModelNotServed(LLMError):
    """A caller asked for a model this server does not serve (404 naming the served ones)."""

    def __init__(self, asked: str, allowed: tuple[str, ...]) -> None:
        super().__init__(
            f"The model {asked!r} is not served here. Ask for one of: {', '.join(allowed)}."
        )
        self.asked = asked
        self.allowed = allowed


class ClientPool:
    """One shared :class:`~sigla.llm.GitHubLLM` per served model, built on first use and
    kept for the app's lifetime, so the limiter, the cache and the pooled connections
    apply across requests (and metric labels stay bounded by the served models)."""

    def __init__(
        self, config: ServerConfig, factory: Callable[..., GitHubLLM] | None = None
    ) -> None:
        self.config = config
        self._factory = factory
        self._clients: dict[str, GitHubLLM] = {}
        self._lock = threading.Lock()
        self._served: tuple[str, ...] | None = None

    @property
    def served(self) -> tuple[str, ...]:
        """The models callers may ask for, the default first. Without ``models`` it is the
        model the client settings resolve to (no credential needed to know it)."""
        if self._served is None:
            if self.config.models:
                self._served = self.config.models
            else:
                from .._config import resolve_settings

                options = self.config.client_options
                settings = resolve_settings(
                    provider=options.get("provider"),
                    endpoint=options.get("endpoint"),
                    require_token=False,
                    gh_token=lambda: None,
                )
                self._served = (settings.model,)
        return self._served

    def choose(self, asked: str | None) -> str:
        """The served model a request names (case-insensitively), or the default."""
        served = self.served
        if asked is None or not asked.strip():
            return served[0]
        for model in served:
            if model.lower() == asked.strip().lower():
                return model
        raise ModelNotServed(asked, served)

    def client(self, model: str) -> GitHubLLM:
        """The shared client of ``model`` (one of :attr:`served`), built on first use.
        A failure to build (no credential...) is raised each time, never kept."""
        with self._lock:
            llm = self._clients.get(model)
            if llm is None:
                factory = self._factory
                if factory is None:
                    from ..llm import GitHubLLM

                    factory = GitHubLLM
                options = {
                    "max_retry_wait": self.config.max_retry_wait,
                    "queue_timeout": self.config.queue_timeout,
                    **self.config.client_options,
                }
                llm = self._clients[model] = factory(model=model, **options)
            return llm

    def existing(self, model: str) -> GitHubLLM | None:
        """The client of ``model`` if it is built already (no lock: a dict read)."""
        return self._clients.get(model)

    def clients(self) -> list[GitHubLLM]:
        with self._lock:
            return list(self._clients.values())

    def close(self) -> None:
        """Forget the clients; close their caches (connections close with the event loop)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for llm in clients:
            if llm.cache is not None:
                llm.cache.close()
