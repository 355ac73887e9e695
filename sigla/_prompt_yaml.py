"""YAML for prompt files, read as gh-models' ``yaml.v3`` reads it, with every node's position.

PyYAML parses (safely: it only composes nodes, never builds Python objects from tags);
the values are built here with YAML 1.2's core schema, which is what ``yaml.v3`` applies
to untyped values: ``yes``/``no``/``on``/``off`` stay strings; integers are read as
``yaml.v3`` reads them (Go's ``strconv.ParseInt(s, 0, 64)`` after dropping ``_``), so
``012`` is 10 (the old octal), ``0o12`` 10, ``0x1F`` 31, ``0b101`` 5, ``1_000`` 1000, and an
integer past 64 bits is a float. A duplicate key is an error, as in ``yaml.v3``. Each value is a
:class:`YNode` that remembers its line and column (1-based), its source text and whether it
was a quoted scalar, so the prompt-file model can say "temperature at line 4 is a quoted
string" the way ``yaml.v3`` refuses ``temperature: "0.5"``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["YAMLProblem", "YNode", "parse_yaml", "plain_value"]

_NULL = re.compile(r"~|null|Null|NULL|")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_GO_INT = re.compile(r"([-+]?)(0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|0[0-7]*|[1-9][0-9]*)")
_INT_RANGE = (-(2**63), 2**64)  # int64, or uint64 as yaml.v3 tries next
_MAX_EXPANDED = 50_000  # nodes built with aliases expanded, unless few of them are aliases
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)")
_NAN = re.compile(r"\.(nan|NaN|NAN)")
_TAG = "tag:yaml.org,2002:"
_MAX_DEPTH = 100  # aliases can make a small file deep; yaml.v3 refuses excessive aliasing too


class YAMLProblem(Exception):
    """The text is not YAML a prompt file can be: ``line``/``column`` are 1-based."""

    def __init__(self, message: str, line: int | None, column: int | None) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


@dataclass(eq=False)
class YNode:
    """One YAML value: ``kind`` is ``map``, ``seq`` or ``scalar``; ``value`` is a dict of
    key -> YNode, a list of YNode, or the scalar's value (str, int, float, bool, None)."""

    kind: str
    value: Any
    line: int
    column: int
    text: str = ""  # a scalar's source text (what yaml.v3 puts in a string field)
    quoted: bool = False  # a quoted or block scalar: always a string
    key_lines: dict[str, tuple[int, int]] = field(default_factory=dict)  # a map's keys

    def where(self, key: str | None = None) -> tuple[int, int]:
        """The position of this node, or of ``key`` in this mapping."""
        if key is not None and key in self.key_lines:
            return self.key_lines[key]
        return self.line, self.column


def _scalar(text: str, tag: str) -> Any:
    """A plain (unquoted, untagged) scalar under YAML 1.2's core schema."""
    if _NULL.fullmatch(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    plain = text.replace("_", "") if text[:1] in "+-.0123456789" else text
    number = _go_int(plain)
    if number is not None:
        return number
    if _FLOAT.fullmatch(plain):
        return float(plain)
    if _INF.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.fullmatch(text):
        return math.nan
    return text


def _go_int(plain: str) -> int | None:
    """An integer as Go's ``strconv.ParseInt(plain, 0, 64)`` (then ``ParseUint``) reads it."""
    match = _GO_INT.fullmatch(plain)
    if match is None:
        return None
    sign, digits = match.groups()
    low = digits.lower()
    base = {"0x": 16, "0b": 2, "0o": 8}.get(low[:2])  # and a bare leading 0: octal
    if base is not None:
        value = int(low[2:], base)
    else:
        value = int(low[1:], 8) if low.startswith("0") and len(low) > 1 else int(low)
    value = -value if sign == "-" else value
    return value if _INT_RANGE[0] <= value < _INT_RANGE[1] else None


def _tagged(text: str, tag: str, line: int, column: int) -> Any:
    """A scalar with an explicit standard tag (``!!str 12``, ``!!int "3"``)."""
    name = tag[len(_TAG) :] if tag.startswith(_TAG) else None
    if name == "str":
        return text
    value = _scalar(text, tag)
    fits = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "null": value is None,
    }.get(name or "", False)
    if not fits:
        raise YAMLProblem(f"cannot read {text!r} with the tag {tag}", line, column)
    return float(value) if name == "float" else value


