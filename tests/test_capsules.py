"""sigla.capsules: reading and merging capsules, packing them into requests, planning."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sigla.capsules as capsules_module
from sigla import _tokens
from sigla._limits import RateLimits
from sigla._tokens import estimate_tokens
from sigla.capsules import (
    MAP_PROMPT,
    MESSAGE_OVERHEAD,
    REDUCE_PROMPT,
    Capsule,
    StagePlan,
    merge_capsules,
    plan_summary,
    summarize_capsules,
)
from sigla.errors import BatchError, InvalidRequestError, InvalidResponseError
from sigla.llm import GitHubLLM
from sigla.testing import FakeGitHubModels, RecordedRequest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "capsules.jsonl"
TOKEN = "ghp_TESTtoken0123456789secret"
LOCAL = "http://127.0.0.1:9/inference"  # never contacted: planning sends nothing


def local_llm(**kwargs: Any) -> GitHubLLM:
    kwargs.setdefault("model", "openai/gpt-4o-mini")
    return GitHubLLM(endpoint=LOCAL, token=TOKEN, **kwargs)


def load_examples() -> list[dict[str, Any]]:
    return [json.loads(line) for line in EXAMPLES.read_text(encoding="utf-8").splitlines()]


# -- reading capsules


@dataclass
class Note:
    text: str
    id: str | None = None
    score: float | None = None


def test_merge_accepts_dicts_with_text_or_content_strings_and_objects_with_text():
    merged = merge_capsules(
        [
            {"text": "From text.", "id": "a"},
            {"content": "From content.", "title": "Content"},
            "A plain string.",
            Note("From an object.", id="n1"),
            Capsule("From a Capsule.", id=7),  # type: ignore[arg-type]
        ]
    )
    assert merged.split("\n\n") == [
        "[a] From text.",
        "Content\nFrom content.",
        "A plain string.",
        "[n1] From an object.",
        "[7] From a Capsule.",
    ]


def test_merge_reads_any_iterable_and_int_ids():
    merged = merge_capsules({"text": f"t{i}", "id": i} for i in range(2))
    assert merged == "[0] t0\n\n[1] t1"


@pytest.mark.parametrize(
    ("items", "words"),
    [
        ([None], "Capsule 0 (NoneType) is not a capsule"),
        (["fine", 42], "Capsule 1 (int) is not a capsule"),
        (["fine", b"bytes"], "Capsule 1 (bytes) is not a capsule"),
        ([{"title": "no body"}], "Capsule 0 (dict) has neither 'text' nor 'content'"),
        (["ok", {"text": None}], "Capsule 1 (dict) has a NoneType text"),
        ([{"text": b"x"}], "Capsule 0 (dict) has a bytes text"),
        ([{"text": "x"}, {"content": "  \n "}], "Capsule 1 (dict) has an empty text"),
        ([""], "Capsule 0 (str) has an empty text"),
        ([{"text": "x", "score": "high"}], "Capsule 0 (dict) has score 'high'"),
        ([{"text": "x", "score": float("nan")}], "Capsule 0 (dict) has score nan"),
        ([{"text": "x", "score": True}], "Capsule 0 (dict) has score True"),
        ([{"text": "x", "id": ["a"]}], "Capsule 0 (dict) has a list id"),
        ([{"text": "x", "title": 3}], "Capsule 0 (dict) has a int title"),
        (["x", "y", Note(text=5)], "Capsule 2 (Note) has a int text"),  # type: ignore[arg-type]
    ],
)
def test_merge_rejects_what_is_not_a_capsule_naming_its_index_and_type(items, words):
    with pytest.raises(InvalidRequestError) as caught:
        merge_capsules(items)
    assert words in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("collection", ["one string", {"text": "one dict"}, 42])
def test_a_single_capsule_instead_of_a_list_is_an_error(collection):
    with pytest.raises(InvalidRequestError, match="list"):
        merge_capsules(collection)


def test_importing_capsules_loads_no_tokenizer_sdk_or_http_client():
    code = (
        "import sys, sigla.capsules; print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('mistral_common', 'mistralai', 'httpx', 'numpy')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- merging


def test_merge_puts_the_highest_score_first_keeps_ties_in_order_and_unscored_last():
    merged = merge_capsules(
        [
            {"text": "none-1"},
            {"text": "low", "score": 0.1},
            {"text": "tie-1", "score": 0.5},
            {"text": "high", "score": 0.9},
            {"text": "tie-2", "score": 0.5},
            {"text": "none-2"},
            {"text": "int", "score": 1},
        ]
    )
    assert merged.split("\n\n") == ["int", "high", "tie-1", "tie-2", "low", "none-1", "none-2"]


def test_merge_prefixes_id_and_title_when_present():
    merged = merge_capsules(
        [
            {"text": "both", "id": "x-1", "title": "Both", "score": 4},
            {"text": "id only", "id": "x-2", "score": 3},
            {"text": "title only", "title": "Only a title", "score": 2},
            {"text": "  neither  ", "score": 1},
        ]
    )
    assert merged == "[x-1] Both\nboth\n\n[x-2] id only\n\nOnly a title\ntitle only\n\nneither"


def test_merge_of_no_capsules_is_empty_text():
    assert merge_capsules([]) == ""


def test_the_examples_are_realistic_capsules():
    examples = load_examples()
    assert 30 <= len(examples) <= 40
    assert len({c["id"] for c in examples}) == len(examples)
    for capsule in examples:
        assert set(capsule) == {"id", "title", "text", "score"}
        assert 0 <= capsule["score"] <= 1
        assert 1 <= len(capsule["text"].split("\n\n")) <= 4
    assert merge_capsules(examples).startswith("[inc-2025-007]")


# -- packing capsules into requests


def _unique_words(draw: st.DrawFn, prefix: str) -> str:
    """A text whose every word is unique across a test run, in paragraphs and sentences."""
    paragraphs = []
    for p in range(draw(st.integers(1, 4))):
        sentences = []
        for s in range(draw(st.integers(1, 8))):
            n = draw(st.sampled_from([1, 3, 12, 40, 200]))
            sentences.append(" ".join(f"{prefix}w{p}s{s}n{k}" for k in range(n)) + ".")
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


@st.composite
def capsule_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 25))
    return [
        {
            "id": f"c{i}",
            "text": _unique_words(draw, f"c{i}"),
            "score": draw(st.one_of(st.none(), st.floats(0, 1))),
            "title": draw(st.sampled_from([None, "A title", "A longer title, about caches"])),
        }
        for i in range(n)
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(capsule_lists(), st.integers(900, 9_000))
def test_packing_sends_every_capsule_word_exactly_once_and_each_request_fits(items, budget):
    llm = local_llm()
    run = capsules_module._prepare(items, llm, budget, MAP_PROMPT, REDUCE_PROMPT)
    limit = budget - run.budget.max_tokens
    fixed = estimate_tokens(MAP_PROMPT) + 2 * MESSAGE_OVERHEAD  # the system message, the template
    for request in run.requests:  # the user message
        assert fixed + estimate_tokens(request) <= limit
    sent = Counter(re.findall(r"c\d+w\d+s\d+n\d+", "\n".join(run.requests)))
    expected = Counter(re.findall(r"c\d+w\d+s\d+n\d+", " ".join(c["text"] for c in items)))
    assert sent == expected  # nothing dropped, nothing sent twice
    first = max(items, key=lambda c: -1 if c["score"] is None else c["score"])
    assert f"[{first['id']}]" in run.requests[0]  # the best capsule goes first


def test_a_huge_capsule_is_split_into_parts_on_paragraph_boundaries_and_never_dropped():
    paragraphs = [f"Finding {i}: the cache was cold. " + "Detail follows. " * 60 for i in range(30)]
    huge = {"id": "huge", "title": "A long postmortem", "text": "\n\n".join(paragraphs)}
    small = [{"id": f"s{i}", "text": f"Small note {i}.", "score": 0.5} for i in range(5)]
    run = capsules_module._prepare([huge, *small], local_llm(), 2_000, MAP_PROMPT, REDUCE_PROMPT)
    assert run.split == 1
    body = "\n".join(run.requests)
    for paragraph in paragraphs:
        assert body.count(paragraph.strip()) == 1
    parts = re.findall(r"\[huge\] A long postmortem \(part (\d+) of (\d+)\)\n", body)
    assert len(parts) == int(parts[0][1]) > 1
    assert sorted(int(p) for p, _ in parts) == list(range(1, len(parts) + 1))
    for i in range(5):
        assert body.count(f"[s{i}] Small note {i}.") == 1


# -- the budget


def test_no_capsules_is_an_error():
    for act in (plan_summary, summarize_capsules):
        with pytest.raises(InvalidRequestError, match="No capsules"):
            act([], llm=local_llm(), max_input_tokens=4_000)


def test_an_unknown_model_limit_warns_and_uses_the_default_budget():
    with pytest.warns(UserWarning, match="max_input_tokens=") as caught:
        plan = plan_summary(["one note"], llm=local_llm())
    assert caught[0].filename == __file__  # points at the caller's line
    assert "silently cut" in str(caught[0].message)
    assert plan.max_input_tokens == capsules_module.DEFAULT_MAX_INPUT_TOKENS == 4_000
    assert plan.max_tokens == 500


def test_githubs_own_endpoint_has_a_known_limit_and_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        low = plan_summary(["note"], llm=GitHubLLM(token=TOKEN))
        reasoning = plan_summary(["note"], llm=GitHubLLM("openai/o3-mini", token=TOKEN))
        given_here = plan_summary(["note"], llm=local_llm(), max_input_tokens=32_000)
    assert (low.max_input_tokens, low.max_tokens) == (8_000, 1_000)
    assert "GitHub" in low.budget_source
    assert reasoning.max_input_tokens == 4_000
    assert (given_here.max_input_tokens, given_here.max_tokens) == (32_000, 1_024)


@pytest.mark.parametrize("bad", [300, 0, -5])
def test_a_budget_too_small_for_two_partial_summaries_is_an_error(bad):
    with pytest.raises(InvalidRequestError, match=f"max_input_tokens={bad}"):
        plan_summary(["note"], llm=local_llm(), max_input_tokens=bad)


def test_a_budget_that_is_not_an_int_is_an_error():
    with pytest.raises(InvalidRequestError, match="must be an int"):
        plan_summary(["note"], llm=local_llm(), max_input_tokens="8000")  # type: ignore[arg-type]


# -- the plan


def words(text: str) -> int:
    return len(text.split())


@pytest.fixture
def word_counter(monkeypatch):
    """Count one token per word, so a plan's numbers can be worked out by hand."""
    counter = _tokens.TokenCounter("words", words)
    monkeypatch.setattr(capsules_module, "counter_for", lambda model: counter)


