"""Prompt files (``.prompt.yml``): load, validate, render and run them as ``gh models`` does.

GitHub defined the format and its ``gh models`` extension ran it; a file that works there
works here unchanged, and the other way round.

Example::

    from sigla.prompts import load_prompt

    p = load_prompt("prompts/capsule-tags.prompt.yml")   # errors name file, line and field
    p.render({"input": "..."})                            # [{"role": ..., "content": ...}]
    tags = p.run({"input": "..."}, parse=True)            # the file's model and parameters
    report = p.evaluate()                                 # testData through the evaluators

Which model a file runs on, the first that applies: ``run(..., model=)``; the client's
model when it was set explicitly (``GitHubLLM(model=...)`` or ``SIGLA_LLM_MODEL``); the
file's ``model`` through the model map (``model_map=`` or ``SIGLA_MODEL_MAP``, like
``"openai/gpt-4o-mini=my-4o-mini,mistral-ai/Codestral-2501=codestral-latest"``); the
file's ``model`` as written. YAML is read as gh-models' ``yaml.v3`` reads it (YAML 1.2:
``yes``/``no`` stay strings; duplicate keys and quoted numbers are errors).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._prompt_eval import CaseResult, EvalReport, EvalSummary, EvaluationResult
from ._prompt_eval import aevaluate as _aevaluate
from ._prompt_eval import evaluate as _evaluate
from ._prompt_model import (
    Choice,
    Evaluator,
    JsonSchema,
    LLMEvaluator,
    Message,
    ModelParameters,
    StringEvaluator,
    UnknownKey,
    parse_prompt,
)
from .errors import (
    ConfigurationError,
    InvalidRequestError,
    InvalidResponseError,
    MissingDependencyError,
    MissingVariablesError,
    PromptFileError,
)

if TYPE_CHECKING:
    from ._streams import TextStream
    from .llm import GitHubLLM

__all__ = [
    "CaseResult",
    "Choice",
    "EvalReport",
    "EvalSummary",
    "EvaluationResult",
    "Evaluator",
    "JsonSchema",
    "LLMEvaluator",
    "Message",
    "MissingVariablesError",
    "ModelParameters",
    "PromptFile",
    "PromptFileError",
    "StringEvaluator",
    "UnknownKey",
    "fill_template",
    "format_value",
    "load_prompt",
    "parse_model_map",
    "prompt_schema",
]

logger = logging.getLogger("sigla")

PROMPT_SUFFIXES = (".prompt.yml", ".prompt.yaml")
_OVERRIDES = ("temperature", "max_tokens", "top_p", "stop", "seed")
# What a leftover placeholder looks like: gh-models replaces only the exact "{{key}}".
_PLACEHOLDER = re.compile(r"\{\{([^{}\n]+?)\}\}")


def format_value(value: Any) -> str:
    """``value`` as gh-models inserts it into a template (Go's ``fmt.Sprintf("%v")``).

    >>> [format_value(v) for v in (3, 0.5, 1e6, True, None, [1, "a"], {"b": 1, "a": 2})]
    ['3', '0.5', '1e+06', 'true', '<nil>', '[1 a]', 'map[a:2 b:1]']
    """
    if isinstance(value, str):
        return value
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, Mapping):
        pairs = sorted((format_value(k), format_value(v)) for k, v in value.items())
        return "map[" + " ".join(f"{k}:{v}" for k, v in pairs) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(format_value(v) for v in value) + "]"
    return str(value)


def _go_float(x: float) -> str:
    """Go's ``%v`` of a float64: shortest digits, ``%e`` form below 1e-4 or from 1e6 up."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if math.copysign(1, x) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(x)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    assert isinstance(exponent, int)
    dp = len(digit_tuple) + exponent  # the value is 0.<digits> * 10**dp
    e, minus = dp - 1, "-" if sign else ""
    if e < -4 or e >= 6:  # strconv's shortest %g decides with precision 6
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{minus}{mantissa}e{'-' if e < 0 else '+'}{abs(e):02d}"
    if dp <= 0:
        return f"{minus}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return minus + digits + "0" * (dp - len(digits))
    return f"{minus}{digits[:dp]}.{digits[dp:]}"


def parse_model_map(
    text: str | Mapping[str, str] | None, *, source: str = "model_map="
) -> dict[str, str]:
    """A model map from ``"file-model=sent-model,..."`` (or a dict), checked."""
    if text is None:
        return {}
    if isinstance(text, Mapping):
        pairs = list(text.items())
    elif isinstance(text, str):
        pairs = []
        for entry in text.split(","):
            if not entry.strip():
                continue
            left, eq, right = entry.partition("=")
            if not eq:
                raise ConfigurationError(
                    f"{source}: {entry.strip()!r} is not file-model=model, as in "
                    "'openai/gpt-4o-mini=my-4o-mini'."
                )
            pairs.append((left, right))
    else:
        raise ConfigurationError(f"{source} must be a str or a dict, got {type(text).__name__}.")
    out: dict[str, str] = {}
    for left, right in pairs:
        if not isinstance(left, str) or not isinstance(right, str):
            raise ConfigurationError(f"{source}: model ids must be strings.")
        if not left.strip() or not right.strip():
            raise ConfigurationError(f"{source}: {left}={right} has an empty model id.")
        if out.get(left.strip(), right.strip()) != right.strip():
            raise ConfigurationError(
                f"{source} maps {left.strip()} twice ({out[left.strip()]} and {right.strip()}): "
                "keep one."
            )
        out[left.strip()] = right.strip()
    return out


@dataclass(frozen=True)
class PromptFile:
    """A validated ``.prompt.yml`` file: its fields, typed, and how to render and run it.

    Build one with :func:`load_prompt`. Names follow the file's keys in snake case
    (``model_parameters``, ``response_format``, ``json_schema``, ``test_data``).
    """

    path: str
    name: str
    description: str
    model: str | None
    model_parameters: ModelParameters
    response_format: str | None
    json_schema: JsonSchema | None
    messages: tuple[Message, ...]
    test_data: tuple[dict[str, Any], ...] = ()
    evaluators: tuple[Evaluator, ...] = ()
    unknown_keys: tuple[UnknownKey, ...] = ()
    model_map: Mapping[str, str] = field(default_factory=dict, compare=False)

    # -- rendering

    def render(
        self, variables: Mapping[str, Any] | None = None, *, strict: bool = True
    ) -> list[dict[str, str]]:
        """The messages with each ``{{key}}`` of ``variables`` replaced, in one pass.

        Values are inserted literally (a value holding ``{{x}}`` is not expanded again);
        non-strings as gh-models formats them (:func:`format_value`). Variables the file
        does not use are ignored. A ``{{name}}`` left without a value raises
        :class:`~sigla.errors.MissingVariablesError` naming all of them, unless
        ``strict=False``, which leaves it verbatim as gh-models does.
        """
        fill = _filler(_values(variables))
        out, missing, first = [], [], None
        for i, message in enumerate(self.messages):
            content, unfilled = fill(message.content)
            for name in unfilled:
                if name not in missing:
                    missing.append(name)
                    first = first or (i, message)
            out.append({"role": message.role, "content": content})
        if missing and strict:
            assert first is not None
            names = ", ".join("{{" + n + "}}" for n in missing)
            raise MissingVariablesError(
                f"no value for {names}: pass {'it' if len(missing) == 1 else 'them'} as "
                "variables (or strict=False to send the placeholders as they are, as "
                "gh-models does)",
                missing=tuple(missing),
                path=self.path,
                line=first[1].line or None,
                field=f"messages[{first[0]}].content",
            )
        return out

    # -- running

    def model_for(self, llm: GitHubLLM, model: str | None = None) -> str | None:
        """The model a call sends, or None for the client's own (see the module docstring)."""
        if model is not None:
            return model
        source = llm.settings.sources.get("model", "")
        if source == "argument" or source.startswith("environment variable"):
            return None
        if self.model:
            return self.model_map.get(self.model, self.model)
        return None

    def response_format_option(self) -> dict[str, Any] | None:
        """The service's ``response_format`` for this file (None for no ``responseFormat``)."""
        if self.response_format is None:
            return None
        option: dict[str, Any] = {"type": self.response_format}
        if self.response_format == "json_schema" and self.json_schema is not None:
            option["json_schema"] = dict(self.json_schema.data)
        return option

    def request(
        self,
        variables: Mapping[str, Any] | None = None,
        *,
        llm: GitHubLLM,
        model: str | None = None,
        strict: bool = True,
        **overrides: Any,
    ) -> dict[str, Any]:
        """The keyword arguments of ``llm.chat``/``achat``/``stream`` for one rendering:
        messages, model, the file's parameters and response format, then ``overrides``
        (``temperature``, ``max_tokens``, ``top_p``, ``stop``, ``seed``)."""
        unknown = sorted(set(overrides) - set(_OVERRIDES))
        if unknown:
            raise InvalidRequestError(
                f"Unknown option(s) {', '.join(unknown)}: a prompt run takes "
                f"{', '.join(_OVERRIDES)}."
            )
        params = self.model_parameters
        kwargs: dict[str, Any] = {
            "messages": self.render(variables, strict=strict),
            "model": self.model_for(llm, model),
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
            "top_p": params.top_p,
            "response_format": self.response_format_option(),
        }
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return kwargs

    def run(
        self,
        variables: Mapping[str, Any] | None = None,
        llm: GitHubLLM | None = None,
        model: str | None = None,
        parse: bool = False,
        strict: bool = True,
        **overrides: Any,
    ) -> Any:
        """The model's answer to the rendered messages, with the file's model and parameters.

        ``llm`` gives the connection, limits and cache (default: ``GitHubLLM()``).
        ``parse=True`` returns a ``json_object``/``json_schema`` answer parsed, checked
        against the file's schema (:class:`~sigla.errors.InvalidResponseError` if it is
        not JSON or violates it; the ``prompts`` extra provides ``jsonschema``).
        """
        if parse:
            self._check_parseable()
        client = _client(llm)
        text = client.chat(
            **self.request(variables, llm=client, model=model, strict=strict, **overrides)
        )
        return self.parse_answer(text) if parse else text

    async def arun(
        self,
        variables: Mapping[str, Any] | None = None,
        llm: GitHubLLM | None = None,
        model: str | None = None,
        parse: bool = False,
        strict: bool = True,
        **overrides: Any,
    ) -> Any:
        """Async twin of :meth:`run`."""
        if parse:
            self._check_parseable()
        client = _client(llm)
        text = await client.achat(
            **self.request(variables, llm=client, model=model, strict=strict, **overrides)
        )
        return self.parse_answer(text) if parse else text

    def stream(
        self,
        variables: Mapping[str, Any] | None = None,
        llm: GitHubLLM | None = None,
        model: str | None = None,
        strict: bool = True,
        **overrides: Any,
    ) -> TextStream:
        """:meth:`run`, streamed: a :class:`~sigla.llm.TextStream` of the answer's pieces."""
        client = _client(llm)
        return client.stream(
            **self.request(variables, llm=client, model=model, strict=strict, **overrides)
        )

    # -- evaluating

    def evaluate(
        self,
        llm: GitHubLLM | None = None,
        concurrency: int | None = None,
        *,
        judge_model: str | None = None,
    ) -> EvalReport:
        """Run the file's ``testData`` through its ``evaluators``, as ``gh models eval`` does.

        The cases are sent at once through ``llm``'s batch engine (its limits, retries
        and cache; ``concurrency`` as :meth:`~sigla.llm.GitHubLLM.map`), then the judges'
        calls (``llm`` and ``uses: github/...`` evaluators), on ``judge_model`` if given,
        else ``SIGLA_JUDGE_MODEL``, else the evaluator's model through the model map. A
        case whose call fails is reported failed with the error in its details; an error
        that would befall every case (credential, unknown model, spent quota) raises.
        """
        return _evaluate(self, _client(llm), concurrency, judge_model)

    async def aevaluate(
        self,
        llm: GitHubLLM | None = None,
        concurrency: int | None = None,
        *,
        judge_model: str | None = None,
    ) -> EvalReport:
        """Async twin of :meth:`evaluate`."""
        return await _aevaluate(self, _client(llm), concurrency, judge_model)

    def _check_parseable(self) -> None:
        if self.response_format not in ("json_object", "json_schema"):
            raise InvalidRequestError(
                f"parse=True needs a JSON answer, but {self.path} has responseFormat "
                f"{self.response_format or 'unset (text)'}: set json_object or json_schema."
            )

    def parse_answer(self, text: str) -> Any:
        """``text`` parsed as JSON and checked against ``jsonSchema`` (for ``json_schema``)."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidResponseError(
                f"The answer to {self.path} is not JSON ({exc}): {text[:200]!r}"
            ) from None
        schema = self.json_schema.schema if self.json_schema is not None else None
        if self.response_format != "json_schema" or schema is None:
            return data
        try:
            import jsonschema
        except ImportError:
            raise MissingDependencyError(
                "Checking an answer against a prompt's jsonSchema needs jsonschema: "
                '`pip install "jsonschema>=4"`, or, from sigla\'s source tree, '
                '`pip install -e ".[prompts]"`.'
            ) from None
        try:
            validator = jsonschema.validators.validator_for(schema)(schema)
            validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise PromptFileError(
                f"is not a valid JSON Schema: {exc.message}",
                path=self.path,
                field="jsonSchema.schema",
            ) from None
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path) or "(the whole answer)"
            raise InvalidResponseError(
                f"The answer to {self.path} does not match its jsonSchema "
                f"{self.json_schema.name if self.json_schema else ''!r}: at {where}: "
                f"{errors[0].message}"
                + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
            )
        return data


def _filler(values: dict[str, str]) -> Callable[[str], tuple[str, list[str]]]:
    """A function filling a template with ``values`` (gh-models' literal ``{{key}}``, in one
    pass), returning the text and the placeholders left without a value."""
    pattern = (
        re.compile("|".join(re.escape("{{" + k + "}}") for k in sorted(values, key=len)[::-1]))
        if values
        else None
    )

    def fill(text: str) -> tuple[str, list[str]]:
        unfilled = [name for name in _PLACEHOLDER.findall(text) if name not in values]
        if pattern is not None:
            text = pattern.sub(lambda m: values[m.group()[2:-2]], text)
        return text, unfilled

    return fill


def fill_template(text: str, variables: Mapping[str, Any] | None) -> tuple[str, list[str]]:
    """``text`` with each ``{{key}}`` of ``variables`` replaced as :meth:`PromptFile.render`
    does, and the names of the placeholders left verbatim (without a value)."""
    return _filler(_values(variables))(text)


def _values(variables: Mapping[str, Any] | None) -> dict[str, str]:
    if variables is None:
        return {}
    if not isinstance(variables, Mapping):
        raise InvalidRequestError(
            f"variables must be a dict of name -> value, got {type(variables).__name__}."
        )
    out = {}
    for key, value in variables.items():
        if not isinstance(key, str) or not key:
            raise InvalidRequestError(f"Variable names must be non-empty strings, got {key!r}.")
        out[key] = format_value(value)
    return out


def _client(llm: GitHubLLM | None) -> GitHubLLM:
    if llm is not None:
        return llm
    from .llm import GitHubLLM

    return GitHubLLM()


def load_prompt(
    path: str | os.PathLike[str], *, model_map: str | Mapping[str, str] | None = None
) -> PromptFile:
    """Read and validate a ``.prompt.yml`` file.

    Raises :class:`~sigla.errors.PromptFileError` naming the file, line and field of the
    first problem. Unknown keys are kept in ``unknown_keys`` and logged as likely typos
    (gh-models ignores them, so a file that runs there runs here). ``model_map``
    (default: ``SIGLA_MODEL_MAP``) translates the file's model ids.
    """
    from ._prompt_yaml import YAMLProblem, parse_yaml

    where = os.fspath(path)
    try:
        raw = Path(where).read_bytes()
    except OSError as exc:
        raise PromptFileError(f"cannot read the file: {exc.strerror or exc}", path=where) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PromptFileError(
            f"is not UTF-8 text (byte {exc.start})",
            path=where,
            line=raw[: exc.start].count(b"\n") + 1,
        ) from None
    try:
        tree = parse_yaml(text)
    except YAMLProblem as problem:
        raise PromptFileError(
            f"invalid YAML: {problem.message}", path=where, line=problem.line, column=problem.column
        ) from None
    fields, unknown = parse_prompt(tree, where)
    for key in unknown:
        logger.warning("%s", key.describe(where))
    if model_map is None:
        mapping = parse_model_map(os.environ.get("SIGLA_MODEL_MAP"), source="SIGLA_MODEL_MAP")
    else:
        mapping = parse_model_map(model_map)
    return PromptFile(path=where, unknown_keys=tuple(unknown), model_map=mapping, **fields)


def prompt_schema() -> dict[str, Any]:
    """The JSON Schema of the prompt-file format (for editors: ``*.prompt.yml``)."""
    return json.loads(_data_file("prompt.schema.json"))


def _data_file(name: str) -> str:
    from importlib.resources import files

    return (files("sigla") / "_data" / name).read_text(encoding="utf-8")


def packaged_prompt(name: str) -> PromptFile:
    """One of the prompt files sigla ships (``capsule-summary``, ``capsule-reduce``...)."""
    from importlib.resources import as_file, files

    with as_file(files("sigla") / "_data" / "prompts" / f"{name}.prompt.yml") as found:
        return load_prompt(found, model_map={})
