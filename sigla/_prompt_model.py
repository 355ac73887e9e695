"""The parts of a prompt file as typed, frozen values, and the checks that build them.

:func:`parse_prompt` turns :mod:`sigla._prompt_yaml`'s position-aware tree into these
values, applying gh-models' rules (``pkg/prompt``: what ``yaml.v3`` accepts for each Go
field type, ``validateResponseFormat``, the message roles) and the stricter ones the issue
asks for (missing ``messages``, evaluators with none or several methods), and raising
:class:`~sigla.errors.PromptFileError` with the file, line, column and field of the first
problem. Unknown keys are collected, not refused: gh-models ignores them.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from ._prompt_yaml import YNode, plain_value
from .errors import PromptFileError

__all__ = [
    "BUILTIN_EVALUATORS",
    "Choice",
    "Evaluator",
    "JsonSchema",
    "LLMEvaluator",
    "Message",
    "ModelParameters",
    "StringEvaluator",
    "UnknownKey",
    "parse_prompt",
]

Role = Literal["system", "user", "assistant"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant")
RESPONSE_FORMATS = ("text", "json_object", "json_schema")
BUILTIN_EVALUATORS = ("similarity", "coherence", "fluency", "relevance", "groundedness")

_FIELDS: dict[str, tuple[str, ...]] = {
    "": (
        "name",
        "description",
        "model",
        "modelParameters",
        "responseFormat",
        "jsonSchema",
        "messages",
        "testData",
        "evaluators",
    ),
    "modelParameters": ("maxTokens", "temperature", "topP"),
    "message": ("role", "content"),
    "evaluator": ("name", "string", "llm", "uses"),
    "string": ("equals", "contains", "startsWith", "endsWith"),
    "llm": ("modelId", "prompt", "choices", "systemPrompt"),
    "choice": ("choice", "score"),
}


@dataclass(frozen=True)
class Message:
    """One message of the prompt: ``role`` lower-cased, ``content`` a template."""

    role: Role
    content: str
    line: int = field(default=0, compare=False)  # where it is, for errors of rendering


@dataclass(frozen=True)
class ModelParameters:
    """``modelParameters``: sent as ``max_tokens``, ``temperature`` and ``top_p``."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None


@dataclass(frozen=True)
class JsonSchema:
    """``jsonSchema``: ``name`` and ``schema`` (a JSON Schema), and the whole object
    (``data``, with ``strict`` or ``description`` if given) that goes to the service."""

    name: str | None
    schema: Mapping[str, Any] | None
    data: Mapping[str, Any]


@dataclass(frozen=True)
class StringEvaluator:
    """A ``string`` evaluator: the first non-empty of ``equals`` (exact), ``contains``,
    ``starts_with``, ``ends_with`` (case-insensitive), as gh-models checks them."""

    equals: str = ""
    contains: str = ""
    starts_with: str = ""
    ends_with: str = ""

    @property
    def check(self) -> tuple[Literal["equals", "contains", "startsWith", "endsWith"], str]:
        """The criterion gh-models applies, with its (untemplated) expected text."""
        if self.equals:
            return "equals", self.equals
        if self.contains:
            return "contains", self.contains
        if self.starts_with:
            return "startsWith", self.starts_with
        return "endsWith", self.ends_with


@dataclass(frozen=True)
class Choice:
    """One ``choices`` entry of an ``llm`` evaluator: the text to find and its score."""

    choice: str
    score: float


@dataclass(frozen=True)
class LLMEvaluator:
    """An ``llm`` evaluator: ``prompt`` (templated with the test case and ``completion``)
    goes to ``model_id`` after ``system_prompt``; the first of ``choices`` found in the
    lower-cased reply gives the score."""

    model_id: str
    prompt: str
    choices: tuple[Choice, ...]
    system_prompt: str = ""