def github(limits: RateLimits | None = None) -> GitHubLLM:
    return GitHubLLM(token=TOKEN, limits=limits)  # 8,000 input tokens: 'low' tier


def test_plan_for_1000_capsules_at_githubs_free_tier(word_counter):
    # A capsule is "[cN]" and 699 words: 700 tokens. Room per request: 8,000 - 1,000 for the
    # answer - 1 for the prompt - 2 * 8 for the template = 6,983, so 9 capsules a request.
    capsules = [{"id": f"c{i}", "text": "w " * 699} for i in range(1_000)]
    plan = plan_summary(capsules, llm=github(), prompt="Summarise:", reduce_prompt="Merge:")
    # 112 partials of 1,000 + 3 ("Partial summary N") tokens, 6 per reduce request
    assert [(s.stage, s.requests) for s in plan.stages] == [
        ("map", 112),
        ("reduce", 19),
        ("reduce", 4),
        ("reduce", 1),
    ]
    assert plan.stages[0].input_tokens == 111 * (9 * 700 + 17) + (700 + 17)
    assert plan.stages[1].input_tokens == 19 * 17 + 112 * 1_003
    assert plan.requests == 136 and plan.days == 1
    assert plan.seconds == 9 * 61  # 135 requests before the last, 15 a (61-second) minute
    assert plan.limits == RateLimits(15, 150, 5)
    assert str(plan) == (
        f"1,000 capsules: 136 requests (112 map + 24 reduce in 3 rounds), about "
        f"{plan.input_tokens:,} input tokens; about 9 min at 15/min"
    )


