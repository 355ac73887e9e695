"""Specification of what sigla.testing offers batch jobs and benchmarks: reply modes, the
tokens-per-minute limit, in-flight accounting, and running a command against the double.

Like tests/test_testing.py, these talk raw HTTP to the double over 127.0.0.1.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_testing import CHAT, call, chat, events, text_of

from sigla.testing import FakeGitHubModels

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
