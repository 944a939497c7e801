"""plans.grouping, stepped without I/O: which steps go in one grouped call, and back."""

from __future__ import annotations

from typing import Any

import pytest

from convstore import lua
from convstore.errors import CodecError
from convstore.plans import Call, Run
from convstore.plans.grouping import (
    MAX_GROUP_ARGS,
    MAX_GROUP_SESSIONS,
    group_runs,
    halves,
    plan_sends,
    replies_of,
)


def append(session: str, messages: int = 1) -> Run:
    keys = tuple(f"ns:{{{session}}}:{part}".encode() for part in "hsi")
    args = ("110 1 0 0 0 *", session, *(("\x00id", "1700000000000", b"payload") * messages))
    return Run(lua.APPEND, keys, args, messages)


def test_the_grouped_script_is_built_only_for_append() -> None:
    assert lua.APPEND.grouped is not None
    assert lua.APPEND.grouped.name == "append_grouped"
    assert lua.APPEND.grouped.idempotent and lua.APPEND.grouped.writes
    assert lua.CLEAR.grouped is None
    with pytest.raises(ValueError, match="packed"):
        lua.script("x", "return 1", grouped=True)


def test_group_runs_lists_each_runs_keys_and_arguments_in_order() -> None:
    one, two = append("a"), append("b", messages=2)
    grouped = group_runs([one, two])
    assert grouped.script is lua.APPEND.grouped
    assert grouped.args[0] == f"3,{len(one.args)} 3,{len(two.args)}"
    assert grouped.keys == one.keys + two.keys
    assert grouped.args[1:] == one.args + two.args
    assert grouped.messages == 3 and grouped.safe and grouped.writes


def test_group_runs_refuses_other_scripts() -> None:
    clear = Run(lua.CLEAR, (b"k",), ())
    with pytest.raises(ValueError):
        group_runs([clear, clear])
    with pytest.raises(ValueError):
        group_runs([append("a"), Run(lua.COUNT, (b"k",), ())])


def test_plan_sends_groups_consecutive_appends_and_keeps_the_order() -> None:
    read = Call(("HMGET", "k", "f"))
    count = Run(lua.COUNT, (b"k",), ())
    steps: list[Call | Run] = [append("a"), append("b"), read, append("c"), count]
    steps += [append("d"), append("e"), append("f")]
    sends = plan_sends(steps)
    assert [indexes for _, indexes in sends] == [(0, 1), (2,), (3,), (4,), (5, 6, 7)]
    assert sends[0][0] == group_runs([steps[0], steps[1]])  # type: ignore[list-item]
    assert sends[1][0] is read and sends[2][0] == steps[3] and sends[3][0] is count
    assert sends[4][0] == group_runs(steps[5:])  # type: ignore[arg-type]
    # a single append is sent as itself, not as a group of one
    assert plan_sends([append("a"), read]) == [(append("a"), (0,)), (read, (1,))]


def test_plan_sends_keeps_each_group_within_its_limits() -> None:
    many = [append(f"s{i}") for i in range(MAX_GROUP_SESSIONS + 3)]
    sends = plan_sends(many)
    assert [len(indexes) for _, indexes in sends] == [MAX_GROUP_SESSIONS, 3]
    assert [i for _, indexes in sends for i in indexes] == list(range(len(many)))
    # a batch append too wide for any group goes alone; wide ones split groups by arguments
    huge = append("huge", messages=MAX_GROUP_ARGS // 3)
    assert plan_sends([huge, append("x")]) == [(huge, (0,)), (append("x"), (1,))]
    wide = [append(f"w{i}", messages=MAX_GROUP_ARGS // 9) for i in range(4)]
    sends = plan_sends(wide)
    assert len(sends) > 1
    assert all(len(step.args) <= MAX_GROUP_ARGS for step, _ in sends)


def test_replies_of_hands_each_step_its_own_reply() -> None:
    sends = plan_sends([append("a"), append("b")])
    assert replies_of(sends[0], [b"1 1-0+", [-1]]) == [b"1 1-0+", [-1]]
    error = RuntimeError("lost")
    assert replies_of(sends[0], error) == [error, error]  # the whole call failed: both did
    assert replies_of((Call(("PING",)), (3,)), b"PONG") == [b"PONG"]
    for bad in ([b"only one"], b"not a list"):
        with pytest.raises(CodecError, match="answered 2 sessions"):
            replies_of(sends[0], bad)


def test_group_source_runs_the_body_once_per_session_under_pcall() -> None:
    grouped: Any = lua.APPEND.grouped
    source = grouped.source
    assert source.count("local function run_one()") == 1
    assert "pcall(run_one)" in source and "redis.error_reply" in source
    # the same helpers as the single script, defined once, outside the loop
    assert source.count("local function read_fields") == 1
    assert lua.APPEND.source.count("local function read_fields") == 1


def test_halves_keep_each_sessions_steps_together_and_in_order() -> None:
    sessions = 64
    steps: list[Call | Run] = [append(f"s{i % sessions}") for i in range(3 * sessions)]
    steps += [Call(("XRANGE", f"ns:{{s{i}}}:s", "-", "+")) for i in range(sessions)]
    first, second = halves(steps)
    assert sorted(first + second) == list(range(len(steps)))
    assert first == sorted(first) and second == sorted(second)
    for i in range(sessions):  # a session's appends and its read: all in one half
        mine = {i, i + sessions, i + 2 * sessions, 3 * sessions + i}
        assert mine <= set(first) or mine <= set(second)
    assert first and second  # 64 sessions all in one half: odds of 2 in 2**64
