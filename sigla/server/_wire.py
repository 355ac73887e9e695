"""The server's wire: request bodies (pydantic), answers, and errors as HTTP statuses.

Two dialects: sigla's own (``POST /llm``: ``{"answer", "model", "usage", "finish_reason"}``,
errors as ``{"error": {"type", "message"}}``) and OpenAI's (``/v1/chat/completions``, its
``chat.completion`` objects and ``{"error": {"message", "type", "param", "code"}}``). What
OpenAI accepts but sigla cannot honour (tools, ``n > 1``, logprobs...) is refused with a
400 naming the field, never silently ignored. No FastAPI here: :mod:`sigla.server` uses it.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .._core import Completion, Usage
from ..errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    ContentFilteredError,
    GitHubModelsRetiredError,
    InputTooLargeError,
    InvalidRequestError,
    InvalidResponseError,
    LLMError,
    MissingTokenError,
    ModelNotFoundError,
    RateLimitError,
    ServerError,
    StreamError,
)

__all__ = [
    "ChatCompletionRequest",
    "Failure",
    "LLMRequest",
    "failure_of",
]

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    """One turn of a conversation."""

    model_config = ConfigDict(extra="forbid")
    role: Role
    content: str


class LLMRequest(BaseModel):
    """``POST /llm`` and ``POST /llm/stream``: a prompt, or a conversation (``messages``)
    optionally followed by a new ``prompt``; ``system`` goes first."""

    model_config = ConfigDict(extra="forbid")
    prompt: str | None = Field(default=None, description="The user's message.")
    system: str | None = Field(default=None, description="System prompt (default: the server's).")
    model: str | None = Field(default=None, description="One of GET /models' served models.")
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    messages: list[Message] | None = Field(default=None, description="Earlier turns, oldest first.")

    @model_validator(mode="after")
    def _something_to_send(self) -> LLMRequest:
        if not (self.prompt and self.prompt.strip()) and not self.messages:
            raise ValueError("give a non-empty prompt, or messages")
        return self

    def sigla_messages(self) -> list[dict[str, Any]] | None:
        """``messages`` (plus ``prompt`` as the last user turn), or None for a lone prompt."""
        if not self.messages:
            return None
        turns = [m.model_dump() for m in self.messages]
        if self.prompt and self.prompt.strip():
            turns.append({"role": "user", "content": self.prompt})
        return turns

    def chars(self) -> int:
        return sum(len(t or "") for t in (self.prompt, self.system)) + sum(
            len(m.content) for m in self.messages or ()
        )


class PromptRun(BaseModel):
    """``POST /prompts/{id}/run``: the values of the file's ``{{variables}}``, and optional
    overrides of its model and parameters."""

    model_config = ConfigDict(extra="forbid")
    variables: dict[str, str] = Field(default_factory=dict)
    model: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)


class PromptEval(BaseModel):
    """``POST /prompts/{id}/eval``: optionally another served model than the file's."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = None


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """An OpenAI chat message; ``developer`` is OpenAI's newer name for ``system``."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text", "json_object", "json_schema"]


# OpenAI fields sigla cannot honour, with the values that ask for nothing (accepted).
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (None, 1),
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "functions": (None, []),
    "function_call": (None, "none"),
    "parallel_tool_calls": (None, True, False),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "audio": (None,),
    "modalities": (None, ["text"]),
    "prediction": (None,),
    "web_search_options": (None,),
    "reasoning_effort": (None,),
    "service_tier": (None, "auto", "default"),
    "store": (None, False),
}
# Sent by common clients, changing nothing of the answer: accepted and not used.
_METADATA = {"user", "metadata", "safety_identifier", "prompt_cache_key"}


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``, OpenAI's request shape."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[ChatMessage] = Field(..., min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None

    @model_validator(mode="after")
    def _only_what_sigla_honours(self) -> ChatCompletionRequest:
        for name, value in (self.model_extra or {}).items():
            if name in _METADATA:
                continue
            neutral = _NEUTRAL.get(name)
            if neutral is None:
                raise ValueError(f"unknown parameter {name!r}")
            if not any(value == ok and type(value) is type(ok) for ok in neutral):
                raise ValueError(
                    f"{name}={value!r} is not supported by this server (sigla serves plain "
                    "chat: no tools, one choice, no logprobs or penalties)"
                )
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed with stream: true")
        return self

    def sigla_messages(self) -> list[dict[str, Any]]:
        return [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in self.messages
        ]

    def chars(self) -> int:
        return sum(len(m.text()) for m in self.messages)

    def options(self) -> dict[str, Any]:
        """Keyword arguments of ``GitHubLLM.acomplete``/``astream`` beyond the messages."""
        out: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_completion_tokens or self.max_tokens,
            "stop": self.stop,
            "seed": self.seed,
        }
        if self.response_format is not None and self.response_format.type != "text":
            out["response_format"] = self.response_format.model_dump()
        return out


# ---------------------------------------------------------------- answers


def usage_json(usage: Usage | None) -> dict[str, int]:
    usage = usage or Usage()
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def llm_answer(completion: Completion, model: str) -> dict[str, Any]:
    return {
        "answer": completion.text,
        "model": completion.model or model,
        "usage": usage_json(completion.usage),
        "finish_reason": completion.finish_reason or "stop",
    }


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def openai_completion(completion: Completion, model: str) -> dict[str, Any]:
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": completion.model or model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.text},
                "finish_reason": completion.finish_reason or "stop",
                "logprobs": None,
            }
        ],
        "usage": usage_json(completion.usage),
    }


def openai_chunk(
    ident: str,
    created: int,
    model: str,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``: a delta, a finish, or (``delta`` None) the usage
    chunk with empty ``choices`` that ``stream_options.include_usage`` asks for."""
    chunk: dict[str, Any] = {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk


# ---------------------------------------------------------------- errors


@dataclass(frozen=True)
class Failure:
    """An error as the server answers it: status, a short type, a message that says what
    to do, and the seconds for ``Retry-After`` (429 and 503)."""

    status: int
    type: str
    message: str
    retry_after: int | None = None

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}

    def sigla_json(self) -> dict[str, Any]:
        return {"error": {"type": self.type, "message": self.message}}

    def openai_json(self, param: str | None = None) -> dict[str, Any]:
        kind = {
            401: "authentication_error",
            404: "invalid_request_error",
            429: "rate_limit_error",
        }.get(self.status, "invalid_request_error" if self.status < 500 else "server_error")
        return {"error": {"message": self.message, "type": kind, "param": param, "code": self.type}}


