"""PromptFile.evaluate: gh models eval's semantics, report and concurrency, on the double."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import textwrap
from pathlib import Path

import pytest

import sigla
from sigla.errors import AuthenticationError
from sigla.prompts import EvalReport, load_prompt

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "prompts").glob("*.prompt.y*ml"))
JUDGES = Path(sigla.__file__).parent / "_data" / "judges"

HEAD = """\
name: T
description: a test
model: openai/gpt-4o-mini
modelParameters: {temperature: 0.2}
messages:
  - role: user
    content: "Say {{word}}"
"""


def prompt_file(tmp_path, body: str, head: str = HEAD, **kw):
    path = tmp_path / "t.prompt.yml"
    path.write_text(head + textwrap.dedent(body), encoding="utf-8")
    return load_prompt(path, **kw)


def results(report: EvalReport, case: int = 0) -> dict[str, tuple[float, bool, str]]:
    return {
        r.evaluator_name: (r.score, r.passed, r.details)
        for r in report.test_results[case].evaluation_results
    }


# -- string evaluators


def test_string_evaluators_equals_is_exact_the_others_ignore_case(tmp_path, fake, make_llm):
    p = prompt_file(
        tmp_path,
        """\
        testData:
          - word: Answer
        evaluators:
          - {name: equals, string: {equals: "The Answer is 42"}}
          - {name: equals other case, string: {equals: "the answer is 42"}}
          - {name: contains, string: {contains: "ANSWER IS"}}
          - {name: contains templated, string: {contains: "the {{word}}"}}
          - {name: starts, string: {startsWith: "tHE"}}
          - {name: starts wrong, string: {startsWith: "answer"}}
          - {name: ends, string: {endsWith: "IS 42"}}
          - {name: ends wrong, string: {endsWith: "4"}}
          - {name: unknown variable, string: {contains: "{{nope}}"}}
        """,
    )
    fake.reply("  The Answer is 42 \n")
    report = p.evaluate(make_llm())
    case = report.test_results[0]
    assert case.model_response == "The Answer is 42"  # trimmed
    assert results(report) == {
        "equals": (1.0, True, "Expected exact match: 'The Answer is 42'"),
        "equals other case": (0.0, False, "Expected exact match: 'the answer is 42'"),
        "contains": (1.0, True, "Expected to contain: 'ANSWER IS'"),
        "contains templated": (1.0, True, "Expected to contain: 'the Answer'"),
        "starts": (1.0, True, "Expected to start with: 'tHE'"),
        "starts wrong": (0.0, False, "Expected to start with: 'answer'"),
        "ends": (1.0, True, "Expected to end with: 'IS 42'"),
        "ends wrong": (0.0, False, "Expected to end with: '4'"),
        "unknown variable": (0.0, False, "Expected to contain: '{{nope}}'"),
    }
    assert not case.passed and not report.passed
    assert len(fake.requests) == 1  # string evaluators call nothing


def test_the_case_request_is_the_files_with_the_case_rendered(tmp_path, fake, make_llm):
    p = prompt_file(tmp_path, "testData:\n  - word: hi\n")
    p.evaluate(make_llm())
    body = fake.last_request.body
    assert body["model"] == "openai/gpt-4o-mini"
    assert body["temperature"] == 0.2
    assert body["messages"] == [{"role": "user", "content": "Say hi"}]


def test_a_missing_variable_is_sent_verbatim_with_a_warning(tmp_path, fake, make_llm, caplog):
    p = prompt_file(tmp_path, "testData:\n  - other: 1\n")
    with caplog.at_level(logging.WARNING, logger="sigla"):
        report = p.evaluate(make_llm())
    assert fake.last_request.body["messages"][0]["content"] == "Say {{word}}"
    assert "testData[0] has no value for {{word}}" in caplog.text
    assert report.passed  # no evaluator: nothing failed, as in gh-models


# -- llm evaluators


LLM_EVAL = """\
testData:
  - word: cats
evaluators:
  - name: judge
    llm:
      modelId: openai/gpt-4.1
      systemPrompt: You judge.
      prompt: "Is '{{completion}}' about {{word}}? {{missing}}"
      choices:
        - {choice: "No", score: 0}
        - {choice: "partly", score: 0.5}
        - {choice: "yes", score: 1}
