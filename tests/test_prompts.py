"""sigla.prompts: prompt files loaded, validated, rendered and run as gh-models does."""

from __future__ import annotations

import asyncio
import filecmp
import json
import logging
import textwrap
from pathlib import Path

import pytest

import sigla
from sigla.capsules import MAP_PROMPT, REDUCE_PROMPT
from sigla.errors import InvalidRequestError, InvalidResponseError
from sigla.prompts import (
    MissingVariablesError,
    PromptFileError,
    format_value,
    load_prompt,
    parse_model_map,
    prompt_schema,
)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "prompts").glob("*.prompt.y*ml"))
PACKAGED = Path(sigla.__file__).parent / "_data" / "prompts"
MAPPED = "openai/gpt-4o-mini=meta/Llama-3.3-70B-Instruct"

BASIC = """\
name: Basic
model: openai/gpt-4o-mini
modelParameters:
  temperature: 0.3
  maxTokens: 120
  topP: 0.9
messages:
  - role: System
    content: You are terse.
  - role: user
    content: "Say {{word}}"
"""


def write(tmp_path: Path, text: str, name: str = "t.prompt.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def basic(tmp_path: Path, **kw):
    return load_prompt(write(tmp_path, BASIC), **kw)


# -- running: what goes on the wire


def test_run_sends_the_files_model_parameters_and_response_format(tmp_path, fake, make_llm):
    schema = {"name": "out", "schema": {"type": "object"}}
    path = write(
        tmp_path,
        BASIC + f"responseFormat: json_schema\njsonSchema: '{json.dumps(schema)}'\n",
    )
    fake.reply('{"a": 1}')
    answer = load_prompt(path).run({"word": "hi"}, llm=make_llm())
    body = fake.last_request.body
    assert answer == '{"a": 1}'
    assert body["model"] == "openai/gpt-4o-mini"
    assert (body["temperature"], body["max_tokens"], body["top_p"]) == (0.3, 120, 0.9)
    assert body["response_format"] == {"type": "json_schema", "json_schema": schema}
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hi"},
    ]


def test_run_async_and_stream_send_the_same_request(tmp_path, fake, make_llm):
    p = basic(tmp_path)
    llm = make_llm()
    asyncio.run(p.arun({"word": "a"}, llm=llm))
    assert "".join(p.stream({"word": "a"}, llm=llm))
    first, second = (r.body for r in fake.requests)
    assert {k: first[k] for k in ("model", "temperature", "max_tokens", "top_p", "messages")} == {
        k: second[k] for k in ("model", "temperature", "max_tokens", "top_p", "messages")
    }


def test_run_overrides_win_over_model_parameters(tmp_path, fake, make_llm):
    basic(tmp_path).run({"word": "x"}, llm=make_llm(), temperature=1.5, max_tokens=7, seed=3)
    body = fake.last_request.body
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (1.5, 7, 3)
    with pytest.raises(InvalidRequestError, match="Unknown option"):
        basic(tmp_path).run({"word": "x"}, llm=make_llm(), max_token=7)


