"""History reads skip redis-py's per-row parsing of XRANGE replies (``Call.raw_reply``)
through a second client on the user's own pool (``connections.raw_reply_client``): the
user's client is never changed, every read returns what the parsed path returns, and
where the second client is not safe there is none and the parsed reply is decoded.
"""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio

from conftest import SessionFactory, aw
from convstore import AsyncConversationStore, ConversationStore, connections
from convstore.connections import RAW_REPLY_COMMANDS, raw_reply_client


class TracedRedis(redis.Redis):
    """A user's subclass that sees every command (as instrumentation does)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[Any] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.seen.append(args[0])
        return super().execute_command(*args, **options)


def test_the_second_client_shares_the_pool_and_leaves_the_users_client_alone(
    sync_client: redis.Redis, namespace: str
) -> None:
    before = dict(sync_client.response_callbacks)
    reader = raw_reply_client(sync_client)
    assert reader is not None and reader is not sync_client
    assert reader.connection_pool is sync_client.connection_pool
    stream = f"{namespace}:s"
    sync_client.xadd(stream, {b"m": b"id", b"d": b"payload"})
    ((entry_id, fields),) = sync_client.execute_command("XRANGE", stream, "-", "+")
    assert fields == {b"m": b"id", b"d": b"payload"}  # the user's client still parses
    for command in ("XRANGE", "XREVRANGE"):
        ((raw_id, flat),) = reader.execute_command(
            command, stream, *(("-", "+")[:: 1 if command == "XRANGE" else -1])
        )
        assert raw_id == entry_id and flat == [b"m", b"id", b"d", b"payload"]
    assert dict(sync_client.response_callbacks) == before
    assert set(RAW_REPLY_COMMANDS) == {"XRANGE", "XREVRANGE"}


async def test_the_asyncio_client_gets_one_too(async_client: redis.asyncio.Redis) -> None:
    reader = raw_reply_client(async_client)
    assert isinstance(reader, redis.asyncio.Redis)
    assert reader.connection_pool is async_client.connection_pool


class ParsingRedis(redis.Redis):
    """A user's subclass that sees every reply (its own parse_response)."""

    def parse_response(self, connection: Any, command_name: Any, **options: Any) -> Any:
        return super().parse_response(connection, command_name, **options)


def test_no_second_client_where_it_is_not_safe() -> None:
    assert raw_reply_client(TracedRedis()) is None  # execute_command is the user's own
    assert raw_reply_client(ParsingRedis()) is None  # so is parse_response
    assert raw_reply_client(redis.Redis(single_connection_client=False)) is not None
    assert raw_reply_client(redis.asyncio.Redis(single_connection_client=True)) is None
    assert raw_reply_client(object()) is None  # not a redis-py client (cluster clients too)
    single = fakeredis.FakeRedis(single_connection_client=True)
    assert raw_reply_client(single) is None
    single.close()


@pytest.mark.parametrize("use_async", [False, True])
async def test_every_history_read_returns_what_the_parsed_path_returns(
    use_async: bool,
    sync_client: redis.Redis,
    async_client: redis.asyncio.Redis,
    namespace: str,
    make_session: SessionFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same reads through a store with the second client (its replies seen unparsed)
    and one without (a traced subclass, which saw every read itself): equal results."""
    unparsed: list[Any] = []

    def as_sent(response: Any, **_options: Any) -> Any:
        unparsed.append(response)
        return response

    monkeypatch.setattr(connections, "_as_sent", as_sent)
    fast: Any = (
        AsyncConversationStore(async_client, namespace=namespace)
        if use_async
        else ConversationStore(sync_client, namespace=namespace)
    )
    traced = TracedRedis(connection_pool=sync_client.connection_pool)
    parsed = ConversationStore(traced, namespace=namespace)
    key = await aw(fast.sessions.save(make_session("raw")))
    meta = {
        "sender_id": "agent_a",
        "sender_type": "agent",
        "recipient_id": "mc_1",
        "recipient_type": "master_controller",
    }
    messages = [
        {"role": "user", "content": f"m{i}", "metadata": meta if i % 3 == 0 else {"i": i}}
        for i in range(12)
    ]
    messages[4]["metadata"] = {"tool_calls": [{"id": "c1"}]}  # a third field, tc
    messages[5] = {"role": "tool", "content": "", "metadata": {"tool_call_id": "c1"}}
    await aw(fast.messages.append_many(key, messages))
    for read in (
        lambda s: s.messages.history(key),
        lambda s: s.messages.history(key, 5),
        lambda s: s.messages.read(key),
        lambda s: s.messages.read(key, 7),
        lambda s: s.messages.page(key, limit=4),
        lambda s: s.messages.agent_messages(key),
        lambda s: s.messages.entries(key, limit=5),
        lambda s: s.messages.entries(key, after="0-0", limit=20),
    ):
        traced.seen.clear()
        unparsed.clear()
        assert await aw(read(fast)) == read(parsed)
        assert any(name in ("XRANGE", "XREVRANGE") for name in traced.seen)
        assert unparsed and all(type(row[1]) is list for reply in unparsed for row in reply)
