"""LangGraph checkpointer (``convstore[langgraph]``): a ``BaseCheckpointSaver`` on plain Redis.

No modules (no RedisJSON, no RediSearch): Redis 7.0, Valkey and fakeredis. Each thread's
checkpoints, channel values and pending writes live in five keys with one hash tag
(cluster-safe), written by one script per operation that also refreshes the TTL of all
five together, so no part of a thread expires before another. Channel values are stored
once per (channel, version), as LangGraph's own savers do. Sync methods need a
``ConversationStore``; async ones take either store (a sync store runs in a thread).

``delete_for_runs`` finds checkpoints through a per-run set (``run_id`` of the metadata)
written with each checkpoint; checkpoints that ``copy_thread`` created are not in it.
``prune(strategy="keep_latest")`` keeps the newest checkpoint of each namespace with its
values and writes; it does not walk ``DeltaChannel`` ancestor chains, so do not prune
threads whose graph uses ``DeltaChannel`` with it (``"delete"`` is always safe).
"""

from __future__ import annotations

import asyncio
import builtins
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import msgpack
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from convstore.errors import ConfigurationError, ValidationError
from convstore.plans import Plan, seconds_to_ms
from convstore.plans import checkpoints as cp
from convstore.store import AsyncConversationStore, ConversationStore

__all__ = ["ConvstoreSaver"]

T = TypeVar("T")
_PAGE = 100


