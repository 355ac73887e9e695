"""The playground page (GET / of sigla serve) in a real headless Chromium.

Playwright's sync API drives Chromium against the real app served by uvicorn on loopback
(tests/live_server.py), in front of the GitHub Models double. The browser is Debian's
``chromium`` (``.ci/run`` installs it; Playwright's own download cannot work here), or the
executable ``SIGLA_TEST_CHROMIUM`` names; ``SIGLA_TEST_CHROMIUM=playwright``, or no Chromium
on PATH, uses the one ``python -m playwright install chromium`` downloaded. A failing test
leaves ``failure.png`` (the page as it was) in its tmp_path.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TOKEN
from live_server import server_config, serving
from playwright.sync_api import Browser, Page, expect, sync_playwright

from sigla.server import ApiKeys, ServerConfig, create_app
from sigla.testing import FakeGitHubModels

MODEL = "openai/gpt-4o-mini"
OTHER = "meta/Llama-3.3-70B-Instruct"
ASSISTANT = "[data-testid=bubble-assistant]"


def _chromium() -> str | None:
    """The Chromium to drive: None means Playwright's own (downloaded) browser."""
    given = os.environ.get("SIGLA_TEST_CHROMIUM", "").strip()
    if given:
        return None if given == "playwright" else given
    return shutil.which("chromium") or shutil.which("chromium-browser")


# Read at import: conftest's clean_environment drops every SIGLA_* variable for each test.
CHROMIUM = _chromium()


def config(fake: FakeGitHubModels, **given: Any) -> ServerConfig:
    """A server in front of ``fake`` serving MODEL and OTHER."""
    given.setdefault("models", (MODEL, OTHER))
    return server_config(fake.url, **given)


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``check`` (server-side state the browser cannot see) until true or timeout."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def chat_requests(fake: FakeGitHubModels) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/chat/completions")]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module (starting it takes seconds); a fresh context,
    so a fresh sessionStorage, per test."""
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield launched
        launched.close()


@pytest.fixture
def fake() -> Iterator[FakeGitHubModels]:
    with FakeGitHubModels(tokens=[TOKEN]) as double:
        yield double


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "prompts"
    folder.mkdir()
    return folder


@pytest.fixture
def open_page(
    browser: Browser, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., Page]]:
    """``open_page(url, width=, height=)``: the playground in a new browser context (its own
    sessionStorage). Afterwards: a screenshot per page in tmp_path if the test failed, and
    a failure if the page's script threw."""
    pages: list[Page] = []
    errors: list[str] = []

    def open_(url: str, width: int = 1280, height: int = 800) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("pageerror", lambda error: errors.append(str(error)))
        pages.append(page)
        page.goto(url)
        return page

    yield open_
    report = getattr(request.node, "rep_call", None)
    for i, page in enumerate(pages):
        if report is None or report.failed:
            page.screenshot(path=str(tmp_path / f"failure-{i}.png"), full_page=True)
        page.context.close()
    assert not errors, f"the page's script threw: {errors}"


@pytest.fixture
def app_url(fake: FakeGitHubModels, prompts_dir: Path) -> Iterator[str]:
    with serving(create_app(config(fake, prompts_dir=str(prompts_dir)))) as url:
        yield url


def loaded(page: Page) -> Page:
    """Wait until GET /models filled the model select (the page is ready)."""
    expect(page.locator("#model")).to_have_value(MODEL)
    return page


def send(page: Page, text: str) -> None:
    page.locator("#message").fill(text)
    page.locator("#message").press("Enter")


def answer(page: Page, nth: int = -1) -> Any:
    return page.locator(ASSISTANT).nth(nth)


# ---------------------------------------------------------------- chat


