"""Session scripts: save, touch, delete, retention, the index listing and key suggestions."""

from __future__ import annotations

from convstore.lua.core import Script, script

__all__ = ["DELETE", "LIST", "SAVE", "SET_RETENTION", "SUGGEST", "TOUCH"]


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
