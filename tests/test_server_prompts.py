"""The server's prompt-file routes (/prompts...) against the loopback double."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TOKEN
from fastapi.testclient import TestClient
from test_server import MODEL, chat_requests, config

from sigla.server import ApiKeys, create_app
from sigla.testing import FakeGitHubModels

GREETING = """\
name: Greeting
description: Greets someone about a topic
model: openai/gpt-4o-mini
modelParameters:
  temperature: 0.3
messages:
  - role: system
    content: You greet {{name}}.
  - role: user
    content: Say hello to {{name}} about {{topic}}.
testData:
  - name: Ada
    topic: engines
  - name: Bob
    topic: boats
evaluators:
  - name: echoes
    string:
      contains: Echo
  - name: mentions-engines
    string:
      contains: engines
"""


@pytest.fixture
def fake() -> Iterator[FakeGitHubModels]:
    with FakeGitHubModels(tokens=[TOKEN]) as double:
        yield double


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "greeting.prompt.yml").write_text(GREETING)
    (folder / "broken.prompt.yml").write_text("name: Broken\nmessages: 12\n")
    (folder / "notes.txt").write_text("not a prompt file")
    (tmp_path / "secret.prompt.yml").write_text(GREETING)  # outside the directory
    return folder


@pytest.fixture
def client(fake: FakeGitHubModels, prompts_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(config(fake, prompts_dir=str(prompts_dir)))) as test_client:
        yield test_client


def test_the_list_names_each_file_and_an_invalid_ones_error(client: TestClient) -> None:
    listed = {p["id"]: p for p in client.get("/prompts").json()["prompts"]}
    assert set(listed) == {"greeting", "broken"}
    assert listed["greeting"]["name"] == "Greeting"
    assert listed["greeting"]["description"] == "Greets someone about a topic"
    assert listed["greeting"]["error"] is None
    assert "messages" in listed["broken"]["error"]
    assert listed["broken"]["error"].startswith("broken.prompt.yml:")  # not where it is


def test_a_file_shows_its_messages_variables_and_tests(client: TestClient) -> None:
    detail = client.get("/prompts/greeting").json()
    assert detail["variables"] == ["name", "topic"]
    assert detail["messages"][1] == {
        "role": "user",
        "content": "Say hello to {{name}} about {{topic}}.",
    }
    assert detail["testData"] == 2
    assert detail["evaluators"] == ["echoes", "mentions-engines"]
    assert detail["modelParameters"] == {"temperature": 0.3}


def test_a_run_renders_sends_and_shows_what_was_sent(
    client: TestClient, fake: FakeGitHubModels
) -> None:
    response = client.post(
        "/prompts/greeting/run", json={"variables": {"name": "Ada", "topic": "{{x}} & <b>"}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"] == "Echo: Say hello to Ada about {{x}} & <b>."
    assert body["messages"][0] == {"role": "system", "content": "You greet Ada."}
    sent = chat_requests(fake)[-1].body
    assert [m["content"] for m in sent["messages"]] == [m["content"] for m in body["messages"]]
    assert sent["temperature"] == 0.3
    assert sent["model"] == MODEL
    assert body["usage"]["total_tokens"] > 0


def test_a_missing_variable_is_422_naming_it_and_sends_nothing(
    client: TestClient, fake: FakeGitHubModels
) -> None:
    response = client.post("/prompts/greeting/run", json={"variables": {"name": "Ada"}})
    assert response.status_code == 422
    assert "{{topic}}" in response.json()["error"]["message"]
    assert response.json()["error"]["message"].startswith("greeting.prompt.yml:")
    assert chat_requests(fake) == []


def test_an_evaluation_reports_each_case_and_the_summary(client: TestClient) -> None:
    report = client.post("/prompts/greeting/eval", json={}).json()
    assert report["name"] == "Greeting"
    cases = report["testResults"]
    assert [c["testCase"]["name"] for c in cases] == ["Ada", "Bob"]
    verdicts = [[r["passed"] for r in c["evaluationResults"]] for c in cases]
    assert verdicts == [[True, True], [True, False]]
    assert report["summary"]["passedTests"] == 1 and report["summary"]["failedTests"] == 1


@pytest.mark.parametrize(
    "ident",
    [
        "secret",
        "..%2Fsecret",
        "../secret",
        "notes",
        "greeting.prompt",
        ".hidden",
        "a%00b",
        "x" * 300,
    ],
)
def test_an_id_that_is_not_a_file_directly_inside_is_refused(
    client: TestClient, ident: str
) -> None:
    for method, route in (("GET", ""), ("POST", "/run"), ("POST", "/eval")):
        response = client.request(method, f"/prompts/{ident}{route}", json={})
        assert response.status_code == 404, (ident, route, response.text)


def test_a_symlink_leading_out_of_the_directory_is_refused(
    client: TestClient, prompts_dir: Path
) -> None:
    os.symlink(prompts_dir.parent / "secret.prompt.yml", prompts_dir / "link.prompt.yml")
    assert client.get("/prompts/link").status_code == 404
    assert "link" not in {p["id"] for p in client.get("/prompts").json()["prompts"]}


def test_an_invalid_file_is_a_422_with_its_error(client: TestClient) -> None:
    response = client.post("/prompts/broken/run", json={"variables": {}})
    assert response.status_code == 422
    assert "messages" in response.json()["error"]["message"]


def test_the_prompt_routes_need_the_key(fake: FakeGitHubModels, prompts_dir: Path) -> None:
    keys = ApiKeys(("k-0123456789abcdef",))
    app = create_app(config(fake, prompts_dir=str(prompts_dir), api_keys=keys))
    with TestClient(app) as client:
        assert client.get("/prompts").status_code == 401
        assert client.post("/prompts/greeting/run", json={}).status_code == 401
        ok = client.get("/prompts", headers={"Authorization": "Bearer k-0123456789abcdef"})
        assert ok.status_code == 200


def test_a_model_the_server_does_not_serve_is_replaced_by_its_default(
    fake: FakeGitHubModels, prompts_dir: Path
) -> None:
    (prompts_dir / "other.prompt.yml").write_text(
        GREETING.replace("openai/gpt-4o-mini", "openai/gpt-5")
    )
    app = create_app(config(fake, prompts_dir=str(prompts_dir)))
    with TestClient(app) as client:
        body = {"variables": {"name": "A", "topic": "B"}}
        assert client.post("/prompts/other/run", json=body).status_code == 200
        asked = client.post("/prompts/other/run", json={**body, "model": "openai/gpt-5"})
        assert asked.status_code == 404
    assert [r.body["model"] for r in chat_requests(fake)] == [MODEL]


def test_the_page_and_its_assets_are_open_revalidated_and_unframeable(
    fake: FakeGitHubModels, prompts_dir: Path
) -> None:
    keys = ApiKeys(("k-0123456789abcdef",))
    app = create_app(config(fake, prompts_dir=str(prompts_dir), api_keys=keys))
    with TestClient(app) as client:
        for route in ("/", "/static/app.js", "/static/prompts.js", "/static/style.css"):
            response = client.get(route)
            assert response.status_code == 200, route  # no key needed
            assert response.headers["cache-control"] == "no-cache"
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            assert response.headers["x-content-type-options"] == "nosniff"
            assert TOKEN not in response.text
        assert "<script src=\"/static/app.js\"" in client.get("/").text
        assert client.get("/static/../server/_app.py").status_code == 404
