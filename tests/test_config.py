"""Settings resolve once: argument > environment > default, and say where each came from."""

from __future__ import annotations

import os
import re
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


# -- the pieces of resolution, one by one


def _settings(**kwargs):
    kwargs.setdefault("token", "k" * 10)
    kwargs.setdefault("env", {})
    kwargs.setdefault("gh_token", lambda: None)
    return resolve_settings(**kwargs)


def test_the_displayed_endpoint_masks_each_credential_of_the_url():
    plain = _settings(endpoint="https://h/inference")
    assert plain.display_endpoint == "https://h/inference"
    assert [s.reveal() for s in plain.secrets] == ["k" * 10]
    full = _settings(endpoint="https://me:pw@h/inference?key=q1&x=2", provider="openai", model="m")
    assert full.display_endpoint == "https://***@h/inference?key=***&x=***"
    assert sorted(s.reveal() for s in full.secrets) == ["2", "k" * 10, "me", "me:pw", "pw", "q1"]
    keyless = _settings(endpoint="http://h/v1", provider="openai", model="m", token=None)
    assert keyless.secrets == ()


def test_only_githubs_own_host_is_github_models():
    from sigla._config import on_github_models

    assert on_github_models("github", "https://models.github.ai/inference")
    assert on_github_models("github", "https://models.github.ai/orgs/acme/inference")
    assert not on_github_models("github", "http://127.0.0.1:8/inference")
    assert not on_github_models("openai", "https://models.github.ai/inference")
    assert not on_github_models("github", "http://[::1/inference")


def test_mask_userinfo_hides_userinfo_and_query_values():
    from sigla._config import mask_userinfo

    assert mask_userinfo("https://h/x") == "https://h/x"
    assert mask_userinfo("https://u:p@w@h:8/x?a=1&b=") == "https://***@h:8/x?a=***&b=***"
    assert mask_userinfo("http://u:p@[::1/x") == "http://***@[::1/x"


def _gh(tmp_path, monkeypatch, script: str) -> None:
    gh = tmp_path / "gh"
    gh.write_text("#!/bin/sh\n" + script + "\n")
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.parametrize(
    "script",
    ["echo '  '", "echo gho_x; exit 1", "exec sleep 5", "exec /nonexistent/interpreter"],
)
def test_gh_gives_no_token_when_it_fails_says_nothing_or_hangs(tmp_path, monkeypatch, script):
    from sigla._config import gh_cli_token

    _gh(tmp_path, monkeypatch, script)
    assert gh_cli_token(timeout=0.5) is None


def test_gh_is_asked_for_its_token_and_the_line_is_trimmed(tmp_path, monkeypatch):
    from sigla._config import gh_cli_token

    _gh(tmp_path, monkeypatch, '[ "$*" = "auth token" ] && echo "  gho_x  "')
    assert gh_cli_token() == "gho_x"
    (tmp_path / "gh").write_bytes(b"\x7fELF not really")
    assert gh_cli_token() is None  # the OS cannot run it


def test_the_environment_of_a_traceback_lists_no_variable():
    from sigla._config import _Environment

    env = _Environment({"GITHUB_TOKEN": "ghp_secret", "A": "1"})
    assert "ghp_secret" not in repr(env) and "GITHUB_TOKEN" not in repr(env)
    assert "2" in repr(env)
    assert (len(env), sorted(env), env["A"], env.get("B")) == (2, ["A", "GITHUB_TOKEN"], "1", None)


def test_a_credential_argument_must_be_text():
    from sigla._config import as_secret
    from sigla._secret import Secret

    given = Secret("s")
    assert as_secret(given) is given and as_secret(None) is None
    assert as_secret("abc") == Secret("abc")
    with pytest.raises(ConfigurationError, match="bytes"):
        as_secret(b"abc")  # type: ignore[arg-type]


def test_the_credential_comes_from_the_argument_then_the_variable_then_gh():
    env = {"GITHUB_TOKEN": " ghp_env "}
    given = _settings(token="  ghp_arg ", env=env, gh_token=lambda: "gho_cli")
    assert (given.token.reveal(), given.sources["token"]) == ("ghp_arg", "argument")
    blank = _settings(token=" ", env=env, gh_token=lambda: "gho_cli")
    assert blank.token.reveal() == "ghp_env"
    assert blank.sources["token"] == "environment variable GITHUB_TOKEN"
    cli = _settings(token=None, gh_token=lambda: "gho_cli")
    assert (cli.token.reveal(), cli.sources["token"]) == ("gho_cli", "gh auth token")
    none = _settings(token=None, require_token=False)
    assert none.token is None and "token" not in none.sources


