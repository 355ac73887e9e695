"""`sigla prompt run|check|schema` against the double: variables, stdin, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TOKEN

from sigla.cli import main

ROOT = Path(__file__).resolve().parent.parent

PROMPT = """\
name: T
model: openai/gpt-4o-mini
modelParameters: {temperature: 0.3, maxTokens: 50}
messages:
  - role: system
    content: Be brief.
  - role: user
    content: "{{topic}}: {{input}}"
"""


@pytest.fixture
def env(fake):
    return {"GITHUB_TOKEN": TOKEN, "SIGLA_LLM_ENDPOINT": fake.url}


def invoke(args, env=None, input=None):
    return CliRunner().invoke(main, args, env=env or {}, input=input, catch_exceptions=False)


@pytest.fixture
def prompt_file(tmp_path):
    path = tmp_path / "t.prompt.yml"
    path.write_text(PROMPT)
    return path


def test_run_fills_variables_and_input_from_stdin(fake, env, prompt_file, tmp_path):
    (tmp_path / "topic.txt").write_text("from a file")
    fake.reply("the answer")
    result = invoke(
        ["prompt", "run", str(prompt_file), "--var-file", f"topic={tmp_path / 'topic.txt'}"],
        env,
        input="piped text\n",
    )
    assert result.exit_code == 0, result.output
    assert result.output == "the answer\n"
    body = fake.last_request.body
    assert body["messages"][1]["content"] == "from a file: piped text"
    assert (body["model"], body["temperature"], body["max_tokens"]) == (
        "openai/gpt-4o-mini",
        0.3,
        50,
    )


def test_run_flags_override_the_file(fake, env, prompt_file):
    result = invoke(
        [
            *("prompt", "run", str(prompt_file), "hello", "--var", "topic=a=b"),
            *("-m", "openai/gpt-4o", "-t", "1", "--max-tokens", "9", "--top-p", "0.5"),
        ],
        env,
    )
    assert result.exit_code == 0, result.output
    body = fake.last_request.body
    assert body["messages"][1]["content"] == "a=b: hello"
    assert (body["model"], body["temperature"], body["max_tokens"], body["top_p"]) == (
        "openai/gpt-4o",
        1.0,
        9,
        0.5,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--var", "topic=a", "--var", "topic=b"], "given twice"),
        (["--var", "=a"], "expected name=value"),
        (["--var", "novalue"], "expected name=value"),
        ([], "no value for {{topic}}"),
    ],
)
def test_run_usage_errors_exit_2(fake, env, prompt_file, args, message):
    result = invoke(["prompt", "run", str(prompt_file), "x", *args], env)
    assert result.exit_code == 2
    assert message in result.output
    assert fake.requests == []


def test_run_of_an_invalid_file_names_file_and_line(env, tmp_path):
    path = tmp_path / "bad.prompt.yml"
    path.write_text("messages:\n  - role: robot\n    content: x\n")
    result = invoke(["prompt", "run", str(path), "x"], env)
    assert result.exit_code == 2
    assert f"{path}:2:" in result.output and "messages[0].role" in result.output


def test_check_passes_the_shipped_prompts(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = invoke(["prompt", "check"])
    assert result.exit_code == 0, result.output
    assert "0 invalid, 0 warning(s)" in result.output


def test_check_fails_on_errors_and_with_strict_on_unknown_keys(tmp_path):
    good = tmp_path / "good.prompt.yml"
    good.write_text(PROMPT.replace("maxTokens", "max_tokens"))
    bad = tmp_path / "bad.prompt.yml"
    bad.write_text("name: x\n")
    result = invoke(["prompt", "check", str(good)])
    assert result.exit_code == 0, result.output
    assert (
        "modelParameters.max_tokens" in result.output and "did you mean maxTokens" in result.output
    )
    assert invoke(["prompt", "check", "--strict", str(good)]).exit_code == 1
    result = invoke(["prompt", "check", str(good), str(bad)])
    assert result.exit_code == 1
    assert f"error: {bad}:1:1: messages: is required" in result.output


def test_check_without_files_and_no_prompts_folder_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke(["prompt", "check"]).exit_code == 2


def test_schema_prints_the_packaged_json_schema():
    result = invoke(["prompt", "schema"])
    assert result.exit_code == 0
    assert json.loads(result.output)["properties"]["responseFormat"]["enum"] == [
        "text",
        "json_object",
        "json_schema",
    ]