def test_a_chat_streams_token_by_token_into_the_page(
    app_url: str, fake: FakeGitHubModels, open_page: Callable[..., Page]
) -> None:
    words = ["One ", "two ", "three ", "four ", "five ", "six ", "seven ", "eight."]
    final = "".join(words)
    fake.chunk_delay = 0.15
    fake.reply(final, chunks=words)
    page = loaded(open_page(app_url))
    expect(page.locator("#temperature")).to_have_value("0.7")  # the server's default
    # Every text the answer's bubble ever showed, in order.
    page.evaluate(
        """() => {
        window.seen = [];
        new MutationObserver(() => {
          const t = document.querySelector(
            '[data-testid=bubble-assistant] [data-testid=bubble-text]');
          if (t) window.seen.push(t.textContent);
        }).observe(document.getElementById('history'),
                   {subtree: true, childList: true, characterData: true});
      }"""
    )
    send(page, "Count to eight.")
    expect(page.locator("[data-testid=bubble-user]")).to_have_text("You" + "Count to eight.")
    expect(page.locator("#message")).to_have_value("")
    # While it streams: a proper prefix of the final answer, and no usage yet.
    page.wait_for_function(
        """final => {
          const b = document.querySelector('[data-testid=bubble-assistant]');
          const t = b && b.querySelector('[data-testid=bubble-text]').textContent;
          return b && b.dataset.state === 'streaming' && t.length > 0 && t.length < final.length
            && final.startsWith(t);
        }""",
        arg=final,
    )
    expect(answer(page).locator("[data-testid=usage]")).to_have_count(0)
    expect(page.locator("#stop")).to_be_enabled()
    expect(answer(page).locator("[data-testid=bubble-text]")).to_have_text(final)
    expect(answer(page)).to_have_attribute("data-state", "done")
    usage = answer(page).locator("[data-testid=usage]")
    expect(usage).to_contain_text("tokens")
    expect(usage).to_contain_text("finish: stop")
    expect(page.locator("#stop")).to_be_disabled()
    seen = page.evaluate("window.seen")
    assert "" not in seen, f"the bubble was blank at some point: {seen}"
    assert seen[0] == "Waiting for the answer…"
    prefixes = {s for s in seen if s and s != final and final.startswith(s)}
    assert len(prefixes) >= 3, f"the answer did not arrive piece by piece: {seen}"
    sent = chat_requests(fake)[-1]
    assert sent.body["stream"] is True
    assert sent.body["model"] == MODEL
    assert sent.body["temperature"] == 0.7


def test_stop_cancels_the_upstream_request(
    app_url: str, fake: FakeGitHubModels, open_page: Callable[..., Page]
) -> None:
    fake.chunk_delay = 0.25
    fake.reply(None, chunks=[f"word{i} " for i in range(60)])
    page = loaded(open_page(app_url))
    send(page, "Talk for a long time.")
    expect(answer(page)).to_have_attribute("data-state", "streaming")
    assert fake.in_flight == 1
    page.locator("#stop").click()
    expect(answer(page)).to_have_attribute("data-state", "stopped")
    expect(answer(page).locator("[data-testid=bubble-text]")).to_contain_text("word0")
    expect(answer(page)).to_contain_text("Stopped")
    expect(page.locator("#send")).to_be_enabled()
    assert eventually(lambda: fake.in_flight == 0), "the upstream stream stayed open"
    assert chat_requests(fake)[-1].finished_at is None  # cut, never completed


def test_an_upstream_rate_limit_shows_its_wait(
    app_url: str, fake: FakeGitHubModels, open_page: Callable[..., Page]
) -> None:
    fake.fail("rate_limit_minute", retry_after=42)
    page = loaded(open_page(app_url))
    send(page, "Are you there?")
    expect(answer(page)).to_have_attribute("data-state", "error")
    error = answer(page).locator("[data-testid=bubble-error]")
    expect(error).to_contain_text("Wait 42 s")
    expect(page.locator("#message")).to_have_value("Are you there?")  # back, to send again
    expect(answer(page).locator("[data-testid=bubble-text]")).not_to_be_empty()