def test_plan_over_the_daily_quota_counts_days(word_counter):
    capsules = [{"id": f"c{i}", "text": "w " * 699} for i in range(10_000)]
    plan = plan_summary(capsules, llm=github(), prompt="Summarise:", reduce_prompt="Merge:")
    assert [s.requests for s in plan.stages] == [1_112, 186, 31, 6, 1]
    assert plan.requests == 1_336 and plan.days == 9
    assert plan.seconds == 8 * 86_460 + (1_335 % 150) // 15 * 61  # with the limiter's margins
    assert str(plan).startswith("10,000 capsules: 1,336 requests (1,112 map + 224 reduce in 4 ")
    assert str(plan).endswith("; 9 days at 150/day")


def test_plan_without_limits_says_time_depends_on_the_server(word_counter):
    plan = plan_summary(["a note"], llm=local_llm(), max_input_tokens=8_000)
    assert plan.seconds is None and plan.days is None
    assert plan.stages == (StagePlan("map", 1, plan.stages[0].input_tokens),)
    assert str(plan).endswith("no limit per minute or per day: the time depends on the server")


def test_plan_sends_nothing(word_counter):
    plan_summary(load_examples(), llm=local_llm(), max_input_tokens=2_000)  # port 9: no server


def test_plan_counts_answers_against_tokens_per_minute(word_counter):
    limits = RateLimits(tokens_per_minute=20_000)
    capsules = [{"id": f"c{i}", "text": "w " * 699} for i in range(90)]
    plan = plan_summary(capsules, llm=github(limits), prompt="Summarise:", reduce_prompt="Merge:")
    assert [s.requests for s in plan.stages] == [10, 2, 1]
    assert plan.input_tokens == 10 * (9 * 700 + 17) + (2 * 17 + 10 * 1_003) + (17 + 2 * 1_003)
    # 75,257 input tokens and 13 answers of 1,000 booked: 81,468 go before the last request
    assert plan.seconds == 4 * 61
    assert str(plan).endswith("; about 4 min at 20,000 tokens/min")


