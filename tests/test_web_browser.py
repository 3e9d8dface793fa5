"""The viewer page in a real headless Chromium (Debian's `chromium`, driven by Playwright):
it starts the weather agent on the bundled engine, shows tokens before the run ends, shows
the tool calls, survives a reload mid-run without duplicates, and cancels a run."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from lazystream.queue import read_session
from lazystream.web import SessionServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import weather_agent  # noqa: E402,F401
from weather_policy import WeatherPolicy  # noqa: E402

QUERY = "What's the weather like today in celsius in Tokyo and Paris."
ANSWER = "The current weather in Tokyo is 10 degrees Celsius, and in Paris, it is 22 degrees Celsius."
CHROMIUM = os.environ.get("LAZYSTREAM_CHROMIUM", "/usr/bin/chromium")
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        reason = f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
        if os.environ.get("LAZYSTREAM_REQUIRE_BROWSER"):
            pytest.fail(f"LAZYSTREAM_REQUIRE_BROWSER is set but there is {reason}")
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                     args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def slow_engine():
    """The weather policy at 15 tokens/s: a run lasts a couple of seconds, long enough to watch."""
    from lazystream.engine import Engine
    engine = Engine(WeatherPolicy(), tokens_per_second=15)
    engine.start()
    yield engine
    engine.stop()


@pytest.fixture
def page(browser, slow_engine, fresh_home):
    from lazystream.llm.online import OnlineChatModule
    from lazystream.tools import FunctionCallAgent
    llm = OnlineChatModule(model="lazystream-engine", base_url=slow_engine.base_url, api_key="unused", stream=True)
    agent = FunctionCallAgent(llm, ["get_current_weather", "get_n_day_weather_forecast"])
    with SessionServer(modules={"weather": agent}) as server:
        context = browser.new_context()
        tab = context.new_page()
        tab.set_default_timeout(WAIT_MS)
        tab.goto(server.url + "/")
        tab.wait_for_selector("#module option[value=weather]", state="attached")
        yield tab
        context.close()


def start(page) -> str:
    page.fill("[data-testid=input]", QUERY)
    page.click("[data-testid=start]")
    page.wait_for_function("document.querySelector('[data-testid=current-sid]').textContent.startsWith('run-')")
    return page.inner_text("[data-testid=current-sid]")


def answer_text(page) -> str:
    return page.evaluate("""[...document.querySelectorAll('.message .text')].map(e => e.textContent).join('')""")


def test_tokens_appear_before_the_run_ends_then_the_tool_calls_and_the_answer(page):
    sid = start(page)
    # Some answer tokens are on screen while the run is still running.
    page.wait_for_function("""() => {
        const text = [...document.querySelectorAll('.message .text')].map(e => e.textContent).join('');
        return text.length > 0 && document.querySelector('[data-testid=status]').textContent === 'running';
    }""")
    partial = answer_text(page)
    assert ANSWER.startswith(partial) and partial != ANSWER
    page.wait_for_function("document.querySelector('[data-testid=status]').textContent === 'ok'")
    assert answer_text(page) == ANSWER
    calls = page.eval_on_selector_all("[data-call] .name", "els => els.map(e => e.textContent)")
    assert calls == ["→ get_current_weather", "→ get_current_weather"]
    states = page.eval_on_selector_all(".tool .state", "els => els.map(e => e.textContent)")
    assert states == ["done", "done"]
    results = page.eval_on_selector_all(".tool pre[data-role=result]", "els => els.map(e => JSON.parse(e.textContent).location)")
    assert sorted(results) == ["Paris", "Tokyo"]
    assert page.inner_text("[data-testid=counts]") == f"{len(read_session(sid))} events"
    assert "total" in page.inner_text("[data-testid=usage]")
    assert page.is_disabled("[data-testid=cancel]")


def test_a_reload_mid_run_resumes_without_duplicates(page):
    sid = start(page)
    page.wait_for_function("[...document.querySelectorAll('.message .text')].some(e => e.textContent.length > 0)")
    page.reload()
    assert page.url.endswith(f"#sid={sid}")
    page.wait_for_function("document.querySelector('[data-testid=status]').textContent === 'ok'")
    assert answer_text(page) == ANSWER
    seqs = page.eval_on_selector_all("#log tbody tr td:first-child", "els => els.map(e => Number(e.textContent))")
    assert seqs == [e.seq for e in read_session(sid)]


def test_the_cancel_button_cancels_the_run(page):
    sid = start(page)
    page.wait_for_function("document.querySelector('[data-testid=status]').textContent === 'running'")
    page.click("[data-testid=cancel]")
    page.wait_for_function("document.querySelector('[data-testid=status]').textContent === 'cancelled'")
    events = read_session(sid)
    assert events[-1].kind == "end" and events[-1].data["status"] == "cancelled"
    assert [e.data["status"] for e in events if e.kind == "run_end"] == ["cancelled"]
    assert page.eval_on_selector_all("#runs li .badge", "els => els.map(e => e.textContent)")[:1] in (["cancelled"], ["running"])


def test_opening_an_unknown_session_shows_the_error(page):
    page.fill("[data-testid=sid]", "no-such-session")
    page.click("[data-testid=open]")
    page.wait_for_function("document.querySelector('[data-testid=errors]').textContent.includes('no session')")
    assert page.inner_text("[data-testid=status]") == "error"
