"""Stream rows to messages: the per-row cost of every history read.

:func:`stored_fields` is the careful decoder of one row (either layout, any payload form)
into a :class:`StoredMessage`. :func:`decode_stored` is the same result for a whole reply
in one loop, with the common case (layout 3 fields, an array payload, a uuid message id)
inlined: no call per step. Whatever it does not recognise goes to :func:`stored_fields`,
so it returns exactly what that returns row by row, and raises where that raises (the
caller then re-reads the rows one by one to name the damaged one). :func:`decode_rows` and
:func:`decode_fields` are the same in ContextEngine form (``StoredMessage.as_dict``), the
ISO timestamp and the id text made inline for the common case. :func:`decode_reference`
and :func:`reference_fields` are the same in the shapes the reference ContextEngine hands
back (``plans/reference.py``: naive UTC ISO text, JSON values), for the ContextEngine
adapter: made in the same loop, the metadata walked for JSON only when its bytes can hold
a datetime or bytes.

A row's fields come as redis-py parses them (a dict) or as Redis sent them (a flat
``[name, value, ...]`` list, see ``Call.raw_reply``); both decode the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgpack

from convstore import codec
from convstore.isotime import DAY_PREFIXES, EPOCH, HOURS_MINUTES, SECONDS, THOUSANDTHS, day_prefix
from convstore.packing import CONTAINER_HEADS, MAX_DEPTH, NOT_HEADS, reject_extension
from convstore.plans.layout import row_parts
from convstore.plans.reference import naive_iso, reference_entry, to_json
from convstore.plans.results import Records, StoredMessage

__all__ = [
    "decode_fields",
    "decode_reference",
    "decode_rows",
    "decode_stored",
    "reference_fields",
    "stored_fields",
]

_VERSION = codec.ENTRY_VERSION
_new = tuple.__new__  # a StoredMessage without NamedTuple's Python-level __new__
#: The three forms of :func:`_decode`: typed values, ContextEngine dicts, the reference's.
_STORED, _DICTS, _REFERENCE = 0, 1, 2


def stored_fields(row: Sequence[Any], max_bytes: int) -> StoredMessage:
    """One stream row (id, fields) as a :class:`StoredMessage`; :class:`CodecError`
    (without the location) for anything convstore does not write. ``fields`` is a dict
    (redis-py's parsed reply) or a flat ``[name, value, ...]`` list (as Redis sent it)."""
    fields = row[1]
    mid = payload = None
    if type(fields) is dict and len(fields) == 2:  # layout 2/3 without tool fields
        mid, payload = fields.get(b"m"), fields.get(b"d")
    if mid is None or payload is None:
        mid, payload = row_parts(fields)
    values = codec.entry_values(payload, max_bytes=max_bytes)
    codec.decode_message_id(mid)  # refused here, not when the id is first asked for
    return _new(StoredMessage, (*values, bytes(mid)))


def decode_fields(row: Sequence[Any], max_bytes: int) -> dict[str, Any]:
    """:func:`stored_fields` in ContextEngine form."""
    return stored_fields(row, max_bytes).as_dict()


def reference_fields(row: Sequence[Any], max_bytes: int) -> dict[str, Any]:
    """:func:`decode_fields` in the reference's shapes (``plans/reference.py``)."""
    return reference_entry(decode_fields(row, max_bytes))


def decode_stored(
    rows: Sequence[Sequence[Any]], max_bytes: int, *, newest_first: bool = False
) -> Records[StoredMessage]:
    """:func:`stored_fields` of every row, oldest first (``newest_first``: ``rows`` came
    from XREVRANGE, so they are walked backwards instead of copied reversed).

    May raise more than :class:`CodecError` on hostile bytes (msgpack's own errors): the
    caller falls back to :func:`stored_fields` row by row, which names the damage.
    """
    return _decode(rows, max_bytes, newest_first, _STORED)


def decode_rows(
    rows: Sequence[Sequence[Any]], max_bytes: int, *, newest_first: bool = False
) -> Records[dict[str, Any]]:
    """:func:`decode_stored` in ContextEngine form: what :func:`decode_fields` returns for
    each row, the common case (a UTC timestamp, a uuid message id) made inline from the
    tables of ``isotime.py``."""
    return _decode(rows, max_bytes, newest_first, _DICTS)


def decode_reference(
    rows: Sequence[Sequence[Any]], max_bytes: int, *, newest_first: bool = False
) -> Records[dict[str, Any]]:
    """:func:`decode_rows` in the reference's shapes: what :func:`reference_fields` returns
    for each row. The timestamp is the same table-made text without ``+00:00``; the
    metadata goes through ``to_json`` only when its bytes may hold a datetime or bytes
    (any other msgpack value already is what the reference's JSON round trip returns)."""
    return _decode(rows, max_bytes, newest_first, _REFERENCE)


def _decode(
    rows: Sequence[Sequence[Any]], max_bytes: int, newest_first: bool, form: int
) -> Records[Any]:
    """The one loop of every read form: each row checked, then made a StoredMessage, a
    ContextEngine dict or the reference's dict (``form``); what it does not recognise
    goes to the careful decoder of that form."""
    out: Records[Any] = Records()
    careful = (stored_fields, decode_fields, reference_fields)[form]
    append, unpack, plain = out.append, msgpack.unpackb, codec.plain_entry
    not_heads, containers, depth = NOT_HEADS, CONTAINER_HEADS, MAX_DEPTH
    days, hm, ss, th = DAY_PREFIXES, HOURS_MINUTES, SECONDS, THOUSANDTHS
    offset = "+00:00" if form == _DICTS else ""  # the reference's timestamps are naive
    for row in reversed(rows) if newest_first else rows:
        fields = row[1]
        if type(fields) is list and len(fields) == 4 and fields[0] == b"m" and fields[2] == b"d":
            mid, payload = fields[1], fields[3]  # as Redis sent it (``Call.raw_reply``)
        elif type(fields) is dict and len(fields) == 2:  # as redis-py parses it
            mid, payload = fields.get(b"m"), fields.get(b"d")
        else:
            append(careful(row, max_bytes))
            continue
        if type(payload) is not bytes or type(mid) is not bytes or len(payload) > max_bytes:
            append(careful(row, max_bytes))
            continue
        obj = unpack(
            payload,
            raw=False,
            timestamp=3,
            strict_map_key=True,
            ext_hook=reject_extension,
            use_list=True,
        )
        if type(obj) is not list or len(obj) != 5:
            append(careful(row, max_bytes))
            continue
        version, role, content, moment, meta = obj
        if not (
            type(version) is int
            and version == _VERSION
            and type(role) is str
            and type(content) is str
            and type(moment) is datetime
            and type(meta) is dict
        ):
            append(careful(row, max_bytes))
            continue
        heads = payload.translate(None, not_heads)  # packing.certainly_plain, inlined
        no_bytes = True  # no bin header in the metadata's bytes: no bytes value in it
        if (len(heads) >= depth or heads.translate(None, containers)) and not plain(
            payload, role, content
        ):
            codec.check_entry(obj)
            no_bytes = False
        text_id = None
        if len(mid) != 17 or mid[0] != 0:  # not a uuid (see message_ids.py): check it now
            text_id = codec.decode_message_id(mid)
        if form == _STORED:
            append(_new(StoredMessage, (role, content, moment, meta, mid)))
            continue
        if moment.tzinfo is UTC:  # moment.isoformat(), from tables (see isotime.py)
            since = moment - EPOCH
            second, micro = since.seconds, since.microseconds
            day = days.get(since.days) or day_prefix(moment)
            if micro:
                stamp = (
                    f"{day}{hm[second // 60]}{ss[second % 60]}"
                    f".{th[micro // 1000]}{th[micro % 1000]}{offset}"
                )
            else:
                stamp = f"{day}{hm[second // 60]}{ss[second % 60]}{offset}"
        else:
            stamp = moment.isoformat() if form == _DICTS else naive_iso(moment)
        if text_id is None:  # a uuid: its text from the bytes (message_ids.py's rule)
            h = mid.hex()
            text_id = f"{h[2:10]}-{h[10:14]}-{h[14:18]}-{h[18:22]}-{h[22:]}"
        meta["message_id"] = text_id
        # The only 0xff byte of a payload whose metadata holds no datetime is its own
        # timestamp's extension type (-1): UTF-8 text never holds 0xff.
        if form == _REFERENCE and not (no_bytes and payload.count(b"\xff") == 1):
            meta = to_json(meta)
        append({"role": role, "content": content, "timestamp": stamp, "metadata": meta})
    return out
