"""W1-W9 for the sync and the async store, each measured beside its raw baseline.

Every convstore measurement is interleaved with (or run right next to) the baseline it
is divided by, in the same process and against the same server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio

from benchmarks.baselines import (
    AsyncRawSessions,
    AsyncRawStream,
    ListStore,
    RawSessions,
    RawStream,
)
from benchmarks.common import (
    BATCH,
    LAST_N,
    LIST_STORE,
    RAW_HASH,
    RAW_PAGE,
    RAW_PIPE,
    RAW_STREAM,
    RAW_XADD,
    RAW_XRANGE,
    RAW_XREV,
    Msg,
    Progress,
    Result,
    Results,
    Size,
    ainterleaved,
    atimed,
    interleaved,
    make_messages,
    median,
    read_reps,
    timed,
)
from convstore import (
    AsyncConversationStore,
    ConversationParticipant,
    ConversationSession,
    ConversationStore,
)

Step = tuple[str, Callable[[], None]]
CLIENT_OPTIONS: dict[str, Any] = {"socket_timeout": 30.0, "socket_connect_timeout": 5.0}


def new_session(session_id: str) -> ConversationSession:
    now = datetime.now(UTC)
    people = [
        ConversationParticipant("user_1", "user"),
        ConversationParticipant("mc_1", "master_controller"),
    ]
    return ConversationSession(session_id, people, "user_to_mc", now, now, {"bench": True})


def memory_usage(client: redis.Redis, *keys: str) -> int:
    total = 0
    for key in keys:
        used = client.execute_command("MEMORY", "USAGE", key, "SAMPLES", 0)
        total += int(used or 0)
    return total


class Bench:
    """Holds the clients, the namespace and the results of one run."""

    def __init__(self, url: str, namespace: str, size: Size, results: Results) -> None:
        self.url = url
        self.ns = namespace
        self.size = size
        self.results = results
        self.client = redis.Redis.from_url(url, **CLIENT_OPTIONS)
        self.store = ConversationStore(self.client, namespace=namespace)
        self.raw = RawStream(self.client, namespace)
        self.raw_sessions = RawSessions(self.client, namespace)
        cap = max(*size.read_ns, size.w1_n * 2, 10)
        self.lists = ListStore(self.client, namespace, cap)
        self.runner = asyncio.Runner()
        self._aclient: redis.asyncio.Redis | None = None
        self._astore: AsyncConversationStore | None = None

    # ------------------------------------------------------------------ plumbing

    @property
    def aclient(self) -> redis.asyncio.Redis:
        if self._aclient is None:
            self._aclient = redis.asyncio.Redis.from_url(self.url, **CLIENT_OPTIONS)
        return self._aclient

    @property
    def astore(self) -> AsyncConversationStore:
        if self._astore is None:
            self._astore = AsyncConversationStore(self.aclient, namespace=self.ns)
        return self._astore

    def run_async(self, fn: Callable[[], Awaitable[None]]) -> None:
        self.runner.run(_call(fn))

    def close(self) -> None:
        if self._aclient is not None:
            self.runner.run(self._aclient.aclose())
        self.runner.close()
        self.client.close()

    def session(self, name: str) -> str:
        """Create a convstore session (untimed setup) and return its key."""
        return self.store.sessions.save(new_session(name))

    def conv_keys(self, key: str) -> tuple[str, str, str]:
        keys = self.store.config.keyspace.session(key)
        return keys.messages, keys.ids, keys.session

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.results.add(Result(*args, **kwargs))

    # ------------------------------------------------------------------ steps

    def steps(self) -> list[Step]:
        s = self.size
        out: list[Step] = [
            ("W1 sync: append, one call per message", self.w1_sync),
            ("W2 sync: append_many x100 (builds the read histories)", self.w2_sync),
        ]
        for n in s.read_ns:
            out.append((f"W3 sync: full read, N={n:,}", lambda n=n: self.w3_sync(n)))
            out.append((f"W4 sync: last {LAST_N}, N={n:,}", lambda n=n: self.w4_sync(n)))
            out.append((f"W5 sync: paging, N={n:,}", lambda n=n: self.w5_sync(n)))
        out += [
            (f"W6 sync: {s.w6_sessions:,} sessions x {s.w6_messages}", self.w6_sync),
            ("W7: bytes per message", self.w7),
            ("W9 sync: session save and get", self.w9_sync),
            ("W1 async: append, one call per message", lambda: self.run_async(self.w1_async)),
            ("W2 async: append_many x100", lambda: self.run_async(self.w2_async)),
        ]
        for n in s.read_ns:
            out.append(
                (f"W3-W5 async: N={n:,}", lambda n=n: self.run_async(lambda: self.reads_async(n)))
            )
        out += [
            (
                f"W6 async: {s.w6_sessions:,} sessions x {s.w6_messages}",
                lambda: self.run_async(self.w6_async),
            ),
            (
                f"W8 async: {s.w8_sessions} sessions concurrently",
                lambda: self.run_async(self.w8_async),
            ),
            ("W9 async: session save and get", lambda: self.run_async(self.w9_async)),
        ]
        return out

    # ------------------------------------------------------------------ W1

    def w1_sync(self) -> None:
        s = self.size
        per_round = max(1, s.w1_n // s.rounds)
        key = self.session("w1")
        msgs = make_messages(s.w1_n)
        conv_dicts = [m.as_dict() for m in msgs]
        # warm-up: script load, connection, code paths
        for m in msgs[:20]:
            self.store.messages.append(key, m.as_dict())
            self.raw.append("w1", m)
            self.lists.append("w1", m)
        chunks = [
            (conv_dicts[i : i + per_round], msgs[i : i + per_round])
            for i in range(0, per_round * s.rounds, per_round)
        ]
        state = {"conv": 0, "raw": 0, "list": 0}

        def conv() -> float:
            dicts = chunks[state["conv"]][0]
            state["conv"] += 1
            append = self.store.messages.append
            return len(dicts) / timed(lambda: [append(key, d) for d in dicts])

        def raw() -> float:
            batch = chunks[state["raw"]][1]
            state["raw"] += 1
            return len(batch) / timed(lambda: [self.raw.append("w1", m) for m in batch])

        def lst() -> float:
            batch = chunks[state["list"]][1]
            state["list"] += 1
            return len(batch) / timed(lambda: [self.lists.append("w1", m) for m in batch])

        got = interleaved({"conv": conv, "raw": raw, "list": lst}, s.rounds)
        r = self.results
        r.pair(
            "W1",
            "append",
            "sync",
            s.w1_n,
            median(got["conv"]),
            RAW_XADD,
            median(got["raw"]),
            "msg/s",
            "higher",
        )
        self.add(
            "W1",
            "append",
            "sync",
            s.w1_n,
            LIST_STORE,
            "reference",
            median(got["list"]),
            "msg/s",
            "higher",
            "LPUSH + LTRIM + EXPIRE: 3 round trips",
        )

    # ------------------------------------------------------------------ W2

    def w2_sync(self) -> None:
        total = {"conv": 0.0, "raw": 0.0, "list": 0.0}
        count = 0
        for n in self.size.read_ns:
            key = self.session(f"read-{n}")
            msgs = make_messages(n)
            dicts = [m.as_dict() for m in msgs]
            total["raw"] += timed(
                lambda msgs=msgs, n=n: self.raw.append_pipelined(f"read-{n}", msgs)
            )
            total["conv"] += timed(
                lambda key=key, dicts=dicts: [
                    self.store.messages.append_many(key, dicts[i : i + BATCH])
                    for i in range(0, len(dicts), BATCH)
                ]
            )
            total["list"] += timed(
                lambda msgs=msgs, n=n: self.lists.append_batch(f"read-{n}", msgs)
            )
            count += n
        n_all = sum(self.size.read_ns)
        self.results.pair(
            "W2",
            "append_many",
            "sync",
            n_all,
            count / total["conv"],
            RAW_PIPE,
            count / total["raw"],
            "msg/s",
            "higher",
        )
        self.add(
            "W2",
            "append_many",
            "sync",
            n_all,
            LIST_STORE,
            "reference",
            count / total["list"],
            "msg/s",
            "higher",
            "LPUSH of 100 values + LTRIM + EXPIRE",
        )

    # ------------------------------------------------------------------ W3-W5

    def w3_sync(self, n: int) -> None:
        key, reps = f"read-{n}", read_reps(n, self.size)
        got = interleaved(
            {
                "conv": lambda: timed(lambda: self.store.messages.history(key)),
                "raw": lambda: timed(lambda: self.raw.read_all(key)),
                "list": lambda: timed(lambda: self.lists.read_all(key)),
            },
            reps,
        )
        assert len(self.store.messages.history(key)) == n
        self.results.pair(
            "W3",
            "full read",
            "sync",
            n,
            median(got["conv"]) * 1e3,
            RAW_XRANGE,
            median(got["raw"]) * 1e3,
            "ms",
            "lower",
        )
        self.add(
            "W3",
            "full read",
            "sync",
            n,
            LIST_STORE,
            "reference",
            median(got["list"]) * 1e3,
            "ms",
            "lower",
            "LRANGE 0 -1 + json",
        )

    def w4_sync(self, n: int) -> None:
        key, reps = f"read-{n}", 50 if self.size.name == "tiny" else 300
        got = interleaved(
            {
                "conv": lambda: timed(lambda: self.store.messages.last(key, LAST_N)),
                "raw": lambda: timed(lambda: self.raw.last(key)),
                "list": lambda: timed(lambda: self.lists.last(key)),
            },
            reps,
        )
        self.results.pair(
            "W4",
            f"last {LAST_N}",
            "sync",
            n,
            median(got["conv"]) * 1e3,
            RAW_XREV,
            median(got["raw"]) * 1e3,
            "ms",
            "lower",
        )
        self.add(
            "W4",
            f"last {LAST_N}",
            "sync",
            n,
            LIST_STORE,
            "reference",
            median(got["list"]) * 1e3,
            "ms",
            "lower",
            "LRANGE 0 19 + json",
        )

    def _conv_page_all(self, key: str) -> int:
        cursor: str | None = None
        seen = 0
        while True:
            page = self.store.messages.page(key, cursor)
            seen += len(page.items)
            cursor = page.cursor
            if cursor is None:
                return seen

    def w5_sync(self, n: int) -> None:
        key, reps = f"read-{n}", max(1, min(5, 50_000 // n))
        got = interleaved(
            {
                "conv": lambda: timed(lambda: self._conv_page_all(key)),
                "raw": lambda: timed(lambda: self.raw.page_all(key)),
            },
            reps,
        )
        assert self._conv_page_all(key) == n
        self.results.pair(
            "W5",
            "paging x50",
            "sync",
            n,
            median(got["conv"]) * 1e3,
            RAW_PAGE,
            median(got["raw"]) * 1e3,
            "ms",
            "lower",
        )

    # ------------------------------------------------------------------ W6

    def w6_sync(self) -> None:
        s = self.size
        names = [f"w6-{i}" for i in range(s.w6_sessions)]
        keys = [self.session(name) for name in names]
        msgs = make_messages(s.w6_messages)
        total = s.w6_sessions * s.w6_messages

        def conv_write() -> None:
            append = self.store.messages.append
            for m in msgs:
                d = m.as_dict()
                for key in keys:
                    append(key, d)

        def raw_write() -> None:
            for m in msgs:
                for name in names:
                    self.raw.append(name, m)

        def list_write() -> None:
            for m in msgs:
                for name in names:
                    self.lists.append(name, m)

        t_raw, t_conv, t_list = timed(raw_write), timed(conv_write), timed(list_write)
        r = self.results
        r.pair(
            "W6", "write", "sync", total, total / t_conv, RAW_XADD, total / t_raw, "msg/s", "higher"
        )
        self.add(
            "W6", "write", "sync", total, LIST_STORE, "reference", total / t_list, "msg/s", "higher"
        )
        got = interleaved(
            {
                "conv": lambda: timed(lambda: [self.store.messages.history(k) for k in keys]),
                "raw": lambda: timed(lambda: [self.raw.read_all(n) for n in names]),
                "list": lambda: timed(lambda: [self.lists.read_all(n) for n in names]),
            },
            2,
        )
        r.pair(
            "W6",
            "read",
            "sync",
            total,
            total / median(got["conv"]),
            RAW_XRANGE,
            total / median(got["raw"]),
            "msg/s",
            "higher",
        )
        self.add(
            "W6",
            "read",
            "sync",
            total,
            LIST_STORE,
            "reference",
            total / median(got["list"]),
            "msg/s",
            "higher",
        )

    # ------------------------------------------------------------------ W7

    def w7(self) -> None:
        n = self.size.w7_n
        stream, ids, session = self.conv_keys(f"read-{n}")
        assert int(self.client.execute_command("XLEN", stream)) == n
        raw = memory_usage(self.client, self.raw.key(f"read-{n}")) / n
        r = self.results
        r.pair(
            "W7",
            "stream+ids+session",
            "sync",
            n,
            memory_usage(self.client, stream, ids, session) / n,
            RAW_STREAM,
            raw,
            "B/msg",
            "lower",
        )
        r.pair(
            "W7",
            "stream only",
            "sync",
            n,
            memory_usage(self.client, stream) / n,
            RAW_STREAM,
            raw,
            "B/msg",
            "lower",
        )
        self.add(
            "W7",
            "stream+ids+session",
            "sync",
            n,
            LIST_STORE,
            "reference",
            memory_usage(self.client, self.lists.key(f"read-{n}")) / n,
            "B/msg",
            "lower",
        )
        for name, key in (("ids hash", ids), ("session hash", session)):
            self.add(
                "W7",
                name,
                "sync",
                n,
                CONV_PART,
                "reference",
                memory_usage(self.client, key) / n,
                "B/msg",
                "lower",
                "part of the convstore total",
            )

    # ------------------------------------------------------------------ W9

    def w9_sync(self) -> None:
        s = self.size
        per = max(1, s.w9_n // s.rounds)
        sessions = [new_session(f"w9-{i}") for i in range(per * s.rounds)]
        records = [x.to_dict() for x in sessions]
        state = {"conv": 0, "raw": 0}

        def conv_save() -> float:
            i = state["conv"]
            state["conv"] += per
            batch = sessions[i : i + per]
            return per / timed(lambda: [self.store.sessions.save(x) for x in batch])

        def raw_save() -> float:
            i = state["raw"]
            state["raw"] += per
            return per / timed(
                lambda: [self.raw_sessions.save(f"w9-{j}", records[j]) for j in range(i, i + per)]
            )

        got = interleaved({"conv": conv_save, "raw": raw_save}, s.rounds)
        r = self.results
        total = per * s.rounds
        r.pair(
            "W9",
            "save",
            "sync",
            total,
            median(got["conv"]),
            RAW_HASH,
            median(got["raw"]),
            "op/s",
            "higher",
        )
        keys = [x.generate_session_key() for x in sessions]
        got = interleaved(
            {
                "conv": lambda: total / timed(lambda: [self.store.sessions.get(k) for k in keys]),
                "raw": lambda: (
                    total / timed(lambda: [self.raw_sessions.get(f"w9-{j}") for j in range(total)])
                ),
            },
            s.rounds,
        )
        r.pair(
            "W9",
            "get",
            "sync",
            total,
            median(got["conv"]),
            RAW_HASH,
            median(got["raw"]),
            "op/s",
            "higher",
        )

    # ------------------------------------------------------------------ async

    async def w1_async(self) -> None:
        s = self.size
        per = max(1, s.w1_n // s.rounds)
        astore, araw = self.astore, AsyncRawStream(self.aclient, self.ns)
        key = await astore.sessions.save(new_session("aw1"))
        msgs = make_messages(per * s.rounds)
        for m in msgs[:20]:
            await astore.messages.append(key, m.as_dict())
            await araw.append("aw1", m)
        state = {"conv": 0, "raw": 0}

        async def conv() -> float:
            i = state["conv"]
            state["conv"] += per
            dicts = [m.as_dict() for m in msgs[i : i + per]]

            async def go() -> None:
                for d in dicts:
                    await astore.messages.append(key, d)

            return per / await atimed(go)

        async def raw() -> float:
            i = state["raw"]
            state["raw"] += per

            async def go() -> None:
                for m in msgs[i : i + per]:
                    await araw.append("aw1", m)

            return per / await atimed(go)

        got = await ainterleaved({"conv": conv, "raw": raw}, s.rounds)
        self.results.pair(
            "W1",
            "append",
            "async",
            s.w1_n,
            median(got["conv"]),
            RAW_XADD,
            median(got["raw"]),
            "msg/s",
            "higher",
        )

    async def w2_async(self) -> None:
        n = self.size.async_w2_n
        astore, araw = self.astore, AsyncRawStream(self.aclient, self.ns)
        key = await astore.sessions.save(new_session("aw2"))
        msgs = make_messages(n)
        dicts = [m.as_dict() for m in msgs]
        t_raw = await atimed(lambda: araw.append_pipelined("aw2", msgs))

        async def conv() -> None:
            for i in range(0, n, BATCH):
                await astore.messages.append_many(key, dicts[i : i + BATCH])

        t_conv = await atimed(conv)
        self.results.pair(
            "W2", "append_many", "async", n, n / t_conv, RAW_PIPE, n / t_raw, "msg/s", "higher"
        )

    async def reads_async(self, n: int) -> None:
        astore, araw = self.astore, AsyncRawStream(self.aclient, self.ns)
        key, raw_key = f"read-{n}", self.raw.key(f"read-{n}")
        r = self.results
        got = await ainterleaved(
            {
                "conv": lambda: atimed(lambda: astore.messages.history(key)),
                "raw": lambda: atimed(lambda: araw.read_all(raw_key)),
            },
            read_reps(n, self.size),
        )
        r.pair(
            "W3",
            "full read",
            "async",
            n,
            median(got["conv"]) * 1e3,
            RAW_XRANGE,
            median(got["raw"]) * 1e3,
            "ms",
            "lower",
        )
        got = await ainterleaved(
            {
                "conv": lambda: atimed(lambda: astore.messages.last(key, LAST_N)),
                "raw": lambda: atimed(lambda: araw.last(raw_key)),
            },
            50 if self.size.name == "tiny" else 300,
        )
        r.pair(
            "W4",
            f"last {LAST_N}",
            "async",
            n,
            median(got["conv"]) * 1e3,
            RAW_XREV,
            median(got["raw"]) * 1e3,
            "ms",
            "lower",
        )

        async def conv_pages() -> None:
            cursor: str | None = None
            while True:
                page = await astore.messages.page(key, cursor)
                cursor = page.cursor
                if cursor is None:
                    return

        got = await ainterleaved(
            {
                "conv": lambda: atimed(conv_pages),
                "raw": lambda: atimed(lambda: araw.page_all(raw_key)),
            },
            max(1, min(5, 50_000 // n)),
        )
        r.pair(
            "W5",
            "paging x50",
            "async",
            n,
            median(got["conv"]) * 1e3,
            RAW_PAGE,
            median(got["raw"]) * 1e3,
            "ms",
            "lower",
        )

    async def w6_async(self) -> None:
        s = self.size
        astore, araw = self.astore, AsyncRawStream(self.aclient, self.ns)
        names = [f"aw6-{i}" for i in range(s.w6_sessions)]
        keys = [await astore.sessions.save(new_session(name)) for name in names]
        msgs = make_messages(s.w6_messages)
        total = s.w6_sessions * s.w6_messages

        async def conv_write() -> None:
            for m in msgs:
                d = m.as_dict()
                for key in keys:
                    await astore.messages.append(key, d)

        async def raw_write() -> None:
            for m in msgs:
                for name in names:
                    await araw.append(name, m)

        t_raw = await atimed(raw_write)
        t_conv = await atimed(conv_write)
        r = self.results
        r.pair(
            "W6",
            "write",
            "async",
            total,
            total / t_conv,
            RAW_XADD,
            total / t_raw,
            "msg/s",
            "higher",
        )

        async def conv_read() -> None:
            for key in keys:
                await astore.messages.history(key)

        async def raw_read() -> None:
            for name in names:
                await araw.read_all(araw.key(name))

        got = await ainterleaved(
            {"conv": lambda: atimed(conv_read), "raw": lambda: atimed(raw_read)}, 2
        )
        r.pair(
            "W6",
            "read",
            "async",
            total,
            total / median(got["conv"]),
            RAW_XRANGE,
            total / median(got["raw"]),
            "msg/s",
            "higher",
        )

    async def w8_async(self) -> None:
        s = self.size
        astore, araw = self.astore, AsyncRawStream(self.aclient, self.ns)
        names = [f"w8-{i}" for i in range(s.w8_sessions)]
        keys = [await astore.sessions.save(new_session(name)) for name in names]
        msgs = make_messages(s.w8_messages)
        total = s.w8_sessions * s.w8_messages

        async def conv_one(key: str) -> None:
            for m in msgs:
                await astore.messages.append(key, m.as_dict())

        async def raw_one(name: str) -> None:
            for m in msgs:
                await araw.append(name, m)

        async def conv() -> float:
            return total / await atimed(lambda: asyncio.gather(*(conv_one(k) for k in keys)))

        async def raw() -> float:
            return total / await atimed(lambda: asyncio.gather(*(raw_one(n) for n in names)))

        got = await ainterleaved({"conv": conv, "raw": raw}, 2)
        self.results.pair(
            "W8",
            f"{s.w8_sessions} concurrent",
            "async",
            total,
            median(got["conv"]),
            f"raw async XADD, {s.w8_sessions} concurrent",
            median(got["raw"]),
            "msg/s",
            "higher",
        )

    async def w9_async(self) -> None:
        s = self.size
        astore, araw = self.astore, AsyncRawSessions(self.aclient, self.ns)
        sessions = [new_session(f"aw9-{i}") for i in range(s.w9_n)]
        records = [x.to_dict() for x in sessions]

        async def conv_save() -> None:
            for x in sessions:
                await astore.sessions.save(x)

        async def raw_save() -> None:
            for i, rec in enumerate(records):
                await araw.save(f"aw9-{i}", rec)

        t_raw, t_conv = await atimed(raw_save), await atimed(conv_save)
        r, n = self.results, s.w9_n
        r.pair("W9", "save", "async", n, n / t_conv, RAW_HASH, n / t_raw, "op/s", "higher")
        keys = [x.generate_session_key() for x in sessions]

        async def conv_get() -> None:
            for k in keys:
                await astore.sessions.get(k)

        async def raw_get() -> None:
            for i in range(n):
                await araw.get(f"aw9-{i}")

        got = await ainterleaved(
            {"conv": lambda: atimed(conv_get), "raw": lambda: atimed(raw_get)}, 2
        )
        r.pair(
            "W9",
            "get",
            "async",
            n,
            n / median(got["conv"]),
            RAW_HASH,
            n / median(got["raw"]),
            "op/s",
            "higher",
        )


CONV_PART = "convstore (part)"


async def _call(fn: Callable[[], Awaitable[None]]) -> None:
    await fn()


def run_steps(steps: list[Step], progress: Progress) -> None:
    for description, fn in steps:
        progress.start(description)
        fn()
        progress.finish()


__all__ = ["Bench", "Msg", "Step", "new_session", "run_steps"]
