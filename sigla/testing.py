"""A faithful loopback double of the GitHub Models inference service, for tests.

:class:`FakeGitHubModels` runs a small HTTP server on 127.0.0.1 that answers the way
``https://models.github.ai`` did, and the way its successors do (the Azure AI Foundry
``/models`` route and the Mistral / OpenAI-compatible ``/v1`` route): the same routes,
bodies, headers, SSE framing, error envelopes, rate-limit answers and retirement answers.
It is built from the wire contract alone and imports nothing else from sigla, so it cannot
share the client's bugs. It only uses the standard library.

Example::

    from sigla.testing import FakeGitHubModels

    def test_retries_after_a_rate_limit():
        with FakeGitHubModels() as fake:
            fake.fail("rate_limit_minute", retry_after=1)
            fake.reply("Hello there!")
            answer = my_app.ask("hi", endpoint=fake.url, token="any-token")
            assert answer == "Hello there!"
            assert [r.status for r in fake.requests] == [429, 200]
            assert fake.last_request.headers["authorization"] == "Bearer ***"

Each inference request is checked in this order; the first check that answers wins:

1. retirement (:meth:`FakeGitHubModels.retire`; GitHub routes only, the successors keep working),
2. the next scripted fault (:meth:`FakeGitHubModels.fail`; names in :data:`FAULTS`),
3. ``?api-version=`` on the Azure route, then the bearer token (``401 Bad credentials``),
4. the JSON body and, on GitHub routes, the ``{publisher}/{name}`` model id and the catalog,
5. the enforced limits: ``concurrency``, ``rpm``, ``daily`` (429 with the real headers),
6. the input size against ``max_input_tokens`` (``413 tokens_limit_reached``),
7. the next scripted reply (:meth:`FakeGitHubModels.reply`), else ``"Echo: <last user message>"``.

Routes (all accept a query string):

=====  ==================================================  =========================
POST   ``/inference[/v1]/chat/completions``                GitHub (``route="github"``)
POST   ``/orgs/{org}/inference[/v1]/chat/completions``     GitHub, billed to ``org``
POST   ``/[orgs/{org}/]inference[/v1]/embeddings``         GitHub embeddings
GET    ``/catalog/models``                                 GitHub catalog (no auth needed)
POST   ``/models/chat/completions?api-version=...``        Azure AI Foundry (``"azure"``)
POST   ``/models/embeddings?api-version=...``              Azure AI Foundry embeddings
POST   ``/v1/chat/completions``, ``/v1/embeddings``        Mistral / OpenAI-compatible (``"v1"``)
=====  ==================================================  =========================

The double never keeps a credential: :class:`RecordedRequest` stores ``authorization`` as
``"Bearer ***"`` and only a SHA-256 of the token, which :meth:`FakeGitHubModels.saw_token`
compares against.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import math
import re
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

__all__ = ["FAULTS", "FakeGitHubModels", "RecordedRequest"]

Route = Literal["github", "azure", "v1"]
StreamStyle = Literal["github", "azure", "openai"]
Retirement = Literal["410", "403", "404"]

# --------------------------------------------------------------------------------------
# Wire constants (contract §1, §5, §0)
# --------------------------------------------------------------------------------------

_MODEL_FORMAT_BODY = (
    "Model not found; expected format: {publisher}/{model_name}. "
    "Valid models can be found by calling /catalog/models."
)
_MODELS_PERMISSION = "The `models` permission is required to access this endpoint"
_BROWNOUT = "GitHub Models is temporarily unavailable as part of a scheduled retirement brownout."
_RETIREMENT_HEADERS = {
    "deprecation": "@1777939200",
    "link": (
        "<https://github.blog/changelog/2026-07-01-github-models-is-being-fully-retired-on-july-30-2026/>;"
        ' rel="deprecation"'
    ),
    "sunset": "Thu, 30 Jul 2026 00:00:00 GMT",
}
_PROMPT_FILTERED = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management "
    "policy. Please modify your prompt and retry. To learn more about our content filtering "
    "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
_SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
_FILTER_CATEGORIES = ("hate", "self_harm", "sexual", "violence")
_DAY = 86400

# Served model names as they appear in responses; anything else is the part after the slash.
_SERVED_NAMES = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-11-20",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-5": "gpt-5-2025-08-07",
    "codestral-2501": "codestral-2501",
}
_MISTRAL_PREFIXES = ("codestral", "mistral", "ministral", "pixtral", "magistral", "devstral")

# --------------------------------------------------------------------------------------
# Faults (contract §5)
# --------------------------------------------------------------------------------------

# fault name -> the keyword parameters fail() accepts for it
_FAULT_PARAMS: dict[str, frozenset[str]] = {
    "unauthorized": frozenset(),
    "bad_credentials": frozenset(),
    "integration": frozenset(),
    "no_access": frozenset({"model"}),
    "unknown_model": frozenset({"model"}),
    "model_format": frozenset(),
    "tokens_limit": frozenset({"model", "limit"}),
    "rate_limit_minute": frozenset({"retry_after", "limit", "ratelimit_type"}),
    "rate_limit_day": frozenset({"retry_after", "limit"}),
    "rate_limit_concurrency": frozenset({"retry_after", "limit"}),
    "server_error": frozenset({"status", "message"}),
    "timeout": frozenset({"seconds"}),
    "disconnect": frozenset(),
    "retired_410": frozenset(),
    "retired_403": frozenset(),
    "retired_404": frozenset(),
    "stream_cut": frozenset({"after"}),
    "stream_no_finish": frozenset(),
    "stream_error_event": frozenset({"after", "message"}),
    "content_filter": frozenset({"text", "category"}),
    "prompt_filter": frozenset(),
}

FAULTS: tuple[str, ...] = tuple(_FAULT_PARAMS)
"""Names accepted by :meth:`FakeGitHubModels.fail`, each answered with the real status,
headers and body of the GitHub Models service."""

# Faults that change how a successful answer is delivered instead of replacing it.
_MODIFIERS = frozenset(
    {"timeout", "stream_cut", "stream_no_finish", "stream_error_event", "content_filter"}
)


@dataclass
class _Fault:
    name: str
    params: dict[str, Any]
    remaining: int | None  # None: every request from now on


@dataclass(frozen=True)
class _Reply:
    text: str | None
    finish_reason: str | None
    usage: dict[str, Any] | None
    chunks: tuple[str, ...] | None
    model: str | None
    tool_calls: tuple[dict[str, Any], ...] | None


# --------------------------------------------------------------------------------------
# The request log
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the double saw it, credentials redacted.

    ``headers`` has lower-cased names; ``authorization`` reads ``"Bearer ***"`` and
    ``api-key`` reads ``"***"``. ``body`` is the parsed JSON (``None`` when absent or not
    JSON). ``status`` is the HTTP status answered, ``0`` while the request is being worked
    on and for requests deliberately left without any answer (the ``disconnect`` fault):
    the log entry is swapped for an updated copy once the status is known, so read
    ``fake.requests`` again rather than keeping an old entry. ``received_at`` and each
    ``chunk_times`` entry are :func:`time.perf_counter` readings: when the request had been
    read, and right after each SSE content event was written to the socket.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    org: str | None
    route: Route | None
    status: int
    received_at: float
    chunk_times: list[float] = field(default_factory=list)
    token_sha256: str | None = field(default=None, repr=False)

    @property
    def model(self) -> str | None:
        """The ``model`` field of a JSON body, if any."""
        if isinstance(self.body, dict) and isinstance(self.body.get("model"), str):
            return self.body["model"]
        return None

    @property
    def stream(self) -> bool:
        """Whether the body asked for a stream (``"stream": true``)."""
        return isinstance(self.body, dict) and self.body.get("stream") is True


# --------------------------------------------------------------------------------------
# The default catalog (contract §1, §6)
# --------------------------------------------------------------------------------------

# fmt: off
# id, name, publisher, registry, version, rate-limit tier, (max input, max output tokens),
# capabilities, input modalities, tags, summary
_CATALOG_ROWS: tuple[tuple[Any, ...], ...] = (
    ("mistral-ai/Codestral-2501", "Codestral 25.01", "Mistral AI", "azureml-mistral", "2", "low",
     (256000, 4096), "streaming", "text", "coding",
     "Codestral 25.01 by Mistral AI is designed for code generation, supporting 80+ programming "
     "languages, and optimized for tasks like code completion and fill-in-the-middle"),
    ("openai/gpt-4o-mini", "OpenAI GPT-4o mini", "OpenAI", "azure-openai", "2024-07-18", "low",
     (131072, 4096), "agents assistants streaming tool-calling", "text image audio",
     "multipurpose multilingual multimodal",
     "An affordable, efficient AI solution for diverse text and image tasks."),
    ("openai/gpt-4o", "OpenAI GPT-4o", "OpenAI", "azure-openai", "2024-11-20", "high",
     (131072, 16384), "agents assistants streaming tool-calling", "text image audio",
     "multipurpose multilingual multimodal",
     "OpenAI's most advanced multimodal model in the gpt-4o family. Can handle both text and "
     "image inputs."),
    ("openai/gpt-4.1", "OpenAI GPT-4.1", "OpenAI", "azure-openai", "2025-04-14", "high",
     (1048576, 32768), "agents streaming tool-calling", "text image",
     "multipurpose multilingual multimodal",
     "gpt-4.1 outperforms gpt-4o across the board, with major gains in coding, instruction "
     "following, and long-context understanding"),
    ("openai/gpt-5", "OpenAI gpt-5", "OpenAI", "azure-openai", "2025-08-07", "custom",
     (200000, 100000), "reasoning streaming tool-calling", "text image",
     "reasoning multipurpose multilingual",
     "gpt-5 is designed for logic-heavy and multi-step tasks."),
    ("openai/text-embedding-3-small", "OpenAI Text Embedding 3 (small)", "OpenAI", "azure-openai",
     "1", "embeddings", (8191, None), "", "text", "rag multilingual",
     "Text-embedding-3 series models are the latest and most capable embedding model from "
     "OpenAI."),
    ("meta/Llama-3.3-70B-Instruct", "Llama-3.3-70B-Instruct", "Meta", "azureml-meta", "4", "high",
     (128000, 4096), "streaming", "text", "conversation multilingual",
     "Llama 3.3 70B Instruct offers enhanced reasoning, math, and instruction following with "
     "performance comparable to Llama 3.1 405B."),
    ("deepseek/DeepSeek-R1", "DeepSeek-R1", "DeepSeek", "azureml-deepseek", "1", "custom",
     (128000, 4096), "reasoning streaming", "text", "reasoning coding",
     "DeepSeek-R1 excels at reasoning tasks using a step-by-step training process, such as "
     "language, scientific reasoning, and coding tasks."),
)
# fmt: on


def _default_catalog() -> list[dict[str, Any]]:
    """Fresh catalog entries with the fields of contract §1."""
    entries = []
    for model_id, name, publisher, registry, version, tier, limits, *rest in _CATALOG_ROWS:
        capabilities, inputs, tags, summary = rest
        entries.append(
            {
                "id": model_id,
                "name": name,
                "publisher": publisher,
                "registry": registry,
                "summary": summary,
                "html_url": f"https://github.com/marketplace/models/{registry}/{_short(model_id)}",
                "version": version,
                "capabilities": capabilities.split(),
                "limits": {"max_input_tokens": limits[0], "max_output_tokens": limits[1]},
                "rate_limit_tier": tier,
                "supported_input_modalities": inputs.split(),
                "supported_output_modalities": ["embeddings" if tier == "embeddings" else "text"],
                "tags": tags.split(),
            }
        )
    return entries


# --------------------------------------------------------------------------------------
# Answers: pure builders of status, headers and body
# --------------------------------------------------------------------------------------


@dataclass
class _Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    disconnect: bool = False


def _dumps(obj: Any, *, sort: bool = False) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=sort).encode()


def _json_answer(status: int, obj: Any, headers: Mapping[str, str] | None = None) -> _Answer:
    return _Answer(status, _dumps(obj), {"Content-Type": "application/json", **(headers or {})})


def _error(
    status: int,
    code: str,
    message: str,
    *,
    details: bool = True,
    headers: Mapping[str, str] | None = None,
) -> _Answer:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = message
    return _json_answer(status, {"error": error}, headers)


def _text_answer(
    status: int, text: str, content_type: str = "text/plain; charset=utf-8"
) -> _Answer:
    return _Answer(status, text.encode(), {"Content-Type": content_type})


def _bad_credentials() -> _Answer:
    return _error(401, "unauthorized", "Bad credentials")


def _rate_limited(limit: int, window: int, kind: str, wait: int) -> _Answer:
    message = (
        f"Rate limit of {limit} per {window}s exceeded for {kind}. "
        f"Please wait {wait} seconds before retrying."
    )
    headers = {
        "retry-after": str(wait),
        "x-ratelimit-type": kind,
        "x-ratelimit-timeremaining": str(wait),
        "x-ms-error-code": "RateLimitReached",
    }
    return _error(429, "RateLimitReached", message, headers=headers)


def _too_large(model: str, limit: int) -> _Answer:
    message = f"Request body too large for {_short(model)} model. Max size: {limit} tokens."
    return _error(413, "tokens_limit_reached", message, details=False)


def _retirement(kind: str) -> _Answer:
    if kind == "410":
        # Observed body (microsoft/langchain-for-beginners#34): an envelope without details.
        return _error(410, "github_models_retirement_brownout", _BROWNOUT, details=False)
    return _Answer(int(kind), b"", dict(_RETIREMENT_HEADERS))


def _short(model: str) -> str:
    return model.split("/", 1)[-1]


def _server_error(status: int = 500, message: str | None = None) -> _Answer:
    if status in (502, 504):  # what a gateway in front of the service answers
        title = {502: "502 Bad Gateway", 504: "504 Gateway Time-out"}[status]
        html = (
            f"<html><head><title>{title}</title></head>"
            f"<body><center><h1>{title}</h1></center></body></html>\n"
        )
        return _text_answer(status, message or html, "text/html")
    if status == 503:
        return _text_answer(
            status,
            message
            or "upstream connect error or disconnect/reset before "
            "headers. reset reason: connection failure",
        )
    return _error(status, "InternalServerError", message or _SERVER_ERROR)


def _fault_answer(fault: _Fault, model: str | None) -> _Answer:
    """The answer of a fault that replaces the normal answer."""
    p, name = fault.params, fault.name
    model = p.get("model") or model or "unknown"
    if name == "unauthorized":
        return _error(401, "unauthorized", _MODELS_PERMISSION)
    if name == "bad_credentials":
        return _bad_credentials()
    if name == "integration":
        return _error(401, "unauthorized", "Resource not accessible by integration")
    if name == "no_access":
        return _error(403, "no_access", f"No access to model: {model}")
    if name == "unknown_model":
        return _error(404, "unknown_model", f"Unknown model: {model}")
    if name == "model_format":
        return _text_answer(400, _MODEL_FORMAT_BODY)
    if name == "tokens_limit":
        return _too_large(model, p.get("limit", 8000))
    if name == "rate_limit_minute":
        return _rate_limited(
            p.get("limit", 15),
            60,
            p.get("ratelimit_type", "UserByModelByMinute"),
            p.get("retry_after", 9),
        )
    if name == "rate_limit_day":
        return _rate_limited(
            p.get("limit", 50), _DAY, "UserByModelByDay", p.get("retry_after", 5631)
        )
    if name == "rate_limit_concurrency":
        return _rate_limited(
            p.get("limit", 2), 0, "UserConcurrentRequests", p.get("retry_after", 0)
        )
    if name == "server_error":
        return _server_error(p.get("status", 500), p.get("message"))
    if name == "disconnect":
        return _Answer(0, disconnect=True)
    if name.startswith("retired_"):
        return _retirement(name.removeprefix("retired_"))
    if name == "prompt_filter":
        filters = _filter_results()
        filters["violence"] = {"filtered": True, "severity": "medium"}
        filters["jailbreak"] = {"filtered": False, "detected": False}
        return _json_answer(
            400,
            {
                "error": {
                    "code": "content_filter",
                    "message": _PROMPT_FILTERED,
                    "param": "prompt",
                    "type": None,
                    "status": 400,
                    "innererror": {
                        "code": "ResponsibleAIPolicyViolation",
                        "content_filter_result": filters,
                    },
                }
            },
        )
    raise AssertionError(f"not an immediate fault: {name}")


def _filter_results(flagged: str | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {
        c: {"filtered": False, "severity": "safe"} for c in _FILTER_CATEGORIES
    }
    if flagged:
        results[flagged] = {"filtered": True, "severity": "high"}
    return results


def _prompt_filter_results() -> list[dict[str, Any]]:
    results = _filter_results()
    results["jailbreak"] = {"filtered": False, "detected": False}
    return [{"prompt_index": 0, "content_filter_results": results}]


# --------------------------------------------------------------------------------------
# Completions and streams
# --------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    """What the model 'said', independent of how it is framed on the wire."""

    text: str | None
    pieces: list[str]
    finish_reason: str | None
    usage: dict[str, Any]
    served: str
    mistral: bool
    fingerprint: str | None
    tool_calls: list[dict[str, Any]] | None = None
    flagged: str | None = None  # content-filter category marked filtered


def _content_text(content: Any) -> str:
    """The text of a message's content: a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "")
            for p in content
            if isinstance(p, dict) and isinstance(p.get("text", ""), str)
        )
    return ""