@dataclass(frozen=True)
class Evaluator:
    """One evaluator: exactly one of ``string``, ``llm`` or ``uses`` (``github/<name>``)."""

    name: str
    string: StringEvaluator | None = None
    llm: LLMEvaluator | None = None
    uses: str | None = None
    line: int = field(default=0, compare=False)

    @property
    def builtin(self) -> str | None:
        """The builtin judge's name for ``uses: github/<name>`` (``"fluency"``), else None."""
        return self.uses.split("/", 1)[1] if self.uses else None


@dataclass(frozen=True)
class UnknownKey:
    """A key gh-models ignores (likely a typo): where it is and what was probably meant."""

    field: str
    line: int
    column: int
    suggestion: str | None

    def describe(self, path: str) -> str:
        """One line naming the key and its place, for logs and ``sigla prompt check``."""
        hint = f" (did you mean {self.suggestion}?)" if self.suggestion else ""
        return (
            f"{path}:{self.line}:{self.column}: {self.field}: unknown key, ignored as gh-models "
            f"ignores it; likely a typo{hint}"
        )


class _Reader:
    """Reads one file's tree into values; every error names the file, line and field."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.unknown: list[UnknownKey] = []

    def fail(
        self, node: YNode | None, where: str, problem: str, key: str | None = None
    ) -> NoReturn:
        line, column = node.where(key) if node is not None else (None, None)
        raise PromptFileError(problem, path=self.path, line=line, column=column, field=where)

    def mapping(self, node: YNode, where: str, kind: str) -> dict[str, YNode]:
        if node.kind != "map":
            self.fail(node, where or "(file)", f"must be a mapping, got {_kind(node)}")
        known = _FIELDS[kind]
        for key in node.value:
            if key not in known:
                line, column = node.where(key)
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
                if not close:
                    lowered = {k.lower().replace("_", ""): k for k in known}
                    close = [lowered[k]] if (k := key.lower().replace("_", "")) in lowered else []
                name = f"{where}.{key}" if where else key
                self.unknown.append(UnknownKey(name, line, column, close[0] if close else None))
        return dict(node.value)

    def text(
        self,
        node: YNode | None,
        where: str,
        *,
        required: bool = False,
        parent: YNode | None = None,
    ) -> str:
        """A Go ``string`` field: any scalar's text (yaml.v3 does so); null is ``""``."""
        if node is None or (node.kind == "scalar" and node.value is None and not node.quoted):
            if required:
                self.fail(node or parent, where, "is required (a string)")
            return ""
        if node.kind != "scalar":
            self.fail(node, where, f"must be a string, got {_kind(node)}")
        return node.value if node.quoted else node.text

    def number(self, node: YNode | None, where: str, *, integer: bool = False) -> Any:
        """A Go ``float64``/``int`` field: an unquoted number; null is absent."""
        if node is None or (node.kind == "scalar" and node.value is None and not node.quoted):
            return None
        value = node.value if node.kind == "scalar" else None
        wanted = "an integer" if integer else "a number"
        if node.kind == "scalar" and node.quoted:
            self.fail(
                node,
                where,
                f"must be {wanted}, got the string {json.dumps(value)}: "
                "remove the quotes (gh-models refuses a quoted number too)",
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(node, where, f"must be {wanted}, got {_kind(node)}")
        if integer and not isinstance(value, int):
            if not float(value).is_integer():
                self.fail(node, where, f"must be an integer, got {node.text}")
            value = int(value)
        return value if integer else float(value)

    def sequence(self, node: YNode | None, where: str) -> list[YNode]:
        if node is None or (node.kind == "scalar" and node.value is None):
            return []
        if node.kind != "seq":
            self.fail(node, where, f"must be a list, got {_kind(node)}")
        return list(node.value)


def _kind(node: YNode) -> str:
    if node.kind == "map":
        return "a mapping"
    if node.kind == "seq":
        return "a list"
    value = node.value
    if node.quoted or isinstance(value, str):
        return f"the string {json.dumps(value if node.quoted else node.text)}"
    if value is None:
        return "null"
    return f"{type(value).__name__} {node.text}"


def parse_prompt(tree: YNode | None, path: str) -> tuple[dict[str, Any], list[UnknownKey]]:
    """The fields of :class:`~sigla.prompts.PromptFile` read from ``tree``, and the
    unknown keys found; raises :class:`~sigla.errors.PromptFileError` on the first problem."""
    r = _Reader(path)
    if tree is None:
        raise PromptFileError(
            "the file is empty: a prompt file needs at least messages", path=path, field="messages"
        )
    top = r.mapping(tree, "", "")
    fields: dict[str, Any] = {
        "name": r.text(top.get("name"), "name"),
        "description": r.text(top.get("description"), "description"),
        "model": r.text(top.get("model"), "model") or None,
    }
    params = top.get("modelParameters")
    if params is None or (params.kind == "scalar" and params.value is None):
        fields["model_parameters"] = ModelParameters()
    else:
        p = r.mapping(params, "modelParameters", "modelParameters")
        fields["model_parameters"] = ModelParameters(
            max_tokens=r.number(p.get("maxTokens"), "modelParameters.maxTokens", integer=True),
            temperature=r.number(p.get("temperature"), "modelParameters.temperature"),
            top_p=r.number(p.get("topP"), "modelParameters.topP"),
        )
    fields["response_format"], fields["json_schema"] = _response_format(r, top)
    fields["messages"] = _messages(r, top, tree)
    test_data = []
    for i, item in enumerate(r.sequence(top.get("testData"), "testData")):
        if item.kind != "map":
            r.fail(item, f"testData[{i}]", f"must be a mapping of variables, got {_kind(item)}")
        test_data.append(plain_value(item))
    fields["test_data"] = tuple(test_data)
    evaluators = r.sequence(top.get("evaluators"), "evaluators")
    fields["evaluators"] = tuple(_evaluator(r, node, i) for i, node in enumerate(evaluators))
    return fields, sorted(r.unknown, key=lambda k: (k.line, k.column))


def _response_format(r: _Reader, top: dict[str, YNode]) -> tuple[str | None, JsonSchema | None]:
    node = top.get("responseFormat")
    chosen = r.text(node, "responseFormat") if node is not None else None
    if node is not None and node.kind == "scalar" and node.value is None and not node.quoted:
        chosen = None
    if chosen is not None and chosen not in RESPONSE_FORMATS:
        r.fail(
            node,
            "responseFormat",
            f"must be one of {', '.join(RESPONSE_FORMATS)}, got {json.dumps(chosen)}",
        )
    schema = None
    raw = top.get("jsonSchema")
    if raw is not None and not (raw.kind == "scalar" and raw.value is None and not raw.quoted):
        if raw.kind == "map":  # older files wrote the object itself; gh-models now wants JSON
            data: Any = plain_value(raw)
        elif raw.kind == "scalar":
            try:
                data = json.loads(r.text(raw, "jsonSchema"))
            except ValueError as exc:
                r.fail(raw, "jsonSchema", f"is not valid JSON: {exc}")
        else:
            r.fail(raw, "jsonSchema", f"must be a JSON string, got {_kind(raw)}")
        if not isinstance(data, dict):
            r.fail(raw, "jsonSchema", "must be a JSON object with 'name' and 'schema'")
        inner = data.get("schema")
        schema = JsonSchema(
            name=data.get("name") if isinstance(data.get("name"), str) else None,
            schema=inner if isinstance(inner, dict) else None,
            data=data,
        )
    if chosen == "json_schema":
        if schema is None:
            r.fail(
                node,
                "jsonSchema",
                "is required when responseFormat is json_schema",
                "responseFormat",
            )
        assert schema is not None and raw is not None
        for key in ("name", "schema"):
            if key not in schema.data:
                r.fail(
                    raw,
                    "jsonSchema",
                    f"must contain '{key}' (it has: {', '.join(sorted(schema.data)) or 'nothing'})",
                )
        if schema.name is None or not schema.name:
            r.fail(raw, "jsonSchema.name", "must be a non-empty string")
        if schema.schema is None:
            r.fail(raw, "jsonSchema.schema", "must be a JSON Schema object")
    return chosen, schema


def _messages(r: _Reader, top: dict[str, YNode], tree: YNode) -> tuple[Message, ...]:
    node = top.get("messages")
    if node is None:
        r.fail(tree, "messages", "is required: a list of {role, content}")
    items = r.sequence(node, "messages")
    if not items:
        r.fail(node, "messages", "must list at least one message")
    out = []
    for i, item in enumerate(items):
        where = f"messages[{i}]"
        m = r.mapping(item, where, "message")
        role = r.text(m.get("role"), f"{where}.role", required=True, parent=item).lower()
        if role not in ROLES:
            r.fail(
                m.get("role"),
                f"{where}.role",
                f"unknown message role {json.dumps(role)}: use system, user or assistant",
            )
        content = r.text(m.get("content"), f"{where}.content")
        line = m["content"].line if "content" in m else item.line
        out.append(Message(role, content, line))  # type: ignore[arg-type]
    return tuple(out)


def _evaluator(r: _Reader, node: YNode, i: int) -> Evaluator:
    where = f"evaluators[{i}]"
    e = r.mapping(node, where, "evaluator")
    name = r.text(e.get("name"), f"{where}.name")
    given = [k for k in ("string", "llm", "uses") if k in e and e[k].value not in (None, "")]
    if len(given) != 1:
        said = "none" if not given else " and ".join(given)
        r.fail(node, where, f"needs exactly one of string, llm or uses; has {said}")
    string = llm = uses = None
    if "string" in given:
        s = r.mapping(e["string"], f"{where}.string", "string")
        values = {
            k: r.text(s.get(k), f"{where}.string.{k}")
            for k in ("equals", "contains", "startsWith", "endsWith")
        }
        if not any(values.values()):
            r.fail(
                e["string"],
                f"{where}.string",
                "needs one of equals, contains, startsWith or endsWith",
            )
        string = StringEvaluator(
            values["equals"], values["contains"], values["startsWith"], values["endsWith"]
        )
    elif "llm" in given:
        lw = f"{where}.llm"
        m = r.mapping(e["llm"], lw, "llm")
        choices = []
        for j, c in enumerate(r.sequence(m.get("choices"), f"{lw}.choices")):
            cm = r.mapping(c, f"{lw}.choices[{j}]", "choice")
            choices.append(
                Choice(
                    r.text(cm.get("choice"), f"{lw}.choices[{j}].choice", required=True, parent=c),
                    r.number(cm.get("score"), f"{lw}.choices[{j}].score") or 0.0,
                )
            )
        if not choices:
            r.fail(e["llm"], f"{lw}.choices", "must list at least one {choice, score}")
        llm = LLMEvaluator(
            model_id=r.text(m.get("modelId"), f"{lw}.modelId", required=True, parent=e["llm"]),
            prompt=r.text(m.get("prompt"), f"{lw}.prompt", required=True, parent=e["llm"]),
            choices=tuple(choices),
            system_prompt=r.text(m.get("systemPrompt"), f"{lw}.systemPrompt"),
        )
    else:
        uses = r.text(e["uses"], f"{where}.uses")
        builtin = uses.split("/", 1)[1] if uses.startswith("github/") else None
        if builtin not in BUILTIN_EVALUATORS:
            r.fail(
                e["uses"],
                f"{where}.uses",
                f"unknown evaluator {json.dumps(uses)}: use one of "
                + ", ".join(f"github/{b}" for b in BUILTIN_EVALUATORS),
            )
    return Evaluator(name, string, llm, uses, node.line)
