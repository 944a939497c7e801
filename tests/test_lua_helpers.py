"""The Lua helpers that compare numbers as text (``num_lt``, ``later``, ``index_moves``)
against Python's exact integers, and the lazily built retention helpers, on every backend."""

from __future__ import annotations

import random
from typing import Any

import redis

from convstore import lua
from convstore.lua.core import INDEX_RESOLUTION_US, prelude_for

PROBE = r"""
local out = {}
for i = 1, #ARGV, 2 do
  local a, b = ARGV[i], ARGV[i + 1]
  out[#out + 1] = (num_lt(a, b) and 1 or 0) .. (index_moves(a, b) and 1 or 0) .. later(a, b)
end
return out
"""


def pairs() -> list[tuple[int, int]]:
    """Same-length unsigned pairs (compared as text), and every other case (as numbers):
    different lengths, negatives, zero, bucket edges, all within 10^15 (exact doubles)."""
    rng = random.Random(11)
    out: list[tuple[int, int]] = []
    for digits in range(1, 17):
        low, high = 10 ** (digits - 1), 10**digits - 1
        for _ in range(12):
            a = rng.randint(low, high)
            out.append((a, rng.randint(low, high)))
            out.append((a, min(high, a + rng.choice([1, 10**6 - 1, 10**6, 10**6 + 1]))))
    edge = 1_764_099_999_000_000
    out += [(edge - 1, edge), (edge, edge + 999_999), (edge + 999_999, edge + 10**6)]
    for _ in range(60):
        a = rng.randint(-(10**15), 10**15)
        out.append((a, rng.randint(-(10**15), 10**15)))
    out += [(0, 0), (0, 5), (5, 0), (-1, 0), (0, -1), (-(10**6), -1), (999_999, 1_000_000)]
    return out


def test_text_comparisons_agree_with_exact_integers(sync_client: redis.Redis) -> None:
    script = prelude_for(PROBE) + PROBE
    cases = pairs()
    args: list[Any] = [str(x) for pair in cases for x in pair]
    got = sync_client.eval(script, 6, *[f"probe:{i}" for i in range(6)], *args)
    for (a, b), answer in zip(cases, got, strict=True):
        text = answer.decode()
        moves = (a // INDEX_RESOLUTION_US) != (b // INDEX_RESOLUTION_US)
        assert text[0] == str(int(a < b)), (a, b)
        assert text[1] == str(int(moves)), (a, b)
        assert text[2:] == str(max(a, b)), (a, b)


def test_retention_helpers_are_built_only_when_an_append_trims() -> None:
    source = lua.APPEND.source
    stub = source.index("local trim_oldest = function(...)")
    # the helpers only retention uses are defined inside the stub, after every eager helper
    for name in ("row_mid", "row_field", "drop_ids", "call_ids"):
        assert source.index(f"local function {name}") > stub
    for name in ("read_fields", "later", "index_moves", "with_tools"):
        assert source.index(f"local function {name}") < stub
    # a script whose body needs drop_ids itself gets it eagerly
    body = "drop_ids({})\nreturn trim_oldest({}, 0)"
    both = prelude_for(body)
    assert both.index("local function drop_ids") < both.index("local trim_oldest = function")
    assert both.count("local function drop_ids") == 1
