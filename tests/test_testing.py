"""Specification of sigla.testing: the loopback GitHub Models double, spoken to over raw HTTP."""

from __future__ import annotations

import ast
import http.client
import itertools
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import interruptible

import sigla.testing as testing
from sigla.testing import FAULTS, FakeGitHubModels, RecordedRequest
from sigla.testing.__main__ import main as double_main

TOKEN = "github_pat_example_secret_value"
CHAT = "/inference/chat/completions"


# -- helpers ---------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def connect(fake: FakeGitHubModels, timeout: float = 5.0) -> http.client.HTTPConnection:
    parts = urlsplit(fake.base_url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def send(
    conn: http.client.HTTPConnection,
    path: str,
    body: Any = None,
    *,
    method: str = "POST",
    token: str | None = TOKEN,
    headers: dict[str, str] | None = None,
) -> Response:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    payload = None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=payload, headers=all_headers)
    resp = conn.getresponse()
    data = resp.read()
    return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)


def call(fake: FakeGitHubModels, path: str = CHAT, body: Any = None, **kwargs: Any) -> Response:
    conn = connect(fake)
    try:
        return send(conn, path, body, **kwargs)
    finally:
        conn.close()


def chat(content: str = "Hello", model: str = "openai/gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def events(raw: bytes) -> list[Any]:
    """Parse an SSE body into JSON objects, with "[DONE]" kept as a string."""
    out: list[Any] = []
    for block in raw.decode().split("\n\n"):
        if block.strip():
            assert block.startswith("data: "), block
            data = block[len("data: ") :]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def text_of(evts: list[Any]) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in evts
        if isinstance(e, dict) and e.get("choices")
    )


@pytest.fixture
def fake() -> Any:
    with FakeGitHubModels() as double:
        yield double


# -- the module ------------------------------------------------------------------------


def test_public_names_are_exported_and_documented() -> None:
    assert set(testing.__all__) == {"FAULTS", "FakeGitHubModels", "RecordedRequest"}
    assert testing.__doc__ and "Example" in testing.__doc__
    for name in ("reply", "fail", "retire", "reset", "saw_token", "start", "stop", "org_url"):
        assert getattr(FakeGitHubModels, name).__doc__, name
    assert RecordedRequest.__doc__


def test_package_imports_nothing_else_from_sigla() -> None:
    package = Path(testing.__file__).parent
    files = sorted(package.rglob("*.py"))
    assert package.name == "testing" and len(files) > 1
    outside = []
    for path in files:
        depth = len(path.relative_to(package).parts)  # how many dots stay inside the package
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                if node.level > depth:
                    outside.append(f"{path.name}: from {'.' * node.level}{node.module or ''}")
                continue
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            outside += [
                f"{path.name}: {m}"
                for m in modules
                if m.split(".")[0] == "sigla" and m.split(".")[:2] != ["sigla", "testing"]
            ]
    assert not outside


def test_plumbing_knows_the_double_only_through_its_interface() -> None:
    """Imports inside the package flow one way: ``_fake`` uses ``_http``, never the reverse."""
    source = (Path(testing.__file__).parent / "_http.py").read_text(encoding="utf-8")
    imported = [
        node.module or ""
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.level
    ]
    assert imported and "_fake" not in imported


def test_urls_point_at_the_running_double(fake: FakeGitHubModels) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", fake.base_url)
    assert fake.url == fake.base_url + "/inference"
    assert fake.org_url("acme") == fake.base_url + "/orgs/acme/inference"


def test_url_before_start_raises() -> None:
    with pytest.raises(RuntimeError, match="start"):
        FakeGitHubModels().url  # noqa: B018


# -- routes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "route", "org"),
    [
        ("/inference/chat/completions", "github", None),
        ("/inference/v1/chat/completions", "github", None),
        ("/orgs/acme/inference/chat/completions", "github", "acme"),
        (
            "/orgs/acme/inference/v1/chat/completions?api-version=2024-05-01-preview",
            "github",
            "acme",
        ),
        ("/models/chat/completions?api-version=2024-05-01-preview", "azure", None),
        ("/v1/chat/completions", "v1", None),
    ],
)
def test_chat_routes_answer_and_are_recorded(
    fake: FakeGitHubModels, path: str, route: str, org: str | None
) -> None:
    resp = call(fake, path, chat("Hi"))
    assert resp.status == 200
    assert resp.json()["choices"][0]["message"]["content"] == "Echo: Hi"
    rec = fake.last_request
    assert rec is not None
    assert (rec.route, rec.org, rec.path, rec.status) == (route, org, path.split("?")[0], 200)
    if "?" in path:
        assert rec.query == {"api-version": "2024-05-01-preview"}


