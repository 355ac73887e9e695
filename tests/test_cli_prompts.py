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


# -- sigla prompt eval

EVAL_PROMPT = """\
name: E
description: evaluated
model: openai/gpt-4o-mini
messages:
  - role: user
    content: "Say {{word}}"
testData:
  - word: one
  - word: two
evaluators:
  - name: said
    string: {startsWith: "echo: say"}
  - name: WORD
    string: {contains: "{{word}}"}
"""


def eval_file(tmp_path, text=EVAL_PROMPT, name="e.prompt.yml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_eval_prints_each_case_and_the_summary_and_exits_0_when_all_pass(fake, env, tmp_path):
    result = invoke(["prompt", "eval", str(eval_file(tmp_path))], env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:4] == [
        "Running evaluation: E",
        "Description: evaluated",
        "Model: openai/gpt-4o-mini",
        "Test cases: 2",
    ]
    assert "Test case 1/2: PASSED" in lines and "Test case 2/2: PASSED" in lines
    assert "  pass  said  1.00  Expected to start with: 'echo: say'" in lines
    assert lines[-2:] == ["Passed: 2/2 (100.00%)", "All tests passed!"]


def test_eval_exits_1_when_a_case_fails(fake, env, tmp_path):
    path = eval_file(tmp_path, EVAL_PROMPT.replace("  - word: two", "  - word: two\n    x: 1"))
    path.write_text(path.read_text().replace('contains: "{{word}}"', 'contains: "one"'))
    result = invoke(["prompt", "eval", str(path)], env)
    assert result.exit_code == 1, result.output
    assert "Test case 2/2: FAILED" in result.output
    assert "  FAIL  WORD  0.00  Expected to contain: 'one'" in result.output
    assert result.output.rstrip().endswith("Passed: 1/2 (50.00%)")


def test_eval_json_is_gh_models_shape_and_an_array_for_several_files(fake, env, tmp_path):
    one = eval_file(tmp_path)
    result = invoke(["prompt", "eval", "--json", str(one)], env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert list(data) == ["name", "description", "model", "testResults", "summary"]
    assert data["summary"] == {"totalTests": 2, "passedTests": 2, "failedTests": 0, "passRate": 100}
    assert data["testResults"][1]["evaluationResults"][1] == {
        "evaluatorName": "WORD",
        "score": 1,
        "passed": True,
        "details": "Expected to contain: 'two'",
    }
    two = eval_file(tmp_path, EVAL_PROMPT.replace("name: E", "name: F"), "f.prompt.yml")
    result = invoke(["prompt", "eval", "--json", str(one), str(two)], env)
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in json.loads(result.output)] == ["E", "F"]


def test_eval_judge_model_flag_and_environment(fake, env, tmp_path):
    path = eval_file(tmp_path, EVAL_PROMPT + "  - {name: fluent, uses: github/fluency}\n")
    for text in ("Echo: Say one", "Echo: Say two", "5", "5"):
        fake.reply(text)
    result = invoke(
        ["prompt", "eval", "-c", "1", "--judge-model", "openai/gpt-4.1", str(path)], env
    )
    assert result.exit_code == 0, result.output
    assert {r.model for r in fake.requests[2:]} == {"openai/gpt-4.1"}
    assert "  pass  fluent  1.00  LLM evaluation matched choice: '5'" in result.output
    fake.reset()
    invoke(["prompt", "eval", str(path)], {**env, "SIGLA_JUDGE_MODEL": "openai/gpt-5"})
    assert {r.model for r in fake.requests[2:]} == {"openai/gpt-5"}


def test_eval_with_a_cache_sends_nothing_the_second_time(fake, env, tmp_path):
    path = eval_file(tmp_path)
    cache = str(tmp_path / "answers.sqlite")
    assert invoke(["prompt", "eval", "--cache", cache, str(path)], env).exit_code == 0
    sent = len(fake.requests)
    result = invoke(["prompt", "eval", "--cache", cache, str(path)], env)
    assert result.exit_code == 0 and len(fake.requests) == sent == 2


def test_eval_of_an_invalid_file_is_a_usage_error_and_sends_nothing(fake, env, tmp_path):
    good = eval_file(tmp_path)
    bad = eval_file(tmp_path, "name: x\n", "bad.prompt.yml")
    result = invoke(["prompt", "eval", str(good), str(bad)], env)
    assert result.exit_code == 2
    assert f"{bad}:1:1: messages: is required" in result.output
    assert fake.requests == []


def test_eval_a_credential_error_stops_with_one_line(fake, env, tmp_path):
    fake.fail("unauthorized", times=None)
    result = invoke(["prompt", "eval", str(eval_file(tmp_path))], env)
    assert result.exit_code == 1
    assert "sigla: error:" in result.output and "Traceback" not in result.output


def test_eval_runs_the_shipped_prompts_by_default(fake, env, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = invoke(["prompt", "eval", "--json"], env)
    assert result.exit_code in (0, 1), result.output  # echo replies need not pass
    reports = json.loads(result.output)
    assert len(reports) == len(list((ROOT / "prompts").glob("*.prompt.yml")))
    assert all(r["summary"]["totalTests"] == len(r["testResults"]) > 0 for r in reports)


def test_run_no_strict_sends_an_unfilled_placeholder_as_written(fake, env, tmp_path):
    path = tmp_path / "m.prompt.yml"
    path.write_text(
        "model: openai/gpt-4o-mini\n"
        "messages: [{role: user, content: 'Use {{#each items}} for {{input}}'}]\n"
    )
    refused = CliRunner().invoke(main, ["prompt", "run", str(path), "x", "--no-stream"], env=env)
    assert refused.exit_code == 2 and "#each items" in refused.output
    result = invoke(["prompt", "run", str(path), "x", "--no-stream", "--no-strict"], env)
    assert result.exit_code == 0, result.output
    assert fake.requests[-1].body["messages"][-1]["content"] == "Use {{#each items}} for x"


def test_eval_json_is_valid_json_when_a_test_case_holds_nan(fake, env, tmp_path):
    path = tmp_path / "n.prompt.yml"
    path.write_text(
        "model: openai/gpt-4o-mini\n"
        "messages: [{role: user, content: '{{n}}'}]\n"
        "testData: [{n: .nan, m: -.inf}]\n"
        "evaluators: [{name: any, string: {contains: 'a'}}]\n"
    )
    result = CliRunner().invoke(main, ["prompt", "eval", str(path), "--json"], env=env)
    def refuse(constant: str) -> None:
        pytest.fail(f"{constant} is not JSON")

    report = json.loads(result.output, parse_constant=refuse)
    assert report["testResults"][0]["testCase"] == {"n": "NaN", "m": "-Inf"}
