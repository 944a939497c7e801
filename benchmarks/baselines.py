"""The baselines: bare redis-py streams with msgpack, and a ContextEngine-style list store.

All of them use the same client settings as convstore (bytes replies, RESP2) and go
through ``execute_command`` and redis-py's reply callbacks exactly as convstore does,
so the only difference measured is what convstore adds on top.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio

from benchmarks.common import BATCH, LAST_N, PAGE_SIZE, Msg, raw_decode, raw_payload

FIELD = b"d"


# --------------------------------------------------------------------------- raw stream, sync


class RawStream:
    """One stream per session, one field ``d`` holding the msgpack payload (id inside it)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def key(self, session: str) -> str:
        return f"{self.prefix}:raw:{session}"

    def append(self, session: str, msg: Msg) -> None:
        self.client.execute_command("XADD", self.key(session), "*", FIELD, raw_payload(msg))

    def append_pipelined(self, session: str, msgs: list[Msg]) -> None:
        key = self.key(session)
        for start in range(0, len(msgs), BATCH):
            pipe = self.client.pipeline(transaction=False)
            for msg in msgs[start : start + BATCH]:
                pipe.execute_command("XADD", key, "*", FIELD, raw_payload(msg))
            pipe.execute()

    def read_all(self, session: str) -> list[Any]:
        rows = self.client.execute_command("XRANGE", self.key(session), "-", "+")
        return [raw_decode(fields[FIELD]) for _, fields in rows]

    def last(self, session: str, n: int = LAST_N) -> list[Any]:
        rows = self.client.execute_command("XREVRANGE", self.key(session), "+", "-", "COUNT", n)
        return [raw_decode(fields[FIELD]) for _, fields in reversed(rows)]

    def page_all(self, session: str) -> int:
        """Walk the whole history backwards, PAGE_SIZE at a time; returns messages seen."""
        key, end, seen = self.key(session), "+", 0
        while True:
            rows = self.client.execute_command("XREVRANGE", key, end, "-", "COUNT", PAGE_SIZE + 1)
            page = rows[:PAGE_SIZE]
            seen += len([raw_decode(fields[FIELD]) for _, fields in reversed(page)])
            if len(rows) <= PAGE_SIZE:
                return seen
            end = b"(" + page[-1][0]


class RawSessions:
    """Session records as one msgpack value in a hash, HSET to save and HGET to read."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def save(self, session_id: str, record: dict[str, Any]) -> None:
        self.client.execute_command(
            "HSET", f"{self.prefix}:rawsess:{session_id}", "rec", _pack_record(record)
        )

    def get(self, session_id: str) -> Any:
        return raw_decode(
            self.client.execute_command("HGET", f"{self.prefix}:rawsess:{session_id}", "rec")
        )


def _pack_record(record: dict[str, Any]) -> bytes:
    import msgpack

    packed: bytes = msgpack.packb(record, use_bin_type=True, datetime=True)
    return packed


# --------------------------------------------------------------------------- raw stream, async


class AsyncRawStream:
    def __init__(self, client: redis.asyncio.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def key(self, session: str) -> str:
        return f"{self.prefix}:araw:{session}"

    async def append(self, session: str, msg: Msg) -> None:
        await self.client.execute_command("XADD", self.key(session), "*", FIELD, raw_payload(msg))

    async def append_pipelined(self, session: str, msgs: list[Msg]) -> None:
        key = self.key(session)
        for start in range(0, len(msgs), BATCH):
            pipe = self.client.pipeline(transaction=False)
            for msg in msgs[start : start + BATCH]:
                pipe.execute_command("XADD", key, "*", FIELD, raw_payload(msg))
            await pipe.execute()

    async def read_all(self, key: str) -> list[Any]:
        rows = await self.client.execute_command("XRANGE", key, "-", "+")
        return [raw_decode(fields[FIELD]) for _, fields in rows]

    async def last(self, key: str, n: int = LAST_N) -> list[Any]:
        rows = await self.client.execute_command("XREVRANGE", key, "+", "-", "COUNT", n)
        return [raw_decode(fields[FIELD]) for _, fields in reversed(rows)]

    async def page_all(self, key: str) -> int:
        end: str | bytes = "+"
        seen = 0
        while True:
            rows = await self.client.execute_command(
                "XREVRANGE", key, end, "-", "COUNT", PAGE_SIZE + 1
            )
            page = rows[:PAGE_SIZE]
            seen += len([raw_decode(fields[FIELD]) for _, fields in reversed(page)])
            if len(rows) <= PAGE_SIZE:
                return seen
            end = b"(" + page[-1][0]


class AsyncRawSessions:
    def __init__(self, client: redis.asyncio.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    async def save(self, session_id: str, record: dict[str, Any]) -> None:
        await self.client.execute_command(
            "HSET", f"{self.prefix}:arawsess:{session_id}", "rec", _pack_record(record)
        )

    async def get(self, session_id: str) -> Any:
        return raw_decode(
            await self.client.execute_command("HGET", f"{self.prefix}:arawsess:{session_id}", "rec")
        )


# --------------------------------------------------------------------------- ContextEngine list


class ListStore:
    """The reference ContextEngine's history layout (aiecs 2.2.0), sync.

    Append: ``LPUSH conversation:{id} json`` then ``LTRIM`` then ``EXPIRE`` (three round
    trips, as the reference does). Read: ``LRANGE`` and reverse (newest is at the head).
    The cap is set above every N measured, so nothing is trimmed and the reads compare
    equal lengths; the reference's trim keeps the wrong end, which is not reproduced.
    """

    TTL = 86_400

    def __init__(self, client: redis.Redis, prefix: str, cap: int) -> None:
        self.client = client
        self.prefix = prefix
        self.cap = cap

    def key(self, session: str) -> str:
        return f"{self.prefix}:ce:conversation:{session}"

    @staticmethod
    def encode(msg: Msg) -> str:
        return json.dumps(
            {
                "role": msg.role,
                "content": msg.content,
                "timestamp": datetime.now(UTC).replace(tzinfo=None).isoformat(),
                "metadata": msg.metadata,
            }
        )

    def append(self, session: str, msg: Msg) -> None:
        key = self.key(session)
        self.client.execute_command("LPUSH", key, self.encode(msg))
        self.client.execute_command("LTRIM", key, 0, self.cap - 1)
        self.client.execute_command("EXPIRE", key, self.TTL)

    def append_batch(self, session: str, msgs: list[Msg]) -> None:
        """The best a list store can do for a batch: one LPUSH of many values, pipelined."""
        key = self.key(session)
        for start in range(0, len(msgs), BATCH):
            pipe = self.client.pipeline(transaction=False)
            pipe.execute_command(
                "LPUSH", key, *(self.encode(m) for m in msgs[start : start + BATCH])
            )
            pipe.execute_command("LTRIM", key, 0, self.cap - 1)
            pipe.execute_command("EXPIRE", key, self.TTL)
            pipe.execute()

    def read_all(self, session: str) -> list[Any]:
        rows = self.client.execute_command("LRANGE", self.key(session), 0, -1)
        return [json.loads(row) for row in reversed(rows)]

    def last(self, session: str, n: int = LAST_N) -> list[Any]:
        rows = self.client.execute_command("LRANGE", self.key(session), 0, n - 1)
        return [json.loads(row) for row in reversed(rows)]
