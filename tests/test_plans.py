"""The plans stepped directly with canned replies: no Redis, no driver (as h11 tests its core).

Each test starts a plan generator, checks the exact step it yields, answers with ``send()``
what Redis would reply, and checks the result or the typed error it ends with.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from convstore import (
    CodecError,
    ConcurrentModification,
    ConversationParticipant,
    ConversationSession,
    KeySpace,
    Retention,
    SessionExists,
    SessionKeyConflict,
    SessionNotFound,
    ValidationError,
    codec,
    lua,
    plans,
)
from convstore.plans import AppendResult, Batch, Call, Plan, Run, StoreConfig
from convstore.plans.values import epoch_micros

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOW_US = epoch_micros(NOW)
NS = "ns"


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scripts' "now" argument comes from the plans' clock: fix it so steps are exact."""
    monkeypatch.setattr("convstore.plans.config.now_micros", lambda: NOW_US)


def config(*, cluster: bool = False, ttl: float | None = None) -> StoreConfig:
    return StoreConfig(KeySpace(NS), Retention(ttl=ttl), cluster=cluster)


def keys(key: str) -> tuple[str, ...]:
    return KeySpace(NS).session(key).all()


def common(key: str, *, inline: bool = True, ttl_ms: int = 0) -> tuple[str, ...]:
    return ("1" if inline else "0", key, str(NOW_US), str(ttl_ms))


class Stepper:
    """Drive one plan: ``first()`` is its first step, ``send(reply)`` the next one."""

    def __init__(self, plan: Plan[Any]) -> None:
        self.plan = plan
        self.result: Any = None

    def first(self) -> Any:
        return next(self.plan)

    def send(self, reply: Any) -> Any:
        """The next step, or None when the plan returned (its value is in ``result``)."""
        try:
            return self.plan.send(reply)
        except StopIteration as done:
            self.result = done.value
            return None


def session(session_id: str = "s", revision: int = 0) -> ConversationSession:
    people = [
        ConversationParticipant("mc", "master_controller"),
        ConversationParticipant("a1", "agent", "analyst"),
    ]
    s = ConversationSession(session_id, people, "mc_to_agent", NOW, NOW, {"k": 1})
    s.revision = revision
    return s


INDEXES = (
    f"{NS}:idx:all",
    f"{NS}:idx:type:mc_to_agent",
    f"{NS}:idx:participant:mc",
    f"{NS}:idx:participant-type:mc_to_agent:mc",
    f"{NS}:idx:participant:a1",
    f"{NS}:idx:participant-type:mc_to_agent:a1",
)


# --------------------------------------------------------------------------- sessions


def _save_step(s: ConversationSession, expected: int, key: str = "s_mc_to_analyst") -> Run:
    return Run(
        lua.SAVE,
        keys(key),
        (
            *common(key),
            codec.encode_session(s),
            codec_identity(s),
            expected,
            epoch_micros(s.last_activity),
            "\n".join(INDEXES),
        ),
    )


def codec_identity(s: ConversationSession) -> bytes:
    import msgpack

    parse = s.key_parse()
    packed: bytes = msgpack.packb([str(parse.session_type), parse.session_id, list(parse.roles)])
    return packed


def test_save_yields_one_script_and_sets_revision_and_activity() -> None:
    s = session(revision=4)
    run = Stepper(plans.save_session(config(), s, False))
    assert run.first() == _save_step(s, 4)
    assert run.send([5, str(NOW_US + 7).encode(), b""]) is None
    assert run.result == "s_mc_to_analyst"
    assert s.revision == 5
    assert epoch_micros(s.last_activity) == NOW_US + 7


def test_save_force_sends_any_revision_and_create_sends_none_stored() -> None:
    s = session(revision=4)
    assert Stepper(plans.save_session(config(), s, True)).first().args[-3] == -1
    assert Stepper(plans.create_session(config(), s)).first().args[-3] == 0


@pytest.mark.parametrize(
    ("revision", "reply", "error"),
    [
        (0, [-3, 2], SessionExists),  # a freshly built copy of a stored session
        (1, [-3, 2], ConcurrentModification),  # a loaded copy that went stale
        (0, [-2, codec_identity(session("other"))], SessionKeyConflict),
    ],
)
def test_save_statuses_become_typed_errors(revision: int, reply: Any, error: type) -> None:
    s = session(revision=revision)
    run = Stepper(plans.save_session(config(), s, False))
    run.first()
    with pytest.raises(error) as caught:
        run.send(reply)
    if error is ConcurrentModification:
        assert not isinstance(caught.value, SessionExists)
        assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert s.revision == revision  # nothing changed on the caller's copy


