"""Lua scripts: every write is one script, so one round trip and atomic.

Every script gets the six keys of one session (``SessionKeys.all()``), which
share a hash tag and so one cluster slot. The common arguments are::

    ARGV[1]  "1" to update the session indexes inside the script (standalone
             Redis), "0" on Redis Cluster, where the indexes live in other slots
             and the caller updates them from what the script returns
    ARGV[2]  the session key (the member stored in the index sorted sets)
    ARGV[3]  now, in microseconds since the epoch (the caller's clock)
    ARGV[4]  the store's default TTL in milliseconds ("0" = none)

Session hash fields: ``rec`` (msgpack record), ``ident`` (msgpack identity of
the session owning the key), ``rev`` (revision), ``la`` (last activity, µs),
``n`` (messages held), ``lid`` (last stream id assigned), ``idx`` (index keys,
newline separated), ``lv`` (stored layout version, :data:`LAYOUT_VERSION`, present once
every entry of the stream is in that layout), and the per-session overrides ``mm``
(max messages), ``ma`` (max age, ms) and ``ttl`` (ms).

Stream entries, layout 2 (written since ``lv`` = 2): plain fields ``m`` (the stored
message id, ``codec.encode_message_id``), ``d`` (the msgpack payload), then, only for
tool-call messages, ``tc`` (the ids of ``metadata["tool_calls"][*]["id"]``, newline
separated) and/or ``tr`` (``metadata["tool_call_id"]``). Tool ids are stored with ``%``,
newline and tab percent-encoded (``%25``, ``%0A``, ``%09``), so scripts compare them as
opaque strings and never decode a payload. Layout 1 (still read, see
``plans/layout.py`` for the migration): one field, name = stored message id, value =
payload. A tool-call group is an entry with ``tc`` and the ``tr`` entries that directly
follow it; retention never splits one (see ``trim_oldest``).

Negative first elements of a reply are statuses the plans turn into errors:
-1 no such session, -2 key owned by another session, -3 stale revision,
-5 ``expect_last`` is not the session's newest entry id (``{-5, actual}``),
-4 a session-hash field the script needs holds something convstore never writes
(``{-4, field, value}``; checked by ``read_fields`` before the script writes anything,
so a damaged session refuses writes instead of failing half-way in Lua).
``DELETE`` alone tolerates damage (it is the way out): it drops only index entries
under the namespace's ``idx:`` prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "APPEND",
    "CE_COMPACT",
    "CE_PUT",
    "CE_UPDATE",
    "CE_VIEW",
    "CLEAR",
    "COUNT",
    "DELETE",
    "DELETE_MESSAGE",
    "LAYOUT_VERSION",
    "LIST",
    "PRELUDE",
    "SAVE",
    "SET_RETENTION",
    "SUGGEST",
    "TOUCH",
    "Script",
    "script",
]


@dataclass(frozen=True, slots=True)
class Script:
    """A named script. ``idempotent``: running it twice leaves the same state and the
    same reply as running it once, so a driver may re-send it when a reply is lost.
    ``writes``: it changes data (a write concern applies to it)."""

    name: str
    source: str
    idempotent: bool = False
    writes: bool = True


#: Stored layout of a session's stream (see the module docstring); the session hash
#: field ``lv`` holds it once every entry of the stream is in this layout.
LAYOUT_VERSION = 2

PRELUDE = (
    f"local LAYOUT = '{LAYOUT_VERSION}'\n"
    + r"""
local H, S, IDS = KEYS[1], KEYS[2], KEYS[3]
local INLINE, MEMBER, NOW, TTL_DEFAULT = ARGV[1] == '1', ARGV[2], ARGV[3], ARGV[4]

