"""The `sigla` command line against the double: output, stdin, errors as one line."""

from __future__ import annotations

import os
import subprocess
import sys

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


def test_chat_streams_the_answer_to_stdout(fake, env):
    fake.reply("Paris is the capital.", chunks=["Paris ", "is the ", "capital."])
    result = invoke(["chat", "What is the capital of France?"], env)
    assert result.exit_code == 0
    assert result.stdout == "Paris is the capital.\n"
    assert fake.last_request.body["stream"] is True


def test_chat_options_reach_the_request(fake, env):
    result = invoke(
        ["chat", "--no-stream", "-m", "openai/gpt-4o-mini", "-s", "Be terse.", "-t", "0.1", "hi"],
        env,
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "Echo: hi\n"
    body = fake.last_request.body
    assert body["stream"] is False
    assert body["model"] == "openai/gpt-4o-mini"
    assert body["temperature"] == 0.1
    assert body["messages"][0]["content"] == "Be terse."


@pytest.mark.parametrize("args", [["chat"], ["chat", "-"]])
def test_chat_reads_the_prompt_from_stdin(fake, env, args):
    result = invoke(args, env, input="from stdin")
    assert result.exit_code == 0
    assert result.stdout == "Echo: from stdin\n"


def test_errors_are_one_line_on_stderr_with_a_nonzero_exit(fake, env):
    fake.fail("no_access")
    result = invoke(["chat", "hi"], env)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("sigla: error: No access to model")
    assert "Traceback" not in result.output


def test_missing_token_is_a_usage_error_naming_the_fix(fake):
    result = invoke(["chat", "hi"], {"SIGLA_LLM_ENDPOINT": fake.url})
    assert result.exit_code == 2
    assert "GITHUB_TOKEN" in result.stderr


def test_retired_service_is_explained(fake, env):
    fake.retire("410")
    result = invoke(["chat", "hi"], env)
    assert result.exit_code == 1
    assert "retired on 2026-07-30" in result.stderr
    assert TOKEN not in result.output


def test_cut_stream_keeps_the_printed_text_and_reports(fake, env):
    fake.reply("one two three", chunks=["one ", "two ", "three"])
    fake.fail("stream_cut", after=1)
    result = invoke(["chat", "hi"], env)
    assert result.exit_code == 1
    assert result.stdout.startswith("one ")
    assert "sigla: error:" in result.stderr


def test_models_lists_id_tier_and_limits(fake, env):
    result = invoke(["models"], env)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "TIER", "MAX", "IN", "MAX", "OUT"]
    row = next(line for line in lines if line.startswith("mistral-ai/Codestral-2501"))
    assert "low" in row.split()


def test_console_script_runs_as_a_real_process(fake):
    env = {**os.environ, "GITHUB_TOKEN": TOKEN, "SIGLA_LLM_ENDPOINT": fake.url}
    done = subprocess.run(
        [sys.executable, "-m", "sigla.cli", "chat", "--no-stream", "ping"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Echo: ping\n"
    assert TOKEN not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("stdin", "message"),
    [("", "is empty"), ("  \n", "is empty"), (b"caf\xe9", "not UTF-8")],
)
def test_unusable_stdin_is_one_usage_line_and_nothing_is_sent(fake, env, stdin, message):
    result = invoke(["chat"], env, input=stdin)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sigla: error:")
    assert message in lines[0]
    assert fake.requests == []


def test_the_double_runs_on_its_own_for_trying_sigla(tmp_path):
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "sigla.testing", "--port", str(port), "--chunk-delay", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        banner = server.stdout.readline()
        assert f"http://127.0.0.1:{port}/inference" in banner
        env = {
            **os.environ,
            "GITHUB_TOKEN": "test",
            "SIGLA_LLM_ENDPOINT": f"http://127.0.0.1:{port}/inference",
        }
        deadline = time.monotonic() + 10
        while True:
            done = subprocess.run(
                [sys.executable, "-m", "sigla.cli", "chat", "Hello double"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if done.returncode == 0 or time.monotonic() > deadline:
                break
        assert done.stdout == "Echo: Hello double\n", done.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_an_empty_prompt_argument_is_refused(fake, env):
    result = invoke(["chat", "  "], env)
    assert result.exit_code == 2
    assert "is empty" in result.stderr
    assert fake.requests == []


def test_the_newline_ending_piped_text_is_not_sent(fake, env):
    invoke(["chat", "--no-stream"], env, input="line one\nline two\n")
    assert fake.last_request.body["messages"][-1]["content"] == "line one\nline two"