def test_a_stream_that_fails_midway_or_is_cut_short_says_so(
    app_url: str, fake: FakeGitHubModels, open_page: Callable[..., Page]
) -> None:
    fake.fail("stream_error_event", after=2)
    fake.reply("alpha beta gamma delta epsilon", chunks=["alpha ", "beta ", "gamma ", "delta"])
    page = loaded(open_page(app_url))
    send(page, "Go.")
    expect(answer(page)).to_have_attribute("data-state", "error")
    expect(answer(page).locator("[data-testid=bubble-text]")).to_have_text("alpha beta ")
    expect(answer(page).locator("[data-testid=bubble-error]")).not_to_be_empty()

    # A connection that ends with neither `done` nor `error` (a proxy cut it).
    page.route(
        "**/llm/stream",
        lambda route: route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream"},
            body='data: {"delta": "Half an"}\n\n: ping\n\ndata: {"delta": " answ',
        ),
    )
    send(page, "Again.")
    expect(answer(page)).to_have_attribute("data-state", "cut")
    expect(answer(page).locator("[data-testid=bubble-text]")).to_have_text("Half an")
    expect(answer(page).locator("[data-testid=bubble-error]")).to_contain_text("cut short")


def test_the_history_options_and_keyboard(
    app_url: str, fake: FakeGitHubModels, open_page: Callable[..., Page]
) -> None:
    page = loaded(open_page(app_url))
    page.locator("#system").fill("Be brief.")
    page.locator("#model").select_option(OTHER)
    page.locator("#temperature").fill("0.2")
    page.locator("#max-tokens").fill("50")
    send(page, "Remember: blue.")
    expect(answer(page)).to_have_attribute("data-state", "done")
    box = page.locator("#message")
    box.click()
    box.press_sequentially("Which")
    box.press("Shift+Enter")  # a new line, not a send
    box.press_sequentially("colour?")
    expect(box).to_have_value("Which\ncolour?")
    assert len(chat_requests(fake)) == 1
    box.press("Tab")  # the Send button is next in the tab order
    expect(page.locator("#send")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(ASSISTANT)).to_have_count(2)
    expect(answer(page, 1)).to_have_attribute("data-state", "done")
    sent = chat_requests(fake)[-1].body
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [
        ("system", "Be brief."),
        ("user", "Remember: blue."),
        ("assistant", "Echo: Remember: blue."),
        ("user", "Which\ncolour?"),
    ]
    assert sent["model"] == OTHER
    assert sent["temperature"] == 0.2
    assert sent["max_tokens"] == 50

    page.locator("#clear").click()  # a new conversation sends no history
    send(page, "Fresh start.")
    expect(page.locator(ASSISTANT)).to_have_count(1)
    expect(answer(page)).to_have_attribute("data-state", "done")
    roles = [m["role"] for m in chat_requests(fake)[-1].body["messages"]]
    assert roles == ["system", "user"]


def test_markup_in_an_answer_or_a_prompt_file_is_shown_as_text(
    app_url: str, fake: FakeGitHubModels, open_page: Callable[..., Page], prompts_dir: Path
) -> None:
    markup = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    (prompts_dir / "odd.prompt.yml").write_text(
        "name: '<img src=x onerror=\"window.pwned = 3\">'\n"
        "description: '<script>window.pwned = 4</script>'\n"
        "messages:\n  - role: user\n    content: 'Show <b>{{thing}}</b>'\n",
        encoding="utf-8",
    )
    fake.reply(markup)
    page = loaded(open_page(app_url))
    send(page, markup)
    expect(answer(page).locator("[data-testid=bubble-text]")).to_have_text(markup)
    expect(page.locator("[data-testid=bubble-user] [data-testid=bubble-text]")).to_have_text(markup)

    page.locator("#tab-prompts").click()
    item = page.locator("[data-testid=prompt-item][data-id=odd]")
    expect(item).to_contain_text('<img src=x onerror="window.pwned = 3">')
    expect(item).to_contain_text("<script>window.pwned = 4</script>")
    item.get_by_role("button").click()
    expect(page.locator("#prompt-messages")).to_contain_text("Show <b>{{thing}}</b>")
    fake.reply(markup)
    page.locator("[data-testid=var-input]").fill(markup)
    page.locator("#prompt-run").click()
    expect(page.locator("#prompt-answer")).to_have_text(markup)
    expect(page.locator("#prompt-sent")).to_contain_text(f"Show <b>{markup}</b>")

    assert page.locator("main img, main script, main b").count() == 0
    assert page.evaluate("window.pwned") is None