@pytest.mark.parametrize(
    ("client_model", "env", "model_map", "call_model", "sent"),
    [
        (None, {}, MAPPED, "openai/gpt-4o", "openai/gpt-4o"),  # run(model=) first
        ("openai/gpt-4.1", {}, MAPPED, None, "openai/gpt-4.1"),  # explicit client
        (None, {"SIGLA_LLM_MODEL": "openai/gpt-5"}, MAPPED, None, "openai/gpt-5"),
        (None, {}, MAPPED, None, "meta/Llama-3.3-70B-Instruct"),  # the file's, mapped
        (
            None,
            {"SIGLA_MODEL_MAP": "openai/gpt-4o-mini=deepseek/DeepSeek-R1"},
            None,
            None,
            "deepseek/DeepSeek-R1",
        ),
        (None, {"SIGLA_MODEL_MAP": "x=y"}, None, None, "openai/gpt-4o-mini"),  # as written
    ],
)
def test_model_resolution_order(
    tmp_path, fake, make_llm, monkeypatch, client_model, env, model_map, call_model, sent
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    p = basic(tmp_path, model_map=model_map)
    p.run({"word": "x"}, llm=make_llm(model=client_model), model=call_model)
    assert fake.last_request.body["model"] == sent


def test_model_map_parsing_and_its_errors():
    assert parse_model_map(" a/b = c , d=e/f ,") == {"a/b": "c", "d": "e/f"}
    assert parse_model_map({"a": "b"}) == {"a": "b"}
    for bad in ("a", "a=", "=b"):
        with pytest.raises(sigla.errors.ConfigurationError):
            parse_model_map(bad)


def test_model_and_response_format_are_part_of_the_cache_key(tmp_path, fake, make_llm):
    llm = make_llm(cache=tmp_path / "cache.sqlite")
    for options in ({}, {"model": "openai/gpt-4o"}, {"response_format": {"type": "json_object"}}):
        llm.chat("same", **options)
        llm.chat("same", **options)  # the second is a hit
    assert len(fake.requests) == 3
    assert llm.usage.cached == 3


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"model": ""}, "model must be a non-empty str"),
        ({"model": "has space"}, "model id"),
        ({"response_format": "json"}, "must be a dict"),
        ({"response_format": {"type": "yaml"}}, "must be one of"),
        ({"response_format": {"type": "json_schema"}}, "needs 'json_schema'"),
        ({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}, "'name'"),
    ],
)
def test_per_call_model_and_response_format_are_checked(make_llm, fake, options, match):
    llm = make_llm()
    with pytest.raises(InvalidRequestError, match=match):
        llm.chat("x", **options)
    with pytest.raises(InvalidRequestError, match=match):
        llm.map(["x"], **options)
    assert fake.requests == []


def test_parse_returns_the_json_and_checks_the_schema(tmp_path, fake, make_llm):
    path = ROOT / "prompts" / "capsule-tags.prompt.yml"
    p = load_prompt(path)
    case = p.test_data[0]
    fake.reply('{"tags": ["retries"], "kind": "how-to"}')
    assert p.run(case, llm=make_llm(), parse=True) == {"tags": ["retries"], "kind": "how-to"}
    fake.reply('{"tags": ["Retries!"], "kind": "how-to"}')
    with pytest.raises(InvalidResponseError, match=r"does not match its jsonSchema.*tags/0"):
        p.run(case, llm=make_llm(), parse=True)
    fake.reply("not json")
    with pytest.raises(InvalidResponseError, match="not JSON"):
        p.run(case, llm=make_llm(), parse=True)


def test_parse_needs_a_json_response_format(tmp_path, fake, make_llm):
    with pytest.raises(InvalidRequestError, match="parse=True needs a JSON answer"):
        basic(tmp_path).run({"word": "x"}, llm=make_llm(), parse=True)
    assert fake.requests == []


# -- rendering


def test_render_replaces_variables_literally_in_one_pass(tmp_path):
    p = load_prompt(
        write(
            tmp_path,
            """\
            messages:
              - role: user
                content: "{{a}} {{a.b}} {{with space}} {{é}} {{x}}"
            """,
        )
    )
    msgs = p.render({"a": "{{x}}", "a.b": "dot", "with space": "sp", "é": "ü", "x": "$1 \\1"})
    assert msgs == [{"role": "user", "content": "{{x}} dot sp ü $1 \\1"}]
    assert p.render({"a": 1, "a.b": 2, "with space": 3, "é": 4, "x": 5, "unused": 6})


def test_render_names_every_missing_variable_unless_not_strict(tmp_path):
    p = load_prompt(write(tmp_path, BASIC.replace("Say {{word}}", "{{b}} {{word}} {{a}} {{b}}")))
    with pytest.raises(MissingVariablesError) as caught:
        p.render({"word": "w"})
    error = caught.value
    assert error.missing == ("b", "a")
    assert (error.line, error.field) == (11, "messages[1].content")
    assert str(error).startswith(f"{p.path}:11: messages[1].content: no value for {{{{b}}}}")
    assert p.render({"word": "w"}, strict=False)[1]["content"] == "{{b}} w {{a}} {{b}}"


