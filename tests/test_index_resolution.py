"""The session indexes at a resolution of one second (``lua.INDEX_RESOLUTION_US``).

An append moves a session's index scores only when its last activity ``la`` enters a
new second, so ``score <= la < score + resolution``; ``sessions.list`` reads ``la``
itself and still returns sessions in exact last-activity order, each once, page by page.
"""

from __future__ import annotations

import pytest
import redis

from conftest import SessionFactory, Store, StoreFactory, aw
from convstore import lua
from convstore.plans.values import epoch_micros

R = lua.INDEX_RESOLUTION_US


@pytest.fixture
def st(factory: StoreFactory) -> Store:
    return factory()


def _state(st: Store, client: redis.Redis, key: str) -> tuple[int, int]:
    """(exact la, index score) of a session."""
    keys = st.config.keyspace.session(key)
    la = int(client.hget(keys.session, "la"))
    score = client.zscore(st.config.keyspace.index_all, key)
    assert score is not None
    return la, int(score)


async def test_appends_move_the_index_scores_once_per_second(
    st: Store, sync_client: redis.Redis, make_session: SessionFactory
) -> None:
    key = await aw(st.sessions.save(make_session("a")))
    indexes = sync_client.hget(st.config.keyspace.session(key).session, "idx").decode().split()
    for n in range(20):
        before_la, before_score = _state(st, sync_client, key)
        await aw(st.messages.append(key, {"role": "user", "content": f"m{n}"}))
        la, score = _state(st, sync_client, key)
        assert score <= la < score + R  # the invariant readers rely on
        if la // R == before_la // R:  # same second: no index write at all
            assert score == before_score
        else:  # a new second: every index of the session moved to the exact la
            assert score == la
            assert {int(sync_client.zscore(i, key)) for i in indexes} == {la}


async def test_list_orders_by_exact_activity_across_pages(
    st: Store, sync_client: redis.Redis, make_session: SessionFactory
) -> None:
    """Index scores up to a second behind, in another order than ``la``: every page
    size still yields every session once, newest ``la`` first."""
    base = epoch_micros(make_session().created_at) + 10 * R
    # (la offset, how far the index score trails it): score order differs from la order
    shape = [(0, 0), (500_000, 999_999), (300_000, 0), (300_000, 10), (900_000, 950_000),
             (2 * R, R - 1), (2 * R + 1, 0), (-R, 5), (450_000, 449_999), (1, 1)]  # fmt: skip
    keys = []
    for i, (offset, lag) in enumerate(shape):
        key = await aw(st.sessions.save(make_session(f"s{i}")))
        sync_client.hset(st.config.keyspace.session(key).session, "la", base + offset)
        sync_client.zadd(st.config.keyspace.index_all, {key: base + offset - lag})
        keys.append(key)
    activity = [(base + offset, key) for (offset, _), key in zip(shape, keys, strict=True)]
    expected = [key for _, key in sorted(activity, reverse=True)]
    assert [s.generate_session_key() for s in (await aw(st.sessions.list())).items] == expected
    for size in (1, 2, 3, 4, 9, 10, 11):
        seen, cursor = [], None
        while True:
            page = await aw(st.sessions.list(limit=size, cursor=cursor))
            seen += [s.generate_session_key() for s in page.items]
            assert len(page.items) <= size
            cursor = page.cursor
            if cursor is None:
                break
        assert seen == expected, size
