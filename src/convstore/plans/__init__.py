"""Every store operation, once, as a sans-IO plan.

A plan is a generator: it validates and encodes its input, yields the Redis
steps it needs (:class:`Call`, :class:`Batch`, :class:`Run`), receives their
raw replies, and returns the decoded result or raises a typed error. It does no
I/O itself, so the sync and the async store drive the very same plans
(``drivers.py``) and nothing is written twice.

Modules: ``steps`` (what a plan yields), ``config`` (store configuration),
``results`` (return types), ``values`` (time and reply conversions), ``indexes``
(the session indexes), ``sessions`` and ``messages`` (the plans themselves), ``server``
(what the server is and can do), ``grouping`` (several sessions' appends as one grouped
script call, for the asyncio driver's coalesced round trips).
"""

from convstore.plans.append import append_messages, new_message_ids
from convstore.plans.config import Limits, Retention, StoreConfig, seconds_to_ms
from convstore.plans.damage import OnError
from convstore.plans.listing import list_sessions
from convstore.plans.messages import (
    agent_messages,
    clear,
    count,
    delete_message,
    history,
    page,
    read_messages,
)
from convstore.plans.results import (
    AppendResult,
    HistoryPage,
    Records,
    SessionPage,
    StoredMessage,
)
from convstore.plans.server import ServerInfo, server_info
from convstore.plans.sessions import (
    create_session,
    delete_session,
    get_session,
    ping,
    save_session,
    session_exists,
    set_retention,
    touch_session,
)
from convstore.plans.steps import Batch, Call, Plan, Run, Step
from convstore.plans.values import as_text, epoch_micros, from_epoch_micros, ms_bound

__all__ = [
    "AppendResult",
    "Batch",
    "Call",
    "HistoryPage",
    "Limits",
    "OnError",
    "Plan",
    "Records",
    "Retention",
    "Run",
    "ServerInfo",
    "SessionPage",
    "Step",
    "StoreConfig",
    "StoredMessage",
    "agent_messages",
    "append_messages",
    "as_text",
    "clear",
    "count",
    "create_session",
    "delete_message",
    "delete_session",
    "epoch_micros",
    "from_epoch_micros",
    "get_session",
    "history",
    "list_sessions",
    "ms_bound",
    "new_message_ids",
    "page",
    "ping",
    "read_messages",
    "save_session",
    "seconds_to_ms",
    "server_info",
    "session_exists",
    "set_retention",
    "touch_session",
]