class ConvstoreSaver(BaseCheckpointSaver[str]):
    """Checkpoints in a convstore store (its namespace; its TTL unless ``ttl`` is given)."""

    def __init__(
        self,
        *,
        store: ConversationStore | AsyncConversationStore,
        ttl: float | timedelta | None = None,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self.store = store
        self._config = store.config
        self._ttl_ms = (
            seconds_to_ms(ttl, "ttl") if ttl is not None else store.config.retention.ms("ttl")
        )

    # ------------------------------------------------------------------ running plans

    def _run(self, plan: Plan[T]) -> T:
        if not isinstance(self.store, ConversationStore):
            raise ConfigurationError(
                "the sync checkpointer methods need a ConversationStore; with an "
                "AsyncConversationStore use the async ones (ainvoke, astream, aget_tuple...)"
            )
        return self.store.driver.run(plan)

    async def _arun(self, plan: Plan[T]) -> T:
        if isinstance(self.store, AsyncConversationStore):
            return await self.store.driver.run(plan)
        return await asyncio.to_thread(self.store.driver.run, plan)

    # ------------------------------------------------------------------ encoding

    def _dump(self, value: Any) -> bytes:
        kind, data = self.serde.dumps_typed(value)
        return bytes(msgpack.packb([kind, data]))

    def _load(self, raw: bytes) -> Any:
        kind, data = msgpack.unpackb(raw)
        return self.serde.loads_typed((kind, data))

    def _tuple(self, thread_id: str, row: cp.Row) -> Plan[CheckpointTuple]:
        """Decode a stored row and fetch its channel values (one more round trip)."""
        name, raw, raw_writes = row
        ns, checkpoint_id = cp.split_member(name)
        record, metadata, parent = msgpack.unpackb(raw)
        checkpoint: Checkpoint = self._load(record)
        versions = checkpoint["channel_versions"]
        channels = list(versions)
        fields = [cp.blob_field(ns, c, versions[c]) for c in channels]
        found = yield from cp.blobs(self._config, thread_id, fields)
        values: dict[str, Any] = {}
        for channel, blob in zip(channels, found, strict=True):
            if blob is not None and msgpack.unpackb(blob)[0] != "empty":
                values[channel] = self._load(blob)
        writes = [msgpack.unpackb(w) for w in raw_writes]
        writes.sort(key=lambda w: writes_sort_key(w[4], w[0], w[5]))

        def config_of(checkpoint_id: str) -> RunnableConfig:
            return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns,
                                     "checkpoint_id": checkpoint_id}}  # fmt: skip

        return CheckpointTuple(
            config=config_of(checkpoint_id),
            checkpoint={**checkpoint, "channel_values": values},
            metadata=self._load(metadata),
            parent_config=config_of(parent) if parent else None,
            pending_writes=[(w[0], w[1], self.serde.loads_typed((w[2], w[3]))) for w in writes],
        )

    # ------------------------------------------------------------------ plans

    def _get_plan(self, config: RunnableConfig) -> Plan[CheckpointTuple | None]:
        thread_id, ns = _thread(config), config["configurable"].get("checkpoint_ns", "")
        if checkpoint_id := get_checkpoint_id(config):
            name = cp.member(ns, checkpoint_id)
            rows = yield from cp.read(self._config, thread_id, "[" + name, "[" + name, 1)
        else:
            low, high = _ns_bounds(ns)
            rows = yield from cp.read(self._config, thread_id, high, low, 1)
        if not rows:
            return None
        return (yield from self._tuple(thread_id, rows[0]))

    def _page_plan(
        self, thread_id: str, ns: str | None, high: str, want: int
    ) -> Plan[tuple[list[CheckpointTuple], str | None]]:
        """Up to ``want`` checkpoints below ``high``; the bound of the next page, or None."""
        low = "-" if ns is None else _ns_bounds(ns)[0]
        rows = yield from cp.read(self._config, thread_id, high, low, want)
        out = []
        for row in rows:
            out.append((yield from self._tuple(thread_id, row)))
        return out, ("(" + rows[-1][0] if len(rows) == want else None)

    def _put_plan(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Plan[RunnableConfig]:
        thread_id, ns = _thread(config), config["configurable"].get("checkpoint_ns", "")
        stored = dict(checkpoint)
        values: dict[str, Any] = stored.pop("channel_values")  # type: ignore[assignment]
        blobs = [
            (cp.blob_field(ns, k, v), self._dump(values[k]) if k in values else _EMPTY)
            for k, v in new_versions.items()
        ]
        merged = get_checkpoint_metadata(config, metadata)
        parent = config["configurable"].get("checkpoint_id")
        record = msgpack.packb([self._dump(stored), self._dump(merged), parent])
        name = cp.member(ns, checkpoint["id"])
        run_id = merged.get("run_id")
        run = run_id if isinstance(run_id, str) and run_id else None
        yield from cp.put(self._config, thread_id, name, record, blobs, self._ttl_ms, run)
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns,
                                 "checkpoint_id": checkpoint["id"]}}  # fmt: skip

    def _put_writes_plan(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, path: str
    ) -> Plan[None]:
        thread_id, ns = _thread(config), config["configurable"].get("checkpoint_ns", "")
        name = cp.member(ns, config["configurable"]["checkpoint_id"])
        rows = []
        for idx, (channel, value) in enumerate(writes):
            at = WRITES_IDX_MAP.get(channel, idx)
            kind, data = self.serde.dumps_typed(value)
            packed = msgpack.packb([task_id, channel, kind, data, path, at])
            rows.append((cp.write_field(name, task_id, at), packed, at >= 0))
        yield from cp.put_writes(self._config, thread_id, rows, self._ttl_ms)

    def _prune_plan(self, thread_ids: Sequence[str], strategy: str) -> Plan[None]:
        if strategy not in ("keep_latest", "delete"):
            raise ValidationError(
                f"strategy must be 'keep_latest' or 'delete', got {strategy!r}", field="strategy"
            )
        for thread_id in thread_ids:
            if strategy == "delete":
                yield from cp.delete_thread(self._config, thread_id)
                continue
            names, fields = yield from cp.members(self._config, thread_id)
            latest: dict[str, str] = {}
            for name in names:  # lexical order: the last of each namespace is its newest
                latest[cp.split_member(name)[0]] = name
            keep_blobs: set[str] = set()
            for name in latest.values():
                rows = yield from cp.read(self._config, thread_id, "[" + name, "[" + name, 1)
                for _, raw, _ in rows:
                    checkpoint = self._load(msgpack.unpackb(raw)[0])
                    ns = cp.split_member(name)[0]
                    for channel, version in checkpoint["channel_versions"].items():
                        keep_blobs.add(cp.blob_field(ns, channel, version))
            kept = set(latest.values())
            drop = [n for n in names if n not in kept]
            yield from cp.prune(
                self._config, thread_id, drop, [f for f in fields if f not in keep_blobs]
            )

    # ------------------------------------------------------------------ sync API

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._run(self._get_plan(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Newest first; ``filter`` matches metadata keys exactly (checked after reading)."""
        for thread_id, ns, high in self._list_starts(config, before):
            while high is not None and (limit is None or limit > 0):
                page, high = self._run(self._page_plan(thread_id, ns, high, _PAGE))
                for tup in page:
                    if _matches(tup, config, filter, before) and (limit is None or limit > 0):
                        limit = None if limit is None else limit - 1
                        yield tup

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._run(self._put_plan(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._run(self._put_writes_plan(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._run(cp.delete_thread(self._config, thread_id))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write; resumable (run it again after a failure)."""
        self._run(cp.copy_thread(self._config, source_thread_id, target_thread_id, self._ttl_ms))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._run(self._prune_plan(thread_ids, strategy))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints and writes put with these run ids (metadata ``run_id``)."""
        self._run(cp.delete_for_runs(self._config, run_ids))

    # ------------------------------------------------------------------ async API

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._arun(self._get_plan(config))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        starts = (
            self._list_starts(config, before, await self._arun(cp.threads(self._config)))
            if config is None
            else self._list_starts(config, before)
        )
        for thread_id, ns, high in starts:
            while high is not None and (limit is None or limit > 0):
                page, high = await self._arun(self._page_plan(thread_id, ns, high, _PAGE))
                for tup in page:
                    if _matches(tup, config, filter, before) and (limit is None or limit > 0):
                        limit = None if limit is None else limit - 1
                        yield tup

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._arun(self._put_plan(config, checkpoint, metadata, new_versions))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._arun(self._put_writes_plan(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._arun(cp.delete_thread(self._config, thread_id))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._arun(
            cp.copy_thread(self._config, source_thread_id, target_thread_id, self._ttl_ms)
        )

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._arun(self._prune_plan(thread_ids, strategy))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._arun(cp.delete_for_runs(self._config, run_ids))

    def get_next_version(self, current: str | None, channel: None) -> str:
        """``<counter>.<random>`` strings, as LangGraph's own savers use (they sort)."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(current.split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    # ------------------------------------------------------------------ listing helpers

    def _list_starts(
        self,
        config: RunnableConfig | None,
        before: RunnableConfig | None,
        all_threads: Sequence[str] | None = None,
    ) -> builtins.list[tuple[str, str | None, str | None]]:
        """(thread, namespace or None = all, first upper bound) for each thread to walk."""
        if config is None:
            names = all_threads if all_threads is not None else self._run(cp.threads(self._config))
            return [(t, None, "+") for t in names]
        ns = config["configurable"].get("checkpoint_ns")
        high = "+" if ns is None else _ns_bounds(ns)[1]
        if ns is not None and before is not None and (before_id := get_checkpoint_id(before)):
            high = "(" + cp.member(ns, before_id)
        return [(_thread(config), ns, high)]


_EMPTY = bytes(msgpack.packb(["empty", b""]))


def _thread(config: RunnableConfig) -> str:
    thread_id = config["configurable"].get("thread_id")
    if not isinstance(thread_id, str) or not thread_id:
        raise ValidationError("config['configurable']['thread_id'] must be set", field="thread_id")
    return thread_id


def _ns_bounds(ns: str) -> tuple[str, str]:
    """ZREVRANGEBYLEX (min, max) covering exactly the members of namespace ``ns``."""
    prefix = cp.member(ns, "x")[:-1]  # validated "ns NUL"
    return "[" + prefix, "(" + prefix[:-1] + "\1"


def _matches(
    tup: CheckpointTuple,
    config: RunnableConfig | None,
    filter: dict[str, Any] | None,
    before: RunnableConfig | None,
) -> bool:
    checkpoint_id = tup.config["configurable"]["checkpoint_id"]
    if config is not None and (wanted := get_checkpoint_id(config)) and checkpoint_id != wanted:
        return False
    if before is not None and (before_id := get_checkpoint_id(before)):
        if checkpoint_id >= before_id:
            return False
    return not filter or all(tup.metadata.get(k) == v for k, v in filter.items())