def _estimate_tokens(texts: Iterable[str]) -> int:
    return math.ceil(sum(len(t) for t in texts) / 4)


def _message_texts(body: Mapping[str, Any]) -> list[str]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    return [_content_text(m.get("content")) for m in messages if isinstance(m, dict)]


def _echo(body: Mapping[str, Any]) -> tuple[str, str]:
    """The default reply: an echo of the last user message, honouring stop and max_tokens."""
    last = ""
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            last = _content_text(message.get("content"))
    text, finish = f"Echo: {last}", "stop"
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str) and s]
    cuts = [text.find(s) for s in stops if s and s in text]
    if cuts:
        text = text[: min(cuts)]
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
    if isinstance(max_tokens, int) and max_tokens > 0 and len(text) > max_tokens * 4:
        text, finish = text[: max_tokens * 4], "length"
    return text, finish


def _split_pieces(text: str) -> list[str]:
    """Split text into stream pieces of 1, 2, 3, 1, 2, 3... words (whitespace kept)."""
    words = re.findall(r"\s*\S+|\s+\Z", text)
    pieces, i, k = [], 0, 0
    while i < len(words):
        n = 1 + k % 3
        pieces.append("".join(words[i : i + n]))
        i, k = i + n, k + 1
    return pieces


def _usage(prompt: int, completion: int, *, mistral: bool) -> dict[str, Any]:
    if mistral:
        return {
            "prompt_tokens": prompt,
            "total_tokens": prompt + completion,
            "completion_tokens": completion,
        }
    return {
        "completion_tokens": completion,
        "completion_tokens_details": {
            "accepted_prediction_tokens": 0,
            "audio_tokens": 0,
            "reasoning_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
        "prompt_tokens": prompt,
        "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _served_name(model: str) -> tuple[str, bool]:
    """The model name a response carries, and whether Mistral serves it (plain Mistral shape)."""
    publisher, _, short = model.rpartition("/")
    mistral = publisher.lower() == "mistral-ai" or short.lower().startswith(_MISTRAL_PREFIXES)
    served = _SERVED_NAMES.get(short.lower(), short.lower() if mistral else short)
    return served, mistral


def _fingerprint(model: str, mistral: bool) -> str | None:
    # Azure OpenAI deployments carry one; other Azure-hosted models send null.
    if mistral or not (
        model.lower().startswith("openai/") or _short(model).lower().startswith("gpt")
    ):
        return None
    return "fp_" + hashlib.sha256(model.lower().encode()).hexdigest()[:10]


def _completion_body(out: _Outcome) -> bytes:
    """A non-streaming chat completion: Azure shape, or plain Mistral shape (contract §3)."""
    created = int(time.time())
    if out.mistral:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": out.text,
            "tool_calls": out.tool_calls,
        }
        return _dumps(
            {
                "id": uuid.uuid4().hex,
                "object": "chat.completion",
                "created": created,
                "model": out.served,
                "usage": out.usage,
                "choices": [{"index": 0, "message": message, "finish_reason": out.finish_reason}],
            }
        )
    message = {"annotations": [], "content": out.text, "refusal": None, "role": "assistant"}
    if out.tool_calls:
        message["tool_calls"] = out.tool_calls
    choice = {
        "content_filter_results": _filter_results(out.flagged),
        "finish_reason": out.finish_reason,
        "index": 0,
        "logprobs": None,
        "message": message,
    }
    return _dumps(
        {
            "choices": [choice],
            "created": created,
            "id": "chatcmpl-" + uuid.uuid4().hex[:29],
            "model": out.served,
            "object": "chat.completion",
            "prompt_filter_results": _prompt_filter_results(),
            "system_fingerprint": out.fingerprint,
            "usage": out.usage,
        },
        sort=True,
    )


_DONE = b"data: [DONE]\n\n"


def _stream_events(
    out: _Outcome, *, style: str, include_usage: bool, fault: _Fault | None
) -> Iterator[tuple[str, bytes]]:
    """The SSE events of a streamed answer (contract §4), as (kind, bytes) pairs.

    kind is ``"content"`` for content events (timed in ``chunk_times``), ``"event"`` for
    the others, and ``"cut"`` where the connection must be dropped. Events are built as
    they are sent, so the first one leaves without waiting for the rest.
    """
    openai = style == "openai"
    created, chat_id = int(time.time()), "chatcmpl-" + uuid.uuid4().hex[:29]
    fault_name, params = (fault.name, fault.params) if fault else (None, {})

    def sse(obj: Any) -> bytes:
        return b"data: " + _dumps(obj, sort=not openai) + b"\n\n"

    def chunk(
        delta: dict[str, Any] | None,
        finish: str | None = None,
        filters: dict[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        choices: list[dict[str, Any]] = []
        if delta is not None:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            if not openai:
                choice["content_filter_results"] = filters if filters is not None else {}
            choices.append(choice)
        obj: dict[str, Any] = {
            "id": chat_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": out.served,
        }
        if openai:
            obj["service_tier"] = "default"
        obj["system_fingerprint"] = out.fingerprint
        obj["choices"] = choices
        if openai and include_usage:
            obj["usage"] = None
        obj.update(extra)
        return obj

    if not openai:
        first: dict[str, Any] = {
            "choices": [],
            "created": 0,
            "id": "",
            "object": "",
            "prompt_filter_results": _prompt_filter_results(),
        }
        if style == "azure":
            first["model"] = ""  # GitHub Models sends no model key at all here
        yield "event", sse(first)
    yield "event", sse(chunk({"role": "assistant", "content": "", "refusal": None}))

    stop_after = None
    if fault_name in ("stream_cut", "stream_error_event"):
        stop_after = int(params.get("after", 1))
    for i, piece in enumerate(out.pieces):
        if stop_after is not None and i >= stop_after:
            break
        extra = (
            {"obfuscation": hashlib.sha256(piece.encode()).hexdigest()[: 4 + i % 7]}
            if i % 2
            else {}
        )
        yield "content", sse(chunk({"content": piece}, filters=_filter_results(), **extra))
    if out.tool_calls and stop_after is None:
        calls = [{"index": i, **call} for i, call in enumerate(out.tool_calls)]
        yield "event", sse(chunk({"tool_calls": calls}))

    if fault_name == "stream_cut":
        yield "cut", b""
        return
    if fault_name == "stream_error_event":
        message = params.get("message", _SERVER_ERROR)
        error = {"code": "InternalServerError", "message": message, "details": message}
        yield "event", sse({"error": error})
        return  # the stream then ends cleanly, without [DONE]
    if fault_name == "stream_no_finish":
        yield "event", _DONE
        return

    if openai:
        yield "event", sse(chunk({}, out.finish_reason))
        if include_usage:
            yield "event", sse(chunk(None, usage=out.usage))
    else:
        filters = _filter_results(out.flagged) if out.flagged else {}
        final = chunk({"content": None}, out.finish_reason, filters=filters, usage=out.usage)
        yield "event", sse(final)
    yield "event", _DONE


def _embedding(text: str, dims: int) -> list[float]:
    """A deterministic unit vector derived from the text."""
    raw, seed = b"", text.encode()
    while len(raw) < dims:
        seed = hashlib.sha256(seed).digest()
        raw += seed
    values = [b / 127.5 - 1.0 for b in raw[:dims]]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def _embeddings_body(body: Mapping[str, Any], model: str) -> bytes:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    dims = body.get("dimensions") if isinstance(body.get("dimensions"), int) else 8
    data = []
    for i, item in enumerate(inputs):
        vector: Any = _embedding(str(item), max(1, dims))
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vector})
    tokens = _estimate_tokens(str(item) for item in inputs)
    return _dumps(
        {
            "object": "list",
            "data": data,
            "model": _served_name(model)[0],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


# --------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------

_ROUTES: tuple[tuple[re.Pattern[str], str, Route], ...] = (
    (re.compile(r"(?:/orgs/(?P<org>[^/]+))?/inference(?:/v1)?/chat/completions"), "chat", "github"),
    (re.compile(r"(?:/orgs/(?P<org>[^/]+))?/inference(?:/v1)?/embeddings"), "embeddings", "github"),
    (re.compile(r"/catalog/models"), "catalog", "github"),
    (re.compile(r"/models/chat/completions"), "chat", "azure"),
    (re.compile(r"/models/embeddings"), "embeddings", "azure"),
    (re.compile(r"/v1/chat/completions"), "chat", "v1"),
    (re.compile(r"/v1/embeddings"), "embeddings", "v1"),
)
_METHODS = {"chat": "POST", "embeddings": "POST", "catalog": "GET"}
_GITHUB_MODEL_ID = re.compile(r"[^/\s]+/[^/\s]+")


@dataclass
class _Incoming:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # redacted
    body: Any
    body_ok: bool
    token_sha256: str | None
    kind: str | None
    route: Route | None
    org: str | None


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _parse_incoming(
    method: str, target: str, raw_headers: Iterable[tuple[str, str]], raw_body: bytes
) -> _Incoming:
    """Parse a request, hashing and dropping its credential on the spot."""
    parts = urlsplit(target)
    headers: dict[str, str] = {}
    token: str | None = None
    for name, value in raw_headers:
        name = name.lower()
        if name == "authorization":
            scheme, _, credential = value.strip().partition(" ")
            if scheme.lower() == "bearer" and credential.strip():
                token = credential.strip()
            value = "Bearer ***" if scheme.lower() == "bearer" else "***"
        elif name == "api-key":
            token = token or value.strip() or None
            value = "***"
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    body: Any = None
    body_ok = True
    if raw_body:
        try:
            body = json.loads(raw_body)
        except ValueError:
            body_ok = False
    kind = route = org = None
    for pattern, route_kind, route_name in _ROUTES:
        match = pattern.fullmatch(parts.path)
        if match:
            kind, route = route_kind, route_name
            org = match.groupdict().get("org")
            break
    return _Incoming(
        method=method,
        path=parts.path,
        query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        headers=headers,
        body=body,
        body_ok=body_ok,
        token_sha256=_sha256(token) if token else None,
        kind=kind,
        route=route,
        org=org,
    )


# --------------------------------------------------------------------------------------
# The double
# --------------------------------------------------------------------------------------


class FakeGitHubModels:
    """A GitHub Models service on loopback, scriptable per request, for tests.

    Start it with ``with FakeGitHubModels() as fake:`` (or :meth:`start`/:meth:`stop`) and
    point a client at :attr:`url`. Script answers with :meth:`reply`, :meth:`fail` and
    :meth:`retire`; inspect what arrived with :attr:`requests` and what is still being
    answered with :attr:`in_flight`.

    Keyword options (all but ``host``, ``port``, ``tokens``, ``catalog`` and ``clock`` are
    plain attributes that a test may change while the double runs):

    - ``latency``: seconds to wait before every answer (counted as in flight).
    - ``chunk_delay``: seconds between SSE events of a stream.
    - ``stream_style``: ``"github"`` (first chunk without ``model``, usage on the
      ``finish_reason`` chunk), ``"azure"`` (same, first chunk has ``"model": ""``) or
      ``"openai"`` (no filter chunk; usage in a last ``choices: []`` chunk when the
      request sets ``stream_options.include_usage``).
    - ``rpm`` / ``daily``: requests per model per token in a sliding 60 s / 24 h window
      measured with ``clock``; over it, a 429 with the real headers. ``None``: off.
    - ``concurrency``: chat and embeddings requests in flight per token (a stream is in
      flight until its last byte); over it, a 429 with ``retry-after: 0``. ``None``: off.
    - ``tokens``: the accepted bearer tokens (kept only as SHA-256 digests); ``None``
      accepts any non-empty one.
    - ``max_input_tokens``: chat input cap, estimated as ceil(characters of message contents
      / 4); over it, ``413 tokens_limit_reached``. ``None``: off.
    - ``catalog``: the entries of ``GET /catalog/models`` and the model ids GitHub routes
      accept (case-insensitively); defaults to a realistic catalog of eight models.
    - ``clock``: the time source of the ``rpm``/``daily`` windows, so tests can move time.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        stream_style: StreamStyle = "github",
        rpm: int | None = None,
        concurrency: int | None = None,
        daily: int | None = None,
        tokens: Iterable[str] | None = None,
        max_input_tokens: int | None = 8000,
        catalog: list[dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if stream_style not in ("github", "azure", "openai"):
            raise ValueError(
                f"stream_style must be 'github', 'azure' or 'openai', not {stream_style!r}"
            )
        self.host = host
        self.port = port
        self.latency = latency
        self.chunk_delay = chunk_delay
        self.stream_style: StreamStyle = stream_style
        self.rpm = rpm
        self.concurrency = concurrency
        self.daily = daily
        self.max_input_tokens = max_input_tokens
        self._token_hashes = None if tokens is None else frozenset(_sha256(t) for t in tokens)
        self._catalog = _default_catalog() if catalog is None else [dict(e) for e in catalog]
        self._model_ids = {str(e.get("id", "")).lower() for e in self._catalog}
        self._clock = clock
        self._lock = threading.Lock()
        self._log: list[RecordedRequest] = []
        self._faults: deque[_Fault] = deque()
        self._replies: deque[_Reply] = deque()
        self._retired: str | None = None
        self._minute: dict[tuple[str, str], deque[float]] = {}
        self._day: dict[tuple[str, str], deque[float]] = {}
        self._in_flight: dict[str, int] = {}
        self._served: dict[str, list[int]] = {}  # model -> [requests, tokens] for x-ratelimit-*
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeGitHubModels:
        """Start serving in a daemon thread (idempotent) and return self."""
        if self._server is None:
            self._stopping.clear()
            self._server = _Server((self.host, self.port), self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.01},
                name=f"FakeGitHubModels:{self._server.server_port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving promptly, closing open keep-alive connections and cutting any wait."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()  # first, so that woken waits answer nobody
        self._stopping.set()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> FakeGitHubModels:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running double."""
        if self._server is None:
            raise RuntimeError(
                "FakeGitHubModels is not running: call start() or use it as a context manager"
            )
        host = self._server.server_address[0]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{self._server.server_port}"

    @property
    def url(self) -> str:
        """The inference endpoint, ``http://HOST:PORT/inference`` (a mistralai ``server_url``)."""
        return f"{self.base_url}/inference"

    def org_url(self, org: str) -> str:
        """The organization-billed inference endpoint, ``http://HOST:PORT/orgs/{org}/inference``."""
        return f"{self.base_url}/orgs/{org}/inference"

    # -- scripting ---------------------------------------------------------------------

    def reply(
        self,
        text: str | None,
        *,
        finish_reason: str | None = "stop",
        usage: dict[str, Any] | None = None,
        chunks: Sequence[str] | None = None,
        model: str | None = None,
        tool_calls: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        """Queue the answer of the next successful chat request, delivered exactly as given.

        ``chunks`` sets the stream's content pieces (a non-stream answer uses ``text``, or
        the joined chunks when ``text`` is None); otherwise the text is split into pieces of
        one to three words. ``text=None`` without chunks answers ``content: null``.
        ``usage`` replaces the estimated usage object; ``model`` replaces the served model
        name; ``tool_calls`` are OpenAI-shaped calls (pair them with
        ``finish_reason="tool_calls"``).
        ``max_tokens`` and ``stop`` are not applied to scripted replies.
        """
        scripted = _Reply(
            text,
            finish_reason,
            dict(usage) if usage is not None else None,
            tuple(chunks) if chunks is not None else None,
            model,
            tuple(tool_calls) if tool_calls is not None else None,
        )
        with self._lock:
            self._replies.append(scripted)

    def fail(self, name: str, times: int | None = 1, **params: Any) -> None:
        """Queue fault ``name`` (one of :data:`FAULTS`) for the next ``times`` inference requests.

        ``times=None`` applies it to every request from now on (until :meth:`reset`).
        Faults apply in the order queued, before authentication, and consume no scripted
        reply unless they deliver one (``timeout`` and the ``stream_*`` faults do).
        Parameters: ``model`` (no_access, unknown_model, tokens_limit), ``limit``
        (tokens_limit, rate_limit_*), ``retry_after`` (rate_limit_*; defaults 9, 5631, 0),
        ``ratelimit_type`` (rate_limit_minute), ``status``/``message`` (server_error;
        502/504 answer gateway HTML, 503 plain text), ``seconds`` (timeout; default 30, then
        answer normally), ``after`` (content chunks sent before stream_cut drops the
        connection or stream_error_event sends its error; default 1), ``message``
        (stream_error_event), ``text``/``category`` (content_filter: partial content,
        default null, and the category marked filtered, default ``"violence"``).
        On a non-stream request stream_cut disconnects, stream_error_event answers 500 and
        stream_no_finish answers ``finish_reason: null``.
        """
        if name not in _FAULT_PARAMS:
            raise ValueError(f"unknown fault {name!r}; expected one of: {', '.join(FAULTS)}")
        unknown = set(params) - _FAULT_PARAMS[name]
        if unknown:
            allowed = ", ".join(sorted(_FAULT_PARAMS[name])) or "none"
            raise TypeError(
                f"fault {name!r} got unexpected parameters {sorted(unknown)}; accepts: {allowed}"
            )
        if times is not None and times < 1:
            raise ValueError("times must be a positive integer or None")
        with self._lock:
            self._faults.append(_Fault(name, dict(params), times))

    def retire(self, kind: Retirement | int = "410") -> None:
        """Answer every GitHub-route request as the retired service did, until :meth:`reset`.

        ``"410"``: the brownout answer (410 Gone, JSON envelope); ``"403"``: an empty 403
        with ``Deprecation``/``Link``/``Sunset`` headers; ``"404"``: the same as a 404. The
        Azure and ``/v1`` routes keep working, as the successor services did.
        """
        kind = str(kind)
        if kind not in ("410", "403", "404"):
            raise ValueError(f"retire() takes '410', '403' or '404', not {kind!r}")
        with self._lock:
            self._retired = kind

    def reset(self) -> None:
        """Forget queued replies and faults, the request log, retirement and the limit windows."""
        with self._lock:
            self._replies.clear()
            self._faults.clear()
            self._log.clear()
            self._retired = None
            self._minute.clear()
            self._day.clear()
            self._served.clear()

    # -- inspection --------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, in arrival order."""
        with self._lock:
            return list(self._log)

    @property
    def last_request(self) -> RecordedRequest | None:
        """The most recent request, or None."""
        with self._lock:
            return self._log[-1] if self._log else None

    @property
    def in_flight(self) -> int:
        """Admitted inference requests whose answer is not complete yet (streams included).

        Useful to check that a client closed its streams: ``assert fake.in_flight == 0``.
        """
        with self._lock:
            return sum(self._in_flight.values())

    @property
    def catalog(self) -> list[dict[str, Any]]:
        """A copy of the catalog served at ``GET /catalog/models``."""
        return json.loads(_dumps(self._catalog))

    def saw_token(self, token: str) -> bool:
        """Whether any request carried this credential (compared by SHA-256; none is kept)."""
        digest = _sha256(token)
        with self._lock:
            return any(r.token_sha256 == digest for r in self._log)

    # -- serving (called from handler threads) -----------------------------------------

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _serve(self, handler: _Handler, received_at: float, incoming: _Incoming) -> None:
        record = RecordedRequest(
            method=incoming.method,
            path=incoming.path,
            query=incoming.query,
            headers=incoming.headers,
            body=incoming.body,
            org=incoming.org,
            route=incoming.route,
            status=0,
            received_at=received_at,
            token_sha256=incoming.token_sha256,
        )
        with self._lock:
            self._log.append(record)
        exchange = _Exchange(self, handler, record)
        try:
            self._answer(exchange, incoming)
        except OSError:
            handler.close_connection = True  # the client went away
        except Exception as exc:  # a bug in the double: say so rather than hang the client
            if not exchange.answered:
                exchange.send(_error(500, "FakeInternalError", f"sigla.testing bug: {exc!r}"))
            else:
                handler.close_connection = True

    def _set_status(self, record: RecordedRequest, status: int) -> RecordedRequest:
        updated = dataclasses.replace(record, status=status)
        with self._lock:
            for i in range(len(self._log) - 1, -1, -1):
                if self._log[i] is record:
                    self._log[i] = updated
                    break
        return updated

    def _answer(self, ex: _Exchange, inc: _Incoming) -> None:
        if inc.kind is None:
            return ex.send(_error(404, "NotFound", "Not Found", details=False))
        if inc.method != _METHODS[inc.kind]:
            answer = _error(405, "MethodNotAllowed", "Method Not Allowed", details=False)
            answer.headers["Allow"] = _METHODS[inc.kind]
            return ex.send(answer)
        with self._lock:
            retired = self._retired
        if retired and inc.route == "github":
            return ex.send(_retirement(retired))
        if inc.kind == "catalog":
            return ex.send(_json_answer(200, self._catalog))

        body = inc.body if isinstance(inc.body, dict) else {}
        model = body.get("model") if isinstance(body.get("model"), str) else None
        fault = self._pop_fault()
        if fault is not None and fault.name == "timeout":
            self._sleep(float(fault.params.get("seconds", 30.0)))
            fault = None
        if fault is not None and fault.name not in _MODIFIERS:
            return ex.send(_fault_answer(fault, model))
        refusal = self._validate(inc, body, model)
        if refusal is not None:
            return ex.send(refusal)
        assert model is not None
        token = inc.token_sha256 or ""
        refusal = self._admit(token, model)
        if refusal is not None:
            return ex.send(refusal)
        ex.on_last_bytes = lambda: self._release(token)
        try:
            if inc.kind == "embeddings":
                return self._answer_embeddings(ex, body, model, fault)
            self._answer_chat(ex, inc, body, model, fault)
        finally:
            ex.end_flight()

    def _validate(self, inc: _Incoming, body: dict[str, Any], model: str | None) -> _Answer | None:
        """Checks 3 and 4: api-version, credentials, body and model id."""
        if inc.route == "azure" and not inc.query.get("api-version"):
            return _error(
                400, "BadRequest", "api-version query parameter is required", details=False
            )
        if inc.token_sha256 is None or (
            self._token_hashes is not None and inc.token_sha256 not in self._token_hashes
        ):
            return _bad_credentials()
        if not inc.body_ok or not isinstance(inc.body, dict):
            return _error(400, "BadRequest", "The request body must be a JSON object.")
        if inc.route == "github":
            if model is None or not _GITHUB_MODEL_ID.fullmatch(model):
                return _text_answer(400, _MODEL_FORMAT_BODY)
            if model.lower() not in self._model_ids:
                return _error(404, "unknown_model", f"Unknown model: {model}")
        elif not model:
            return _error(400, "BadRequest", "'model' is required.")
        if inc.kind == "chat":
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return _error(400, "BadRequest", "'messages' must be a non-empty array.")
        elif not isinstance(body.get("input"), (str, list)):
            return _error(400, "BadRequest", "'input' must be a string or an array of strings.")
        return None

    # -- limits ------------------------------------------------------------------------

    def _admit(self, token: str, model: str) -> _Answer | None:
        """Check 5: take an in-flight slot and a place in the rpm/daily windows, or refuse."""
        key = (token, model.lower())
        with self._lock:
            now = self._clock()
            if self.concurrency is not None and self._in_flight.get(token, 0) >= self.concurrency:
                return _rate_limited(self.concurrency, 0, "UserConcurrentRequests", 0)
            windows = (
                (self.rpm, 60, "UserByModelByMinute", self._minute),
                (self.daily, _DAY, "UserByModelByDay", self._day),
            )
            for limit, span, kind, table in windows:
                if limit is None:
                    continue
                times = table.setdefault(key, deque())
                while times and times[0] <= now - span:
                    times.popleft()
                if len(times) >= limit:
                    wait = max(1, math.ceil(times[0] + span - now))
                    return _rate_limited(limit, span, kind, wait)
            for limit, _span, _kind, table in windows:
                if limit is not None:
                    table[key].append(now)
            self._in_flight[token] = self._in_flight.get(token, 0) + 1
        return None

    def _release(self, token: str) -> None:
        with self._lock:
            self._in_flight[token] -= 1

    def _pop_fault(self) -> _Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.popleft()
            return fault

    def _ratelimit_headers(self, model: str, tokens: int) -> dict[str, str]:
        # Informational numbers, like the real service's: not the binding free-tier limits.
        with self._lock:
            served = self._served.setdefault(model.lower(), [0, 0])
            served[0] += 1
            served[1] += tokens
            requests, used = served
        return {
            "x-ratelimit-limit-requests": "1000",
            "x-ratelimit-remaining-requests": str(max(0, 1000 - requests)),
            "x-ratelimit-reset-requests": "60",
            "x-ratelimit-renewalperiod-requests": "60",
            "x-ratelimit-limit-tokens": "200000",
            "x-ratelimit-remaining-tokens": str(max(0, 200000 - used)),
            "x-ratelimit-reset-tokens": "60",
            "x-ratelimit-renewalperiod-tokens": "60",
        }

    # -- successful answers ------------------------------------------------------------

    def _answer_embeddings(
        self, ex: _Exchange, body: dict[str, Any], model: str, fault: _Fault | None
    ) -> None:
        if fault is not None and fault.name == "stream_cut":
            return ex.send(_Answer(0, disconnect=True))
        if fault is not None and fault.name == "stream_error_event":
            return ex.send(_server_error(500, fault.params.get("message")))
        payload = _embeddings_body(body, model)
        tokens = json.loads(payload)["usage"]["total_tokens"]
        headers = {"Content-Type": "application/json", **self._ratelimit_headers(model, tokens)}
        ex.send(_Answer(200, payload, headers))

    def _answer_chat(
        self, ex: _Exchange, inc: _Incoming, body: dict[str, Any], model: str, fault: _Fault | None
    ) -> None:
        prompt_texts = _message_texts(body)
        prompt_tokens = _estimate_tokens(prompt_texts)
        if self.max_input_tokens is not None and prompt_tokens > self.max_input_tokens:
            return ex.send(_too_large(model, self.max_input_tokens))
        fault_name, params = (fault.name, fault.params) if fault else (None, {})
        out = self._outcome(body, model, max(1, prompt_tokens), fault)
        headers = self._ratelimit_headers(model, out.usage.get("total_tokens", 0) or 0)
        if body.get("stream") is not True:
            if fault_name == "stream_cut":
                return ex.send(_Answer(0, disconnect=True))
            if fault_name == "stream_error_event":
                return ex.send(_server_error(500, params.get("message")))
            if fault_name == "stream_no_finish":
                out.finish_reason = None
            return ex.send(
                _Answer(200, _completion_body(out), {"Content-Type": "application/json", **headers})
            )
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        events = _stream_events(
            out, style=self.stream_style, include_usage=include_usage, fault=fault
        )
        ex.stream(events, headers)

    def _outcome(
        self, body: dict[str, Any], model: str, prompt_tokens: int, fault: _Fault | None
    ) -> _Outcome:
        """Check 7: what to say — a content-filter fault, a scripted reply, or the echo."""
        served, mistral = _served_name(model)
        fingerprint = _fingerprint(model, mistral)
        flagged = None
        tool_calls: list[dict[str, Any]] | None = None
        usage: dict[str, Any] | None = None
        if fault is not None and fault.name == "content_filter":
            text: str | None = fault.params.get("text")
            pieces = _split_pieces(text or "")
            finish: str | None = "content_filter"
            flagged = str(fault.params.get("category", "violence"))
        else:
            with self._lock:
                scripted = self._replies.popleft() if self._replies else None
            if scripted is None:
                text, finish = _echo(body)
                pieces = _split_pieces(text)
            else:
                text, finish, usage = scripted.text, scripted.finish_reason, scripted.usage
                if text is None and scripted.chunks is not None:
                    text = "".join(scripted.chunks)
                pieces = (
                    list(scripted.chunks)
                    if scripted.chunks is not None
                    else _split_pieces(text or "")
                )
                served = scripted.model or served
                tool_calls = [dict(c) for c in scripted.tool_calls] if scripted.tool_calls else None
        if usage is None:
            usage = _usage(prompt_tokens, _estimate_tokens([text or ""]), mistral=mistral)
        return _Outcome(
            text, pieces, finish, usage, served, mistral, fingerprint, tool_calls, flagged
        )


# --------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------


class _Exchange:
    """Writes one answer (plain, streamed or none at all) and records its status."""

    def __init__(self, fake: FakeGitHubModels, handler: _Handler, record: RecordedRequest) -> None:
        self.fake, self.handler, self.record = fake, handler, record
        self.answered = False
        # Frees the in-flight slot. Called just before the bytes that complete the answer, so
        # a client that has read a whole answer never finds its slot still taken.
        self.on_last_bytes: Callable[[], None] | None = None

    def end_flight(self) -> None:
        release, self.on_last_bytes = self.on_last_bytes, None
        if release is not None:
            release()

    def send(self, answer: _Answer) -> None:
        self.fake._sleep(self.fake.latency)
        self.answered = True
        if answer.disconnect:
            self.end_flight()
            self.handler.drop()
            return
        self.record = self.fake._set_status(self.record, answer.status)
        h = self.handler
        h.send_response(answer.status)
        h.send_header("x-request-id", str(uuid.uuid4()))
        for name, value in answer.headers.items():
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(answer.body)))
        self.end_flight()
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(answer.body)

    def stream(self, events: Iterable[tuple[str, bytes]], headers: Mapping[str, str]) -> None:
        """Send SSE events with hand-made chunked transfer-encoding, keeping the connection."""
        self.fake._sleep(self.fake.latency)
        self.answered = True
        self.record = self.fake._set_status(self.record, 200)
        h, times = self.handler, self.record.chunk_times
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("x-request-id", str(uuid.uuid4()))
        for name, value in headers.items():
            h.send_header(name, value)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for i, (kind, data) in enumerate(events):
            if kind == "cut":
                self.end_flight()
                h.drop()  # no terminating zero-length chunk: the body is incomplete
                return
            if i:
                self.fake._sleep(self.fake.chunk_delay)
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            if kind == "content":
                times.append(time.perf_counter())
        self.end_flight()
        h.wfile.write(b"0\r\n\r\n")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sigla-fake-github-models"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request logging of http.server."""

    def _dispatch(self) -> None:
        raw_body = self._read_body()
        received_at = time.perf_counter()
        incoming = _parse_incoming(self.command, self.path, self.headers.items(), raw_body)
        self.server.fake._serve(self, received_at, incoming)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def drop(self) -> None:
        """Close the connection now, whatever has been sent so far."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], fake: FakeGitHubModels) -> None:
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # Skip HTTPServer.server_bind's getfqdn(), a reverse DNS lookup that can be slow.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = (
            str(self.server_address[0]),
            int(self.server_address[1]),
        )

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        # Without this, Nagle's algorithm plus delayed ACKs add ~40 ms to small responses.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._connections_lock:
            self._connections.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake handler threads parked on idle keep-alive connections so they exit."""
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client hanging up is routine here
        super().handle_error(request, client_address)
