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
member in ARGV[2] (``script(..., packed=True)``, see ``_PACKED_HEADER``); its grouped
form (``Script.grouped``, :func:`grouped_source`) runs the same body for several
sessions in one call. Each script carries only the helpers its body uses
(:func:`prelude_for`), and builds retention's only when it trims (``_LAZY``). The index
scores are kept to :data:`INDEX_RESOLUTION_US` by appends (exact by every other write).

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

from convstore.lua.helpers import HELPERS

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
  nk, na = tonumber(nk), tonumber(na)
  KEYS, ARGV = {}, {}
  for i = 1, nk do KEYS[i] = ALL_KEYS[k + i] end
  for i = 1, na do ARGV[i] = ALL_ARGV[a + i] end
  k, a = k + nk, a + na
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

#: Everything a session script may use: the common names and every helper.
PRELUDE = _HEADER + "\n".join(chunk for _, chunk in HELPERS)


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
    eager_pool = [h for h in HELPERS if not set(h[0]) & _LAZY]
    eager = _closure(body, eager_pool)
    if any(_uses(chunk, tuple(_LAZY)) for chunk in eager):  # it would be defined too late
        raise ValueError("a helper built on every run calls a lazily built one")
    out = list(eager)
    for names, chunk in HELPERS:
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
