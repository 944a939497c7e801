"""Lua scripts, the shared part: :class:`Script`, the prelude every session script runs
after, and the stored layout version. Every write is one script, so one round trip and
atomic.

Every script gets the six keys of one session (``SessionKeys.all()``), which
share a hash tag and so one cluster slot. The common arguments are::

    ARGV[1]  "1" to update the session indexes inside the script (standalone
             Redis), "0" on Redis Cluster, where the indexes live in other slots
             and the caller updates them from what the script returns
    ARGV[2]  the session key (the member stored in the index sorted sets)
    ARGV[3]  now, in microseconds since the epoch (the caller's clock)
    ARGV[4]  the store's default TTL in milliseconds ("0" = none)

APPEND, the hot path, takes them packed into ARGV[1] with its own settings, and the
member in ARGV[2] (``script(..., packed=True)``, see ``_PACKED_HEADER``). Each script
carries only the helpers its body uses (:func:`prelude_for`). The index scores are kept
to :data:`INDEX_RESOLUTION_US` by appends (exact by every other write).

Session hash fields: ``rec`` (msgpack record), ``ident`` (msgpack identity of
the session owning the key), ``rev`` (revision), ``la`` (last activity, µs),
``n`` (messages held), ``lid`` (last stream id assigned), ``idx`` (index keys,
newline separated), ``lv`` (stored layout version, :data:`LAYOUT_VERSION`, present once
every entry of the stream is in that layout), and the per-session overrides ``mm``
(max messages), ``ma`` (max age, ms) and ``ttl`` (ms).

Stream entries, layout 3 (written since ``lv`` = 3): plain fields ``m`` (the stored
message id, ``codec.encode_message_id``), ``d`` (the msgpack payload, an array
``[2, role, content, timestamp, metadata]``, see ``codec.encode_entry``), then, only for
tool-call messages, ``tc`` (the ids of ``metadata["tool_calls"][*]["id"]``, newline
separated) and/or ``tr`` (``metadata["tool_call_id"]``). Tool ids are stored with ``%``,
newline and tab percent-encoded (``%25``, ``%0A``, ``%09``), so scripts compare them as
opaque strings and never decode a payload. Layout 2 (still read): the same fields, but
``d`` may be the older msgpack map ``{v: 1, r, c, t, m}``. Layout 1 (still read): one
field, name = stored message id, value = payload (a map). ``plans/layout.py`` migrates
both to layout 3. A tool-call group is an entry with ``tc`` and the ``tr`` entries that directly
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

import re
from dataclasses import dataclass

__all__ = [
    "INDEX_RESOLUTION_US",
    "LAYOUT_VERSION",
    "PRELUDE",
    "Script",
    "grouped_source",
    "prelude_for",
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
    #: The same body run once per session for several sessions in one call (see
    #: :func:`grouped_source`); set on the hot path, APPEND, for the asyncio driver.
    grouped: Script | None = None


#: Stored layout of a session's stream (see the module docstring); the session hash
#: field ``lv`` holds it once every entry of the stream is in this layout.
LAYOUT_VERSION = 3

#: Resolution of the session indexes, in µs. Most writes set a session's index scores to
#: its exact last activity ``la``; an append moves them only when ``la`` enters a new
#: whole second (an index update is six ZADDs, a third of an append's server time). So a
#: score is never above ``la`` and less than this below it, and readers that order by
#: activity (``plans.list_sessions``) read ``la`` itself and order by that.
INDEX_RESOLUTION_US = 1_000_000

_RESOLUTION_DIGITS = len(str(INDEX_RESOLUTION_US)) - 1
assert INDEX_RESOLUTION_US == 10**_RESOLUTION_DIGITS, "index_moves compares decimal digits"
_CONSTANTS = (
    f"local LAYOUT, INDEX_RESOLUTION, RESOLUTION_DIGITS = "
    f"'{LAYOUT_VERSION}', {INDEX_RESOLUTION_US}, {_RESOLUTION_DIGITS}\n"
)

_HEADER = (
    _CONSTANTS
    + r"""local H, S, IDS = KEYS[1], KEYS[2], KEYS[3]
local INLINE, MEMBER, NOW, TTL_DEFAULT = ARGV[1] == '1', ARGV[2], ARGV[3], ARGV[4]
"""
)

# The header of a script taking its arguments packed (``script(..., packed=True)``): the
# hot path, APPEND, where redis-py packs every argument in Python (the asyncio client
# always does), so six arguments folded into one cost less than they carry. ARGV[1] is
# "<inline><unsaved_ok><fresh> <now> <default ttl> <max messages> <max age ms> <expect_last>"
# (flags "0"/"1"; expect_last "*" for none), ARGV[2] the member; the script's own from [3].
# The names it sets, then the statements that set them (a grouped script sets them again
# for each session).
_PACKED_NAMES = (
    "H, S, IDS, FLAGS, NOW, TTL_DEFAULT, MAX_MESSAGES, MAX_AGE, EXPECT, INLINE, MEMBER, "
    "UNSAVED_OK, FRESH"
)
_PACKED_SETS = r"""H, S, IDS = KEYS[1], KEYS[2], KEYS[3]
FLAGS, NOW, TTL_DEFAULT, MAX_MESSAGES, MAX_AGE, EXPECT = string.match(
  ARGV[1], '^(%d%d%d) (%-?%d+) (%d+) (%d+) (%d+) (%S+)$')