def test_save_on_cluster_updates_the_indexes_after_the_script() -> None:
    s = session()
    run = Stepper(plans.save_session(config(cluster=True), s, False))
    first = run.first()
    assert first.args[0] == "0"  # the script does not touch the indexes
    stale = f"{NS}:idx:type:user_to_mc"
    batch = run.send([1, b"99", stale.encode()])
    assert isinstance(batch, Batch)
    assert [c.args for c in batch.steps] == [
        *[("ZADD", index, "GT", b"99", "s_mc_to_analyst") for index in INDEXES],
        ("ZREM", stale, "s_mc_to_analyst"),
    ]
    assert run.send([1] * len(batch.steps)) is None and run.result == "s_mc_to_analyst"


def test_get_reads_three_fields_and_decodes() -> None:
    stored = session()
    run = Stepper(plans.get_session(config(), "s_mc_to_analyst"))
    assert run.first() == Call(("HMGET", keys("s_mc_to_analyst")[0], "rec", "rev", "la"))
    assert run.send([codec.encode_session(stored), b"3", str(NOW_US + 1).encode()]) is None
    assert run.result.revision == 3
    assert epoch_micros(run.result.last_activity) == NOW_US + 1  # the hash's, not the record's
    assert run.result.to_dict() | {"last_activity": NOW.isoformat()} == stored.to_dict()

    missing = Stepper(plans.get_session(config(), "nope"))
    missing.first()
    assert missing.send([None, None, None]) is None and missing.result is None


def test_delete_and_its_cluster_cleanup() -> None:
    run = Stepper(plans.delete_session(config(), "k"))
    assert run.first() == Run(lua.DELETE, keys("k"), common("k"))
    assert run.send([1, b""]) is None and run.result is True
    gone = Stepper(plans.delete_session(config(cluster=True), "k"))
    gone.first()
    step = gone.send([1, f"{NS}:idx:all".encode()])
    assert step == Batch((Call(("ZREM", f"{NS}:idx:all", "k")),))
    assert gone.send([1]) is None and gone.result is True


def test_list_pages_through_the_index_and_drops_expired_entries() -> None:
    b = session("b").generate_session_key()  # "b_mc_to_analyst": the member is the key
    run = Stepper(plans.list_sessions(config(), None, None, 2, None))
    assert run.first() == Run(lua.LIST, (f"{NS}:idx:all",), ("+inf", 2))
    batch = run.send([b"a", b"20", b.encode(), b"10"])
    assert batch == Batch(
        (
            Call(("HMGET", keys("a")[0], "rec", "rev", "la")),
            Call(("HMGET", keys(b)[0], "rec", "rev", "la")),
        )
    )
    # "a" expired by TTL: its index entry is dropped; one more round for the second item
    step = run.send([[None, None, None], [codec.encode_session(session("b")), b"1", b"10"]])
    assert step == Run(lua.LIST, (f"{NS}:idx:all",), ("10", 4))  # doubling: "b" may wait
    assert run.send([b.encode(), b"10"]) == Call(("ZREM", f"{NS}:idx:all", b"a"))  # none older
    assert run.send(1) is None
    assert [s.session_id for s in run.result.items] == ["b"]
    assert run.result.cursor is None


def test_list_limit_zero_is_refused_before_any_step() -> None:
    with pytest.raises(ValidationError, match="use None for all"):
        next(plans.list_sessions(config(), None, None, 0, None))


# --------------------------------------------------------------------------- messages


def _entry_row(entry_id: bytes, mid: str, content: str) -> tuple[bytes, dict[bytes, bytes]]:
    payload = codec.encode_entry("user", content, NOW, {})
    return entry_id, {codec.encode_message_id(mid): payload}