def _seconds(value: float | None, default: int = 1) -> int:
    if value is None or not math.isfinite(value):
        return default
    return max(0, math.ceil(value))


_CREDENTIAL_REJECTED = (
    "The model service rejected this server's credential ({status}). This is the server's "
    "configuration, not your request: ask its operator to check the credential and its "
    "access to the model."
)


def failure_of(error: BaseException) -> Failure:
    """How the server answers ``error`` (a sigla error, or the server's own refusals)."""
    from ._config import ModelNotServed
    from ._prompts import PromptNotFound

    message = str(error)
    if isinstance(error, ModelNotServed):
        return Failure(404, "model_not_found", message)
    if isinstance(error, PromptNotFound):
        return Failure(404, "prompt_not_found", message)
    if isinstance(error, RateLimitError):
        if error.client_side and "concurrent" in (error.limit_type or ""):
            return Failure(
                503,
                "server_busy",
                "Every upstream slot stayed busy for the server's queue timeout: try again "
                "shortly.",
                _seconds(error.retry_after),
            )
        return Failure(429, "rate_limited", message, _seconds(error.retry_after))
    if isinstance(error, GitHubModelsRetiredError):
        return Failure(502, "service_retired", message)
    if isinstance(error, AuthenticationError):  # 401 and 403 (PermissionDeniedError)
        return Failure(
            502,
            "upstream_credential_rejected",
            _CREDENTIAL_REJECTED.format(status=error.status_code),
        )
    if isinstance(error, ModelNotFoundError):
        return Failure(404, "model_not_found", message)
    if isinstance(error, InputTooLargeError):
        return Failure(413, "input_too_large", message)
    if isinstance(error, MissingTokenError):
        return Failure(
            503,
            "not_configured",
            "This server has no credential for the model service: its operator must set one "
            "(see `sigla doctor` on the server).",
            30,
        )
    if isinstance(error, ConfigurationError):
        return Failure(503, "not_configured", message, 30)
    if isinstance(error, InvalidRequestError):
        return Failure(422, "invalid_request", message)
    if isinstance(error, ContentFilteredError):
        return Failure(400, "content_filtered", message)
    if isinstance(error, APITimeoutError):
        return Failure(504, "upstream_timeout", message)
    if isinstance(error, APIConnectionError):
        return Failure(502, "upstream_unreachable", message)
    if isinstance(error, ServerError):
        return Failure(502, "upstream_error", message)
    if isinstance(error, APIStatusError):
        if error.status_code in (400, 422):  # the service refused what the caller asked
            return Failure(400, "invalid_request", message)
        return Failure(502, "upstream_error", message)
    if isinstance(error, (InvalidResponseError, StreamError)):
        return Failure(502, "upstream_error", message)
    if isinstance(error, LLMError):
        return Failure(502, "upstream_error", message)
    return Failure(500, "internal_error", "The server failed; its log has the details.")
