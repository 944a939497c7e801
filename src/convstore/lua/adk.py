"""Lua scripts of the Google ADK session service: the store's own SAVE and APPEND, wrapped.

ADK_CREATE and ADK_APPEND run :data:`convstore.lua.SAVE` / :data:`convstore.lua.APPEND`
unchanged (their source, with ``KEYS``/``ARGV`` renamed to the wrapper's tables), then
apply the ADK state in the same script: the session-scope keys as ``adk:s:<key>``
fields of the session hash, and on standalone Redis the ``app:`` and ``user:`` scopes
in their own hashes (KEYS[7], KEYS[8]). On Redis Cluster those two hashes live in other
slots; the plan writes them right after the script (see ``plans/adk.py``). So the
stream entry layout stays the store's: whatever APPEND writes, ADK events get too.

ARGV: [1] N, the wrapped script's argument count; [2 .. N+1] its arguments; then the
wrapper's own (X below).
"""

from __future__ import annotations

from convstore.lua import APPEND, SAVE, Script

__all__ = ["ADK_APPEND", "ADK_CREATE", "STALE"]

#: ADK_APPEND's reply status when the caller's session object is stale.
STALE = -10

_STATE = r"""
-- X: [1] "1" inline app/user state, [2] guard, [3] stored event id, [4] last update
-- time, [5] session pairs, [6] app pairs, [7] user pairs, then the pairs from X[8] on.
local function apply_state()
  local H = KEYS[1]
  local i = 8
  for _ = 1, tonumber(X[5]) do redis.call('HSET', H, 'adk:s:' .. X[i], X[i + 1]); i = i + 2 end
  if X[1] == '1' then
    for _ = 1, tonumber(X[6]) do redis.call('HSET', KEYS[7], X[i], X[i + 1]); i = i + 2 end
    for _ = 1, tonumber(X[7]) do redis.call('HSET', KEYS[8], X[i], X[i + 1]); i = i + 2 end
  end
  redis.call('HSET', H, 'adk:lut', X[4])
end
"""


def _wrap(name: str, inner: Script, after: str) -> Script:
    body = inner.source.replace("ARGV", "AA").replace("KEYS", "KK")
    source = (
        "local N = tonumber(ARGV[1])\n"
        "local AA, KK, X = {}, {}, {}\n"
        "for i = 1, N do AA[i] = ARGV[i + 1] end\n"
        "for i = 1, 6 do KK[i] = KEYS[i] end\n"
        "for i = N + 2, #ARGV do X[#X + 1] = ARGV[i] end\n"
        f"local function inner()\n{body}\nend\n{_STATE}\n{after}"
    )
    return Script(name, source, idempotent=inner.idempotent, writes=True)


ADK_CREATE = _wrap(
    "adk_create",
    SAVE,
    r"""
local r = inner()
if tonumber(r[1]) > 0 then apply_state() end
return r
""",
)

ADK_APPEND = _wrap(
    "adk_append",
    APPEND,
    r"""
-- X[2] the newest entry id the caller's session saw ("0-0" = none, "*" = no check).
local S, IDS = KEYS[2], KEYS[3]
local seen = redis.call('HGET', IDS, X[3])
if X[2] ~= '*' and not seen and redis.call('EXISTS', KEYS[1]) == 1 then
  local newest = redis.call('XREVRANGE', S, '+', '-', 'COUNT', 1)
  local current = '0-0'
  if #newest > 0 then current = newest[1][1] end
  if current ~= X[2] then return {-10, current} end
end
local r = inner()
if type(r) == 'string' and not seen then apply_state() end  -- APPEND's success reply
return r
""",
)