def test_render_keeps_multi_line_block_scalars(tmp_path):
    p = load_prompt(
        write(
            tmp_path,
            """\
            messages:
              - role: user
                content: |
                  line one {{v}}
                    indented
                  last
            """,
        )
    )
    assert p.render({"v": "x\ny"})[0]["content"] == "line one x\ny\n  indented\nlast\n"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3, "3"),
        (-7, "-7"),
        (0.5, "0.5"),
        (2.0, "2"),
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (float("inf"), "+Inf"),
        (True, "true"),
        (None, "<nil>"),
        ([1, "a", [2]], "[1 a [2]]"),
        ({"b": 1, "a": [True]}, "map[a:[true] b:1]"),
    ],
)
def test_non_string_values_are_formatted_as_go_formats_them(value, text):
    assert format_value(value) == text


def test_test_data_values_keep_their_yaml_types_when_rendered(tmp_path):
    p = load_prompt(
        write(
            tmp_path,
            """\
            messages: [{role: user, content: "{{a}}|{{b}}|{{c}}|{{d}}|{{e}}|{{f}}"}]
            testData:
              - {a: yes, b: 0o17, c: 1.50, d: ~, e: [1, x], f: "007"}
            """,
        )
    )
    assert p.render(p.test_data[0])[0]["content"] == "yes|15|1.5|<nil>|[1 x]|007"


# -- YAML 1.2 as yaml.v3 reads it


def test_yes_no_on_off_stay_strings(tmp_path):
    p = load_prompt(
        write(
            tmp_path,
            """\
            name: yes
            description: off
            messages: [{role: user, content: no}]
            testData: [{a: on, b: true, c: 12}]
            """,
        )
    )
    assert (p.name, p.description, p.messages[0].content) == ("yes", "off", "no")
    assert p.test_data == ({"a": "on", "b": True, "c": 12},)


@pytest.mark.parametrize(
    ("text", "line", "field", "match"),
    [
        ("messages: []\nname: a\nname: b\n", 3, None, 'mapping key "name" already defined'),
        ("name: [unclosed\nmessages: []\n", 2, None, "invalid YAML"),
        ("messages:\n  - role: user\n\tcontent: x\n", 3, None, "invalid YAML"),
        ("name: !!python/object:os.system x\nmessages: []\n", 1, None, "tag"),
    ],
)
def test_bad_yaml_reports_its_line(tmp_path, text, line, field, match):
    with pytest.raises(PromptFileError, match=match) as caught:
        load_prompt(write(tmp_path, text))
    assert caught.value.line == line
    assert caught.value.path.endswith("t.prompt.yml")


def test_both_extensions_aliases_and_merge_keys_load(tmp_path):
    p = load_prompt(
        write(
            tmp_path,
            """\
            base: &m {role: user, content: hi}
            messages:
              - *m
              - {<<: *m, role: assistant}
            """,
            name="x.prompt.yaml",
        )
    )
    assert [m.role for m in p.messages] == ["user", "assistant"]
    assert [k.field for k in p.unknown_keys] == ["base"]


# -- validation: every error names the file, the line and the field


