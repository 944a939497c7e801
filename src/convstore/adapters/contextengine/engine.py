"""``ContextEngineStore``: aiecs's ContextEngine method set on convstore.

Storage. A ContextEngine session ``S`` is a convstore session under key ``S``: its
messages are the session's stream, its SessionMetrics live as ``ce:*`` fields of the
session hash (see ``lua.py``), and its checkpoints, writes and task context use the
session's reserved keys, so everything of one session shares one hash tag, expires
together and is removed by ``sessions.delete``. Every write is one Lua script.

Where the reference is buggy this class does what its documentation intends: ``limit`` is
the newest N, oldest first; the retention cap keeps the newest messages; message-type
filters run before the limit; compaction never deletes a message; ``store_task_context``
returns True; failures raise typed convstore errors and nothing ever falls back to
process memory; nothing is written to the working directory.
"""

from __future__ import annotations

from typing import Any, Literal

from convstore import connections
from convstore.adapters.contextengine.base import (
    DEFAULT_CHECKPOINT_TTL,
    FROM_STORE,
    FromStore,
    Summarizer,
)
from convstore.adapters.contextengine.conversation import ConversationMethods
from convstore.adapters.contextengine.maintenance import MaintenanceMethods
from convstore.policies import DEFAULT_RETRY, RetryPolicy
from convstore.store import DEFAULT_NAMESPACE, AsyncConversationStore

__all__ = ["ContextEngineStore"]


class ContextEngineStore(MaintenanceMethods, ConversationMethods):
    """The ContextEngine method set on convstore. Pass it where a ContextEngine goes.

    Give it one of: ``store`` (an :class:`AsyncConversationStore`), ``url``
    (``redis://``, ``rediss://``, ``unix://``, credentials included) or ``client`` (a
    ``redis.asyncio`` client with ``decode_responses=False``). With none of them it reads
    ``REDIS_URL``, else the reference's ``REDIS_HOST``/``REDIS_PORT``/``REDIS_DB``/
    ``REDIS_PASSWORD``.

    ``conversation_limit`` (newest N kept) and ``session_ttl`` (sliding, seconds) default
    to the reference's 1000 and 24 h, or to the passed store's own retention; None means
    no limit. ``checkpoint_ttl`` applies to checkpoints of threads that are no session.
    All three, and the compression attributes, can be set after construction.

    Compression: ``compression_config`` (a :class:`CompressionConfig` or aiecs's),
    ``compression_policy`` (aiecs's token-based policy), ``compress_on_append``,
    ``compression_summary_role``, and for summaries either ``summarizer`` (``async
    (messages) -> str``) or aiecs's ``llm_client`` (its ``generate_text`` is called).
    ``retry`` is the store's retry policy when the engine builds its store.
    """

    def __init__(
        self,
        store: AsyncConversationStore | None = None,
        *,
        url: str | None = None,
        client: Any = None,
        namespace: str = DEFAULT_NAMESPACE,
        conversation_limit: int | FromStore | None = FROM_STORE,
        session_ttl: float | FromStore | None = FROM_STORE,
        checkpoint_ttl: float | None = DEFAULT_CHECKPOINT_TTL,
        compression_config: Any = None,
        compression_policy: Any = None,
        compress_on_append: bool = False,
        compression_summary_role: Literal["user", "system"] | None = None,
        llm_client: Any = None,
        summarizer: Summarizer | None = None,
        socket_timeout: float | None = connections.DEFAULT_CLIENT_OPTIONS["socket_timeout"],
        socket_connect_timeout: float | None = connections.DEFAULT_CLIENT_OPTIONS[
            "socket_connect_timeout"
        ],
        retry: RetryPolicy | None = DEFAULT_RETRY,
    ) -> None:
        super().__init__(
            store,
            url=url,
            client=client,
            namespace=namespace,
            conversation_limit=conversation_limit,
            session_ttl=session_ttl,
            checkpoint_ttl=checkpoint_ttl,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            retry=retry,
        )
        self.configure_compression(
            compression_config=compression_config,
            compression_policy=compression_policy,
            compress_on_append=compress_on_append,
            compression_summary_role=compression_summary_role,
            llm_client=llm_client,
            summarizer=summarizer,
        )
