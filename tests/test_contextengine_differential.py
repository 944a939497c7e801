"""ContextEngineStore against the REAL aiecs 2.2.0 ContextEngine: same calls, same shapes.

The reference is loaded from its published wheel (tests/aiecs_reference.py) and pointed,
through REDIS_HOST/REDIS_PORT/REDIS_DB, at a private redis-server this test starts on a free
loopback port: it writes global keys (``sessions``, ``task_contexts``...), so it never sees
the shared server. ContextEngineStore uses the same private server under its own namespace.
Each comparison is counted (tests/differential.py); the last test prints the counts and
asserts that nothing differs except the deliberate differences in ``DELIBERATE``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from differential import without_message_ids as no_ids
from differential_pair import Pair, add_messages, contents, pair_fixture, private_server_fixture  # noqa: F401

# one xdist worker runs all of the aiecs tests, in file order (the summary test comes last,
# and the wheel is downloaded once)
pytestmark = [pytest.mark.aiecs, pytest.mark.xdist_group("aiecs")]


async def test_sessions(pair: Pair) -> None:
    p = pair
    await p.compare("create_session", "create_session", "s1", "alice", {"src": "web"})
    await p.compare("get_session", "get_session", "s1")
    await p.compare("get_session unknown", "get_session", "nope", values=True)
    await p.compare("update_session unknown", "update_session", "nope", values=True)
    await p.compare(
        "update_session",
        "update_session",
        "s1",
        {"status": "paused", "bogus": 1},
        increment_requests=True,
        add_processing_time=1.5,
        mark_error=True,
        values=True,
    )
    r, o = await p.compare("get_session after update", "get_session", "s1")
    keys = ("user_id", "request_count", "error_count", "total_processing_time", "status")
    p.diff.check(
        "get_session after update values",
        {k: r[k] for k in keys},
        {k: o.get(k) for k in keys} if isinstance(o, dict) else o,
        values=True,
    )
    await p.compare("end_session", "end_session", "s1", "completed", values=True)
    r, o = await p.compare("get_session after end", "get_session", "s1")
    p.diff.check(
        "get_session status after end",
        r["status"],
        o.get("status") if isinstance(o, dict) else o,
        values=True,
    )
    await p.compare("end_session unknown", "end_session", "nope", values=True)
    p.diff.done()


async def test_history_limits(pair: Pair) -> None:
    p = pair
    await p.compare("create_session", "create_session", "h", "bob")
    everything = await add_messages(p, "h", 7)
    r, o = await p.compare(
        "get_conversation_history limit=0",
        "get_conversation_history",
        "h",
        0,
        adjust=no_ids,
        deliberate="message_id_in_metadata",
    )
    p.diff.check(
        "history limit=0 order", contents(r), contents(o) if isinstance(o, list) else o, values=True
    )
    p.diff.check(
        "history item type",
        type(r[0]).__name__,
        type(o[0]).__name__ if isinstance(o, list) and o else o,
        values=True,
        deliberate="dicts_not_objects",
        expect="dict",
    )
    for limit in (5, 50):
        r, o = await p.compare(
            f"get_conversation_history limit={limit}",
            "get_conversation_history",
            "h",
            limit,
            adjust=no_ids,
            deliberate="message_id_in_metadata",
        )
        p.diff.check(
            f"history limit={limit} contents",
            contents(r),
            contents(o) if isinstance(o, list) else o,
            values=True,
            deliberate="limit_newest",
            expect=everything[-limit:],
        )
    await p.compare(
        "get_conversation_history unknown", "get_conversation_history", "nope", 5, values=True
    )
    p.diff.done()


async def test_over_the_cap(pair: Pair) -> None:
    p = pair
    p.ref.conversation_limit = 3
    p.ours.conversation_limit = 3  # set after construction, the way aiecs configures an engine
    await p.compare("create_session", "create_session", "cap", "carol")
    everything = await add_messages(p, "cap", 5)
    r, o = await p.compare(
        "history over the cap",
        "get_conversation_history",
        "cap",
        0,
        adjust=no_ids,
        deliberate="message_id_in_metadata",
    )
    p.diff.check(
        "history over the cap contents",
        contents(r),
        contents(o) if isinstance(o, list) else o,
        values=True,
        deliberate="trim_newest",
        expect=everything[-3:],
    )
    p.diff.done()


async def test_json_shaped_values(pair: Pair) -> None:
    p = pair
    await p.compare("create_session", "create_session", "j", "dave")
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    await p.compare(
        "add message with datetime/tuple metadata",
        "add_conversation_message",
        "j",
        "user",
        "x",
        {"when": when, "pair": (1, 2), "nested": {"at": when}},
        values=True,
    )
    r, o = await p.compare(
        "history with datetime/tuple metadata",
        "get_conversation_history",
        "j",
        0,
        adjust=no_ids,
        deliberate="message_id_in_metadata",
    )
    p.diff.check(
        "datetime/tuple metadata values (the reference's JSON)",
        r[0].metadata,
        no_ids(o)[0]["metadata"] if isinstance(o, list) and o else o,
        values=True,
    )
    p.diff.done()


async def test_append_to_unknown_session_is_kept(pair: Pair) -> None:
    p = pair
    await p.compare(
        "add_conversation_message to a never-created session",
        "add_conversation_message",
        "ghost",
        "user",
        "boo",
        values=True,
    )
    await p.compare(
        "add another", "add_conversation_message", "ghost", "assistant", "hi", values=True
    )
    r, o = await p.compare(
        "history of a never-created session",
        "get_conversation_history",
        "ghost",
        0,
        adjust=no_ids,
        deliberate="message_id_in_metadata",
    )
    p.diff.check(
        "history of a never-created session contents",
        contents(r),
        contents(o) if isinstance(o, list) else o,
        values=True,
    )
    await p.compare("get_session of a never-created session", "get_session", "ghost", values=True)
    await p.compare(
        "update_session of a never-created session", "update_session", "ghost", values=True
    )
    await p.compare("create_session after appends", "create_session", "ghost", "erin")
    r, o = await p.compare(
        "history after create_session",
        "get_conversation_history",
        "ghost",
        0,
        adjust=no_ids,
        deliberate="message_id_in_metadata",
    )
    p.diff.check(
        "history after create_session contents",
        contents(r),
        contents(o) if isinstance(o, list) else o,
        values=True,
    )
    await p.compare(
        "add_agent_communication_message to a never-created key",
        "add_agent_communication_message",
        "ghost_mc_to_writer",
        "mc",
        "master_controller",
        None,
        "a1",
        "agent",
        "writer",
        "go",
        "task_assignment",
        values=True,
    )
    await p.compare(
        "agent history of a never-created key",
        "get_agent_conversation_history",
        "ghost_mc_to_writer",
        0,
    )
    p.diff.done()


async def test_agent_conversations(pair: Pair) -> None:
    p = pair
    people = [
        {"id": "mc", "type": "master_controller"},
        {"id": "a1", "type": "agent", "role": "writer"},
    ]
    r, _ = await p.compare(
        "create_conversation_session",
        "create_conversation_session",
        "base",
        people,
        "mc_to_agent",
        {"topic": "t"},
        values=True,
    )
    key = r
    types = [
        "task_assignment",
        "result_report",
        "communication",
        "result_report",
        "task_assignment",
        "result_report",
    ]
    for i, kind in enumerate(types):
        sender = (
            ("mc", "master_controller", None, "a1", "agent", "writer")
            if i % 2 == 0
            else ("a1", "agent", "writer", "mc", "master_controller", None)
        )
        await p.compare(
            f"add_agent_communication_message #{i}",
            "add_agent_communication_message",
            key,
            *sender,
            f"c{i}",
            kind,
            {"n": i},
            values=True,
        )
    await p.compare(
        "get_agent_conversation_history limit=0", "get_agent_conversation_history", key, 0
    )
    r, o = await p.compare(
        "get_agent_conversation_history limit=2", "get_agent_conversation_history", key, 2
    )
    p.diff.check(
        "agent history limit=2 contents",
        contents(r),
        contents(o) if isinstance(o, list) else o,
        values=True,
        deliberate="limit_newest",
        expect=["c4", "c5"],
    )
    r, o = await p.compare(
        "agent history message_types=[result_report] limit=2",
        "get_agent_conversation_history",
        key,
        2,
        ["result_report"],
    )
    p.diff.check(
        "agent history filtered contents",
        contents(r),
        contents(o) if isinstance(o, list) else o,
        values=True,
        deliberate="filter_before_limit",
        expect=["c3", "c5"],
    )
    r, o = await p.compare(
        "agent history message_types=[] (falsy: no filter)",
        "get_agent_conversation_history",
        key,
        0,
        [],
    )
    p.diff.check(
        "agent history message_types=[] count",
        len(r),
        len(o) if isinstance(o, list) else o,
        values=True,
    )
    await p.compare(
        "update_session on an agent conversation key", "update_session", key, values=True
    )
    await p.compare("end_session on an agent conversation key", "end_session", key, values=True)
    await p.compare("get_session on an agent conversation key", "get_session", key, values=True)
    p.diff.done()


async def test_conversation_session_does_not_overwrite_session(pair: Pair) -> None:
    p = pair
    r0, o0 = await p.compare("create_session", "create_session", "chat", "alice")
    people = [{"id": "bob", "type": "user"}, {"id": "mc", "type": "master_controller"}]
    await p.compare(
        "create_conversation_session user_to_mc on the same id",
        "create_conversation_session",
        "chat",
        people,
        "user_to_mc",
        values=True,
    )
    r, o = await p.compare("get_session after create_conversation_session", "get_session", "chat")
    same = ("user_id", "created_at", "status")
    p.diff.check(
        "session record kept",
        {k: r[k] == r0[k] for k in same},
        {k: o.get(k) == o0.get(k) for k in same}
        if isinstance(o, dict) and isinstance(o0, dict)
        else o,
        values=True,
    )
    r, o = await p.compare("get_metrics", "get_metrics")
    p.diff.check(
        "active_sessions",
        r["active_sessions"],
        o.get("active_sessions") if isinstance(o, dict) else o,
        values=True,
    )
    p.diff.done()
