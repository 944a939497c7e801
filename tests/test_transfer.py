"""Export/import restores sessions exactly: revisions, last activity, ids, entry ids."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest
import redis

from conftest import REDIS_URL, require_real_redis
from convstore import ConversationStore, Retention, SessionKeyConflict, StoreError
from convstore.plans import transfer as tp
from convstore.transfer import export_jsonl, from_json_value, import_jsonl, to_json_value


def _copy(store: ConversationStore, client: redis.Redis, ns: str) -> ConversationStore:
    return ConversationStore(client, namespace=ns)


def _drop(client: redis.Redis, ns: str) -> None:
    for key in client.scan_iter(match=f"{ns}:*"):
        client.delete(key)


def test_tagged_json_values_round_trip() -> None:
    from datetime import UTC, datetime

    value = {
        "b": b"\x00",
        "d": datetime(2024, 1, 1, tzinfo=UTC),
        "nan": float("inf"),
        "$dt": "just a key",
        "wrapped": {"$b64": "not bytes"},
        "list": [1, 2.5, None, True, "s"],
    }
    assert from_json_value(to_json_value(value)) == value
    assert to_json_value({"$b64": "x"}) == {"$map": {"$b64": "x"}}


def test_import_restores_ids_revisions_and_activity_exactly(
    store: ConversationStore, sync_client: redis.Redis, make_session: Any
) -> None:
    key = store.sessions.create(make_session("exact", "mc_to_agent", note="n"))
    results = store.messages.append_many(
        key, [{"role": "user", "content": str(i)} for i in range(5)]
    )
    store.messages.delete_message(key, results[1].message_id)  # a gap in the stream ids
    stored = store.sessions.get(key)
    assert stored is not None
    store.sessions.save(stored)  # revision 2
    store.sessions.set_retention(key, Retention(max_messages=100, ttl=3600))
    out = io.StringIO()
    assert export_jsonl(store, out).messages == 4
    ns = f"{store.namespace}-x"
    target = _copy(store, sync_client, ns)
    try:
        report = import_jsonl(target, io.StringIO(out.getvalue()))
        assert (report.sessions, report.messages_added) == (1, 4)
        source_state = store.driver.run(tp.session_state(store.config, key))
        target_state = target.driver.run(tp.session_state(target.config, key))
        for field in (
            "revision",
            "last_activity_us",
            "count_field",
            "max_messages",
            "ttl_ms",
            "last_id",
        ):
            assert getattr(source_state, field) == getattr(target_state, field), field
        assert 0 < target_state.pttl_ms <= 3_600_000  # the TTL restarts at import
        copied = target.sessions.get(key)
        assert copied == store.sessions.get(key) and copied is not None and copied.revision == 2
        entries = lambda s: s.driver.run(tp.read_entries(s.config, key, None, 100))  # noqa: E731
        assert entries(target) == entries(store)
        assert [p.items for p in (target.sessions.list(),)] == [store.sessions.list().items]
        after = target.messages.append(key, {"role": "user", "content": "next"})
        assert after.entry_id > entries(store)[-1][0] and after.created
        # a different session owning the key is refused; an earlier entry id is refused
        other = make_session(key, "user_to_mc")  # same key, another session
        with pytest.raises(SessionKeyConflict):
            target.driver.run(
                tp.restore_session(target.config, other, revision=1, last_activity_us=1)
            )
        late = tp.ImportedEntry("1-0", str(uuid.uuid4()), "user", "old", "2001-01-01T00:00:00", {})
        with pytest.raises(StoreError, match="cannot be imported"):
            target.driver.run(tp.import_entries(target.config, key, [late]))
    finally:
        _drop(sync_client, ns)


@pytest.mark.slow
def test_100k_messages_round_trip_byte_for_byte(tmp_path: Any) -> None:
    """100,000 messages: export, import into another namespace, export: identical files."""
    require_real_redis()
    from benchmarks.transfer import _cleanup, _fill

    tag = uuid.uuid4().hex[:8]
    source = ConversationStore.from_url(REDIS_URL, namespace=f"t-big-{tag}")
    target = ConversationStore.from_url(REDIS_URL, namespace=f"t-big-{tag}-copy")
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    try:
        _fill(source, 100_000, 4)
        with first.open("w", encoding="utf-8") as out:
            assert export_jsonl(source, out).messages == 100_000
        with first.open(encoding="utf-8") as lines:
            assert import_jsonl(target, lines).messages_added == 100_000
        with second.open("w", encoding="utf-8") as out:
            export_jsonl(target, out)
        assert first.read_bytes() == second.read_bytes()
    finally:
        _cleanup(source.client, source.namespace)
        _cleanup(target.client, target.namespace)
