"""The I/O-free core shared by the sync and async paths.

It builds the SDK's keyword arguments (never a ``None``: the SDK would send ``null``),
fixes what the SDK puts on the wire (:func:`rewrite_body`), and turns responses and stream
chunks into :class:`Completion`. Errors are mapped in :mod:`sigla._translate`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _constants as C
from ._config import Settings
from ._secret import Secret
from ._text import shown
from .errors import ContentFilteredError, InvalidRequestError, InvalidResponseError, StreamError

__all__ = [
    "Completion",
    "Usage",
    "Wire",
    "StreamAssembler",
    "build_messages",
    "build_call",
    "rewrite_body",
    "fill_completion_body",
    "completion_from_sdk",
    "check_filtered",
    "parse_sse_event",
    "SSE_DONE",
    "check_sampling",
    "wire_for",
]

ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class Usage:
    """Token counts the service reported for one call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True)
class Completion:
    """The result of :meth:`GitHubLLM.complete`: the text and what the service said about it."""

    text: str
    finish_reason: str | None
    usage: Usage | None
    model: str | None
    id: str | None

    def __str__(self) -> str:
        return self.text


# ---------------------------------------------------------------- requests


# Bounds of the integer options (_constants.MAX_TOKENS_LIMIT, SEED_RANGE): a value a
# server cannot parse fails here, not as a 400 blamed on the service.
MAX_TOKENS_LIMIT = C.MAX_TOKENS_LIMIT
SEED_RANGE = C.SEED_RANGE
_shown = shown


def _surrogate_at(text: str) -> int | None:
    """Where ``text`` has a lone surrogate, which cannot be encoded as UTF-8, or None."""
    if text.isascii():  # O(1) in CPython: most text is done here
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _check_text(name: str, text: str) -> None:
    """Refuse a lone surrogate: no service can read it, and it breaks the JSON body."""
    at = _surrogate_at(text)
    if at is not None:
        raise InvalidRequestError(
            f"{name} contains a lone surrogate ({text[at]!r} at index {at}), which cannot "
            "be sent as UTF-8; it usually comes from bytes decoded with "
            "errors='surrogateescape'. Clean the text first, e.g. "
            "text.encode('utf-8', 'replace').decode('utf-8')."
        )


def _check_strings(name: str, value: Any) -> None:
    """:func:`_check_text` on every string inside ``value`` (dicts and lists, any depth)."""
    todo: list[tuple[str, Any]] = [(name, value)]
    seen: set[int] = set()
    while todo:
        where, item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        pairs = item.items() if isinstance(item, Mapping) else enumerate(item)
        for key, inner in pairs:
            if isinstance(key, str) and _surrogate_at(key) is not None:
                _check_text(f"a key of {where}", key)
            if isinstance(inner, str):
                if _surrogate_at(inner) is not None:  # the path is only spelled out then
                    _check_text(f"{where}[{key!r}]", inner)
            elif isinstance(inner, (Mapping, list, tuple)):
                todo.append((f"{where}[{key!r}]", inner))


def _check_message(i: int, message: Any) -> dict[str, Any]:
    """One entry of ``messages=``, with its role lower-cased (``"User"`` is ``"user"``)."""
    where = f"messages[{i}]"
    if not isinstance(message, Mapping) or "role" not in message:
        raise InvalidRequestError(
            f"{where} must be a dict with 'role' and 'content', got {_shown(message)}."
        )
    raw_role = message["role"]
    if not isinstance(raw_role, str):
        raise InvalidRequestError(
            f"{where}['role'] must be a str (one of {', '.join(ROLES)}), got {_shown(raw_role)}."
        )
    role = raw_role.lower()
    if role == "developer":
        raise InvalidRequestError(
            f"{where}: role 'developer' cannot be sent through the mistralai SDK; "
            "use 'system' instead."
        )
    if role not in ROLES:
        raise InvalidRequestError(
            f"{where}: unknown role {_shown(raw_role)} (use one of {', '.join(ROLES)})."
        )
    content = message.get("content")
    # An assistant turn that only calls tools has no text (OpenAI sends content: null).
    tool_turn = role == "assistant" and bool(message.get("tool_calls"))
    if content is None and not tool_turn:
        said = "has no 'content'" if "content" not in message else "has content None"
        raise InvalidRequestError(
            f"{where} ({role}) {said}: give it a str, or a list of content parts such as "
            "{'type': 'text', 'text': '...'}."
        )
    parts = isinstance(content, (list, tuple)) and all(isinstance(p, Mapping) for p in content)
    if content is not None and not isinstance(content, str) and not parts:
        raise InvalidRequestError(
            f"{where}['content'] must be a str or a list of content parts such as "
            f"{{'type': 'text', 'text': '...'}}, got {_shown(content)}."
        )
    _check_strings(where, message)
    return {**message, "role": role}