# -- summarising, end to end against the double


def system_message(request: RecordedRequest) -> str:
    return request.body["messages"][0]["content"]


def user_message(request: RecordedRequest) -> str:
    return request.body["messages"][-1]["content"]


def stage(fake: FakeGitHubModels, prompt: str) -> list[RecordedRequest]:
    return [r for r in fake.requests if system_message(r) == prompt]


def test_summary_sends_every_capsule_once_in_the_map_stage_and_each_request_fits(fake, make_llm):
    fake.reply_mode = "extractive"  # the first sentence of each paragraph, ids kept
    llm = make_llm(model="openai/gpt-4o-mini")
    examples = load_examples()
    plan = plan_summary(examples, llm=llm, max_input_tokens=1_500)
    summary = summarize_capsules(examples, llm=llm, max_input_tokens=1_500, progress=False)
    maps, reduces = stage(fake, MAP_PROMPT), stage(fake, REDUCE_PROMPT)
    assert len(maps) == plan.stages[0].requests > 1 and reduces
    assert len(maps) + len(reduces) == len(fake.requests)
    assert {r.status for r in fake.requests} == {200}
    sent = "\n\n".join(user_message(r) for r in maps)
    for capsule in examples:
        assert sent.count(capsule["text"]) == 1, capsule["id"]
    best = [user_message(r) for r in maps if "[inc-2025-007]" in user_message(r)]
    assert best[0].startswith("[inc-2025-007] ")  # the best capsule goes first
    for request in fake.requests:
        assert request.body["max_tokens"] == plan.max_tokens
        estimate = sum(estimate_tokens(m["content"]) for m in request.body["messages"])
        assert estimate + 2 * MESSAGE_OVERHEAD <= 1_500 - plan.max_tokens
    assert "[inc-2025-007] INC-2025-007: double charges on retries On 2025-02-18" in summary


