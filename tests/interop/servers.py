"""Helpers of the interop suite: server subprocesses, their configs, and checks on errors.

Kept apart from ``conftest.py`` so the test modules can import them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import conftest  # tests/conftest.py: the main suite's helpers
import httpx
import pytest

from sigla.llm import GitHubLLM, LLMError

# Looks like a real key, so the leak checks mean something.
TOKEN = "sk-interop-secret-0123456789"
WRONG_TOKEN = "sk-interop-wrong-9876543210"

START_TIMEOUT = float(os.environ.get("SIGLA_INTEROP_START_TIMEOUT", "180"))


# ---------------------------------------------------------------- servers as subprocesses


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """One server subprocess (in a process group of its own), its port and its log file."""

    name: str
    args: list[str]
    port: int
    log_path: Path
    ready_path: str
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What sigla's ``endpoint=`` gets: the OpenAI-style base, ending in ``/v1``."""
        return f"{self.url}/v1"

    def start(self, ready_headers: dict[str, str] | None = None) -> Server:
        """Start the process and wait until ``ready_path`` answers (below 500)."""
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                cwd=self.cwd,
                start_new_session=True,  # its own group: stop() ends its workers too
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            try:
                answer = httpx.get(
                    self.url + self.ready_path, headers=ready_headers or {}, timeout=2
                )
                if answer.status_code < 500:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        pytest.fail(f"{self.name} did not answer within {START_TIMEOUT:g} s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL the server's process group at once: a crash, as a client sees one."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL it if it has not exited within 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def count_in_log(self, text: str, *, settle: float = 1.0) -> int:
        """How many log lines contain ``text``, once the count has held still for ``settle`` s."""
        count = -1
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = sum(text in line for line in self.log().splitlines())
            if now == count:
                return count
            count = now
            time.sleep(settle)
        return count


# ---------------------------------------------------------------- LiteLLM's proxy

LITELLM_TEXT = "Hello from LiteLLM's mock backend."
# Long enough that the proxy is still streaming it (3 characters an event) when killed.
LITELLM_LONG_TEXT = "".join(f"word{i:05d} " for i in range(8000))
# The key LiteLLM sends to its backend (sigla.testing's double): a secret of its own.
BACKEND_KEY = "sk-backend-secret-5555555555"


def mock(text: str, model: str = "openai/mock", **params: str) -> dict[str, str]:
    """litellm_params answering with ``mock_response`` (a text, or the name of an error)."""
    return {"model": model, "api_key": "unused", "mock_response": text, **params}


LITELLM_MODELS: dict[str, dict[str, str]] = {
    "mock-chat": mock(LITELLM_TEXT),
    "mock-rate-limit": mock("litellm.RateLimitError"),
    "mock-context-window": mock("litellm.ContextWindowExceededError"),
    # LiteLLM has no "litellm.ContentPolicyViolationError" mock. This string is its
    # content-filter mock; on an azure/ deployment LiteLLM maps it to its
    # ContentPolicyViolationError (on openai/ it stays a plain BadRequestError).
    "mock-content-policy": mock(
        "Exception: content_filter_policy",
        model="azure/mock",
        api_base="http://127.0.0.1:9",  # never called: the mock answers first
        api_version="2024-10-21",
    ),
}


def backend_model(base_url: str) -> dict[str, str]:
    """litellm_params forwarding to a real OpenAI-style backend at ``base_url`` (``.../v1``)."""
    return {"model": "openai/gpt-4o-mini", "api_key": BACKEND_KEY, "api_base": base_url}


def litellm_config(models: dict[str, dict[str, str]]) -> str:
    """A proxy config: one deployment per model name, with no retries and no cooldown.

    ``mock_response`` makes LiteLLM answer without calling any backend; a value naming one
    of its errors (``litellm.RateLimitError``...) makes it raise that error instead. The
    proxy's ``master_key`` is sigla's token, so authentication is real.
    """
    entries = []
    for name, params in models.items():
        lines = "\n".join(f"      {key}: {_yaml_string(value)}" for key, value in params.items())
        entries.append(f"  - model_name: {name}\n    litellm_params:\n{lines}")
    settings = f"""
        litellm_settings:
          num_retries: 0
          telemetry: false
        router_settings:
          num_retries: 0
          disable_cooldowns: true
        general_settings:
          master_key: {TOKEN}
        """
    return "model_list:\n" + "\n".join(entries) + textwrap.dedent(settings)


def _yaml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


LITELLM_ENV = {
    "LITELLM_LOG": "ERROR",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the cost map from the web
    "LITELLM_TELEMETRY": "False",
    "DISABLE_SCHEMA_UPDATE": "True",
}


# ---------------------------------------------------------------- llama-cpp-python's server

GEMMA_MODEL = "gemma3-270m"  # the --model_alias the server is started with


# ---------------------------------------------------------------- the calls and their errors


def make_llm(server: Server, model: str, **kwargs: Any) -> GitHubLLM:
    """GitHubLLM on the ``openai`` provider, aimed at ``server`` as a user would configure it."""
    kwargs.setdefault("token", TOKEN)
    return GitHubLLM(provider="openai", endpoint=server.base_url, model=model, **kwargs)


class SleepRecorder:
    """Stands in for sigla's retry sleeps: records each wait instead of waiting."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


# The sync-or-async call helpers of the main suite, one definition (tests/conftest.py).
run_chat = conftest.run_chat
run_stream = conftest.run_stream


def catch(call: Callable[[], object]) -> LLMError:
    """The sigla error ``call`` raised; fails the test on success.

    Any other exception propagates, and fails the test as the foreign exception it is.
    """
    try:
        result = call()
    except LLMError as error:
        return error
    pytest.fail(f"expected a sigla error, got a result: {result!r}")


def assert_no_secret(error: BaseException, *secrets: str) -> None:
    """No secret shows in the error, its attributes, or the errors it was raised from."""
    secrets = secrets or (TOKEN,)
    seen: BaseException | None = error
    while seen is not None:
        texts = [str(seen), repr(seen), *(str(v) for v in vars(seen).values())]
        for secret in secrets:
            for text in texts:
                assert secret not in text, f"{type(seen).__name__} shows a secret: {text!r}"
        seen = seen.__cause__ or seen.__context__


def describe(error: BaseException) -> str:
    """The error as a failure message shows it: class, message, status, code and body."""
    parts = [f"{type(error).__name__}: {error}"]
    for attr in ("status_code", "code", "retry_after", "limit"):
        value = getattr(error, attr, None)
        if value is not None:
            parts.append(f"{attr}={value!r}")
    body = getattr(error, "body", None)
    if body:
        parts.append(f"body={body[:600]!r}")
    return " | ".join(parts)


@dataclass
class RawAnswer:
    """What the server itself answered, read with httpx: for failure messages and the report."""

    status: int
    headers: dict[str, str]
    body: str

    def __str__(self) -> str:
        headers = ", ".join(f"{k}: {v}" for k, v in self.headers.items())
        return f"HTTP {self.status} [{headers}] {self.body[:600]}"


def raw_chat(
    server: Server, model: str, prompt: str, *, token: str = TOKEN, **fields: Any
) -> RawAnswer:
    """POST one chat completion straight to the server, as curl would."""
    answer = httpx.post(
        f"{server.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={"model": model, "messages": [{"role": "user", "content": prompt}], **fields},
        timeout=120,
    )
    return RawAnswer(answer.status_code, dict(answer.headers), answer.text)