def build_messages(
    prompt: str | None, system: str | None, messages: Sequence[Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    """The message list of one call, validated so a bad one fails here, with a clear message.

    ``system=`` with ``messages=`` is not dropped: it becomes a first system message.
    """
    if system is not None:
        if not isinstance(system, str):
            raise InvalidRequestError(f"system must be a str, got {_shown(system)}.")
        _check_text("system", system)
    if messages is not None:
        if prompt is not None:
            raise InvalidRequestError("Pass either a prompt or messages=, not both.")
        listed = isinstance(messages, Iterable) and not isinstance(
            messages, (str, bytes, bytearray, Mapping)
        )
        items = list(messages) if listed else []
        if not items:
            raise InvalidRequestError(
                "messages= must be a non-empty list of {'role': ..., 'content': ...} dicts, "
                f"got {_shown(messages)}."
            )
        out = [_check_message(i, message) for i, message in enumerate(items)]
        if system is not None:
            out = [{"role": "system", "content": system}, *out]
        return out
    if prompt is None:
        raise InvalidRequestError("Nothing to send: pass a prompt or messages=.")
    if not isinstance(prompt, str):
        raise InvalidRequestError(f"The prompt must be a str, not {type(prompt).__name__}.")
    _check_text("The prompt", prompt)
    return [
        {"role": "system", "content": C.DEFAULT_SYSTEM_PROMPT if system is None else system},
        {"role": "user", "content": prompt},
    ]


def check_sampling(
    *,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
) -> None:
    """Refuse out-of-range sampling options before anything is sent."""
    for name, value, high in (("temperature", temperature, 2), ("top_p", top_p, 1)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidRequestError(f"{name} must be a number, got {_shown(value)}.")
        if not 0 <= value <= high:  # also refuses nan
            raise InvalidRequestError(f"{name} must be between 0 and {high}, got {_shown(value)}.")
    for name, value, (low, high) in (
        ("max_tokens", max_tokens, (1, MAX_TOKENS_LIMIT)),
        ("seed", seed, SEED_RANGE),
    ):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequestError(f"{name} must be an integer, got {_shown(value)}.")
        if not low <= value <= high:
            what = "a positive integer" if name == "max_tokens" else "an integer"
            raise InvalidRequestError(
                f"{name} must be {what} from {low} to {high}, got {_shown(value)}."
            )


def _stop_words(stop: Any) -> list[str] | None:
    """``stop=`` as the list the SDK takes: a str is one stop word."""
    if stop is None:
        return None
    if isinstance(stop, str):
        words = [stop]
    elif isinstance(stop, (bytes, bytearray, Mapping)) or not isinstance(stop, Iterable):
        raise InvalidRequestError(f"stop must be a str or a list of str, got {_shown(stop)}.")
    else:
        words = list(stop)
    for i, word in enumerate(words):
        where = "stop" if isinstance(stop, str) else f"stop[{i}]"
        if not isinstance(word, str):
            raise InvalidRequestError(
                f"{where} must be a str (stop takes a str or a list of str), got {_shown(word)}."
            )
        _check_text(where, word)
    return words


def build_call(
    settings: Settings,
    messages: list[dict[str, Any]],
    *,
    temperature: float | None,
    max_tokens: int | None,
    top_p: float | None,
    stop: str | Sequence[str] | None,
    seed: int | None,
) -> dict[str, Any]:
    """Keyword arguments for ``chat.complete``/``chat.stream``, with every ``None`` dropped."""
    check_sampling(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)
    call: dict[str, Any] = {"model": settings.model, "messages": messages}
    optional = {
        "temperature": temperature,
        "max_tokens": max_tokens,
        "top_p": top_p,
        "stop": _stop_words(stop),
        "random_seed": seed,  # renamed to "seed" on the wire for OpenAI-style services
    }
    call.update({k: v for k, v in optional.items() if v is not None})
    call["timeout_ms"] = int(settings.timeout * 1000)
    return call


# ---------------------------------------------------------------- the wire


@dataclass(frozen=True)
class Wire:
    """How requests must look on the wire for one endpoint, and what sigla accepts back."""

    seed_field: str = "seed"
    stream_usage: bool = True  # ask OpenAI-style servers for usage on streams
    query: tuple[tuple[str, Secret], ...] = ()  # a key from the endpoint URL, api-version
    userinfo: Secret | None = None  # user:password from the endpoint URL (sent as Basic)
    max_response_bytes: int = C.DEFAULT_MAX_RESPONSE_BYTES


def wire_for(settings: Settings) -> Wire:
    """The wire profile of a provider: how its services spell the body and query."""
    query = settings.query
    if settings.api_version:
        query = (*query, ("api-version", Secret(settings.api_version)))
    seed_field = settings.spec.seed_field
    return Wire(
        seed_field=seed_field,
        stream_usage=seed_field == "seed",
        query=query,
        userinfo=settings.userinfo,
        max_response_bytes=settings.max_response_bytes,
    )


def rewrite_body(body: bytes, wire: Wire) -> bytes:
    """The SDK's JSON body as the service expects it.

    No SDK argument can rename ``random_seed`` (OpenAI-style services read ``seed``), drop
    the ``"prefix": false`` it adds to assistant messages, or ask for usage on streams.
    Most bodies need none of the first two (sigla's messages leave ``prefix`` out), and
    the third is one key appended: those are settled on the bytes
    (:func:`_rewrite_in_place`: ~2 µs for a short prompt, ~1.4 ms per MB) instead of a
    JSON round trip (~10 µs, ~4.6 ms per MB, on a busy 2-core machine).
    """
    quick = _rewrite_in_place(body, wire)
    if quick is not None:
        return quick
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict):
        return body
    if wire.seed_field != "random_seed" and "random_seed" in data:
        data[wire.seed_field] = data.pop("random_seed")
    for message in data.get("messages") or ():
        if isinstance(message, dict) and message.get("prefix") is False:
            del message["prefix"]
    if wire.stream_usage and data.get("stream"):
        data.setdefault("stream_options", {"include_usage": True})
    return json.dumps(data, separators=(",", ":")).encode()


_STREAM_KEY = b'"stream":'
_STREAM_OPTIONS = b',"stream_options":{"include_usage":true}}'


def _rewrite_in_place(body: bytes, wire: Wire) -> bytes | None:
    """:func:`rewrite_body`'s result found from the bytes alone, or None to parse the JSON.

    Byte checks can decide because inside a JSON string every ``"`` is escaped: a key
    such as ``"random_seed"``, quotes included, appears in the bytes only as a key or as a
    whole string value, never inside a prompt that merely mentions it. Each check is
    conservative: a match that might be such a value (a message that is exactly the word)
    sends the body to the JSON path, which is always right. Usage on streams is asked for
    by appending a key to the object, as the JSON path does, once the bytes show that the
    last ``"stream":`` key is top-level (no ``}`` after it but the object's own) and true.
    """
    if body[:1] != b"{" or body[-1:] != b"}":
        return None
    if b'"prefix"' in body:
        return None
    if wire.seed_field != "random_seed" and b'"random_seed"' in body:
        return None
    if not wire.stream_usage:
        return body
    if b'"stream_options"' in body:
        return None
    at = body.rfind(_STREAM_KEY)
    if at < 0:
        return None if b'"stream"' in body else body
    if body.find(b"}", at, len(body) - 1) >= 0:
        return None  # maybe a key of a nested object
    value = body[at + len(_STREAM_KEY) : at + len(_STREAM_KEY) + 5]
    if value.startswith(b"false"):
        return body
    if value.startswith(b"true"):
        return body[:-1] + _STREAM_OPTIONS
    return None


_HAS_FIELDS = [
    re.compile(rb'"usage"\s*:\s*\{'),
    re.compile(rb'"object"\s*:'),
    re.compile(rb'"created"\s*:'),
]


def fill_completion_body(body: bytes) -> bytes | None:
    """A chat answer with ``usage``, ``object`` and ``created`` filled in, or None if complete.

    mistralai refuses a 200 answer without them, and some OpenAI-compatible servers omit
    them. The usage filled in is all zeros, which :func:`completion_from_sdk` reports as
    "unknown" (None): a real answer always counts at least one prompt token.
    """
    if all(pattern.search(body) for pattern in _HAS_FIELDS):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        return None
    data.setdefault("object", "chat.completion")
    data.setdefault("created", 0)
    data.setdefault("id", "")
    data.setdefault("model", "")
    if not isinstance(data.get("usage"), dict):
        data["usage"] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return json.dumps(data, separators=(",", ":")).encode()


# ---------------------------------------------------------------- responses


def _text_of(content: Any) -> str:
    """Message content as text: it may be None, UNSET, a str, or a list of chunks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for chunk in content:
            text = chunk.get("text") if isinstance(chunk, Mapping) else getattr(chunk, "text", None)
            if isinstance(text, str):
                parts.append(text)
        return "".join(parts)
    return ""


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def completion_from_sdk(response: Any) -> Completion:
    """A :class:`Completion` from the SDK's parsed ``ChatCompletionResponse``."""
    choices = getattr(response, "choices", None) or []
    text, finish = "", None
    if choices:
        choice = choices[0]
        text = _text_of(getattr(getattr(choice, "message", None), "content", None))
        finish = _as_str(str(choice.finish_reason) if choice.finish_reason is not None else None)
    usage = getattr(response, "usage", None)
    return Completion(
        text=text,
        finish_reason=finish,
        usage=_usage(usage),
        model=_as_str(getattr(response, "model", None)),
        id=_as_str(getattr(response, "id", None)),
    )


def _usage(raw: Any) -> Usage | None:
    if raw is None:
        return None
    get = raw.get if isinstance(raw, Mapping) else lambda k: getattr(raw, k, None)
    numbers = [get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")]
    if not any(isinstance(n, int) for n in numbers):
        return None
    p, c, t = (n if isinstance(n, int) else 0 for n in numbers)
    if p == c == t == 0:
        return None  # filled in by fill_completion_body: the server did not say
    return Usage(prompt_tokens=p, completion_tokens=c, total_tokens=t or p + c)


@dataclass
class StreamAssembler:
    """Folds SSE chunks (parsed JSON dicts) into text pieces and a final :class:`Completion`.

    It accepts what GitHub Models really sends (a first chunk with no ``model``, usage on
    the ``finish_reason`` chunk, ``delta.content: null``) and what OpenAI-style servers send
    (a trailing ``choices: []`` chunk with usage), and refuses a stream that ends without a
    ``finish_reason`` or carries an error event.
    """

    parts: list[str] = field(default_factory=list)
    events: int = 0
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    id: str | None = None

    def feed(self, chunk: Any) -> str | None:
        """Take one event; return its text, if it carries any."""
        self.events += 1
        if not isinstance(chunk, Mapping):
            raise StreamError("The stream sent an event that is not a JSON object.", text=self.text)
        if "error" in chunk:
            error = chunk["error"]
            message = error.get("message") if isinstance(error, Mapping) else str(error)
            raise StreamError(
                f"The service reported an error mid-stream: {message}", text=self.text
            )
        self.model = _as_str(chunk.get("model")) or self.model
        self.id = _as_str(chunk.get("id")) or self.id
        usage = _usage(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        piece = None
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content") if isinstance(delta, Mapping) else None
            if isinstance(content, str) and content:
                piece = content
                self.parts.append(content)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        return piece

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def finish(self) -> Completion:
        """The whole answer; raises :class:`StreamError` if the stream never finished."""
        if self.events == 0:
            raise InvalidResponseError(
                "The service closed the stream without sending any event. Servers do this "
                "when they cannot start an answer, most often because the prompt does not fit "
                "the model's context window (llama.cpp): shorten the input, or raise the "
                "server's context size."
            )
        if self.finish_reason is None:
            raise StreamError(
                "The stream ended without a finish_reason, so the answer is truncated "
                f"({len(self.text)} characters received).",
                text=self.text,
            )
        return Completion(self.text, self.finish_reason, self.usage, self.model, self.id)


SSE_DONE: Any = object()
"""What :func:`parse_sse_event` returns for the ``data: [DONE]`` sentinel."""


def parse_sse_event(event: Any) -> Any:
    """The JSON payload of one SSE event (an object with ``.data``), or :data:`SSE_DONE`.

    Events without data (comments, keep-alives) give ``{}``, which carries nothing.
    """
    data = event.data
    if not data:
        return {}
    if data.strip() == "[DONE]":
        return SSE_DONE
    try:
        return json.loads(data)
    except ValueError as exc:
        raise StreamError(f"The stream sent an event that is not JSON: {data[:200]!r}") from exc


def check_filtered(completion: Completion) -> Completion:
    """``chat``/``stream`` refuse a filtered answer; ``complete`` returns it as is."""
    if completion.finish_reason == "content_filter":
        raise ContentFilteredError(
            "The answer was stopped by the service's content filter (finish_reason="
            "'content_filter'). Rephrase the prompt.",
            text=completion.text,
        )
    return completion
