"""Specification of what sigla.testing offers batch jobs and benchmarks: reply modes, the
tokens-per-minute limit, in-flight accounting, and running a command against the double.

Like tests/test_testing.py, these talk raw HTTP to the double over 127.0.0.1.
"""

from __future__ import annotations

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
