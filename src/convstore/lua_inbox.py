"""Lua scripts of the inboxes (delivery, consumer groups, dead letters).

Two kinds, never mixed, so no script spans two cluster slots:

* session scripts (``OUTBOX_READ``, ``OUTBOX_ADVANCE``) take ``KEYS = (session hash,
  messages stream)`` of one session: its stream is the outbox, and the hash field ``dl``
  is the delivery cursor (every entry up to it has been delivered; only ever moved forward);
* inbox scripts take ``InboxKeys.all()`` = ``(stream, ids, dead)`` of one recipient.

An inbox entry has the fields ``s`` (session key), ``e`` (the entry id in the session
stream), ``k`` (the dedup key: session key + message_id) and ``r`` (the session entry's
fields, as stored, packed by the caller). Scripts never decode message payloads.
A dead letter has the same fields plus ``reason``, ``group``, ``consumer``, ``deliveries``
and ``inbox_id``.
"""

from __future__ import annotations

from convstore.lua import Script

__all__ = [
    "INBOX_ACK",
    "INBOX_DELIVER",
    "INBOX_GROUP",
    "INBOX_RECLAIM",
    "INBOX_REJECT",
    "OUTBOX_ADVANCE",
    "OUTBOX_FORGET",
    "OUTBOX_READ",
]

OUTBOX_READ = Script(
    "outbox_read",
    r"""
-- ARGV[1] most entries. Reply {cursor, rows after the cursor}.
local dl = redis.call('HGET', KEYS[1], 'dl') or '0-0'
return {dl, redis.call('XRANGE', KEYS[2], '(' .. dl, '+', 'COUNT', tonumber(ARGV[1]))}
""",
    idempotent=True,
    writes=False,
)

_IDS = r"""
local function newer(a, b)  -- stream id a > stream id b
  local da, db = string.find(a, '-', 1, true), string.find(b, '-', 1, true)
  local ma, mb = tonumber(string.sub(a, 1, da - 1)), tonumber(string.sub(b, 1, db - 1))
  if ma ~= mb then return ma > mb end
  return tonumber(string.sub(a, da + 1)) > tonumber(string.sub(b, db + 1))
end
"""

OUTBOX_ADVANCE = Script(
    "outbox_advance",
    _IDS
    + r"""
-- ARGV[1] the last entry id delivered. Never moves the cursor back; 0 if no session.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local dl = redis.call('HGET', KEYS[1], 'dl') or '0-0'
if newer(ARGV[1], dl) then redis.call('HSET', KEYS[1], 'dl', ARGV[1]) end
return 1
""",
    idempotent=True,
)

OUTBOX_FORGET = Script(
    "outbox_forget",
    r"""
-- KEYS[1] the outbox set; ARGV[1] session key, [2] the score the sweeper saw.
-- Removed only if no append marked it again since.
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
""",
    idempotent=False,
)

_DEAD = r"""
local I, D, X = KEYS[1], KEYS[2], KEYS[3]
-- Copy entry `id` (fields `row`, may be nil when gone) to the dead letters, ack it for `group`.
local function bury(id, row, reason, group, consumer, deliveries, dead_max)
  local fields = {'reason', reason, 'group', group, 'consumer', consumer,
                  'deliveries', deliveries, 'inbox_id', id}
  if row then for i = 1, #row do fields[#fields + 1] = row[i] end end
  redis.call('XADD', X, 'MAXLEN', '~', dead_max, '*', unpack(fields))
  if group ~= '' then redis.call('XACK', I, group, id) end
end
local function fields_of(id)
  local rows = redis.call('XRANGE', I, id, id)
  if #rows == 0 then return nil end
  return rows[1][2]
end
"""

