"""The team server (sigla.server) against the loopback double: its API, errors and limits.

FastAPI's TestClient drives the app in-process where a socket adds nothing; the stream and
concurrency tests run a real uvicorn on 127.0.0.1 (tests/live_server.py).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import TOKEN
from fastapi.testclient import TestClient
from live_server import parse_sse, server_config, serving

from sigla.llm import RateLimits
from sigla.server import ApiKeys, ServerConfig, create_app
from sigla.testing import FakeGitHubModels

MODEL = "openai/gpt-4o-mini"
OTHER = "meta/Llama-3.3-70B-Instruct"


def config(fake: FakeGitHubModels, **given: Any) -> ServerConfig:
    """A server in front of ``fake`` serving MODEL unless ``models`` are given."""
    given.setdefault("models", (MODEL,))
    return server_config(fake.url, **given)


@pytest.fixture
def fake() -> Iterator[FakeGitHubModels]:
    with FakeGitHubModels(tokens=[TOKEN]) as double:
        yield double


@pytest.fixture
def client(fake: FakeGitHubModels) -> Iterator[TestClient]:
    with TestClient(create_app(config(fake))) as test_client:
        yield test_client


def chat_requests(fake: FakeGitHubModels) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/chat/completions")]


# ---------------------------------------------------------------- POST /llm


def test_the_seeds_query_form_still_works(client: TestClient, fake: FakeGitHubModels) -> None:
    response = client.post("/llm", params={"prompt": "What is SIGLA?", "temperature": 0.2})
    assert response.status_code == 200
    body = response.json()
    assert body["answer"] == "Echo: What is SIGLA?"
    assert body["finish_reason"] == "stop"
    assert set(body["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert body["usage"]["total_tokens"] > 0
    sent = chat_requests(fake)[-1].body
    assert sent["temperature"] == 0.2
    assert sent["model"] == MODEL


def test_a_json_body_carries_system_history_and_options(
    client: TestClient, fake: FakeGitHubModels
) -> None:
    history = [
        {"role": "user", "content": "Remember: blue."},
        {"role": "assistant", "content": "Noted."},
    ]
    response = client.post(
        "/llm",
        json={
            "prompt": "Which colour?",
            "system": "Be brief.",
            "messages": history,
            "max_tokens": 20,
            "temperature": 0,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["answer"] == "Echo: Which colour?"
    sent = chat_requests(fake)[-1].body
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [
        ("system", "Be brief."),
        ("user", "Remember: blue."),
        ("assistant", "Noted."),
        ("user", "Which colour?"),
    ]
    assert sent["max_tokens"] == 20
    assert sent["temperature"] == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"json": {}}, None),
        ({"json": {"prompt": ""}}, None),
        ({"json": {"prompt": "   "}}, None),
        ({"json": {"prompt": "hi", "temperature": 3}}, "temperature"),
        ({"json": {"prompt": "hi", "max_tokens": 0}}, "max_tokens"),
        ({"json": {"prompt": "hi", "colour": "blue"}}, "colour"),
        ({"json": {"messages": [{"role": "tool", "content": "x"}]}}, "messages.0.role"),
        ({"params": {"prompt": ""}}, None),
        ({"params": {"prompt": "hi", "temperature": "hot"}}, "temperature"),
        ({"params": {"prompt": "hi"}, "json": {"prompt": "hi"}}, None),
        ({}, None),
    ],
)
def test_bad_requests_are_422_naming_the_field_and_send_nothing(
    client: TestClient, fake: FakeGitHubModels, kwargs: dict[str, Any], field: str | None
) -> None:
    response = client.post("/llm", **kwargs)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    if field is not None:
        assert field in error["message"]
    assert chat_requests(fake) == []


def test_only_served_models_may_be_asked_for(fake: FakeGitHubModels) -> None:
    app = create_app(config(fake, models=(MODEL, OTHER)))
    with TestClient(app) as client:
        assert client.post("/llm", json={"prompt": "a"}).json()["answer"] == "Echo: a"
        asked = client.post("/llm", json={"prompt": "b", "model": OTHER.upper()})
        assert asked.status_code == 200
        refused = client.post("/llm", json={"prompt": "c", "model": "openai/gpt-5"})
        assert refused.status_code == 404
        message = refused.json()["error"]["message"]
        assert MODEL in message and OTHER in message
        assert [r.body["model"] for r in chat_requests(fake)] == [MODEL, OTHER]
        pool = app.state.sigla.pool
        first = pool.existing(MODEL)
        client.post("/llm", json={"prompt": "d"})
        assert pool.existing(MODEL) is first  # one shared client per served model
        assert len(pool.clients()) == 2


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("fault", "params", "status", "kind"),
    [
        ("rate_limit_minute", {"retry_after": 42}, 429, "rate_limited"),
        ("unauthorized", {}, 502, "upstream_credential_rejected"),
        ("no_access", {}, 502, "upstream_credential_rejected"),
        ("unknown_model", {}, 404, "model_not_found"),
        ("tokens_limit", {}, 413, "input_too_large"),
        ("retired_410", {}, 502, "service_retired"),
    ],
)
def test_upstream_errors_map_to_statuses(
    client: TestClient,
    fake: FakeGitHubModels,
    fault: str,
    params: dict[str, Any],
    status: int,
    kind: str,
) -> None:
    fake.fail(fault, **params)
    for route, body in (("/llm", {"prompt": "hi"}), ("/llm/stream", {"prompt": "hi"})):
        fake.fail(fault, **params)
        response = client.post(route, json=body)
        assert response.status_code == status, (route, response.text)
        error = response.json()["error"]
        assert error["type"] == kind
        assert TOKEN not in response.text
        if status == 429:
            assert response.headers["retry-after"] == "42"
        if kind == "upstream_credential_rejected":
            assert "server's credential" in error["message"]
        if kind == "service_retired":
            assert "retired" in error["message"].lower()


def test_upstream_server_errors_are_502_after_the_retries(
    client: TestClient, fake: FakeGitHubModels
) -> None:
    fake.fail("server_error", times=None)
    response = client.post("/llm", json={"prompt": "hi"})
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "upstream_error"
    assert len(chat_requests(fake)) == 4  # the client's retries happened first


def test_an_upstream_timeout_is_504(fake: FakeGitHubModels) -> None:
    app = create_app(config(fake, client_options={"timeout": 0.3}))
    fake.fail("timeout", seconds=5)
    with TestClient(app) as client:
        response = client.post("/llm", json={"prompt": "hi"})
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "upstream_timeout"


def test_no_server_credential_is_503_on_calls_and_readyz(fake: FakeGitHubModels) -> None:
    cfg = ServerConfig(models=(MODEL,), client_options={"endpoint": fake.url})
    with TestClient(create_app(cfg)) as client:
        for response in (client.post("/llm", json={"prompt": "hi"}), client.get("/readyz")):
            assert response.status_code == 503
            assert response.json()["error"]["type"] == "not_configured"
            assert "retry-after" in response.headers
        assert client.get("/healthz").json() == {"status": "ok"}
    assert chat_requests(fake) == []


def test_a_prompt_beyond_the_limit_is_413_before_any_call(fake: FakeGitHubModels) -> None:
    with TestClient(create_app(config(fake, max_prompt_chars=100))) as client:
        response = client.post("/llm", json={"prompt": "x" * 101})
        assert response.status_code == 413
        assert response.json()["error"]["type"] == "prompt_too_large"
        history = {"messages": [{"role": "user", "content": "y" * 60}], "prompt": "z" * 60}
        assert client.post("/llm", json=history).status_code == 413
        assert client.post("/llm", json={"prompt": "x" * 100}).status_code == 200
    assert len(chat_requests(fake)) == 1


def test_a_body_beyond_the_limit_is_413(fake: FakeGitHubModels) -> None:
    with TestClient(create_app(config(fake, max_body_bytes=2000))) as client:
        response = client.post(
            "/llm",
            content=json.dumps({"prompt": "x" * 5000}),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 413
        assert response.json()["error"]["type"] == "request_too_large"
    assert chat_requests(fake) == []


# ---------------------------------------------------------------- access control


def test_with_keys_every_api_route_needs_one(fake: FakeGitHubModels) -> None:
    keys = ApiKeys(("old-key-0123456789", "new-key-0123456789"))
    with TestClient(create_app(config(fake, api_keys=keys))) as client:
        assert client.get("/healthz").status_code == 200
        for method, route in (
            ("POST", "/llm"),
            ("POST", "/llm/stream"),
            ("POST", "/v1/chat/completions"),
            ("GET", "/v1/models"),
            ("GET", "/models"),
            ("GET", "/readyz"),
            ("GET", "/metrics"),
        ):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
                response = client.request(method, route, json={"prompt": "hi"}, headers=headers)
                assert response.status_code == 401, (route, headers)
                assert response.headers["www-authenticate"] == "Bearer"
        for key in ("old-key-0123456789", "new-key-0123456789"):  # a rotation: both work
            response = client.post(
                "/llm", json={"prompt": "hi"}, headers={"Authorization": f"Bearer {key}"}
            )
            assert response.status_code == 200
    assert len(chat_requests(fake)) == 2


def test_keys_come_from_the_environment() -> None:
    keys = ApiKeys.from_env({"SIGLA_API_KEY": "a-key", "SIGLA_API_KEYS": "b-key, c-key,"})
    assert len(keys) == 3
    assert keys.accepts("b-key") and keys.accepts("c-key") and keys.accepts("a-key")
    assert not keys.accepts("d-key") and not keys.accepts("")
    assert "key" not in repr(keys).replace("keys", "")
    assert not ApiKeys.from_env({})


# ---------------------------------------------------------------- streams


def test_llm_stream_sends_deltas_then_done(client: TestClient, fake: FakeGitHubModels) -> None:
    with client.stream("POST", "/llm/stream", json={"prompt": "one two three"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(response.read().decode())
    deltas = [json.loads(data)["delta"] for name, data in events if name == "message"]
    assert "".join(deltas) == "Echo: one two three"
    assert len(deltas) > 1
    name, data = events[-1]
    assert name == "done"
    done = json.loads(data)
    assert done["finish_reason"] == "stop"
    assert done["usage"]["total_tokens"] > 0


@pytest.mark.parametrize("fault", ["stream_cut", "stream_error_event", "stream_no_finish"])
def test_a_stream_failing_midway_ends_with_an_error_event(
    client: TestClient, fake: FakeGitHubModels, fault: str
) -> None:
    fake.fail(fault)
    with client.stream("POST", "/llm/stream", json={"prompt": "one two three four"}) as response:
        assert response.status_code == 200
        events = parse_sse(response.read().decode())
    assert events[0][0] == "message"  # the text before the failure was delivered
    name, data = events[-1]
    assert name == "error"
    assert json.loads(data)["error"]["type"] == "upstream_error"
    assert all(name != "done" for name, _ in events)


@pytest.mark.parametrize("route", ["/llm/stream", "/v1/chat/completions"])
def test_a_client_leaving_a_stream_closes_the_upstream_request(
    fake: FakeGitHubModels, route: str
) -> None:
    fake.chunk_delay = 0.2
    long_prompt = " ".join(f"word{i}" for i in range(200))  # ~40 s of chunks
    body: dict[str, Any] = {"prompt": long_prompt}
    if route.startswith("/v1"):
        body = {"messages": [{"role": "user", "content": long_prompt}], "stream": True}
    with serving(create_app(config(fake))) as url:
        with httpx.Client(base_url=url, timeout=10) as http:
            with http.stream("POST", route, json=body) as response:
                lines = response.iter_lines()
                assert next(lines).startswith("data: ")
                assert fake.in_flight == 1
            left = time.monotonic()  # the response (and its connection) is closed here
        while fake.in_flight and time.monotonic() - left < 1.0:
            time.sleep(0.01)
        assert fake.in_flight == 0, "the upstream stream was still open a second later"
        stream = chat_requests(fake)[-1]
        assert stream.finished_at is None  # cut, not completed


# ---------------------------------------------------------------- concurrency


def test_requests_beyond_the_upstream_concurrency_wait_their_turn(
    fake: FakeGitHubModels,
) -> None:
    fake.concurrency = 2
    fake.latency = 0.05
    cfg = config(fake, client_options={"limits": RateLimits(concurrent_requests=2)})
    with serving(create_app(cfg)) as url:
        statuses: list[int] = []

        def call(i: int) -> None:
            with httpx.Client(base_url=url, timeout=30) as http:
                statuses.append(http.post("/llm", json={"prompt": f"n{i}"}).status_code)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert statuses == [200] * 16
    assert fake.max_in_flight <= 2
    assert all(r.status == 200 for r in chat_requests(fake))


def test_a_full_queue_answers_503_with_retry_after(fake: FakeGitHubModels) -> None:
    fake.latency = 1.0
    cfg = config(
        fake,
        queue_timeout=0.1,
        client_options={"limits": RateLimits(concurrent_requests=1)},
    )
    with serving(create_app(cfg)) as url:
        results: list[httpx.Response] = []

        def call() -> None:
            with httpx.Client(base_url=url, timeout=30) as http:
                results.append(http.post("/llm", json={"prompt": "hi"}))

        threads = [threading.Thread(target=call) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 503]
    busy = next(r for r in results if r.status_code == 503)
    assert busy.json()["error"]["type"] == "server_busy"
    assert int(busy.headers["retry-after"]) >= 1
    assert len(chat_requests(fake)) == 1


# ---------------------------------------------------------------- health, models, metrics


def test_models_lists_the_served_models_and_a_cached_catalog(
    client: TestClient, fake: FakeGitHubModels
) -> None:
    first = client.get("/models").json()
    assert first["served"] == [MODEL] and first["default"] == MODEL
    assert any(entry["id"] == MODEL for entry in first["catalog"])
    client.get("/models")
    assert sum(r.path == "/catalog/models" for r in fake.requests) == 1
    v1 = client.get("/v1/models").json()
    assert v1["object"] == "list"
    assert [m["id"] for m in v1["data"]] == [MODEL]


def test_readyz_reports_ready(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert response.json()["limiter"] == "this process"


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_upstream_429s_retries_and_tokens(
    client: TestClient, fake: FakeGitHubModels
) -> None:
    client.post("/llm", json={"prompt": "hi"})
    fake.fail("rate_limit_minute", retry_after=1)  # waited (no-op sleep) and retried
    client.post("/llm", json={"prompt": "again"})
    client.post("/llm", json={})
    text = client.get("/metrics").text
    assert _metric(text, "sigla_server_requests_total", route="/llm", status="200") == 2
    assert _metric(text, "sigla_server_requests_total", route="/llm", status="422") == 1
    assert _metric(text, "sigla_upstream_rate_limited_total", model=MODEL) == 1
    assert _metric(text, "sigla_upstream_retries_total", model=MODEL) == 1
    assert _metric(text, "sigla_upstream_requests_total", model=MODEL) == 3
    assert _metric(text, "sigla_upstream_prompt_tokens_total", model=MODEL) > 0
    assert _metric(text, "sigla_server_request_duration_seconds_count", route="/llm") == 3
    assert _metric(text, "sigla_server_requests_in_flight") == 1  # this scrape


# ---------------------------------------------------------------- secrets


def test_the_credential_is_in_no_response_header_or_log_line(
    fake: FakeGitHubModels, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: sigla's, httpx's, uvicorn's, the SDK's
    api_key = "caller-key-8d1f0e6a2b"
    app = create_app(config(fake, api_keys=ApiKeys((api_key,)), log_prompts=True))
    auth = {"Authorization": f"Bearer {api_key}"}
    seen: list[str] = []
    with TestClient(app) as client:

        def keep(response: httpx.Response) -> None:
            seen.append(response.text)
            seen.extend(f"{k}: {v}" for k, v in response.headers.items())

        for fault in (None, "unauthorized", "rate_limit_minute", "server_error", "retired_410"):
            if fault:
                fake.fail(fault, times=None if fault == "server_error" else 1)
            keep(client.post("/llm", json={"prompt": "hi"}, headers=auth))
            keep(client.post("/llm/stream", json={"prompt": "hi"}, headers=auth))
            body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
            keep(client.post("/v1/chat/completions", json=body, headers=auth))
            fake.reset()
        for route in ("/readyz", "/models", "/metrics", "/v1/models", "/openapi.json"):
            keep(client.get(route, headers=auth))
        keep(client.get("/healthz"))
    assert len(seen) > 20
    records = [record.getMessage() for record in caplog.records]
    assert any("POST /llm" in line for line in records)
    for text in seen + records:
        assert TOKEN not in text
        assert api_key not in text


def test_readyz_checks_the_shared_limiter_store(fake: FakeGitHubModels, tmp_path: Any) -> None:
    shared = config(fake, client_options={"limiter": f"sqlite:///{tmp_path}/limits.db"})
    with TestClient(create_app(shared)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["limiter"].endswith("limits.db")
        assert client.post("/llm", json={"prompt": "hi"}).status_code == 200
    down = config(fake, client_options={"limiter": "redis://:hunter2pass@127.0.0.1:1/0"})
    with TestClient(create_app(down)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "not_configured"
        assert "hunter2pass" not in response.text
        call = client.post("/llm", json={"prompt": "hi"})
        assert call.status_code == 503 and "hunter2pass" not in call.text
    assert len(chat_requests(fake)) == 1


# ---------------------------------------------------------------- callers who leave early


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/llm", {"prompt": "hi"}),
        ("/llm/stream", {"prompt": "hi"}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "hi"}], "stream": True},
        ),
    ],
)
def test_a_caller_leaving_before_the_answer_starts_cancels_the_upstream_call(
    fake: FakeGitHubModels, route: str, body: dict[str, Any]
) -> None:
    fake.latency = 8.0  # the model takes 8 s to answer (or to send its first token)
    with serving(create_app(config(fake))) as url:
        with pytest.raises(httpx.ReadTimeout), httpx.Client(timeout=0.5) as http:
            http.post(f"{url}{route}", json=body)
        left = time.monotonic()
        while not chat_requests(fake) and time.monotonic() - left < 2:
            time.sleep(0.01)
        assert chat_requests(fake), "the call never reached the double"
        while fake.in_flight and time.monotonic() - left < 1.5:
            time.sleep(0.01)
        assert fake.in_flight == 0, "the upstream call outlived its caller"
        assert chat_requests(fake)[-1].finished_at is None


def test_a_caller_waiting_for_a_slot_who_leaves_is_never_sent(fake: FakeGitHubModels) -> None:
    fake.latency = 1.5
    cfg = config(fake, client_options={"limits": RateLimits(concurrent_requests=1)})
    with serving(create_app(cfg)) as url:
        first = threading.Thread(
            target=lambda: httpx.post(f"{url}/llm", json={"prompt": "first"}, timeout=10)
        )
        first.start()
        while not chat_requests(fake):
            time.sleep(0.01)
        for _ in range(3):  # queued behind the first, then gone
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(f"{url}/llm", json={"prompt": "late"}, timeout=0.3)
        first.join()
        time.sleep(0.2)  # let the server notice; nothing is expected to arrive
    assert [r.body["messages"][-1]["content"] for r in chat_requests(fake)] == ["first"]


# ---------------------------------------------------------------- hostile callers


def test_unknown_methods_share_one_metric_label(client: TestClient) -> None:
    for i in range(20):
        client.request(f"M{i:04d}XYZ", "/llm")
    text = client.get("/metrics").text
    assert "M0001XYZ" not in text
    assert _metric(text, "sigla_server_requests_total", method="OTHER") == 20


def test_a_chunked_body_is_cut_at_the_limit(fake: FakeGitHubModels) -> None:
    chunk = json.dumps({"prompt": "x" * 4000}).encode()

    def body() -> Iterator[bytes]:  # no Content-Length: sent chunked
        for i in range(0, len(chunk), 500):
            yield chunk[i : i + 500]

    with serving(create_app(config(fake, max_body_bytes=2000))) as url:
        response = httpx.post(
            f"{url}/llm", content=body(), headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"
    assert chat_requests(fake) == []


def test_with_keys_the_schema_needs_one_and_the_docs_are_off(fake: FakeGitHubModels) -> None:
    keys = ApiKeys(("k-0123456789abcdef",))
    with TestClient(create_app(config(fake, api_keys=keys))) as client:
        assert client.get("/openapi.json").status_code == 401
        assert client.get("/docs").status_code == 404
        schema = client.get("/openapi.json", headers={"Authorization": "Bearer k-0123456789abcdef"})
        assert "/v1/chat/completions" in schema.json()["paths"]
    with TestClient(create_app(config(fake))) as client:
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/docs").status_code == 200


# ---------------------------------------------------------------- /v1 requests


def test_v1_accepts_an_assistant_turn_as_the_openai_client_returns_it(
    client: TestClient, fake: FakeGitHubModels
) -> None:
    turn = {
        "role": "assistant",
        "content": "Noted.",
        "refusal": None,
        "annotations": [],
        "audio": None,
        "function_call": None,
        "tool_calls": None,
    }
    body = {
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Remember "},
                    {"type": "text", "text": "blue."},
                ],
            },
            turn,
            {"role": "user", "content": "Which colour?"},
        ]
    }
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    sent = chat_requests(fake)[-1].body["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("system", "Be brief."),
        ("user", "Remember blue."),
        ("assistant", "Noted."),
        ("user", "Which colour?"),
    ]
    for extra in ({"tool_calls": [{"id": "x"}]}, {"refusal": "no"}, {"colour": 1}):
        refused = client.post(
            "/v1/chat/completions",
            json={"messages": [{**turn, **extra}, {"role": "user", "content": "hi"}]},
        )
        assert refused.status_code == 400, extra
        assert refused.json()["error"]["type"] == "invalid_request_error"


def test_an_unreachable_upstream_is_502(fake: FakeGitHubModels) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed
    with TestClient(create_app(config(fake, client_options={"endpoint": closed}))) as client:
        response = client.post("/llm", json={"prompt": "hi"})
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "upstream_unreachable"


def test_a_filtered_prompt_is_400(client: TestClient, fake: FakeGitHubModels) -> None:
    fake.fail("prompt_filter")
    response = client.post("/llm", json={"prompt": "hi"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "content_filtered"


def test_a_declared_length_beyond_the_limit_is_refused_before_the_body_arrives(
    fake: FakeGitHubModels,
) -> None:
    with serving(create_app(config(fake, max_body_bytes=2000))) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{"
            )  # the rest never comes: only a refusal without reading can answer
            raw = b""
            while b"}}" not in raw:  # headers and body may come in separate segments
                piece = sock.recv(65536)
                if not piece:
                    break
                raw += piece
    head = raw.decode("latin-1")
    assert head.startswith("HTTP/1.1 413")
    assert '"code":"request_too_large"' in head.replace(" ", "")
    assert chat_requests(fake) == []
