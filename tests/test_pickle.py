"""A GitHubLLM travels to other processes (multiprocessing, Dask, Ray) as its settings."""

from __future__ import annotations

import multiprocessing
import pickle

import pytest
from conftest import TOKEN

from sigla.llm import GitHubLLM, RateLimits

pytestmark = pytest.mark.e2e


def test_a_pickled_client_answers_like_the_original(fake):
    llm = GitHubLLM(token=TOKEN, endpoint=fake.url, temperature=0.3, timeout=7, max_retries=1)
    llm.chat("before")  # a used client: its SDK, pools and locks are not pickled
    copy = pickle.loads(pickle.dumps(llm))
    assert copy.chat("after") == "Echo: after"
    assert copy.settings == llm.settings and copy.temperature == 0.3
    assert fake.requests[-1].body["temperature"] == 0.3
    assert fake.saw_token(TOKEN)


def test_the_credential_travels_only_when_it_was_passed(fake, monkeypatch):
    passed = GitHubLLM(token=TOKEN, endpoint=fake.url)
    assert TOKEN.encode() in pickle.dumps(passed)
    monkeypatch.setenv("GITHUB_TOKEN", "env-token-of-the-parent-0123")
    from_env = GitHubLLM(endpoint=fake.url)
    data = pickle.dumps(from_env)
    assert b"env-token-of-the-parent" not in data
    monkeypatch.setenv("GITHUB_TOKEN", "env-token-of-the-worker-4567")
    worker = pickle.loads(data)
    assert worker.settings.token.reveal() == "env-token-of-the-worker-4567"


def test_settings_from_the_environment_travel_as_values(fake, monkeypatch):
    monkeypatch.setenv("SIGLA_LLM_ENDPOINT", fake.url)
    monkeypatch.setenv("SIGLA_LLM_MODEL", "openai/gpt-4o-mini")
    monkeypatch.setenv("SIGLA_LLM_TIMEOUT", "12")
    llm = GitHubLLM(token=TOKEN, limits=RateLimits(requests_per_minute=9))
    data = pickle.dumps(llm)
    for name in ("SIGLA_LLM_ENDPOINT", "SIGLA_LLM_MODEL", "SIGLA_LLM_TIMEOUT"):
        monkeypatch.delenv(name)
    worker = pickle.loads(data)
    assert (worker.endpoint, worker.model, worker.settings.timeout) == (fake.url, llm.model, 12)
    assert worker.settings.limits == RateLimits(requests_per_minute=9)


def test_an_endpoint_credential_from_the_environment_is_read_again(fake, monkeypatch):
    url = fake.url.replace("http://", "http://user:url-secret-password@")
    monkeypatch.setenv("SIGLA_LLM_ENDPOINT", url)
    data = pickle.dumps(GitHubLLM(token=TOKEN))
    assert b"url-secret-password" not in data
    assert pickle.loads(data).settings.userinfo is not None, "read again from the environment"


def _answer(llm: GitHubLLM) -> str:
    return llm.chat("from a worker")


def test_a_client_works_in_a_spawned_process(fake):
    llm = GitHubLLM(token=TOKEN, endpoint=fake.url)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_answer, (llm,)) == "Echo: from a worker"