def test_append_sends_ids_timestamps_and_payloads_in_one_script() -> None:
    message = {"role": "user", "content": "hi", "timestamp": NOW, "metadata": {"message_id": "m1"}}
    run = Stepper(plans.append_messages(config(), "k", [message]))
    step = run.first()
    assert isinstance(step, Run) and step.script is lua.APPEND
    assert step.keys == tuple(k.encode() for k in keys("k"))  # sent as bytes
    assert step.args == (
        # inline, a never saved session refused (the adapter's unsaved_ok is off), an id
        # the caller chose (so the script looks it up), now, no default TTL, no max
        # messages, no max age, no expect_last; then the member
        f"100 {NOW_US} 0 0 0 *",
        "k",
        codec.encode_message_id("m1"),
        str(NOW_US // 1000),  # no tool-call fields: the timestamp alone
        codec.encode_entry("user", "hi", NOW, {}),
    )
    assert run.send(b"5 1714564800000-0+") is None
    assert run.result == [AppendResult("m1", "1714564800000-0", True)]


def test_a_plain_dict_takes_the_short_path_to_the_same_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A message with plain fields and no timestamp is cleared in one test (the common
    case); one whose metadata is no dict, or with a timestamp to parse, goes through the
    field-by-field checks. Both build the same step, and the caller's metadata is never
    changed."""
    from types import MappingProxyType

    monkeypatch.setattr("convstore.plans.append.utc_now", lambda: NOW)
    metadata = {"message_id": "m1", "model": "gpt", "tags": ["a"]}
    plain = {"role": "user", "content": "hi", "metadata": metadata}
    first = Stepper(plans.append_messages(config(), "k", [plain])).first()
    assert first.args[2:] == (
        codec.encode_message_id("m1"),
        str(NOW_US // 1000),
        codec.encode_entry("user", "hi", NOW, {"model": "gpt", "tags": ["a"]}),
    )
    assert metadata == {"message_id": "m1", "model": "gpt", "tags": ["a"]}  # a copy was popped
    for other in (
        MappingProxyType(plain),  # not a dict
        {**plain, "metadata": MappingProxyType(metadata)},  # metadata not a dict
        {**plain, "timestamp": NOW},  # a timestamp to parse
    ):
        assert Stepper(plans.append_messages(config(), "k", [other])).first() == first
    bare = Stepper(plans.append_messages(config(), "k", [{"role": "user", "content": "hi"}]))
    assert bare.first().args[4] == codec.encode_entry("user", "hi", NOW, {})
    for bad, match in (
        ({"role": "", "content": "hi", "metadata": {}}, "role must be a non-empty string"),
        ({"role": "user", "content": 1, "metadata": {}}, "content must be a string"),
        ({"role": "user", "content": "", "metadata": {}, "extra": 1}, "unexpected"),
    ):
        with pytest.raises(ValidationError, match=match):
            next(plans.append_messages(config(), "k", [bad]))


def test_append_sends_tool_call_fields_after_the_timestamp() -> None:
    metadata = {"message_id": "m1", "tool_calls": [{"id": "c1"}, {"id": "c\t2"}]}
    message = {"role": "assistant", "content": "", "timestamp": NOW, "metadata": metadata}
    step = Stepper(plans.append_messages(config(), "k", [message])).first()
    assert step.args[-3:] == (
        codec.encode_message_id("m1"),
        f"{NOW_US // 1000}\tc1\nc%092\t",  # "<ms>\t<tc>\t<tr>", ids escaped
        codec.encode_entry("assistant", "", NOW, {"tool_calls": metadata["tool_calls"]}),
    )


def test_generated_message_ids_are_uuid4_and_stored_compactly() -> None:
    run = Stepper(plans.append_messages(config(), "k", [{"role": "user", "content": "x"}] * 3))
    step = run.first()
    stored = step.args[2::3]
    # ids generated here: the first send skips the retried-id lookup, a re-send does not
    assert step.args[0] == f"101 {NOW_US} 0 0 0 *"
    assert step.resent().args == (f"100 {NOW_US} 0 0 0 *", *step.args[1:])
    assert step.resent().resent() == step.resent()
    run.send(b"1 1-0+ 1-1+ 1-2+")
    for result, raw in zip(run.result, stored, strict=True):
        parsed = uuid.UUID(result.message_id)
        assert parsed.version == 4 and str(parsed) == result.message_id
        assert raw == codec.encode_message_id(result.message_id)
    assert len({r.message_id for r in run.result}) == 3


def test_append_reply_marks_retried_ids_and_on_a_cluster_names_the_indexes() -> None:
    messages = [
        {"role": "user", "content": c, "timestamp": NOW, "metadata": {"message_id": c}}
        for c in ("a", "b")
    ]
    run = Stepper(plans.append_messages(config(cluster=True), "k", messages))
    run.first()
    step = run.send(b"7 1714564800000-0= 1714564800000-1+\nns:idx:all\nns:idx:type:x")
    assert step == Batch(
        (
            Call(("ZADD", "ns:idx:all", "GT", "7", "k")),
            Call(("ZADD", "ns:idx:type:x", "GT", "7", "k")),
        )
    )
    assert run.send([1, 1]) is None
    assert run.result == [
        AppendResult("a", "1714564800000-0", False),
        AppendResult("b", "1714564800000-1", True),
    ]


def test_append_status_replies_still_raise_typed_errors() -> None:
    run = Stepper(plans.append_messages(config(), "k", [{"role": "user", "content": "x"}]))
    run.first()
    with pytest.raises(CodecError, match="damaged"):
        run.send([-4, b"lid", b"garbage"])


def test_append_to_a_missing_session_suggests_keys() -> None:
    run = Stepper(plans.append_messages(config(), "c2", [{"role": "user", "content": "x"}]))
    run.first()
    scan = run.send([-1])
    assert scan == Run(lua.SUGGEST, (f"{NS}:idx:all",), ("c2_*", 500, 250, 3))
    with pytest.raises(SessionNotFound, match="did you mean 'c2_mc_to_analyst'"):
        run.send([b"c2_mc_to_analyst"])


def test_append_of_nothing_still_checks_the_session() -> None:
    run = Stepper(plans.append_messages(config(), "k", []))
    assert run.first() == Call(("HEXISTS", keys("k")[0], "rec"))  # a saved session, not a hash
    assert run.send(1) is None and run.result == []


def test_history_all_and_newest_n() -> None:
    rows = [_entry_row(b"1-0", "m1", "one"), _entry_row(b"2-0", "m2", "two")]
    run = Stepper(plans.history(config(), "k", None))
    assert run.first() == Call(("XRANGE", keys("k")[1], "-", "+"), raw_reply=True)
    assert run.send(rows) is None
    assert [(e["content"], e["metadata"]["message_id"]) for e in run.result] == [
        ("one", "m1"),
        ("two", "m2"),
    ]
    newest = Stepper(plans.history(config(), "k", 2))
    assert newest.first() == Call(("XREVRANGE", keys("k")[1], "+", "-", "COUNT", 2), raw_reply=True)
    newest.send(list(reversed(rows)))
    assert [e["content"] for e in newest.result] == ["one", "two"]  # chronological
    # the reply as Redis sent it (raw_reply): each row's fields a flat list, the same read
    flat = [[i, [x for pair in fields.items() for x in pair]] for i, fields in rows]
    again = Stepper(plans.history(config(), "k", None))
    again.first()
    again.send(flat)
    assert again.result == run.result
    typed = Stepper(plans.read_messages(config(), "k", None))
    assert typed.first() == Call(("XRANGE", keys("k")[1], "-", "+"), raw_reply=True)
    typed.send(flat)
    assert [m.as_dict() for m in typed.result] == run.result
    assert [(m.content, m.message_id) for m in typed.result] == [("one", "m1"), ("two", "m2")]


def test_empty_history_tells_empty_from_missing() -> None:
    run = Stepper(plans.history(config(), "k", 3))
    run.first()
    assert run.send([]) == Call(("EXISTS", keys("k")[0]))
    assert run.send(1) is None and run.result == []
    gone = Stepper(plans.history(config(), "k", 3))
    gone.first()
    gone.send([])
    assert gone.send(0) == Run(lua.SUGGEST, (f"{NS}:idx:all",), ("k_*", 500, 250, 3))
    with pytest.raises(SessionNotFound) as caught:
        gone.send([])
    assert caught.value.suggestions == ()


def test_page_asks_for_one_more_to_know_there_is_a_next_page() -> None:
    rows = [
        _entry_row(b"3-0", "m3", "c"),
        _entry_row(b"2-0", "m2", "b"),
        _entry_row(b"1-0", "m1", "a"),
    ]
    run = Stepper(plans.page(config(), "k", None, 2))
    assert run.first() == Call(("XREVRANGE", keys("k")[1], "+", "-", "COUNT", 3), raw_reply=True)
    run.send(rows)
    assert [e["content"] for e in run.result.items] == ["b", "c"]
    assert run.result.cursor == "2-0"
    older = Stepper(plans.page(config(), "k", "2-0", 2))
    assert older.first() == Call(
        ("XREVRANGE", keys("k")[1], "(2-0", "-", "COUNT", 3), raw_reply=True
    )
    older.send(rows[2:])
    assert [e["content"] for e in older.result.items] == ["a"] and older.result.cursor is None
    with pytest.raises(ValidationError):
        next(plans.page(config(), "k", "not-a-cursor", 2))


def test_count_and_missing_session() -> None:
    run = Stepper(plans.count(config(ttl=2), "k"))
    assert run.first() == Run(lua.COUNT, keys("k"), common("k", ttl_ms=2000))
    assert run.send([1, 7]) is None and run.result == 7
    gone = Stepper(plans.count(config(), "k"))
    gone.first()
    assert gone.send([-1]).script is lua.SUGGEST  # the suggestion lookup
    with pytest.raises(SessionNotFound):
        gone.send([])


def test_limits_are_checked_before_anything_is_sent() -> None:
    for plan in (
        plans.history(config(), "k", 0),
        plans.page(config(), "k", None, 0),
        plans.agent_messages(config(), "k", None, None, 0),
    ):
        with pytest.raises(ValidationError, match="use None for all"):
            next(plan)


def test_new_message_ids_are_distinct_canonical_uuid4() -> None:
    ids = plans.new_message_ids(200)
    assert len(set(ids)) == 200
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids)


def test_contextengine_view_reads_the_boundary_and_the_rows_in_one_pipeline() -> None:
    """The compacted view: HMGET of the boundary and summary, then the rows, one round
    trip; only rows at or after the boundary are the view's, oldest first."""
    from convstore.plans import contextengine as cep

    rows = [_entry_row(f"{i}-0".encode(), f"m{i}", f"c{i}") for i in range(1, 6)]
    fields = Call(("HMGET", keys("k")[0], "ce:cb", "ce:sum"), raw_reply=True)
    summary = codec.encode_entry("system", "the summary", NOW, {})

    def run(limit: int, reply: list[Any]) -> cep.View:
        stepper = Stepper(cep.view(config(), "k", limit))
        read = (
            ("XRANGE", keys("k")[1], "-", "+")
            if limit == 0
            else ("XREVRANGE", keys("k")[1], "+", "-", "COUNT", limit)
        )
        assert stepper.first() == Batch((fields, Call(read, raw_reply=True)))
        assert stepper.send(reply) is None
        return stepper.result  # type: ignore[no-any-return]

    everything = run(0, [[None, None], rows])
    assert everything.summary is None and everything.boundary is None
    assert [e["content"] for e in everything.entries] == ["c1", "c2", "c3", "c4", "c5"]
    compacted = run(0, [[b"3-0", summary], rows])
    assert compacted.boundary == "3-0" and compacted.summary["content"] == "the summary"
    assert [e["content"] for e in compacted.entries] == ["c3", "c4", "c5"]
    assert compacted.ids == ["3-0", "4-0", "5-0"]
    newest = run(4, [[b"3-0", summary], rows[::-1][:4]])  # 5, 4, 3, 2: 2 is compacted
    assert [e["content"] for e in newest.entries] == ["c3", "c4", "c5"]
    assert newest.ids == ["3-0", "4-0", "5-0"]
    assert [e["content"] for e in run(2, [[b"3-0", summary], rows[::-1][:2]]).entries] == [
        "c4",
        "c5",
    ]
    assert run(0, [[b"9-0", summary], rows]).entries == []  # compacted past every row
    assert [e["content"] for e in run(0, [[b"4", summary], rows]).entries] == ["c4", "c5"]
    for damaged in (b"garbage", b"1-", b"1-x", b"-1"):  # a boundary convstore never writes
        stepper = Stepper(cep.view(config(), "k", 0))
        stepper.first()
        with pytest.raises(CodecError, match="compaction boundary"):
            stepper.send([[damaged, summary], rows])
