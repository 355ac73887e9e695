"""The fast paths: the body rewrite settled on the bytes, typed messages, light open streams.

Each fast path must behave exactly like the slow one it replaces; these tests pin that
behaviour (never a timing: ``benchmarks/`` measures the speed).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import pytest
from conftest import run_chat, run_complete, run_stream

from sigla._core import Wire, rewrite_body
from sigla._sdk import _light, _mistral_class, _Models
from sigla.llm import InvalidRequestError

GITHUB = Wire()  # seed as "seed", usage asked for on streams
MISTRAL = Wire(seed_field="random_seed", stream_usage=False)
USAGE = {"include_usage": True}


def sdk_body(**fields: Any) -> bytes:
    """A body as mistralai writes it: compact JSON, messages first, ASCII-escaped."""
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    body.update(fields)
    return json.dumps(body, separators=(",", ":")).encode()


def expected(body: bytes, wire: Wire) -> dict[str, Any]:
    """What the service must receive: the specification of rewrite_body, written plainly."""
    data = json.loads(body)
    if wire.seed_field != "random_seed" and "random_seed" in data:
        data[wire.seed_field] = data.pop("random_seed")
    for message in data["messages"]:
        if message.get("prefix") is False:
            del message["prefix"]
    if wire.stream_usage and data.get("stream"):
        data.setdefault("stream_options", USAGE)
    return data


# ---------------------------------------------------------------- the body rewrite


def test_a_body_that_needs_no_rewrite_is_sent_as_the_sdk_wrote_it():
    body = sdk_body(temperature=0.7)
    assert rewrite_body(body, GITHUB) is body
    streamed = sdk_body(stream=True, random_seed=3)
    assert rewrite_body(streamed, MISTRAL) is streamed


def test_usage_on_streams_is_one_key_appended_as_the_json_path_appends_it():
    body = sdk_body(stream=True, temperature=0.7, stop=["END"])
    rewritten = rewrite_body(body, GITHUB)
    assert json.loads(rewritten) == {**json.loads(body), "stream_options": USAGE}
    assert rewritten == json.dumps(expected(body, GITHUB), separators=(",", ":")).encode()


@pytest.mark.parametrize("stream", [False, True])
def test_a_prompt_that_mentions_the_rewritten_keys_does_not_fool_the_byte_checks(stream):
    prompt = (
        'Explain {"random_seed": 7, "prefix": false, "stream": true, '
        '"stream_options": {}, "seed": 1} and "random_seed" alone.'
    )
    body = sdk_body(messages=[{"role": "user", "content": prompt}], stream=stream)
    rewritten = rewrite_body(body, GITHUB)
    if not stream:
        assert rewritten is body
    sent = json.loads(rewritten)
    assert sent == expected(body, GITHUB)
    assert sent["messages"][0]["content"] == prompt
    assert "seed" not in sent and "random_seed" not in sent


def test_a_message_that_is_exactly_a_key_name_is_left_as_it_is():
    messages = [
        {"role": "user", "content": "random_seed"},
        {"role": "assistant", "content": "prefix", "prefix": False},
        {"role": "user", "content": "stream"},
    ]
    for seed, stream in itertools.product((None, 5), (False, True)):
        fields: dict[str, Any] = {"messages": messages, "stream": stream}
        if seed is not None:
            fields["random_seed"] = seed
        body = sdk_body(**fields)
        sent = json.loads(rewrite_body(body, GITHUB))
        assert sent == expected(body, GITHUB)
        assert [m["content"] for m in sent["messages"]] == ["random_seed", "prefix", "stream"]


def test_a_stream_key_of_a_nested_object_is_not_taken_for_the_requests():
    schema = {"type": "object", "properties": {"stream": True}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    for stream in (False, True):
        body = sdk_body(stream=stream, tools=tools)
        assert json.loads(rewrite_body(body, GITHUB)) == expected(body, GITHUB)


def test_bodies_the_byte_checks_cannot_read_go_through_the_json_path():
    spaced = json.dumps({"messages": [], "stream": True}).encode()  # '"stream": true'
    assert json.loads(rewrite_body(spaced, GITHUB))["stream_options"] == USAGE
    asked = sdk_body(stream=True, stream_options={"include_usage": False})
    assert json.loads(rewrite_body(asked, GITHUB))["stream_options"] == {"include_usage": False}
    for foreign in (b"not json", b"[1, 2]", b"", b"{}", b'{"stream":true', b'"stream":true}'):
        assert rewrite_body(foreign, GITHUB) == foreign  # not a JSON object: sent as it is
    first = b'{"stream_options":{"include_usage":false},"messages":[],"stream":true}'
    assert json.loads(rewrite_body(first, GITHUB))["stream_options"] == {"include_usage": False}
    colon = b'{"messages":[],"stream" :true}'
    assert json.loads(rewrite_body(colon, GITHUB))["stream_options"] == USAGE
    unstreamed = b'{"model":"m","messages":[]}'
    assert rewrite_body(unstreamed, GITHUB) is unstreamed
    nested_last = b'{"messages":[],"metadata":{"stream":true}}'
    assert json.loads(rewrite_body(nested_last, GITHUB)) == json.loads(nested_last)


def test_the_json_path_changes_only_what_it_must():
    """Keys keep their places, and the body stays compact, as the SDK wrote it."""
    assistant = {"role": "assistant", "content": "ok", "prefix": False}
    for wire in (GITHUB, MISTRAL):
        body = sdk_body(random_seed=4, messages=[assistant], stream=True, top_p=1)
        sent = rewrite_body(body, wire)
        assert sent == json.dumps(expected(body, wire), separators=(",", ":")).encode()


def test_a_stream_key_of_a_nested_object_before_the_requests_own_leaves_the_bytes_alone():
    body = b'{"model": "m", "metadata": {"stream": 1}, "messages": [], "stream":true}'
    assert rewrite_body(body, GITHUB) == body[:-1] + b',"stream_options":{"include_usage":true}}'


def test_every_mix_of_rewrites_matches_the_specification():
    prompts = ["hi", 'say "stream":true', "caf\u00e9 \u2603 \\ \n", "x" * 10_000, "random_seed"]
    for wire, stream, seed, prefix, prompt in itertools.product(
        (GITHUB, MISTRAL), (False, True), (None, 0, 42), (None, False, True), prompts
    ):
        assistant: dict[str, Any] = {"role": "assistant", "content": "ok"}
        if prefix is not None:
            assistant["prefix"] = prefix
        fields: dict[str, Any] = {
            "messages": [{"role": "user", "content": prompt}, assistant],
            "stream": stream,
            "temperature": 0.7,
        }
        if seed is not None:
            fields["random_seed"] = seed
        body = sdk_body(**fields)
        assert json.loads(rewrite_body(body, wire)) == expected(body, wire), fields


# ---------------------------------------------------------------- typed messages


def azure_class() -> type:
    try:
        from mistralai.azure.client import MistralAzure  # type: ignore[import-not-found]
    except ImportError:
        from mistralai_azure import MistralAzure  # type: ignore[import-not-found,no-redef]
    return MistralAzure


@pytest.mark.parametrize("client", ["mistral", "azure"])
def test_messages_reach_the_sdk_as_its_own_message_classes(client):
    sdk_class = _mistral_class() if client == "mistral" else azure_class()
    convert = _Models(sdk_class).typed
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": [{"type": "text", "text": "u"}]},
        {"role": "assistant", "content": "a"},
        {"role": "tool", "content": "t", "tool_call_id": "call_1", "name": "f"},
    ]
    typed = convert(messages)
    package = sdk_class.__module__.rpartition(".")[0]
    assert [type(m).__name__ for m in typed] == [
        "SystemMessage",
        "UserMessage",
        "AssistantMessage",
        "ToolMessage",
    ]
    assert all(type(m).__module__.startswith(f"{package}.models") for m in typed)
    assert typed[3].tool_call_id == "call_1"


def test_assistant_messages_leave_prefix_out_unless_it_is_asked_for():
    convert = _Models(_mistral_class()).typed
    plain, declined, asked = convert(
        [
            {"role": "assistant", "content": "a"},
            {"role": "assistant", "content": "b", "prefix": False},
            {"role": "assistant", "content": "c", "prefix": True},
        ]
    )
    assert plain.prefix is None and declined.prefix is None
    assert asked.prefix is True


def test_messages_the_seam_cannot_classify_are_handed_to_the_sdk_as_given():
    convert = _Models(_mistral_class()).typed
    odd: list[Any] = [{"role": "user", "content": "hi"}, {"role": "narrator", "content": "x"}]
    assert convert(odd) is odd
    assert convert(["not a dict"]) == ["not a dict"]
    assert _Models(object).typed([{"role": "user", "content": "hi"}]) == [
        {"role": "user", "content": "hi"}
    ]


def test_the_callers_messages_are_not_changed():
    convert = _Models(_mistral_class()).typed
    messages = [{"role": "assistant", "content": "a", "prefix": False}]
    convert(messages)
    assert messages == [{"role": "assistant", "content": "a", "prefix": False}]


@pytest.mark.e2e
def test_a_conversation_reaches_the_wire_as_it_did_when_the_sdk_got_dicts(fake, llm, mode):
    messages = [
        {"role": "system", "content": "You count."},
        {"role": "user", "content": [{"type": "text", "text": "one"}]},
        {"role": "assistant", "content": "two", "prefix": False},
        {"role": "user", "content": "three?"},
    ]
    assert run_chat(llm, mode, messages=messages) == "Echo: three?"
    sent = fake.last_request.body["messages"]
    assert sent == [*messages[:2], {"role": "assistant", "content": "two"}, messages[3]]


@pytest.mark.e2e
def test_an_assistant_prefix_asked_for_reaches_the_wire(fake, llm, mode):
    messages = [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "H"}]
    messages[1]["prefix"] = True
    run_chat(llm, mode, messages=messages)
    assert fake.last_request.body["messages"][1] == {
        "role": "assistant",
        "content": "H",
        "prefix": True,
    }


@pytest.mark.e2e
@pytest.mark.parametrize("streaming", [False, True])
def test_a_malformed_message_is_an_invalid_request_and_nothing_is_sent(fake, llm, mode, streaming):
    messages = [{"role": "tool", "content": "4", "tool_call_id": 5}]  # the SDK's to refuse
    if streaming:
        _, error = run_stream(llm, mode, messages=messages)
    else:
        with pytest.raises(InvalidRequestError) as caught:
            run_chat(llm, mode, messages=messages)
        error = caught.value
    assert isinstance(error, InvalidRequestError)
    assert "tool_call_id" in str(error)  # named by the SDK's message class
    assert error.__cause__ is None and error.__context__ is None
    assert fake.requests == []


# ---------------------------------------------------------------- answers read by sigla


def chat_post(url: str) -> httpx.Response:
    from sigla._transport import sync_client

    body = {"model": "mistral-ai/Codestral-2501", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": "Bearer test"}
    return sync_client(Wire()).post(f"{url}/chat/completions", json=body, headers=headers)


def test_a_claimed_answer_is_validated_once_and_labelled_so_the_sdk_leaves_it(fake):
    from sigla._transport import CLAIMED_TYPE, Claim, release

    fake.reply("Hello!")
    claim = Claim(json.loads)
    token = claim.held()
    try:
        response = chat_post(fake.url)
    finally:
        release(token)
    assert response.headers["content-type"] == CLAIMED_TYPE
    assert json.loads(response.content) == claim.answer  # the answer itself, unchanged
    assert claim.answer["choices"][0]["message"]["content"] == "Hello!"
    assert chat_post(fake.url).headers["content-type"].startswith("application/json")


def test_an_answer_the_claim_refuses_reaches_the_sdk_as_it_came(fake):
    from sigla._transport import Claim, release

    def refuse(body: bytes) -> Any:
        raise ValueError("not a chat completion")

    claim = Claim(refuse)
    token = claim.held()
    try:
        response = chat_post(fake.url)
    finally:
        release(token)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert claim.answer is None


@pytest.mark.e2e
def test_complete_takes_the_answer_sigla_validated_with_the_sdks_own_class(
    fake, llm, mode, monkeypatch
):
    from sigla import _transport

    taken: list[bool] = []
    take = _transport.Claim.take

    def recorded(claim: Any, content: bytes) -> bool:
        taken.append(take(claim, content))
        return taken[-1]

    monkeypatch.setattr(_transport.Claim, "take", recorded)
    fake.reply("Hello!", usage={"prompt_tokens": 8, "completion_tokens": 5, "total_tokens": 13})
    result = run_complete(llm, mode, "hi")
    assert taken == [True]
    assert (result.text, result.finish_reason, result.usage.total_tokens) == ("Hello!", "stop", 13)
    assert result.model and result.id


def test_every_client_shares_one_ssl_context(fake):
    """Building an SSL context costs ~35 ms: the sync clients, each event loop's async
    client and the idle one handed to sync-only SDK objects all use the same one."""
    import asyncio

    from sigla import _transport

    catalog = fake.url.removesuffix("/inference") + "/catalog/models"

    def context(client: httpx.Client | httpx.AsyncClient) -> Any:
        return client._transport._pool._ssl_context  # type: ignore[union-attr]

    async def in_a_loop(wire: Wire) -> Any:
        client = await _transport.async_client(wire)
        assert (await client.get(catalog)).status_code == 200
        return context(client)

    sync = [
        _transport.sync_client(Wire()),
        _transport.sync_client(Wire(max_response_bytes=1 << 20)),
    ]
    assert sync[1].get(catalog).status_code == 200
    found = [context(c) for c in sync] + [asyncio.run(in_a_loop(Wire())) for _ in "ab"]
    found.append(context(_transport.idle_async_client()))
    assert found[0] is not None and all(each is found[0] for each in found)


# ---------------------------------------------------------------- open streams


def test_an_open_streams_response_lets_go_of_the_sdks_copy_of_the_prompt():
    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions", content=b"x" * 1000)
    response = httpx.Response(200, request=request)
    assert _light(response) is response
    assert response.request.content == b""
    assert (response.request.method, response.request.url) == (request.method, request.url)


@pytest.mark.e2e
def test_a_stream_with_a_large_prompt_still_streams_and_asks_for_usage(fake, llm, mode):
    prompt = "many words " * 2000  # 22 KB: under the double's 8000-token input cap
    pieces, error = run_stream(llm, mode, prompt)
    assert error is None
    assert "".join(pieces) == f"Echo: {prompt}"
    body = fake.last_request.body
    assert body["stream_options"] == USAGE and body["messages"][-1]["content"] == prompt
