"""The `sigla` command line against the double: output, stdin, options, errors as one line,
exit codes, broken pipes and interrupts. Notices: test_cli_notices.py; the wording of
messages: test_cli_messages.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TOKEN, interruptible

import sigla
from sigla._config import PROVIDERS
from sigla.cli import main
from sigla.testing import FAULTS

pytestmark = pytest.mark.e2e

# The checkout whose `sigla` this test imported, so that subprocesses run the same code.
SOURCE_ROOT = str(Path(sigla.__file__).resolve().parent.parent)


@pytest.fixture
def env(fake):
    return {"GITHUB_TOKEN": TOKEN, "SIGLA_LLM_ENDPOINT": fake.url}


def invoke(args, env, input=None):
    return CliRunner().invoke(main, args, env=env, input=input, catch_exceptions=False)


def process_env(fake, **extra):
    """The environment of a `python -m sigla.cli` subprocess aimed at the double."""
    env = {**os.environ, "GITHUB_TOKEN": TOKEN, "SIGLA_LLM_ENDPOINT": fake.url, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SOURCE_ROOT, env.get("PYTHONPATH")]))
    return env


def sigla_process(args, env, **kwargs):
    return subprocess.Popen(
        interruptible([sys.executable, "-m", "sigla.cli", *args]), env=env, **kwargs
    )


def assert_one_error_line(result_or_stderr):
    stderr = getattr(result_or_stderr, "stderr", result_or_stderr)
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("sigla: error: "), stderr
    assert "Traceback" not in stderr


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
    env = process_env(fake)
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
            "PYTHONPATH": SOURCE_ROOT,
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


# ---------------------------------------------------------------- chat's connection options


def test_chat_endpoint_option_beats_the_environment(fake):
    env = {"GITHUB_TOKEN": TOKEN, "SIGLA_LLM_ENDPOINT": "http://127.0.0.1:9/nothing-here"}
    result = invoke(["chat", "--no-stream", "-e", fake.url, "hi"], env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Echo: hi\n"
    assert len(fake.requests) == 1


def test_chat_timeout_option_bounds_the_wait_for_an_answer(fake, env):
    fake.fail("timeout", seconds=10)
    started = time.monotonic()
    result = invoke(["chat", "--timeout", "0.3", "--max-retries", "0", "hi"], env)
    assert time.monotonic() - started < 5
    assert result.exit_code == 1
    assert_one_error_line(result)
    assert "within timeout=0.3 s" in result.stderr


def test_chat_timeout_defaults_to_sigla_llm_timeout(fake, env):
    fake.fail("timeout", seconds=10)
    started = time.monotonic()
    result = invoke(["chat", "--max-retries", "0", "hi"], {**env, "SIGLA_LLM_TIMEOUT": "0.3"})
    assert time.monotonic() - started < 5
    assert result.exit_code == 1
    assert "within timeout=0.3 s" in result.stderr


@pytest.mark.parametrize("retries", [0, 1])
def test_chat_max_retries_option_caps_the_attempts(fake, env, retries):
    fake.fail("rate_limit_minute", times=None, retry_after=0.01)
    result = invoke(["chat", "-q", "--max-retries", str(retries), "hi"], env)
    assert result.exit_code == 1
    assert_one_error_line(result)
    assert len(fake.requests) == retries + 1


@pytest.mark.parametrize(
    "args",
    [
        ["chat", "--timeout", "soon", "hi"],
        ["chat", "--timeout", "0", "hi"],
        ["chat", "--max-retries", "-1", "hi"],
        ["chat", "--no-such-option", "hi"],
        ["no-such-command"],
    ],
)
def test_bad_arguments_are_one_usage_line_naming_the_help(fake, env, args):
    result = invoke(args, env)
    assert result.exit_code == 2
    assert_one_error_line(result)
    assert "--help" in result.stderr
    assert fake.requests == []


def test_sigla_alone_shows_the_help_not_an_error_line():
    result = invoke([], {})
    assert result.exit_code in (0, 2)  # click 8.1 exits 0, 8.2+ 2
    assert "Commands:" in result.output
    assert "sigla: error" not in result.output


# ---------------------------------------------------------------- help texts agree


def _help(*command):
    result = invoke([*command, "--help"], {})
    assert result.exit_code == 0
    return " ".join(result.stdout.split())


@pytest.mark.parametrize("command", ["chat", "models", "doctor"])
def test_every_commands_provider_help_lists_every_provider(command):
    text = _help(command)
    for name in PROVIDERS:
        assert name in text
    assert "SIGLA_LLM_PROVIDER, else github" in text


def test_models_help_says_azure_has_no_model_list():
    assert "azure has no model list" in _help("models")


def test_chat_help_gives_the_defaults_of_timeout_and_retries():
    text = _help("chat")
    assert "--timeout SECONDS" in text
    assert "SIGLA_LLM_TIMEOUT, else 60 s" in text
    assert "--max-retries N" in text
    assert "(default: 3)" in text
    assert "-e, --endpoint" in text


@pytest.mark.parametrize("command", [[], ["chat"], ["models"], ["doctor"]])
def test_verbose_and_quiet_are_documented_on_the_group_and_every_command(command):
    text = _help(*command)
    assert "-v, --verbose" in text
    assert "-q, --quiet" in text


# ---------------------------------------------------------------- every failure is one line


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
@pytest.mark.parametrize("fault", FAULTS)
def test_every_fault_of_the_service_ends_as_one_error_line(fake, env, fault, stream):
    params = {"seconds": 2} if fault in ("timeout", "stream_stall") else {}
    fake.fail(fault, **params)
    args = ["chat", "--max-retries", "0", "--timeout", "0.3", "hi"]
    result = invoke(args if stream else [*args, "--no-stream"], env)
    if result.exit_code == 0:  # a non-streamed answer without finish_reason is still text
        assert fault == "stream_no_finish" and not stream
        return
    assert result.exit_code == 1
    assert_one_error_line(result)
    assert TOKEN not in result.output
    assert "token=" not in result.stderr


def test_an_invalid_request_is_a_usage_error(fake, env):
    result = invoke(["chat", "-t", "5", "hi"], env)
    assert result.exit_code == 2
    assert_one_error_line(result)
    assert fake.requests == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_an_answer_that_cannot_be_written_is_one_error_line(fake):
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [sys.executable, "-m", "sigla.cli", "chat", "hi"],
            env=process_env(fake),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert_one_error_line(done.stderr)
    assert "No space left on device" in done.stderr


# ---------------------------------------------------------------- interrupts


@pytest.mark.parametrize("no_stream", [False, True])
def test_keyboard_interrupt_exits_130_with_one_line(fake, env, monkeypatch, no_stream):
    from sigla.llm import GitHubLLM

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(GitHubLLM, "chat" if no_stream else "stream", interrupted)
    result = invoke(["chat", "hi", *(["--no-stream"] if no_stream else [])], env)
    assert result.exit_code == 130
    assert result.stderr == "sigla: interrupted\n"


def test_ctrl_c_in_a_real_process_ends_the_line_and_exits_130(fake):
    fake.reply("one two three", chunks=["one ", "two ", "three"])
    fake.fail("stream_stall", after=1, seconds=30)
    process = sigla_process(
        ["chat", "hi"], process_env(fake), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stdout.read(4) == b"one "  # the stream has started, and stalls
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130
    assert out == b"\n"  # the partial answer's line is ended
    assert err == b"sigla: interrupted\n"


# ---------------------------------------------------------------- broken pipes


@pytest.mark.parametrize("no_stream", [False, True], ids=["stream", "no-stream"])
def test_a_reader_that_stops_early_ends_the_command_quietly(fake, no_stream):
    """`sigla chat … | head -c 8`: no error line, no "Exception ignored" at exit."""
    fake.reply("x" * 100_000, chunks=["x" * 1000] * 100)
    args = ["chat", "hi", *(["--no-stream"] if no_stream else [])]
    process = sigla_process(args, process_env(fake), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout.read(8) == b"x" * 8
        process.stdout.close()
        err = process.stderr.read()
        process.wait(timeout=30)
    finally:
        process.kill()
    assert err == b""
    assert process.returncode in (0, 141)
    if not no_stream:  # many writes: one of them meets the closed pipe
        assert process.returncode == 141
