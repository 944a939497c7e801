"""Route tests of ``convstore web`` (Starlette's TestClient) on fakeredis, Redis and Valkey.

Data is planted with the sync store of the test's backend and namespace; the app reads it
through its own async store. The live view's event stream is tested against a real
uvicorn server in tests/test_web_browser.py (the TestClient buffers streams).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import quote

import fakeredis
import pytest
import redis.asyncio

pytest.importorskip("starlette", reason="needs the web extra")

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2; httpx still works
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from convstore import (
    AgentCommunicationMessage,
    AsyncConversationStore,
    ConfigurationError,
    ConversationParticipant,
    ConversationSession,
    ConversationStore,
    Retention,
    utc_now,
)
from convstore.web import create_app
from convstore.web.security import allowed_hosts, host_name, is_loopback

HOST = "http://127.0.0.1"
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def agent_message(
    key: str, n: int, sender: str, recipient: str, kind: str, text: str
) -> AgentCommunicationMessage:
    return AgentCommunicationMessage(
        f"m{n}", key, sender, "agent", None, recipient, "agent", None, text, kind, utc_now(), {}
    )


def plant_team(store: ConversationStore, session_id: str = "team", n: int = 4) -> str:
    """A controller and two agents, ``n`` messages between them."""
    people = [
        ConversationParticipant("mc_1", "master_controller"),
        ConversationParticipant("agent_a", "agent", "writer"),
    ]
    now = utc_now()
    key = store.sessions.create(ConversationSession(session_id, people, "mc_to_agent", now, now))
    routes = [("mc_1", "agent_a", "task_assignment"), ("agent_a", "mc_1", "result_report")]
    for i in range(n):
        sender, recipient, kind = routes[i % 2]
        store.messages.append(key, agent_message(key, i, sender, recipient, kind, f"step {i}"))
    return key


@pytest.fixture
def web(
    backend_url: str | None, namespace: str, fake_server: fakeredis.FakeServer
) -> Iterator[TestClient]:
    if backend_url is None:
        client: redis.asyncio.Redis = fakeredis.FakeAsyncRedis(server=fake_server)
    else:
        client = redis.asyncio.Redis.from_url(backend_url)
    app = create_app(AsyncConversationStore(client, namespace=namespace), close_store=True)
    with TestClient(app, base_url=HOST) as test_client:
        yield test_client


def listed(html: str) -> list[str]:
    """The session keys a sessions page lists, in order."""
    return re.findall(r'data-session-key="([^"]+)"', html)


def diagram_data(html: str) -> dict:
    found = re.search(
        r'<script type="application/json" id="diagram-data">(.*?)</script>', html, re.S
    )
    assert found, "the page has no diagram data block"
    return json.loads(found.group(1))


class _Text(HTMLParser):
    """Collects the page's tags and text, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Text:
    parser = _Text()
    parser.feed(html)
    return parser


# --------------------------------------------------------------------------- sessions page


def test_sessions_page_lists_planted_sessions(store: ConversationStore, web: TestClient) -> None:
    keys = [plant_team(store, f"team{i}", n=i + 1) for i in range(3)]
    page = web.get("/")
    assert page.status_code == 200
    for key in keys:
        assert f'data-session-key="{key}"' in page.text
        assert f'href="/sessions/{quote(key, safe="")}"' in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")


def test_sessions_page_filters_by_participant_and_type(
    store: ConversationStore, web: TestClient, make_session
) -> None:
    team = plant_team(store)
    chat = store.sessions.create(make_session("chat", "user_to_mc"))
    assert listed(web.get("/", params={"participant": "agent_a"}).text) == [team]
    assert listed(web.get("/", params={"type": "user_to_mc"}).text) == [chat]
    assert listed(web.get("/", params={"participant": "nobody"}).text) == []


def test_sessions_page_filters_by_idle_time(
    store: ConversationStore, web: TestClient, make_session
) -> None:
    old = make_session("old", "user_to_mc", at=utc_now() - timedelta(hours=3))
    old_key = store.sessions.create(old)
    new_key = store.sessions.create(make_session("new", "user_to_mc"))
    assert listed(web.get("/", params={"idle_min": 60}).text) == [old_key]
    assert listed(web.get("/", params={"idle_max": 60}).text) == [new_key]
    assert listed(web.get("/").text) == [new_key, old_key]


