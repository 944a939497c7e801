"""The history read's per-row fast path returns exactly what the careful decoder returns.

``isotime.utc_isoformat`` against ``datetime.isoformat``; ``plans.reading.decode_rows``
against ``decode_fields`` row by row, and ``decode_stored`` (the typed read) against
``stored_fields`` (and raising where they raise), the typed values' ``as_dict()`` being
the dicts; ``codec.plain_entry`` never clears a bytes key or deep nesting, whatever the
bytes before the metadata.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convstore import codec
from convstore.errors import CodecError
from convstore.isotime import utc_isoformat
from convstore.plans.reading import (
    decode_fields,
    decode_reference,
    decode_rows,
    decode_stored,
    reference_fields,
    stored_fields,
)
from convstore.plans.reference import reference_entry

T = TypeVar("T")

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

utc_moments = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)
).map(lambda d: d.replace(tzinfo=UTC))
edges = st.sampled_from(
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
        datetime(2106, 2, 7, 6, 28, 16, 500000, tzinfo=UTC),
    ]
)
#: The microsecond-0 case has its own table (no fraction in isoformat()).
whole_seconds = utc_moments.map(lambda d: d.replace(microsecond=0))


@given(st.one_of(utc_moments, edges, whole_seconds))
@SETTINGS
def test_utc_isoformat_is_isoformat(moment: datetime) -> None:
    assert utc_isoformat(moment) == moment.isoformat()
    # what msgpack hands back (the timestamp extension) is formatted the same
    back = msgpack.unpackb(msgpack.packb(moment, datetime=True), timestamp=3)
    assert utc_isoformat(back) == back.isoformat() == moment.isoformat()


@given(st.datetimes(timezones=st.sampled_from([None, timezone(timedelta(hours=5, minutes=30))])))
@SETTINGS
def test_other_datetimes_go_to_isoformat(moment: datetime) -> None:
    assert utc_isoformat(moment) == moment.isoformat()


leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=6),
    st.binary(max_size=4),
    utc_moments,
)
metadata = st.dictionaries(
    st.text(max_size=5),
    st.recursive(
        leaves,
        lambda c: st.one_of(
            st.lists(c, max_size=3), st.dictionaries(st.text(max_size=3), c, max_size=3)
        ),
        max_leaves=12,
    ),
    max_size=5,
)
texts = st.one_of(st.text(max_size=40), st.text(min_size=200, max_size=300), st.just("żółć 日本語"))


def _row(payload: bytes, mid: bytes | None = None) -> tuple[bytes, dict[bytes, bytes]]:
    return b"1-1", {b"m": mid or b"\x00" + os.urandom(16), b"d": payload}


def _careful_with(one: Callable[[Any, int], T], rows: list[Any]) -> list[T] | type[Exception]:
    """``one`` (a careful decoder) of each row, or the type of what it raised."""
    try:
        return [one(r, codec.MAX_PAYLOAD_BYTES) for r in rows]
    except Exception as exc:  # noqa: BLE001 - compared with the fast path's outcome
        return type(exc)


def _fast_with(
    every: Callable[..., Sequence[T]], rows: list[Any], newest_first: bool = False
) -> list[T] | None:
    """``every`` (a one-pass decoder) of the rows, or None where it raised."""
    try:
        return list(every(rows, codec.MAX_PAYLOAD_BYTES, newest_first=newest_first))
    except Exception:  # noqa: BLE001 - the caller re-reads row by row: only success matters
        return None


_careful = functools.partial(_careful_with, decode_fields)
_fast = functools.partial(_fast_with, decode_rows)
_careful_stored = functools.partial(_careful_with, stored_fields)
_fast_stored = functools.partial(_fast_with, decode_stored)
_careful_reference = functools.partial(_careful_with, reference_fields)
_fast_reference = functools.partial(_fast_with, decode_reference)


def _flat(rows: list[Any]) -> list[Any]:
    """The rows as Redis sends them (``Call.raw_reply``): fields a flat [name, value, ...]."""
    return [[i, [x for pair in f.items() for x in pair]] for i, f in rows]


def _same_both_ways(rows: list[Any]) -> None:
    """The three fast paths equal their careful decoders, the typed values' dicts the dicts,
    and the reference's shapes the dicts made JSON (``reference_entry``), whether the rows
    come parsed by redis-py or as Redis sent them."""
    expected, typed = _careful(rows), _careful_stored(rows)
    assert isinstance(expected, list) and isinstance(typed, list)
    reference = [reference_entry(e) for e in expected]
    for form in (rows, _flat(rows)):
        assert _careful(form) == expected and _careful_stored(form) == typed
        assert _careful_reference(form) == reference
        assert _fast(form) == expected
        assert _fast(form[::-1], newest_first=True) == expected
        assert _fast_stored(form) == typed
        assert _fast_stored(form[::-1], newest_first=True) == typed
        assert _fast_reference(form) == reference
        assert _fast_reference(form[::-1], newest_first=True) == reference
    assert [m.as_dict() for m in typed] == expected
    assert [m.message_id for m in typed] == [e["metadata"]["message_id"] for e in expected]


@given(
    st.lists(
        st.tuples(texts, texts, st.one_of(utc_moments, edges, whole_seconds), metadata),
        min_size=1,
        max_size=4,
    )
)
@SETTINGS
def test_decode_rows_is_decode_fields_row_by_row(entries: list[tuple[Any, ...]]) -> None:
    rows = [_row(codec.encode_entry(r, c, t, m)) for r, c, t, m in entries]
    _same_both_ways(rows)
    typed = _careful_stored(rows)
    assert isinstance(typed, list)
    assert [(m.role, m.content, m.timestamp, m.metadata) for m in typed] == entries


def _legacy(role: str, content: str, moment: datetime, meta: dict[str, Any]) -> bytes:
    body = {"v": 1, "r": role, "c": content, "t": moment, "m": meta}
    return bytes(msgpack.packb(body, use_bin_type=True, datetime=True))


def _raw(value: Any) -> bytes:
    return bytes(msgpack.packb(value, use_bin_type=True, datetime=True))


T0 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _str8(text: str) -> bytes:
    data = text.encode()
    return b"\xd9" + bytes([len(data)]) + data


HOSTILE = [
    # bytes keys behind non-ASCII content (the whole-payload scan fails, the second scan runs)
    _raw([2, "r", "żółć" * 20, T0, {"a": {b"k": 1}}]),
    _raw([2, "r", "c", T0, {b"k": 1}]),
    _raw([2, "r", "日本語", T0, {"x": _deep(70)}]),
    # non-canonical headers before the metadata: a str 8 role, a str 8 short content
    b"\x95\x02" + _str8("r") + _str8("ł") + _raw(T0) + _raw({b"k": 1}),
    b"\x95\x02\xa1r" + _str8("ł") + _raw(T0) + _raw({"a": [{b"k": b"\xc4"}]}),
    # wrong types, versions, shapes, extensions, trailing bytes
    _raw([2, "r", "c", "not a time", {}]),
    _raw([True, "r", "c", T0, {}]),
    _raw([2, "r", "c", T0]),
    _raw([2, "r", "c", T0, {}]) + b"\x00",
    _raw([2, "r", "c", T0, {"e": msgpack.ExtType(5, b"x")}]),
    _raw({"v": 1, "r": "r", "c": "c", "t": T0, "m": {b"k": 1}}),
    b"\xc1",
]


@pytest.mark.parametrize("payload", HOSTILE)
def test_damaged_payloads_fail_the_fast_path_as_decode_fields_does(payload: bytes) -> None:
    rows = [_row(codec.encode_entry("r", "c", T0, {})), _row(payload)]
    with pytest.raises(CodecError):
        decode_fields(rows[1], codec.MAX_PAYLOAD_BYTES)
    with pytest.raises(CodecError):
        stored_fields(rows[1], codec.MAX_PAYLOAD_BYTES)
    for form in (rows, _flat(rows)):
        assert _fast(form) is None
        assert _fast(form[::-1], newest_first=True) is None
        assert _fast_stored(form) is None
        assert _fast_stored(form[::-1], newest_first=True) is None
        assert _fast_reference(form) is None


@pytest.mark.parametrize("mid", [b"\x00" + b"1" * 15, b"\x01" + b"2" * 16, b"t\xff", b"\x02", b"x"])
def test_a_damaged_message_id_fails_the_read_not_a_later_message_id(mid: bytes) -> None:
    """The typed read keeps the stored id and makes its text only when asked, but checks
    it while reading: a bad id raises there, as the dict read does."""
    rows = [
        _row(codec.encode_entry("r", "c", T0, {})),
        _row(codec.encode_entry("r", "c", T0, {}), mid),
    ]
    for careful in (decode_fields, stored_fields):
        with pytest.raises(CodecError, match="not a stored message id"):
            careful(rows[1], codec.MAX_PAYLOAD_BYTES)
    for form in (rows, _flat(rows)):
        assert _fast(form) is None
        assert _fast_stored(form) is None


@pytest.mark.parametrize(
    "row",
    [
        _row(_legacy("r", "c", T0, {"a": 1})),  # map form (layout 2)
        _row(_raw([3, "r", "c", T0, {"a": 1}, "newer"])),  # a newer version's extra item
        _row(codec.encode_entry("r", "c", T0, {}), b"tmy-id"),  # a non-uuid message id
        (b"1-1", {codec.encode_message_id("x"): codec.encode_entry("r", "c", T0, {})}),  # v1
        (b"1-1", {b"m": b"tz", b"d": codec.encode_entry("r", "c", T0, {}), b"tc": b"a"}),
        _row(codec.encode_entry("r", "ąę" * 50, T0, {"blob": b"\xc4", "many": [[1]] * 70})),
        # the reference's shapes: metadata that needs the JSON walk, and bytes that look as
        # if it might (a -1, a str 8 header of length 255), where it changes nothing
        _row(codec.encode_entry("r", "c", T0, {"at": T0, "deep": [{"at": T0}]})),
        _row(codec.encode_entry("r", "c", T0, {"blob": b"xy", "in": {"b": b""}})),
        _row(codec.encode_entry("r", "c", T0, {"n": -1, "f": -1.5})),
        _row(codec.encode_entry("r", "x" * 255, T0, {"k": "v"})),
    ],
)
def test_other_layouts_and_forms_decode_the_same(row: Any) -> None:
    _same_both_ways([row])


def test_the_reference_form_walks_only_metadata_that_may_need_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``decode_reference`` hands back the decoded metadata itself when its bytes can hold
    no datetime and no bytes value, and the JSON walk's copy otherwise (the same values)."""
    import convstore.plans.reading as reading

    walked: list[Any] = []
    original = reading.to_json

    def spy(value: Any) -> Any:
        walked.append(value)
        return original(value)

    monkeypatch.setattr(reading, "to_json", spy)
    plain = {"n": 1, "tags": ["a"], "x": {"y": None}}
    rows = [
        _row(codec.encode_entry("r", "c", T0, plain)),
        _row(codec.encode_entry("r", "c", T0, {"at": T0})),
        _row(codec.encode_entry("r", "c", T0, {"blob": b"z"})),
    ]
    got = decode_reference(rows, codec.MAX_PAYLOAD_BYTES)
    assert [w.keys() - {"message_id"} for w in walked] == [{"at"}, {"blob"}]
    assert got[0]["metadata"] == {**plain, "message_id": got[0]["metadata"]["message_id"]}
    assert got[1]["metadata"]["at"] == T0.isoformat()
    assert got[2]["metadata"]["blob"] == "eg=="


@given(texts, texts, st.one_of(utc_moments, edges), metadata, st.binary(max_size=3))
@SETTINGS
def test_plain_entry_never_clears_bytes_keys_or_deep_nesting(
    role: str, content: str, moment: datetime, meta: dict[str, Any], key: bytes
) -> None:
    for value in (meta, {**meta, "x": {key: 1}}, {**meta, "x": _deep(64)}):
        data = _raw([2, role, content, moment, value])
        if codec.plain_entry(data, role, content):
            assert value is meta