def test_an_org_goes_before_the_inference_route_once():
    def endpoint(url: str) -> str:
        return _settings(endpoint=url, org="acme").endpoint

    assert endpoint("https://h/inference/") == "https://h/orgs/acme/inference"
    assert endpoint("https://h/api") == "https://h/api/orgs/acme/inference"
    assert endpoint("https://h") == "https://h/orgs/acme/inference"
    assert endpoint("https://h/orgs/x/inference") == "https://h/orgs/x/inference"
    assert _settings(org=" ").org is None


def test_normalise_endpoint_keeps_the_credentials_aside():
    from sigla._config import Endpoint, normalise_endpoint

    assert normalise_endpoint(" https://u%40x:p%3A@h/v1/chat/completions/#frag ", "github") == (
        Endpoint("https://h", (), "u@x:p:")
    )
    assert normalise_endpoint("https://h/models/v1?a=1&b=", "azure") == Endpoint(
        "https://h/models/v1", (("a", "1"), ("b", "")), None
    )
    assert normalise_endpoint("https://@h/x", "openai") == Endpoint("https://h/x", (), "")


def test_the_provider_name_is_read_in_any_case():
    settings = _settings(provider=" Mistral ")
    assert (settings.provider, settings.spec.seed_field) == ("mistral", "random_seed")
    assert _settings(
        env={"SIGLA_LLM_PROVIDER": "OPENAI"}, endpoint="http://h", model="m"
    ).provider == ("openai")


def test_a_model_id_that_cannot_be_sent_is_refused():
    for bad in ("gpt 4o", "m\nx", "m\x00"):
        with pytest.raises(ConfigurationError, match="model"):
            _settings(model=bad)
    with pytest.raises(ConfigurationError, match="SIGLA_LLM_MODEL"):
        _settings(env={"SIGLA_LLM_MODEL": "a\tb"})


def test_model_and_token_may_be_left_out_when_not_needed():
    settings = _settings(
        provider="azure",
        endpoint="https://r.x",
        token=None,
        require_token=False,
        require_model=False,
    )
    assert (settings.model, settings.token) == ("", None)
    with pytest.raises(ConfigurationError, match="model"):
        _settings(provider="azure", endpoint="https://r.x")


def test_the_retirement_is_mentioned_only_for_github_models_itself():
    from sigla._config import PROVIDERS, RETIRED_SWITCH

    with pytest.raises(MissingTokenError) as caught:
        _settings(token=None)
    assert "retired" in str(caught.value)
    assert str(caught.value) == f"{PROVIDERS['github'].credential_hint} {RETIRED_SWITCH}"
    with pytest.raises(MissingTokenError) as caught:
        _settings(token=None, endpoint="http://127.0.0.1:9/inference")
    assert "retired" not in str(caught.value)


def test_numbers_come_from_arguments_the_environment_or_defaults():
    env = {"SIGLA_LLM_TIMEOUT": " 120 ", "SIGLA_LLM_MAX_RETRIES": "9"}
    settings = _settings(env=env)
    assert (settings.timeout, settings.max_retries, settings.max_retry_wait) == (120.0, 3, 60.0)
    assert settings.sources["timeout"] == "environment variable SIGLA_LLM_TIMEOUT"
    assert settings.sources["max_retries"] == "default"
    given = _settings(env=env, timeout=5, max_retries=0, max_retry_wait=0.5)
    assert (given.timeout, given.max_retries, given.max_retry_wait) == (5, 0, 0.5)
    assert type(given.max_retries) is int and given.sources["timeout"] == "argument"
    assert _settings(env={"SIGLA_LLM_TIMEOUT": "86400"}).timeout == 86400.0
    assert _settings(env={"SIGLA_LLM_TIMEOUT": "0.001"}).timeout == 0.001
    with pytest.raises(ConfigurationError, match="SIGLA_LLM_TIMEOUT"):
        _settings(env={"SIGLA_LLM_TIMEOUT": "86400.5"})
    assert _settings(env={"SIGLA_LLM_TIMEOUT": "  "}).sources["timeout"] == "default"
    with pytest.raises(ConfigurationError) as caught:
        _settings(env={"SIGLA_LLM_TIMEOUT": "9" * 100})
    assert "9" * 40 in str(caught.value) and "9" * 41 not in str(caught.value), "quoted, cut"