@pytest.mark.parametrize(
    ("text", "line", "field", "match"),
    [
        ("name: x\n", 1, "messages", "is required"),
        ("", None, "messages", "empty"),
        ("messages: []\n", 1, "messages", "at least one"),
        ("messages:\n  - role: bot\n    content: x\n", 2, "messages[0].role", "unknown message"),
        ("messages:\n  - content: x\n", 2, "messages[0].role", "is required"),
        ("messages:\n  - role: user\n    content: [a]\n", 3, "messages[0].content", "a string"),
        (
            'modelParameters:\n  temperature: "0.5"\nmessages: [{role: user, content: x}]\n',
            2,
            "modelParameters.temperature",
            "quoted|remove the quotes",
        ),
        (
            "modelParameters:\n  maxTokens: 1.5\nmessages: [{role: user, content: x}]\n",
            2,
            "modelParameters.maxTokens",
            "integer",
        ),
        (
            "modelParameters:\n  topP: yes\nmessages: [{role: user, content: x}]\n",
            2,
            "modelParameters.topP",
            "a number",
        ),
        (
            "responseFormat: json\nmessages: [{role: user, content: x}]\n",
            1,
            "responseFormat",
            "must be one of text, json_object, json_schema",
        ),
        (
            "responseFormat: json_schema\nmessages: [{role: user, content: x}]\n",
            1,
            "jsonSchema",
            "required when responseFormat is json_schema",
        ),
        (
            "jsonSchema: '{not json'\nmessages: [{role: user, content: x}]\n",
            1,
            "jsonSchema",
            "not valid JSON",
        ),
        (
            "responseFormat: json_schema\njsonSchema: '{\"schema\": {}}'\n"
            "messages: [{role: user, content: x}]\n",
            2,
            "jsonSchema",
            "must contain 'name'",
        ),
        (
            "responseFormat: json_schema\njsonSchema:\n  name: n\n"
            "messages: [{role: user, content: x}]\n",
            3,
            "jsonSchema",
            "must contain 'schema'",
        ),
        (
            "messages: [{role: user, content: x}]\nevaluators:\n  - name: e\n",
            3,
            "evaluators[0]",
            "exactly one of string, llm or uses; has none",
        ),
        (
            "messages: [{role: user, content: x}]\nevaluators:\n"
            "  - name: e\n    string: {contains: a}\n    uses: github/fluency\n",
            3,
            "evaluators[0]",
            "has string and uses",
        ),
        (
            "messages: [{role: user, content: x}]\nevaluators:\n  - uses: github/nope\n",
            3,
            "evaluators[0].uses",
            "unknown evaluator",
        ),
        (
            "messages: [{role: user, content: x}]\nevaluators:\n  - string: {}\n",
            3,
            "evaluators[0].string",
            "needs one of equals",
        ),
        (
            "messages: [{role: user, content: x}]\nevaluators:\n"
            "  - llm: {modelId: m, prompt: p, choices: []}\n",
            3,
            "evaluators[0].llm.choices",
            "at least one",
        ),
        (
            "messages: [{role: user, content: x}]\nevaluators:\n"
            "  - llm: {prompt: p, choices: [{choice: a, score: 1}]}\n",
            3,
            "evaluators[0].llm.modelId",
            "is required",
        ),
        (
            "messages: [{role: user, content: x}]\nevaluators:\n"
            "  - llm:\n      modelId: m\n      prompt: p\n      choices:\n"
            "        - {choice: a, score: '1'}\n",
            7,
            "evaluators[0].llm.choices[0].score",
            "remove the quotes",
        ),
        ("messages: [{role: user, content: x}]\ntestData: [1]\n", 2, "testData[0]", "mapping"),
    ],
)
def test_every_validation_error_names_file_line_and_field(tmp_path, text, line, field, match):
    with pytest.raises(PromptFileError, match=match) as caught:
        load_prompt(write(tmp_path, text))
    error = caught.value
    assert (error.line, error.field) == (line, field)
    assert str(error).startswith(str(tmp_path / "t.prompt.yml") + (f":{line}:" if line else ":"))
    assert field in str(error)


def test_a_missing_file_is_a_prompt_file_error(tmp_path):
    with pytest.raises(PromptFileError, match="cannot read"):
        load_prompt(tmp_path / "nope.prompt.yml")


def test_unknown_keys_load_with_a_warning_naming_each(tmp_path, caplog):
    text = BASIC.replace("  topP: 0.9\n", "  max_tokens: 5\n") + "evaluator: []\n"
    with caplog.at_level(logging.WARNING, logger="sigla"):
        p = load_prompt(write(tmp_path, text))
    assert p.model_parameters.max_tokens == 120
    assert [(k.field, k.line, k.suggestion) for k in p.unknown_keys] == [
        ("modelParameters.max_tokens", 6, "maxTokens"),
        ("evaluator", 12, "evaluators"),
    ]
    logged = caplog.text
    assert "modelParameters.max_tokens" in logged and "likely a typo" in logged
    assert "did you mean maxTokens?" in logged


def test_the_parts_are_typed_and_frozen(tmp_path):
    p = load_prompt(ROOT / "prompts" / "capsule-answer.prompt.yml")
    assert p.evaluators[2].llm is not None and p.evaluators[2].llm.choices[0].score == 1.0
    assert p.evaluators[3].builtin == "similarity"
    assert p.evaluators[0].string is not None
    assert p.evaluators[0].string.check == ("contains", "{{fact}}")
    with pytest.raises(AttributeError):
        p.model = "x"  # type: ignore[misc]