"""


@pytest.mark.parametrize(
    ("reply", "score", "details"),
    [
        ("YES", 1.0, "LLM evaluation matched choice: 'yes'"),
        ("Partly, yes", 0.5, "LLM evaluation matched choice: 'partly'"),  # list order wins
        ("yes, not no", 0.0, "LLM evaluation matched choice: 'No'"),  # first in the list
        (" Maybe ", 0.0, "LLM evaluation response 'maybe' did not match any defined choices"),
    ],
)
def test_llm_evaluator_scores_by_the_first_choice_found(
    tmp_path, fake, make_llm, reply, score, details
):
    p = prompt_file(tmp_path, LLM_EVAL)
    fake.reply("All about cats.")
    fake.reply(reply)
    report = p.evaluate(make_llm())
    assert results(report) == {"judge": (score, score > 0, details)}
    assert report.passed is (score > 0)


def test_llm_evaluator_request_has_its_model_system_and_templated_prompt(
    tmp_path, fake, make_llm, caplog
):
    p = prompt_file(tmp_path, LLM_EVAL)
    fake.reply("All about cats.")
    with caplog.at_level(logging.WARNING, logger="sigla"):
        p.evaluate(make_llm())
    judge = fake.requests[1].body
    assert judge["model"] == "openai/gpt-4.1"
    assert judge["temperature"] == 0
    assert judge["messages"] == [
        {"role": "system", "content": "You judge."},
        {"role": "user", "content": "Is 'All about cats.' about cats? {{missing}}"},
    ]
    assert "evaluator 'judge': testData[0] has no {{missing}}" in caplog.text
    assert "response_format" not in judge


def test_llm_evaluator_without_system_prompt_sends_the_user_message_alone(tmp_path, fake, make_llm):
    p = prompt_file(tmp_path, LLM_EVAL.replace("      systemPrompt: You judge.\n", ""))
    p.evaluate(make_llm())
    assert [m["role"] for m in fake.requests[1].body["messages"]] == ["user"]


@pytest.mark.parametrize(
    ("judge_model", "env", "model_map", "sent"),
    [
        (None, None, None, "openai/gpt-4.1"),
        (None, None, "openai/gpt-4.1=openai/gpt-5", "openai/gpt-5"),  # through the map
        (None, "deepseek/DeepSeek-R1", "openai/gpt-4.1=openai/gpt-5", "deepseek/DeepSeek-R1"),
        ("openai/gpt-4o", "deepseek/DeepSeek-R1", None, "openai/gpt-4o"),  # argument first
    ],
)
def test_judge_model_resolution(
    tmp_path, fake, make_llm, monkeypatch, judge_model, env, model_map, sent
):
    if env:
        monkeypatch.setenv("SIGLA_JUDGE_MODEL", env)
    p = prompt_file(tmp_path, LLM_EVAL, model_map=model_map)
    p.evaluate(make_llm(), judge_model=judge_model)
    assert fake.requests[1].body["model"] == sent


# -- builtin judges

BUILTIN = """\
testData:
  - word: cats
    input: What do cats eat?
    expected: Cats eat meat.
evaluators:
  - {name: builtin, uses: github/NAME}
