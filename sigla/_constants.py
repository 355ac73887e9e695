"""Named defaults, so that every magic number of sigla has one home."""

from __future__ import annotations

DEFAULT_MODEL = "mistral-ai/Codestral-2501"
DEFAULT_TEMPERATURE = 0.7
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

GITHUB_MODELS_ENDPOINT = "https://models.github.ai/inference"
GITHUB_MODELS_RETIRED_ON = "2026-07-30"
AZURE_API_VERSION = "2024-05-01-preview"  # what mistralai's Azure client sends
MISTRAL_ENDPOINT = "https://api.mistral.ai"
MISTRAL_DEFAULT_MODEL = "codestral-latest"

DEFAULT_TIMEOUT = 60.0  # seconds: a whole attempt; for streams, the wait for each event
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024  # a whole answer, or one stream event, decoded
DEFAULT_MAX_RETRIES = 3
DEFAULT_MAX_RETRY_WAIT = 60.0  # longer waits asked by the service fail at once
RETRY_BASE_DELAY = 0.5  # first backoff step, doubled each attempt
RETRY_MAX_BACKOFF = 8.0  # cap of the exponential backoff (not of Retry-After)
GH_CLI_TIMEOUT = 5.0  # seconds given to `gh auth token`