def test_json_schema_as_a_yaml_mapping_is_accepted(tmp_path):
    p = load_prompt(
        write(
            tmp_path,
            """\
            responseFormat: json_schema
            jsonSchema:
              name: person
              schema: {type: object, required: [name]}
            messages: [{role: user, content: x}]
            """,
        )
    )
    assert p.json_schema is not None and p.json_schema.name == "person"
    assert p.response_format_option() == {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": {"type": "object", "required": ["name"]}},
    }


# -- the shipped prompts


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_prompt_validates_and_renders_its_test_data(path):
    p = load_prompt(path)
    assert p.unknown_keys == ()
    assert p.test_data and p.evaluators
    for case in p.test_data:
        assert p.render(case)


def test_shipped_prompts_are_valid_under_the_published_schema():
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    validator = jsonschema.Draft202012Validator(prompt_schema())
    for path in SHIPPED:
        assert list(validator.iter_errors(yaml.safe_load(path.read_text()))) == []


def test_the_package_carries_identical_copies_of_the_summarize_prompts():
    for name in ("capsule-summary.prompt.yml", "capsule-reduce.prompt.yml"):
        assert filecmp.cmp(ROOT / "prompts" / name, PACKAGED / name, shallow=False), name


def test_summarize_capsules_uses_the_packaged_prompts():
    summary = load_prompt(PACKAGED / "capsule-summary.prompt.yml")
    merge = load_prompt(PACKAGED / "capsule-reduce.prompt.yml")
    assert summary.messages[0].content == MAP_PROMPT
    assert merge.messages[0].content == REDUCE_PROMPT
    for p in (summary, merge):  # the packed capsules are the user message, as they are
        assert [m.content for m in p.messages[1:]] == ["{{input}}"]


def test_the_schema_ships_as_package_data():
    assert prompt_schema()["required"] == ["messages"]
    assert (Path(sigla.__file__).parent / "_data" / "prompt.schema.json").is_file()


def test_importing_sigla_llm_or_sigla_prompts_imports_no_yaml_or_jsonschema():
    import subprocess
    import sys

    code = (
        "import sys, sigla.llm, sigla.prompts; "
        "print(sorted(m for m in ('yaml', 'jsonschema') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_integers_are_read_as_yaml_v3_reads_them(tmp_path):
    p = load_prompt(
        write(
            tmp_path,
            """\
            modelParameters: {maxTokens: 0100}
            messages: [{role: user, content: "{{a}}|{{b}}|{{c}}|{{d}}|{{e}}|{{f}}|{{g}}"}]
            testData:
              - {a: 017, b: 1_000, c: 0b101, d: 0X1F, e: -0x1F, f: 99999999999999999999, g: 08}
            """,
        )
    )
    assert p.model_parameters.max_tokens == 64  # Go's base-0 ParseInt: a leading 0 is octal
    assert p.render(p.test_data[0])[0]["content"] == "15|1000|5|31|-31|1e+20|8"


def test_an_alias_bomb_is_refused_quickly(tmp_path):
    import time

    lines = ["messages: [{role: user, content: hi}]", "testData:"]
    lines.append("  - a0: &a0 [x, x, x, x, x, x, x, x, x]")
    for level in range(1, 8):
        previous = f"*a{level - 1}"
        lines.append(f"    a{level}: &a{level} [{', '.join([previous] * 9)}]")
    path = tmp_path / "bomb.prompt.yml"
    path.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    with pytest.raises(PromptFileError) as caught:
        load_prompt(path)
    assert "excessive aliasing" in str(caught.value)
    assert time.monotonic() - started < 5


def test_deep_nesting_is_a_prompt_file_error(tmp_path):
    path = tmp_path / "deep.prompt.yml"
    path.write_text("messages: [{role: user, content: hi}]\ntestData: " + "[" * 5000 + "]" * 5000)
    with pytest.raises(PromptFileError) as caught:
        load_prompt(path)
    assert "nests too deeply" in str(caught.value)


def test_a_model_map_naming_one_model_twice_is_refused():
    from sigla.errors import ConfigurationError
    from sigla.prompts import parse_model_map

    assert parse_model_map("a=b, a=b,c=d") == {"a": "b", "c": "d"}  # a repeat is harmless
    with pytest.raises(ConfigurationError, match="maps a twice"):
        parse_model_map("a=b , a=c", source="SIGLA_MODEL_MAP")
