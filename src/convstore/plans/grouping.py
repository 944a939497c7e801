"""Several sessions' steps of one groupable script (APPEND) as one grouped call.

The asyncio driver gathers the steps that concurrent tasks await in one event-loop tick
(``convstore.drivers.AsyncDriver``). A pipeline of 64 APPENDs costs redis-py 64
commands to pack and 64 replies to read, and Redis 64 script dispatches; the same 64 as
one call of the grouped script (``lua.core.grouped_source``) cost one of each. Each
session's run is still atomic on its own and answers for itself: its reply, status or
error is exactly what its own call would have given. Only standalone servers group: a
grouped call's keys span many cluster slots.

Sans-IO: :func:`plan_sends` says what to send for a batch of steps and which steps each
send answers; :func:`replies_of` hands each step its own reply; :func:`halves` splits a
batch in two by session.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from convstore.errors import CodecError
from convstore.plans.steps import Call, Run

__all__ = [
    "MAX_GROUP_ARGS",
    "MAX_GROUP_SESSIONS",
    "Send",
    "group_runs",
    "halves",
    "plan_sends",
    "replies_of",
]

#: At most this many steps in one grouped call: bounded script time, so one call never
#: holds the server much longer than the pipeline it replaces.
MAX_GROUP_SESSIONS = 128
#: At most this many arguments in one grouped call (a batch append of many messages is
#: sent on its own rather than inflate a group).
MAX_GROUP_ARGS = 4096

#: One send: the step to send and the indexes (in the batch) of the steps it answers;
#: a grouped send answers several, any other send exactly one.
Send = tuple[Call | Run, tuple[int, ...]]


def halves(steps: Sequence[Call | Run]) -> tuple[list[int], list[int]]:
    """The indexes of ``steps`` in two halves by session (the hash tag of a run's first key
    or of a command's first argument): steps of one session stay in one half, in order,
    so two that concurrent tasks awaited in one tick still run in the order they came."""
    out: tuple[list[int], list[int]] = ([], [])
    for index, step in enumerate(steps):
        out[hash(_session_of(step)) & 1].append(index)
    return out


def _session_of(step: Call | Run) -> bytes:
    """The hash tag of the step's first key (every key of a session shares it), else the
    key itself."""
    key = step.keys[0] if isinstance(step, Run) and step.keys else (step.args[1:2] or ("",))[0]
    raw = key if isinstance(key, bytes) else str(key).encode("utf-8", "surrogatepass")
    start = raw.find(b"{")
    end = raw.find(b"}", start + 1)
    return raw[start + 1 : end] if 0 <= start < end else raw


def group_runs(runs: Sequence[Run]) -> Run:
    """One call of the grouped script for ``runs`` (all of the same groupable script):
    ARGV[1] lists "<keys>,<args>" per run, then each run's keys and arguments in order."""
    grouped = runs[0].script.grouped
    if grouped is None or any(run.script is not runs[0].script for run in runs):
        raise ValueError("group_runs takes runs of one groupable script")
    header = " ".join(f"{len(run.keys)},{len(run.args)}" for run in runs)
    keys: list[Any] = []
    args: list[Any] = [header]
    for run in runs:
        keys += run.keys
        args += run.args
    return Run(grouped, tuple(keys), tuple(args), sum(run.messages for run in runs))


def plan_sends(steps: Sequence[Call | Run]) -> list[Send]:
    """What to send for ``steps``, in their order: consecutive groupable runs of one
    script go as one grouped call (up to the group limits), every other step as it is.
    The pipeline still runs every step in the order the tasks awaited them."""
    sends: list[Send] = []
    chunk: list[int] = []
    chunk_script: object = None
    size = 1
    for index, step in enumerate(steps):
        script = None
        if isinstance(step, Run) and step.script.grouped and len(step.args) < MAX_GROUP_ARGS:
            script = step.script
        if chunk and (
            script is not chunk_script
            or len(chunk) >= MAX_GROUP_SESSIONS
            or size + len(step.args) > MAX_GROUP_ARGS
        ):
            sends.append(_send_of(steps, chunk))
            chunk, size = [], 1
        if script is None:
            sends.append((step, (index,)))
        else:
            chunk.append(index)
            chunk_script = script
            size += len(step.args)
    if chunk:
        sends.append(_send_of(steps, chunk))
    return sends


def _send_of(steps: Sequence[Call | Run], indexes: list[int]) -> Send:
    if len(indexes) == 1:
        return steps[indexes[0]], (indexes[0],)
    runs = [steps[i] for i in indexes]
    return group_runs([run for run in runs if isinstance(run, Run)]), tuple(indexes)


def replies_of(send: Send, reply: Any) -> list[Any]:
    """The reply of each step a send answers, in its order. A grouped reply is a list of
    the runs' own replies (an error element, an exception instance, is that run's error);
    an error of the whole call (an exception) is every run's error."""
    step, indexes = send
    if len(indexes) == 1 or isinstance(reply, BaseException):
        return [reply] * len(indexes)
    if not isinstance(reply, list) or len(reply) != len(indexes):
        got = f"{len(reply)} replies" if isinstance(reply, list) else type(reply).__name__
        raise CodecError(
            f"the grouped script {step.script.name if isinstance(step, Run) else step!r} "
            f"answered {len(indexes)} sessions with {got}"
        )
    return reply