def test_sessions_page_pages_through_the_index(
    store: ConversationStore, web: TestClient, make_session
) -> None:
    keys = {store.sessions.create(make_session(f"s{i}", "user_to_mc")) for i in range(5)}
    seen: list[str] = []
    url: str | None = "/?limit=2"
    while url is not None:
        html = web.get(url).text
        seen += listed(html)
        found = re.search(r'<a href="([^"]+)" id="next">', html)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert sorted(seen) == sorted(keys)  # every session once, no repeats


def test_bad_filter_input_is_a_400_page(web: TestClient) -> None:
    assert web.get("/", params={"limit": "lots"}).status_code == 400
    assert web.get("/", params={"cursor": "not a cursor"}).status_code == 400


# --------------------------------------------------------------------------- session page


def test_session_page_shows_record_retention_and_diagram(
    store: ConversationStore, web: TestClient
) -> None:
    key = plant_team(store, n=4)
    store.sessions.set_retention(key, Retention(max_messages=100, ttl=3600))
    page = web.get(f"/sessions/{quote(key, safe='')}")
    assert page.status_code == 200
    text = " ".join(parse(page.text).text)
    assert "mc_1" in text and "agent_a" in text and "writer" in text
    assert "100" in text and "3600.0 s (sliding)" in text
    data = diagram_data(page.text)
    assert [lane["id"] for lane in data["lanes"]] == ["mc_1", "agent_a"]
    assert [(a["from"], a["to"], a["type"]) for a in data["arrows"]] == [
        ("mc_1", "agent_a", "task_assignment"),
        ("agent_a", "mc_1", "result_report"),
    ] * 2
    assert [a["label"] for a in data["arrows"]] == [f"step {i}" for i in range(4)]
    assert page.text.count('class="msg ') == 4


def test_plain_messages_are_drawn_from_their_role_owner(
    store: ConversationStore, web: TestClient, make_session
) -> None:
    key = store.sessions.create(make_session("chat", "user_to_mc"))
    store.messages.append(key, {"role": "user", "content": "hello"})
    store.messages.append(key, {"role": "tool", "content": "42"})
    arrows = diagram_data(web.get(f"/sessions/{key}").text)["arrows"]
    assert [(a["from"], a["to"]) for a in arrows] == [("user_1", None), ("tool", None)]
    lanes = diagram_data(web.get(f"/sessions/{key}").text)["lanes"]
    assert [lane["id"] for lane in lanes] == ["user_1", "mc_1", "tool"]


def test_session_page_pages_backwards(store: ConversationStore, web: TestClient) -> None:
    key = plant_team(store, n=7)
    labels: list[str] = []
    url: str | None = f"/sessions/{key}?limit=3"
    while url is not None:
        html = web.get(url).text
        labels = [a["label"] for a in diagram_data(html)["arrows"]] + labels
        found = re.search(r'<a href="([^"]+)" id="older">', html)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert labels == [f"step {i}" for i in range(7)]


