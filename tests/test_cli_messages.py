"""The CLI speaks its user's language: variables and options, never the library's keyword
arguments or attributes; and a newcomer on the retired service is told how to switch."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from conftest import TOKEN
from test_cli import assert_one_error_line

from sigla._config import PROVIDERS
from sigla.cli import _in_cli_words, main
from sigla.testing import FAULTS

pytestmark = pytest.mark.e2e

# A library keyword argument as its messages spell one: `pass token=`, `raise timeout=`.
KEYWORD_ARGUMENT = re.compile(r"(?<![\w.-])[a-z_]+=(?=[\s,.;)]|$)")
SWITCHES = [
    "export SIGLA_LLM_PROVIDER=azure AZURE_ENDPOINT=",
    "export SIGLA_LLM_PROVIDER=mistral MISTRAL_API_KEY=<key>",
    "export SIGLA_LLM_PROVIDER=openai SIGLA_LLM_ENDPOINT=http://localhost:11434/v1",
]


def invoke(args, env):
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def assert_cli_language(text):
    assert not KEYWORD_ARGUMENT.search(text), text
    assert ".text" not in text


# ---------------------------------------------------------------- missing credentials


def _missing_credential_env(provider, fake):
    """A configuration complete but for the credential, off GitHub's own host."""
    if provider == "azure":
        return {
            "SIGLA_LLM_PROVIDER": "azure",
            "AZURE_ENDPOINT": f"{fake.base_url}/models",
            "SIGLA_LLM_MODEL": "Codestral-2501",
        }
    return {"SIGLA_LLM_PROVIDER": provider, "SIGLA_LLM_ENDPOINT": fake.url}


@pytest.mark.parametrize("command", [["chat", "hi"], ["models"]])
@pytest.mark.parametrize(
    "provider", [name for name, spec in PROVIDERS.items() if spec.credential_required]
)
def test_a_missing_credential_names_the_providers_variables(fake, provider, command):
    spec = PROVIDERS[provider]
    result = invoke(command, _missing_credential_env(provider, fake))
    assert result.exit_code == 2
    assert_one_error_line(result)
    for variable in spec.credential_envs:
        assert variable in result.stderr
    assert ("gh auth login" in result.stderr) == spec.use_gh_cli
    assert "token=" not in result.stderr
    assert_cli_language(result.stderr)
    assert "retired" not in result.stderr  # not GitHub's own host
    assert fake.requests == []


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"GITHUB_MODELS_ORG": "acme"},
        {"SIGLA_LLM_ENDPOINT": "https://models.github.ai/inference"},
    ],
    ids=["nothing-configured", "organization", "explicit-endpoint"],
)
def test_a_newcomer_without_configuration_is_told_of_the_retirement(env):
    result = invoke(["chat", "hi"], env)
    assert result.exit_code == 2
    assert_one_error_line(result)
    assert "GITHUB_TOKEN" in result.stderr
    assert "retired on 2026-07-30" in result.stderr
    for switch in SWITCHES:
        assert switch in result.stderr
    assert "token=" not in result.stderr


def test_the_retirement_is_not_mentioned_for_a_custom_github_endpoint(fake):
    result = invoke(["chat", "-e", fake.url, "hi"], {})
    assert result.exit_code == 2
    assert "GITHUB_TOKEN" in result.stderr
    assert "retired" not in result.stderr


def test_doctor_on_githubs_own_host_shows_the_retirement_and_the_switches():
    result = invoke(["doctor"], {})
    assert result.exit_code == 2
    out = result.stdout
    assert "retired on 2026-07-30" in out
    for switch in SWITCHES:
        assert switch in out
    check = next(line for line in out.splitlines() if line.startswith("check"))
    assert check.startswith("check         FAILED: No credential for GitHub Models")
    assert "GITHUB_TOKEN" in check and "gh auth login" in check
    assert "retired" not in check  # said once, above
    assert "token=" not in out


def test_doctor_on_a_custom_endpoint_says_nothing_of_the_retirement(fake):
    result = invoke(["doctor"], {"GITHUB_TOKEN": TOKEN, "SIGLA_LLM_ENDPOINT": fake.url})
    assert result.exit_code == 0, result.stdout
    assert "retired" not in result.stdout


def test_doctor_without_a_credential_off_github_speaks_cli():
    result = invoke(["doctor", "-p", "mistral"], {})
    assert result.exit_code == 2
    assert "check         FAILED: No credential for Mistral" in result.stdout
    assert "MISTRAL_API_KEY" in result.stdout
    assert "token=" not in result.stdout
    assert "retired" not in result.stdout


# ---------------------------------------------------------------- library words become options


@pytest.mark.parametrize(
    ("args", "env", "option"),
    [
        (["chat", "-p", "openai", "hi"], {}, "-e/--endpoint"),
        (
            ["chat", "hi"],
            {"SIGLA_LLM_PROVIDER": "azure", "AZURE_ENDPOINT": "http://x"},
            "-m/--model",
        ),
        (["chat", "-p", "bedrock", "hi"], {}, "-p/--provider"),
        (
            ["models", "-p", "azure"],
            {"AZURE_ENDPOINT": "http://x", "AZURE_API_KEY": "k"},
            "-m/--model",
        ),
    ],
    ids=["endpoint", "model", "provider", "azure-models"],
)
def test_configuration_errors_name_the_cli_options(args, env, option):
    result = invoke(args, env)
    assert result.exit_code == 2
    assert_one_error_line(result)
    assert option in result.stderr
    assert_cli_language(result.stderr)


def test_doctor_names_the_cli_options_too():
    result = invoke(["doctor", "-p", "openai"], {})
    assert result.exit_code == 2
    assert "-e/--endpoint" in result.stdout
    assert_cli_language(result.stdout)


def test_a_timeout_names_the_timeout_option(fake):
    fake.fail("timeout", seconds=5)
    result = invoke(
        ["chat", "--timeout", "0.3", "--max-retries", "0", "hi"],
        {"GITHUB_TOKEN": TOKEN, "SIGLA_LLM_ENDPOINT": fake.url},
    )
    assert result.exit_code == 1
    assert "raise --timeout" in result.stderr.lower()
    assert_cli_language(result.stderr)


@pytest.mark.parametrize(
    "text",
    [
        "SIGLA_LLM_ENDPOINT=http://localhost:11434/v1",
        "finish_reason='content_filter'",
        "?api-version=2024-05-01-preview",
        "over max_retry_wait=60 s",
    ],
)
def test_only_keyword_arguments_are_rewritten(text):
    assert _in_cli_words(text) == text


def _fault_cases():
    for fault in FAULTS:
        for stream in (True, False):
            yield pytest.param(fault, stream, id=f"{fault}-{'stream' if stream else 'no-stream'}")


@pytest.mark.parametrize(("fault", "stream"), list(_fault_cases()))
def test_no_fault_shows_library_keywords_or_attributes(fake, fault, stream):
    params = {"seconds": 2} if fault in ("timeout", "stream_stall") else {}
    fake.fail(fault, **params)
    args = ["chat", "--max-retries", "0", "--timeout", "0.3", "hi"]
    result = invoke(
        args if stream else [*args, "--no-stream"],
        {"GITHUB_TOKEN": TOKEN, "SIGLA_LLM_ENDPOINT": fake.url},
    )
    assert_cli_language(result.stderr)
