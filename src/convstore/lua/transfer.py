"""Lua scripts of export/import: restore a session and its history exactly as exported.

They write the same session-hash fields as the scripts in ``lua.py`` (see its docstring)
and take the same common arguments (``PRELUDE``), but with values given by the caller:
the revision and last activity of the exported session, and each message's own stream
entry id. Both are idempotent: a rerun writes the same values, and a message whose id is
already stored is skipped.
"""

from __future__ import annotations

from convstore.lua import Script, script

__all__ = ["IMPORT_ENTRIES", "PROBE", "REPLACE_RECORD", "RESTORE_SESSION"]

RESTORE_SESSION: Script = script(
    "restore_session",
    r"""
-- ARGV[5] record, [6] identity, [7] revision, [8] last activity (µs), [9] idx,
-- [10] max messages, [11] max age ms, [12] ttl ms ("" = the store default).
-- Reply {1, la, old idx} or {-2, owner}.
local owner = redis.call('HGET', H, 'ident')
if owner and owner ~= ARGV[6] then return {-2, owner} end
local old = redis.call('HGET', H, 'idx') or ''
local empty = redis.call('XLEN', S) == 0
redis.call('HSET', H, 'rec', ARGV[5], 'ident', ARGV[6], 'rev', ARGV[7], 'la', ARGV[8],
           'idx', ARGV[9], 'n', redis.call('XLEN', S))
if empty then redis.call('HSET', H, 'lv', LAYOUT) end  -- entries are imported in the current layout
local fields = {'mm', 'ma', 'ttl'}
for i = 1, 3 do
  if ARGV[9 + i] == '' then redis.call('HDEL', H, fields[i])
  else redis.call('HSET', H, fields[i], ARGV[9 + i]) end
end
if INLINE then
  local keep = {}
  for _, k in ipairs(split(ARGV[9])) do
    keep[k] = true
    redis.call('ZADD', k, ARGV[8], MEMBER)
  end
  for _, k in ipairs(split(old)) do
    if not keep[k] then redis.call('ZREM', k, MEMBER) end
  end
end
refresh_ttl(redis.call('HGET', H, 'ttl'))
return {1, ARGV[8], old}
""",
    idempotent=True,
)

IMPORT_ENTRIES: Script = script(
    "import_entries",
    r"""
-- ARGV[5..]: (stored message id, stream entry id, payload, tool fields) quadruples, oldest
-- first, written in the current stream layout (fields m, d and the tool-call fields, as APPEND does).
-- A message id already stored is skipped. Last activity is left alone (the restored
-- session carries it). Reply {1, added}, {-1} no session, {-4, entry id, error}.
if redis.call('EXISTS', H) == 0 then return {-1} end
local function parse(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
local lid = redis.call('HGET', H, 'lid') or '0-0'
local lms, lseq = parse(lid)
local added, pairs_ = 0, {}
local function flush()
  if #pairs_ > 0 then redis.call('HSET', IDS, unpack(pairs_)) end
  pairs_ = {}
  redis.call('HSET', H, 'lid', string.format('%d-%d', lms, lseq), 'n', redis.call('XLEN', S))
end
for i = 5, #ARGV, 4 do
  local mid, id = ARGV[i], ARGV[i + 1]
  if redis.call('HEXISTS', IDS, mid) == 0 then
    local ok = redis.pcall('XADD', S, id, unpack(with_tools({'m', mid, 'd', ARGV[i + 2]}, ARGV[i + 3])))
    if type(ok) == 'table' and ok.err then
      flush()
      return {-4, id, ok.err}
    end
    pairs_[#pairs_ + 1] = mid
    pairs_[#pairs_ + 1] = id
    added = added + 1
    local ms, seq = parse(id)
    if ms > lms or (ms == lms and seq > lseq) then lms, lseq = ms, seq end
  end
end
flush()
refresh_ttl(redis.call('HGET', H, 'ttl'))
return {1, added}
""",
    idempotent=True,
)

REPLACE_RECORD: Script = script(
    "replace_record",
    r"""
-- A migration step's write: replace the session record if it is still the one the step
-- read, and fill in the hash fields an older writer may not have set.
-- ARGV[5] the record read, [6] the new record, [7] identity, [8] last activity (µs), [9] idx.
-- Reply {0} (changed meanwhile: read again), or {1, la, idx}.
if redis.call('HGET', H, 'rec') ~= ARGV[5] then return {0} end
redis.call('HSET', H, 'rec', ARGV[6])
redis.call('HSETNX', H, 'ident', ARGV[7])
redis.call('HSETNX', H, 'rev', 1)
redis.call('HSETNX', H, 'n', redis.call('XLEN', S))
redis.call('HSETNX', H, 'la', ARGV[8])
local la = redis.call('HGET', H, 'la')
if redis.call('HSETNX', H, 'idx', ARGV[9]) == 1 then touch_indexes(la, ARGV[9]) end
return {1, la, redis.call('HGET', H, 'idx')}
""",
    idempotent=True,
)

#: ``doctor``'s Lua probe: proves scripts run (read-only, touches no key).
PROBE: Script = Script("probe", "return {1, redis.call('PING')}", idempotent=True, writes=False)
