"""One GitHubLLM, four providers: each end to end against the double's routes for it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import TOKEN, run_chat, run_stream

from sigla.cli import main
from sigla.llm import (
    APIStatusError,
    AuthenticationError,
    ConfigurationError,
    GitHubLLM,
    GitHubModelsRetiredError,
    MissingTokenError,
    RateLimitError,
    StreamError,
)

pytestmark = pytest.mark.e2e

PROVIDERS = ["github", "azure", "mistral", "openai"]


def provider_kwargs(provider: str, fake) -> dict:
    """How a user points each provider at the double, as the README recipes do."""
    return {
        "github": {"endpoint": fake.url, "token": TOKEN},
        "azure": {"endpoint": f"{fake.base_url}/models", "token": TOKEN, "model": "Codestral-2501"},
        "mistral": {"endpoint": fake.base_url, "token": TOKEN},
        "openai": {"endpoint": f"{fake.base_url}/v1", "model": "qwen2.5-coder", "token": None},
    }[provider]


@pytest.fixture(params=PROVIDERS)
def provider(request) -> str:
    return request.param


@pytest.fixture
def provider_llm(provider, fake, make_llm) -> GitHubLLM:
    return make_llm(provider=provider, **provider_kwargs(provider, fake))


EXPECTED = {
    # provider: (path, model on the wire, seed field, query)
    "github": ("/inference/v1/chat/completions", "mistral-ai/Codestral-2501", "seed", {}),
    "azure": (
        "/models/chat/completions",
        "Codestral-2501",
        "seed",
        {"api-version": "2024-05-01-preview"},
    ),
    "mistral": ("/v1/chat/completions", "codestral-latest", "random_seed", {}),
    "openai": ("/v1/chat/completions", "qwen2.5-coder", "seed", {}),
}


def test_chat_reaches_each_providers_route_with_its_names(provider, provider_llm, fake, mode):
    assert run_chat(provider_llm, mode, "hi", seed=7) == "Echo: hi"
    path, model, seed_field, query = EXPECTED[provider]
    request = fake.last_request
    assert request.path == path
    assert request.body["model"] == model
    assert request.body[seed_field] == 7
    for key, value in query.items():
        assert request.query[key] == value
    assert request.headers["authorization"] == "Bearer ***"
    if provider == "openai":
        assert not fake.saw_token(TOKEN)
    else:
        assert fake.saw_token(TOKEN)


def test_stream_works_for_every_provider(provider, provider_llm, fake, mode):
    fake.reply("one two three", chunks=["one ", "two ", "three"])
    pieces, error = run_stream(provider_llm, mode, "count")
    assert error is None
    assert pieces == ["one ", "two ", "three"]
    assert fake.last_request.path == EXPECTED[provider][0]


def test_stream_cut_is_a_stream_error_for_every_provider(provider, provider_llm, fake, mode):
    fake.reply("one two three", chunks=["one ", "two ", "three"])
    fake.fail("stream_cut", after=1)
    pieces, error = run_stream(provider_llm, mode, "count")
    assert pieces == ["one "]
    assert isinstance(error, StreamError)


def test_rate_limits_are_retried_for_every_provider(provider, provider_llm, fake, clock, mode):
    fake.fail("rate_limit_minute", retry_after=2)
    assert run_chat(provider_llm, mode, "hi") == "Echo: hi"
    assert 2 <= clock.sleeps[0] < 3
    fake.fail("rate_limit_day")
    with pytest.raises(RateLimitError):
        run_chat(provider_llm, mode, "hi")


def test_401_names_the_providers_credential(provider, provider_llm, fake, mode):
    fake.fail("bad_credentials")
    with pytest.raises(AuthenticationError) as caught:
        run_chat(provider_llm, mode, "hi")
    hint = {
        "github": "models:read",
        "azure": "AZURE_API_KEY",
        "mistral": "MISTRAL_API_KEY",
        "openai": "SIGLA_LLM_API_KEY",
    }[provider]
    assert hint in str(caught.value)


def test_retirement_error_is_only_for_github(fake, make_llm):
    fake.fail("retired_404")
    llm = make_llm(provider="openai", **provider_kwargs("openai", fake))
    with pytest.raises(APIStatusError) as caught:
        llm.chat("hi")
    assert not isinstance(caught.value, GitHubModelsRetiredError)
    assert caught.value.status_code == 404


# ---------------------------------------------------------------- resolution


def test_provider_resolves_argument_then_environment_then_github(monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", "mistral-key-xyz")
    monkeypatch.setenv("GITHUB_TOKEN", "github-token-xyz")
    assert GitHubLLM().provider == "github"
    monkeypatch.setenv("SIGLA_LLM_PROVIDER", "mistral")
    llm = GitHubLLM()
    assert (llm.provider, llm.model, llm.endpoint) == (
        "mistral",
        "codestral-latest",
        "https://api.mistral.ai",
    )
    assert llm.settings.sources["provider"] == "environment variable SIGLA_LLM_PROVIDER"
    assert GitHubLLM(provider="github").provider == "github"


def test_azure_reads_its_variables_and_sigla_endpoint_overrides_them(monkeypatch):
    monkeypatch.setenv("AZURE_ENDPOINT", "https://res.services.ai.azure.com/models")
    monkeypatch.setenv("AZURE_API_KEY", "azure-key-xyz")
    llm = GitHubLLM(provider="azure", model="Codestral-2501")
    assert llm.endpoint == "https://res.services.ai.azure.com"
    assert llm.settings.token.reveal() == "azure-key-xyz"
    assert llm.settings.api_version == "2024-05-01-preview"
    monkeypatch.setenv("SIGLA_LLM_ENDPOINT", "https://proxy.example/models/chat/completions")
    monkeypatch.setenv("AZURE_API_VERSION", "2024-10-01")
    llm = GitHubLLM(provider="azure", model="Codestral-2501")
    assert llm.endpoint == "https://proxy.example"
    assert llm.settings.api_version == "2024-10-01"


@pytest.mark.parametrize(
    ("provider", "env", "match"),
    [
        ("azure", {"AZURE_API_KEY": "k" * 10}, "AZURE_ENDPOINT"),
        ("azure", {"AZURE_ENDPOINT": "https://r.services.ai.azure.com"}, "AZURE_API_KEY"),
        ("mistral", {}, "MISTRAL_API_KEY"),
        ("openai", {}, "SIGLA_LLM_ENDPOINT"),
        ("openai", {"SIGLA_LLM_ENDPOINT": "http://localhost:11434/v1"}, "model="),
        ("azure", {"AZURE_API_KEY": "k" * 10, "AZURE_ENDPOINT": "https://r.x"}, "model="),
    ],
)
def test_missing_settings_say_which_variable_to_set(monkeypatch, provider, env, match):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=match):
        GitHubLLM(provider=provider, model=None if match == "model=" else "m")


def test_missing_mistral_key_is_a_missing_token_error():
    with pytest.raises(MissingTokenError, match="MISTRAL_API_KEY"):
        GitHubLLM(provider="mistral")


def test_openai_needs_no_key_and_never_sends_a_stray_mistral_key(fake, make_llm, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", "stray-mistral-key")
    llm = make_llm(provider="openai", endpoint=f"{fake.base_url}/v1", model="m", token=None)
    llm.chat("hi")
    assert not fake.saw_token("stray-mistral-key")


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_openai_base_url_may_end_in_v1_without_doubling_it(fake, make_llm, suffix):
    llm = make_llm(provider="openai", endpoint=fake.base_url + suffix, model="m")
    llm.chat("hi")
    assert fake.last_request.path == "/v1/chat/completions"


@pytest.mark.parametrize("suffix", ["", "/models", "/models/", "/models/chat/completions"])
def test_azure_endpoint_forms_all_reach_the_foundry_route(fake, make_llm, suffix):
    llm = make_llm(provider="azure", endpoint=fake.base_url + suffix, model="Codestral-2501")
    llm.chat("hi")
    assert fake.last_request.path == "/models/chat/completions"
    assert fake.last_request.query["api-version"] == "2024-05-01-preview"


# ---------------------------------------------------------------- CLI


def test_cli_chat_with_provider_flag(fake):
    env = {"AZURE_ENDPOINT": f"{fake.base_url}/models", "AZURE_API_KEY": TOKEN}
    result = CliRunner().invoke(
        main, ["chat", "--provider", "azure", "-m", "Codestral-2501", "hi"], env=env
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "Echo: hi\n"
    assert fake.last_request.path == "/models/chat/completions"


def test_doctor_shows_where_each_setting_came_from_and_checks(fake):
    env = {"GITHUB_TOKEN": TOKEN, "SIGLA_LLM_ENDPOINT": fake.url}
    result = CliRunner().invoke(main, ["doctor", "-m", "openai/gpt-4o-mini"], env=env)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "provider      github (GitHub Models)   (from default)" in out
    assert f"endpoint      {fake.url}   (from environment variable SIGLA_LLM_ENDPOINT)" in out
    assert "model         openai/gpt-4o-mini   (from argument)" in out
    assert "credential    found (ghp_…cret)   (from environment variable GITHUB_TOKEN)" in out
    assert "limits        none   (from default: none by default for this endpoint)" in out
    assert "check         OK" in out
    assert TOKEN not in result.output
    assert fake.last_request.body["model"] == "openai/gpt-4o-mini"


def test_doctor_reports_a_failing_check_with_the_fix(fake):
    fake.retire("410")
    env = {"GITHUB_TOKEN": TOKEN, "SIGLA_LLM_ENDPOINT": fake.url}
    result = CliRunner().invoke(main, ["doctor"], env=env)
    assert result.exit_code == 1
    assert "check         FAILED: GitHub Models was retired on 2026-07-30" in result.stdout
    assert "SIGLA_LLM_PROVIDER=azure" in result.stdout
    assert TOKEN not in result.output


def test_doctor_without_credential_says_how_to_get_one():
    result = CliRunner().invoke(main, ["doctor"], env={})
    assert result.exit_code == 2
    assert "credential    not found" in result.stdout
    assert "GITHUB_TOKEN" in result.stdout


def test_doctor_with_an_unusable_configuration(fake):
    result = CliRunner().invoke(main, ["doctor", "--provider", "openai"], env={})
    assert result.exit_code == 2
    assert "SIGLA_LLM_ENDPOINT" in result.stdout


def test_the_double_never_stores_the_credential(fake, provider_llm):
    provider_llm.chat("hi")
    assert TOKEN not in repr(fake.requests)


@pytest.mark.parametrize("provider", ["mistral", "openai"])
def test_models_lists_v1_models_for_mistral_and_openai_servers(fake, make_llm, provider):
    llm = make_llm(provider=provider, **provider_kwargs(provider, fake))
    ids = {m.id for m in llm.models()}
    assert "Codestral-2501" in ids
    assert fake.last_request.path == "/v1/models"


def test_models_for_azure_explains_that_deployments_are_the_models(fake, make_llm):
    llm = make_llm(provider="azure", **provider_kwargs("azure", fake))
    with pytest.raises(ConfigurationError, match="deployments"):
        llm.models()


def test_cli_models_for_an_openai_server_needs_no_model(fake):
    env = {"SIGLA_LLM_PROVIDER": "openai", "SIGLA_LLM_ENDPOINT": f"{fake.base_url}/v1"}
    result = CliRunner().invoke(main, ["models"], env=env)
    assert result.exit_code == 0, result.output
    assert "Codestral-2501" in result.stdout


def test_azure_rate_limits_are_waited_to_the_millisecond(fake, make_llm, clock, mode):
    llm = make_llm(provider="azure", **provider_kwargs("azure", fake))
    fake.fail("rate_limit_minute", retry_after=2.25)
    assert run_chat(llm, mode, "hi") == "Echo: hi"
    first = fake.requests[0]
    assert first.status == 429
    # Azure sends retry-after: 3 (rounded up) and retry-after-ms: 2250; the exact one wins.
    assert 2.25 <= clock.sleeps[0] < 2.25 + 0.5


def test_azure_401_names_the_azure_key(fake, make_llm, mode):
    llm = make_llm(provider="azure", **{**provider_kwargs("azure", fake), "token": "wrong-key-123"})
    fake.fail("bad_credentials")
    with pytest.raises(AuthenticationError) as caught:
        run_chat(llm, mode, "hi")
    assert "Access denied due to invalid subscription key" in str(caught.value)
    assert "AZURE_API_KEY" in str(caught.value)