def test_the_azure_api_version_and_the_limits_say_where_they_came_from():
    azure = _settings(provider="azure", endpoint="https://r.x?key=k", model="m")
    assert azure.api_version == "2024-05-01-preview" and azure.sources["api_version"] == "default"
    assert [k for k, _ in azure.query] == ["key"]
    from_env = _settings(
        provider="azure",
        endpoint="https://r.x?api-version=1",
        model="m",
        env={"AZURE_API_VERSION": "2"},
    )
    assert from_env.api_version == "2"
    assert from_env.sources["api_version"] == "environment variable AZURE_API_VERSION"
    assert _settings(api_version="2").api_version is None  # only Azure's clients send one
    from sigla._limits import RateLimits

    limits = RateLimits(requests_per_minute=5)
    given = _settings(limits=limits)
    assert given.limits is limits and given.sources["limits"] == "argument"
    assert _settings().sources["limits"].startswith("default: ")


def test_max_response_bytes_is_a_whole_number_of_bytes_from_1024():
    assert _settings().max_response_bytes == 32 * 1024 * 1024
    assert _settings(max_response_bytes=1024).max_response_bytes == 1024
    for bad in (1023, True, 2048.0, "4096"):
        with pytest.raises(ConfigurationError, match="max_response_bytes"):
            _settings(max_response_bytes=bad)


def test_a_refused_endpoint_is_named_masked_and_cut():
    with pytest.raises(ConfigurationError) as caught:
        _settings(endpoint="http://u:hunter2@exa mple.com/x")
    assert "exa mple.com" in str(caught.value) and "hunter2" not in str(caught.value)
    assert re.search(r"https?://[^\s)]+/inference", str(caught.value)), "an example that works"
    long = "http://h:0/" + "p" * 300
    with pytest.raises(ConfigurationError) as caught:
        _settings(endpoint=long)
    assert long[:200] in str(caught.value) and long[:201] not in str(caught.value)


def test_gh_that_hangs_is_given_up_on(tmp_path, monkeypatch):
    from sigla._config import gh_cli_token

    _gh(tmp_path, monkeypatch, "sleep 2\necho gho_late")
    assert gh_cli_token(timeout=0.3) is None


def test_a_path_keeps_its_last_letter():
    from sigla._config import normalise_endpoint

    assert normalise_endpoint("https://h/APIX/", "openai").url == "https://h/APIX"
    assert (
        _settings(endpoint="https://h/APIX", org="o").endpoint == "https://h/APIX/orgs/o/inference"
    )


def test_every_successor_switch_is_offered_in_one_sentence():
    from sigla import _constants as C
    from sigla._config import successor_switches

    said = successor_switches()
    assert all(f"`{line}`" in said and where in said for where, line in C.SUCCESSOR_SWITCHES)
    assert said.split("; ") == [f"{where}: `{line}`" for where, line in C.SUCCESSOR_SWITCHES]


def test_what_a_refusal_names_it_names_in_full():
    with pytest.raises(ConfigurationError) as caught:
        _settings(provider="nope")
    assert "azure, github, mistral, openai" in str(caught.value), "the choices, as a list"
    with pytest.raises(ConfigurationError) as caught:
        _settings(provider="azure")
    assert "SIGLA_LLM_ENDPOINT or AZURE_ENDPOINT" in str(caught.value), "both variables"
    with pytest.raises(ConfigurationError) as caught:
        _settings(model="gpt 4o")
    assert "gpt 4o" in str(caught.value), "the model id refused"
    with pytest.raises(ConfigurationError) as caught:
        _settings(max_retry_wait=-7.5)
    assert "-7.5" in str(caught.value), "the value refused"
    with pytest.raises(ConfigurationError) as caught:
        _settings(max_response_bytes=1023)
    assert "1023" in str(caught.value), "the value refused"


def test_github_models_gets_its_tiers_limits_by_default_and_other_endpoints_none():
    from sigla._limits import GITHUB_TIERS, RateLimits

    settings = _settings()  # GitHub Models, Codestral: the 'low' tier
    assert settings.limits == GITHUB_TIERS["low"] and settings.limits != RateLimits()
    assert settings.sources["limits"] == "default: GitHub's 'low' tier"
    assert _settings(endpoint="http://127.0.0.1:9/inference").limits == RateLimits()


def test_where_the_org_came_from_is_recorded():
    assert _settings(org="acme").sources["org"] == "argument"
    from_env = _settings(env={"GITHUB_MODELS_ORG": "acme"})
    assert from_env.sources["org"] == "environment variable GITHUB_MODELS_ORG"
    assert "org" not in _settings().sources
