"""Fixtures named for what they fake. Every end-to-end test talks HTTP to sigla.testing."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from redis_server import RedisServer

from sigla.llm import GitHubLLM, LLMError
from sigla.testing import FakeGitHubModels

TOKEN = "ghp_TESTtoken0123456789secret"  # looks like a PAT so leak checks are meaningful


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test (``item.rep_setup``, ``rep_call``...), so a
    fixture's teardown can tell whether the test failed (the playground's screenshots)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No GITHUB_*/SIGLA_*/provider variable, and no `gh` CLI, leaks in from the machine."""
    for name in list(os.environ):
        if name.startswith(("GITHUB_", "SIGLA_", "MISTRAL_", "AZURE_")):
            monkeypatch.delenv(name)
    path = os.environ.get("PATH", "").split(os.pathsep)
    monkeypatch.setenv(
        "PATH", os.pathsep.join(d for d in path if not os.path.exists(os.path.join(d, "gh")))
    )


@pytest.fixture(autouse=True)
def fresh_budgets() -> Iterator[None]:
    """Each test starts with no process-wide budget left by another: a client of an earlier
    test kept alive by a reference cycle until the next garbage collection would otherwise
    meet a later test's client on the same (reused) loopback port, with another clock."""
    yield
    from sigla import _limits

    with _limits._registry_lock:
        _limits._registry.clear()


class FakeClock:
    """A clock shared by the double's rate windows and the client's retry sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeGitHubModels]:
    """A GitHub Models double on 127.0.0.1 whose rate windows follow the fake clock."""
    with FakeGitHubModels(clock=clock) as server:
        yield server


@pytest.fixture
def make_llm(fake: FakeGitHubModels, clock: FakeClock):
    """Build a GitHubLLM aimed at the double, retrying on the fake clock (no real waits)."""

    def build(**kwargs: Any) -> GitHubLLM:
        kwargs.setdefault("endpoint", fake.url)
        kwargs.setdefault("token", TOKEN)
        kwargs.setdefault("sleep", clock.sleep)
        kwargs.setdefault("async_sleep", clock.async_sleep)
        return GitHubLLM(**kwargs)

    return build


@pytest.fixture
def llm(make_llm) -> GitHubLLM:
    return make_llm()


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    """Run a case through the sync method and through its async twin."""
    return request.param


def run_complete(llm: GitHubLLM, mode: str, *args: Any, **kwargs: Any):
    if mode == "sync":
        return llm.complete(*args, **kwargs)
    return asyncio.run(llm.acomplete(*args, **kwargs))


def run_chat(llm: GitHubLLM, mode: str, *args: Any, **kwargs: Any) -> str:
    if mode == "sync":
        return llm.chat(*args, **kwargs)
    return asyncio.run(llm.achat(*args, **kwargs))


def run_stream(
    llm: GitHubLLM, mode: str, *args: Any, **kwargs: Any
) -> tuple[list[str], LLMError | None]:
    """The pieces a stream yielded, and the error that ended it (None if it finished)."""
    pieces: list[str] = []
    if mode == "sync":
        try:
            for piece in llm.stream(*args, **kwargs):
                pieces.append(piece)
        except LLMError as error:
            return pieces, error
        return pieces, None

    async def consume() -> LLMError | None:
        try:
            async for piece in llm.astream(*args, **kwargs):
                pieces.append(piece)
        except LLMError as error:
            return error
        return None

    return pieces, asyncio.run(consume())


# ---------------------------------------------------------------- a real redis-server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the session (fails, never skips, when it is not installed)."""
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's redis-server, emptied: ``redis://127.0.0.1:PORT/0``."""
    import redis

    if not redis_server.running:  # a test stopped it
        redis_server.start()
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def start_redis() -> Iterator[Any]:
    """Start a redis-server of the test's own (``start_redis(password="...")``), which the
    test may stop; every one is stopped after the test."""
    started: list[RedisServer] = []

    def start(password: str | None = None) -> RedisServer:
        started.append(RedisServer(password).start())
        return started[-1]

    yield start
    for server in started:
        server.close()


@pytest.fixture(params=["sqlite", "redis"])
def cache_setting(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """Where a cache lives, once per backend: a new SQLite file, or an empty Redis."""
    if request.param == "sqlite":
        return str(tmp_path / "answers.sqlite")
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture(params=["sqlite", "redis"])
def limiter_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A shared limiter's store, once per backend: a new SQLite file, or an empty Redis."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'limits.db'}"
    return str(request.getfixturevalue("redis_url"))


# A job started in the background by a non-interactive shell (`bash .ci/run &`) inherits
# SIGINT ignored, and Python then installs no KeyboardInterrupt handler: a test's child
# sent SIGINT would never notice. Children that a test interrupts start through this shim,
# which restores the default disposition and execs the real command.
_SIGINT_DEFAULT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def interruptible(argv: list[str]) -> list[str]:
    """``argv`` (starting with an executable's path) as a command that Ctrl-C reaches."""
    return [sys.executable, "-c", _SIGINT_DEFAULT, *argv]