"""


@pytest.mark.parametrize(("rating", "score"), [("1", 0), ("2", 0.25), ("3", 0.5), ("4", 0.75)])
def test_builtin_judge_maps_its_rating_to_a_score(tmp_path, fake, make_llm, rating, score):
    p = prompt_file(tmp_path, BUILTIN.replace("NAME", "similarity"))
    fake.reply("Cats eat meat, mostly.")
    fake.reply(f"{rating}\n")
    report = p.evaluate(make_llm())
    assert results(report) == {
        "builtin": (score, score > 0, f"LLM evaluation matched choice: '{rating}'")
    }
    fake.reply("x")
    fake.reply("5")
    assert results(p.evaluate(make_llm()))["builtin"][0] == 1.0


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("similarity", ("What do cats eat?", "Cats eat meat.")),
        ("coherence", ("What do cats eat?",)),
        ("fluency", ()),
        ("relevance", ("What do cats eat?",)),
        ("groundedness", ("What do cats eat?", "Cats eat meat.")),  # expected: the context
    ],
)
def test_builtin_judge_request(tmp_path, fake, make_llm, name, shown):
    p = prompt_file(tmp_path, BUILTIN.replace("NAME", name))
    fake.reply("The completion.")
    fake.reply("4")
    report = p.evaluate(make_llm())
    assert results(report)["builtin"][:2] == (0.75, True)
    judge = fake.requests[1].body
    assert judge["model"] == "openai/gpt-4o"
    system, user = judge["messages"]
    assert system["role"] == "system" and "1 to 5" in system["content"]
    assert user["role"] == "user" and "The completion." in user["content"]
    for text in shown:
        assert text in user["content"]
    assert "{{" not in user["content"]
    assert (JUDGES / f"{name}.prompt.yml").is_file()


def test_builtin_judges_follow_the_model_map_and_judge_model(tmp_path, fake, make_llm):
    p = prompt_file(
        tmp_path, BUILTIN.replace("NAME", "fluency"), model_map="openai/gpt-4o=openai/gpt-4.1"
    )
    p.evaluate(make_llm())
    assert fake.requests[1].body["model"] == "openai/gpt-4.1"
    p.evaluate(make_llm(), judge_model="openai/gpt-5")
    assert fake.requests[3].body["model"] == "openai/gpt-5"


# -- the report


def test_report_summary_and_json_shape(tmp_path, fake, make_llm):
    p = prompt_file(
        tmp_path,
        """\
        testData:
          - word: alpha
          - word: beto
          - word: gamma
        evaluators:
          - {name: ends in a, string: {endsWith: "A"}}
          - {name: echoes, string: {startsWith: "echo: say"}}
        """,
    )
    report = p.evaluate(make_llm(), concurrency=2)
    assert [c.passed for c in report.test_results] == [True, False, True]  # "Echo: Say beto"
    assert report.summary.as_dict() == {
        "totalTests": 3,
        "passedTests": 2,
        "failedTests": 1,
        "passRate": pytest.approx(200 / 3),
    }
    data = json.loads(report.to_json())
    assert data == report.as_dict()
    assert list(data) == ["name", "description", "model", "testResults", "summary"]
    assert (data["name"], data["description"], data["model"]) == (
        "T",
        "a test",
        "openai/gpt-4o-mini",
    )
    first = data["testResults"][0]
    assert list(first) == ["testCase", "modelResponse", "evaluationResults"]
    assert first["testCase"] == {"word": "alpha"}
    assert first["modelResponse"] == "Echo: Say alpha"
    assert first["evaluationResults"][1] == {
        "evaluatorName": "echoes",
        "score": 1.0,
        "passed": True,
        "details": "Expected to start with: 'echo: say'",
    }
    text = report.to_text()
    assert "Test case 2/3: FAILED" in text and "Model response: Echo: Say beto" in text
    assert "  FAIL  ends in a  0.00  Expected to end with: 'A'" in text
    assert text.endswith("Passed: 2/3 (66.67%)")


def test_no_test_data_passes_with_rate_100_as_gh_models_json(tmp_path, fake, make_llm):
    report = prompt_file(tmp_path, "").evaluate(make_llm())
    assert report.passed and report.test_results == ()
    assert report.summary.as_dict() == {
        "totalTests": 0,
        "passedTests": 0,
        "failedTests": 0,
        "passRate": 100.0,
    }
    assert "Passed: 0/0 (0.00%)" in report.to_text()
    assert fake.requests == []


# -- failures


def test_a_failing_case_is_reported_and_the_others_run(tmp_path, fake, make_llm):
    p = prompt_file(
        tmp_path,
        """\
        testData:
          - word: one
          - word: two
        evaluators:
          - {name: said, string: {contains: "say"}}
        """,
    )
    fake.fail("tokens_limit")
    report = p.evaluate(make_llm(), concurrency=1)
    failed, ok = report.test_results
    assert ok.passed and not failed.passed
    assert failed.error is not None and failed.model_response == ""
    [result] = failed.evaluation_results
    assert not result.passed and result.score == 0
    assert result.details.startswith("not evaluated: the model call failed: InputTooLargeError")
    assert report.summary.failed_tests == 1


def test_a_failing_case_without_evaluators_still_fails(tmp_path, fake, make_llm):
    p = prompt_file(tmp_path, "testData:\n  - word: one\n")
    fake.fail("tokens_limit")
    report = p.evaluate(make_llm())
    assert not report.passed
    assert report.as_dict()["testResults"][0]["evaluationResults"][0]["evaluatorName"] == (
        "model call"
    )


def test_a_failing_judge_call_fails_its_evaluator_only(tmp_path, fake, make_llm):
    p = prompt_file(tmp_path, LLM_EVAL + "  - {name: said, string: {contains: say}}\n")
    fake.reply("say cats " * 100)
    fake.max_input_tokens = 100  # the case's request fits, the judge's (with it) does not
    report = p.evaluate(make_llm())
    judge = results(report)["judge"]
    assert judge[:2] == (0.0, False)
    assert judge[2].startswith("the judge's call failed: InputTooLargeError")
    assert results(report)["said"][:2] == (1.0, True)


def test_an_error_that_dooms_every_case_raises(tmp_path, fake, make_llm):
    p = prompt_file(tmp_path, "testData:\n  - word: one\n  - word: two\n")
    fake.fail("unauthorized", times=None)
    with pytest.raises(AuthenticationError):
        p.evaluate(make_llm())


# -- concurrency, cache, async


def overlapping(requests) -> bool:
    """Whether one of ``requests`` arrived while another was still being answered."""
    spans = sorted((r.received_at, r.finished_at or r.received_at) for r in requests)
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))


def test_cases_and_judges_are_in_flight_together(tmp_path, fake, make_llm):
    cases = "".join(f"  - word: w{i}\n" for i in range(4))
    p = prompt_file(
        tmp_path,
        "testData:\n" + cases + "evaluators:\n  - {name: b, uses: github/fluency}\n",
    )
    fake.latency = 0.2
    report = p.evaluate(make_llm(), concurrency=4)
    assert len(report.test_results) == 4
    assert fake.max_in_flight > 1
    judged = [r for r in fake.requests if r.model == "openai/gpt-4o"]
    answered = [r for r in fake.requests if r.model == "openai/gpt-4o-mini"]
    assert len(judged) == len(answered) == 4
    assert overlapping(answered) and overlapping(judged)


def test_a_second_run_with_a_cache_sends_nothing(tmp_path, fake, make_llm):
    p = prompt_file(tmp_path, BUILTIN.replace("NAME", "relevance"))
    llm = make_llm(cache=str(tmp_path / "answers.sqlite"))
    first = p.evaluate(llm)
    sent = len(fake.requests)
    assert sent == 2
    second = p.evaluate(llm)
    assert len(fake.requests) == sent
    assert second == first
    assert llm.usage.cached == 2


def test_aevaluate_gives_the_same_report(tmp_path, fake, make_llm):
    p = prompt_file(tmp_path, LLM_EVAL)
    fake.reply("cats")
    fake.reply("yes")
    sync = p.evaluate(make_llm())
    fake.reply("cats")
    fake.reply("yes")
    async_ = asyncio.run(p.aevaluate(make_llm()))
    assert async_ == sync and async_.passed
    assert fake.requests[2].body == fake.requests[0].body
    assert fake.requests[3].body == fake.requests[1].body


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_prompt_evaluates_end_to_end(path, fake, make_llm):
    p = load_prompt(path)
    report = p.evaluate(make_llm())
    assert report.path == str(path) and report.name == p.name
    assert len(report.test_results) == len(p.test_data) > 0
    for case, variables in zip(report.test_results, p.test_data, strict=True):
        assert case.error is None and case.model_response.startswith("Echo:")
        assert case.test_case == variables
        assert [r.evaluator_name for r in case.evaluation_results] == [e.name for e in p.evaluators]
        assert all(0 <= r.score <= 1 and r.details for r in case.evaluation_results)
    s = report.summary
    assert s.passed_tests + s.failed_tests == s.total_tests == len(p.test_data)
    json.loads(report.to_json())


def test_the_builtin_judges_ship_as_package_data_with_their_variables():
    from sigla._prompt_eval import JUDGE_MODEL, builtin_judge
    from sigla._prompt_model import BUILTIN_EVALUATORS

    setup = (ROOT / "setup.py").read_text()
    assert '"_data/judges/*.prompt.yml"' in setup
    assert "recursive-include sigla/_data *.json *.prompt.yml" in (ROOT / "MANIFEST.in").read_text()
    wanted = {
        "similarity": {"input", "expected", "completion"},
        "coherence": {"input", "completion"},
        "fluency": {"completion"},
        "relevance": {"input", "completion"},
        "groundedness": {"input", "expected", "completion"},
    }
    assert set(wanted) == set(BUILTIN_EVALUATORS)
    for name, variables in wanted.items():
        judge = builtin_judge(name)
        assert judge.model_id == JUDGE_MODEL and judge.system_prompt
        assert [(c.choice, c.score) for c in judge.choices] == [
            ("1", 0),
            ("2", 0.25),
            ("3", 0.5),
            ("4", 0.75),
            ("5", 1),
        ]
        assert set(re.findall(r"\{\{(\w+)\}\}", judge.prompt)) == variables


def test_evaluate_and_aevaluate_take_the_same_parameters():
    import inspect

    from sigla.prompts import PromptFile

    assert inspect.signature(PromptFile.evaluate) == inspect.signature(PromptFile.aevaluate)