def test_a_capsule_larger_than_a_request_is_sent_in_parts_never_dropped(fake, make_llm):
    paragraphs = [f"Finding {i}: the replica lagged. " + "It did. " * 50 for i in range(40)]
    huge = {"id": "pm-1", "title": "Postmortem", "text": "\n\n".join(paragraphs), "score": 0.2}
    llm = make_llm(model="openai/gpt-4o-mini")
    summarize_capsules([huge, "A short note."], llm=llm, max_input_tokens=2_000, progress=False)
    sent = "\n".join(user_message(r) for r in stage(fake, MAP_PROMPT))
    assert "[pm-1] Postmortem (part 2 of " in sent
    for paragraph in paragraphs:
        assert sent.count(paragraph.strip()) == 1
    assert sent.count("A short note.") == 1


def test_one_request_is_enough_when_everything_fits(fake, make_llm):
    fake.reply("  Restart nightly [a].  ")
    capsules = [{"id": "a", "text": "Restart the cache nightly."}, "A note."]
    summary = summarize_capsules(capsules, llm=make_llm(), max_input_tokens=8_000)
    assert summary == "Restart nightly [a]."
    assert len(fake.requests) == 1
    assert user_message(fake.requests[0]) == "[a] Restart the cache nightly.\n\nA note."


def test_progress_and_max_tokens_go_to_every_map_call(fake, make_llm, monkeypatch):
    llm = make_llm(model="openai/gpt-4o-mini")
    calls: list[dict[str, Any]] = []
    real_map = llm.map

    def spy(prompts: list[str], **options: Any) -> list[str]:
        calls.append(options)
        return real_map(prompts, **{**options, "progress": False})

    monkeypatch.setattr(llm, "map", spy)
    summarize_capsules(load_examples(), llm=llm, max_input_tokens=1_500, progress=True)
    assert len(calls) >= 2
    assert [c["system"] for c in calls] == [MAP_PROMPT] + [REDUCE_PROMPT] * (len(calls) - 1)
    assert all(c["progress"] is True and c["max_tokens"] == 187 for c in calls)


def test_a_failed_request_raises_batch_error_with_the_answers_that_came_back(fake, make_llm):
    fake.fail("content_filter")  # the first request's answer is filtered
    llm = make_llm(model="openai/gpt-4o-mini")
    with pytest.raises(BatchError) as caught:
        summarize_capsules(load_examples(), llm=llm, max_input_tokens=1_500, progress=False)
    results = caught.value.results
    assert len(results) == len(stage(fake, MAP_PROMPT)) > 1
    assert sum(isinstance(r, str) for r in results) == len(results) - 1


def test_empty_partial_summaries_are_an_error_not_an_empty_summary(fake, make_llm):
    llm = make_llm(model="openai/gpt-4o-mini")
    for _ in range(20):  # more than the map stage's requests
        fake.reply(" ")
    capsules = [{"id": f"c{i}", "text": "Words. " * 300} for i in range(2)]
    with pytest.raises(InvalidResponseError, match="empty"):
        summarize_capsules(capsules, llm=llm, max_input_tokens=1_000, progress=False)