INBOX_DELIVER = Script(
    "inbox_deliver",
    _IDS
    + _DEAD
    + r"""
-- ARGV[1] retention (most entries, "0" = none), [2] dead-letter cap, then one
-- (session key, session entry id, dedup key, packed fields) quadruple per message.
-- Reply: how many were new. An entry past retention that a group has not acked (pending,
-- or never read by it) is dead-lettered for that group with the reason before the trim.
local fresh = 0
for i = 3, #ARGV, 4 do
  if redis.call('HEXISTS', D, ARGV[i + 2]) == 0 then
    local id = redis.call('XADD', I, '*', 's', ARGV[i], 'e', ARGV[i + 1], 'k', ARGV[i + 2],
                          'r', ARGV[i + 3])
    redis.call('HSET', D, ARGV[i + 2], id)
    fresh = fresh + 1
  end
end
local keep, dead_max = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = redis.call('XLEN', I)
if keep > 0 and n > keep then
  local old = redis.call('XRANGE', I, '-', '+', 'COUNT', n - keep)
  local bound = old[#old][1]
  local groups = redis.call('XINFO', 'GROUPS', I)
  for _, g in ipairs(groups) do
    local info = {}
    for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
    local name, last = info['name'], info['last-delivered-id']
    for _, p in ipairs(redis.call('XPENDING', I, name, '-', bound, n)) do
      bury(p[1], fields_of(p[1]), 'retention: pending past the inbox retention', name, p[2],
           p[4], dead_max)
    end
    for _, row in ipairs(old) do
      if newer(row[1], last) then
        bury(row[1], row[2], 'retention: never read, past the inbox retention', name, '', 0,
             dead_max)
      end
    end
  end
  for _, row in ipairs(old) do
    for j = 1, #row[2], 2 do
      if row[2][j] == 'k' then redis.call('HDEL', D, row[2][j + 1]) end
    end
  end
  redis.call('XTRIM', I, 'MAXLEN', keep)
end
return fresh
""",
    idempotent=True,
)

INBOX_ACK = Script(
    "inbox_ack",
    r"""
-- ARGV[1] group, [2] consumer, [3] entry id. 1 acked; 0 this consumer does not own it.
local I = KEYS[1]
local p = redis.call('XPENDING', I, ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #p == 0 then return 0 end
return redis.call('XACK', I, ARGV[1], ARGV[3])
""",
)

INBOX_REJECT = Script(
    "inbox_reject",
    _DEAD
    + r"""
-- ARGV[1] group, [2] consumer, [3] entry id, [4] reason, [5] dead-letter cap.
-- Dead-letter an entry this consumer owns. 1 done; 0 it does not own it.
local p = redis.call('XPENDING', I, ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #p == 0 then return 0 end
bury(ARGV[3], fields_of(ARGV[3]), ARGV[4], ARGV[1], ARGV[2], p[1][4], tonumber(ARGV[5]))
return 1
""",
)

INBOX_RECLAIM = Script(
    "inbox_reclaim",
    _DEAD
    + r"""
-- ARGV[1] group, [2] consumer, [3] min idle ms, [4] most entries, [5] max deliveries,
-- [6] dead-letter cap. Of the entries idle that long and held by *other* consumers (this
-- one still holds its own), those delivered max-deliveries times go to the dead letters
-- and the rest are claimed for this consumer (what XAUTOCLAIM does, minus our own).
-- Reply {claimed rows, how many were dead-lettered}.
local group, consumer, idle, most = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local limit, buried, ids = tonumber(ARGV[5]), 0, {}
for _, p in ipairs(redis.call('XPENDING', I, group, 'IDLE', idle, '-', '+', most)) do
  if p[2] ~= consumer then
    if tonumber(p[4]) >= limit then
      bury(p[1], fields_of(p[1]), 'max-deliveries: delivered ' .. p[4] .. ' times without ack',
           group, p[2], p[4], tonumber(ARGV[6]))
      buried = buried + 1
    else
      ids[#ids + 1] = p[1]
    end
  end
end
if #ids == 0 then return {{}, buried} end
return {redis.call('XCLAIM', I, group, consumer, idle, unpack(ids)), buried}
""",
)

INBOX_GROUP = Script(
    "inbox_group",
    r"""
-- ARGV[1] group. Create it (reading from the start of the inbox) unless it exists.
local I = KEYS[1]
if redis.call('EXISTS', I) == 1 then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', I)) do
    for j = 1, #g, 2 do
      if g[j] == 'name' and g[j + 1] == ARGV[1] then return 0 end
    end
  end
end
redis.call('XGROUP', 'CREATE', I, ARGV[1], '0', 'MKSTREAM')
return 1
""",
)
