"""The keyword arguments of one call, built and checked before anything is sent.

Every argument a caller can get wrong fails here with an :class:`~sigla.errors.InvalidRequestError`
naming it (a bad role, a lone surrogate, a number out of range), rather than being sent and
blamed on the service; and no ``None`` reaches the SDK, which would send it as ``null``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import _constants as C
from ._config import Settings
from ._text import shown
from .errors import InvalidRequestError

__all__ = [
    "RESPONSE_FORMATS",
    "ROLES",
    "build_call",
    "build_messages",
    "check_model",
    "check_response_format",
    "check_sampling",
]

ROLES = ("system", "user", "assistant", "tool")
RESPONSE_FORMATS = ("text", "json_object", "json_schema")
_UNSENDABLE = re.compile(r"[\s\x00-\x1f\x7f\ud800-\udfff]")


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
            f"{where} must be a dict with 'role' and 'content', got {shown(message)}."
        )
    raw_role = message["role"]
    if not isinstance(raw_role, str):
        raise InvalidRequestError(
            f"{where}['role'] must be a str (one of {', '.join(ROLES)}), got {shown(raw_role)}."
        )
    role = raw_role.lower()
    if role == "developer":
        raise InvalidRequestError(
            f"{where}: role 'developer' cannot be sent through the mistralai SDK; "
            "use 'system' instead."
        )
    if role not in ROLES:
        raise InvalidRequestError(
            f"{where}: unknown role {shown(raw_role)} (use one of {', '.join(ROLES)})."
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
            f"{{'type': 'text', 'text': '...'}}, got {shown(content)}."
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
            raise InvalidRequestError(f"system must be a str, got {shown(system)}.")
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
                f"got {shown(messages)}."
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
            raise InvalidRequestError(f"{name} must be a number, got {shown(value)}.")
        if not 0 <= value <= high:  # also refuses nan
            raise InvalidRequestError(f"{name} must be between 0 and {high}, got {shown(value)}.")
    for name, value, (low, high) in (
        ("max_tokens", max_tokens, (1, C.MAX_TOKENS_LIMIT)),  # bounds and why: _constants
        ("seed", seed, C.SEED_RANGE),
    ):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequestError(f"{name} must be an integer, got {shown(value)}.")
        if not low <= value <= high:
            what = "a positive integer" if name == "max_tokens" else "an integer"
            raise InvalidRequestError(
                f"{name} must be {what} from {low} to {high}, got {shown(value)}."
            )


def _stop_words(stop: Any) -> list[str] | None:
    """``stop=`` as the list the SDK takes: a str is one stop word."""
    if stop is None:
        return None
    if isinstance(stop, str):
        words = [stop]
    elif isinstance(stop, (bytes, bytearray, Mapping)) or not isinstance(stop, Iterable):
        raise InvalidRequestError(f"stop must be a str or a list of str, got {shown(stop)}.")
    else:
        words = list(stop)
    for i, word in enumerate(words):
        where = "stop" if isinstance(stop, str) else f"stop[{i}]"
        if not isinstance(word, str):
            raise InvalidRequestError(
                f"{where} must be a str (stop takes a str or a list of str), got {shown(word)}."
            )
        _check_text(where, word)
    return words


def check_model(model: Any) -> str | None:
    """A per-call ``model=`` as it is sent, or None for the client's own model."""
    if model is None:
        return None
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(
            f"model must be a non-empty str such as 'openai/gpt-4o-mini', got {shown(model)}."
        )
    model = model.strip()
    bad = _UNSENDABLE.search(model)
    if bad:
        raise InvalidRequestError(
            f"The model id {shown(model)} contains {bad.group()!r}: model ids have no spaces, "
            "control characters or lone surrogates."
        )
    return model


def check_response_format(response_format: Any) -> dict[str, Any] | None:
    """A per-call ``response_format=`` as the service's ``response_format`` (a copy), or None.

    ``{"type": "text"}``, ``{"type": "json_object"}``, or ``{"type": "json_schema",
    "json_schema": {"name": ..., "schema": {...}}}`` as OpenAI-style services take it.
    """
    if response_format is None:
        return None
    if not isinstance(response_format, Mapping):
        raise InvalidRequestError(
            "response_format must be a dict such as {'type': 'json_object'}, "
            f"got {shown(response_format)}."
        )
    kind = response_format.get("type")
    if kind not in RESPONSE_FORMATS:
        raise InvalidRequestError(
            f"response_format['type'] must be one of {', '.join(RESPONSE_FORMATS)}, "
            f"got {shown(kind)}."
        )
    if kind == "json_schema":
        schema = response_format.get("json_schema")
        if not isinstance(schema, Mapping):
            raise InvalidRequestError(
                "response_format of type json_schema needs 'json_schema': a dict with "
                f"'name' and 'schema', got {shown(schema)}."
            )
        if not isinstance(schema.get("name"), str) or not schema["name"]:
            raise InvalidRequestError(
                "response_format['json_schema'] needs a 'name' (a non-empty str), "
                f"got {shown(schema.get('name'))}."
            )
        if not isinstance(schema.get("schema"), Mapping):
            raise InvalidRequestError(
                "response_format['json_schema'] needs a 'schema' (a JSON Schema as a dict), "
                f"got {shown(schema.get('schema'))}."
            )
    try:  # a copy that holds only JSON: the cache key and the body are built from it
        copied: dict[str, Any] = json.loads(json.dumps(dict(response_format), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"response_format must hold only JSON values: {exc}.") from None
    _check_strings("response_format", copied)
    return copied


def build_call(
    settings: Settings,
    messages: list[dict[str, Any]],
    *,
    temperature: float | None,
    max_tokens: int | None,
    top_p: float | None,
    stop: str | Sequence[str] | None,
    seed: int | None,
    model: str | None = None,
    response_format: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``chat.complete``/``chat.stream``, with every ``None`` dropped.

    ``model`` replaces the client's model for this call; ``response_format`` goes to the
    service as is. Both are part of the call, hence of its cache key.
    """
    check_sampling(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)
    chosen = check_model(model)
    call: dict[str, Any] = {
        "model": settings.model if chosen is None else chosen,
        "messages": messages,
    }
    optional = {
        "temperature": temperature,
        "max_tokens": max_tokens,
        "top_p": top_p,
        "stop": _stop_words(stop),
        "random_seed": seed,  # renamed to "seed" on the wire for OpenAI-style services
        "response_format": check_response_format(response_format),
    }
    call.update({k: v for k, v in optional.items() if v is not None})
    call["timeout_ms"] = int(settings.timeout * 1000)
    return call