# ---------------------------------------------------------------- prompt files

GREETING = """\
name: Greeting
description: Greets someone by name, from somewhere.
model: openai/gpt-4o-mini
messages:
  - role: system
    content: You greet people warmly.
  - role: user
    content: Say hello to {{name}} from {{place}}, {{name}}.
"""

FRUIT = """\
name: Fruit echo
description: Repeats a fruit.
model: openai/gpt-4o-mini
messages:
  - role: user
    content: Repeat {{word}}
testData:
  - word: apple
    expected: apple
  - word: pear
    expected: plum
evaluators:
  - name: names the fruit
    string:
      contains: "{{expected}}"
  - name: echoes
    string:
      startsWith: "Echo:"
"""


def test_a_prompt_files_variables_render_and_run(
    app_url: str, fake: FakeGitHubModels, open_page: Callable[..., Page], prompts_dir: Path
) -> None:
    (prompts_dir / "greeting.prompt.yml").write_text(GREETING, encoding="utf-8")
    (prompts_dir / "broken.prompt.yml").write_text("name: Broken\nmessages: 3\n", "utf-8")
    page = loaded(open_page(app_url))
    page.locator("#tab-prompts").click()
    items = page.locator("[data-testid=prompt-item]")
    expect(items).to_have_count(2)
    greeting = items.filter(has_text="Greeting")
    expect(greeting).to_contain_text("Greets someone by name, from somewhere.")
    broken = page.locator("[data-testid=prompt-item][data-id=broken]")
    expect(broken.locator("[data-testid=prompt-invalid]")).not_to_be_empty()

    greeting.get_by_role("button", name="Greeting").click()
    expect(page.locator("#prompt-title")).to_have_text("Greeting")
    expect(page.locator("#prompt-messages")).to_contain_text(
        "Say hello to {{name}} from {{place}}, {{name}}."
    )
    fields = page.locator("[data-testid=var-input]")
    expect(fields).to_have_count(2)  # one per variable, in order of first use
    page.get_by_label("{{name}}").fill("Ada")
    page.get_by_label("{{place}}").fill("London")
    page.locator("#prompt-run").click()
    rendered = "Say hello to Ada from London, Ada."
    expect(page.locator("#prompt-sent")).to_contain_text(rendered)
    expect(page.locator("#prompt-sent")).to_contain_text("You greet people warmly.")
    expect(page.locator("#prompt-answer")).to_have_text(f"Echo: {rendered}")
    expect(page.locator("#prompt-usage")).to_contain_text("tokens")
    sent = chat_requests(fake)[-1].body["messages"]
    assert sent[-1] == {"role": "user", "content": rendered}

    page.get_by_label("{{place}}").fill("")  # a missing value: the server's 422, shown
    page.get_by_label("{{name}}").fill("")
    requests_before = len(chat_requests(fake))
    page.locator("#prompt-run").click()
    expect(page.locator("#prompt-error")).to_be_visible()
    expect(page.locator("#prompt-error")).not_to_be_empty()
    assert len(chat_requests(fake)) == requests_before


def test_an_evaluation_shows_passed_and_failed_rows(
    app_url: str, fake: FakeGitHubModels, open_page: Callable[..., Page], prompts_dir: Path
) -> None:
    (prompts_dir / "fruit.prompt.yml").write_text(FRUIT, encoding="utf-8")
    page = loaded(open_page(app_url))
    page.locator("#tab-prompts").click()
    page.get_by_role("button", name="Fruit echo").click()
    expect(page.locator("#prompt-meta")).to_contain_text("2 test cases")
    page.locator("#prompt-eval").click()
    cases = page.locator("[data-testid=eval-case]")
    expect(cases).to_have_count(2)
    first, second = cases.nth(0), cases.nth(1)
    expect(first.locator("[data-testid=verdict]")).to_have_text("PASSED")
    expect(first.locator("[data-testid=eval-answer]")).to_have_text("Echo: Repeat apple")
    expect(first.locator("[data-testid=evaluator]")).to_have_text(
        [
            "pass  names the fruit  1.00  Expected to contain: 'apple'",
            "pass  echoes  1.00  Expected to start with: 'Echo:'",
        ]
    )
    expect(second.locator("[data-testid=verdict]")).to_have_text("FAILED")
    expect(second.locator("[data-testid=eval-answer]")).to_have_text("Echo: Repeat pear")
    expect(second.locator("[data-testid=evaluator]").first).to_contain_text(
        "FAIL  names the fruit  0.00"
    )
    expect(page.locator("#eval-summary")).to_have_text("Passed: 1/2 (50.00%)")


