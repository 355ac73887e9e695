"""`sigla map` against the double: JSON Lines in and out, order, errors in place, exit codes,
the cache and the progress bar."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TOKEN

from sigla.cli import main

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(fake):
    return {"GITHUB_TOKEN": TOKEN, "SIGLA_LLM_ENDPOINT": fake.url}


def invoke(args, env, input=None):
    return CliRunner().invoke(main, args, env=env, input=input, catch_exceptions=False)


def lines(text):
    return [json.loads(line) for line in text.split("\n") if line]


def test_map_answers_one_prompt_per_line_in_input_order(fake, env, tmp_path):
    source = tmp_path / "prompts.txt"
    source.write_text("first\n\nsecond\nthird\n")
    result = invoke(["map", str(source), "-c", "3", "-t", "0.2", "--max-tokens", "9"], env)
    assert result.exit_code == 0, result.stderr
    assert lines(result.stdout) == [
        {"index": 0, "id": None, "answer": "Echo: first"},
        {"index": 1, "id": None, "answer": "Echo: second"},
        {"index": 2, "id": None, "answer": "Echo: third"},
    ]
    assert {(r.body["temperature"], r.body["max_tokens"]) for r in fake.requests} == {(0.2, 9)}


def test_map_reads_json_lines_from_stdin_and_keeps_ids_and_errors_in_place(fake, env):
    source = "\n".join(
        [
            json.dumps({"id": "a", "prompt": "x"}),
            json.dumps({"id": "b"}),
            "not json",
            json.dumps({"messages": [{"role": "user", "content": "hey"}]}),
            json.dumps({"id": 7, "prompt": "y" * 40_000}),
        ]
    )
    result = invoke(["map", "-", "-s", "Be brief."], env, input=source)
    assert result.exit_code == 1
    records = lines(result.stdout)
    assert [r["index"] for r in records] == [0, 1, 2, 3, 4]
    assert records[0] == {"index": 0, "id": "a", "answer": "Echo: x"}
    assert records[1]["id"] == "b" and records[1]["error"]["type"] == "InvalidRequestError"
    assert "Line 2" in records[1]["error"]["message"]
    assert "Line 3 is not JSON" in records[2]["error"]["message"]
    assert records[3]["answer"] == "Echo: hey"
    assert records[4]["error"]["type"] == "InputTooLargeError" and records[4]["id"] == 7
    assert "3 of 5 items failed" in result.stderr
    assert len(fake.requests) == 3
    assert fake.requests[0].body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_map_writes_to_a_file_with_o(fake, env, tmp_path):
    out = tmp_path / "answers.jsonl"
    result = invoke(["map", "-", "-o", str(out)], env, input="a\nb\n")
    assert result.exit_code == 0 and result.stdout == ""
    assert [r["answer"] for r in lines(out.read_text())] == ["Echo: a", "Echo: b"]


def test_map_resumes_from_its_cache(fake, env, tmp_path):
    cache = tmp_path / "answers.sqlite"
    assert invoke(["map", "-", "--cache", str(cache)], env, input="a\nb\n").exit_code == 0
    again = invoke(["map", "-", "--cache", str(cache)], env, input="a\nb\nc\n")
    assert again.exit_code == 0
    assert [r["answer"] for r in lines(again.stdout)] == ["Echo: a", "Echo: b", "Echo: c"]
    assert len(fake.requests) == 3


def test_a_doomed_batch_writes_every_item_and_says_how_to_resume(fake, env):
    fake.fail("bad_credentials", times=None)
    result = invoke(["map", "-", "-c", "1"], env, input="a\nb\nc\n")
    assert result.exit_code == 1
    records = lines(result.stdout)
    assert [r["index"] for r in records] == [0, 1, 2]
    assert records[0]["error"]["type"] == "AuthenticationError"
    assert {r["error"]["type"] for r in records[1:]} == {"NotAttemptedError"}
    assert "stopped early" in result.stderr and "--cache" in result.stderr
    assert len(fake.requests) == 1


def test_an_empty_input_is_a_usage_error(env):
    result = invoke(["map", "-"], env, input="\n \n")
    assert result.exit_code == 2 and "no prompts" in result.stderr


def test_a_missing_file_is_a_usage_error(env, tmp_path):
    result = invoke(["map", str(tmp_path / "nope.txt")], env)
    assert result.exit_code == 2 and "Cannot read" in result.stderr


def test_the_progress_bar_goes_to_stderr(fake, env):
    result = invoke(["map", "-", "--progress"], env, input="a\nb\n")
    assert result.exit_code == 0
    assert "2/2" in result.stderr
    assert len(lines(result.stdout)) == 2


EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "capsules.jsonl"


def test_summarize_prints_one_summary_citing_capsule_ids(fake, env):
    fake.reply_mode = "extractive"
    result = invoke(["summarize", str(EXAMPLES), "--max-input-tokens", "3000"], env)
    assert result.exit_code == 0, result.stderr
    summary = result.stdout
    cited = set(re.findall(r"\[([a-z0-9-]+)\]", summary))
    assert cited and cited <= {json.loads(line)["id"] for line in EXAMPLES.read_text().splitlines()}
    assert len(fake.requests) >= 2, "a map stage and a reduce stage"


def test_summarize_plan_sends_nothing(fake, env):
    result = invoke(["summarize", str(EXAMPLES), "--plan", "--max-input-tokens", "3000"], env)
    assert result.exit_code == 0
    assert result.stdout.startswith("38 capsules:") and "requests" in result.stdout
    assert fake.requests == []


def test_summarize_reads_a_json_list_from_stdin_and_warns_in_cli_words(fake, env):
    capsules = [{"id": "c1", "text": "One thing. More."}, {"id": "c2", "text": "Two."}]
    result = invoke(["summarize", "-"], env, input=json.dumps(capsules))
    assert result.exit_code == 0
    assert "sigla: warning: " in result.stderr and "--max-input-tokens" in result.stderr
    assert "UserWarning" not in result.stderr


def test_summarize_names_a_bad_line_or_capsule(env):
    bad_line = invoke(["summarize", "-"], env, input='{"text": "a"}\nnot json\n')
    assert bad_line.exit_code == 2 and "Line 2 is not JSON" in bad_line.stderr
    bad_capsule = invoke(["summarize", "-", "--plan"], env, input="[1, 2]")
    assert bad_capsule.exit_code == 2 and "Capsule 0" in bad_capsule.stderr


def test_map_keeps_json_lines_whose_strings_hold_line_separators(fake, env):
    source = "\n".join(
        json.dumps({"id": i, "prompt": text}, ensure_ascii=False)
        for i, text in enumerate(["one\u2028two", "form\x0cfeed", "plain"])
    )
    result = invoke(["map", "-"], env, input=source + "\r\n")
    assert result.exit_code == 0, result.stderr
    records = lines(result.stdout)
    assert [r["id"] for r in records] == [0, 1, 2]
    assert records[0]["answer"] == "Echo: one\u2028two"
