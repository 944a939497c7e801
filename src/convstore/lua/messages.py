"""Message scripts: append (idempotent, retention, tool-call groups), delete, clear, count."""

from __future__ import annotations

from convstore.lua.core import script

__all__ = ["APPEND", "CLEAR", "COUNT", "DELETE_MESSAGE"]


APPEND = script(
    "append",
    r"""
-- Arguments packed (see lua/core.py's _PACKED_HEADER): ARGV[1] holds the flags, now, the
-- store's default TTL, MAX_MESSAGES and MAX_AGE ("0" = none), and EXPECT, the entry id
-- the caller saw last ("0-0" = no message; "*" = no check); UNSAVED_OK accepts a session
-- that was never saved (the ContextEngine contract: the message is kept and the hash gets
-- its counters, but no record, so get() stays None); FRESH says every message id is one the
-- caller generated for this call and this is its first send (no lookup of retried ids;
-- a re-send says 0). From ARGV[3], one (stored message
-- id, "<timestamp ms>[\t<tool fields>]", payload) triple per message (the tool fields,
-- "<tc>\t<tr>", only for tool-call messages).
-- Success replies one string (a flat reply is several times cheaper for the client to
-- parse than nested arrays): "<la> <entry id><+ new | = already stored> ...", and on
-- Redis Cluster (INLINE false), when the index scores move, "\n<idx>" after it: the
-- index keys the caller updates.
local f, bad = read_fields('rev', 'lid', 'mm', 'ma', 'la', 'ttl', 'n', 'lv')
if bad then return bad end
if not f[1] and not UNSAVED_OK then return {-1} end
local la = later(f[5], NOW)
local idx = nil  -- the index keys, read only when the scores move (see INDEX_RESOLUTION)
if index_moves(f[5], la) then
  idx, bad = read_fields('idx')
  if bad then return bad end
  idx = idx[1]
end
-- the newest entry id: its milliseconds kept as text (compared with num_lt, never
-- parsed), canonical (a damaged '0012' would make ids that differ from XADD's as text)
local lid = f[2] or '0-0'
local dash = string.find(lid, '-', 1, true)
local lms, lseq = string.sub(lid, 1, dash - 1), tonumber(string.sub(lid, dash + 1))
if dash > 2 and string.byte(lms) == 48 then lms = string.format('%d', tonumber(lms)) end
local n0 = tonumber(f[7] or '0')
local n = n0
local out, fresh, pairs_, known, retry, mids = {}, {}, {}, {}, not FRESH, {}
-- FRESH: the first send of ids the caller generated, which nothing can have stored yet;
-- else retried ids first: a damaged ids entry refuses before any write
if not FRESH then for i = 3, #ARGV, 3 do mids[#mids + 1] = ARGV[i] end end
for start = 1, #mids, 1000 do
  local found = redis.call('HMGET', IDS, unpack(mids, start, math.min(start + 999, #mids)))
  for j, existing in ipairs(found) do
    if existing then
      if not string.find(existing, '^%d+%-%d+$') then return {-4, 'ids', string.sub(existing, 1, 80)} end
      known[mids[start + j - 1]] = existing
    else
      retry = false
    end
  end
end
if EXPECT ~= '*' and not retry then  -- a pure retry succeeds whatever came since
  local actual = lid
  if n == 0 then actual = '0-0' end
  if actual ~= EXPECT then return {-5, actual} end
end
for i = 3, #ARGV, 3 do
  local mid = ARGV[i]
  local existing = fresh[mid] or known[mid]
  if existing then
    out[#out + 1] = existing .. '='
  else
    local at = ARGV[i + 1]
    local tab = string.find(at, '\t', 1, true)
    local ms = tab and string.sub(at, 1, tab - 1) or at
    if num_lt(lms, ms) then lms, lseq = ms, 0 else lseq = lseq + 1 end
    local id = string.format('%s-%d', lms, lseq)
    if not tab then
      redis.call('XADD', S, id, 'm', mid, 'd', ARGV[i + 2])
    else
      redis.call('XADD', S, id, unpack(with_tools({'m', mid, 'd', ARGV[i + 2]}, string.sub(at, tab + 1))))
    end
    fresh[mid] = id
    pairs_[#pairs_ + 1] = mid
    pairs_[#pairs_ + 1] = id
    n = n + 1
    if #pairs_ >= 2000 then
      redis.call('HSET', IDS, unpack(pairs_))
      pairs_ = {}
    end
    out[#out + 1] = id .. '+'
  end
end
if #pairs_ > 0 then redis.call('HSET', IDS, unpack(pairs_)) end
local max_n = f[3] or MAX_MESSAGES
max_n = max_n ~= '0' and tonumber(max_n) or 0
if max_n > 0 and n > max_n then
  n = redis.call('XLEN', S)  -- the stream's own count: a stale 'n' must never drop too many
  if n > max_n then
    n = trim_oldest(redis.call('XRANGE', S, '-', '+', 'COUNT', n - max_n), n)
  end
end
local max_age = f[4] or MAX_AGE
max_age = max_age ~= '0' and tonumber(max_age) or 0
if max_age > 0 then
  local min_ms = math.floor(tonumber(NOW) / 1000) - max_age
  if min_ms > tonumber(lms) then min_ms = tonumber(lms) end  -- the newest message always stays
  local old = redis.call('XRANGE', S, '-', '(' .. string.format('%d-0', min_ms))
  if #old > 0 then n = trim_oldest(old, n) end
end
local newest = string.format('%s-%d', lms, lseq)
if f[8] or n0 > 0 then
  redis.call('HSET', H, 'lid', newest, 'n', n, 'la', la)
else  -- the stream held nothing: every entry is in the current layout
  redis.call('HSET', H, 'lid', newest, 'n', n, 'la', la, 'lv', LAYOUT)
end
if idx then touch_indexes(la, idx) end
refresh_ttl(f[6])
if INLINE or not idx then return la .. ' ' .. table.concat(out, ' ') end
return la .. ' ' .. table.concat(out, ' ') .. '\n' .. idx
""",
    idempotent=True,
    packed=True,
    grouped=True,
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
