"""convstore.codec: msgpack round trips, what can and cannot be stored, hostile input."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from convstore import (
    AgentCommunicationMessage,
    CodecError,
    ConversationParticipant,
    ConversationSession,
    ValidationError,
    codec,
    decode_entry,
    decode_message,
    decode_participant,
    decode_session,
    encode_entry,
    encode_message,
    encode_participant,
    encode_session,
)
from convstore.errors import ConvstoreError
from convstore.packing import certainly_plain

T0 = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HOSTILE = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DECODERS: list[Callable[[bytes], object]] = [
    codec.unpackb,
    decode_participant,
    decode_session,
    decode_message,
    decode_entry,
]


def user(pid: str = "u", **kw: Any) -> ConversationParticipant:
    return ConversationParticipant(pid, "user", **kw)


def mc(pid: str = "m", **kw: Any) -> ConversationParticipant:
    return ConversationParticipant(pid, "master_controller", **kw)


def agent(pid: str = "a", role: str = "writer", **kw: Any) -> ConversationParticipant:
    return ConversationParticipant(pid, "agent", role, **kw)


def session(metadata: dict[str, Any] | None = None, **kw: Any) -> ConversationSession:
    participants = kw.pop("participants", None) or [mc(), agent()]
    return ConversationSession(
        kw.pop("session_id", "sess"),
        participants,
        kw.pop("session_type", "mc_to_agent"),
        T0,
        T0,
        metadata or {},
    )


def message(metadata: dict[str, Any] | None = None, **kw: Any) -> AgentCommunicationMessage:
    fields: dict[str, Any] = {
        "message_id": "m-1",
        "session_key": "sess_mc_to_writer",
        "sender_id": "m",
        "sender_type": "master_controller",
        "sender_role": None,
        "recipient_id": "a",
        "recipient_type": "agent",
        "recipient_role": "writer",
        "content": "go",
        "message_type": "task_assignment",
        "timestamp": T0,
        "metadata": metadata or {},
    }
    fields.update(kw)
    return AgentCommunicationMessage(**fields)


def raw(payload: Any) -> bytes:
    """Bytes straight from msgpack, bypassing every check of ours (for hostile payloads)."""
    packed: bytes = msgpack.packb(payload, use_bin_type=True, datetime=True)
    return packed


def only_codec_errors(decoder: Callable[[bytes], object], data: bytes) -> object:
    """Call ``decoder``; CodecError means "rejected", any other exception fails the test."""
    try:
        return decoder(data)
    except CodecError as exc:
        assert isinstance(exc, ValueError)
        assert str(exc)
        return None


def with_ext(payload: Any, key: Any, code: int, data: bytes) -> bytes:
    """``payload`` (a map, or an array such as an entry) packed with ``payload[key]`` = an
    ext value of any type code (msgpack's ExtType refuses negative codes, so the bytes are
    spliced in by hand)."""
    marker = b"\xa5\x5a\xa5\x5a\xa5\x5a\xa5\x5a"
    copy = dict(payload) if isinstance(payload, dict) else list(payload)
    copy[key] = msgpack.ExtType(0, marker)
    packed = raw(copy)
    head = {1: b"\xd4", 2: b"\xd5", 4: b"\xd6", 8: b"\xd7", 16: b"\xd8"}.get(len(data))
    if head is None:
        head = b"\xc7" + bytes([len(data)])
    ext = head + code.to_bytes(1, "big", signed=True) + data
    assert packed.count(b"\xd7\x00" + marker) == 1
    return packed.replace(b"\xd7\x00" + marker, ext)


def slots(payload: Any) -> list[Any]:
    """The keys of a map payload, the indexes of an array payload (an entry)."""
    return sorted(payload) if isinstance(payload, dict) else list(range(len(payload)))


def legacy_entry(role: str, content: str, timestamp: datetime, metadata: dict[str, Any]) -> bytes:
    """An entry in the map form convstore wrote before the array (still read)."""
    return raw({"v": 1, "r": role, "c": content, "t": timestamp, "m": metadata})


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


# --------------------------------------------------------------------------- strategies

ids = st.text(min_size=1, max_size=10)
offsets = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=59), max_value=timedelta(hours=23)),
)
naive_or_aware = st.datetimes(
    min_value=datetime(1900, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.one_of(st.none(), st.just(UTC), offsets),
)
aware = st.datetimes(
    min_value=datetime(1900, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.one_of(st.just(UTC), offsets),
)
storable_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=10),
    st.binary(max_size=10),
    aware,
)
# values that come back equal: no tuples (they come back as lists), no naive datetimes
storable = st.recursive(
    storable_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
metadata = st.dictionaries(st.text(max_size=8), storable, max_size=4)


@st.composite
def participants_st(draw: st.DrawFn, ptype: str | None = None) -> ConversationParticipant:
    ptype = ptype or draw(st.sampled_from(["user", "master_controller", "agent"]))
    role = draw(ids) if ptype == "agent" else draw(st.one_of(st.none(), ids))
    return ConversationParticipant(draw(ids), ptype, role, draw(metadata))


@st.composite
def sessions_st(draw: st.DrawFn) -> ConversationSession:
    stype, required = draw(
        st.sampled_from(
            [
                ("user_to_mc", ["user", "master_controller"]),
                ("mc_to_agent", ["master_controller", "agent"]),
                ("user_to_agent", ["user", "agent"]),
                ("agent_to_agent", ["agent", "agent"]),
            ]
        )
    )
    extra = draw(st.lists(st.sampled_from(["user", "master_controller", "agent"]), max_size=2))
    types = required + extra
    pids = draw(st.lists(ids, min_size=len(types), max_size=len(types), unique=True))
    members = []
    for pid, ptype in zip(pids, types, strict=True):
        p = draw(participants_st(ptype))
        p.participant_id = pid
        members.append(p)
    return ConversationSession(
        draw(ids), members, stype, draw(naive_or_aware), draw(naive_or_aware), draw(metadata)
    )


@st.composite
def messages_st(draw: st.DrawFn) -> AgentCommunicationMessage:
    kinds = st.sampled_from(["user", "master_controller", "agent"])
    return AgentCommunicationMessage(
        message_id=draw(st.one_of(st.just(""), ids)),
        session_key=draw(ids),
        sender_id=draw(ids),
        sender_type=draw(kinds),
        sender_role=draw(st.one_of(st.none(), ids)),
        recipient_id=draw(ids),
        recipient_type=draw(kinds),
        recipient_role=draw(st.one_of(st.none(), ids)),
        content=draw(st.text(min_size=1, max_size=20)),
        message_type=draw(st.sampled_from(["feedback", "communication", "task_assignment"])),
        timestamp=draw(naive_or_aware),
        metadata=draw(metadata),
    )


def _valid_payloads() -> list[tuple[Callable[[bytes], object], bytes]]:
    s = session({"k": [1, {"x": T0}]}, participants=[mc(metadata={"a": 1}), agent()])
    return [
        (decode_participant, encode_participant(agent(metadata={"z": [1]}))),
        (decode_session, encode_session(s)),
        (decode_message, encode_message(message({"q": b"b"}))),
        (decode_entry, encode_entry("r", "c", T0, {"n": {"m": [1.5]}})),
        (decode_entry, legacy_entry("r", "c", T0, {"n": {"m": [1.5]}})),
    ]


VALID = _valid_payloads()


# --------------------------------------------------------------------------- round trips


@given(participants_st())
@PROPERTY
def test_participant_round_trip(p: ConversationParticipant) -> None:
    data = encode_participant(p)
    assert isinstance(data, bytes)
    assert decode_participant(data) == p


@given(sessions_st())
@PROPERTY
def test_session_round_trip(s: ConversationSession) -> None:
    restored = decode_session(encode_session(s))
    assert restored == s
    assert restored.created_at.tzinfo is UTC
    assert restored.generate_session_key() == s.generate_session_key()


@given(messages_st())
@PROPERTY
def test_message_round_trip(m: AgentCommunicationMessage) -> None:
    restored = decode_message(encode_message(m))
    assert restored == m
    assert restored.timestamp.tzinfo is UTC
    assert type(restored.sender_type) is type(m.sender_type)


@given(st.text(min_size=1, max_size=10), st.text(max_size=30), naive_or_aware, metadata)
@PROPERTY
def test_entry_round_trip(
    role: str, content: str, timestamp: datetime, meta: dict[str, Any]
) -> None:
    entry = decode_entry(encode_entry(role, content, timestamp, meta))
    assert entry == {
        "role": role,
        "content": content,
        "timestamp": codec.to_utc(timestamp).isoformat(),
        "metadata": meta,
    }
    assert list(entry) == ["role", "content", "timestamp", "metadata"]
    assert datetime.fromisoformat(entry["timestamp"]).tzinfo is not None


def test_entry_from_a_message_conversation_dict() -> None:
    d = message({"k": [1, 2]}).to_conversation_message_dict()
    entry = decode_entry(encode_entry(d["role"], d["content"], d["timestamp"], d["metadata"]))
    assert entry == d


def test_integer_limits_round_trip() -> None:
    meta = {"max": 2**64 - 1, "min": -(2**63), "zero": 0, "big_neg": -(2**62)}
    assert decode_entry(encode_entry("r", "c", T0, meta))["metadata"] == meta


def test_bytes_and_floats_round_trip() -> None:
    meta = {"b": b"\x00\xff", "inf": float("inf"), "neg": -0.5, "s": "é"}
    assert decode_session(encode_session(session(meta))).metadata == meta


# --------------------------------------------------------------------------- documented lossy bits


def test_tuples_become_lists() -> None:
    meta = {"t": (1, (2, "x")), "l": [(3,)]}
    assert decode_entry(encode_entry("r", "c", T0, meta))["metadata"] == {
        "t": [1, [2, "x"]],
        "l": [[3]],
    }
    restored = decode_session(encode_session(session(meta)))
    assert restored.metadata == {"t": [1, [2, "x"]], "l": [[3]]}
    assert restored != session(meta)  # (1, 2) != [1, 2]: the one documented loss


def test_naive_datetimes_in_metadata_come_back_aware_utc() -> None:
    naive = datetime(2024, 5, 6, 7, 8, 9, 123456)
    meta = {"when": naive, "nested": {"list": [naive]}}
    s = decode_session(encode_session(session(meta)))
    assert s.metadata["when"] == naive.replace(tzinfo=UTC)
    assert s.metadata["when"].tzinfo is UTC
    assert s.metadata["nested"]["list"][0] == naive.replace(tzinfo=UTC)
    entry = decode_entry(encode_entry("r", "c", naive, meta))
    assert entry["timestamp"] == "2024-05-06T07:08:09.123456+00:00"
    assert entry["metadata"]["when"].tzinfo is UTC
    m = decode_message(encode_message(message(meta)))
    assert m.metadata["when"] == naive.replace(tzinfo=UTC)


def test_aware_datetimes_in_metadata_come_back_in_utc() -> None:
    local = datetime(2024, 5, 6, 9, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    got = decode_entry(encode_entry("r", "c", T0, {"when": local}))["metadata"]["when"]
    assert got == local
    assert got.tzinfo is UTC
    assert got.hour == 7


# --------------------------------------------------------------------------- what cannot be stored


class Thing:
    pass


@pytest.mark.parametrize(
    ("value", "leaf", "kind"),
    [
        ({1, 2}, "[1]", "set"),
        (frozenset(), "[1]", "frozenset"),
        (Decimal("1.5"), "[1]", "Decimal"),
        (Thing(), "[1]", "Thing"),
        (1 + 2j, "[1]", "complex"),
    ],
)
def test_unstorable_values_name_their_path(value: object, leaf: str, kind: str) -> None:
    meta = {"a": {"b": [1, value]}}
    with pytest.raises(CodecError) as info:
        encode_entry("r", "c", T0, meta)
    assert info.value.path == "metadata.a.b" + leaf
    assert str(info.value).startswith(f"metadata.a.b[1]: {kind} values cannot be stored")
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, ConvstoreError)
    with pytest.raises(CodecError) as info:
        encode_session(session(meta))
    assert info.value.path == "session.metadata.a.b[1]"
    with pytest.raises(CodecError) as info:
        encode_message(message(meta))
    assert info.value.path == "message.metadata.a.b[1]"
    with pytest.raises(CodecError) as info:
        encode_participant(user(metadata=meta))
    assert info.value.path == "participant.metadata.a.b[1]"
    with pytest.raises(CodecError) as info:
        encode_session(session(participants=[mc(), agent(metadata=meta)]))
    assert info.value.path == "participant.metadata.a.b[1]"


@pytest.mark.parametrize("key", [1, 1.5, None, b"k", ("t",)])
def test_non_str_keys_rejected(key: object) -> None:
    with pytest.raises(CodecError) as info:
        encode_entry("r", "c", T0, {"a": {"b": [{key: 1}]}})
    assert info.value.path == "metadata.a.b[0]"
    assert f"keys must be str, got {type(key).__name__} key {key!r}" in str(info.value)
    with pytest.raises(CodecError) as info:
        codec.check_storable({key: 1})
    assert info.value.path == "metadata"


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**30, -(10**30)])
def test_ints_over_64_bits_rejected(number: int) -> None:
    with pytest.raises(CodecError) as info:
        encode_entry("r", "c", T0, {"n": [number]})
    assert info.value.path == "metadata.n[0]"
    assert str(info.value) == f"metadata.n[0]: integer {number} does not fit in 64 bits"


def test_check_storable_accepts_the_documented_types() -> None:
    codec.check_storable(
        {"n": None, "b": True, "i": 1, "f": 1.0, "s": "s", "y": b"y", "d": T0,
         "l": [1], "t": (1,), "m": {"k": "v"}}
    )  # fmt: skip


def test_nesting_limit_on_encode() -> None:
    ok = {"x": nested(codec.MAX_DEPTH - 1)}  # the metadata map plus 63 lists
    assert decode_entry(encode_entry("r", "c", T0, ok))["metadata"] == ok
    with pytest.raises(CodecError) as info:
        encode_entry("r", "c", T0, {"x": nested(codec.MAX_DEPTH)})
    assert "nested deeper than 64 levels" in str(info.value)
    assert info.value.path.startswith("metadata.x[0][0]")


def test_deepest_metadata_in_a_session_still_decodes() -> None:
    deep = {"x": nested(codec.MAX_DEPTH - 1)}
    s = session(deep, participants=[mc(), agent(metadata=deep)])
    assert decode_session(encode_session(s)) == s


@pytest.mark.parametrize(
    ("args", "path"),
    [
        ((1, "c", T0, {}), "role"),
        (("r", None, T0, {}), "content"),
        (("r", "c", 1700000000, {}), "timestamp"),
        (("r", "c", "not a date", {}), "timestamp"),
        (("r", "c", T0, [1, 2]), "metadata"),
        (("r", "c", T0, None), "metadata"),
    ],
)
def test_encode_entry_refuses_what_decode_entry_could_not_read(
    args: tuple[Any, ...], path: str
) -> None:
    with pytest.raises(CodecError) as info:
        encode_entry(*args)
    assert info.value.path == path


def test_encode_entry_accepts_iso_timestamps() -> None:
    entry = decode_entry(encode_entry("r", "c", "2024-01-02T04:04:05.678901+01:00", {}))
    assert entry["timestamp"] == T0.isoformat()


# --------------------------------------------------------------------------- decoding rules


def test_higher_version_with_extra_fields_still_decodes() -> None:
    s = session({"k": 1}, participants=[mc(), agent(metadata={"p": 1})])
    payload = msgpack.unpackb(encode_session(s), timestamp=3)
    payload["v"] = 7
    payload["future_field"] = {"anything": [1, 2, 3]}
    payload["participants"][1]["future_participant_field"] = "x"
    assert decode_session(raw(payload)) == s

    m = message({"k": 1})
    mp = msgpack.unpackb(encode_message(m), timestamp=3)
    mp.update(v=99, thread="t-1")
    assert decode_message(raw(mp)) == m

    p = agent()
    pp = msgpack.unpackb(encode_participant(p), timestamp=3)
    pp.update(v=2, avatar=b"...")
    assert decode_participant(raw(pp)) == p

    expected = {"role": "r", "content": "c", "timestamp": T0.isoformat(), "metadata": {}}
    ep = msgpack.unpackb(legacy_entry("r", "c", T0, {}), timestamp=3)
    ep.update(v=3, x=1)
    assert decode_entry(raw(ep)) == expected
    array = msgpack.unpackb(encode_entry("r", "c", T0, {}), timestamp=3)
    assert array[0] == codec.ENTRY_VERSION == 2
    assert decode_entry(raw([3, *array[1:], {"future": 1}, "x"])) == expected


@pytest.mark.parametrize("version", [None, 0, -1, True, "1", 1.0, [1]])
def test_missing_or_bad_version_rejected(version: object) -> None:
    payload = msgpack.unpackb(encode_participant(user()), timestamp=3)
    if version is None:
        del payload["v"]
    else:
        payload["v"] = version
    with pytest.raises(CodecError, match="no valid version field 'v'"):
        decode_participant(raw(payload))


def test_kind_mismatch_rejected() -> None:
    with pytest.raises(CodecError) as info:
        decode_session(encode_participant(user()))
    assert str(info.value) == "payload kind is 'participant', expected 'session'"
    with pytest.raises(CodecError, match="expected 'message'"):
        decode_message(encode_session(session()))
    with pytest.raises(CodecError, match="missing role, content, timestamp or metadata"):
        decode_entry(encode_session(session()))


def test_non_map_payload_rejected() -> None:
    with pytest.raises(CodecError, match="payload must be a map, got list"):
        codec.unpackb(raw([1, 2]))
    with pytest.raises(CodecError, match="expected bytes, got str"):
        codec.unpackb("abc")  # type: ignore[arg-type]


def test_bytearray_and_memoryview_accepted() -> None:
    data = encode_participant(user())
    assert decode_participant(bytearray(data)) == user()  # type: ignore[arg-type]
    assert decode_participant(memoryview(data)) == user()  # type: ignore[arg-type]


def test_invalid_stored_model_is_a_codec_error() -> None:
    data = raw({"v": 1, "k": "participant", "participant_id": "p", "participant_type": "alien"})
    with pytest.raises(CodecError) as info:
        decode_participant(data)
    assert str(info.value).startswith(
        "stored participant is invalid: participant_type must be one of"
    )
    assert isinstance(info.value.__cause__, ValidationError)

    payload = msgpack.unpackb(encode_session(session()), timestamp=3)
    del payload["created_at"]
    with pytest.raises(CodecError) as info:
        decode_session(raw(payload))
    assert str(info.value) == "session payload: field 'created_at' has the wrong type (NoneType)"

    payload = msgpack.unpackb(encode_message(message()), timestamp=3)
    payload["timestamp"] = T0.isoformat()
    with pytest.raises(CodecError, match="field 'timestamp' has the wrong type"):
        decode_message(raw(payload))


@pytest.mark.parametrize("code", [0, 5, 42, 127, -2, -128])
def test_unknown_ext_types_rejected(code: int) -> None:
    payload = msgpack.unpackb(encode_participant(user()), timestamp=3)
    for data in (
        raw({**payload, "metadata": {"x": msgpack.ExtType(code, b"data")}}) if code >= 0 else b"",
        with_ext(payload, "metadata", code, b"data"),
        with_ext(payload, "participant_role", code, b"x" * 20),
    ):
        if not data:
            continue
        with pytest.raises(CodecError) as info:
            decode_participant(data)
        assert f"unknown msgpack extension type {code}" in str(info.value)


ENTRY_FORMS = [(encode_entry, 3), (legacy_entry, "t")]  # (writer, where the timestamp is)


@pytest.mark.parametrize(("write", "slot"), ENTRY_FORMS)
def test_with_ext_builds_what_msgpack_reads(write: Callable[..., bytes], slot: Any) -> None:
    payload = msgpack.unpackb(write("r", "c", T0, {}), timestamp=3)
    # a well-formed Timestamp (ext -1) spliced in by hand is read as a datetime
    data = with_ext(payload, slot, -1, (1_700_000_000).to_bytes(4, "big"))
    assert decode_entry(data)["timestamp"] == "2023-11-14T22:13:20+00:00"


@pytest.mark.parametrize(("write", "slot"), ENTRY_FORMS)
@pytest.mark.parametrize("data", [b"", b"abc", b"\x00" * 5, b"\xff" * 12, b"\xff" * 8])
def test_malformed_timestamp_extension_rejected(
    data: bytes, write: Callable[..., bytes], slot: Any
) -> None:
    payload = msgpack.unpackb(write("r", "c", T0, {}), timestamp=3)
    with pytest.raises(CodecError, match=r"^not a valid msgpack payload"):
        decode_entry(with_ext(payload, slot, -1, data))


@given(
    st.sampled_from(VALID),
    st.integers(-128, 127),
    st.one_of(st.binary(max_size=20), st.binary(min_size=4, max_size=4),
              st.binary(min_size=8, max_size=8), st.binary(min_size=12, max_size=12)),
    st.data(),
)  # fmt: skip
@HOSTILE
def test_any_ext_value_anywhere_only_raises_codec_error(
    case: tuple[Callable[[bytes], object], bytes], code: int, blob: bytes, data: st.DataObject
) -> None:
    decoder, valid = case
    payload = msgpack.unpackb(valid, timestamp=3)
    key = data.draw(st.sampled_from(slots(payload)))
    only_codec_errors(decoder, with_ext(payload, key, code, blob))


def test_oversize_payload_rejected() -> None:
    with pytest.raises(CodecError, match=f"exceeds max_record_bytes={codec.MAX_PAYLOAD_BYTES}"):
        codec.unpackb(b"\x80" * (codec.MAX_PAYLOAD_BYTES + 1))
    data = encode_session(session())
    assert decode_session(data, max_bytes=len(data)) == session()
    with pytest.raises(
        CodecError, match=f"payload of {len(data)} bytes exceeds max_record_bytes={len(data) - 1}"
    ):
        decode_session(data, max_bytes=len(data) - 1)


def test_non_str_keys_rejected_on_decode() -> None:
    payload = msgpack.unpackb(legacy_entry("r", "c", T0, {}), timestamp=3)
    payload["m"] = {b"k": 1}
    with pytest.raises(CodecError) as info:
        decode_entry(raw(payload))
    assert info.value.path == "payload.m"
    with pytest.raises(CodecError) as info:
        decode_entry(raw([2, "r", "c", T0, {"a": [{b"k": 1}]}]))
    assert info.value.path == "payload[4].a[0]"


@pytest.mark.parametrize("write", [encode_entry, legacy_entry])
def test_entries_the_byte_scan_cannot_clear_are_walked_and_still_decode(
    write: Callable[..., bytes],
) -> None:
    """bytes values, non-ASCII text and many containers make the reader walk the value."""
    meta = {"blob": b"\xc4\x00", "text": "żółć 日本語", "many": [[i] for i in range(70)]}
    data = write("r", "ąę" * 50, T0, meta)
    assert not certainly_plain(data)
    assert decode_entry(data) == {
        "role": "r", "content": "ąę" * 50, "timestamp": T0.isoformat(), "metadata": meta
    }  # fmt: skip


@pytest.mark.parametrize("depth", [62, 65, 66, 80, 1000])
def test_entry_nesting_limit_on_decode(depth: int) -> None:
    """Either form, the limit a map payload always had (the payload three levels above
    MAX_DEPTH): 65 lists inside a metadata value decode, 66 are a CodecError, whatever
    the byte scan says."""
    meta = {"x": nested(depth)}
    for data in (raw([2, "r", "c", T0, meta]), legacy_entry("r", "c", T0, meta)):
        if depth <= codec.MAX_DEPTH + 1:
            assert decode_entry(data)["metadata"] == meta
        else:
            with pytest.raises(CodecError, match="nested deeper than"):
                decode_entry(data)


@given(msgpack_values_for_scan := st.recursive(
    st.one_of(st.none(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=4),
              st.binary(max_size=4), st.floats()),
    lambda c: st.one_of(st.lists(c, max_size=3),
                        st.dictionaries(st.one_of(st.text(max_size=3), st.binary(max_size=2)),
                                        c, max_size=3)),
    max_leaves=40,
))  # fmt: skip
@HOSTILE
def test_certainly_plain_never_clears_bytes_keys_or_deep_nesting(value: Any) -> None:
    def depth_and_bytes_keys(v: Any) -> tuple[int, bool]:
        if isinstance(v, dict):
            found = [depth_and_bytes_keys(x) for x in v.values()]
            bad = any(isinstance(k, bytes) for k in v) or any(b for _, b in found)
            return 1 + max((d for d, _ in found), default=0), bad
        if isinstance(v, list):
            found = [depth_and_bytes_keys(x) for x in v]
            return 1 + max((d for d, _ in found), default=0), any(b for _, b in found)
        return 0, False

    data = raw(value)
    depth, bytes_keys = depth_and_bytes_keys(value)
    for budget in (3, codec.MAX_DEPTH):
        if certainly_plain(data, budget):
            assert depth < budget and not bytes_keys


@pytest.mark.parametrize("depth", [80, 500, 1000])
@pytest.mark.parametrize("field", ["participant_type", "participant_id", "metadata"])
def test_hostile_nesting_is_a_codec_error(depth: int, field: str) -> None:
    payload: dict[str, Any] = {"v": 1, "k": "participant", "participant_id": "p",
                               "participant_type": "user", "metadata": {}}  # fmt: skip
    payload[field] = {"x": nested(depth)} if field == "metadata" else nested(depth)
    with pytest.raises(CodecError) as info:
        decode_participant(raw(payload))
    assert info.value.path.startswith(f"payload.{field}")
    assert "nested deeper than" in str(info.value)


# --------------------------------------------------------------------------- hostile input


@given(st.binary(max_size=300), st.sampled_from(DECODERS))
@HOSTILE
def test_arbitrary_bytes_only_raise_codec_error(data: bytes, decoder: Callable[..., Any]) -> None:
    only_codec_errors(decoder, data)


msgpack_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=8),
    aware,
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=12)),
)
msgpack_values = st.recursive(
    msgpack_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=6), st.binary(max_size=3)), children, max_size=4
        ),
    ),
    max_leaves=16,
)
FIELDS = [
    "v", "k", "participant_id", "participant_type", "participant_role", "metadata", "session_id",
    "session_type", "participants", "created_at", "last_activity", "message_id", "session_key",
    "sender_id", "sender_type", "sender_role", "recipient_id", "recipient_type", "recipient_role",
    "content", "message_type", "timestamp", "r", "c", "t", "m",
]  # fmt: skip


@given(
    st.one_of(
        msgpack_values,
        st.dictionaries(st.sampled_from(FIELDS), msgpack_values, max_size=12),
    ),
    st.sampled_from(DECODERS),
)
@HOSTILE
def test_valid_msgpack_of_random_structure_only_raises_codec_error(
    value: Any, decoder: Callable[..., Any]
) -> None:
    try:
        data = raw(value)
    except (ValueError, OverflowError):  # msgpack refuses a few ExtType/timestamp values
        assume(False)
    only_codec_errors(decoder, data)


@given(st.sampled_from(VALID), st.data())
@HOSTILE
def test_mutated_valid_payloads_only_raise_codec_error(
    case: tuple[Callable[[bytes], object], bytes], data: st.DataObject
) -> None:
    decoder, valid = case
    payload = msgpack.unpackb(valid, timestamp=3)
    keys = data.draw(st.lists(st.sampled_from(slots(payload)), max_size=3, unique=True))
    for key in keys:
        payload[key] = data.draw(msgpack_values)
    if isinstance(payload, dict) and isinstance(payload.get("participants"), list):
        for p in payload["participants"]:
            if isinstance(p, dict) and p and data.draw(st.booleans()):
                p[data.draw(st.sampled_from(list(p)))] = data.draw(msgpack_values)
    try:
        blob = raw(payload)
    except (ValueError, OverflowError):
        assume(False)
    result = only_codec_errors(decoder, blob)
    if result is not None and decoder is not decode_entry:
        assert isinstance(result, ConversationParticipant | ConversationSession
                          | AgentCommunicationMessage)  # fmt: skip


@given(st.sampled_from(VALID), st.data())
@HOSTILE
def test_corrupted_and_truncated_bytes_only_raise_codec_error(
    case: tuple[Callable[[bytes], object], bytes], data: st.DataObject
) -> None:
    decoder, valid = case
    blob = bytearray(valid)
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    for _ in range(data.draw(st.integers(0, 4))):
        if blob:
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    only_codec_errors(decoder, bytes(blob))


@pytest.mark.parametrize(("decoder", "valid"), VALID)
def test_every_truncation_is_rejected(decoder: Callable[[bytes], object], valid: bytes) -> None:
    for end in range(len(valid)):
        with pytest.raises(CodecError):
            decoder(valid[:end])
    assert decoder(valid) is not None


@given(st.text(max_size=60))
def test_stored_message_ids_round_trip_and_stay_distinct(text: str) -> None:
    stored = codec.encode_message_id(text)
    assert codec.decode_message_id(stored) == text
    generated = str(uuid.uuid4())
    assert len(codec.encode_message_id(generated)) == 17  # canonical uuids are stored compact
    if text != generated:
        assert codec.encode_message_id(generated) != stored


def test_non_canonical_uuid_text_is_kept_verbatim() -> None:
    upper = str(uuid.uuid4()).upper()
    assert codec.encode_message_id(upper) == b"t" + upper.encode()
    with pytest.raises(CodecError):
        codec.decode_message_id(b"\x01garbage")


def test_packing_reuses_one_packer_per_thread_and_a_failed_pack_leaves_it_clean() -> None:
    """``packing.packb`` keeps a msgpack Packer per thread: after a refused value the next
    payload packs exactly, and threads packing at once never mix their bytes."""
    import threading

    from convstore.packing import packb

    good = [3, "user", "x" * 300, datetime(2024, 5, 1, tzinfo=UTC), {"k": [1, 2.5, None]}]
    with pytest.raises(CodecError):
        packb([1, "half written", object()])
    assert packb(good) == msgpack.packb(good, use_bin_type=True, datetime=True)

    payloads = [[i, "p" * (i % 97), {"n": i, "t": [str(i)] * (i % 5)}] for i in range(400)]
    expected = [msgpack.packb(p, use_bin_type=True) for p in payloads]
    wrong: list[int] = []

    def work(offset: int) -> None:
        for step in range(2000):
            index = (offset + step * 7) % len(payloads)
            if packb(payloads[index]) != expected[index]:
                wrong.append(index)

    threads = [threading.Thread(target=work, args=(n * 13,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
