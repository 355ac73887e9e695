"""What `sigla` says on stderr while it waits: a notice per retry and per rate-limit wait,
shown on a terminal, always with -v, never with -q; the handler lives only as long as the
command."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import TOKEN
from test_cli import process_env

from sigla import _notices as notices_module
from sigla._notices import notices as _notices
from sigla.cli import main
from sigla.llm import RateLimits

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(fake):
    return {"GITHUB_TOKEN": TOKEN, "SIGLA_LLM_ENDPOINT": fake.url}


def invoke(args, env):
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


@pytest.fixture
def sigla_logger():
    """The "sigla" logger, checked to be left as it was found."""
    logger = logging.getLogger("sigla")
    handlers, level = list(logger.handlers), logger.level
    yield logger
    assert logger.handlers == handlers
    assert logger.level == level


@pytest.mark.parametrize(
    "args", [["chat", "-v", "hi"], ["-v", "chat", "hi"], ["chat", "--verbose", "hi"]]
)
def test_verbose_prints_one_notice_per_retry(fake, env, args, sigla_logger):
    fake.fail("rate_limit_minute", times=2, retry_after=0.01)
    result = invoke(args, env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Echo: hi\n"
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    for number, line in enumerate(lines, start=1):
        assert line.startswith("sigla: ")
        assert f"retry {number} of 3 in " in line
        assert "HTTP 429" in line
        assert line.endswith("…")


@pytest.mark.parametrize(
    "args",
    [
        ["chat", "-q", "hi"],
        ["-q", "chat", "hi"],
        ["-v", "chat", "-q", "hi"],  # the command's own flag wins
        ["chat", "hi"],  # CliRunner's stderr is not a terminal
    ],
)
def test_notices_are_silent_with_quiet_or_off_a_terminal(fake, env, args, sigla_logger):
    fake.fail("rate_limit_minute", retry_after=0.01)
    result = invoke(args, env)
    assert result.exit_code == 0
    assert result.stdout == "Echo: hi\n"
    assert result.stderr == ""
    assert len(fake.requests) == 2  # it did retry


def test_the_commands_verbose_beats_the_groups_quiet(fake, env):
    fake.fail("rate_limit_minute", retry_after=0.01)
    result = invoke(["-q", "chat", "-v", "hi"], env)
    assert "retry 1 of 3" in result.stderr


def test_verbose_and_quiet_together_are_a_usage_error(fake, env):
    result = invoke(["chat", "-v", "-q", "hi"], env)
    assert result.exit_code == 2
    assert result.stderr.startswith("sigla: error: -v/--verbose and -q/--quiet contradict")
    assert len(result.stderr.splitlines()) == 1
    assert fake.requests == []


@pytest.mark.parametrize(
    ("fault", "code"), [(None, 0), ("no_access", 1), ("unknown_model", 1)], ids=str
)
def test_the_notice_handler_lives_only_as_long_as_the_command(fake, env, sigla_logger, fault, code):
    if fault:
        fake.fail(fault)
    assert invoke(["chat", "-v", "hi"], env).exit_code == code
    # sigla_logger checks that handlers and level are back as they were


def test_the_handler_is_removed_after_an_interrupt_too(fake, env, sigla_logger, monkeypatch):
    from sigla.llm import GitHubLLM

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(GitHubLLM, "stream", interrupted)
    assert invoke(["chat", "-v", "hi"], env).exit_code == 130


def test_waits_of_the_client_side_rate_limit_are_noticed(make_llm, clock, sigla_logger):
    llm = make_llm(limits=RateLimits(requests_per_minute=1), max_retry_wait=120)
    shown: list[str] = []
    with _notices("verbose", show=shown.append):
        llm.chat("one")
        llm.chat("two")  # waits for the next minute's slot, on the fake clock
    assert len(shown) == 1
    assert shown[0].startswith("waiting ")
    assert "client-side rate limit" in shown[0]
    assert clock.sleeps  # the wait happened


def test_auto_shows_only_notices_and_verbose_shows_every_info_line(sigla_logger, monkeypatch):
    def lines(verbosity):
        shown: list[str] = []
        with _notices(verbosity, show=shown.append):
            sigla_logger.info("a plain INFO line")
            sigla_logger.info("retry 1 of 3 in 2 s", extra={"sigla_notice": "retry"})
            sigla_logger.warning("something odd")
        return shown

    monkeypatch.setattr(notices_module, "stderr_is_terminal", lambda: True)
    assert lines("auto") == ["retry 1 of 3 in 2 s…", "warning: something odd"]
    assert lines("verbose") == [
        "a plain INFO line",
        "retry 1 of 3 in 2 s…",
        "warning: something odd",
    ]
    assert lines("quiet") == []
    monkeypatch.setattr(notices_module, "stderr_is_terminal", lambda: False)
    assert lines("auto") == []


def test_a_notice_that_cannot_be_printed_is_dropped(sigla_logger):
    def broken_stderr(text):
        raise BrokenPipeError(32, "Broken pipe")

    with _notices("verbose", show=broken_stderr):
        sigla_logger.info("retry 1 of 3 in 2 s", extra={"sigla_notice": "retry"})  # no raise


def _run_with_stderr_on_a_terminal(args, env):
    """Run `sigla ARGS` with stderr on a pseudo-terminal; return (code, stdout, stderr)."""
    import pty

    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "sigla.cli", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=60,
        )
    finally:
        os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the terminal has no writer left
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    return done.returncode, done.stdout.decode(), b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
@pytest.mark.parametrize("quiet", [False, True], ids=["default", "quiet"])
def test_on_a_terminal_notices_show_without_a_flag(fake, quiet):
    fake.fail("rate_limit_minute", retry_after=0.01)
    code, out, err = _run_with_stderr_on_a_terminal(
        ["chat", *(["-q"] if quiet else []), "hi"], process_env(fake)
    )
    assert code == 0
    assert out == "Echo: hi\n"
    if quiet:
        assert err == ""
    else:
        assert err.startswith("sigla: ")
        assert "retry 1 of 3 in " in err
        assert len(err.splitlines()) == 1
