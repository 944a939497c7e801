"""Lua scripts that edit a history: pop the newest message, rewind after a point.

They take the same six session keys and four common arguments as the scripts in
:mod:`convstore.lua` (its :data:`~convstore.lua.PRELUDE` helpers included) and, like
them, never decode a payload: the stored message id is the first field of an entry.
The session's ``lid`` (last stream id assigned) is left alone, so later appends keep
getting ids above every id ever handed out.
"""

from __future__ import annotations

from convstore.lua import script

__all__ = ["POP", "TRUNCATE_AFTER"]

POP = script(
    "pop",
    r"""
-- Remove the newest entry with its idempotency entry; reply {-1} no session, {0} empty,
-- {1, row} with row = {stream id, fields} as XRANGE gives it.
if redis.call('EXISTS', H) == 0 then return {-1} end
local rows = redis.call('XREVRANGE', S, '+', '-', 'COUNT', 1)
if #rows == 0 then return {0} end
redis.call('XDEL', S, rows[1][1])
drop_ids(rows)
redis.call('HSET', H, 'n', redis.call('XLEN', S))
refresh_ttl(redis.call('HGET', H, 'ttl'))
return {1, rows[1]}
""",
)

TRUNCATE_AFTER = script(
    "truncate_after",
    r"""
-- Remove every entry after a point; the point itself stays. ARGV[5] a stored message id
-- ("" = none), [6] a stream id ("" = none): the message id is looked up first, the stream
-- id must name an entry. Reply {-1} no session, {0} no such point, {1, removed}.
if redis.call('EXISTS', H) == 0 then return {-1} end
local at = false
if ARGV[5] ~= '' then at = redis.call('HGET', IDS, ARGV[5]) end
if (not at) and ARGV[6] ~= '' and #redis.call('XRANGE', S, ARGV[6], ARGV[6]) == 1 then
  at = ARGV[6]
end
if not at then return {0} end
local removed = 0
while true do
  local rows = redis.call('XRANGE', S, '(' .. at, '+', 'COUNT', 500)
  if #rows == 0 then break end
  local ids = {}
  for i, row in ipairs(rows) do ids[i] = row[1] end
  redis.call('XDEL', S, unpack(ids))
  drop_ids(rows)
  removed = removed + #rows
end
redis.call('HSET', H, 'n', redis.call('XLEN', S))
refresh_ttl(redis.call('HGET', H, 'ttl'))
return {1, removed}
""",
)
