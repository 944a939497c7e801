"""ConvstoreSession beyond the SDK's own tests: lossless items, whole call groups, atomic pops.

Upstream tests not ported (tests/test_openai_agents_port_*.py hold the ported ones), and why:
- test_redis_session.py: the RedisSession internals (``_redis``, ``_get_next_id``,
  ``_messages_key``, ``_owns_client``, WATCH/MULTI retries, connection-pool cancellation and
  release, ``created_at``/``updated_at`` hash fields, decode_responses clients, closed-session
  RuntimeErrors; 50 tests) and its corrupt-JSON tests, which RPUSH raw strings into its list
  (convstore entries are msgpack written only by its scripts; a corrupt entry raises CodecError).
- test_session.py: SQLite internals (worker-thread connections, file locks, rollbacks,
  ``_await_mutation``, corrupt rows, closed-session checks; 12 tests).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from conftest import Store, StoreFactory, aw
from convstore.adapters.openai_agents import ConvstoreSession

CALL = {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": '{"q": "x"}',
        "id": "fc_1", "status": "completed"}  # fmt: skip
OUTPUT = {"type": "function_call_output", "call_id": "c1", "output": "42"}
REASONING = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "t"}],
             "encrypted_content": "abc=="}  # fmt: skip
MESSAGE = {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
           "content": [{"type": "output_text", "text": "hi", "annotations": [], "logprobs": []}]}  # fmt: skip


@pytest.fixture
def st(factory: StoreFactory) -> Store:
    return factory()


async def test_items_round_trip_losslessly(st: Store) -> None:
    session = ConvstoreSession("s1", store=st)
    items: list[Any] = [{"role": "user", "content": "q"}, REASONING, CALL, OUTPUT, MESSAGE]
    await session.add_items(items)
    assert await session.get_items() == items
    history = await aw(st.messages.history("s1"))
    assert history[0]["content"] == "q"  # plain text stays readable in the store
    assert history[2]["metadata"]["tool_calls"] == [{"id": "c1", "name": "lookup"}]
    assert history[3]["metadata"]["tool_call_id"] == "c1"


async def test_limit_never_returns_an_orphaned_call_output(st: Store) -> None:
    session = ConvstoreSession("s2", store=st, session_settings={"limit": 2})
    await session.add_items([{"role": "user", "content": "q"}, CALL, OUTPUT, MESSAGE])
    assert await session.get_items() == [MESSAGE]  # fewer than 2: the output lost its call
    assert await session.get_items(limit=3) == [CALL, OUTPUT, MESSAGE]


async def test_ten_concurrent_pops_return_ten_distinct_items(st: Store) -> None:
    session = ConvstoreSession("s3", store=st)
    await session.add_items([{"role": "user", "content": str(i)} for i in range(10)])
    popped = await asyncio.gather(*(session.pop_item() for _ in range(10)))
    assert sorted(int(p["content"]) for p in popped if p) == list(range(10))
    assert await session.get_items() == [] and await session.pop_item() is None


async def test_concurrent_first_writes_drop_nothing(st: Store) -> None:
    sessions = [ConvstoreSession("s4", store=st) for _ in range(8)]
    await asyncio.gather(
        *(s.add_items([{"role": "user", "content": str(i)}]) for i, s in enumerate(sessions))
    )
    assert sorted(int(i["content"]) for i in await sessions[0].get_items()) == list(range(8))


async def test_a_session_keeps_all_its_keys_in_one_slot(
    st: Store, sync_client: redis.Redis
) -> None:
    session = ConvstoreSession("s5:{odd}", store=st)
    await session.add_items([{"role": "user", "content": "x"}])
    keys = [k.decode() for k in sync_client.scan_iter(match=f"{st.namespace}:*")]
    tags = {k.split("{", 1)[1].split("}", 1)[0] for k in keys if "{" in k}
    assert len(tags) == 1
    await session.clear_session()
    assert await session.get_items() == []
