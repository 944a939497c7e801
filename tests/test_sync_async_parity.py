"""The sync and async APIs are twins: same public names, same signatures, async = coroutines.

As httpcore checks its sync side against its async side. The only renamed pairs are the
context-manager methods. Both stores have ``close`` and ``aclose``: on the sync store
``aclose`` is the awaitable twin of its blocking ``close``; on the async store both are
awaitable (``BOTH_AWAITABLE``), so either name works in either kind of code.
"""

from __future__ import annotations

import inspect
import types

import pytest

from convstore import AsyncConversationStore, ConversationStore
from convstore.async_repositories import AsyncMessageRepository, AsyncSessionRepository
from convstore.follow import AsyncFollower, Follower
from convstore.inbox import AsyncInbox, AsyncInboxDelivery, Inbox, InboxDelivery
from convstore.inboxes import AsyncInboxRepository, InboxRepository
from convstore.repositories import MessageRepository, SessionRepository

PAIRS = [
    (ConversationStore, AsyncConversationStore),
    (SessionRepository, AsyncSessionRepository),
    (MessageRepository, AsyncMessageRepository),
    (InboxRepository, AsyncInboxRepository),
    (Inbox, AsyncInbox),
    (InboxDelivery, AsyncInboxDelivery),
    (Follower, AsyncFollower),
]
#: Methods that hand back an iterator: a plain function on both sides (the async one
#: returns an async iterator, used with ``async for``).
ITERATORS = {"follow", "inbox", "consume"}
RENAMED = {"__enter__": "__aenter__", "__exit__": "__aexit__"}
#: Awaitable on both stores (the sync store's blocking close is ``close``).
BOTH_AWAITABLE = {"aclose"}


def public(cls: type) -> dict[str, object]:
    names = {n for n in dir(cls) if not n.startswith("_")} | (set(RENAMED) & set(dir(cls)))
    names |= set(RENAMED.values()) & set(dir(cls))
    return {n: inspect.getattr_static(cls, n) for n in names}


def _signature(member: object) -> inspect.Signature:
    target = member.__func__ if isinstance(member, classmethod | staticmethod) else member
    sig = inspect.signature(target)  # type: ignore[arg-type]
    return sig.replace(return_annotation=inspect.Signature.empty)


@pytest.mark.parametrize(("sync", "aio"), PAIRS, ids=[s.__name__ for s, _ in PAIRS])
def test_same_public_names(sync: type, aio: type) -> None:
    sync_names = {RENAMED.get(n, n) for n in public(sync)}
    assert sync_names == set(public(aio))


@pytest.mark.parametrize(("sync", "aio"), PAIRS, ids=[s.__name__ for s, _ in PAIRS])
def test_same_signatures_and_async_methods_are_coroutines(sync: type, aio: type) -> None:
    aio_members = public(aio)
    for name, member in public(sync).items():
        twin = aio_members[RENAMED.get(name, name)]
        assert type(member) is type(twin), name  # property/classmethod/function alike
        if isinstance(member, property | types.MemberDescriptorType):
            continue  # attributes: same kind on both sides is all there is to check
        assert _signature(member) == _signature(twin), name
        if inspect.isfunction(member) and name in ITERATORS:
            assert not inspect.iscoroutinefunction(twin), f"async {name} must return an iterator"
        elif inspect.isfunction(member) and name not in ("__init__",):
            if name in BOTH_AWAITABLE:
                assert inspect.iscoroutinefunction(member), f"sync {name} is not awaitable"
            else:
                assert not inspect.iscoroutinefunction(member), f"sync {name} is a coroutine"
            assert inspect.iscoroutinefunction(twin), f"async {name} is not a coroutine"


def test_both_stores_close_both_ways() -> None:
    for cls in (ConversationStore, AsyncConversationStore, Inbox, AsyncInbox, Follower):
        assert {"close", "aclose"} <= set(public(cls)), cls.__name__


def test_the_comparison_sees_the_main_methods() -> None:
    """Guard against public() finding nothing (which would make the checks above vacuous)."""
    sync_store_methods = set(public(SessionRepository)) | set(public(MessageRepository))
    assert {"create", "save", "get", "list", "append", "history", "page"} <= sync_store_methods
    assert "follow" in public(MessageRepository) and "inbox" in public(ConversationStore)
    assert {"ack", "reject"} <= set(public(InboxDelivery))
