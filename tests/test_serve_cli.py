"""``sigla serve`` as its users run it: a real process, real uvicorn, the double upstream."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import TOKEN

from sigla.testing import FakeGitHubModels

MODEL = "openai/gpt-4o-mini"
SIGLA = str(Path(sys.executable).with_name("sigla"))
API_KEY = "team-key-5f2b9c0d1e7a4b3c"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(
    fake: FakeGitHubModels, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, list[str]]]:
    """Run ``sigla serve`` against ``fake``; yield its URL and (once stopped) its stderr
    lines."""
    port = _free_port()
    environment = {
        **os.environ,
        "GITHUB_TOKEN": TOKEN,
        "SIGLA_LLM_ENDPOINT": fake.url,
        "SIGLA_SERVER_MODELS": MODEL,
        **(env or {}),
    }
    process = subprocess.Popen(
        [SIGLA, "serve", "--port", str(port), *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None:
                reader.join(5)
                raise AssertionError(f"sigla serve exited: {''.join(lines)}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("sigla serve did not start within 60 s")
            time.sleep(0.1)
        yield url, lines
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(5)


@pytest.fixture
def fake() -> Iterator[FakeGitHubModels]:
    with FakeGitHubModels(tokens=[TOKEN]) as double:
        yield double


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "example.org"])
def test_refuses_a_public_address_without_a_key(host: str) -> None:
    result = subprocess.run(
        [SIGLA, "serve", "--host", host], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "SIGLA_API_KEY" in result.stderr and "--allow-unauthenticated" in result.stderr


def test_serves_a_public_address_with_a_key(fake: FakeGitHubModels) -> None:
    with serve(fake, "--host", "0.0.0.0", env={"SIGLA_API_KEY": API_KEY}) as (url, _):
        assert httpx.post(f"{url}/llm", params={"prompt": "hi"}).status_code == 401
        answer = httpx.post(
            f"{url}/llm", params={"prompt": "hi"}, headers={"Authorization": f"Bearer {API_KEY}"}
        )
        assert answer.json()["answer"] == "Echo: hi"


def test_one_log_line_per_request_without_credential_or_prompt(fake: FakeGitHubModels) -> None:
    secret_prompt = "the-launch-code-is-0000"
    with serve(fake, env={"SIGLA_API_KEY": API_KEY}) as (url, lines):
        auth = {"Authorization": f"Bearer {API_KEY}"}
        assert httpx.post(f"{url}/llm", params={"prompt": secret_prompt}, headers=auth).is_success
        assert httpx.post(f"{url}/llm", json={"prompt": secret_prompt}, headers=auth).is_success
        assert httpx.post(f"{url}/llm", json={"prompt": "x"}).status_code == 401
    text = "".join(lines)
    requests = [line for line in lines if "sigla.server" in line and "POST /llm" in line]
    assert len(requests) == 3, text
    assert all(f"model={MODEL}" in line for line in requests if " 200 " in line)
    assert sum(" 401 " in line for line in requests) == 1
    for secret in (TOKEN, API_KEY, secret_prompt):
        assert secret not in text


def test_log_prompts_puts_them_in_the_log(fake: FakeGitHubModels) -> None:
    with serve(fake, "--log-prompts") as (url, lines):
        assert httpx.post(f"{url}/llm", json={"prompt": "say-cheese"}).is_success
    assert any("say-cheese" in line for line in lines if "POST /llm" in line)


def test_workers_share_one_budget_and_sum_their_metrics(
    fake: FakeGitHubModels, tmp_path: Path
) -> None:
    fake.concurrency = 1
    fake.latency = 0.15
    with serve(fake, "--workers", "2", "--concurrency", "1") as (url, lines):
        deadline = time.monotonic() + 60
        while sum("Application startup complete" in line for line in lines) < 2:
            assert time.monotonic() < deadline, "the second worker did not start"
            time.sleep(0.05)
        statuses: list[int] = []

        def call(i: int) -> None:
            with httpx.Client(timeout=60) as http:  # a new connection each: both workers serve
                statuses.append(http.post(f"{url}/llm", json={"prompt": f"n{i}"}).status_code)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        metrics = httpx.get(f"{url}/metrics").text
    assert statuses == [200] * 16
    chats = [r for r in fake.requests if r.path.endswith("/chat/completions")]
    assert [r.status for r in chats] == [200] * 16  # no 429: one budget, never 2 at once
    assert fake.max_in_flight == 1
    served_by = {
        line.split("[", 1)[1].split("]", 1)[0]
        for line in lines
        if "sigla.server" in line and "POST /llm 200" in line
    }
    assert len(served_by) == 2, "both workers should have served requests"
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("sigla_server_requests_total{")
        and 'route="/llm"' in line
        and 'status="200"' in line
    )
    assert counted == 16


def test_without_the_server_extra_the_command_says_what_to_install(tmp_path: Path) -> None:
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\nfor name in ('uvicorn', 'fastapi'):\n    sys.modules[name] = None\n"
    )
    result = subprocess.run(
        [SIGLA, "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 2
    assert "sigla[server]" in result.stderr
