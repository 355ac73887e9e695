"""Specification of what sigla.testing offers batch jobs and benchmarks: reply modes, the
tokens-per-minute limit, in-flight accounting, and running a command against the double.

Like tests/test_testing.py, these talk raw HTTP to the double over 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import interruptible
from test_testing import CHAT, TOKEN, _wait_for, call, chat, connect, events, text_of

from sigla.testing import FakeGitHubModels
from sigla.testing.__main__ import main as double_main
from sigla.testing._http import _Handler

# -- reply modes -------------------------------------------------------------------------

ARTICLE = """[cap-12] The river rose overnight. Roads were closed by dawn!

Officials urged calm: shelters are open.   More news
will follow as it comes.

- Schools stay shut today. They reopen Monday?

2. Power is back in most areas. Some streets wait.

A paragraph without an ending"""

SUMMARY = (
    "[cap-12] The river rose overnight.\n"
    "Officials urged calm: shelters are open.\n"
    "- Schools stay shut today.\n"
    "2. Power is back in most areas.\n"
    "A paragraph without an ending"
)


def content(resp_json: dict) -> str:  # type: ignore[type-arg]
    return resp_json["choices"][0]["message"]["content"]


def test_extractive_mode_answers_the_first_sentence_of_each_paragraph() -> None:
    with FakeGitHubModels(reply_mode="extractive") as fake:
        body = chat(ARTICLE)
        body["messages"].insert(0, {"role": "system", "content": "Summarise. Be brief."})
        data = call(fake, CHAT, body).json()
    assert content(data) == SUMMARY
    assert data["choices"][0]["finish_reason"] == "stop"
    usage = data["usage"]
    assert usage["completion_tokens"] == -(-len(SUMMARY) // 4)  # ceil(chars / 4)
    assert usage["prompt_tokens"] == -(-(len(ARTICLE) + len("Summarise. Be brief.")) // 4)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("One. Two.", "One."),
        ("Version 2.5 is out. Update.", "Version 2.5 is out."),  # no space after the dot
        ("Why?\tBecause.", "Why?"),
        ("Line one\nstill one. Two.", "Line one still one."),  # wrapped lines are joined
        ("1) First item. More", "1) First item."),
        ("[a] [b-2] Tagged twice. Rest", "[a] [b-2] Tagged twice."),
        ("  \n\n  ", ""),
        ("One.\n \t\nTwo. Three.", "One.\nTwo."),  # a line of spaces is a blank line
    ],
)
def test_extractive_sentences_and_paragraphs(message: str, expected: str) -> None:
    with FakeGitHubModels(reply_mode="extractive") as fake:
        assert content(call(fake, CHAT, chat(message)).json()) == expected


def test_extractive_mode_uses_the_last_user_message_and_list_parts() -> None:
    body = {
        "model": "openai/gpt-4o-mini",
        "messages": [
            {"role": "user", "content": "Old question. Ignored."},
            {"role": "assistant", "content": "Old answer."},
            {"role": "user", "content": [{"type": "text", "text": "New one. Yes."}]},
        ],
    }
    with FakeGitHubModels(reply_mode="extractive") as fake:
        assert content(call(fake, CHAT, body).json()) == "New one."


def test_extractive_stream_sends_the_same_text_in_chunks() -> None:
    with FakeGitHubModels(reply_mode="extractive") as fake:
        evts = events(call(fake, CHAT, chat(ARTICLE, stream=True)).body)
        record = fake.last_request
    assert text_of(evts) == SUMMARY
    assert record is not None and len(record.chunk_times) > 3
    final = evts[-2]
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["usage"]["completion_tokens"] == -(-len(SUMMARY) // 4)


def test_extractive_mode_honours_max_tokens_and_stop() -> None:
    with FakeGitHubModels(reply_mode="extractive") as fake:
        cut = call(fake, CHAT, chat(ARTICLE, max_tokens=3)).json()
        stopped = call(fake, CHAT, chat(ARTICLE, stop=["Officials"])).json()
    assert content(cut) == SUMMARY[:12] and cut["choices"][0]["finish_reason"] == "length"
    assert cut["usage"]["completion_tokens"] == 3
    assert content(stopped) == "[cap-12] The river rose overnight.\n"


def test_reply_mode_can_change_while_running_and_scripted_replies_win() -> None:
    with FakeGitHubModels() as fake:
        assert fake.reply_mode == "echo"
        assert content(call(fake, CHAT, chat("A. B.")).json()) == "Echo: A. B."
        fake.reply_mode = "extractive"
        assert content(call(fake, CHAT, chat("A. B.")).json()) == "A."
        fake.reply("scripted")
        assert content(call(fake, CHAT, chat("A. B.")).json()) == "scripted"
        fake.reset()  # the mode is an option, not scripting: reset keeps it
        assert content(call(fake, CHAT, chat("A. B.")).json()) == "A."


def test_an_unknown_reply_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="reply_mode must be 'echo' or 'extractive'"):
        FakeGitHubModels(reply_mode="summary")  # type: ignore[arg-type]
    fake = FakeGitHubModels()
    with pytest.raises(ValueError, match="reply_mode"):
        fake.reply_mode = "Echo"  # type: ignore[assignment]
    assert fake.reply_mode == "echo"


# -- tokens per minute -----------------------------------------------------------------


def tokens_429(limit: int, wait: int) -> dict[str, Any]:
    message = (
        f"Rate limit of {limit} per 60s exceeded for UserByModelByMinuteTokens. "
        f"Please wait {wait} seconds before retrying."
    )
    return {"error": {"code": "RateLimitReached", "message": message, "details": message}}


def test_tpm_books_input_plus_max_tokens_in_a_sliding_window() -> None:
    now = [1000.0]
    with FakeGitHubModels(tpm=100, clock=lambda: now[0]) as fake:
        fifty = chat("x" * 40, max_tokens=40)  # 10 input tokens + 40 allowed out
        assert call(fake, CHAT, fifty).status == 200
        now[0] += 10
        assert call(fake, CHAT, fifty).status == 200  # 100 of 100: exactly at the limit
        now[0] += 10
        refused = call(fake, CHAT, chat("x"))
        assert refused.status == 429
        assert refused.json() == tokens_429(100, 40)  # the first 50 leave at 1060
        assert refused.headers["retry-after"] == "40"
        assert refused.headers["x-ratelimit-timeremaining"] == "40"
        assert refused.headers["x-ratelimit-type"] == "UserByModelByMinuteTokens"
        assert refused.headers["x-ms-error-code"] == "RateLimitReached"
        assert call(fake, CHAT, chat("x", model="openai/gpt-4o")).status == 200  # per model
        assert call(fake, CHAT, chat("x"), token="someone-else").status == 200  # per token
        now[0] += 39.5
        assert call(fake, CHAT, chat("x")).status == 429
        now[0] += 0.5  # 1060: the first request left the window; the refused one never entered
        assert call(fake, CHAT, fifty).status == 200
        assert [r.status for r in fake.requests] == [200, 200, 429, 200, 200, 429, 200]


def test_tpm_waits_until_enough_tokens_have_left_not_just_the_oldest() -> None:
    now = [0.0]
    with FakeGitHubModels(tpm=100, clock=lambda: now[0]) as fake:
        for _ in range(3):
            assert call(fake, CHAT, chat("x" * 120)).status == 200  # 30 tokens each
            now[0] += 10
        refused = call(fake, CHAT, chat("x" * 240))  # 60 more: 90 + 60 - 100 = 50 must leave
        assert refused.json() == tokens_429(100, 40)  # the 2nd request (t=10) leaves at 70
        assert refused.headers["retry-after"] == "40"
        now[0] = 69.0
        assert call(fake, CHAT, chat("x" * 240)).status == 429
        now[0] = 70.0
        assert call(fake, CHAT, chat("x" * 240)).status == 200


def test_tpm_counts_max_completion_tokens_and_every_message() -> None:
    now = [0.0]
    with FakeGitHubModels(tpm=20, clock=lambda: now[0]) as fake:
        body = chat("x" * 20, max_completion_tokens=5)  # 5 + 5
        body["messages"].insert(0, {"role": "system", "content": "y" * 40})  # + 10
        assert call(fake, CHAT, body).status == 200
        assert call(fake, CHAT, chat("z")).status == 429
        now[0] += 60
        assert call(fake, CHAT, chat("x" * 80)).status == 200  # no max_tokens: input only
        now[0] += 60
        assert call(fake, CHAT, chat("x" * 4, max_tokens=0, max_completion_tokens=19)).status == 200


def test_a_request_over_tpm_on_its_own_is_refused_for_the_whole_window() -> None:
    with FakeGitHubModels(tpm=10, clock=lambda: 0.0) as fake:
        refused = call(fake, CHAT, chat("x", max_tokens=10))  # 1 + 10 > 10, window empty
        assert refused.json() == tokens_429(10, 60)
        assert call(fake, CHAT, chat("x", max_tokens=9)).status == 200


def test_tpm_books_embeddings_input_and_reset_clears_the_window() -> None:
    with FakeGitHubModels(tpm=10, clock=lambda: 0.0) as fake:
        body = {"model": "openai/text-embedding-3-small", "input": ["x" * 20, "y" * 20]}
        assert call(fake, "/inference/embeddings", body).status == 200
        assert call(fake, "/inference/embeddings", body).status == 429
        assert call(fake, CHAT, chat("x" * 40)).status == 200  # another model's budget
        fake.reset()
        assert call(fake, "/inference/embeddings", body).status == 200


def test_tpm_can_be_changed_while_running() -> None:
    with FakeGitHubModels(clock=lambda: 0.0) as fake:
        assert fake.tpm is None
        assert call(fake, CHAT, chat("x" * 400)).status == 200  # not booked while off
        fake.tpm = 100
        assert call(fake, CHAT, chat("x" * 400)).status == 200
        assert call(fake, CHAT, chat("x")).status == 429


# -- in-flight accounting ------------------------------------------------------------------


def hold(fake: FakeGitHubModels, count: int, token: str = TOKEN) -> list[threading.Thread]:
    """Put ``count`` streams in flight that stall until the double stops (no real waiting)."""
    fake.fail("stream_stall", times=count, after=0, seconds=60)
    before = fake.in_flight

    def stalled_stream() -> None:
        with contextlib.suppress(http.client.HTTPException, OSError):
            call(fake, CHAT, chat(stream=True), token=token)

    workers = [threading.Thread(target=stalled_stream) for _ in range(count)]
    for worker in workers:
        worker.start()
    _wait_for(lambda: fake.in_flight == before + count)
    return workers


def test_max_in_flight_is_the_most_one_token_had_at_once() -> None:
    fake = FakeGitHubModels().start()
    assert fake.max_in_flight == 0
    assert call(fake, CHAT, chat()).status == 200
    assert fake.max_in_flight == 1
    held = hold(fake, 3)
    assert (fake.max_in_flight, fake.in_flight) == (3, 3)
    fake.reset()  # forgets the past, not the requests still in flight
    assert fake.max_in_flight == 3
    fake.stop()  # cuts the stalls
    for worker in held:
        worker.join()
    _wait_for(lambda: fake.in_flight == 0)  # the server's threads end after their clients
    assert fake.max_in_flight == 3
    fake.reset()
    assert fake.max_in_flight == 0


def test_max_in_flight_is_per_token_and_ignores_refused_and_non_inference_requests() -> None:
    fake = FakeGitHubModels(concurrency=1).start()
    held = hold(fake, 1, token="a") + hold(fake, 1, token="b")
    assert fake.in_flight == 2
    assert call(fake, CHAT, chat(), token="a").status == 429
    assert call(fake, "/catalog/models", method="GET").status == 200
    assert call(fake, CHAT, chat(model="nope/nope"), token="c").status == 404
    assert fake.max_in_flight == 1
    fake.stop()
    for worker in held:
        worker.join()
    _wait_for(lambda: fake.in_flight == 0)


class WriteSpy:
    """Stands in for a handler's socket writer: notes ``fake.in_flight`` at every write."""

    def __init__(self, raw: Any, notes: list[tuple[bytes, int]], fake: FakeGitHubModels):
        self._raw, self._notes, self._fake = raw, notes, fake

    def write(self, data: bytes) -> Any:
        self._notes.append((bytes(data), self._fake.in_flight))
        return self._raw.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def test_the_slot_is_freed_before_the_bytes_that_complete_an_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client that reads a whole answer (a stream up to its last event) and sends its next
    request at once, on another connection, must never find its slot still taken."""
    fake = FakeGitHubModels(concurrency=1)
    answers: list[list[tuple[bytes, int]]] = []
    setup = _Handler.setup

    def spied_setup(handler: _Handler) -> None:
        setup(handler)
        answers.append([])
        handler.wfile = WriteSpy(handler.wfile, answers[-1], fake)  # type: ignore[assignment]

    monkeypatch.setattr(_Handler, "setup", spied_setup)
    with fake:
        assert call(fake, CHAT, chat()).status == 200
        assert events(call(fake, CHAT, chat("a b c d", stream=True)).body)[-1] == "[DONE]"
        fake.fail("stream_error_event", after=1)
        assert "error" in events(call(fake, CHAT, chat("a b c d", stream=True)).body)[-1]
    plain, streamed, errored = answers
    assert plain[-1] == (plain[-1][0], 0) and b'"Echo: Hello"' in plain[-1][0]
    for writes in (streamed, errored):
        *during, last = writes
        assert all(held == 1 for _data, held in during) and len(during) > 3
        assert last[1] == 0 and last[0].endswith(b"\r\n0\r\n\r\n")
    assert b"data: [DONE]" in streamed[-1][0]


def test_back_to_back_clients_at_the_concurrency_cap_are_never_refused() -> None:
    """N threads, each sending its next request (on a new connection) as soon as it has read
    the previous answer, never meet a 429 at concurrency=N. Streams are read up to the
    ``[DONE]`` event only, as SSE clients do."""
    threads, rounds = 4, 25
    statuses: list[int] = []

    def client(k: int) -> None:
        for j in range(rounds):
            if j % 2:
                statuses.append(call(fake, CHAT, chat(f"client {k} round {j}")).status)
                continue
            conn = connect(fake)
            conn.request(
                "POST",
                CHAT,
                body=json.dumps(chat(f"client {k} round {j} a b c", stream=True)),
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            resp = conn.getresponse()
            statuses.append(resp.status)
            while resp.status == 200 and b"[DONE]" not in resp.readline():
                pass
            conn.close()

    with FakeGitHubModels(concurrency=threads) as fake:
        workers = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert len(statuses) == threads * rounds
        assert statuses.count(429) == 0
        assert 1 <= fake.max_in_flight <= threads
        _wait_for(lambda: fake.in_flight == 0)


def test_finished_at_is_set_once_the_answer_is_written_whole() -> None:
    with FakeGitHubModels() as fake:
        call(fake, CHAT, chat())
        call(fake, CHAT, chat("a b c", stream=True))
        call(fake, CHAT, chat(model="bad"))
        # taken right after the last write, so possibly after the client has read it
        _wait_for(lambda: all(r.finished_at for r in fake.requests))
        plain, streamed, refused = fake.requests
    for record in (plain, streamed, refused):
        assert record.finished_at is not None and record.finished_at >= record.received_at
    assert streamed.finished_at is not None and streamed.finished_at >= streamed.chunk_times[-1]


def test_an_answer_cut_short_frees_its_slot_once_and_has_no_finished_at() -> None:
    with FakeGitHubModels(concurrency=1) as fake:
        fake.fail("stream_cut")  # on a plain request: the connection drops without an answer
        with pytest.raises(http.client.RemoteDisconnected):
            call(fake, CHAT, chat())
        fake.fail("stream_cut", after=1)
        with pytest.raises(http.client.IncompleteRead):
            call(fake, CHAT, chat("a b c", stream=True))
        fake.fail("disconnect")
        with pytest.raises(http.client.RemoteDisconnected):
            call(fake, CHAT, chat())
        _wait_for(lambda: len(fake.requests) == 3 and fake.in_flight == 0)
        assert [r.finished_at for r in fake.requests] == [None, None, None]
        assert call(fake, CHAT, chat()).status == 200
        assert (fake.in_flight, fake.max_in_flight) == (0, 1)


def test_a_client_gone_mid_stream_frees_its_slot_once() -> None:
    with FakeGitHubModels(concurrency=1, chunk_delay=0.01) as fake:
        conn = connect(fake)
        conn.request(
            "POST",
            CHAT,
            body=json.dumps(chat(" ".join(["word"] * 200), stream=True)),
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert conn.getresponse().status == 200
        assert fake.in_flight == 1
        conn.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
        conn.close()
        _wait_for(lambda: fake.in_flight == 0)
        assert fake.requests[0].finished_at is None
        fake.chunk_delay = 0
        assert call(fake, CHAT, chat()).status == 200
        assert fake.in_flight == 0


# -- python -m sigla.testing [options] -- CMD ----------------------------------------------

REPO = Path(__file__).parents[1]


def run_double(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sigla.testing", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=30,
    )


def start_double(*args: str) -> subprocess.Popen[str]:
    """The double in its own session, as a shell runs a foreground job, so that a test can
    send the whole group a terminal's Ctrl-C."""
    return subprocess.Popen(
        interruptible([sys.executable, "-m", "sigla.testing", *args]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        start_new_session=True,
    )


def end_group(double: subprocess.Popen[str]) -> None:
    """Kill whatever is left of the double's session (its command too, if orphaned)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(double.pid, signal.SIGKILL)
    double.communicate()


SHOW_ENVIRONMENT = """
import json, os, sys
names = ["SIGLA_LLM_PROVIDER", "SIGLA_LLM_ENDPOINT", "GITHUB_TOKEN", "MISTRAL_API_KEY",
         "AZURE_API_KEY", "AZURE_ENDPOINT", "AZURE_API_VERSION", "SIGLA_LLM_API_KEY",
         "SIGLA_LLM_MODEL", "KEPT"]
print(json.dumps({name: os.environ.get(name) for name in names}))
sys.exit(3)
"""


def test_a_command_runs_against_the_double_and_its_exit_status_is_returned() -> None:
    env = {
        **os.environ,
        "SIGLA_LLM_PROVIDER": "mistral",
        "SIGLA_LLM_ENDPOINT": "https://api.mistral.ai",
        "GITHUB_TOKEN": "github_pat_real_one",
        "MISTRAL_API_KEY": "real-mistral-key",
        "AZURE_API_KEY": "real-azure-key",
        "AZURE_ENDPOINT": "https://x.services.ai.azure.com/models",
        "AZURE_API_VERSION": "2024-05-01-preview",
        "SIGLA_LLM_API_KEY": "real-openai-key",
        "SIGLA_LLM_MODEL": "openai/gpt-4o",
        "KEPT": "yes",
    }
    done = run_double("--", sys.executable, "-c", SHOW_ENVIRONMENT, env=env)
    assert done.returncode == 3, done.stderr
    assert done.stderr == ""
    seen = json.loads(done.stdout)  # the child's output only: the double prints nothing
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/inference", seen.pop("SIGLA_LLM_ENDPOINT"))
    assert seen == {
        "SIGLA_LLM_PROVIDER": "github",
        "GITHUB_TOKEN": "test",
        "MISTRAL_API_KEY": None,
        "AZURE_API_KEY": None,
        "AZURE_ENDPOINT": None,
        "AZURE_API_VERSION": None,
        "SIGLA_LLM_API_KEY": None,
        "SIGLA_LLM_MODEL": "openai/gpt-4o",  # still answered by the double
        "KEPT": "yes",
    }


ASK_THE_DOUBLE = """
import json, os, sys, urllib.error, urllib.request
print(os.environ["SIGLA_LLM_ENDPOINT"], flush=True)
request = urllib.request.Request(
    os.environ["SIGLA_LLM_ENDPOINT"] + "/chat/completions",
    data=json.dumps({"model": "openai/gpt-4o-mini",
                     "messages": [{"role": "user", "content": sys.stdin.read()}]}).encode(),
    headers={"Authorization": "Bearer " + os.environ["GITHUB_TOKEN"],
             "Content-Type": "application/json"},
)
for _ in range(2):
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(json.load(response)["choices"][0]["message"]["content"])
    except urllib.error.HTTPError as error:
        print(error.code, error.headers["x-ratelimit-type"])
print("to stderr", file=sys.stderr)
"""


def test_the_command_talks_to_the_double_through_the_shared_streams() -> None:
    done = run_double(
        "--reply",
        "extractive",
        "--rpm",
        "1",
        "--",
        sys.executable,
        "-c",
        ASK_THE_DOUBLE,
        stdin="First point. Detail.\n\n[cap-3] Second point! More.",
    )
    assert done.returncode == 0, done.stderr
    url, *answer = done.stdout.splitlines()
    assert answer == ["First point.", "[cap-3] Second point!", "429 UserByModelByMinute"]
    assert done.stderr == "to stderr\n"
    parts = urlsplit(url)
    with pytest.raises(ConnectionRefusedError):  # the double stopped with the command
        socket.create_connection((parts.hostname, parts.port), timeout=5).close()


def test_the_limit_options_are_positive_whole_numbers() -> None:
    for option in ("--tpm", "--concurrency", "--daily", "--rpm"):
        for bad in ("0", "-1", "1.5"):
            with pytest.raises(SystemExit) as exc:
                double_main([option, bad, "--", "true"])
            assert exc.value.code == 2


@pytest.mark.parametrize(
    ("options", "refusal"),
    [
        (["--tpm", "5"], "429 UserByModelByMinuteTokens"),  # 3 input tokens, then 3 more
        (["--daily", "1"], "429 UserByModelByDay"),
    ],
)
def test_the_limit_options_reach_the_double(options: list[str], refusal: str) -> None:
    done = run_double(*options, "--", sys.executable, "-c", ASK_THE_DOUBLE, stdin="x" * 12)
    assert done.stdout.splitlines()[1:] == ["Echo: xxxxxxxxxxxx", refusal]


ASK_TWICE_AT_ONCE = """
import json, os, threading, urllib.error, urllib.request
def ask():
    request = urllib.request.Request(
        os.environ["SIGLA_LLM_ENDPOINT"] + "/chat/completions",
        data=b'{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}',
        headers={"Authorization": "Bearer " + os.environ["GITHUB_TOKEN"]},
    )
    try:
        urllib.request.urlopen(request, timeout=10).close()
        statuses.append("200")
    except urllib.error.HTTPError as error:
        statuses.append(f"{error.code} {error.headers['x-ratelimit-type']}")
statuses = []
first = threading.Thread(target=ask)
first.start()
ask()  # while the first waits out the latency
first.join()
print(sorted(statuses))
"""


def test_the_concurrency_and_latency_options_reach_the_double() -> None:
    done = run_double(
        "--concurrency", "1", "--latency", "0.5", "--", sys.executable, "-c", ASK_TWICE_AT_ONCE
    )
    assert done.stdout == "['200', '429 UserConcurrentRequests']\n", done.stderr


def test_a_command_killed_by_a_signal_exits_128_plus_the_signal() -> None:
    done = run_double(
        "--", sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    )
    assert done.returncode == 128 + signal.SIGTERM


WAIT_FOR_CTRL_C = """
import sys, time
try:
    print("ready", flush=True)
    time.sleep(30)
except KeyboardInterrupt:
    print("child interrupted", flush=True)
    sys.exit(5)
"""


def test_ctrl_c_reaches_the_command_and_the_double_waits_for_it() -> None:
    double = start_double("--", sys.executable, "-c", WAIT_FOR_CTRL_C)
    try:
        assert double.stdout is not None and double.stdout.readline() == "ready\n"
        os.killpg(double.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
        out, err = double.communicate(timeout=10)
    finally:
        end_group(double)
    assert double.returncode == 5
    assert out == "child interrupted\n"
    assert err == ""  # no traceback from the double


def test_a_command_stopped_by_ctrl_c_exits_130() -> None:
    script = "import time; print('ready', flush=True); time.sleep(30)"
    double = start_double("--", sys.executable, "-c", script)
    try:
        assert double.stdout is not None and double.stdout.readline() == "ready\n"
        os.killpg(double.pid, signal.SIGINT)
        _out, err = double.communicate(timeout=10)
    finally:
        end_group(double)
    assert double.returncode == 128 + signal.SIGINT
    assert "KeyboardInterrupt" in err  # the command's own traceback
    assert "sigla" not in err  # and none from the double


def test_sigterm_to_the_double_alone_is_passed_on_to_the_command() -> None:
    double = start_double("--", sys.executable, "-c", WAIT_FOR_CTRL_C)
    try:
        assert double.stdout is not None and double.stdout.readline() == "ready\n"
        double.send_signal(signal.SIGTERM)
        _out, err = double.communicate(timeout=10)
    finally:
        end_group(double)
    assert double.returncode == 128 + signal.SIGTERM
    assert err == ""


def test_a_missing_command_is_one_line_and_exit_127(capsys: pytest.CaptureFixture[str]) -> None:
    assert double_main(["--", "sigla-no-such-command", "--flag"]) == 127
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "python -m sigla.testing: command not found: sigla-no-such-command\n"


def test_nothing_after_the_separator_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert double_main(["--rpm", "3", "--"]) == 2
    assert capsys.readouterr().err == "python -m sigla.testing: expected a command after '--'\n"


def test_help_documents_running_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        double_main(["--help"])
    out = capsys.readouterr().out
    assert "[-- CMD [ARGS...]]" in out
    assert "python -m sigla.testing -- pytest" in out
    for option in ("--tpm", "--rpm", "--daily", "--concurrency", "--latency", "--reply"):
        assert option in out
