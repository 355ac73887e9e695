"""Evaluating a prompt file as ``gh models eval`` does: test cases, evaluators, a report.

Each ``testData`` case renders the messages (a placeholder without a value goes out
verbatim, with a warning, as gh-models sends it), is sent with the file's model and
parameters, and its trimmed answer goes through every evaluator:

- ``string``: ``equals`` exact, ``contains``/``startsWith``/``endsWith`` case-insensitive,
  the expected text templated with the case; score 1 or 0.
- ``llm``: ``prompt``, templated with the case plus ``{{completion}}``, goes to ``modelId``
  after ``systemPrompt``; the first of ``choices`` (in list order) found in the lower-cased
  reply gives the score, none found gives 0.
- ``uses: github/<name>``: the same with sigla's own judge prompts (``sigla/_data/judges``)
  whose 1-5 rating scores 0, 0.25, 0.5, 0.75, 1.

An evaluator passes when its score is above 0, a case when all its evaluators pass. The
cases go through the client's batch engine at once (its limits, retries and cache), then
the judges' calls; :class:`Evaluation` is the I/O-free core, so ``evaluate`` and
``aevaluate`` differ only in the lines that call ``map`` or ``amap``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from ._prompt_model import BUILTIN_EVALUATORS, Choice, Evaluator, LLMEvaluator
from .errors import LLMError, NotAttemptedError

if TYPE_CHECKING:
    from .llm import GitHubLLM
    from .prompts import PromptFile

__all__ = [
    "JUDGE_MODEL",
    "CaseResult",
    "EvalReport",
    "EvalSummary",
    "Evaluation",
    "EvaluationResult",
    "builtin_judge",
]

logger = logging.getLogger("sigla")

JUDGE_MODEL = "openai/gpt-4o"  # the builtin judges' model, as gh-models has it
_RATING = tuple(Choice(str(n), (n - 1) / 4) for n in range(1, 6))  # "1" -> 0 ... "5" -> 1
_JUDGE_TEMPERATURE = 0.0  # a judge should give the same verdict twice (and hit the cache)

Reply = Union[str, LLMError]  # noqa: UP007 (a runtime alias on 3.10)


# ---------------------------------------------------------------- the report


@dataclass(frozen=True)
class EvaluationResult:
    """One evaluator's verdict on one answer: ``score`` (0 to 1), ``passed`` (score > 0)
    and ``details`` (what was expected or matched, or why it could not be judged)."""

    evaluator_name: str
    score: float
    passed: bool
    details: str = ""

    def as_dict(self) -> dict[str, Any]:
        """gh-models' JSON keys: ``evaluatorName``, ``score``, ``passed``, ``details``."""
        return {
            "evaluatorName": self.evaluator_name,
            "score": self.score,
            "passed": self.passed,
            "details": self.details,
        }


@dataclass(frozen=True)
class CaseResult:
    """One test case: its variables, the model's trimmed answer and each evaluator's result.

    ``error`` is the failure of the model call, if any (the case then fails, and each of
    its evaluators reports the error in its ``details``).
    """

    test_case: Mapping[str, Any]
    model_response: str
    evaluation_results: tuple[EvaluationResult, ...]
    error: LLMError | None = None

    @property
    def passed(self) -> bool:
        """Whether the model answered and every evaluator passed."""
        return self.error is None and all(r.passed for r in self.evaluation_results)

    def as_dict(self) -> dict[str, Any]:
        """gh-models' JSON keys: ``testCase``, ``modelResponse``, ``evaluationResults``."""
        return {
            "testCase": dict(self.test_case),
            "modelResponse": self.model_response,
            "evaluationResults": [r.as_dict() for r in self.evaluation_results],
        }


@dataclass(frozen=True)
class EvalSummary:
    """The counts of a report; ``pass_rate`` is a percentage (100 for no test case, as in
    gh-models' JSON)."""

    total_tests: int
    passed_tests: int
    failed_tests: int
    pass_rate: float

    def as_dict(self) -> dict[str, Any]:
        """gh-models' JSON keys: ``totalTests``, ``passedTests``, ``failedTests``, ``passRate``."""
        return {
            "totalTests": self.total_tests,
            "passedTests": self.passed_tests,
            "failedTests": self.failed_tests,
            "passRate": self.pass_rate,
        }


