"""Size limits: refused at write with a ValidationError naming field and limit, before a send;
whatever the write side accepts, the read side reads back."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from conftest import SessionFactory, Store, StoreFactory, aw
from convstore import ConversationParticipant, Limits, codec
from convstore.errors import CodecError, ValidationError
from convstore.limits import HARD_MAX_BYTES, MIB

SMALL = Limits(
    max_content_bytes=100,
    max_metadata_bytes=100,
    max_record_bytes=1000,
    max_batch_messages=3,
    max_batch_bytes=2000,
)


@pytest.fixture
def st(factory: StoreFactory) -> Store:
    return factory(limits=SMALL)


def msg(content: str = "x", **metadata: Any) -> dict[str, Any]:
    return {"role": "user", "content": content, "metadata": metadata}


async def refused(call: Any, field: str, limit: str) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        await aw(call())
    assert info.value.field == field, info.value
    assert limit in str(info.value)
    return info.value


async def test_defaults_refuse_the_17_mib_append_that_reads_could_not_take(
    factory: StoreFactory, make_session: SessionFactory, sync_client: redis.Redis
) -> None:
    st = factory()
    assert st.config.limits == Limits()
    key = await aw(st.sessions.save(make_session("big")))
    error = await refused(
        lambda: st.messages.append(key, msg("x" * 17 * MIB)), "content", "max_content_bytes"
    )
    assert f"content is {17 * MIB} characters" in str(error)
    await refused(
        lambda: st.messages.append(key, msg("é" * 5 * MIB)), "content", "max_content_bytes"
    )
    await refused(
        lambda: st.messages.append(key, msg(blob=b"x" * 2 * MIB)), "metadata", "max_metadata_bytes"
    )
    big = make_session("big")
    big.metadata["blob"] = "x" * 17 * MIB
    await refused(
        lambda: st.sessions.save(big, force=True), "session.metadata", "max_metadata_bytes"
    )
    assert await aw(st.messages.count(key)) == 0
    assert (await aw(st.sessions.get(key))).metadata == {}
    assert await aw(st.messages.history(key)) == []


async def test_content_counts_utf8_bytes(st: Store, make_session: SessionFactory) -> None:
    key = await aw(st.sessions.save(make_session("c")))
    await refused(
        lambda: st.messages.append(key, msg("é" * 51)), "content", "max_content_bytes=100"
    )
    await aw(st.messages.append(key, msg("é" * 50)))  # exactly 100 bytes
    await aw(st.messages.append(key, msg("x" * 25)))
    assert [m["content"] for m in await aw(st.messages.history(key))] == ["é" * 50, "x" * 25]


async def test_metadata_record_and_message_id(st: Store, make_session: SessionFactory) -> None:
    key = await aw(st.sessions.save(make_session("m")))
    await refused(
        lambda: st.messages.append(key, msg(note="y" * 100)), "metadata", "max_metadata_bytes=100"
    )
    # content and metadata each fit, but the message id makes the record too large
    await refused(
        lambda: st.messages.append(key, msg("x" * 100, message_id="i" * 900)),
        "record",
        "max_record_bytes=1000",
    )
    assert await aw(st.messages.count(key)) == 0


async def test_batches(st: Store, make_session: SessionFactory, sync_client: redis.Redis) -> None:
    key = await aw(st.sessions.save(make_session("b")))
    await refused(
        lambda: st.messages.append_many(key, [msg() for _ in range(4)]),
        "messages",
        "max_batch_messages=3",
    )
    near = [msg("x" * 100, message_id=f"{i}" + "i" * 700) for i in range(3)]
    await refused(lambda: st.messages.append_many(key, near), "messages", "max_batch_bytes=2000")
    error = await refused(
        lambda: st.messages.append_many(key, [msg(), msg("x" * 101)]),
        "content",
        "max_content_bytes",
    )
    assert str(error).startswith("messages[1]: ")
    assert await aw(st.messages.count(key)) == 0
    assert sync_client.exists(st.config.keyspace.session(key).messages) == 0
    done = await aw(st.messages.append_many(key, near[:2]))
    assert len(done) == 2 and await aw(st.messages.count(key)) == 2


async def test_session_records(st: Store, make_session: SessionFactory) -> None:
    session = make_session("s")
    session.metadata["note"] = "y" * 100
    await refused(lambda: st.sessions.save(session), "session.metadata", "max_metadata_bytes")
    session = make_session("s")
    session.participants[0] = ConversationParticipant("user_1", "user", metadata={"n": "y" * 100})
    await refused(lambda: st.sessions.save(session), "participants[0].metadata", "max_metadata")
    session = make_session("s")
    session.metadata["k"] = "y" * 80
    for p in session.participants:
        p.metadata["n"] = "z" * 90
    key = await aw(st.sessions.save(session))  # near the limits: stored and read back
    assert (await aw(st.sessions.get(key))) == session
    many = [
        ConversationParticipant(f"agent_{i}", "agent", f"r{i}", {"n": "z" * 90}) for i in range(9)
    ]
    session.participants.extend(many)
    await refused(lambda: st.sessions.save(session), "session record", "max_record_bytes=1000")


async def test_reads_accept_every_record_writes_accept(
    factory: StoreFactory, make_session: SessionFactory, sync_client: redis.Redis
) -> None:
    """At the edge of every limit at once the entry is stored and read back intact."""
    roomy = Limits(
        max_content_bytes=600,
        max_metadata_bytes=600,
        max_record_bytes=1300,
        max_batch_messages=2,
        max_batch_bytes=2600,
    )
    st = factory(limits=roomy)
    key = await aw(st.sessions.save(make_session("edge")))
    meta = {"n": "m" * 590}
    assert len(codec.packb(meta, max_bytes=None)) <= 600
    big = [msg("c" * 600, message_id=f"id{i}", **meta) for i in range(2)]
    await aw(st.messages.append_many(key, big))
    entries = await aw(st.messages.history(key))
    assert [len(e["content"]) for e in entries] == [600, 600]
    # a store with smaller limits refuses to read it, naming the entry (documented)
    small = factory(limits=SMALL)
    with pytest.raises(CodecError, match="max_record_bytes=1000") as info:
        await aw(small.messages.history(key))
    assert info.value.key == key and info.value.entry_id is not None


def test_limits_are_checked() -> None:
    for bad in (
        {"max_content_bytes": 0},
        {"max_batch_messages": True},
        {"max_record_bytes": 1.5},
        {"max_content_bytes": 2 * Limits().max_record_bytes},
        {"max_record_bytes": 200 * MIB},  # above max_batch_bytes
        {"max_record_bytes": HARD_MAX_BYTES, "max_batch_bytes": HARD_MAX_BYTES + 1},
    ):
        with pytest.raises(ValidationError) as info:
            Limits(**bad)
        assert info.value.field in bad
    assert Limits(max_record_bytes=HARD_MAX_BYTES, max_batch_bytes=HARD_MAX_BYTES)


def test_store_refuses_a_non_limits_value(factory: StoreFactory) -> None:
    with pytest.raises(ValidationError, match="limits"):
        factory(limits={"max_content_bytes": 5})


def test_adapter_payloads_go_through_the_same_check() -> None:
    """``codec.packb`` (checkpoints, task contexts) refuses what readers would refuse."""
    with pytest.raises(ValidationError, match="max_record_bytes") as info:
        codec.packb({"v": 1, "data": b"x" * (codec.MAX_PAYLOAD_BYTES + 1)}, field="checkpoint")
    assert info.value.field == "checkpoint"
    packed = codec.packb({"v": 1, "data": b"x" * 100}, max_bytes=200)
    assert codec.unpackb(packed, max_bytes=200)["data"] == b"x" * 100
