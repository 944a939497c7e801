"""The ContextEngine adapter's scripts: SessionMetrics fields, side records, compaction."""

from __future__ import annotations

from convstore.lua.core import script

__all__ = ["CE_COMPACT", "CE_PUT", "CE_UPDATE"]


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
