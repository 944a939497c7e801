"""Browser tests of ``convstore web``: headless Chromium (Debian's ``/usr/bin/chromium``,
driven by Playwright) against a real uvicorn server on a free loopback port, over the real
Redis at REDIS_URL in a namespace of its own (every planted session is deleted at the end).

They save the README's screenshots (docs/screenshots/) and print the page-load timing of a
10,000-message session (run with ``-s`` to see it); no test asserts a time.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="needs the web extra")
pytest.importorskip("playwright", reason="needs playwright (the test extra)")

import httpx
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from conftest import REDIS_URL, REQUIRE_REDIS, new_namespace, require_real_redis
from convstore import (
    AgentCommunicationMessage,
    AsyncConversationStore,
    ConversationParticipant,
    ConversationSession,
    ConversationStore,
    Retention,
    utc_now,
)
from convstore.web import create_app
from servers import free_port

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
EVIL = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


class Site:
    """The planted data, the store that planted it, and the server's address."""

    def __init__(self, store: ConversationStore, url: str) -> None:
        self.store = store
        self.url = url
        self.keys: list[str] = []

    def session(self, session: ConversationSession) -> str:
        key = self.store.sessions.create(session)
        self.keys.append(key)
        return key


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    require_real_redis()
    namespace = new_namespace()
    store = ConversationStore.from_url(REDIS_URL, namespace=namespace)
    app = create_app(
        AsyncConversationStore.from_url(REDIS_URL, namespace=namespace),
        close_store=True,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
        )
    )
    thread = threading.Thread(target=server.run, name="convstore-web-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    planted = Site(store, f"http://127.0.0.1:{port}")
    try:
        yield planted
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        for key in planted.keys:
            store.sessions.delete(key)
        store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing (apt-get install -y chromium)"
        if REQUIRE_REDIS:  # CI installs it: missing there is a failure, not a skip
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    dialogs: list[str] = []
    errors: list[str] = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    context.close()
    assert dialogs == [], f"a stored string ran as script: {dialogs}"
    assert errors == [], f"the page logged errors (a CSP violation, a script error): {errors}"


def agent_msg(
    key: str, n: int, sender: str, recipient: str, kind: str, text: str
) -> AgentCommunicationMessage:
    return AgentCommunicationMessage(
        f"msg-{n}", key, sender, "agent", None, recipient, "agent", None, text, kind, utc_now(), {}
    )


SCRIPT = [
    ("mc_001", "agent_analyst", "task_assignment", "Analyse Q3 sales by region"),
    (
        "agent_analyst",
        "agent_writer",
        "collaboration_request",
        "Can you draft the summary once numbers land?",
    ),
    ("agent_writer", "agent_analyst", "clarification_request", "Which regions matter most?"),
    ("agent_analyst", "agent_writer", "communication", "EMEA and APAC; NA is flat"),
    ("agent_analyst", "mc_001", "progress_update", "Regions done, 3 of 4"),
    ("agent_writer", "mc_001", "status_update", "Draft in progress"),
    ("agent_analyst", "mc_001", "result_report", "Q3 up 12%, led by APAC (+31%)"),
    ("agent_writer", "mc_001", "error_report", "Chart service timed out; retried"),
    ("mc_001", "agent_writer", "feedback", "Lead with APAC, keep it to one page"),
    ("agent_writer", "mc_001", "task_completion", "Summary ready: q3-summary.md"),
]


def plant_team(
    site: Site, session_id: str, script: list[tuple[str, str, str, str]] = SCRIPT
) -> str:
    people = [
        ConversationParticipant("mc_001", "master_controller"),
        ConversationParticipant("agent_analyst", "agent", "data_analyst"),
        ConversationParticipant("agent_writer", "agent", "writer"),
    ]
    now = utc_now()
    key = site.session(
        ConversationSession(session_id, people, "agent_to_agent", now, now, {"project": "q3"})
    )
    site.store.messages.append_many(
        key, [agent_msg(key, i, *step) for i, step in enumerate(script)]
    )
    return key


def lane_x(page: Page) -> dict[str, float]:
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#diagram g.lane')].map(
            g => [g.dataset.lane, Number(g.querySelector('line').getAttribute('x1'))]))"""
    )


def arrows(page: Page) -> list[dict[str, Any]]:
    return page.evaluate(
        """() => [...document.querySelectorAll('#diagram g.arrow')].map(g => {
            const line = g.querySelector('line');
            return {from: g.dataset.from, to: g.dataset.to, type: g.dataset.type,
                    x1: line ? Number(line.getAttribute('x1')) : null,
                    x2: line ? Number(line.getAttribute('x2')) : null};
        })"""
    )


def test_sessions_page_lists_planted_sessions(site: Site, page: Page) -> None:
    keys = [plant_team(site, f"q3-report-{i}") for i in range(3)]
    people = [
        ConversationParticipant("user_42", "user"),
        ConversationParticipant("mc_001", "master_controller"),
    ]
    then = utc_now() - timedelta(hours=2)
    chat = site.session(ConversationSession("support-chat", people, "user_to_mc", then, then))
    page.goto(site.url + "/")
    listed = page.eval_on_selector_all(
        "tr[data-session-key]", "rows => rows.map(r => r.dataset.sessionKey)"
    )
    assert set(keys) | {chat} <= set(listed)
    assert page.locator("tr", has_text=chat).locator("td.num").first.inner_text() == "0"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "sessions.png"), full_page=True)
    page.goto(site.url + "/?type=user_to_mc")
    assert chat in page.eval_on_selector_all(
        "tr[data-session-key]", "r => r.map(x => x.dataset.sessionKey)"
    )


def test_session_page_draws_one_arrow_per_message_between_the_right_lanes(
    site: Site, page: Page
) -> None:
    key = plant_team(site, "q3-report")
    site.store.sessions.set_retention(key, Retention(max_messages=5000, ttl=timedelta(days=7)))
    page.goto(f"{site.url}/sessions/{key}")
    x = lane_x(page)
    assert list(x) == ["mc_001", "agent_analyst", "agent_writer"]
    drawn = arrows(page)
    assert len(drawn) == len(SCRIPT)
    for arrow, (sender, recipient, kind, _) in zip(drawn, SCRIPT, strict=True):
        assert (arrow["from"], arrow["to"], arrow["type"]) == (sender, recipient, kind)
        assert arrow["x1"] == x[sender]
        assert abs(arrow["x2"] - x[recipient]) <= 3  # the head stops just short of the lane
    assert page.locator("#messages li").count() == len(SCRIPT)
    page.screenshot(path=str(SCREENSHOTS / "session.png"), full_page=True)


def test_appended_message_appears_within_a_second(site: Site, page: Page) -> None:
    key = plant_team(site, "live-view", SCRIPT[:3])
    page.goto(f"{site.url}/sessions/{key}")
    page.wait_for_function("() => document.getElementById('live-status').textContent === 'live'")
    started = time.monotonic()
    site.store.messages.append(
        key, agent_msg(key, 99, "agent_writer", "mc_001", "status_update", "fresh")
    )
    page.wait_for_selector('#diagram g.arrow[data-message-id="msg-99"]', timeout=1000)
    elapsed = time.monotonic() - started
    assert page.locator("#messages li").last.locator(".content").inner_text() == "fresh"
    assert page.locator("#diagram g.arrow").count() == 4
    assert page.locator("#count").inner_text() == "4"
    print(f"\nlive view: appended message drawn after {elapsed * 1000:.0f} ms")


def test_stored_script_renders_as_text(site: Site, page: Page) -> None:
    people = [
        ConversationParticipant("user_1", "user"),
        ConversationParticipant("mc_1", "master_controller"),
    ]
    now = utc_now()
    key = site.session(ConversationSession("hostile", people, "user_to_mc", now, now, {"x": EVIL}))
    site.store.messages.append(key, {"role": "user", "content": EVIL})
    page.goto(f"{site.url}/sessions/{key}")
    page.wait_for_selector("#diagram g.arrow")
    assert page.locator("#messages .content").first.inner_text() == EVIL
    assert page.locator("#diagram g.arrow text.label").first.text_content() == EVIL[:60] + "…"
    live_text = EVIL + " (live)"
    site.store.messages.append(key, {"role": "user", "content": live_text})
    page.wait_for_selector("#messages li:nth-child(2)", timeout=2000)
    assert page.locator("#messages .content").nth(1).inner_text() == live_text
    assert page.locator("#messages img, #diagram img").count() == 0
    page.goto(site.url + "/")
    assert page.evaluate("() => window.__pwned") is None


def test_live_stream_resumes_from_last_event_id(site: Site) -> None:
    key = plant_team(site, "resume", SCRIPT[:2])
    first = site.store.messages.entries(key, after="0-0", limit=1)[0].entry_id
    site.store.messages.append(
        key, agent_msg(key, 50, "mc_001", "agent_writer", "feedback", "after")
    )
    with httpx.stream(
        "GET", f"{site.url}/live/{key}", headers={"last-event-id": first}, timeout=5
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events: list[dict[str, Any]] = []
        event_id = None
        for line in response.iter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            if line.startswith("data: ") and event_id:
                events.append({"id": event_id, **json.loads(line[6:])})
                if len(events) == 2:
                    break
    assert [e["message"]["content"] for e in events] == [SCRIPT[1][3], "after"]
    assert events[0]["id"] > first and events[0]["arrow"]["from"] == SCRIPT[1][0]


def test_page_load_of_a_10000_message_session(site: Site, page: Page) -> None:
    people = [
        ConversationParticipant("mc_001", "master_controller"),
        ConversationParticipant("agent_analyst", "agent", "data_analyst"),
        ConversationParticipant("agent_writer", "agent", "writer"),
    ]
    now = utc_now()
    key = site.session(ConversationSession("big", people, "agent_to_agent", now, now))
    batch = []
    for i in range(10_000):
        sender, recipient, kind, text = SCRIPT[i % len(SCRIPT)]
        batch.append(agent_msg(key, i, sender, recipient, kind, f"{text} #{i}"))
        if len(batch) == 1000:
            site.store.messages.append_many(key, batch)
            batch = []
    assert site.store.messages.count(key) == 10_000
    timings = {}
    for limit in (100, 1000):
        page.goto(f"{site.url}/sessions/{key}?limit={limit}")
        page.wait_for_selector(f"#diagram g.arrow:nth-of-type({limit})")
        timing = page.evaluate(
            """() => {
                const nav = performance.getEntriesByType('navigation')[0];
                const paint = performance.getEntriesByType('paint').find(p => p.name === 'first-contentful-paint');
                return {ttfb: nav.responseStart, fcp: paint ? paint.startTime : null,
                        dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd};
            }"""
        )
        assert page.locator("#diagram g.arrow").count() == limit
        html = page.content()  # the newest `limit` messages, exactly: not the whole history
        assert f"#{10_000 - 1}" in html and f"#{10_000 - limit}" in html
        assert f"#{10_000 - limit - 1}" not in html
        timings[limit] = timing
        fcp = "not recorded" if timing["fcp"] is None else f"{timing['fcp']:.0f} ms"
        print(
            f"\n10,000-message session, newest {limit} shown: server {timing['ttfb']:.0f} ms, "
            f"first contentful paint {fcp}, DOMContentLoaded {timing['dcl']:.0f} ms, "
            f"load {timing['load']:.0f} ms"
        )
    assert all(t["load"] > 0 for t in timings.values())  # both pages finished loading
