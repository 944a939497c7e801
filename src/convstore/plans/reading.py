"""Stream rows to ContextEngine dicts: the per-row cost of every history read.

:func:`decode_fields` is the careful decoder of one row (either layout, any payload
form). :func:`decode_rows` is the same result for a whole reply in one loop, with the
common case (layout 3 fields, an array payload, a uuid message id, a UTC timestamp)
inlined: no intermediate dict, no call per step. Whatever it does not recognise goes to
:func:`decode_fields`, so it returns exactly what that returns row by row, and raises
where that raises (the caller then re-reads the rows one by one to name the damaged one).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgpack

from convstore import codec
from convstore.isotime import (
    DAY_PREFIXES,
    EPOCH,
    HOURS_MINUTES,
    SECONDS,
    SECONDS_UTC,
    THOUSANDTHS,
    day_prefix,
)
from convstore.packing import reject_extension
from convstore.plans.layout import row_parts
from convstore.plans.results import Records

__all__ = ["decode_fields", "decode_rows"]

_VERSION = codec.ENTRY_VERSION


def decode_fields(row: Sequence[Any], max_bytes: int) -> dict[str, Any]:
    """One stream row (id, fields) as a ContextEngine dict; :class:`CodecError` (without
    the location) for anything convstore does not write."""
    fields = row[1]
    mid = payload = None
    if type(fields) is dict and len(fields) == 2:  # layout 2/3 without tool fields
        mid, payload = fields.get(b"m"), fields.get(b"d")
    if mid is None or payload is None:
        mid, payload = row_parts(fields)
    entry = codec.decode_entry(payload, max_bytes=max_bytes)
    entry["metadata"]["message_id"] = codec.decode_message_id(mid)
    return entry


def decode_rows(
    rows: Sequence[Sequence[Any]], max_bytes: int, *, newest_first: bool = False
) -> Records[dict[str, Any]]:
    """:func:`decode_fields` of every row, oldest first (``newest_first``: ``rows`` came
    from XREVRANGE, so they are walked backwards instead of copied reversed).

    May raise more than :class:`CodecError` on hostile bytes (msgpack's own errors): the
    caller falls back to :func:`decode_fields` row by row, which names the damage.
    """
    out: Records[dict[str, Any]] = Records()
    append, unpack, plain, days = out.append, msgpack.unpackb, codec.plain_entry, DAY_PREFIXES
    hm, ss, ssu, th = HOURS_MINUTES, SECONDS, SECONDS_UTC, THOUSANDTHS
    for row in reversed(rows) if newest_first else rows:
        fields = row[1]
        if type(fields) is not dict or len(fields) != 2:
            append(decode_fields(row, max_bytes))
            continue
        mid, payload = fields.get(b"m"), fields.get(b"d")
        if type(payload) is not bytes or type(mid) is not bytes or len(payload) > max_bytes:
            append(decode_fields(row, max_bytes))
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
            append(decode_fields(row, max_bytes))
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
            append(decode_fields(row, max_bytes))
            continue
        if not plain(payload, role, content):
            codec.check_entry(obj)
        if moment.tzinfo is UTC:  # moment.isoformat(), from tables (see isotime.py)
            since = moment - EPOCH
            second, micro = since.seconds, since.microseconds
            day = days.get(since.days) or day_prefix(moment)
            if micro:
                stamp = (
                    f"{day}{hm[second // 60]}{ss[second % 60]}"
                    f".{th[micro // 1000]}{th[micro % 1000]}+00:00"
                )
            else:
                stamp = f"{day}{hm[second // 60]}{ssu[second % 60]}"
        else:
            stamp = moment.isoformat()
        if len(mid) == 17 and mid[0] == 0:  # a uuid (see message_ids.py)
            h = mid.hex()
            meta["message_id"] = f"{h[2:10]}-{h[10:14]}-{h[14:18]}-{h[18:22]}-{h[22:]}"
        else:
            meta["message_id"] = codec.decode_message_id(mid)
        append({"role": role, "content": content, "timestamp": stamp, "metadata": meta})
    return out
