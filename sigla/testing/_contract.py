"""The wire contract's vocabulary: route and stream-style names, the service's fixed texts and
headers, the served model names, and the table of faults with the parameters each accepts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "FAULTS",
    "ReplyMode",
    "Retirement",
    "Route",
    "StreamStyle",
    "_BROWNOUT",
    "_DAY",
    "_FAULT_PARAMS",
    "_FILTER_CATEGORIES",
    "_Fault",
    "_MISTRAL_PREFIXES",
    "_MODEL_FORMAT_BODY",
    "_MODELS_PERMISSION",
    "_MODIFIERS",
    "_PROMPT_FILTERED",
    "_REPLY_MODES",
    "_RETIREMENT_HEADERS",
    "_SERVED_NAMES",
    "_SERVER_ERROR",
]

Route = Literal["github", "azure", "v1"]
StreamStyle = Literal["github", "azure", "openai"]
Retirement = Literal["410", "403", "404"]
ReplyMode = Literal["echo", "extractive"]
_REPLY_MODES: tuple[str, ...] = ("echo", "extractive")

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
    "stream_stall": frozenset({"after", "seconds"}),
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
    {
        "timeout",
        "stream_cut",
        "stream_stall",
        "stream_no_finish",
        "stream_error_event",
        "content_filter",
    }
)


@dataclass
class _Fault:
    name: str
    params: dict[str, Any]
    remaining: int | None  # None: every request from now on