# ---------------------------------------------------------------- keys, layout


def test_the_page_asks_for_the_key_once_and_again_after_a_refusal(
    fake: FakeGitHubModels, open_page: Callable[..., Page], prompts_dir: Path
) -> None:
    key = "team-key-0123456789"
    cfg = config(fake, prompts_dir=str(prompts_dir), api_keys=ApiKeys((key,)))
    with serving(create_app(cfg)) as url:
        page = open_page(url)
        form = page.locator("#key-form")
        expect(form).to_be_visible()
        expect(page.locator("#model option")).to_have_count(0)
        page.get_by_label("API key").fill("wrong-key")
        page.get_by_label("API key").press("Enter")
        expect(page.locator("#key-message")).to_contain_text("refused")
        expect(form).to_be_visible()
        page.get_by_label("API key").fill(key)
        page.locator("#key-submit").click()
        expect(form).to_be_hidden()
        loaded(page)
        send(page, "With a key.")
        expect(answer(page)).to_have_attribute("data-state", "done")
        assert page.evaluate("sessionStorage.getItem('sigla.apiKey')") == key
        assert page.evaluate("localStorage.length") == 0
        assert page.evaluate("document.cookie") == ""

        page.reload()  # the same tab keeps the key: no second question
        loaded(page)
        expect(form).to_be_hidden()

        page.evaluate("sessionStorage.setItem('sigla.apiKey', 'revoked')")
        send(page, "After a rotation.")
        expect(answer(page)).to_have_attribute("data-state", "error")
        expect(form).to_be_visible()  # asked again
        assert page.evaluate("sessionStorage.getItem('sigla.apiKey')") is None


def test_at_phone_width_one_column_and_no_horizontal_scroll(
    app_url: str, fake: FakeGitHubModels, open_page: Callable[..., Page], prompts_dir: Path
) -> None:
    (prompts_dir / "fruit.prompt.yml").write_text(FRUIT, encoding="utf-8")
    page = loaded(open_page(app_url, width=375, height=740))
    long_word = "x" * 400
    fake.reply(f"{long_word} and a long line " * 5)
    send(page, long_word)
    expect(answer(page)).to_have_attribute("data-state", "done")
    settings = page.locator(".settings").bounding_box()
    talk = page.locator(".conversation").bounding_box()
    assert settings and talk
    assert talk["y"] >= settings["y"] + settings["height"]  # stacked, not side by side
    assert settings["width"] <= 375 and talk["width"] <= 375
    no_scroll = "document.documentElement.scrollWidth <= window.innerWidth"
    assert page.evaluate(no_scroll), page.evaluate("document.documentElement.scrollWidth")

    page.locator("#tab-prompts").click()
    page.get_by_role("button", name="Fruit echo").click()
    page.locator("#prompt-eval").click()
    expect(page.locator("[data-testid=eval-case]")).to_have_count(2)
    assert page.evaluate(no_scroll), page.evaluate("document.documentElement.scrollWidth")

    # A retired service's long error, and a prompt file with a long unbroken name.
    (prompts_dir / "long.prompt.yml").write_text(
        f"name: {'N' * 300}\ndescription: {'d' * 300}\nmessages:\n  - role: user\n"
        "    content: hi\n",
        encoding="utf-8",
    )
    page.reload()
    page.locator("#tab-prompts").click()
    page.locator("[data-testid=prompt-item][data-id=long]").get_by_role("button").click()
    expect(page.locator("#prompt-title")).to_contain_text("NNNN")
    assert page.evaluate(no_scroll), page.evaluate("document.documentElement.scrollWidth")
    page.locator("#tab-chat").click()
    fake.retire("410")
    send(page, "Still there?")
    expect(answer(page)).to_have_attribute("data-state", "error")
    assert page.evaluate(no_scroll), page.evaluate("document.documentElement.scrollWidth")