def test_azure_route_requires_api_version(fake: FakeGitHubModels) -> None:
    resp = call(fake, "/models/chat/completions", chat())
    assert resp.status == 400
    assert resp.json()["error"]["code"] == "BadRequest"


def test_successor_routes_accept_any_model_name(fake: FakeGitHubModels) -> None:
    v1 = call(fake, "/v1/chat/completions", chat(model="mistral-small-latest"))
    azure = call(fake, "/models/chat/completions?api-version=x", chat(model="gpt-4o"))
    assert (v1.status, azure.status) == (200, 200)
    assert v1.json()["model"] == "mistral-small-latest"
    assert azure.json()["model"] == "gpt-4o-2024-11-20"


def test_bare_model_name_gets_400_text_plain(fake: FakeGitHubModels) -> None:
    resp = call(fake, CHAT, chat(model="gpt-4o-mini"))
    assert resp.status == 400
    assert resp.headers["content-type"].startswith("text/plain")
    assert resp.body.decode() == (
        "Model not found; expected format: {publisher}/{model_name}. "
        "Valid models can be found by calling /catalog/models."
    )


def test_model_outside_catalog_gets_404_unknown_model(fake: FakeGitHubModels) -> None:
    resp = call(fake, CHAT, chat(model="deepseek/deepseek-v3"))
    assert resp.status == 404
    assert resp.json() == {
        "error": {
            "code": "unknown_model",
            "message": "Unknown model: deepseek/deepseek-v3",
            "details": "Unknown model: deepseek/deepseek-v3",
        }
    }


def test_catalog_is_a_bare_array_of_contract_entries(fake: FakeGitHubModels) -> None:
    resp = call(fake, "/catalog/models", method="GET", token=None)
    assert resp.status == 200
    entries = resp.json()
    assert isinstance(entries, list)
    tiers = {e["id"]: e["rate_limit_tier"] for e in entries}
    assert tiers["mistral-ai/Codestral-2501"] == "low"
    assert tiers["openai/gpt-4o"] == "high"
    assert tiers["openai/gpt-5"] == "custom"
    assert tiers["openai/text-embedding-3-small"] == "embeddings"
    assert {
        "openai/gpt-4o-mini",
        "openai/gpt-4.1",
        "meta/Llama-3.3-70B-Instruct",
        "deepseek/DeepSeek-R1",
    } <= set(tiers)
    fields = {
        "id",
        "name",
        "publisher",
        "registry",
        "summary",
        "html_url",
        "version",
        "capabilities",
        "limits",
        "rate_limit_tier",
        "supported_input_modalities",
        "supported_output_modalities",
        "tags",
    }
    for entry in entries:
        assert set(entry) == fields
        assert set(entry["limits"]) == {"max_input_tokens", "max_output_tokens"}


def test_custom_catalog_decides_which_models_exist() -> None:
    with FakeGitHubModels(catalog=[{"id": "acme/tiny-1"}]) as fake:
        assert call(fake, CHAT, chat(model="acme/tiny-1")).status == 200
        assert call(fake, CHAT, chat(model="openai/gpt-4o")).status == 404


def test_unknown_path_gets_404_json_and_wrong_method_405(fake: FakeGitHubModels) -> None:
    missing = call(fake, "/nope", chat())
    assert missing.status == 404
    assert missing.json() == {"error": {"code": "NotFound", "message": "Not Found"}}
    wrong = call(fake, CHAT, method="GET")
    assert wrong.status == 405
    assert wrong.headers["allow"] == "POST"


# -- authentication and the log ---------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer "}, {"Authorization": "token abc"}]
)
def test_missing_or_malformed_bearer_gets_401_bad_credentials(
    fake: FakeGitHubModels, headers: dict[str, str]
) -> None:
    resp = call(fake, CHAT, chat(), token=None, headers=headers)
    assert resp.status == 401
    assert resp.json() == {
        "error": {
            "code": "unauthorized",
            "message": "Bad credentials",
            "details": "Bad credentials",
        }
    }


def test_only_listed_tokens_are_accepted() -> None:
    with FakeGitHubModels(tokens=["good"]) as fake:
        assert call(fake, CHAT, chat(), token="good").status == 200
        assert call(fake, CHAT, chat(), token="bad").status == 401


def test_log_redacts_the_token_and_saw_token_compares_hashes(fake: FakeGitHubModels) -> None:
    call(fake, CHAT, chat(), headers={"X-Custom": "1"})
    rec = fake.last_request
    assert rec is not None
    assert rec.headers["authorization"] == "Bearer ***"
    assert rec.headers["x-custom"] == "1"
    assert rec.body == chat()
    assert rec.method == "POST"
    assert rec.received_at <= time.perf_counter()
    assert TOKEN not in repr(fake.requests)
    assert TOKEN not in repr(vars(fake))
    assert fake.saw_token(TOKEN)
    assert not fake.saw_token("another-token")


