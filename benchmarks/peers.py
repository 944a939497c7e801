"""The peers, when importable: langchain-community and llama-index Redis chat stores.

Both keep one Redis LIST per session with JSON values. They run the workloads they
have an API for (W1, W2 where a batch call exists, W3, W4 by reading everything,
W6, W7, and W8 for llama-index, which has native async); the rest are "n/a".
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import warnings
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio

from benchmarks.common import (
    BATCH,
    LANGCHAIN,
    LAST_N,
    LLAMA,
    Msg,
    Result,
    Size,
    interleaved,
    make_messages,
    median,
    timed,
)
from benchmarks.workloads import CLIENT_OPTIONS, Bench, Step, memory_usage


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def availability() -> dict[str, str]:
    """``{peer: "installed <version>" | "not installed (...)"}``."""
    out: dict[str, str] = {}
    for name, module, dist in (
        (LANGCHAIN, "langchain_community.chat_message_histories.redis", "langchain-community"),
        (LLAMA, "llama_index.storage.chat_store.redis", "llama-index-storage-chat-store-redis"),
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                __import__(module)
            out[name] = f"installed {_version(dist)}"
        except ImportError as exc:
            out[name] = f"not installed ({exc.name or exc})"
    return out


class _Peer:
    name: str

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.ns = bench.ns

    def add(
        self,
        workload: str,
        variant: str,
        mode: str,
        n: int,
        value: float,
        unit: str,
        better: str,
        note: str = "",
    ) -> None:
        self.bench.results.add(
            Result(workload, variant, mode, n, self.name, "peer", value, unit, better, note)  # type: ignore[arg-type]
        )

    # subclasses implement these
    def append(self, session: str, msg: Msg) -> None:
        raise NotImplementedError

    def read_all(self, session: str) -> list[Any]:
        raise NotImplementedError

    def key(self, session: str) -> str:
        raise NotImplementedError

    def append_batch(self, session: str, msgs: list[Msg]) -> str | None:
        """Append in batches of BATCH; returns a reason string when there is no batch API."""
        return "no batch append"

    def steps(self, size: Size) -> list[Step]:
        return [
            (f"{self.name}: W1, W2", lambda: self.writes(size)),
            (f"{self.name}: W3, W4, W7", lambda: self.reads(size)),
            (f"{self.name}: W6", lambda: self.w6(size)),
        ]

    def writes(self, size: Size) -> None:
        msgs = make_messages(size.w1_n)
        for m in msgs[:20]:
            self.append("w1", m)
        per = max(1, size.w1_n // size.rounds)
        chunks = [msgs[i : i + per] for i in range(0, per * size.rounds, per)]
        state = {"i": 0}

        def one() -> float:
            chunk = chunks[state["i"]]
            state["i"] += 1
            return len(chunk) / timed(lambda: [self.append("w1", m) for m in chunk])

        self.add(
            "W1",
            "append",
            "sync",
            size.w1_n,
            median(interleaved({"p": one}, size.rounds)["p"]),
            "msg/s",
            "higher",
        )
        batch_msgs = make_messages(max(BATCH, size.w1_n))
        seconds = 0.0
        reason: str | None = None

        def batch() -> None:
            nonlocal reason
            reason = self.append_batch("w2", batch_msgs)

        seconds = timed(batch)
        if reason is None:
            self.add(
                "W2",
                "append_many",
                "sync",
                sum(size.read_ns),
                len(batch_msgs) / seconds,
                "msg/s",
                "higher",
                f"measured over {len(batch_msgs):,} messages",
            )

    def reads(self, size: Size) -> None:
        for n in size.peer_ns:
            session = f"read-{n}"
            for m in make_messages(n):
                self.append(session, m)
            reps = max(3, min(5 if size.name == "tiny" else 15, 100_000 // n))
            got = interleaved({"p": lambda s=session: timed(lambda: self.read_all(s))}, reps)
            self.add("W3", "full read", "sync", n, median(got["p"]) * 1e3, "ms", "lower")
            got = interleaved(
                {"p": lambda s=session: timed(lambda: self.read_all(s)[-LAST_N:])}, reps
            )
            self.add(
                "W4",
                f"last {LAST_N}",
                "sync",
                n,
                median(got["p"]) * 1e3,
                "ms",
                "lower",
                "no last-N API: reads everything",
            )
        n = size.w7_n
        used = memory_usage(self.bench.client, self.key(f"read-{n}"))
        self.add("W7", "stream+ids+session", "sync", n, used / n, "B/msg", "lower", "one LIST")

    def w6(self, size: Size) -> None:
        names = [f"w6-{i}" for i in range(size.w6_sessions)]
        msgs = make_messages(size.w6_messages)
        total = len(names) * len(msgs)

        def write() -> None:
            for m in msgs:
                for name in names:
                    self.append(name, m)

        self.add("W6", "write", "sync", total, total / timed(write), "msg/s", "higher")
        seconds = timed(lambda: [self.read_all(name) for name in names])
        self.add("W6", "read", "sync", total, total / seconds, "msg/s", "higher")

    def close(self) -> None:
        pass


class LangChainPeer(_Peer):
    name = LANGCHAIN

    def __init__(self, bench: Bench) -> None:
        super().__init__(bench)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from langchain_community.chat_message_histories.redis import (
                RedisChatMessageHistory,
            )
            from langchain_core.messages import AIMessage, HumanMessage

        self._ai, self._human = AIMessage, HumanMessage
        self.history = RedisChatMessageHistory("w1", url=bench.url, key_prefix=f"{self.ns}:lc:")
        self._histories: dict[str, Any] = {}
        self._cls = RedisChatMessageHistory

    def _h(self, session: str) -> Any:
        h = self._histories.get(session)
        if h is None:
            # share one client: the constructor would open a new one per session
            h = object.__new__(self._cls)
            h.redis_client, h.session_id = self.history.redis_client, session
            h.key_prefix, h.ttl = f"{self.ns}:lc:", None
            self._histories[session] = h
        return h

    def _message(self, msg: Msg) -> Any:
        cls = self._human if msg.role == "user" else self._ai
        return cls(content=msg.content, additional_kwargs={"metadata": msg.metadata})

    def key(self, session: str) -> str:
        return f"{self.ns}:lc:{session}"

    def append(self, session: str, msg: Msg) -> None:
        self._h(session).add_message(self._message(msg))

    def append_batch(self, session: str, msgs: list[Msg]) -> str | None:
        h = self._h(session)
        for i in range(0, len(msgs), BATCH):
            h.add_messages([self._message(m) for m in msgs[i : i + BATCH]])
        return None

    def read_all(self, session: str) -> list[Any]:
        return list(self._h(session).messages)

    def close(self) -> None:
        self.history.redis_client.close()


class LlamaPeer(_Peer):
    name = LLAMA

    def __init__(self, bench: Bench) -> None:
        super().__init__(bench)
        from llama_index.core.llms import ChatMessage, MessageRole
        from llama_index.storage.chat_store.redis import RedisChatStore

        self._client = redis.Redis.from_url(bench.url, **CLIENT_OPTIONS)
        self._message_cls, self._roles = ChatMessage, MessageRole
        self._store_cls = RedisChatStore
        self.store = RedisChatStore(redis_client=self._client, aredis_client=None)

    def key(self, session: str) -> str:
        return f"{self.ns}:li:{session}"

    def _message(self, msg: Msg) -> Any:
        role = self._roles.USER if msg.role == "user" else self._roles.ASSISTANT
        return self._message_cls(
            role=role, content=msg.content, additional_kwargs={"metadata": msg.metadata}
        )

    def append(self, session: str, msg: Msg) -> None:
        self.store.add_message(self.key(session), self._message(msg))

    def read_all(self, session: str) -> list[Any]:
        return list(self.store.get_messages(self.key(session)))

    def steps(self, size: Size) -> list[Step]:
        return [*super().steps(size), (f"{self.name}: W8 async", lambda: self.w8(size))]

    def w8(self, size: Size) -> None:
        async def run() -> float:
            aclient = redis.asyncio.Redis.from_url(self.bench.url, **CLIENT_OPTIONS)
            store = self._store_cls(redis_client=self._client, aredis_client=aclient)
            msgs = [self._message(m) for m in make_messages(size.w8_messages)]
            total = size.w8_sessions * len(msgs)

            async def one(i: int) -> None:
                for m in msgs:
                    await store.async_add_message(self.key(f"w8-{i}"), m)

            try:
                seconds = 0.0
                for _ in range(2):
                    started = asyncio.get_running_loop().time()
                    await asyncio.gather(*(one(i) for i in range(size.w8_sessions)))
                    elapsed = asyncio.get_running_loop().time() - started
                    seconds = elapsed if not seconds else min(seconds, elapsed)
                return total / seconds
            finally:
                await aclient.aclose()

        value = self.bench.runner.run(run())
        self.add(
            "W8",
            f"{size.w8_sessions} concurrent",
            "async",
            size.w8_sessions * size.w8_messages,
            value,
            "msg/s",
            "higher",
        )

    def close(self) -> None:
        self._client.close()


PEERS: dict[str, Callable[[Bench], _Peer]] = {LANGCHAIN: LangChainPeer, LLAMA: LlamaPeer}