# ---------------------------------------------------------------- review follow-ups


def test_markup_in_an_error_or_an_evaluation_is_shown_as_text(
    app_url: str, fake: FakeGitHubModels, open_page: Callable[..., Page], prompts_dir: Path
) -> None:
    markup = '<img src=x onerror="window.pwned = 5">'
    (prompts_dir / "fruit.prompt.yml").write_text(FRUIT, encoding="utf-8")
    page = loaded(open_page(app_url))
    fake.fail("stream_error_event", after=1, message=markup)
    send(page, "Go.")
    expect(answer(page).locator("[data-testid=bubble-error]")).to_contain_text(markup)

    fake.reply(markup)
    fake.reply(markup)
    page.locator("#tab-prompts").click()
    page.get_by_role("button", name="Fruit echo").click()
    page.locator("#prompt-eval").click()
    answers = page.locator("[data-testid=eval-answer]")
    expect(answers).to_have_count(2)
    expect(answers.first).to_have_text(markup)
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("window.pwned") is None


@pytest.mark.parametrize("ending", ["\r", "\r\n"])
def test_a_stream_with_other_line_endings_completes(
    app_url: str, open_page: Callable[..., Page], ending: str
) -> None:
    page = loaded(open_page(app_url))
    events = [
        'data: {"delta": "Caf\u00e9 "}',
        'data: {"delta": "\u00fcber \U0001f600"}',
        "event: done",
        'data: {"usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}, '
        '"finish_reason": "stop", "model": "m"}',
    ]
    body = (
        ending.join(events[:1])
        + ending * 2
        + events[1]
        + ending * 2
        + ending.join(events[2:])
        + ending * 2
    )
    page.route(
        "**/llm/stream",
        lambda route: route.fulfill(
            status=200, headers={"Content-Type": "text/event-stream"}, body=body.encode()
        ),
    )
    send(page, "Hi.")
    expect(answer(page)).to_have_attribute("data-state", "done")
    expect(answer(page).locator("[data-testid=bubble-text]")).to_have_text(
        "Caf\u00e9 \u00fcber \U0001f600"
    )


def test_failed_and_stopped_turns_stay_out_of_the_history(
    app_url: str, fake: FakeGitHubModels, open_page: Callable[..., Page]
) -> None:
    page = loaded(open_page(app_url))
    send(page, "First.")
    expect(answer(page)).to_have_attribute("data-state", "done")
    fake.fail("stream_error_event", after=1)
    send(page, "Broken.")
    expect(answer(page)).to_have_attribute("data-state", "error")
    expect(page.locator("#message")).to_have_value("Broken.")  # back in the box
    fake.chunk_delay = 0.5
    fake.reply("slow one two three four five six", chunks=["slow ", "one ", "two ", "three"])
    send(page, "Slow.")
    expect(answer(page)).to_have_attribute("data-state", "streaming")
    page.locator("#stop").click()
    expect(answer(page)).to_have_attribute("data-state", "stopped")
    fake.chunk_delay = 0.0
    send(page, "Last.")
    expect(answer(page)).to_have_attribute("data-state", "done")
    sent = chat_requests(fake)[-1].body["messages"]
    assert [(m["role"], m["content"]) for m in sent if m["role"] != "system"] == [
        ("user", "First."),
        ("assistant", "Echo: First."),
        ("user", "Last."),
    ]


def test_the_prompt_files_load_even_when_the_models_do_not(
    app_url: str, fake: FakeGitHubModels, open_page: Callable[..., Page], prompts_dir: Path
) -> None:
    (prompts_dir / "fruit.prompt.yml").write_text(FRUIT, encoding="utf-8")
    fake.retire("410")  # GET /models asks the retired catalog: 502
    page = open_page(app_url)
    page.locator("#tab-prompts").click()
    expect(page.get_by_role("button", name="Fruit echo")).to_be_visible()
