"""The peers as rows of the goal table, each driven through its own public API.

- langchain-community ``RedisChatMessageHistory``: one ``LPUSH`` of JSON per message, read
  with ``LRANGE`` + ``messages_from_dict``. It is sync only: the async goal drives it the way
  langchain-core does for every sync history, ``aadd_messages`` -> ``run_in_executor`` (the
  event loop's default thread pool), 64 tasks sharing one redis-py client.
- llama-index ``RedisChatStore``: one ``RPUSH`` of pydantic JSON per message; native async
  ``async_add_message`` over one ``redis.asyncio`` client. No batch append (``set_messages``
  replaces the list one ``RPUSH`` at a time), so its batch row is "n/a".
- aiecs ``ContextEngine`` (benchmarks/goal_aiecs.py), when its wheel can be loaded.

Histories the timed part does not write (reads, bytes) are built untimed with a pipeline of
exactly the values the peer's own serializer produces, so 100k-message lists take seconds.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio

from benchmarks.common import BATCH, LANGCHAIN, LLAMA, Msg

OPTIONS: dict[str, Any] = {"socket_timeout": 60.0, "socket_connect_timeout": 5.0}


class GoalPeer:
    """What the goal table asks of a peer; ``None`` from a method means "no such API"."""

    name: str
    async_how: str = "n/a"

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.client = redis.Redis.from_url(url, **OPTIONS)

    def key(self, session: str) -> str:
        raise NotImplementedError

    def prepare(self, session: str) -> None:
        """Untimed: whatever the peer needs before a session's first append."""

    def append_round(self, session: str, msgs: list[Msg]) -> None:
        """Append ``msgs`` one call each (the one-append goal)."""
        raise NotImplementedError

    def build(self, session: str, msgs: list[Msg]) -> None:
        """Untimed setup: the history the peer would hold after appending ``msgs``."""
        raise NotImplementedError

    def read_all(self, session: str) -> list[Any]:
        raise NotImplementedError

    def newest(self, session: str, n: int) -> list[Any]:
        """No peer has a newest-N read: it reads everything and keeps the tail."""
        return self.read_all(session)[-n:]

    def append_batch(self, session: str, msgs: list[Msg]) -> bool:
        """One call per BATCH messages; False when the peer has no batch append."""
        return False

    async def aopen(self) -> None:
        """Open what the async rounds share (inside the event loop that runs them)."""

    async def aprepare(self, sessions: list[str]) -> None:
        """Untimed: what the sessions need before the async round."""

    async def aappend_all(self, sessions: list[str], msgs: list[Msg]) -> None:
        """Append ``msgs`` to every session concurrently, one task per session."""
        raise NotImplementedError

    async def aclose(self) -> None:
        pass

    def stored(self, sessions: list[str]) -> int:
        """How many messages the sessions hold (a peer that swallows errors stores fewer)."""
        pipe = self.client.pipeline(transaction=False)
        for s in sessions:
            pipe.llen(self.key(s))
        return sum(int(v) for v in pipe.execute())

    def bytes_of(self, sessions: list[str]) -> int:
        pipe = self.client.pipeline(transaction=False)
        for s in sessions:
            pipe.execute_command("MEMORY", "USAGE", self.key(s), "SAMPLES", 0)
        return sum(int(v or 0) for v in pipe.execute())

    def close(self) -> None:
        self.client.close()


def _push(client: redis.Redis, command: str, key: str, values: list[str]) -> None:
    for start in range(0, len(values), 1000):
        client.execute_command(command, key, *values[start : start + 1000])


class LangChainGoalPeer(GoalPeer):
    name = LANGCHAIN
    async_how = "aadd_messages: langchain-core's default run_in_executor (thread pool), sync only"

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__(url, prefix)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from langchain_community.chat_message_histories.redis import RedisChatMessageHistory
            from langchain_core.messages import AIMessage, HumanMessage, message_to_dict

        self._cls, self._ai, self._human = RedisChatMessageHistory, AIMessage, HumanMessage
        self._to_dict = message_to_dict
        self._histories: dict[str, Any] = {}

    def key(self, session: str) -> str:
        return f"{self.prefix}:lc:{session}"

    def _h(self, session: str) -> Any:
        h = self._histories.get(session)
        if h is None:
            # one shared client: the constructor would open a connection pool per session
            h = object.__new__(self._cls)
            h.redis_client, h.session_id = self.client, session
            h.key_prefix, h.ttl = f"{self.prefix}:lc:", None
            self._histories[session] = h
        return h

    def message(self, msg: Msg) -> Any:
        cls = self._human if msg.role == "user" else self._ai
        return cls(content=msg.content, additional_kwargs={"metadata": msg.metadata})

    def append_round(self, session: str, msgs: list[Msg]) -> None:
        h = self._h(session)
        for m in msgs:
            h.add_message(self.message(m))

    def build(self, session: str, msgs: list[Msg]) -> None:
        values = [json.dumps(self._to_dict(self.message(m))) for m in msgs]
        _push(self.client, "LPUSH", self.key(session), values)

    def read_all(self, session: str) -> list[Any]:
        return list(self._h(session).messages)

    def append_batch(self, session: str, msgs: list[Msg]) -> bool:
        h = self._h(session)
        for start in range(0, len(msgs), BATCH):
            h.add_messages([self.message(m) for m in msgs[start : start + BATCH]])
        return True

    async def aappend_all(self, sessions: list[str], msgs: list[Msg]) -> None:
        async def one(session: str) -> None:
            h = self._h(session)
            for m in msgs:
                await h.aadd_messages([self.message(m)])

        await asyncio.gather(*(one(s) for s in sessions))


class LlamaGoalPeer(GoalPeer):
    name = LLAMA
    async_how = "native async_add_message, 64 tasks over one redis.asyncio client"

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__(url, prefix)
        from llama_index.core.llms import ChatMessage, MessageRole
        from llama_index.storage.chat_store.redis import RedisChatStore

        self._message_cls, self._roles, self._store_cls = ChatMessage, MessageRole, RedisChatStore
        self.store = RedisChatStore(redis_client=self.client, aredis_client=None)

    def key(self, session: str) -> str:
        return f"{self.prefix}:li:{session}"

    def message(self, msg: Msg) -> Any:
        role = self._roles.USER if msg.role == "user" else self._roles.ASSISTANT
        return self._message_cls(
            role=role, content=msg.content, additional_kwargs={"metadata": msg.metadata}
        )

    def append_round(self, session: str, msgs: list[Msg]) -> None:
        key, add = self.key(session), self.store.add_message
        for m in msgs:
            add(key, self.message(m))

    def build(self, session: str, msgs: list[Msg]) -> None:
        values = [self.message(m).model_dump_json() for m in msgs]
        _push(self.client, "RPUSH", self.key(session), values)

    def read_all(self, session: str) -> list[Any]:
        return list(self.store.get_messages(self.key(session)))

    async def aopen(self) -> None:
        self._aclient = redis.asyncio.Redis.from_url(self.url, **OPTIONS)
        self._astore = self._store_cls(redis_client=self.client, aredis_client=self._aclient)

    async def aappend_all(self, sessions: list[str], msgs: list[Msg]) -> None:
        async def one(session: str) -> None:
            key = self.key(session)
            for m in msgs:
                await self._astore.async_add_message(key, self.message(m))

        await asyncio.gather(*(one(s) for s in sessions))

    async def aclose(self) -> None:
        await self._aclient.aclose()


GOAL_PEERS: dict[str, Callable[[str, str], GoalPeer]] = {
    LANGCHAIN: LangChainGoalPeer,
    LLAMA: LlamaGoalPeer,
}
