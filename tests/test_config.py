"""Settings resolve once: argument > environment > default, and say where each came from."""

from __future__ import annotations

import os
import stat

import pytest
from conftest import TOKEN

from sigla._config import resolve_settings
from sigla.llm import ConfigurationError, GitHubLLM, MissingTokenError


def test_missing_token_says_what_to_do():
    with pytest.raises(MissingTokenError) as caught:
        GitHubLLM()
    message = str(caught.value)
    assert "GITHUB_TOKEN" in message
    assert "gh auth login" in message
    assert "models:read" in message


def test_defaults_are_the_seeds(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    llm = GitHubLLM()
    assert llm.model == "mistral-ai/Codestral-2501"
    assert llm.temperature == 0.7
    assert llm.endpoint == "https://models.github.ai/inference"
    assert llm.provider == "github"
    assert llm.settings.sources["token"] == "environment variable GITHUB_TOKEN"


def test_arguments_beat_the_environment(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "env-token")
    monkeypatch.setenv("SIGLA_LLM_MODEL", "openai/gpt-4o")
    monkeypatch.setenv("SIGLA_LLM_ENDPOINT", "http://127.0.0.1:9/inference")
    llm = GitHubLLM(
        model="openai/gpt-4o-mini", token=TOKEN, endpoint="http://localhost:1/inference"
    )
    assert llm.model == "openai/gpt-4o-mini"
    assert llm.endpoint == "http://localhost:1/inference"
    assert llm.settings.token.reveal() == TOKEN
    assert llm.settings.sources == {
        "provider": "default",
        "endpoint": "argument",
        "model": "argument",
        "token": "argument",
        "timeout": "default",
        "max_retries": "default",
        "max_retry_wait": "default",
        "limits": "default: none by default for this endpoint",
    }


def test_environment_beats_the_defaults(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("SIGLA_LLM_MODEL", "openai/gpt-4o")
    monkeypatch.setenv("SIGLA_LLM_ENDPOINT", "http://127.0.0.1:9/inference/")
    monkeypatch.setenv("GITHUB_MODELS_ORG", "acme")
    llm = GitHubLLM()
    assert llm.model == "openai/gpt-4o"
    assert llm.endpoint == "http://127.0.0.1:9/orgs/acme/inference"
    assert llm.settings.org == "acme"


def test_org_on_the_default_endpoint():
    settings = resolve_settings(token="t", org="acme")
    assert settings.endpoint == "https://models.github.ai/orgs/acme/inference"


def test_gh_cli_token_is_used_when_no_variable_is_set(tmp_path, monkeypatch):
    gh = tmp_path / "gh"
    gh.write_text('#!/bin/sh\n[ "$1 $2" = "auth token" ] && echo gho_fromcli || exit 1\n')
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    llm = GitHubLLM()
    assert llm.settings.token.reveal() == "gho_fromcli"
    assert llm.settings.sources["token"] == "gh auth token"


def test_gh_cli_logged_out_still_gives_the_missing_token_error(tmp_path, monkeypatch):
    gh = tmp_path / "gh"
    gh.write_text("#!/bin/sh\necho 'not logged in' >&2\nexit 1\n")
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(MissingTokenError):
        GitHubLLM()


def test_repr_shows_model_and_endpoint_never_the_token():
    llm = GitHubLLM(token=TOKEN, endpoint="http://127.0.0.1:1/inference")
    assert "mistral-ai/Codestral-2501" in repr(llm)
    assert "127.0.0.1:1" in repr(llm)
    assert TOKEN not in repr(llm)
    assert TOKEN not in repr(llm.settings)


def test_unknown_provider_lists_the_supported_ones():
    with pytest.raises(ConfigurationError, match="github") as caught:
        GitHubLLM(provider="bedrock", token="x")
    assert "openai" in str(caught.value)


def test_bad_endpoint_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="not an http"):
        GitHubLLM(token="x", endpoint="models.github.ai/inference")


@pytest.mark.parametrize(
    ("provider", "given", "base", "query"),
    [
        (
            "github",
            "https://h/inference?api-version=2024-12-01-preview",
            "https://h/inference",
            (("api-version", "2024-12-01-preview"),),
        ),
        ("github", "https://h/inference/chat/completions", "https://h/inference", ()),
        ("github", "https://h/inference/v1/chat/completions/", "https://h/inference", ()),
        ("openai", "http://h:11434/v1/chat/completions", "http://h:11434", ()),
        ("openai", "http://h/v1?foo=bar", "http://h", (("foo", "bar"),)),
        ("mistral", "https://api.mistral.ai/v1", "https://api.mistral.ai", ()),
        (
            "azure",
            "https://r.services.ai.azure.com/models/chat/completions",
            "https://r.services.ai.azure.com",
            (),
        ),
    ],
)
def test_endpoints_in_every_pasted_form_are_normalised(provider, given, base, query):
    settings = resolve_settings(
        provider=provider, endpoint=given, model="m", token="k" * 10, env={}
    )
    assert settings.endpoint == base
    assert tuple((k, v.reveal()) for k, v in settings.query) == query


def test_azure_api_version_may_come_from_the_endpoint_query():
    settings = resolve_settings(
        provider="azure",
        model="m",
        token="k" * 10,
        env={},
        endpoint="https://r.x/models?api-version=2024-10-01",
    )
    assert settings.api_version == "2024-10-01"
    assert settings.query == ()
    assert settings.sources["api_version"] == "endpoint query"
    explicit = resolve_settings(
        provider="azure",
        model="m",
        token="k" * 10,
        env={},
        endpoint="https://r.x/models?api-version=2024-10-01",
        api_version="2025-01-01",
    )
    assert explicit.api_version == "2025-01-01"


def test_query_on_the_endpoint_reaches_the_wire(fake, make_llm):
    make_llm(endpoint=f"{fake.url}?api-version=2024-12-01-preview").chat("hi")
    assert fake.last_request.path == "/inference/v1/chat/completions"
    assert fake.last_request.query == {"api-version": "2024-12-01-preview"}


@pytest.mark.parametrize("bad", ["ghp_part1\npart2", "ghp_with space", "ghp_tøken"])
def test_a_malformed_token_is_refused_without_being_echoed(monkeypatch, bad):
    monkeypatch.setenv("GITHUB_TOKEN", bad)
    with pytest.raises(ConfigurationError) as caught:
        GitHubLLM()
    assert "GITHUB_TOKEN" in str(caught.value)
    assert "part" not in str(caught.value) and "tøken" not in str(caught.value)


@pytest.mark.parametrize(
    "kwargs",
    [{"temperature": "hot"}, {"temp": True}],  # settings: ConfigurationError, test_validation
)
def test_settings_of_the_wrong_type_are_invalid_request_errors(kwargs):
    from sigla.llm import InvalidRequestError

    with pytest.raises(InvalidRequestError):
        GitHubLLM(token=TOKEN, **kwargs)


def test_a_password_in_the_endpoint_is_masked_everywhere(fake, make_llm):
    from sigla.llm import APIConnectionError

    url = f"http://user:hunter2secret@127.0.0.1:{fake.base_url.rsplit(':', 1)[1]}"
    llm = make_llm(endpoint=f"{url}/nowhere", max_retries=0)
    assert "hunter2secret" not in repr(llm)
    with pytest.raises(Exception) as caught:
        llm.chat("hi")
    assert "hunter2secret" not in str(caught.value)
    assert not isinstance(caught.value, APIConnectionError)


# -- pins of what a user's configuration must never do


def test_the_github_cli_token_never_goes_to_another_provider(tmp_path, monkeypatch):
    called = tmp_path / "called"
    gh = tmp_path / "gh"
    gh.write_text(f"#!/bin/sh\ntouch {called}\necho gho_fromcli\n")
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    for provider in ("mistral", "azure"):
        with pytest.raises(MissingTokenError):
            resolve_settings(
                provider=provider, endpoint="https://r.services.ai.azure.com", model="m", env={}
            )
    settings = resolve_settings(provider="openai", endpoint="http://h/v1", model="m", env={})
    assert settings.token is None
    assert not called.exists()  # gh was not even asked


def test_an_org_applies_to_github_only():
    env = {"GITHUB_MODELS_ORG": "acme"}
    for provider, endpoint in (("openai", "http://h/v1"), ("mistral", None)):
        settings = resolve_settings(
            provider=provider, endpoint=endpoint, model="m", token="k" * 10, org="acme", env=env
        )
        assert "/orgs/" not in settings.endpoint and settings.org is None


def test_whitespace_only_variables_count_as_unset():
    env = {"GITHUB_TOKEN": "  \t", "SIGLA_LLM_MODEL": " ", "SIGLA_LLM_PROVIDER": "  "}
    with pytest.raises(MissingTokenError):
        resolve_settings(env=env, gh_token=lambda: None)
    settings = resolve_settings(env={**env, "GITHUB_TOKEN": " ghp_x "}, gh_token=lambda: None)
    assert settings.provider == "github" and settings.model == "mistral-ai/Codestral-2501"
    assert settings.token is not None and settings.token.reveal() == "ghp_x"


def test_empty_string_arguments_count_as_not_given():
    settings = resolve_settings(provider="", model="", endpoint="", org="", token="k" * 10, env={})
    assert settings.provider == "github" and settings.model == "mistral-ai/Codestral-2501"
    assert settings.endpoint == "https://models.github.ai/inference" and settings.org is None
    with pytest.raises(MissingTokenError):
        resolve_settings(token="", env={}, gh_token=lambda: None)