def test_azure_api_key_header_is_accepted_and_redacted(fake: FakeGitHubModels) -> None:
    resp = call(
        fake,
        "/models/chat/completions?api-version=1",
        chat(),
        token=None,
        headers={"api-key": "azure-key"},
    )
    assert resp.status == 200
    assert fake.last_request is not None and fake.last_request.headers["api-key"] == "***"
    assert fake.saw_token("azure-key")


# -- answers ---------------------------------------------------------------------------


def test_default_reply_echoes_in_the_azure_shape(fake: FakeGitHubModels) -> None:
    body = chat("Hello")
    body["messages"].insert(0, {"role": "system", "content": "Be brief."})
    resp = call(fake, CHAT, body)
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/json"
    assert int(resp.headers["content-length"]) == len(resp.body)
    assert resp.headers["x-request-id"]
    for name in ("limit", "remaining", "reset", "renewalperiod"):
        for unit in ("requests", "tokens"):
            assert f"x-ratelimit-{name}-{unit}" in resp.headers
    data = resp.json()
    assert data["model"] == "gpt-4o-mini-2024-07-18"
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    assert data["system_fingerprint"].startswith("fp_")
    assert data["prompt_filter_results"][0]["content_filter_results"]["jailbreak"] == {
        "filtered": False,
        "detected": False,
    }
    choice = data["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["logprobs"] is None
    assert choice["content_filter_results"]["hate"] == {"filtered": False, "severity": "safe"}
    assert choice["message"] == {
        "annotations": [],
        "content": "Echo: Hello",
        "refusal": None,
        "role": "assistant",
    }
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert "completion_tokens_details" in usage and "prompt_tokens_details" in usage


def test_mistral_models_answer_the_plain_mistral_shape(fake: FakeGitHubModels) -> None:
    data = call(fake, CHAT, chat(model="mistral-ai/Codestral-2501")).json()
    assert re.fullmatch(r"[0-9a-f]{32}", data["id"])
    assert data["model"] == "codestral-2501"
    assert "prompt_filter_results" not in data and "system_fingerprint" not in data
    assert "content_filter_results" not in data["choices"][0]
    assert set(data["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_other_publishers_get_a_null_system_fingerprint(fake: FakeGitHubModels) -> None:
    data = call(fake, CHAT, chat(model="meta/Llama-3.3-70B-Instruct")).json()
    assert data["system_fingerprint"] is None
    assert data["model"] == "Llama-3.3-70B-Instruct"


def test_default_reply_honours_max_tokens_and_stop(fake: FakeGitHubModels) -> None:
    long = call(fake, CHAT, chat("x" * 100, max_tokens=5)).json()["choices"][0]
    assert long["message"]["content"] == ("Echo: " + "x" * 100)[:20]
    assert long["finish_reason"] == "length"
    stopped = call(fake, CHAT, chat("one two three", stop=["two"])).json()["choices"][0]
    assert stopped["message"]["content"] == "Echo: one "
    assert stopped["finish_reason"] == "stop"


def test_scripted_replies_are_used_in_order(fake: FakeGitHubModels) -> None:
    fake.reply("First")
    fake.reply(
        "Second",
        finish_reason="length",
        model="custom-served",
        usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    )
    first = call(fake, CHAT, chat()).json()
    second = call(fake, CHAT, chat()).json()
    third = call(fake, CHAT, chat("again")).json()
    assert first["choices"][0]["message"]["content"] == "First"
    assert second["choices"][0]["finish_reason"] == "length"
    assert second["model"] == "custom-served"
    assert second["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    assert third["choices"][0]["message"]["content"] == "Echo: again"


def test_scripted_tool_calls_answer_null_content(fake: FakeGitHubModels) -> None:
    call_ = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    fake.reply(None, finish_reason="tool_calls", tool_calls=[call_])
    message = call(fake, CHAT, chat()).json()["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [call_]


def test_input_over_max_input_tokens_gets_413(fake: FakeGitHubModels) -> None:
    resp = call(fake, CHAT, chat("x" * (8000 * 4 + 1), model="openai/gpt-4o"))
    assert resp.status == 413
    assert resp.json() == {
        "error": {
            "code": "tokens_limit_reached",
            "message": "Request body too large for gpt-4o model. Max size: 8000 tokens.",
        }
    }
    assert call(fake, CHAT, chat("x" * (8000 * 4))).status == 200


def test_embeddings_are_openai_shaped_and_deterministic(fake: FakeGitHubModels) -> None:
    body = {"model": "openai/text-embedding-3-small", "input": ["a", "b"]}
    first = call(fake, "/inference/embeddings", body).json()
    again = call(fake, "/orgs/acme/inference/embeddings", body).json()
    assert first["object"] == "list"
    assert [d["index"] for d in first["data"]] == [0, 1]
    assert len(first["data"][0]["embedding"]) == 8
    assert first["data"] == again["data"]
    assert first["data"][0]["embedding"] != first["data"][1]["embedding"]
    assert first["usage"]["prompt_tokens"] >= 1


# -- faults ----------------------------------------------------------------------------

RETIREMENT_HEADERS = {
    "deprecation": "@1777939200",
    "sunset": "Thu, 30 Jul 2026 00:00:00 GMT",
}


@pytest.mark.parametrize(
    ("name", "params", "status", "headers", "body"),
    [
        (
            "unauthorized",
            {},
            401,
            {},
            {
                "error": {
                    "code": "unauthorized",
                    "message": "The `models` permission is required to access this endpoint",
                    "details": "The `models` permission is required to access this endpoint",
                }
            },
        ),
        (
            "bad_credentials",
            {},
            401,
            {},
            {
                "error": {
                    "code": "unauthorized",
                    "message": "Bad credentials",
                    "details": "Bad credentials",
                }
            },
        ),
        (
            "integration",
            {},
            401,
            {},
            {
                "error": {
                    "code": "unauthorized",
                    "message": "Resource not accessible by integration",
                    "details": "Resource not accessible by integration",
                }
            },
        ),
        (
            "no_access",
            {},
            403,
            {},
            {
                "error": {
                    "code": "no_access",
                    "message": "No access to model: openai/gpt-4o-mini",
                    "details": "No access to model: openai/gpt-4o-mini",
                }
            },
        ),
        (
            "unknown_model",
            {"model": "deepseek/deepseek-v3"},
            404,
            {},
            {
                "error": {
                    "code": "unknown_model",
                    "message": "Unknown model: deepseek/deepseek-v3",
                    "details": "Unknown model: deepseek/deepseek-v3",
                }
            },
        ),
        (
            "tokens_limit",
            {},
            413,
            {},
            {
                "error": {
                    "code": "tokens_limit_reached",
                    "message": "Request body too large for gpt-4o-mini model. "
                    "Max size: 8000 tokens.",
                }
            },
        ),
        (
            "rate_limit_minute",
            {},
            429,
            {
                "retry-after": "9",
                "x-ratelimit-type": "UserByModelByMinute",
                "x-ratelimit-timeremaining": "9",
                "x-ms-error-code": "RateLimitReached",
            },
            {
                "error": {
                    "code": "RateLimitReached",
                    "message": "Rate limit of 15 per 60s exceeded for UserByModelByMinute. "
                    "Please wait 9 seconds before retrying.",
                    "details": "Rate limit of 15 per 60s exceeded for UserByModelByMinute. "
                    "Please wait 9 seconds before retrying.",
                }
            },
        ),
        (
            "rate_limit_minute",
            {"retry_after": 3, "limit": 24, "ratelimit_type": "UserByMinute"},
            429,
            {"retry-after": "3", "x-ratelimit-type": "UserByMinute"},
            None,
        ),
        (
            "rate_limit_day",
            {},
            429,
            {
                "retry-after": "5631",
                "x-ratelimit-type": "UserByModelByDay",
                "x-ratelimit-timeremaining": "5631",
                "x-ms-error-code": "RateLimitReached",
            },
            None,
        ),
        (
            "rate_limit_concurrency",
            {},
            429,
            {
                "retry-after": "0",
                "x-ratelimit-type": "UserConcurrentRequests",
                "x-ms-error-code": "RateLimitReached",
            },
            None,
        ),
        ("server_error", {}, 500, {"content-type": "application/json"}, None),
        (
            "retired_410",
            {},
            410,
            {},
            {
                "error": {
                    "code": "github_models_retirement_brownout",
                    "message": "GitHub Models is temporarily unavailable as part of a scheduled "
                    "retirement brownout.",
                }
            },
        ),
        ("retired_403", {}, 403, RETIREMENT_HEADERS, None),
        ("retired_404", {}, 404, RETIREMENT_HEADERS, None),
        ("prompt_filter", {}, 400, {}, None),
    ],
)
def test_fault_answers_with_the_real_status_headers_and_body(
    fake: FakeGitHubModels,
    name: str,
    params: dict[str, Any],
    status: int,
    headers: dict[str, str],
    body: Any,
) -> None:
    fake.fail(name, **params)
    resp = call(fake, CHAT, chat())
    assert resp.status == status
    for key, value in headers.items():
        assert resp.headers[key] == value
    if body is not None:
        assert resp.json() == body
    assert fake.last_request is not None and fake.last_request.status == status
    assert call(fake, CHAT, chat()).status == 200  # one time only


def test_rate_limit_day_and_concurrency_messages(fake: FakeGitHubModels) -> None:
    fake.fail("rate_limit_day")
    fake.fail("rate_limit_concurrency")
    assert call(fake, CHAT, chat()).json()["error"]["message"] == (
        "Rate limit of 50 per 86400s exceeded for UserByModelByDay. "
        "Please wait 5631 seconds before retrying."
    )
    assert call(fake, CHAT, chat()).json()["error"]["message"] == (
        "Rate limit of 2 per 0s exceeded for UserConcurrentRequests. "
        "Please wait 0 seconds before retrying."
    )


def test_model_format_fault_answers_text_plain(fake: FakeGitHubModels) -> None:
    fake.fail("model_format")
    resp = call(fake, CHAT, chat())
    assert (resp.status, resp.headers["content-type"]) == (400, "text/plain; charset=utf-8")
    assert resp.body.startswith(b"Model not found; expected format:")


def test_retired_403_has_an_empty_body_and_a_deprecation_link(fake: FakeGitHubModels) -> None:
    fake.fail("retired_403")
    resp = call(fake, CHAT, chat())
    assert resp.body == b""
    assert 'rel="deprecation"' in resp.headers["link"]
    assert "github-models-is-being-fully-retired" in resp.headers["link"]


def test_prompt_filter_fault_is_the_azure_content_filter_error(fake: FakeGitHubModels) -> None:
    fake.fail("prompt_filter")
    error = call(fake, CHAT, chat()).json()["error"]
    assert error["code"] == "content_filter"
    assert error["status"] == 400
    assert error["innererror"]["code"] == "ResponsibleAIPolicyViolation"


@pytest.mark.parametrize(
    ("status", "marker"), [(502, b"<html>"), (503, b"upstream"), (504, b"<html>")]
)
def test_gateway_errors_are_not_json(fake: FakeGitHubModels, status: int, marker: bytes) -> None:
    fake.fail("server_error", status=status)
    resp = call(fake, CHAT, chat())
    assert resp.status == status
    assert marker in resp.body


def test_faults_come_before_authentication(fake: FakeGitHubModels) -> None:
    fake.fail("unauthorized")
    assert (
        call(fake, CHAT, chat(), token=None).json()["error"]["message"].startswith("The `models`")
    )


def test_fault_times_and_forever(fake: FakeGitHubModels) -> None:
    fake.fail("server_error", times=2)
    assert [call(fake, CHAT, chat()).status for _ in range(3)] == [500, 500, 200]
    fake.fail("bad_credentials", times=None)
    assert [call(fake, CHAT, chat()).status for _ in range(3)] == [401, 401, 401]
    fake.reset()
    assert call(fake, CHAT, chat()).status == 200


def test_fail_rejects_unknown_names_and_parameters(fake: FakeGitHubModels) -> None:
    assert "rate_limit_minute" in FAULTS and "stream_cut" in FAULTS
    with pytest.raises(ValueError, match="unknown fault"):
        fake.fail("nope")
    with pytest.raises(TypeError, match="retry_after"):
        fake.fail("rate_limit_minute", retry_afterr=1)
    with pytest.raises(ValueError):
        fake.fail("server_error", times=0)


def test_disconnect_fault_closes_without_an_answer(fake: FakeGitHubModels) -> None:
    fake.fail("disconnect")
    with pytest.raises(http.client.RemoteDisconnected):
        call(fake, CHAT, chat())
    assert fake.requests[-1].status == 0
    assert call(fake, CHAT, chat()).status == 200


def test_timeout_fault_outlasts_the_client_read_timeout(fake: FakeGitHubModels) -> None:
    fake.fail("timeout", seconds=0.5)
    conn = connect(fake, timeout=0.1)
    with pytest.raises(TimeoutError):
        send(conn, CHAT, chat())
    conn.close()


def test_timeout_fault_then_answers_normally(fake: FakeGitHubModels) -> None:
    fake.fail("timeout", seconds=0.05)
    start = time.perf_counter()
    assert call(fake, CHAT, chat()).status == 200
    assert time.perf_counter() - start >= 0.05


def test_retire_answers_github_routes_while_successors_keep_working(fake: FakeGitHubModels) -> None:
    fake.retire("410")
    assert call(fake, CHAT, chat()).status == 410
    assert call(fake, "/catalog/models", method="GET").status == 410
    assert call(fake, "/v1/chat/completions", chat()).status == 200
    assert call(fake, "/models/chat/completions?api-version=1", chat()).status == 200
    fake.retire("404")
    resp = call(
        fake, fake.org_url("acme").removeprefix(fake.base_url) + "/chat/completions", chat()
    )
    assert resp.status == 404 and resp.headers["sunset"] == RETIREMENT_HEADERS["sunset"]
    with pytest.raises(ValueError):
        fake.retire("500")  # type: ignore[arg-type]
    fake.reset()
    assert call(fake, CHAT, chat()).status == 200


def test_reset_clears_the_log_and_queues(fake: FakeGitHubModels) -> None:
    fake.reply("scripted")
    fake.fail("server_error")
    call(fake, CHAT, chat())
    fake.reset()
    assert fake.requests == [] and fake.last_request is None
    assert call(fake, CHAT, chat("x")).json()["choices"][0]["message"]["content"] == "Echo: x"


# -- streams ---------------------------------------------------------------------------


def test_stream_follows_the_github_sequence(fake: FakeGitHubModels) -> None:
    resp = call(fake, CHAT, chat("one two three four five six seven", stream=True))
    assert resp.status == 200
    assert resp.headers["content-type"] == "text/event-stream"
    assert resp.headers["transfer-encoding"] == "chunked"
    evts = events(resp.body)
    first, role, *middle, final, done = evts
    assert first["choices"] == [] and "model" not in first
    assert (first["created"], first["id"], first["object"]) == (0, "", "")
    assert first["prompt_filter_results"][0]["prompt_index"] == 0
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert len(middle) >= 3
    for chunk in middle:
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "gpt-4o-mini-2024-07-18"
        assert chunk["id"] and chunk["created"] and chunk["system_fingerprint"]
        choice = chunk["choices"][0]
        assert choice["finish_reason"] is None and choice["logprobs"] is None
        assert choice["content_filter_results"]["violence"]["filtered"] is False
    assert any("obfuscation" in chunk for chunk in middle)
    assert text_of(middle) == "Echo: one two three four five six seven"
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["choices"][0]["delta"] == {"content": None}
    assert final["usage"]["total_tokens"] > 0
    assert done == "[DONE]"
    assert len(fake.last_request.chunk_times) == len(middle)  # type: ignore[union-attr]


def test_azure_stream_style_first_chunk_has_an_empty_model() -> None:
    with FakeGitHubModels(stream_style="azure") as fake:
        first = events(call(fake, CHAT, chat(stream=True)).body)[0]
    assert first["model"] == "" and first["choices"] == []


def test_openai_stream_style_puts_usage_on_a_last_empty_chunk() -> None:
    with FakeGitHubModels(stream_style="openai") as fake:
        plain = events(call(fake, CHAT, chat(stream=True)).body)
        with_usage = events(
            call(fake, CHAT, chat(stream=True, stream_options={"include_usage": True})).body
        )
    assert "prompt_filter_results" not in plain[0]
    assert plain[0]["choices"][0]["delta"]["role"] == "assistant"
    assert plain[-2]["choices"][0]["finish_reason"] == "stop" and "usage" not in plain[-2]
    assert with_usage[-2]["choices"] == [] and with_usage[-2]["usage"]["total_tokens"] > 0
    assert with_usage[-3]["choices"][0]["finish_reason"] == "stop"


def test_scripted_chunks_are_streamed_as_given(fake: FakeGitHubModels) -> None:
    fake.reply(None, chunks=["Hel", "lo", "!"])
    evts = events(call(fake, CHAT, chat(stream=True)).body)
    pieces = [e["choices"][0]["delta"]["content"] for e in evts[2:-2]]
    assert pieces == ["Hel", "lo", "!"]


def test_stream_keeps_the_connection_alive(fake: FakeGitHubModels) -> None:
    conn = connect(fake)
    try:
        assert events(send(conn, CHAT, chat(stream=True)).body)[-1] == "[DONE]"
        assert send(conn, CHAT, chat()).status == 200
        assert send(conn, CHAT, chat(stream=True)).status == 200
    finally:
        conn.close()


def test_chunk_delay_spaces_the_events() -> None:
    with FakeGitHubModels(chunk_delay=0.01) as fake:
        call(fake, CHAT, chat("a b c d e f", stream=True))
        times = fake.last_request.chunk_times  # type: ignore[union-attr]
    assert all(later - earlier >= 0.009 for earlier, later in itertools.pairwise(times))


def test_stream_cut_drops_the_connection_mid_stream(fake: FakeGitHubModels) -> None:
    fake.fail("stream_cut", after=2)
    conn = connect(fake)
    conn.request(
        "POST",
        CHAT,
        body=json.dumps(chat("a b c d e f g h i j", stream=True)),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    resp = conn.getresponse()
    assert resp.status == 200
    with pytest.raises(http.client.IncompleteRead) as excinfo:
        resp.read()
    conn.close()
    got = events(excinfo.value.partial)
    assert len(got) == 4  # filter chunk, role chunk, two content chunks
    assert len(fake.last_request.chunk_times) == 2  # type: ignore[union-attr]


def test_stream_cut_on_a_plain_request_disconnects(fake: FakeGitHubModels) -> None:
    fake.fail("stream_cut")
    with pytest.raises(http.client.RemoteDisconnected):
        call(fake, CHAT, chat())


def test_stream_no_finish_ends_cleanly_without_a_finish_reason(fake: FakeGitHubModels) -> None:
    fake.fail("stream_no_finish")
    evts = events(call(fake, CHAT, chat("a b c", stream=True)).body)
    assert evts[-1] == "[DONE]"
    assert all(c.get("finish_reason") is None for e in evts[:-1] for c in e["choices"])
    assert text_of(evts) == "Echo: a b c"
    fake.fail("stream_no_finish")
    assert call(fake, CHAT, chat()).json()["choices"][0]["finish_reason"] is None


def test_stream_error_event_arrives_mid_stream(fake: FakeGitHubModels) -> None:
    fake.fail("stream_error_event", after=1, message="boom")
    evts = events(call(fake, CHAT, chat("a b c d e", stream=True)).body)
    assert evts[-1] == {
        "error": {"code": "InternalServerError", "message": "boom", "details": "boom"}
    }
    assert "[DONE]" not in evts
    assert text_of(evts[:-1]) == "Echo:"
    fake.fail("stream_error_event")
    assert call(fake, CHAT, chat()).status == 500


def test_content_filter_fault_streamed_and_plain(fake: FakeGitHubModels) -> None:
    fake.fail("content_filter", text="Partial answer")
    evts = events(call(fake, CHAT, chat(stream=True)).body)
    final = evts[-2]["choices"][0]
    assert final["finish_reason"] == "content_filter"
    assert final["content_filter_results"]["violence"]["filtered"] is True
    assert text_of(evts) == "Partial answer"
    fake.fail("content_filter", category="hate")
    choice = call(fake, CHAT, chat()).json()["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] is None
    assert choice["content_filter_results"]["hate"] == {"filtered": True, "severity": "high"}


# -- enforced limits -------------------------------------------------------------------


def test_rpm_uses_a_sliding_window_on_the_injected_clock() -> None:
    now = [1000.0]
    with FakeGitHubModels(rpm=2, clock=lambda: now[0]) as fake:
        assert call(fake, CHAT, chat()).status == 200
        now[0] += 20
        assert call(fake, CHAT, chat()).status == 200
        refused = call(fake, CHAT, chat())
        assert refused.status == 429
        assert refused.headers["retry-after"] == "40"
        assert refused.headers["x-ratelimit-timeremaining"] == "40"
        assert refused.headers["x-ratelimit-type"] == "UserByModelByMinute"
        assert "Rate limit of 2 per 60s" in refused.json()["error"]["message"]
        assert call(fake, CHAT, chat(model="openai/gpt-4o")).status == 200  # per model
        assert call(fake, CHAT, chat(), token="someone-else").status == 200  # per token
        now[0] += 40
        assert call(fake, CHAT, chat()).status == 200


def test_daily_quota_on_the_injected_clock() -> None:
    now = [0.0]
    with FakeGitHubModels(daily=1, clock=lambda: now[0]) as fake:
        assert call(fake, CHAT, chat()).status == 200
        now[0] += 3600
        refused = call(fake, CHAT, chat())
        assert (refused.status, refused.headers["retry-after"]) == (429, str(86400 - 3600))
        assert refused.headers["x-ratelimit-type"] == "UserByModelByDay"
        now[0] += 86400
        assert call(fake, CHAT, chat()).status == 200


def _wait_for(predicate: Any, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.002)


def test_concurrency_refuses_requests_beyond_the_cap() -> None:
    with FakeGitHubModels(concurrency=1, latency=0.2) as fake:
        results: list[int] = []
        worker = threading.Thread(target=lambda: results.append(call(fake, CHAT, chat()).status))
        worker.start()
        _wait_for(lambda: fake.in_flight == 1)
        refused = call(fake, CHAT, chat())
        worker.join()
        assert results == [200]
        assert refused.status == 429
        assert refused.headers["retry-after"] == "0"
        assert refused.headers["x-ratelimit-type"] == "UserConcurrentRequests"
        fake.latency = 0
        assert call(fake, CHAT, chat()).status == 200


def test_a_stream_is_in_flight_until_it_ends() -> None:
    with FakeGitHubModels(concurrency=1, chunk_delay=0.03) as fake:
        conn = connect(fake)
        conn.request(
            "POST",
            CHAT,
            body=json.dumps(chat("a b c d e f g", stream=True)),
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        resp = conn.getresponse()
        assert resp.status == 200
        assert fake.in_flight == 1
        assert call(fake, CHAT, chat()).status == 429
        resp.read()
        conn.close()
        assert fake.in_flight == 0
        assert call(fake, CHAT, chat()).status == 200


# -- lifecycle -------------------------------------------------------------------------


def test_stop_is_prompt_with_an_open_keep_alive_connection() -> None:
    fake = FakeGitHubModels().start()
    conn = connect(fake)
    assert send(conn, CHAT, chat()).status == 200  # the connection stays open
    start = time.perf_counter()
    fake.stop()
    assert time.perf_counter() - start < 1.0
    conn.close()
    fake.stop()  # idempotent


def test_stop_cuts_a_long_scripted_wait() -> None:
    fake = FakeGitHubModels().start()
    fake.fail("timeout", seconds=30)
    outcome: list[BaseException] = []

    def client() -> None:
        try:
            call(fake, CHAT, chat())
        except (OSError, http.client.HTTPException) as exc:
            outcome.append(exc)

    worker = threading.Thread(target=client)
    worker.start()
    _wait_for(lambda: len(fake.requests) == 1)
    start = time.perf_counter()
    fake.stop()
    worker.join(timeout=2)
    assert not worker.is_alive()
    assert time.perf_counter() - start < 1.0
    assert len(outcome) == 1  # the client saw the connection close, not an answer


# -- python -m sigla.testing -------------------------------------------------------------


def test_cli_rejects_an_unknown_fault_in_one_line_naming_the_valid_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert double_main(["--port", "0", "--fail", "rate_limit_day", "--fail", "nope"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "unknown fault 'nope'" in err and all(name in err for name in FAULTS)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("server_error:0", "TIMES must be a positive integer"),
        ("server_error,bogus=1", "unexpected parameters ['bogus']"),
        ("server_error,status", "expected PARAM=VALUE"),
    ],
)
def test_cli_rejects_a_malformed_fault_spec(
    capsys: pytest.CaptureFixture[str], spec: str, message: str
) -> None:
    assert double_main(["--port", "0", "--fail", spec]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err


def test_cli_on_a_busy_port_says_so_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert double_main(["--port", str(port)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "already in use" in err and "--port 0" in err


def test_cli_serves_the_scripted_faults_in_order() -> None:
    command = [sys.executable, "-m", "sigla.testing", "--port", "0", "--chunk-delay", "0"]
    command += ["--fail", "rate_limit_day", "--fail", "server_error:2,status=503"]
    server = subprocess.Popen(
        interruptible(command), stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1]
    )
    try:
        assert server.stdout is not None
        url = re.search(r"http://\S+/inference", server.stdout.readline())
        assert url, "no banner"
        banner = server.stdout.readline() + server.stdout.readline()
        assert "rate_limit_day (x1); server_error (x2, status=503)" in banner
        parts = urlsplit(url.group(0))
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        statuses = [send(conn, CHAT, chat()).status for _ in range(4)]
        conn.close()
        assert statuses == [429, 503, 503, 200]
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=5) == 0  # Ctrl-C is a clean stop, not a traceback


def test_azure_route_answers_rate_limits_and_bad_keys_as_azure_does():
    import http.client

    from sigla.testing import FakeGitHubModels

    with FakeGitHubModels() as fake:
        fake.fail("rate_limit_minute", retry_after=2.25)
        host, port = fake.base_url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        headers = {"Authorization": "Bearer k", "Content-Type": "application/json"}
        conn.request(
            "POST", "/models/chat/completions?api-version=2024-05-01-preview", body, headers
        )
        response = conn.getresponse()
        payload = json.loads(response.read())
        assert response.status == 429
        assert response.getheader("retry-after") == "3"
        assert response.getheader("retry-after-ms") == "2250"
        assert response.getheader("x-ratelimit-remaining-requests") == "0"
        assert payload["error"]["code"] == "429"
        conn.request(
            "POST",
            "/models/chat/completions?api-version=2024-05-01-preview",
            body,
            {"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        assert response.status == 401
        assert "invalid subscription key" in json.loads(response.read())["error"]["message"]
