"""Settings resolved once, in ``GitHubLLM.__init__``: argument, then environment, then default.

Each provider is one row of a small table (:data:`PROVIDERS`); resolution is the same for
all of them, and it records where every value came from so ``sigla doctor`` can say so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from . import _constants as C
from ._limits import RateLimits, default_limits
from ._secret import Secret
from ._text import shown
from .errors import ConfigurationError, MissingTokenError

__all__ = [
    "PROVIDERS",
    "Endpoint",
    "ProviderSpec",
    "Settings",
    "as_secret",
    "gh_cli_token",
    "mask_userinfo",
    "normalise_endpoint",
    "on_github_models",
    "RETIRED_SWITCH",
    "successor_switches",
    "resolve_settings",
]


@dataclass(frozen=True)
class ProviderSpec:
    """How one provider is reached: its defaults and the variables that configure it."""

    name: str
    title: str
    default_endpoint: str | None
    endpoint_envs: tuple[str, ...]
    credential_envs: tuple[str, ...]
    credential_required: bool
    default_model: str | None
    seed_field: str  # the wire name of the seed: OpenAI-style "seed", Mistral "random_seed"
    use_gh_cli: bool = False
    credential_hint: str = ""
    credential_help: str = ""  # what the credential is, for any face (no argument names)
    endpoint_example: str = ""


PROVIDERS: dict[str, ProviderSpec] = {
    "github": ProviderSpec(
        name="github",
        title="GitHub Models",
        default_endpoint=C.GITHUB_MODELS_ENDPOINT,
        endpoint_envs=(),
        credential_envs=("GITHUB_TOKEN",),
        credential_required=True,
        default_model=C.DEFAULT_MODEL,
        seed_field="seed",
        use_gh_cli=True,
        credential_hint=(
            "No GitHub token: set GITHUB_TOKEN, pass token=, or run `gh auth login` "
            "(a fine-grained PAT with the models:read permission)."
        ),
        credential_help="a fine-grained PAT with the models:read permission",
    ),
    "azure": ProviderSpec(
        name="azure",
        title="Microsoft/Azure AI Foundry",
        default_endpoint=None,
        endpoint_envs=("AZURE_ENDPOINT",),
        credential_envs=("AZURE_API_KEY",),
        credential_required=True,
        default_model=None,
        seed_field="seed",
        credential_hint=(
            "No Azure AI Foundry key: set AZURE_API_KEY or pass token= "
            "(the key of your Foundry resource, Keys and Endpoint page)."
        ),
        credential_help="the key of your Foundry resource, Keys and Endpoint page",
        endpoint_example="https://<resource>.services.ai.azure.com/models",
    ),
    "mistral": ProviderSpec(
        name="mistral",
        title="Mistral API (La Plateforme)",
        default_endpoint=C.MISTRAL_ENDPOINT,
        endpoint_envs=(),
        credential_envs=("MISTRAL_API_KEY",),
        credential_required=True,
        default_model=C.MISTRAL_DEFAULT_MODEL,
        seed_field="random_seed",
        credential_hint="No Mistral API key: set MISTRAL_API_KEY or pass token=.",
    ),
    "openai": ProviderSpec(
        name="openai",
        title="OpenAI-compatible server",
        default_endpoint=None,
        endpoint_envs=(),
        credential_envs=("SIGLA_LLM_API_KEY",),
        credential_required=False,
        default_model=None,
        seed_field="seed",
        endpoint_example="http://localhost:11434/v1 for Ollama",
    ),
}


@dataclass(frozen=True)
class Settings:
    """Everything a client needs, resolved once.

    Credentials are :class:`~sigla._secret.Secret` values: the token, and a password, key
    or query parameter found in the endpoint URL (``endpoint`` itself holds none of them).
    """

    provider: str
    endpoint: str
    model: str
    token: Secret | None = field(repr=False)
    org: str | None
    timeout: float
    max_retries: int
    max_retry_wait: float
    api_version: str | None = None
    query: tuple[tuple[str, Secret], ...] = ()  # from the endpoint URL, sent on every request
    userinfo: Secret | None = field(default=None, repr=False)  # user:password from the URL
    limits: RateLimits = field(default_factory=RateLimits)
    max_response_bytes: int = C.DEFAULT_MAX_RESPONSE_BYTES
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def spec(self) -> ProviderSpec:
        """The provider's row of :data:`PROVIDERS`."""
        return PROVIDERS[self.provider]

    @property
    def display_endpoint(self) -> str:
        """The endpoint as messages, reprs and logs show it: credentials as ``***``."""
        parts = urlsplit(self.endpoint)
        if self.userinfo is not None:
            parts = parts._replace(netloc=f"***@{parts.netloc}")
        if self.query:
            parts = parts._replace(query="&".join(f"{k}=***" for k, _ in self.query))
        return urlunsplit(parts)

    @property
    def secrets(self) -> tuple[Secret, ...]:
        """Every credential these settings hold, to scrub from whatever a service echoes."""
        found = [self.token, self.userinfo, *(value for _, value in self.query)]
        if self.userinfo is not None:
            found.extend(Secret(part) for part in self.userinfo.reveal().split(":"))
        return tuple(s for s in found if s is not None)


