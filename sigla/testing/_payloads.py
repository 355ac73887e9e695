"""Pure builders of the double's wire payloads: the catalog, answers (status, headers, body) for
errors and faults, chat completions, SSE event sequences and embeddings.

Nothing here does I/O or keeps state; :mod:`sigla.testing._fake` decides which one to send.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._contract import (
    _BROWNOUT,
    _DAY,
    _FILTER_CATEGORIES,
    _MISTRAL_PREFIXES,
    _MODEL_FORMAT_BODY,
    _MODELS_PERMISSION,
    _PROMPT_FILTERED,
    _RETIREMENT_HEADERS,
    _SERVED_NAMES,
    _SERVER_ERROR,
    _Fault,
)

__all__ = [
    "_Answer",
    "_Outcome",
    "_azure_rate_limited",
    "_azure_unauthorized",
    "_bad_credentials",
    "_completion_body",
    "_default_catalog",
    "_model_list",
    "_default_reply",
    "_dumps",
    "_embeddings_body",
    "_error",
    "_estimate_tokens",
    "_fault_answer",
    "_fingerprint",
    "_json_answer",
    "_message_texts",
    "_rate_limited",
    "_requested_tokens",
    "_retirement",
    "_served_name",
    "_server_error",
    "_split_pieces",
    "_stream_events",
    "_text_answer",
    "_too_large",
    "_usage",
]


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


def _model_list(catalog: list[dict[str, Any]]) -> dict[str, Any]:
    """``GET /v1/models`` as OpenAI-compatible servers and Mistral's API answer it."""
    return {
        "object": "list",
        "data": [
            {
                "id": str(entry.get("id", "")).split("/")[-1],
                "object": "model",
                "created": 0,
                "owned_by": entry.get("publisher", ""),
                "max_context_length": (entry.get("limits") or {}).get("max_input_tokens"),
            }
            for entry in catalog
        ],
    }


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


def _azure_rate_limited(wait: float) -> _Answer:
    """Azure AI Foundry's 429: ``retry-after`` in whole seconds, ``retry-after-ms`` exact."""
    seconds = max(0, math.ceil(wait))
    message = (
        "Requests to the ChatCompletions_Create Operation under Azure AI Model Inference API "
        "have exceeded call rate limit of your current AIServices S0 pricing tier. "
        f"Please retry after {seconds} seconds."
    )
    headers = {
        "retry-after": str(seconds),
        "retry-after-ms": str(int(wait * 1000)),
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-remaining-tokens": "0",
    }
    return _json_answer(429, {"error": {"code": "429", "message": message}}, headers)


def _azure_unauthorized() -> _Answer:
    """Azure AI Foundry's 401 for a bad key."""
    message = (
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
        "provide a valid key for an active subscription and use a correct regional API "
        "endpoint for your resource."
    )
    return _json_answer(401, {"error": {"code": "401", "message": message}})


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


def _fault_answer(fault: _Fault, model: str | None, route: str | None = None) -> _Answer:
    """The answer of a fault that replaces the normal answer, shaped for the route.

    On the Azure route, rate limits and bad credentials answer as Azure AI Foundry does.
    """
    p, name = fault.params, fault.name
    model = p.get("model") or model or "unknown"
    if route == "azure" and name in ("unauthorized", "bad_credentials", "integration"):
        return _azure_unauthorized()
    if route == "azure" and name.startswith("rate_limit_"):
        default = {"rate_limit_minute": 9, "rate_limit_day": 5631}.get(name, 0)
        return _azure_rate_limited(float(p.get("retry_after", default)))
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


def _requested_tokens(body: Mapping[str, Any], kind: str | None) -> int:
    """The tokens a request books against a tokens-per-minute limit, estimated on arrival.

    Chat: its input as ``max_input_tokens`` counts it (ceil(characters of message contents /
    4)) plus the output it allows (``max_tokens``, else ``max_completion_tokens``; 0 when
    neither is a positive integer). Embeddings: the input texts, estimated the same way.
    """
    if kind == "embeddings":
        raw = body.get("input")
        return _estimate_tokens(str(item) for item in (raw if isinstance(raw, list) else [raw]))
    allowed = (body.get("max_tokens"), body.get("max_completion_tokens"))
    output = next((n for n in allowed if type(n) is int and n > 0), 0)
    return _estimate_tokens(_message_texts(body)) + output


def _message_texts(body: Mapping[str, Any]) -> list[str]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    return [_content_text(m.get("content")) for m in messages if isinstance(m, dict)]


# A paragraph's leading list marker or id ("- ", "2. ", "3) ", "[cap-12] "), kept but never
# taken for the end of its first sentence.
_LEADING_MARKERS = re.compile(r"(?:[-*+\u2022]\s+|\d+[.)]\s+|\[[^\]\n]*\]\s*)*")
_SENTENCE_END = re.compile(r"[.!?](?=\s|\Z)")
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")


def _first_sentences(text: str) -> str:
    """The first sentence of each paragraph (paragraphs end at blank lines), one per line.

    A sentence ends at ``.``, ``!`` or ``?`` followed by whitespace or the end; a paragraph
    without one is kept whole. Whitespace inside a sentence is collapsed to single spaces.
    """
    sentences = []
    for paragraph in _BLANK_LINE.split(text):
        flat = " ".join(paragraph.split())
        if not flat:
            continue
        marker = _LEADING_MARKERS.match(flat)
        end = _SENTENCE_END.search(flat, marker.end() if marker else 0)
        sentences.append(flat[: end.end()] if end else flat)
    return "\n".join(sentences)


def _default_reply(body: Mapping[str, Any], mode: str = "echo") -> tuple[str, str]:
    """The unscripted reply to the last user message, honouring ``stop`` and ``max_tokens``.

    ``mode`` ``"echo"``: ``"Echo: <message>"``; ``"extractive"``: its first sentences
    (:func:`_first_sentences`), so that a summarising client's output reads like a summary.
    """
    last = ""
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            last = _content_text(message.get("content"))
    text = _first_sentences(last) if mode == "extractive" else f"Echo: {last}"
    finish = "stop"
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
    the others, ``"stall"`` for a pause (its bytes are the seconds) and ``"cut"`` where the
    connection must be dropped. Events are built as they are sent (the writer looks one
    ahead), so the first one leaves without waiting for the rest.
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
    if fault_name in ("stream_cut", "stream_stall", "stream_error_event"):
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

    if fault_name == "stream_stall":  # a server that stops sending mid-answer
        yield "stall", str(float(params.get("seconds", 30.0))).encode()
    if fault_name in ("stream_cut", "stream_stall"):
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
    requested = body.get("dimensions")
    dims = requested if isinstance(requested, int) else 8
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