def _build(node: Any, depth: int, budget: list[int]) -> YNode:
    import yaml

    line, column = node.start_mark.line + 1, node.start_mark.column + 1
    if depth > _MAX_DEPTH:
        raise YAMLProblem("the document nests too deeply (recursive aliases?)", line, column)
    budget[0] -= 1
    if budget[0] < 0:  # a "billion laughs": aliases of aliases expanding without end
        raise YAMLProblem("the document contains excessive aliasing", line, column)
    if isinstance(node, yaml.ScalarNode):
        if node.tag == "?":  # plain and untagged: resolved by the core schema
            return YNode("scalar", _scalar(node.value, node.tag), line, column, node.value)
        if node.tag == "!":  # quoted or block, untagged
            return YNode("scalar", node.value, line, column, node.value, quoted=True)
        value = _tagged(node.value, node.tag, line, column)
        return YNode("scalar", value, line, column, node.value, quoted=isinstance(value, str))
    if isinstance(node, yaml.SequenceNode):
        return YNode("seq", [_build(item, depth + 1, budget) for item in node.value], line, column)
    if isinstance(node, yaml.MappingNode):
        out = YNode("map", {}, line, column)
        merged: list[YNode] = []
        for key_node, value_node in node.value:
            key = _build(key_node, depth + 1, budget)
            if key.kind != "scalar":
                raise YAMLProblem("a mapping key must be a scalar", key.line, key.column)
            value = _build(value_node, depth + 1, budget)
            if key.text == "<<" and not key.quoted:  # a merge key, as yaml.v3 reads it
                merged.extend(value.value if value.kind == "seq" else [value])
                continue
            name = key.text if key.quoted else _go_key(key.value, key.text)
            if name in out.value:
                first = out.key_lines[name][0]
                raise YAMLProblem(
                    f'mapping key "{name}" already defined at line {first}', key.line, key.column
                )
            out.value[name] = value
            out.key_lines[name] = (key.line, key.column)
        for source in merged:
            if source.kind != "map":
                raise YAMLProblem("a merge (<<) needs a mapping", source.line, source.column)
            for name, value in source.value.items():
                if name not in out.value:
                    out.value[name] = value
                    out.key_lines[name] = source.key_lines[name]
        return out
    raise YAMLProblem("unsupported YAML node", line, column)  # pragma: no cover


def _go_key(value: Any, text: str) -> str:
    """A mapping key as text: prompt-file maps are ``map[string]...`` in gh-models."""
    return value if isinstance(value, str) else text


def parse_yaml(text: str) -> YNode | None:
    """The first document of ``text`` as a :class:`YNode` tree (None when it is empty).

    Raises :class:`YAMLProblem` with the line of a syntax error, a duplicate key or a bad
    tag. Only standard tags are read; anything else (``!!python/object``) is refused.
    """
    import yaml

    class _Loader(yaml.SafeLoader):
        def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
            if kind is yaml.ScalarNode:
                if implicit[0]:
                    return "?"
                if implicit[1]:
                    return "!"
            return str(super().resolve(kind, value, implicit))

    loader = _Loader(text)
    try:
        node = loader.get_node() if loader.check_node() else None
    except RecursionError:
        raise YAMLProblem("the document nests too deeply", None, None) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        raise YAMLProblem(
            problem, mark.line + 1 if mark else None, mark.column + 1 if mark else None
        ) from None
    except yaml.YAMLError as exc:
        raise YAMLProblem(" ".join(str(exc).split()), None, None) from None
    finally:
        loader.dispose()
    if node is None:
        return None
    distinct = _tags(node)
    for tagged in distinct:
        if not tagged.tag.startswith(_TAG) and tagged.tag not in ("?", "!"):
            mark = tagged.start_mark
            raise YAMLProblem(f"unknown tag {tagged.tag}", mark.line + 1, mark.column + 1)
    try:
        return _build(node, 0, [max(_MAX_EXPANDED, 10 * len(distinct))])
    except RecursionError:
        raise YAMLProblem("the document nests too deeply", None, None) from None


def _tags(node: Any) -> list[Any]:
    """Every node of the tree, once each (aliases share nodes)."""
    seen: set[int] = set()
    todo, out = [node], []
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        out.append(item)
        if isinstance(item.value, list):
            for inner in item.value:
                todo.extend(inner if isinstance(inner, tuple) else (inner,))
    return out


def plain_value(node: YNode) -> Any:
    """The node as plain Python values (dicts, lists, scalars)."""
    if node.kind == "map":
        return {key: plain_value(value) for key, value in node.value.items()}
    if node.kind == "seq":
        return [plain_value(item) for item in node.value]
    return node.value