INLINE, MEMBER = string.sub(FLAGS, 1, 1) == '1', ARGV[2]
UNSAVED_OK, FRESH = string.sub(FLAGS, 2, 2) == '1', string.sub(FLAGS, 3, 3) == '1'
"""
_PACKED_HEADER = _CONSTANTS + f"local {_PACKED_NAMES}\n" + _PACKED_SETS

# A grouped script: ARGV[1] lists "<keys>,<args>" per session, then come the sessions' own
# KEYS and ARGV in that order. The body runs once per session, under pcall, so a Lua or
# Redis error in one session's run is that session's reply (an error element) and the
# others still run, exactly as if each had been its own call; its reply is the array of
# the sessions' replies.
_GROUPED_HEAD = r"""local ALL_KEYS, ALL_ARGV = KEYS, ARGV
local KEYS, ARGV = {}, {}
"""
_GROUPED_LOOP = r"""local replies, k, a = {}, 0, 1
for nk, na in string.gmatch(ALL_ARGV[1], '(%d+),(%d+)') do
  KEYS, ARGV = {}, {}
  for i = 1, tonumber(nk) do KEYS[i] = ALL_KEYS[k + i] end
  for i = 1, tonumber(na) do ARGV[i] = ALL_ARGV[a + i] end
  k, a = k + tonumber(nk), a + tonumber(na)
"""
_GROUPED_TAIL = r"""  local ok, reply = pcall(run_one)
  if not ok then
    if type(reply) == 'table' and reply.err then reply = reply.err else reply = 'ERR ' .. tostring(reply) end
    reply = redis.error_reply(reply)
  end
  replies[#replies + 1] = reply
end
return replies
"""

# The helpers, in definition order, one top-level definition group per paragraph (a blank
# line ends one). A script gets only those its body uses, directly or through another
# helper: Lua builds every local function of a script on every call, so the whole set
# would cost an append about as much as two of its Redis commands.
_HELPER_SOURCE = r"""
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
_HELPERS = tuple(
    (tuple(_DEFINES.findall(chunk)), chunk.strip("\n") + "\n")
    for chunk in _HELPER_SOURCE.split("\n\n")
    if chunk.strip()
)

#: Everything a session script may use: the common names and every helper.
PRELUDE = _HEADER + "\n".join(chunk for _, chunk in _HELPERS)


#: Helpers built when they are called rather than on every run of a script that might
#: call them: retention, which most appends never reach (Lua builds a closure for every
#: local function of a script on every run; trim_oldest and the four helpers only it
#: uses cost an append as much as an HSET).
_LAZY = frozenset({"trim_oldest"})


def _uses(text: str, names: tuple[str, ...]) -> bool:
    return re.search(r"\b(?:" + "|".join(names) + r")\b", text) is not None


def _closure(text: str, helpers: list[tuple[tuple[str, ...], str]]) -> list[str]:
    """The chunks of ``helpers`` that ``text`` uses, directly or through another."""
    chosen = []
    for names, chunk in reversed(helpers):  # a helper only uses helpers defined before it
        if _uses(text, names):
            chosen.append(chunk)
            text += chunk
    return chosen[::-1]


def _helpers_for(body: str) -> str:
    """The helpers ``body`` uses, directly or through a helper, in definition order; a
    :data:`_LAZY` helper and what only it uses go in a function built when it is called."""
    eager_pool = [h for h in _HELPERS if not set(h[0]) & _LAZY]
    eager = _closure(body, eager_pool)
    out = list(eager)
    for names, chunk in _HELPERS:
        if set(names) & _LAZY and _uses(body + "".join(eager), names):
            inner = [c for c in _closure(chunk, eager_pool) if c not in eager]
            (name,) = set(names) & _LAZY
            out.append(
                f"local {name} = function(...)  -- built when called (see lua/core.py _LAZY)\n"
                + "".join(inner)
                + chunk
                + f"return {name}(...)\nend\n"
            )
    return "\n".join(out)


def prelude_for(body: str, *, packed: bool = False) -> str:
    """The common names and the helpers ``body`` uses (directly or through a helper)."""
    return (_PACKED_HEADER if packed else _HEADER) + _helpers_for(body)


def grouped_source(body: str) -> str:
    """A packed script's ``body`` run for each of several sessions in one call (see
    ``_GROUPED_HEAD``): one round trip and one script dispatch for many sessions' appends."""
    helpers = _helpers_for(body)
    reset = "  IDX_PREFIX = nil\n" if "IDX_PREFIX" in helpers else ""  # per session's namespace
    return (
        _CONSTANTS
        + _GROUPED_HEAD
        + f"local {_PACKED_NAMES}\n"
        + helpers
        + "\nlocal function run_one()\n"
        + _PACKED_SETS
        + body
        + "end\n"
        + _GROUPED_LOOP
        + reset
        + _GROUPED_TAIL
    )


def script(
    name: str,
    body: str,
    *,
    idempotent: bool = False,
    writes: bool = True,
    packed: bool = False,
    grouped: bool = False,
) -> Script:
    """A session script: ``body`` runs after the common names and the helpers it uses
    (:func:`prelude_for`; :data:`PRELUDE` has them all). ``packed``: the common arguments
    arrive packed in ARGV[1] (see ``_PACKED_HEADER``). ``grouped`` (packed scripts only):
    also build the variant that runs the body for several sessions in one call."""
    if grouped and not packed:
        raise ValueError(f"script {name!r}: only a packed script can be grouped")
    group = None
    if grouped:
        group = Script(f"{name}_grouped", grouped_source(body), idempotent, writes)
    return Script(name, prelude_for(body, packed=packed) + body, idempotent, writes, group)
