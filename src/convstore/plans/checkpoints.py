"""Checkpoint plans (the LangGraph saver's storage): opaque bytes in, opaque bytes out.

A thread's checkpoints, channel values and pending writes live in five keys with one
hash tag (:class:`~convstore.keys.ThreadKeys`), written by the scripts of
:mod:`convstore.lua_checkpoints`; the adapter serializes. Names inside the keys join
their parts with NUL, which no part may contain (:func:`member` checks).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from convstore import lua_checkpoints as lua
from convstore.errors import ValidationError
from convstore.plans.config import StoreConfig
from convstore.plans.steps import Batch, Call, Plan, Run
from convstore.plans.values import as_text

__all__ = [
    "COPY_CHUNK",
    "Row",
    "blob_field",
    "blobs",
    "copy_thread",
    "delete_for_runs",
    "delete_thread",
    "member",
    "members",
    "prune",
    "put",
    "put_writes",
    "read",
    "split_member",
    "threads",
    "write_field",
]

#: (member, record, [write, ...]) as :func:`read` returns them.
Row = tuple[str, bytes, list[bytes]]
#: Values written per script call by :func:`copy_thread`.
COPY_CHUNK = 1000
_SEP = "\0"


def _part(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string, got {type(value).__name__}", field=field)
    if _SEP in value:
        raise ValidationError(f"{field} must not contain a NUL character", field=field)
    return value


def member(ns: str, checkpoint_id: str) -> str:
    """The sorted-set member of a checkpoint: ``ns NUL checkpoint_id``."""
    if not checkpoint_id:
        raise ValidationError("checkpoint_id must be a non-empty string", field="checkpoint_id")
    return _part(ns, "checkpoint_ns") + _SEP + _part(checkpoint_id, "checkpoint_id")


def split_member(text: str) -> tuple[str, str]:
    ns, _, checkpoint_id = text.partition(_SEP)
    return ns, checkpoint_id


def blob_field(ns: str, channel: str, version: object) -> str:
    return _SEP.join((_part(ns, "checkpoint_ns"), _part(channel, "channel"), str(version)))


def write_field(checkpoint: str, task_id: str, idx: int) -> str:
    return _SEP.join((checkpoint, _part(task_id, "task_id"), str(idx)))


def put(
    config: StoreConfig,
    thread_id: str,
    checkpoint: str,
    record: bytes,
    values: Sequence[tuple[str, bytes]],
    ttl_ms: int,
    run_id: str | None = None,
) -> Plan[None]:
    """Store a checkpoint record and its new channel values in one script; list the thread
    (and the checkpoint under its ``run_id``) in the namespace-wide sets."""
    keys = config.keyspace.thread(thread_id)
    args: list[Any] = [str(ttl_ms), checkpoint, record]
    for field, value in values:
        args += (field, value)
    script = Run(lua.LG_PUT, keys.all(), tuple(args))
    listed = [Call(("SADD", config.keyspace.threads, thread_id))]
    if run_id is not None:
        run = config.keyspace.lg_run(run_id)
        listed.append(Call(("SADD", run, _part(thread_id, "thread_id") + _SEP + checkpoint)))
        if ttl_ms > 0:
            listed.append(Call(("PEXPIRE", run, ttl_ms)))
    if config.cluster:  # the sets are in other slots; a cluster pipeline runs no scripts
        yield script
        yield Batch(tuple(listed))
    else:
        yield Batch((script, *listed))


def delete_for_runs(config: StoreConfig, run_ids: Sequence[str]) -> Plan[None]:
    """Delete the checkpoints (and their writes) put with these run ids."""
    for run_id in run_ids:
        run = config.keyspace.lg_run(run_id)
        found = yield Call(("SMEMBERS", run))
        by_thread: dict[str, list[str]] = {}
        for entry in sorted(as_text(e) for e in found):
            thread_id, _, name = entry.partition(_SEP)
            by_thread.setdefault(thread_id, []).append(name)
        for thread_id, names in by_thread.items():
            yield from prune(config, thread_id, names, ())
        yield Call(("DEL", run))


def put_writes(
    config: StoreConfig,
    thread_id: str,
    writes: Sequence[tuple[str, bytes, bool]],
    ttl_ms: int,
) -> Plan[None]:
    """Store pending writes; ``keep`` (the third item) leaves an existing one in place."""
    if not writes:
        return
    args: list[Any] = [str(ttl_ms)]
    for field, value, keep in writes:
        args += (field, value, "1" if keep else "0")
    yield Run(lua.LG_PUT_WRITES, config.keyspace.thread(thread_id).all(), tuple(args))


def read(config: StoreConfig, thread_id: str, high: str, low: str, count: int) -> Plan[list[Row]]:
    """Checkpoints newest first between two ZREVRANGEBYLEX bounds (``count`` 0 = all)."""
    reply = yield Run(lua.LG_READ, config.keyspace.thread(thread_id).all(), (high, low, str(count)))
    return [(as_text(m), bytes(rec), [bytes(w) for w in ws]) for m, rec, ws in reply]


def blobs(config: StoreConfig, thread_id: str, fields: Sequence[str]) -> Plan[list[bytes | None]]:
    if not fields:
        return []
    reply = yield Call(("HMGET", config.keyspace.thread(thread_id).blobs, *fields))
    return list(reply)


def members(config: StoreConfig, thread_id: str) -> Plan[tuple[list[str], list[str]]]:
    """Every checkpoint member and every blob field of a thread."""
    keys = config.keyspace.thread(thread_id)
    found, fields = yield Batch(
        (Call(("ZRANGE", keys.checkpoints, 0, -1)), Call(("HKEYS", keys.blobs)))
    )
    return [as_text(m) for m in found], [as_text(f) for f in fields]


def prune(
    config: StoreConfig, thread_id: str, drop: Sequence[str], drop_blobs: Iterable[str]
) -> Plan[None]:
    """Delete the checkpoints ``drop`` (with their writes) and the blob fields ``drop_blobs``."""
    yield Run(
        lua.LG_PRUNE,
        config.keyspace.thread(thread_id).all(),
        ("0", str(len(drop)), *drop, *drop_blobs),
    )


def delete_thread(config: StoreConfig, thread_id: str) -> Plan[None]:
    keys = config.keyspace.thread(thread_id)
    yield Batch((Call(("DEL", *keys.all())), Call(("SREM", config.keyspace.threads, thread_id))))


def threads(config: StoreConfig) -> Plan[list[str]]:
    found = yield Call(("SMEMBERS", config.keyspace.threads))
    return sorted(as_text(t) for t in found)


def _pairs(reply: Any) -> list[tuple[Any, Any]]:
    if isinstance(reply, dict):
        return list(reply.items())
    return [(reply[i], reply[i + 1]) for i in range(0, len(reply), 2)]


def copy_thread(config: StoreConfig, source: str, target: str, ttl_ms: int) -> Plan[int]:
    """Copy every checkpoint, value and write of ``source`` into ``target``.

    The threads hash to different cluster slots: this reads the source, then writes the
    target in idempotent chunks, so a copy cut off anywhere is completed by running it
    again. Returns how many checkpoints were copied (0 for an unknown source: nothing
    is written).
    """
    src = config.keyspace.thread(source)
    records, values, writes = yield Batch(
        (
            Call(("HGETALL", src.records)),
            Call(("HGETALL", src.blobs)),
            Call(("HGETALL", src.writes)),
        )
    )
    cps, bls, wrs = _pairs(records), _pairs(values), _pairs(writes)
    if not cps:
        return 0
    keys = config.keyspace.thread(target).all()
    while cps or bls or wrs:
        room = COPY_CHUNK
        take_c, cps = cps[:room], cps[room:]
        room -= len(take_c)
        take_b, bls = bls[:room], bls[room:]
        room -= len(take_b)
        take_w, wrs = wrs[:room], wrs[room:]
        flat = [x for pair in (*take_c, *take_b, *take_w) for x in pair]
        args = (str(ttl_ms), str(len(take_c)), str(len(take_b)), *flat)
        yield Run(lua.LG_COPY, keys, args)
    yield Call(("SADD", config.keyspace.threads, target))
    return len(_pairs(records))