def successor_switches() -> str:
    """The one-line switches to GitHub Models' successors, for a sentence of a message."""
    return "; ".join(f"{where}: `{line}`" for where, line in C.SUCCESSOR_SWITCHES)


RETIRED_SWITCH = (
    f"Note: GitHub Models was retired on {C.GITHUB_MODELS_RETIRED_ON}, so even a valid GitHub "
    f"token gets no answer there. Switch with one line: {successor_switches()}."
)


def on_github_models(provider: str, endpoint: str) -> bool:
    """Whether these settings aim at GitHub Models itself (retired), not a custom endpoint."""
    try:
        host = urlsplit(endpoint).hostname
    except ValueError:
        return False
    return provider == "github" and host == urlsplit(C.GITHUB_MODELS_ENDPOINT).hostname


def mask_userinfo(url: str) -> str:
    """``https://user:secret@host/x?key=k`` → ``https://***@host/x?key=***``, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL one can take apart: mask what looks like userinfo
        return re.sub(r"//[^/@]*@", "//***@", url)
    if "@" in parts.netloc:
        parts = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2])
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        parts = parts._replace(query="&".join(f"{k}=***" for k, _ in pairs))
    return urlunsplit(parts)


_PRINTABLE = re.compile(r"[\x21-\x7e]+")


def gh_cli_token(timeout: float = C.GH_CLI_TIMEOUT) -> str | None:
    """The GitHub CLI's token (`gh auth token`) when gh is installed and logged in."""
    import shutil
    import subprocess

    gh = shutil.which("gh")
    if gh is None:
        return None
    try:
        done = subprocess.run(
            [gh, "auth", "token"], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    token = done.stdout.strip()
    return token if done.returncode == 0 and token else None


class _Environment(Mapping[str, str]):
    """The environment variables, whose ``repr`` does not list them: they hold credentials,
    and error reporters render the locals of every frame of a traceback."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def __getitem__(self, name: str) -> str:
        return self._env[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)

    def __repr__(self) -> str:
        return f"<environment: {len(self._env)} variables>"


def as_secret(value: str | Secret | None) -> Secret | None:
    """A credential argument as a :class:`Secret` (None stays None)."""
    if value is None or isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise ConfigurationError(f"token= must be a str, not {type(value).__name__}.")
    return Secret(value)


def _credential(
    arg: Secret | None,
    spec: ProviderSpec,
    env: Mapping[str, str],
    gh_token: Callable[[], str | None],
    sources: dict[str, str],
) -> Secret | None:
    """The credential: argument, then the provider's variables, then (GitHub only) gh."""
    if arg is not None and arg.reveal().strip():
        sources["token"] = "argument"
        return Secret(arg.reveal().strip())
    value, var = _first_env(env, spec.credential_envs)
    if value is not None:
        sources["token"] = f"environment variable {var}"
        return Secret(value)
    if spec.use_gh_cli:
        found = as_secret(gh_token())
        if found is not None:
            sources["token"] = "gh auth token"
            return found
    return None


def _first_env(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str | None, str | None]:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value, name
    return None, None


_UNSENDABLE = re.compile(r"[\s\x00-\x1f\x7f\ud800-\udfff]")


def _check_endpoint_syntax(url: str, source: str) -> None:
    """Refuse an endpoint no HTTP client can send to, when it is given rather than when used.

    ``http://[::1`` or ``http://host:99999`` would otherwise fail on the first call, as a
    raw ``ValueError`` or as a connection error blamed on the network.
    """
    shown = mask_userinfo(url)[:200]  # never echo a password or key in the URL
    example = "e.g. https://models.github.ai/inference or http://127.0.0.1:8765/inference"
    bad = _UNSENDABLE.search(url)
    if bad:
        raise ConfigurationError(
            f"The endpoint {shown!r} (from {source}) contains {bad.group()!r} at index "
            f"{bad.start()}: a URL has no spaces, control characters or lone surrogates "
            f"({example})."
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(
            f"The endpoint {shown!r} (from {source}) is not a valid URL: {exc} ({example})."
        ) from None
    if not parts.hostname:
        raise ConfigurationError(
            f"The endpoint {shown!r} (from {source}) has no host name ({example})."
        )
    if port == 0:
        raise ConfigurationError(
            f"The endpoint {shown!r} (from {source}) has port 0; a port is 1 to 65535."
        )


def _with_org(endpoint: str, org: str) -> str:
    """``…/inference`` → ``…/orgs/{org}/inference`` (GitHub's per-organization attribution)."""
    parts = urlsplit(endpoint)
    path = parts.path.rstrip("/")
    if "/orgs/" in path:
        return endpoint
    if path.endswith("/inference"):
        path = path[: -len("/inference")]
    return urlunsplit(parts._replace(path=f"{path}/orgs/{org}/inference"))


class Endpoint(NamedTuple):
    """An endpoint URL taken apart: the base URL, its query and its userinfo."""

    url: str
    query: tuple[tuple[str, str], ...]
    userinfo: str | None


def normalise_endpoint(endpoint: str, provider: str) -> Endpoint:
    """The base URL the SDK appends its route to, and the query and userinfo the user put on it.

    Users paste endpoints in every documented form. mistralai appends
    ``/v1/chat/completions`` (``github``, ``mistral``, ``openai``), or ``/models/chat/completions``
    (``azure``), and drops a query string while breaking the path; so a trailing route or
    ``/v1`` (the OpenAI convention, e.g. Ollama's ``http://localhost:11434/v1``) is removed,
    as is Foundry's ``/models``, and the query is kept aside to be sent on every request.
    A ``user:password@`` (or ``key@``) is kept aside too: the base URL is shown in messages
    and logs, so it must hold no credential.
    """
    parts = urlsplit(endpoint.strip())
    path = parts.path.rstrip("/")
    suffixes = (
        ("/chat/completions", "/models") if provider == "azure" else ("/chat/completions", "/v1")
    )
    for suffix in suffixes:
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    query = tuple(parse_qsl(parts.query, keep_blank_values=True))
    userinfo, at, host = parts.netloc.rpartition("@")
    clean = urlunsplit(parts._replace(netloc=host, path=path, query="", fragment=""))
    return Endpoint(clean, query, unquote(userinfo) if at else None)


def resolve_settings(
    *,
    provider: str | None = None,
    model: str | None = None,
    token: str | Secret | None = None,
    endpoint: str | None = None,
    org: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    max_retry_wait: float | None = None,
    api_version: str | None = None,
    limits: RateLimits | None = None,
    max_response_bytes: int | None = None,
    env: Mapping[str, str] | None = None,
    gh_token: Callable[[], str | None] = gh_cli_token,
    require_token: bool = True,
    require_model: bool = True,
) -> Settings:
    """Resolve every setting: argument > environment variable > default, and say from where."""
    env = _Environment(os.environ if env is None else env)
    token = as_secret(token)  # from here on, no frame of sigla holds the credential in clear
    sources: dict[str, str] = {}

    def pick(name: str, arg: str | None, env_names: tuple[str, ...], default: str | None):
        if arg is not None and str(arg).strip():
            sources[name] = "argument"
            return str(arg).strip()
        value, var = _first_env(env, env_names)
        if value is not None:
            sources[name] = f"environment variable {var}"
            return value
        if default is not None:
            sources[name] = "default"
        return default

    name = (pick("provider", provider, ("SIGLA_LLM_PROVIDER",), "github") or "github").lower()
    spec = PROVIDERS.get(name)
    if spec is None:
        raise ConfigurationError(
            f"Unknown provider {name!r}: choose one of {', '.join(sorted(PROVIDERS))} "
            "(argument provider= or SIGLA_LLM_PROVIDER)."
        )

    url = pick(
        "endpoint", endpoint, ("SIGLA_LLM_ENDPOINT", *spec.endpoint_envs), spec.default_endpoint
    )
    if not url:
        variables = " or ".join(("SIGLA_LLM_ENDPOINT", *spec.endpoint_envs))
        raise ConfigurationError(
            f"Provider {spec.name!r} ({spec.title}) needs an endpoint: set {variables} "
            f"or pass endpoint= (e.g. {spec.endpoint_example})."
        )
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"Endpoint {url!r} is not an http(s) URL.")
    _check_endpoint_syntax(url, sources["endpoint"])
    url, query, userinfo = normalise_endpoint(url, spec.name)
    url_api_version = dict(query).pop("api-version", None)

    org_name = pick("org", org, ("GITHUB_MODELS_ORG",), None) if spec.name == "github" else None
    if org_name:
        url = _with_org(url, org_name)

    model_name = pick("model", model, ("SIGLA_LLM_MODEL",), spec.default_model) or ""
    bad = _UNSENDABLE.search(model_name)
    if bad:
        raise ConfigurationError(
            f"The model id {shown(model_name)} (from {sources['model']}) contains "
            f"{bad.group()!r}: model ids have no spaces, control characters or lone surrogates."
        )
    if not model_name and require_model:
        raise ConfigurationError(
            f"Provider {spec.name!r} ({spec.title}) has no default model: pass model= "
            "or set SIGLA_LLM_MODEL."
        )

    secret = _credential(as_secret(token), spec, env, gh_token, sources)
    if secret is not None and not _PRINTABLE.fullmatch(secret.reveal()):
        # Never echo it: the value is a secret even when it is malformed.
        raise ConfigurationError(
            f"The credential from {sources['token']} contains spaces, line breaks or "
            "non-ASCII characters (a copy-paste accident?), so it was not sent; set it again."
        )
    if secret is None and spec.credential_required and require_token:
        hint = spec.credential_hint
        if on_github_models(spec.name, url):
            hint += " " + RETIRED_SWITCH
        raise MissingTokenError(hint)

    def number(name: str, arg: float | None, default: float, var: str | None = None) -> float:
        low, high, whole, what = {  # the bounds and their reasons: _constants
            "timeout": (
                C.MIN_TIMEOUT,
                C.MAX_WAIT,
                False,
                "a number of seconds from 0.001 to 86400",
            ),
            "max_retries": (0, C.MAX_RETRIES_LIMIT, True, "a whole number from 0 to 100"),
            "max_retry_wait": (0, C.MAX_WAIT, False, "a number of seconds from 0 to 86400"),
        }[name]
        sources[name] = "argument" if arg is not None else "default"
        value: object = default if arg is None else arg
        raw = env.get(var, "").strip() if var and arg is None else ""
        if raw:
            sources[name] = f"environment variable {var}"
            try:
                value = float(raw)
            except ValueError:
                value = None
            if not (isinstance(value, float) and low <= value <= high):
                raise ConfigurationError(
                    f"{var}={raw[:40]!r} is not {what} (e.g. {var}=120)."
                ) from None
        kinds = int if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
            raise ConfigurationError(f"{name}= must be {what}, got {shown(value)}.")
        return value

    version = None
    if spec.name == "azure":
        default_version = url_api_version or C.AZURE_API_VERSION
        version = pick("api_version", api_version, ("AZURE_API_VERSION",), default_version)
        if url_api_version and sources.get("api_version") == "default":
            sources["api_version"] = "endpoint query"
        query = tuple((k, v) for k, v in query if k != "api-version")
    secret_query = tuple((k, Secret(v)) for k, v in query)

    if limits is None:
        limits, where = default_limits(spec.name, url, model_name)
        sources["limits"] = f"default: {where}"
    else:
        sources["limits"] = "argument"

    if max_response_bytes is None:
        max_response_bytes = C.DEFAULT_MAX_RESPONSE_BYTES
    elif (
        isinstance(max_response_bytes, bool)
        or not isinstance(max_response_bytes, int)
        or max_response_bytes < C.MIN_RESPONSE_BYTES
    ):
        raise ConfigurationError(
            f"max_response_bytes= must be an int of at least {C.MIN_RESPONSE_BYTES} (bytes), "
            f"got {shown(max_response_bytes)}."
        )

    return Settings(
        provider=spec.name,
        endpoint=url,
        model=model_name,
        token=secret,
        org=org_name,
        timeout=number("timeout", timeout, C.DEFAULT_TIMEOUT, "SIGLA_LLM_TIMEOUT"),
        max_retries=int(number("max_retries", max_retries, C.DEFAULT_MAX_RETRIES)),
        max_retry_wait=number("max_retry_wait", max_retry_wait, C.DEFAULT_MAX_RETRY_WAIT),
        api_version=version,
        query=secret_query,
        userinfo=Secret(userinfo) if userinfo else None,
        limits=limits,
        max_response_bytes=max_response_bytes,
        sources=sources,
    )
