"""The model list a provider offers: where to ask for it, and its entries as :class:`ModelInfo`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ._config import Settings
from .errors import ConfigurationError

__all__ = ["ModelInfo", "catalog_url", "parse_catalog"]


@dataclass(frozen=True)
class ModelInfo:
    """One entry of the model catalog (``GET /catalog/models``)."""

    id: str
    name: str
    publisher: str
    rate_limit_tier: str | None
    max_input_tokens: int | None
    max_output_tokens: int | None
    capabilities: tuple[str, ...]


def catalog_url(settings: Settings) -> str:
    """GitHub's catalog (``GET /catalog/models``), else the OpenAI-style ``GET /v1/models``."""
    if settings.provider == "azure":
        raise ConfigurationError(
            "Azure AI Foundry has no model list sigla can read: the models are your "
            "deployments (Foundry portal → Models + endpoints); pass the deployed name "
            "as model= or SIGLA_LLM_MODEL."
        )
    if settings.provider == "github":
        parts = urlsplit(settings.endpoint)
        return f"{parts.scheme}://{parts.netloc}/catalog/models"
    return f"{settings.endpoint}/v1/models"


def parse_catalog(entries: Any) -> list[ModelInfo]:
    """A bare JSON array (GitHub) or ``{"data": [...]}`` (OpenAI-style, Mistral)."""
    if isinstance(entries, Mapping):
        entries = entries.get("data") or []
    if not isinstance(entries, list):
        return []
    return [_model_info(entry) for entry in entries if isinstance(entry, Mapping)]


def _model_info(entry: Mapping[str, Any]) -> ModelInfo:
    limits = entry.get("limits")
    limits = limits if isinstance(limits, Mapping) else {}
    model_id = str(entry.get("id") or entry.get("name") or "")
    capabilities = entry.get("capabilities")
    return ModelInfo(
        id=model_id,
        name=str(entry.get("name") or model_id),
        publisher=str(
            entry.get("publisher") or entry.get("owned_by") or model_id.partition("/")[0]
        ),
        rate_limit_tier=_maybe(entry.get("rate_limit_tier"), str),
        max_input_tokens=_maybe(
            limits.get("max_input_tokens") or entry.get("max_context_length"), int
        ),
        max_output_tokens=_maybe(limits.get("max_output_tokens"), int),
        capabilities=tuple(str(c) for c in capabilities) if isinstance(capabilities, list) else (),
    )


def _maybe(value: Any, kind: type) -> Any:
    """``value`` when it has the type the field promises, else None (a server's typo)."""
    return value if isinstance(value, kind) and not isinstance(value, bool) else None
