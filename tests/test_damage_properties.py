"""Property tests: hostile bytes written straight into convstore's keys with redis-py.

Every public read and write either returns a correct result or raises a ConvstoreError
subclass, never anything else, on fakeredis and on the real server. One hypothesis example
writes many records in one pipeline (a "case" is one stream entry or one session hash), so
the file checks over 10,000 cases in well under a minute: ``ENTRY_EXAMPLES`` x at least
``MIN_ENTRIES`` entries plus ``SESSION_EXAMPLES`` x at least ``MIN_SESSIONS`` sessions, per
backend. Examples are derandomized (a fixed seed per test), so CI reruns the same cases.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from random import Random
from typing import Any, TypeVar

import msgpack
import redis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import SessionFactory
from convstore import (
    AgentCommunicationMessage,
    ConversationSession,
    ConversationStore,
    Retention,
    codec,
)
from convstore.errors import CodecError, ConvstoreError, SessionNotFound, StoreError
from convstore.plans.values import epoch_micros

T = TypeVar("T")

ENTRY_EXAMPLES = {"fake": 50, "real": 50, "valkey": 20}  # valkey: a lighter third pass
SESSION_EXAMPLES = {"fake": 80, "real": 80, "valkey": 30}
MIN_ENTRIES, MAX_ENTRIES = 80, 100
MIN_SESSIONS, MAX_SESSIONS = 13, 16
#: Cases per backend each test must reach (the minimum sizes guarantee them; the exact
#: counts vary a little with what else is imported, as hypothesis mines constants from it):
#: 2 x (4,000 + 1,040) > 10,000 over the file.
ENTRY_CASES = ENTRY_EXAMPLES["real"] * MIN_ENTRIES
SESSION_CASES = SESSION_EXAMPLES["real"] * MIN_SESSIONS
T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def profile(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure shows its example
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


def outcome(call: Callable[[], T]) -> T | ConvstoreError:
    """The result, or the convstore error; any other exception fails the test.

    Not a :class:`StoreError` either: the keys hold the right Redis types, so a refusal from
    Redis could only be a script failing on a value it read (a Lua runtime error).
    """
    try:
        return call()
    except StoreError as exc:
        raise AssertionError(f"a script failed instead of a typed refusal: {exc}") from exc
    except ConvstoreError as exc:
        return exc


def pack(obj: Any) -> bytes:
    packed: bytes = msgpack.packb(obj, use_bin_type=True, datetime=True)
    return packed


# --------------------------------------------------------------------------- hostile values
# Hypothesis picks among hand-made hostile values and random bytes: cheap to draw, so one
# example can carry dozens of cases.


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


JUNK: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**64 - 1,
    -(2**63),
    1.5,
    float("nan"),
    float("inf"),
    -0.0,
    "",
    "x",
    "\u0663",
    "a" * 300,
    b"",
    b"\xff\xfe",
    [],
    [1],
    [[1, 2], {"a": None}],
    {},
    {"a": 1},
    {"r": "user"},
    {"sender_id": ["x"]},
    deep(70),
    {"m": deep(66)},
    T0,
    [T0],
    msgpack.ExtType(5, b"x"),
    msgpack.ExtType(127, b""),
    msgpack.Timestamp(2**34 - 1, 999_999_999),
    msgpack.Timestamp(-(2**63), 0),
    msgpack.Timestamp(0, 0),
]
GARBAGE_TEXT = [
    b"",
    b" ",
    b"inf",
    b"-inf",
    b"nan",
    b"0x10",
    b" 5",
    b"5 ",
    b"1e400",
    b"1-x",
    b"-1",
    b"5-",
    b"1.5",
    "\u0663".encode(),
    b"\xff\xfe",
    b"1-2-3",
    b"99999999999999999999",
    b"-0",
    b"+5",
    b"1e3",
    b"253402300800000000",
    b"-62135596800000001",
    b"0-99999999999999999",
]


def junk(rnd: Random) -> Any:
    """One hostile msgpack-able value: a hand-made edge case, or a small list or map of them."""
    kind = rnd.random()
    if kind < 0.6:
        return rnd.choice(JUNK)
    if kind < 0.8:
        return [rnd.choice(JUNK) for _ in range(rnd.randint(0, 3))]
    return {rnd.choice(["a", "m", "t", ""]): rnd.choice(JUNK) for _ in range(rnd.randint(0, 2))}


def garbage_text(rnd: Random) -> bytes:
    kind = rnd.random()
    if kind < 0.4:
        return rnd.randbytes(rnd.randint(0, 24))
    if kind < 0.6:
        return str(rnd.randint(-(10**25), 10**25)).encode()
    return rnd.choice(GARBAGE_TEXT)


AGENT = {
    "sender_id": "agent_a",
    "sender_type": "agent",
    "recipient_id": "mc_1",
    "recipient_type": "master_controller",
}
ROUTING = [*AGENT, "sender_role", "recipient_role", "message_type", "message_id"]


def valid_entry(agent: bool) -> dict[str, Any]:
    meta = {**AGENT, "message_type": "communication"} if agent else {"k": 1}
    return {"v": 1, "r": "user", "c": "hello", "t": T0, "m": meta}


def replaced(entry: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    return {**entry, key: value}


def in_meta(entry: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    return {**entry, "m": {**entry["m"], key: value}}


def mutated(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    out = bytearray(data)
    for pos, byte in edits:
        out[pos % len(out)] = byte
    return bytes(out[: max(1, len(out) - cut)])


VALID = [pack(valid_entry(False)), pack(valid_entry(True))]
#: Valid framing, invalid content: strings that are not UTF-8, a key that is not.
HANDMADE = [
    VALID[0].replace(b"\xa5hello", b"\xa5\xff\xfe\xfd\xfc\xfb"),
    VALID[1].replace(b"\xa1r", b"\xa1\xff"),
    VALID[1].replace(b"\xa5agent", b"\xa5agen\xc3"),
    VALID[0].replace(b"\x01", b"\xcf" + b"\xff" * 8, 1),  # version 2**64 - 1
]


def payload(rnd: Random) -> bytes:
    """A stream value: random bytes, or msgpack that is wrong in one of many ways, or valid."""
    kind = rnd.randrange(9)
    agent = rnd.random() < 0.5
    if kind == 0:
        return rnd.randbytes(rnd.randint(0, 40))
    if kind == 1:
        return rnd.choice(HANDMADE)
    if kind == 2:  # {"t": <Timestamp extension (type -1) holding any 4, 8 or 12 bytes>, ...}
        head = rnd.choice([b"\xd6\xff", b"\xd7\xff", b"\xc7\x0c\xff"])
        body = rnd.randbytes(len(head) * 4)
        return b"\x85\xa1v\x01\xa1r\xa1u\xa1c\xa1c\xa1m\x80\xa1t" + head + body
    if kind == 3:
        return pack(junk(rnd))
    if kind == 4:
        key = rnd.choice(["v", "r", "c", "t", "m", "x"])
        return pack(replaced(valid_entry(agent), key, junk(rnd)))
    if kind == 5:
        value = junk(rnd) if rnd.random() < 0.7 else rnd.choice(["", "agent", "user", "nope"])
        return pack(in_meta(valid_entry(True), rnd.choice(ROUTING), value))
    if kind == 6:
        edits = [(rnd.randrange(200), rnd.randrange(256)) for _ in range(rnd.randint(1, 3))]
        return mutated(rnd.choice(VALID), edits, rnd.randint(0, 4))
    return rnd.choice(VALID)


def message_id(rnd: Random) -> bytes:
    kind = rnd.random()
    if kind < 0.5:
        return b"\x00" + rnd.randbytes(16)
    if kind < 0.7:
        return rnd.choice([b"tm", b"t\xff", b"t", b"", b"\x00short", b"x"])
    return rnd.randbytes(rnd.randint(0, 20))


def stream_entry(rnd: Random) -> dict[bytes, bytes]:
    """Mostly one field, as convstore writes; sometimes two or three."""
    count = 1 if rnd.random() < 0.8 else rnd.randint(2, 3)
    fields = {message_id(rnd): payload(rnd) for _ in range(count)}
    return fields or {b"x": b""}


# --------------------------------------------------------------------------- stream entries


def test_hostile_stream_entries(
    backend: str, sync_client: redis.Redis, namespace: str, make_session: SessionFactory
) -> None:
    store = ConversationStore(sync_client, namespace=namespace)
    key = store.sessions.save(make_session("p"))
    keys = store.config.keyspace.session(key)
    cases = 0

    @profile(ENTRY_EXAMPLES[backend])
    @given(rnd=st.randoms(use_true_random=False), size=st.integers(MIN_ENTRIES, MAX_ENTRIES))
    def check(rnd: Random, size: int) -> None:
        nonlocal cases
        sync_client.delete(keys.messages, keys.ids)
        rows = [stream_entry(rnd) for _ in range(size)]
        pipe = sync_client.pipeline(transaction=False)
        for fields in rows:
            pipe.xadd(keys.messages, fields)
        ids = [i.decode() for i in pipe.execute()]
        cases += len(rows)
        check_reads(store, key, ids)
        check_writes(store, key, sync_client)

    check()
    assert cases >= ENTRY_EXAMPLES[backend] * MIN_ENTRIES  # ENTRY_CASES on fake and real
    print(f"{backend}: {cases} hostile stream entries")


def check_reads(store: ConversationStore, key: str, ids: list[str]) -> None:
    m = store.messages
    kept = m.history(key, on_error="skip")  # skipping never raises
    assert len(kept) + len(kept.skipped) == len(ids)
    assert all(set(e) == {"role", "content", "timestamp", "metadata"} for e in kept)
    assert all(isinstance(e["metadata"]["message_id"], str) for e in kept)
    assert all(
        isinstance(x, CodecError) and x.key == key and x.entry_id in ids for x in kept.skipped
    )
    strict = outcome(lambda: m.history(key))
    if kept.skipped:
        assert isinstance(strict, CodecError) and strict.entry_id == kept.skipped[0].entry_id
    else:
        assert strict == kept
    seen, cursor = 0, None
    while True:
        page = m.page(key, before=cursor, limit=40, on_error="skip")
        seen += len(page.items) + len(page.skipped)
        if page.cursor is None:
            break
        cursor = page.cursor
    assert seen == len(ids)
    agents = m.agent_messages(key, ["communication", "task_assignment"], on_error="skip")
    assert all(isinstance(a, AgentCommunicationMessage) and a.session_key == key for a in agents)
    for result in (
        outcome(lambda: m.agent_messages(key, ["communication"], "agent_a", 2)),
        outcome(lambda: m.last(key, 2)),
    ):
        assert not isinstance(result, ConvstoreError) or isinstance(result, CodecError)
    assert m.count(key) == len(ids)


def check_writes(store: ConversationStore, key: str, client: redis.Redis) -> None:
    stream = store.config.keyspace.session(key).messages
    before = client.xlen(stream)
    done = store.messages.append(key, {"role": "user", "content": "after"})
    assert done.created and client.xlen(stream) == before + 1
    assert store.messages.history(key, 1)[0]["content"] == "after"
    assert not store.messages.delete_message(key, "never-stored")


# --------------------------------------------------------------------------- session hashes

FIELDS = ["rec", "rev", "la", "idx", "n", "lid", "mm", "ma", "ttl", "ident"]


def field_choice(rnd: Random) -> bytes | str:
    """What one session-hash field holds: what convstore writes, nothing, or garbage."""
    kind = rnd.random()
    if kind < 0.45:
        return "valid"
    if kind < 0.6:
        return "absent"
    return garbage_text(rnd) if kind < 0.9 else pack(junk(rnd))


def test_hostile_session_hashes(
    backend: str, sync_client: redis.Redis, namespace: str, make_session: SessionFactory
) -> None:
    store = ConversationStore(sync_client, namespace=namespace)
    ks = store.config.keyspace
    cases, counter = 0, 0

    @profile(SESSION_EXAMPLES[backend])
    @given(rnd=st.randoms(use_true_random=False), size=st.integers(MIN_SESSIONS, MAX_SESSIONS))
    def check(rnd: Random, size: int) -> None:
        nonlocal cases, counter
        cases_ = [{f: field_choice(rnd) for f in FIELDS} for _ in range(size)]
        for k in sync_client.scan_iter(match=f"{namespace}:*", count=1000):
            sync_client.delete(k)
        sessions = []
        pipe = sync_client.pipeline(transaction=False)
        for choice in cases_:
            counter += 1
            session = make_session(f"h{counter}")
            key = session.generate_session_key()
            valid = {
                "rec": codec.encode_session(session),
                "rev": b"1",
                "la": str(epoch_micros(session.last_activity)).encode(),
                "idx": ks.index_all.encode(),
                "n": b"0",
                "lid": b"0-0",
                "mm": b"0",
                "ma": b"0",
                "ttl": b"0",
                "ident": pack(
                    [str(session.session_type), session.session_id, ["writer", "researcher"]]
                ),
            }
            stored = {
                f: valid[f] if c == "valid" else c for f, c in choice.items() if c != "absent"
            }
            if stored:
                pipe.hset(ks.session(key).session, mapping=stored)
            pipe.zadd(ks.index_all, {key: epoch_micros(session.last_activity)})
            sessions.append((session, key, stored))
        pipe.execute()
        cases += len(cases_)
        check_listing(store, sessions)
        for session, key, stored in sessions:
            check_session(store, sync_client, session, key, stored, rnd)

    check()
    assert cases >= SESSION_EXAMPLES[backend] * MIN_SESSIONS  # SESSION_CASES on fake, real
    print(f"{backend}: {cases} hostile session hashes")


def check_listing(
    store: ConversationStore, sessions: list[tuple[ConversationSession, str, dict[str, Any]]]
) -> None:
    ours = {key for _, key, _ in sessions}
    page = store.sessions.list(limit=100, on_error="skip")
    assert {s.generate_session_key() for s in page.items} <= ours
    assert all(isinstance(x, CodecError) and x.key in ours for x in page.skipped)
    assert len(page.items) + len(page.skipped) <= len(ours)
    strict = outcome(lambda: store.sessions.list(limit=3))
    assert not isinstance(strict, ConvstoreError) or isinstance(strict, CodecError)


def check_session(
    store: ConversationStore,
    client: redis.Redis,
    session: ConversationSession,
    key: str,
    stored: dict[str, Any],
    rnd: Random,
) -> None:
    """get, three other operations picked at random, append (never lost, never twice), delete."""
    keys = store.config.keyspace.session(key)
    got = outcome(lambda: store.sessions.get(key))
    if "rec" not in stored:
        assert got is None
    elif not isinstance(got, ConvstoreError):
        assert got is not None and got.session_id == session.session_id
    else:
        assert isinstance(got, CodecError) and got.key == key
    assert store.sessions.exists(key) == ("rec" in stored)  # a saved record, not any hash
    operations = [
        lambda: store.sessions.touch(key),
        lambda: store.messages.count(key),
        lambda: store.messages.history(key, on_error="skip"),
        lambda: store.sessions.set_retention(key, Retention(max_messages=5, ttl=600)),
        lambda: store.sessions.set_retention(key, None),
        lambda: store.messages.delete_message(key, "nope"),
        lambda: store.sessions.save(session, force=True),
        lambda: store.sessions.save(session),
        lambda: store.messages.append_many(key, [{"role": "user", "content": "y"}] * 2),
        lambda: store.messages.clear(key),
        lambda: store.sessions.list(session.participants[0].participant_id, on_error="skip"),
    ]
    for call in rnd.sample(operations, 3):
        outcome(call)
    before = client.xlen(keys.messages)
    appended = outcome(lambda: store.messages.append(key, {"role": "user", "content": "x"}))
    grew = client.xlen(keys.messages) - before
    assert grew == (0 if isinstance(appended, ConvstoreError) else 1)  # never lost, never twice
    assert not isinstance(appended, ConvstoreError) or isinstance(
        appended, CodecError | SessionNotFound
    )
    existed = client.exists(keys.session)
    assert store.sessions.delete(key) == bool(existed)  # delete works whatever the damage
    assert client.exists(*keys.all()) == 0
