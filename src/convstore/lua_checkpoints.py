"""Lua scripts of the LangGraph checkpoint saver: one thread's five keys per call.

KEYS are always ``ThreadKeys.all()`` (one hash tag, so one cluster slot)::

    KEYS[1] checkpoints (ZSET, lexical)   KEYS[2] records (HASH)   KEYS[3] blobs (HASH)
    KEYS[4] writes (HASH)                 KEYS[5] write index (ZSET, lexical)

A checkpoint member is ``ns NUL checkpoint_id``; its writes' fields start with
``member NUL``, so they are one lexical range of the write index. The scripts never
decode a value: records, blobs and writes are opaque bytes built by the adapter. Every
write refreshes the TTL of all five keys together (ARGV[1], ms, "0" = none), so no part
of a thread outlives another.
"""

from __future__ import annotations

from convstore.lua import Script

__all__ = ["LG_COPY", "LG_PRUNE", "LG_PUT", "LG_PUT_WRITES", "LG_READ"]

_PRELUDE = r"""
local CPS, REC, BLOBS, WRITES, WIX = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local function refresh_ttl(ttl)
  ttl = tonumber(ttl)
  if ttl and ttl > 0 then
    for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end
local function writes_of(member)
  return redis.call('ZRANGEBYLEX', WIX, '[' .. member .. '\0', '(' .. member .. '\1')
end
"""


def _script(name: str, body: str, *, idempotent: bool, writes: bool = True) -> Script:
    return Script(name, _PRELUDE + body, idempotent, writes)


LG_PUT = _script(
    "lg_put",
    r"""
-- ARGV[2] member, [3] record, then (blob field, blob) pairs.
redis.call('HSET', REC, ARGV[2], ARGV[3])
redis.call('ZADD', CPS, 0, ARGV[2])
for i = 4, #ARGV, 2 do redis.call('HSET', BLOBS, ARGV[i], ARGV[i + 1]) end
refresh_ttl(ARGV[1])
return 1
""",
    idempotent=True,
)

LG_PUT_WRITES = _script(
    "lg_put_writes",
    r"""
-- (field, write, "1" = keep an existing one) triples from ARGV[2] on.
for i = 2, #ARGV, 3 do
  if ARGV[i + 2] == '1' then redis.call('HSETNX', WRITES, ARGV[i], ARGV[i + 1])
  else redis.call('HSET', WRITES, ARGV[i], ARGV[i + 1]) end
  redis.call('ZADD', WIX, 0, ARGV[i])
end
refresh_ttl(ARGV[1])
return 1
""",
    idempotent=True,
)

LG_READ = _script(
    "lg_read",
    r"""
-- Checkpoints newest first in a lexical range: ARGV[1] max, [2] min (ZREVRANGEBYLEX
-- bounds), [3] how many ("0" = all). Reply: {{member, record, {write, ...}}, ...}.
local members
if ARGV[3] == '0' then members = redis.call('ZREVRANGEBYLEX', CPS, ARGV[1], ARGV[2])
else members = redis.call('ZREVRANGEBYLEX', CPS, ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[3])) end
local out = {}
for _, m in ipairs(members) do
  local rec = redis.call('HGET', REC, m)
  if rec then
    local fields, ws = writes_of(m), {}
    if #fields > 0 then
      for _, f in ipairs(fields) do
        local w = redis.call('HGET', WRITES, f)
        if w then ws[#ws + 1] = w end
      end
    end
    out[#out + 1] = {m, rec, ws}
  end
end
return out
""",
    idempotent=True,
    writes=False,
)

LG_PRUNE = _script(
    "lg_prune",
    r"""
-- ARGV[2] how many checkpoint members follow; then the members to delete (with their
-- writes), then the blob fields to delete.
local n = tonumber(ARGV[2])
for i = 3, 2 + n do
  local m = ARGV[i]
  redis.call('HDEL', REC, m)
  redis.call('ZREM', CPS, m)
  for _, f in ipairs(writes_of(m)) do
    redis.call('HDEL', WRITES, f)
    redis.call('ZREM', WIX, f)
  end
end
for i = 3 + n, #ARGV do redis.call('HDEL', BLOBS, ARGV[i]) end
return 1
""",
    idempotent=True,
)

LG_COPY = _script(
    "lg_copy",
    r"""
-- Write a chunk of another thread's data into this one. ARGV[2] checkpoint pairs,
-- [3] blob pairs, then (member, record)..., (blob field, blob)..., (write field, write)...
local ncp, nblob = tonumber(ARGV[2]), tonumber(ARGV[3])
local i = 4
for _ = 1, ncp do
  redis.call('HSET', REC, ARGV[i], ARGV[i + 1])
  redis.call('ZADD', CPS, 0, ARGV[i])
  i = i + 2
end
for _ = 1, nblob do
  redis.call('HSET', BLOBS, ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i < #ARGV do
  redis.call('HSET', WRITES, ARGV[i], ARGV[i + 1])
  redis.call('ZADD', WIX, 0, ARGV[i])
  i = i + 2
end
refresh_ttl(ARGV[1])
return 1
""",
    idempotent=True,
)
