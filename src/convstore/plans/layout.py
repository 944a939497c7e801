"""The stream-entry layout: tool-call fields, reading both layouts, and the migration step.

Layout 3 (``lua.LAYOUT_VERSION``) stores each message as plain fields ``m`` (stored message
id), ``d`` (payload, the msgpack array ``codec.encode_entry`` writes) and, for tool-call
messages, ``tc``/``tr`` (see ``lua/core.py``'s docstring). Layout 2 had the same fields with
the payload as a msgpack map; layout 1 stored one field named by the message id. All are
read; :func:`migrate_session_layout` rewrites a session's older entries in place (same
entry ids) and marks the hash ``lv``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from convstore import codec, lua
from convstore.errors import CodecError, StaleAppend
from convstore.plans.config import StoreConfig
from convstore.plans.damage import script_status
from convstore.plans.steps import Call, Plan, Run
from convstore.plans.values import as_text

__all__ = ["MIGRATE_LAYOUT", "migrate_session_layout", "row_parts", "tool_fields"]

_TOOL_ESCAPES = str.maketrans({"%": "%25", "\n": "%0A", "\t": "%09"})
_V2_EXTRA = frozenset({b"tc", b"tr", "tc", "tr"})


def _tool_id(value: object) -> str:
    return value.translate(_TOOL_ESCAPES) if isinstance(value, str) and value else ""


def tool_fields(metadata: Mapping[str, Any]) -> str:
    """The APPEND argument for a message's tool-call fields: ``""`` (none) or
    ``"<tc>\\t<tr>"``: ``tc`` the escaped ids of ``metadata["tool_calls"]`` (dicts with an
    ``"id"``), newline separated, ``tr`` the escaped ``metadata["tool_call_id"]``.

    Metadata is free-form, so anything else there (no list, no id) adds no field.
    """
    calls, result = metadata.get("tool_calls"), metadata.get("tool_call_id")
    tc = ""
    if isinstance(calls, list):
        ids = (_tool_id(c.get("id")) for c in calls if isinstance(c, Mapping))
        tc = "\n".join(i for i in ids if i)
    tr = _tool_id(result)
    return f"{tc}\t{tr}" if tc or tr else ""


def row_parts(fields: Any) -> tuple[bytes, bytes]:
    """(stored message id, payload) of a stream entry's fields, in either layout.

    ``fields`` is a dict (redis-py's parsed reply) or a flat [name, value, ...] list (a
    script's raw reply). Anything convstore never writes raises :class:`CodecError`.
    """
    if type(fields) is dict and len(fields) == 2:  # the common case, without copies
        mid, payload = fields.get(b"m"), fields.get(b"d")
        if mid is not None and payload is not None:
            return mid, payload
    items = (
        list(fields.items())
        if isinstance(fields, dict)
        else list(zip(fields[::2], fields[1::2], strict=True))
    )
    if len(items) == 1:  # layout 1: {message id: payload}
        return items[0][0], items[0][1]
    if (
        len(items) in (2, 3, 4)
        and items[0][0] in (b"m", "m")
        and items[1][0] in (b"d", "d")
        and all(name in _V2_EXTRA for name, _ in items[2:])
    ):
        return items[0][1], items[1][1]
    names = [as_text(name) if isinstance(name, bytes | str) else repr(name) for name, _ in items]
    raise CodecError(
        f"the entry has {len(items)} fields {names[:6]!r:.200}; convstore writes one "
        "(layout 1) or m, d[, tc][, tr] (layouts 2 and 3)"
    )


MIGRATE_LAYOUT = lua.script(
    "migrate_layout",
    r"""
-- ARGV[5] lid the caller read ("" = none), [6] entries it read, then (entry id, tool
-- fields, payload) triples for the entries to change: tool fields for a layout-1 entry,
-- payload ("" = keep) the array form of a map payload. Rewrites every layout-1 entry as
-- m/d fields and every given payload, under the same ids, keeps the stream's TTL, sets lv.
-- Reply {0} already done, {-5, lid} the stream changed since the caller read it (read
-- again), {1, entries changed}.
local f, bad = read_fields('lv', 'lid')
if bad then return bad end
if f[1] == LAYOUT or redis.call('EXISTS', H, S) == 0 then return {0} end
if (f[2] or '') ~= ARGV[5] or redis.call('XLEN', S) ~= tonumber(ARGV[6]) then return {-5, f[2] or ''} end
local tools, payloads = {}, {}
for i = 7, #ARGV, 3 do
  tools[ARGV[i]] = ARGV[i + 1]
  if ARGV[i + 2] ~= '' then payloads[ARGV[i]] = ARGV[i + 2] end
end
local rows = redis.call('XRANGE', S, '-', '+')
local changed = 0
for _, row in ipairs(rows) do
  if #row[2] == 2 or (payloads[row[1]] and row[2][3] == 'd') then changed = changed + 1 end
end
if changed > 0 then
  local pttl = redis.call('PTTL', S)
  redis.call('DEL', S)
  for _, row in ipairs(rows) do
    local fl, new = row[2], payloads[row[1]]
    if #fl == 2 then
      fl = with_tools({'m', fl[1], 'd', new or fl[2]}, tools[row[1]] or '')
    elseif new and fl[3] == 'd' then
      fl[4] = new
    end
    redis.call('XADD', S, row[1], unpack(fl))
  end
  if pttl > 0 then redis.call('PEXPIRE', S, pttl) end
end
if redis.call('EXISTS', H) == 1 then redis.call('HSET', H, 'lv', LAYOUT) end
return {1, changed}
""",
)

_CHUNK = 1000
_ATTEMPTS = 5


def migrate_session_layout(config: StoreConfig, key: str) -> Plan[bool]:
    """Rewrite one session's layout-1 and layout-2 entries as layout 3 (m/d fields, array
    payloads); True when it changed anything (or only marked it).

    Idempotent and resumable: each session is converted by one atomic script (all or
    nothing), a converted session is marked ``lv`` and skipped. Tool fields and array
    payloads come from the payloads, decoded here (scripts never decode msgpack); an
    undecodable entry keeps its payload and gets no tool fields (reads still report it
    as damaged). Appends racing the read make it read again (up to 5 times, then
    :class:`StaleAppend`).
    """
    keys, common = config.common(key)
    read, now = "", ""
    for _ in range(_ATTEMPTS):
        lv, lid = yield Call(("HMGET", keys.session, "lv", "lid"))
        if lv is not None and as_text(lv) == str(lua.LAYOUT_VERSION):
            return False
        read = "0-0" if lid is None else as_text(lid)
        rows: list[Any] = []
        start = "-"
        while True:
            chunk = yield Call(("XRANGE", keys.messages, start, "+", "COUNT", _CHUNK))
            rows += chunk
            if len(chunk) < _CHUNK:
                break
            start = f"({as_text(chunk[-1][0])}"
        args: list[Any] = [*common, "" if lid is None else read, str(len(rows))]
        for row in rows:
            tools, payload = _row_changes(row, config)
            if tools or payload:
                args += (as_text(row[0]), tools, payload)
        reply = yield Run(MIGRATE_LAYOUT, keys.all(), tuple(args))
        status = script_status(reply, key)
        if status != -5:
            return status == 1
        now = as_text(reply[1]) if len(reply) > 1 and reply[1] else "0-0"
    raise StaleAppend(key, read, now)


def _row_changes(row: Sequence[Any], config: StoreConfig) -> tuple[str, bytes]:
    """(tool fields of a layout-1 row, the array form of a map payload or b"") of one row.

    Payloads and tools come from decoding here (scripts never decode msgpack); an
    undecodable entry is left as it is (reads still report it as damaged).
    """
    try:
        _, payload = row_parts(row[1])
    except CodecError:
        return "", b""  # damaged: the script leaves it as it is
    new = codec.upgrade_entry(payload, max_bytes=config.limits.max_record_bytes) or b""
    fields = row[1]
    if len(fields) != (1 if isinstance(fields, dict) else 2):
        return "", new  # m/d fields already: tool fields were written with them
    try:
        entry = codec.decode_entry(payload, max_bytes=config.limits.max_record_bytes)
    except CodecError:
        return "", new
    return tool_fields(entry["metadata"]), new