@dataclass(frozen=True)
class EvalReport:
    """What :meth:`~sigla.prompts.PromptFile.evaluate` found, shaped as ``gh models eval
    --json`` prints it (:meth:`as_dict`, :meth:`to_json`).

    ``model`` is the model the test cases were sent to; ``path`` the file's.

    Example::

        report = load_prompt("prompts/capsule-tags.prompt.yml").evaluate()
        print(report.to_text())            # per case PASSED/FAILED, then "Passed: X/Y (Z%)"
        assert report.passed, report.to_json()
    """

    name: str
    description: str
    model: str
    test_results: tuple[CaseResult, ...]
    summary: EvalSummary
    path: str = ""

    @property
    def passed(self) -> bool:
        """Whether every test case passed."""
        return self.summary.failed_tests == 0

    def as_dict(self) -> dict[str, Any]:
        """The report as gh-models' ``--json`` object (camelCase keys, nothing else)."""
        return {
            "name": self.name,
            "description": self.description,
            "model": self.model,
            "testResults": [r.as_dict() for r in self.test_results],
            "summary": self.summary.as_dict(),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`as_dict` as JSON text (values YAML gave that JSON lacks, as strings)."""
        return json_text(self.as_dict(), indent)

    def to_text(self) -> str:
        """The human-readable report: a header, each case PASSED or FAILED with every
        evaluator's score, then ``Passed: X/Y (Z.ZZ%)`` as ``gh models eval`` ends."""
        total = len(self.test_results)
        lines = [
            f"Running evaluation: {self.name}",
            f"Description: {self.description}",
            f"Model: {self.model}",
            f"Test cases: {total}",
            "",
        ]
        for i, case in enumerate(self.test_results, 1):
            lines.append(f"Test case {i}/{total}: {'PASSED' if case.passed else 'FAILED'}")
            if not case.passed:
                preview = " ".join(case.model_response.split())
                preview = preview[:100] + "..." if len(preview) > 100 else preview
                lines.append(f"  Model response: {preview}")
            width = max((len(r.evaluator_name) for r in case.evaluation_results), default=0)
            for r in case.evaluation_results:
                mark = "pass" if r.passed else "FAIL"
                detail = " ".join(r.details.split())
                lines.append(f"  {mark}  {r.evaluator_name:<{width}}  {r.score:.2f}  {detail}")
            lines.append("")
        s = self.summary
        rate = s.pass_rate if s.total_tests else 0.0  # gh-models prints 0.00% for 0/0
        lines += ["Evaluation Summary:", f"Passed: {s.passed_tests}/{s.total_tests} ({rate:.2f}%)"]
        if s.failed_tests == 0:
            lines.append("All tests passed!")
        return "\n".join(lines)


# ---------------------------------------------------------------- the judges


@functools.cache
def builtin_judge(name: str) -> LLMEvaluator:
    """The judge of ``uses: github/<name>``: sigla's prompt (``sigla/_data/judges``) on
    :data:`JUDGE_MODEL`, scoring the rating "1".."5" as 0, 0.25, 0.5, 0.75, 1."""
    from importlib.resources import as_file, files

    from .prompts import load_prompt

    if name not in BUILTIN_EVALUATORS:
        raise ValueError(f"no builtin judge {name!r}: one of {', '.join(BUILTIN_EVALUATORS)}")
    with as_file(files("sigla") / "_data" / "judges" / f"{name}.prompt.yml") as found:
        judge = load_prompt(found, model_map={})
    system, user = (m.content for m in judge.messages)
    return LLMEvaluator(judge.model or JUDGE_MODEL, user, _RATING, system)


# ---------------------------------------------------------------- the core


@dataclass(frozen=True)
class JudgeCall:
    """One request to a judge: for case ``case``'s evaluator ``slot``."""

    case: int
    slot: int
    model: str
    messages: list[dict[str, str]]


class Evaluation:
    """The I/O-free core of an evaluation: the requests to send, and the report they make.

    ``case_prompts``/``case_options`` are the batch of test cases; :meth:`answered` takes
    its results and returns the judges' calls (grouped by model with :meth:`by_model`);
    :meth:`report` takes their replies.
    """

    def __init__(self, prompt: PromptFile, llm: GitHubLLM, judge_model: str | None) -> None:
        from .prompts import MissingVariablesError

        self.prompt = prompt
        self.llm = llm
        chosen = judge_model if judge_model is not None else os.environ.get("SIGLA_JUDGE_MODEL")
        self.judge_model = (chosen or "").strip() or None
        self.cases = [dict(case) for case in prompt.test_data]
        options = prompt.request(None, llm=llm, strict=False)
        options.pop("messages")
        self.case_options = options
        self.model = options["model"] or llm.settings.model
        self.case_prompts: list[list[dict[str, str]]] = []
        for i, case in enumerate(self.cases):
            try:
                messages = prompt.render(case)
            except MissingVariablesError as error:
                logger.warning(
                    "%s: testData[%d] has no value for %s: sent verbatim, as gh-models does",
                    prompt.path,
                    i,
                    ", ".join("{{" + name + "}}" for name in error.missing),
                )
                messages = prompt.render(case, strict=False)
            self.case_prompts.append(messages)
        self.answers: list[str] = [""] * len(self.cases)
        self.errors: list[LLMError | None] = [None] * len(self.cases)
        self.results: list[list[EvaluationResult | None]] = []
        self._warned: set[tuple[int, str]] = set()

    # -- step 1: the test cases' answers

    def answered(self, replies: Sequence[Reply]) -> list[JudgeCall]:
        """Record the cases' answers (raising an error that dooms every case), run the
        string evaluators, and return the calls the judges need."""
        _raise_doomed(replies, self.llm.settings.max_retry_wait)
        calls: list[JudgeCall] = []
        for i, reply in enumerate(replies):
            row: list[EvaluationResult | None] = []
            self.results.append(row)
            if isinstance(reply, LLMError):
                self.errors[i] = reply
                failure = f"not evaluated: the model call failed: {_describe(reply)}"
                row.extend(EvaluationResult(e.name, 0.0, False, failure) for e in self._evals)
                continue
            self.answers[i] = answer = reply.strip()
            for slot, evaluator in enumerate(self._evals):
                if evaluator.string is not None:
                    row.append(self._string(evaluator, self.cases[i], answer))
                    continue
                row.append(None)
                calls.append(self._judge_call(i, slot, evaluator, answer))
        return calls

    @property
    def _evals(self) -> tuple[Evaluator, ...]:
        return self.prompt.evaluators

    @staticmethod
    def _string(evaluator: Evaluator, case: Mapping[str, Any], answer: str) -> EvaluationResult:
        from .prompts import fill_template

        assert evaluator.string is not None
        kind, template = evaluator.string.check
        expected, _ = fill_template(template, case)
        low, want = answer.lower(), expected.lower()
        passed, details = {
            "equals": (answer == expected, f"Expected exact match: '{expected}'"),
            "contains": (want in low, f"Expected to contain: '{expected}'"),
            "startsWith": (low.startswith(want), f"Expected to start with: '{expected}'"),
            "endsWith": (low.endswith(want), f"Expected to end with: '{expected}'"),
        }[kind]
        return EvaluationResult(evaluator.name, 1.0 if passed else 0.0, passed, details)

    def judge_of(self, evaluator: Evaluator) -> LLMEvaluator:
        """The ``llm`` evaluator itself, or the builtin judge of ``uses``."""
        if evaluator.llm is not None:
            return evaluator.llm
        assert evaluator.builtin is not None
        return builtin_judge(evaluator.builtin)

    def judge_model_for(self, judge: LLMEvaluator) -> str:
        """``judge_model=`` (or ``SIGLA_JUDGE_MODEL``), else the judge's through the model map."""
        if self.judge_model is not None:
            return self.judge_model
        return self.prompt.model_map.get(judge.model_id, judge.model_id)

    def _judge_call(self, case: int, slot: int, evaluator: Evaluator, answer: str) -> JudgeCall:
        from .prompts import fill_template

        judge = self.judge_of(evaluator)
        text, unfilled = fill_template(judge.prompt, {**self.cases[case], "completion": answer})
        for name in unfilled:
            if (slot, name) not in self._warned:
                self._warned.add((slot, name))
                logger.warning(
                    "%s: evaluator %r: testData[%d] has no {{%s}}: sent verbatim to the judge",
                    self.prompt.path,
                    evaluator.name,
                    case,
                    name,
                )
        messages = (
            [{"role": "system", "content": judge.system_prompt}] if judge.system_prompt else []
        )
        messages.append({"role": "user", "content": text})
        return JudgeCall(case, slot, self.judge_model_for(judge), messages)

    @staticmethod
    def judge_options(model: str) -> dict[str, Any]:
        """The batch options of the judges' calls to ``model``."""
        return {"model": model, "temperature": _JUDGE_TEMPERATURE}

    @staticmethod
    def by_model(calls: Sequence[JudgeCall]) -> dict[str, list[JudgeCall]]:
        """The judges' calls grouped by the model they go to (a batch sends one model)."""
        groups: dict[str, list[JudgeCall]] = {}
        for call in calls:
            groups.setdefault(call.model, []).append(call)
        return groups

    # -- step 2: the judges' verdicts

    def report(self, verdicts: Sequence[tuple[JudgeCall, Reply]]) -> EvalReport:
        """The report, once the judges replied (raising an error that dooms every call)."""
        _raise_doomed([reply for _, reply in verdicts], self.llm.settings.max_retry_wait)
        for call, reply in verdicts:
            evaluator = self._evals[call.slot]
            self.results[call.case][call.slot] = _verdict(
                evaluator.name, self.judge_of(evaluator).choices, reply
            )
        cases = []
        for i, case in enumerate(self.cases):
            row = tuple(r for r in self.results[i] if r is not None)
            error = self.errors[i]
            if error is not None and not row:  # no evaluator to carry the error: say it
                row = (EvaluationResult("model call", 0.0, False, f"failed: {_describe(error)}"),)
            cases.append(CaseResult(case, self.answers[i], row, error))
        passed = sum(c.passed for c in cases)
        total = len(cases)
        summary = EvalSummary(
            total, passed, total - passed, passed / total * 100 if total else 100.0
        )
        p = self.prompt
        return EvalReport(p.name, p.description, self.model or "", tuple(cases), summary, p.path)


def _verdict(name: str, choices: Sequence[Choice], reply: Reply) -> EvaluationResult:
    if isinstance(reply, LLMError):
        return EvaluationResult(name, 0.0, False, f"the judge's call failed: {_describe(reply)}")
    said = reply.strip().lower()
    for choice in choices:
        if choice.choice.lower() in said:
            return EvaluationResult(
                name,
                choice.score,
                choice.score > 0,
                f"LLM evaluation matched choice: '{choice.choice}'",
            )
    return EvaluationResult(
        name, 0.0, False, f"LLM evaluation response '{said}' did not match any defined choices"
    )


def _describe(error: LLMError) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def _raise_doomed(replies: Sequence[Reply], max_retry_wait: float) -> None:
    """Raise the error that would befall every call (credential, model, quota), if any."""
    from ._batch import dooms

    for reply in replies:
        if isinstance(reply, NotAttemptedError) and reply.reason is not None:
            raise reply.reason
        if isinstance(reply, LLMError) and dooms(reply, max_retry_wait):
            raise reply


# ---------------------------------------------------------------- the I/O


def evaluate(
    prompt: PromptFile, llm: GitHubLLM, concurrency: int | None, judge_model: str | None
) -> EvalReport:
    """Run ``prompt``'s evaluation on ``llm`` (see :meth:`PromptFile.evaluate`)."""
    run = Evaluation(prompt, llm, judge_model)
    replies: list[Reply] = []
    if run.cases:
        replies = llm.map(
            run.case_prompts,
            concurrency=concurrency,
            progress=False,
            return_exceptions=True,
            **run.case_options,
        )
    verdicts: list[tuple[JudgeCall, Reply]] = []
    for model, calls in run.by_model(run.answered(replies)).items():
        said = llm.map(
            [c.messages for c in calls],
            concurrency=concurrency,
            progress=False,
            return_exceptions=True,
            **run.judge_options(model),
        )
        verdicts.extend(zip(calls, said, strict=True))
    return run.report(verdicts)


async def aevaluate(
    prompt: PromptFile, llm: GitHubLLM, concurrency: int | None, judge_model: str | None
) -> EvalReport:
    """Async twin of :func:`evaluate`."""
    run = Evaluation(prompt, llm, judge_model)
    replies: list[Reply] = []
    if run.cases:
        replies = await llm.amap(
            run.case_prompts,
            concurrency=concurrency,
            progress=False,
            return_exceptions=True,
            **run.case_options,
        )
    verdicts: list[tuple[JudgeCall, Reply]] = []
    for model, calls in run.by_model(run.answered(replies)).items():
        said = await llm.amap(
            [c.messages for c in calls],
            concurrency=concurrency,
            progress=False,
            return_exceptions=True,
            **run.judge_options(model),
        )
        verdicts.extend(zip(calls, said, strict=True))
    return run.report(verdicts)


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as Go prints them (``NaN``, ``+Inf``, ``-Inf``):
    JSON has no such numbers, and a test case may hold YAML's ``.nan``."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def json_text(value: Any, indent: int | None = 2) -> str:
    """Valid JSON, always: non-finite numbers become Go's text for them (:func:`_finite`)."""
    return json.dumps(_finite(value), indent=indent, ensure_ascii=False, default=str)