def test_session_page_time_range(store: ConversationStore, web: TestClient) -> None:
    people = [
        ConversationParticipant("u", "user"),
        ConversationParticipant("mc", "master_controller"),
    ]
    start = utc_now() - timedelta(hours=5)
    key = store.sessions.create(ConversationSession("ranged", people, "user_to_mc", start, start))
    for h in range(5):
        at = (start + timedelta(hours=h)).isoformat()
        store.messages.append(key, {"role": "user", "content": f"hour {h}", "timestamp": at})
    since = (start + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    until = (start + timedelta(hours=3)).replace(tzinfo=None).isoformat()
    html = web.get(f"/sessions/{key}", params={"since": since, "until": until}).text
    assert [a["label"] for a in diagram_data(html)["arrows"]] == ["hour 1", "hour 2", "hour 3"]
    assert 'id="live"' not in html  # a range is not followed live
    assert web.get(f"/sessions/{key}", params={"since": "yesterday"}).status_code == 400


def test_stored_script_renders_as_text(store: ConversationStore, web: TestClient) -> None:
    people = [
        ConversationParticipant(EVIL, "user"),
        ConversationParticipant("mc", "master_controller"),
    ]
    now = utc_now()
    key = store.sessions.create(
        ConversationSession("x</script>", people, "user_to_mc", now, now, {EVIL: EVIL})
    )
    store.messages.append(key, {"role": "user", "content": EVIL, "metadata": {"note": EVIL}})
    for url in ("/", f"/sessions/{quote(key, safe='')}"):
        html = web.get(url).text
        assert "<script>alert" not in html and "<img" not in html
        page = parse(html)
        assert "img" not in page.tags
        assert page.tags.count("script") == 1 + (url != "/")  # app.js, and the JSON block
        assert any(EVIL in t for t in page.text)  # shown, as text
    data = diagram_data(web.get(f"/sessions/{quote(key, safe='')}").text)
    assert data["arrows"][0]["label"] == EVIL and data["lanes"][0]["id"] == EVIL


def test_missing_session_is_a_404_naming_it(web: TestClient) -> None:
    page = web.get("/sessions/no-such-session")
    assert page.status_code == 404 and "no-such-session" in page.text
    assert web.get("/export/no-such-session").status_code == 404
    assert web.get("/live/no-such-session").status_code == 404


def test_keys_with_slashes_and_unicode_round_trip(
    store: ConversationStore, web: TestClient, make_session
) -> None:
    session = make_session("a/b?c#d é", "user_to_mc")
    key = store.sessions.create(session)
    store.messages.append(key, {"role": "user", "content": "hi"})
    listing = web.get("/").text
    url = re.search(r'<a href="(/sessions/[^"]+)">', listing).group(1)
    assert diagram_data(web.get(url).text)["arrows"][0]["label"] == "hi"


# --------------------------------------------------------------------------- export


def test_export_is_one_session_line_then_one_line_per_message(
    store: ConversationStore, web: TestClient
) -> None:
    key = plant_team(store, n=5)
    store.messages.append(key, {"role": "user", "content": EVIL})
    response = web.get(f"/export/{key}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert 'filename="team_mc_to_writer.jsonl"' in response.headers["content-disposition"]
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[0]["kind"] == "session" and lines[0]["session_key"] == key
    assert ConversationSession.from_dict(lines[0]["session"]) == store.sessions.get(key)
    messages = lines[1:]
    assert [m["kind"] for m in messages] == ["message"] * 6
    assert [m["message"] for m in messages] == store.messages.history(key)
    ids = [m["entry_id"] for m in messages]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-")))) and len(set(ids)) == 6


def test_export_reads_in_chunks(
    store: ConversationStore, web: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from convstore.web import export

    monkeypatch.setattr(export, "CHUNK", 2)
    key = plant_team(store, n=5)
    lines = web.get(f"/export/{key}").text.splitlines()
    assert [json.loads(line)["message"]["content"] for line in lines[1:]] == [
        f"step {i}" for i in range(5)
    ]


# --------------------------------------------------------------------------- security


def test_foreign_host_header_is_refused(store: ConversationStore, web: TestClient) -> None:
    plant_team(store)
    assert web.get("/", headers={"host": "attacker.example"}).status_code == 400
    assert web.get("/", headers={"host": "attacker.example:8765"}).status_code == 400
    assert web.get("/", headers={"host": "localhost:8765"}).status_code == 200
    assert web.get("/", headers={"host": "[::1]:8765"}).status_code == 200
    assert web.get("/", headers={"host": "127.0.0.1.attacker.example"}).status_code == 400
    assert web.get("/", headers={"host": ""}).status_code == 400


def test_read_only_no_method_but_get(store: ConversationStore, web: TestClient) -> None:
    key = plant_team(store)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert web.request(method, f"/sessions/{key}").status_code == 405
    assert store.messages.count(key) == 4


def test_token_is_required_when_given(
    store: ConversationStore,
    backend_url: str | None,
    namespace: str,
    fake_server: fakeredis.FakeServer,
) -> None:
    key = plant_team(store)
    client = (
        fakeredis.FakeAsyncRedis(server=fake_server)
        if backend_url is None
        else redis.asyncio.Redis.from_url(backend_url)
    )
    token = "t" * 32
    app = create_app(
        AsyncConversationStore(client, namespace=namespace),
        token=token,
        hosts=allowed_hosts("192.0.2.10"),
        close_store=True,
    )
    with TestClient(app, base_url="http://192.0.2.10:8765") as web:
        assert web.get("/").status_code == 401
        assert web.get("/", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert web.get("/", headers={"authorization": f"Bearer {token}"}).status_code == 200
        first = web.get(f"/sessions/{key}?token={token}", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == f"/sessions/{key}"
        assert (
            "HttpOnly" in first.headers["set-cookie"]
            and "SameSite=Strict" in first.headers["set-cookie"]
        )
        assert web.get(f"/sessions/{key}").status_code == 200  # the cookie now
        assert web.get("/", headers={"host": "attacker.example"}).status_code == 400


def test_short_token_refused() -> None:
    with pytest.raises(ConfigurationError):
        create_app(AsyncConversationStore(fakeredis.FakeAsyncRedis()), token="short")


def test_host_names() -> None:
    assert [host_name(h) for h in ("a:1", "a", "[::1]:80", "[::1]", "::1")] == [
        "a",
        "a",
        "[::1]",
        "[::1]",
        "::1",
    ]


def test_loopback_detection() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.5.0.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.2", "::", "example.com"))
    assert "attacker.example" not in allowed_hosts("0.0.0.0")
    assert "10.0.0.5" in allowed_hosts("10.0.0.5") and "box.lan" in allowed_hosts(
        "0.0.0.0", ["box.lan"]
    )


def test_web_command_off_loopback_generates_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import uvicorn

    from convstore.cli import main

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # never contacted: run is stubbed
    assert main(["web", "--host", "0.0.0.0", "--port", "9999"]) == 0
    out = capsys.readouterr().out
    token = re.search(r"\?token=(\S+)", out).group(1)
    assert len(token) >= 16 and seen["host"] == "0.0.0.0" and seen["port"] == 9999
    with TestClient(seen["app"], base_url="http://127.0.0.1") as web:
        assert web.get("/").status_code == 401
    assert main(["web"]) == 0
    assert "?token=" not in capsys.readouterr().out  # loopback: no token unless asked


def test_web_command_needs_a_url(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from convstore.cli import main

    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["web"]) == 2
    assert "needs --url or REDIS_URL" in capsys.readouterr().err


def test_damaged_entry_is_left_out_and_counted(
    store: ConversationStore, web: TestClient, sync_client
) -> None:
    key = plant_team(store, n=3)
    sync_client.xadd(store.config.keyspace.session(key).messages, {b"junk": b"\xc1not msgpack"})
    html = web.get(f"/sessions/{key}").text
    assert "1 damaged entry on this page left out" in html
    assert [a["label"] for a in diagram_data(html)["arrows"]] == ["step 0", "step 1", "step 2"]
    assert 'data-after="' in html  # the live cursor still found: the damaged entry's id
    lines = [json.loads(line) for line in web.get(f"/export/{key}").text.splitlines()]
    assert [line["kind"] for line in lines] == [
        "session",
        "message",
        "message",
        "message",
        "damaged",
    ]
    assert "not a valid msgpack payload" in lines[-1]["error"]


def test_inbox_view_lists_groups_and_dead_letters(
    store: ConversationStore, web: TestClient, sync_client, namespace: str
) -> None:
    delivering = ConversationStore(sync_client, namespace=namespace, inboxes=True)
    key = plant_team(store, n=0)
    for i in (1, 2, 3):
        delivering.messages.append(
            key, agent_message(key, i, "mc_1", "agent_a", "task_assignment", EVIL)
        )
    with delivering.inbox("agent_a", group="g", consumer="c1", batch=1, wait=1.0) as inbox:
        item = next(inbox)
        assert item.reject("cannot parse <b>this</b>")
        assert next(inbox).ack()
        next(inbox)  # held: pending
        page = web.get("/inboxes/agent_a").text
    # per group: delivered 3, pending 1, acknowledged 2 (one acked, one dead-lettered)
    assert '<tr data-group="g">' in page
    row = page.split('<tr data-group="g">', 1)[1].split("</tr>", 1)[0]
    assert '<td class="num pending">1</td>' in row
    assert '<td class="num acknowledged">2</td>' in row
    assert "3 entries held, 1 dead letters." in page
    session_html = web.get(f"/sessions/{key}").text
    assert 'href="/inboxes/agent_a">inbox</a>' in session_html
    html = web.get("/inboxes/agent_a").text
    assert html.count("data-dead-id=") == 1
    assert "cannot parse &lt;b&gt;this&lt;/b&gt;" in html and "<script>alert" not in html
    assert f'href="/sessions/{key}"' in html and "g / c1" in html
    assert "No dead letters." in web.get("/inboxes/nobody").text
    delivering.inboxes.delete("agent_a")