local function split(text)
  local out = {}
  if text then for k in string.gmatch(text, '[^\n]+') do out[#out + 1] = k end end
  return out
end

-- every index key of this namespace starts with IDX_PREFIX ("ns:idx:")
local IDX_PREFIX = string.match(H, '^[^:]*') .. ':idx:'
local function own_index(k) return string.sub(k, 1, #IDX_PREFIX) == IDX_PREFIX end

-- what convstore writes in each session-hash field a script reads: counts of at most
-- 15 digits (exact in Lua's doubles); 'la' within the years 1-9999 Python can represent;
-- 'idx' lists index keys of this namespace only
local FIELD_FORMATS = {
  rev = '^%d+$', n = '^%d+$', mm = '^%d+$', ma = '^%d+$', ttl = '^%d+$',
  lid = '^%d+%-%d+$', la = '^%-?%d+$', lv = '^%d+$',
}
local function well_formed(name, v)
  if name == 'idx' then
    for _, k in ipairs(split(v)) do if not own_index(k) then return false end end
    return true
  end
  if not FIELD_FORMATS[name] then return true end
  if #v > 40 or not string.match(v, FIELD_FORMATS[name]) then return false end
  if name == 'la' then
    local x = tonumber(v)
    return x > -62135596000000000 and x < 253402300000000000
  end
  for digits in string.gmatch(v, '%d+') do if #digits > 15 then return false end end
  return true
end

-- HMGET of the session hash; a field in a format convstore never writes gives
-- nil, {-4, field, value} (return it: the script has written nothing yet)
local function read_fields(...)
  local names = {...}
  local f = redis.call('HMGET', H, unpack(names))
  for i, name in ipairs(names) do
    local v = f[i]
    if v and not well_formed(name, v) then return nil, {-4, name, string.sub(v, 1, 80)} end
  end
  return f
end

-- ttl: the session's own 'ttl' field (nil = the store default)
local function refresh_ttl(ttl)
  ttl = tonumber(ttl or TTL_DEFAULT)
  if ttl and ttl > 0 then
    for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end

local function later(a, b)
  if (not a) or tonumber(b) > tonumber(a) then return b end
  return a
end

local function touch_indexes(la, idx)
  if INLINE then
    for _, k in ipairs(split(idx)) do redis.call('ZADD', k, 'GT', la, MEMBER) end
  end
end

-- the stored message id of a stream row, either layout (layout 1: {mid, payload}; a
-- layout-1 id never is "m": stored ids start with "\0" or "t")
local function row_mid(row)
  local fl = row[2]
  if fl[1] == 'm' and #fl >= 4 then return fl[2] end
  return fl[1]
end

-- a plain field ('tc', 'tr') of a layout-2 row, nil when absent
local function row_field(row, name)
  local fl = row[2]
  for i = 5, #fl - 1, 2 do if fl[i] == name then return fl[i + 1] end end
  return nil
end

local function drop_ids(rows)
  local batch = {}
  for _, row in ipairs(rows) do
    batch[#batch + 1] = row_mid(row)
    if #batch >= 1000 then redis.call('HDEL', IDS, unpack(batch)); batch = {} end
  end
  if #batch > 0 then redis.call('HDEL', IDS, unpack(batch)) end
end

-- `fields` plus the tool-call fields of a "<tc>\t<tr>" argument (plans/layout.py)
local function with_tools(fields, tools)
  local tab = string.find(tools, '\t', 1, true) or (#tools + 1)
  local tc, tr = string.sub(tools, 1, tab - 1), string.sub(tools, tab + 1)
  if tc ~= '' then fields[#fields + 1] = 'tc'; fields[#fields + 1] = tc end
  if tr ~= '' then fields[#fields + 1] = 'tr'; fields[#fields + 1] = tr end
  return fields
end

-- the call ids a layout-2 row's 'tc' field lists, added to the set `into`
local function call_ids(row, into)
  local tc = row_field(row, 'tc')
  if tc then for c in string.gmatch(tc, '[^\n]+') do into[c] = true end end
end

-- Retention drops `rows`, the oldest entries of a stream of n, and keeps tool-call groups
-- whole: a result ('tr') directly following the dropped rows whose call ('tc') is dropped
-- goes too; if that would leave no message, the group stays whole instead (the cut moves
-- back before its call). Returns the new length.
local function trim_oldest(rows, n)
  local calls = {}
  for _, row in ipairs(rows) do call_ids(row, calls) end
  if next(calls) then
    local after, extra, done = rows[#rows][1], {}, false
    repeat
      local nxt = redis.call('XRANGE', S, '(' .. after, '+', 'COUNT', 16)
      for _, row in ipairs(nxt) do
        local tr = row_field(row, 'tr')
        if not (tr and calls[tr]) then done = true; break end
        extra[#extra + 1] = row
        after = row[1]
      end
    until done or #nxt < 16
    if #rows + #extra < n then
      for _, row in ipairs(extra) do rows[#rows + 1] = row end
    elseif #extra > 0 then
      local results, keep = {}, #rows + 1
      for _, row in ipairs(extra) do results[row_field(row, 'tr')] = true end
      for j, row in ipairs(rows) do
        local mine = {}
        call_ids(row, mine)
        for c in pairs(mine) do if results[c] and j < keep then keep = j end end
      end
      for j = #rows, keep, -1 do rows[j] = nil end
    end
  end
  if #rows == 0 then return n end
  drop_ids(rows)
  local last = rows[#rows][1]
  local dash = string.find(last, '-', 1, true)
  redis.call('XTRIM', S, 'MINID', string.format('%s-%d', string.sub(last, 1, dash - 1),
                                                  tonumber(string.sub(last, dash + 1)) + 1))
  return redis.call('XLEN', S)
end
"""
)


def script(name: str, body: str, *, idempotent: bool = False, writes: bool = True) -> Script:
    """A session script: ``body`` runs after :data:`PRELUDE` (its names and helpers)."""
    return Script(name, PRELUDE + body, idempotent, writes)


SAVE = script(
    "save",
    r"""
-- ARGV[5] record, [6] identity, [7] expected revision (-1 = any), [8] last activity, [9] idx
local f, bad = read_fields('ident', 'rev', 'idx', 'la', 'ttl', 'n')
if bad then return bad end
local owner = f[1]
if owner and owner ~= ARGV[6] then return {-2, owner} end
local rev = tonumber(f[2] or '0')
local expected = tonumber(ARGV[7])
if expected >= 0 and rev ~= expected then return {-3, rev} end
local old = f[3] or ''
rev = rev + 1
redis.call('HSET', H, 'rec', ARGV[5], 'ident', ARGV[6], 'rev', rev, 'idx', ARGV[9])
if not f[6] then redis.call('HSET', H, 'n', 0, 'lv', LAYOUT) end
local la = later(f[4], ARGV[8])
redis.call('HSET', H, 'la', la)
if INLINE then
  local keep = {}
  for _, k in ipairs(split(ARGV[9])) do
    keep[k] = true
    redis.call('ZADD', k, la, MEMBER)
  end
  for _, k in ipairs(split(old)) do
    if not keep[k] then redis.call('ZREM', k, MEMBER) end
  end
end
refresh_ttl(f[5])
return {rev, la, old}
""",
)

TOUCH = script(
    "touch",
    r"""
local f, bad = read_fields('rev', 'la', 'idx', 'ttl')
if bad then return bad end
if not f[1] then return {-1} end
local la = later(f[2], NOW)
redis.call('HSET', H, 'la', la)
touch_indexes(la, f[3])
refresh_ttl(f[4])
return {1, la, f[3] or ''}
""",
    idempotent=True,
)

DELETE = script(
    "delete",
    r"""
if redis.call('EXISTS', H) == 0 then return {0, ''} end
local idx = {}
for _, k in ipairs(split(redis.call('HGET', H, 'idx'))) do
  if own_index(k) then idx[#idx + 1] = k end
end
if INLINE then
  for _, k in ipairs(idx) do redis.call('ZREM', k, MEMBER) end
end
redis.call('DEL', unpack(KEYS))
return {1, table.concat(idx, '\n')}
""",
)

APPEND = script(
    "append",
    r"""
-- ARGV[5] default max messages ("0" = none), [6] default max age in ms ("0" = none),
-- [7] "1" to accept a session that was never saved (the ContextEngine contract: the
-- message is kept and the hash gets its counters, but no record, so get() stays None),
-- [8] expect_last: the entry id the caller saw last ("0-0" = no message; "" = no check),
-- then one (stored message id, timestamp ms, payload, tool fields) quad per message.
local f, bad = read_fields('rev', 'lid', 'mm', 'ma', 'la', 'idx', 'ttl', 'n', 'lv')
if bad then return bad end
if not f[1] and ARGV[7] ~= '1' then return {-1} end
local lid = f[2] or '0-0'
local dash = string.find(lid, '-', 1, true)
local lms, lseq = tonumber(string.sub(lid, 1, dash - 1)), tonumber(string.sub(lid, dash + 1))
local n = tonumber(f[8] or '0')
local out, fresh, pairs_, known, retry = {}, {}, {}, {}, true
for i = 9, #ARGV, 4 do  -- retried ids first: a damaged ids entry refuses before any write
  local existing = redis.call('HGET', IDS, ARGV[i])
  if existing then
    if not string.match(existing, '^%d+%-%d+$') then return {-4, 'ids', string.sub(existing, 1, 80)} end
    known[ARGV[i]] = existing
  else
    retry = false
  end
end
if ARGV[8] ~= '' and not retry then  -- a pure retry succeeds whatever came since
  local actual = lid
  if n == 0 then actual = '0-0' end
  if actual ~= ARGV[8] then return {-5, actual} end
end
for i = 9, #ARGV, 4 do
  local mid = ARGV[i]
  local existing = fresh[mid] or known[mid]
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 0
  else
    local ms = tonumber(ARGV[i + 1])
    if ms > lms then lms, lseq = ms, 0 else lseq = lseq + 1 end
    local id = string.format('%d-%d', lms, lseq)
    local tools = ARGV[i + 3]
    if tools == '' then
      redis.call('XADD', S, id, 'm', mid, 'd', ARGV[i + 2])
    else
      redis.call('XADD', S, id, unpack(with_tools({'m', mid, 'd', ARGV[i + 2]}, tools)))
    end
    fresh[mid] = id
    pairs_[#pairs_ + 1] = mid
    pairs_[#pairs_ + 1] = id
    n = n + 1
    if #pairs_ >= 2000 then
      redis.call('HSET', IDS, unpack(pairs_))
      pairs_ = {}
    end
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
if #pairs_ > 0 then redis.call('HSET', IDS, unpack(pairs_)) end
local max_n = tonumber(f[3] or ARGV[5])
if max_n > 0 and n > max_n then
  n = trim_oldest(redis.call('XRANGE', S, '-', '+', 'COUNT', n - max_n), n)
end
local max_age = tonumber(f[4] or ARGV[6])
if max_age > 0 then
  local min_ms = math.floor(tonumber(NOW) / 1000) - max_age
  if min_ms > lms then min_ms = lms end  -- the newest message always stays
  local old = redis.call('XRANGE', S, '-', '(' .. string.format('%d-0', min_ms))
  if #old > 0 then n = trim_oldest(old, n) end
end
local la = later(f[5], NOW)
local newest = string.format('%d-%d', lms, lseq)
if f[9] or tonumber(f[8] or '0') > 0 then
  redis.call('HSET', H, 'lid', newest, 'n', n, 'la', la)
else  -- the stream held nothing: every entry is in the current layout
  redis.call('HSET', H, 'lid', newest, 'n', n, 'la', la, 'lv', LAYOUT)
end
touch_indexes(la, f[6])
refresh_ttl(f[7])
return {1, la, f[6] or '', out}
""",
    idempotent=True,
)

DELETE_MESSAGE = script(
    "delete_message",
    r"""
-- ARGV[5] message id
if redis.call('EXISTS', H) == 0 then return {-1} end
local id = redis.call('HGET', IDS, ARGV[5])
if not id then return {0} end
if not string.match(id, '^%d+%-%d+$') then return {-4, 'ids', string.sub(id, 1, 80)} end
redis.call('XDEL', S, id)
redis.call('HDEL', IDS, ARGV[5])
redis.call('HSET', H, 'n', redis.call('XLEN', S))
return {1}
""",
)

CLEAR = script(
    "clear",
    r"""
if redis.call('EXISTS', H) == 0 then return {-1} end
local n = redis.call('XLEN', S)
redis.call('DEL', S, IDS)
redis.call('HSET', H, 'n', 0, 'lv', LAYOUT)
return {1, n}
""",
)

COUNT = script(
    "count",
    r"""
if redis.call('EXISTS', H) == 0 then return {-1} end
return {1, redis.call('XLEN', S)}
""",
    idempotent=True,
    writes=False,
)

SET_RETENTION = script(
    "set_retention",
    r"""
-- ARGV[5] max messages, [6] max age ms, [7] ttl ms; "" = use the store default
if redis.call('EXISTS', H) == 0 then return {-1} end
local fields = {'mm', 'ma', 'ttl'}
for i = 1, 3 do
  if ARGV[4 + i] == '' then redis.call('HDEL', H, fields[i])
  else redis.call('HSET', H, fields[i], ARGV[4 + i]) end
end
local ttl = tonumber(redis.call('HGET', H, 'ttl') or TTL_DEFAULT)  -- ours: just written
if ttl > 0 then refresh_ttl(ttl) else
  for i = 1, #KEYS do redis.call('PERSIST', KEYS[i]) end
end
return {1}
""",
    idempotent=True,
)

LIST = Script(
    "list",
    r"""
-- KEYS[1] index; ARGV[1] max score ("+inf" or a score), ARGV[2] how many to return
local rows = redis.call('ZRANGE', KEYS[1], ARGV[1], '-inf', 'BYSCORE', 'REV', 'LIMIT', 0,
                        tonumber(ARGV[2]) + redis.call('ZCOUNT', KEYS[1], ARGV[1], ARGV[1]),
                        'WITHSCORES')
return rows
""",
    idempotent=True,
    writes=False,
)


# --------------------------------------------------------------------------- ContextEngine adapter
# Fields the adapter keeps in the session hash (besides the store's own):
#   ce:uid, ce:ca   SessionMetrics user_id and created_at (µs); their presence makes the key a
#                   ContextEngine session (layout 1 marked it with ce = "session" and took both
#                   from the record; still read, see plans/contextengine.py)
#   ce:rq, ce:er, ce:pt, ce:st   request_count, error_count, total_processing_time, status
#   ce:cs           "1": an agent conversation session created through the adapter
#   ce:cb, ce:sum   compaction: the stream id of the first message the compacted view shows,
#                   and the summary shown before it (msgpack); no message is ever deleted

CE_UPDATE = script(
    "ce_update",
    r"""
-- ARGV[5] "session": the key must hold a ContextEngine session; "record": any saved session.
-- [6] "1" to bump activity to NOW, [7] explicit last activity (µs) or "", [8] request_count
-- increment, [9] error_count increment, [10] processing-time increment, then (field, value)
-- pairs to set. Reply {-1} or {1, la, idx}.
if ARGV[5] == 'session' then
  if redis.call('HEXISTS', H, 'ce:uid') == 0 and redis.call('HGET', H, 'ce') ~= 'session' then
    return {-1}
  end
elseif redis.call('HEXISTS', H, 'rec') == 0 then
  return {-1}
end
for i = 11, #ARGV, 2 do redis.call('HSET', H, ARGV[i], ARGV[i + 1]) end
if tonumber(ARGV[8]) ~= 0 then redis.call('HINCRBY', H, 'ce:rq', ARGV[8]) end
if tonumber(ARGV[9]) ~= 0 then redis.call('HINCRBY', H, 'ce:er', ARGV[9]) end
if tonumber(ARGV[10]) ~= 0 then redis.call('HINCRBYFLOAT', H, 'ce:pt', ARGV[10]) end
local la = redis.call('HGET', H, 'la')
local gt = true
if ARGV[7] ~= '' then
  la, gt = ARGV[7], false
  redis.call('HSET', H, 'la', la)
elseif ARGV[6] == '1' and ((not la) or tonumber(NOW) > tonumber(la)) then
  la = NOW
  redis.call('HSET', H, 'la', la)
end
local idx = redis.call('HGET', H, 'idx') or ''
if INLINE and la then
  for _, k in ipairs(split(idx)) do
    if gt then redis.call('ZADD', k, 'GT', la, MEMBER) else redis.call('ZADD', k, la, MEMBER) end
  end
end
refresh_ttl(redis.call('HGET', H, 'ttl'))
return {1, la or '0', idx}
""",
)

CE_PUT = script(
    "ce_put",
    r"""
-- Put one value into the checkpoints/writes hash or the task string of a key's hash tag.
-- ARGV[5] which key (4, 5 or 6), [6] hash field (unused for the task), [7] value,
-- [8] TTL in ms when no session owns the key ("0" = none), [9] "1" = only if absent.
-- The key follows its session's TTL when the session exists. Reply 1 written, 0 present.
local key, field, value = KEYS[tonumber(ARGV[5])], ARGV[6], ARGV[7]
local nx = ARGV[9] == '1'
if ARGV[5] == '6' then
  if nx and redis.call('EXISTS', key) == 1 then return 0 end
  redis.call('SET', key, value)
else
  if nx and redis.call('HEXISTS', key, field) == 1 then return 0 end
  redis.call('HSET', key, field, value)
end
if redis.call('EXISTS', H) == 1 then
  local t = redis.call('PTTL', H)
  if t > 0 then redis.call('PEXPIRE', key, t) else redis.call('PERSIST', key) end
elseif tonumber(ARGV[8]) > 0 then
  redis.call('PEXPIRE', key, ARGV[8])
end
return 1
""",
)

CE_VIEW = script(
    "ce_view",
    r"""
-- The compacted view in one round trip: {summary payload or "", boundary or "", rows}.
-- ARGV[5] how many of the newest entries from the boundary on ("0" = all, oldest first;
-- otherwise newest first).
local f = redis.call('HMGET', H, 'ce:cb', 'ce:sum')
local b = f[1] or '-'
if ARGV[5] == '0' then return {f[2] or '', f[1] or '', redis.call('XRANGE', S, b, '+')} end
return {f[2] or '', f[1] or '', redis.call('XREVRANGE', S, '+', b, 'COUNT', tonumber(ARGV[5]))}
""",
)

CE_COMPACT = script(
    "ce_compact",
    r"""
-- Move the compaction boundary if nobody moved it since the caller read it.
-- ARGV[5] the boundary the caller saw ("" = none), [6] the new boundary, [7] the summary
-- payload ("" = none). Reply {-1} no session, {0} compacted concurrently, {1} done.
if redis.call('EXISTS', H) == 0 then return {-1} end
if (redis.call('HGET', H, 'ce:cb') or '') ~= ARGV[5] then return {0} end
redis.call('HSET', H, 'ce:cb', ARGV[6])
if ARGV[7] == '' then redis.call('HDEL', H, 'ce:sum') else redis.call('HSET', H, 'ce:sum', ARGV[7]) end
refresh_ttl(redis.call('HGET', H, 'ttl'))
return {1}
""",
)

SUGGEST = Script(
    "suggest",
    r"""
-- KEYS[1] index; ARGV[1] MATCH pattern, [2] most entries to examine, [3] ZSCAN COUNT,
-- [4] most members to return. Read-only, bounded: "did you mean" on the error path only.
local cursor, seen, found = '0', 0, {}
local budget, step, most = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
repeat
  local reply = redis.call('ZSCAN', KEYS[1], cursor, 'MATCH', ARGV[1], 'COUNT', step)
  cursor = reply[1]
  for i = 1, #reply[2], 2 do found[#found + 1] = reply[2][i] end
  seen = seen + step
until cursor == '0' or seen >= budget or #found >= most
return found
""",
)
