"""The Lua helper functions session scripts share (``lua.core`` puts into each script the
ones its body uses): reading and checking session-hash fields, TTL refresh, the index
updates, tool-call fields and retention.

Each helper uses the common names the script header sets (``H``, ``S``, ``IDS``, ``KEYS``,
``NOW``, ``TTL_DEFAULT``, ``INLINE``, ``MEMBER``, ``INDEX_RESOLUTION``,
``RESOLUTION_DIGITS``; see ``lua/core.py``).
"""

from __future__ import annotations

import re

__all__ = ["HELPERS", "HELPER_SOURCE"]

# The helpers, in definition order, one top-level definition group per paragraph (a blank
# line ends one). A script gets only those its body uses, directly or through another
# helper: Lua builds every local function of a script on every call, so the whole set
# would cost an append about as much as two of its Redis commands.
HELPER_SOURCE = r"""
local function split(text)
  local out = {}
  if text then for k in string.gmatch(text, '[^\n]+') do out[#out + 1] = k end end
  return out
end

-- every index key of this namespace starts with "<namespace>:idx:" (worked out on first use)
local IDX_PREFIX = nil
local function own_index(k)
  IDX_PREFIX = IDX_PREFIX or (string.match(H, '^[^:]*') .. ':idx:')
  return string.sub(k, 1, #IDX_PREFIX) == IDX_PREFIX
end

-- what convstore writes in each session-hash field a script reads: counts of at most
-- 15 digits (exact in Lua's doubles); 'la' within the years 1-9999 Python can represent;
-- 'idx' lists index keys of this namespace only. One pattern per field: this runs on
-- every write, so it stays a handful of string.find calls.
local function well_formed(name, v)
  if name == 'rev' or name == 'n' or name == 'lv' or name == 'mm' or name == 'ma' or name == 'ttl' then
    return #v <= 15 and string.find(v, '^%d+$') ~= nil
  end
  if name == 'lid' then
    local ms, seq = string.match(v, '^(%d+)%-(%d+)$')
    return ms ~= nil and #ms <= 15 and #seq <= 15
  end
  if name == 'la' then
    if #v > 40 or not string.find(v, '^%-?%d+$') then return false end
    if #v <= 17 then return true end  -- |la| < 10^17 µs: inside the years 1-9999
    local x = tonumber(v)
    return x > -62135596000000000 and x < 253402300000000000
  end
  if name == 'idx' then
    for _, k in ipairs(split(v)) do if not own_index(k) then return false end end
  end
  return true
end

-- HMGET of the session hash; a field in a format convstore never writes gives
-- nil, {-4, field, value} (return it: the script has written nothing yet)
local function read_fields(...)
  local f, names = redis.call('HMGET', H, ...), {...}
  for i = 1, #names do
    local v = f[i]
    if v and not well_formed(names[i], v) then return nil, {-4, names[i], string.sub(v, 1, 80)} end
  end
  return f
end

-- ttl: the session's own 'ttl' field (nil = the store default)
local function refresh_ttl(ttl)
  ttl = ttl or TTL_DEFAULT
  if ttl == '0' then return end
  ttl = tonumber(ttl)
  if ttl and ttl > 0 then
    for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end

-- a < b for two decimal integers as text (as read_fields checks them): compared as text
-- when both have the same length and no sign, else as numbers (Lua's tonumber is strtod,
-- which costs an append more than some of its Redis commands)
local function num_lt(a, b)
  if #a == #b and string.byte(a) ~= 45 and string.byte(b) ~= 45 then return a < b end
  return tonumber(a) < tonumber(b)
end

local function later(a, b)
  if (not a) or num_lt(a, b) then return b end
  return a
end

local function touch_indexes(la, idx)
  if INLINE then
    for _, k in ipairs(split(idx)) do redis.call('ZADD', k, 'GT', la, MEMBER) end
  end
end

-- whether moving last activity from `old` to `new` (µs, text) must update the indexes:
-- when it enters another INDEX_RESOLUTION bucket. Two unsigned texts of one length are
-- in one bucket when all but their last RESOLUTION_DIGITS digits agree; else as numbers
-- (beyond 2^53 µs, in the year 2255, doubles are inexact: always)
local function index_moves(old, new)
  if not old then return true end
  if #old == #new and string.byte(old) ~= 45 and string.byte(new) ~= 45 then
    return string.sub(old, 1, -RESOLUTION_DIGITS - 1) ~= string.sub(new, 1, -RESOLUTION_DIGITS - 1)
  end
  local a, b = tonumber(old), tonumber(new)
  if b >= 9007199254740992 or a <= -9007199254740992 then return true end
  return math.floor(a / INDEX_RESOLUTION) ~= math.floor(b / INDEX_RESOLUTION)
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

_DEFINES = re.compile(r"^local (?:function )?([A-Za-z_][A-Za-z_0-9]*)", re.MULTILINE)
#: (names a chunk defines, its source), in definition order.
HELPERS = tuple(
    (tuple(_DEFINES.findall(chunk)), chunk.strip("\n") + "\n")
    for chunk in HELPER_SOURCE.split("\n\n")
    if chunk.strip()
)
