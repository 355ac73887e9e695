"""Named defaults, so that every magic number of sigla has one home."""

from __future__ import annotations

DEFAULT_MODEL = "mistral-ai/Codestral-2501"
DEFAULT_TEMPERATURE = 0.7
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

GITHUB_MODELS_ENDPOINT = "https://models.github.ai/inference"
GITHUB_MODELS_RETIRED_ON = "2026-07-30"
# The one-line switches to GitHub Models' successors (README, "After GitHub Models"), for
# every message that points a user away from the retired service.
SUCCESSOR_SWITCHES = (
    (
        "Azure AI Foundry",
        "export SIGLA_LLM_PROVIDER=azure "
        "AZURE_ENDPOINT=https://<resource>.services.ai.azure.com/models "
        "AZURE_API_KEY=<key> SIGLA_LLM_MODEL=Codestral-2501",
    ),
    ("Mistral's API", "export SIGLA_LLM_PROVIDER=mistral MISTRAL_API_KEY=<key>"),
    (
        "a local server (Ollama)",
        "export SIGLA_LLM_PROVIDER=openai SIGLA_LLM_ENDPOINT=http://localhost:11434/v1 "
        "SIGLA_LLM_MODEL=qwen2.5-coder",
    ),
)
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

# The response cache (sigla/_cache.py): cache=True's file, inside the user's cache directory
# (platformdirs), and how long a write waits for another process's write to end. Writes
# take microseconds; 30 s of waiting means a process holds the file, not a busy batch.
CACHE_FILE_NAME = "responses.sqlite"
CACHE_BUSY_TIMEOUT = 30.0
# A shared Redis cache: how long to wait for a connection, and for each command's reply. A
# hit takes well under a millisecond on a LAN; 5 s without a reply means the store is gone,
# and the call fails naming it rather than hanging a batch.
CACHE_REDIS_TIMEOUT = 5.0

# Bounds of settings and options. Servers written in typed languages read numbers into
# fixed-size ints (llama.cpp reads max_tokens into an int32; OpenAI-style schemas declare the
# seed int64); no model writes anywhere near 2**31 tokens in one answer.
MAX_TOKENS_LIMIT = 2**31 - 1
SEED_RANGE = (-(2**63), 2**63 - 1)
# The timeout goes to the SDK in whole milliseconds, so 1 ms is the least that is not "no
# time at all"; no wait is longer than a day (GitHub's daily quota window): a longer one is a
# unit mistake. 100 retries, with backoff capped at 8 s, keep a call going for 13 minutes.
MIN_TIMEOUT = 0.001
MAX_WAIT = 86_400.0
MAX_RETRIES_LIMIT = 100
MIN_RESPONSE_BYTES = 1024
