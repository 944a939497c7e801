"""Differential, part 2: checkpoints, writes, task context, maintenance, compression.

Same machinery as test_contextengine_differential.py (pair fixture, shape comparison). This
module sorts after part 1, so its last test prints the counts over the whole session and
asserts that nothing differed except the deliberate differences in ``DELIBERATE``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from differential import COUNTS, lists_of_tuples_as_lists, normalise
from differential_pair import Pair, add_messages, pair_fixture, private_server_fixture  # noqa: F401

# one xdist worker runs all of the aiecs tests, in file order (the summary test comes last,
# and the wheel is downloaded once)
pytestmark = [pytest.mark.aiecs, pytest.mark.xdist_group("aiecs")]


def data_of(checkpoint: Any) -> Any:
    """A checkpoint's data and metadata: deterministic values the reference JSON-encoded."""
    if isinstance(checkpoint, dict):
        return {"data": checkpoint.get("data"), "metadata": checkpoint.get("metadata")}
    return checkpoint


def trackers_cleared(context: Any) -> Any:
    """The task context as the reference reads it back: its trackers are not restored."""
    if isinstance(context, dict):
        return {**context, "file_tracker": {}, "model_tracker": []}
    return context


@dataclass
class Point:
    x: int
    y: int


async def test_checkpoints_and_writes(pair: Pair) -> None:
    p = pair
    when = datetime(2024, 5, 6, 7, 8, 9)
    await p.compare(
        "store_checkpoint plain",
        "store_checkpoint",
        "t1",
        "c1",
        {"a": 1, "b": [1, "x"]},
        {"step": 1},
        values=True,
    )
    await p.compare("get_checkpoint", "get_checkpoint", "t1", "c1")
    await p.compare(
        "store_checkpoint datetime", "store_checkpoint", "t1", "c2", {"when": when}, values=True
    )
    r, o = await p.compare("get_checkpoint datetime", "get_checkpoint", "t1", "c2")
    p.diff.check("get_checkpoint datetime values", data_of(r), data_of(o), values=True)
    await p.compare(
        "store_checkpoint dataclass+set",
        "store_checkpoint",
        "t1",
        "c3",
        {"point": Point(1, 2), "tags": {"x"}},
        {"meta_point": Point(3, 4)},
        values=True,
    )
    r, o = await p.compare("get_checkpoint dataclass+set", "get_checkpoint", "t1", "c3")
    p.diff.check("get_checkpoint dataclass+set values", data_of(r), data_of(o), values=True)
    await p.compare(
        "store_checkpoint tuple", "store_checkpoint", "t1", "c4", {"pair": (1, 2)}, values=True
    )
    r, o = await p.compare("get_checkpoint tuple", "get_checkpoint", "t1", "c4")
    p.diff.check("get_checkpoint tuple values", data_of(r), data_of(o), values=True)
    await p.compare("put_checkpoint", "put_checkpoint", "t1", "c5", {"z": None}, values=True)
    await p.compare("get_checkpoint latest", "get_checkpoint", "t1")
    await p.compare("list_checkpoints limit=2", "list_checkpoints", "t1", 2)
    await p.compare("list_checkpoints", "list_checkpoints", "t1")
    await p.compare("get_checkpoint unknown", "get_checkpoint", "t1", "nope", values=True)
    await p.compare("list_checkpoints unknown thread", "list_checkpoints", "nope", values=True)
    await p.compare(
        "put_writes",
        "put_writes",
        "t1",
        "c1",
        "task1",
        [("chan", {"v": 1}), ("chan2", [1, 2])],
        values=True,
    )
    await p.compare(
        "put_writes datetime", "put_writes", "t1", "c1", "task2", [("when", when)], values=True
    )
    await p.compare(
        "get_writes",
        "get_writes",
        "t1",
        "c1",
        deliberate="writes_tuples",
        adjust=lists_of_tuples_as_lists,
    )
    await p.compare("get_writes unknown", "get_writes", "t1", "nope", values=True)
    p.diff.done()


async def test_task_context(pair: Pair) -> None:
    p = pair
    tc_mod = p.aiecs["aiecs.domain.task.task_context"]
    await p.compare("create_session", "create_session", "tc", "frank", {"k": "v"})
    await p.compare("get_task_context after create_session", "get_task_context", "tc")
    r, o = await p.both("get_task_context", "tc")
    p.diff.check(
        "task context type",
        type(r).__name__,
        type(o).__name__,
        values=True,
        deliberate="dicts_not_objects",
        expect="dict",
    )
    context = tc_mod.TaskContext(
        {
            "user_id": "frank",
            "chat_id": "tc",
            "metadata": {"tags": {"a"}, "point": Point(5, 6), "when": datetime(2024, 1, 1)},
        }
    )
    context.context_history.append(
        tc_mod.ContextUpdate(
            timestamp=time.time(), update_type="message", data={"x": (1, 2)}, metadata={}
        )
    )
    context.model_tracker.append({"model": "m", "tokens": 3})
    await p.compare(
        "store_task_context",
        "store_task_context",
        "tc",
        context,
        values=True,
        deliberate="task_context_true",
        expect=True,
    )
    r, o = await p.compare(
        "get_task_context after store",
        "get_task_context",
        "tc",
        deliberate="task_context_trackers_kept",
        adjust=trackers_cleared,
    )
    p.diff.check(
        "task context values after store",
        {k: normalise(r).get(k) for k in ("metadata", "context_history")},
        {k: o.get(k) for k in ("metadata", "context_history")} if isinstance(o, dict) else o,
        values=True,
    )
    await p.compare("get_task_context unknown", "get_task_context", "nope", values=True)
    p.diff.done()


async def test_cleanup_metrics_health(pair: Pair) -> None:
    p = pair
    await p.compare("create_session a", "create_session", "a", "u")
    await p.compare("create_session b", "create_session", "b", "u")
    await add_messages(p, "a", 2)
    await p.compare("store_checkpoint", "store_checkpoint", "a", "c", {"x": 1}, values=True)
    await p.compare("end_session b", "end_session", "b", values=True)
    r, o = await p.compare("get_metrics", "get_metrics")
    counters = (
        "total_sessions",
        "active_sessions",
        "total_messages",
        "total_checkpoints",
        "storage_backend",
        "redis_connected",
    )
    p.diff.check(
        "get_metrics values",
        {k: r[k] for k in counters},
        {k: o.get(k) for k in counters} if isinstance(o, dict) else o,
        values=True,
    )
    await p.compare("health_check", "health_check", values=True)
    await p.compare("cleanup_expired_sessions 24h", "cleanup_expired_sessions", 24, values=True)
    await p.compare("cleanup_expired_sessions 0h", "cleanup_expired_sessions", 0, values=True)
    await p.compare("get_session after cleanup", "get_session", "a", values=True)
    await p.compare("history after cleanup", "get_conversation_history", "a", 0, values=True)
    p.diff.done()


def test_zz_summary(request: pytest.FixtureRequest) -> None:
    """Runs last: the counts over every comparison of the session; nothing may differ unexplained."""
    if not COUNTS.compared:
        pytest.skip("no differential comparison ran in this session")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(f"{COUNTS.line()} (deliberate by rule: {COUNTS.by_rule})")
    assert COUNTS.other == 0, COUNTS.line() + "\n" + "\n".join(COUNTS.failures)
