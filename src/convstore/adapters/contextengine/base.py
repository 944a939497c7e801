"""Construction, live settings and plumbing shared by every ContextEngineStore method group."""

from __future__ import annotations

import enum
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import redis.asyncio

from convstore import connections
from convstore.errors import ConvstoreError, StoreUnavailable, ValidationError
from convstore.plans import Plan, Retention, StoreConfig, seconds_to_ms
from convstore.plans import contextengine as cep
from convstore.policies import DEFAULT_RETRY, RetryPolicy
from convstore.store import DEFAULT_NAMESPACE, AsyncConversationStore
from convstore.validation import optional_positive_int, optional_seconds

__all__ = [
    "DEFAULT_CHECKPOINT_TTL",
    "DEFAULT_CONVERSATION_LIMIT",
    "DEFAULT_SESSION_TTL",
    "ENGINE_ID",
    "FROM_STORE",
    "EngineBase",
    "FromStore",
    "Summarizer",
]

#: participant_id of the master controller in every ContextEngine session record.
ENGINE_ID = "context_engine"

#: The reference's defaults (``session_ttl``, ``conversation_limit``, ``checkpoint_ttl``).
DEFAULT_SESSION_TTL = 86_400.0
DEFAULT_CONVERSATION_LIMIT = 1000
DEFAULT_CHECKPOINT_TTL = 604_800.0

#: ``async summarizer(messages) -> summary text``: the messages are ContextEngine dicts.
Summarizer = Callable[[Sequence[dict[str, Any]]], Awaitable[str]]


class FromStore(enum.Enum):
    FROM_STORE = "from_store"


#: Default of ``conversation_limit``/``session_ttl``: the reference's value when the engine
#: builds its store, the passed store's own retention when you pass one.
FROM_STORE = FromStore.FROM_STORE


def _env_client() -> Any:
    """The reference's configuration: REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_PASSWORD."""
    try:
        port = int(os.environ.get("REDIS_PORT", "6379"))
        db = int(os.environ.get("REDIS_DB", "0"))
    except ValueError as exc:
        raise ValidationError(
            f"REDIS_PORT and REDIS_DB must be integers: {exc}", field="env"
        ) from None
    return redis.asyncio.Redis(
        host=os.environ.get("REDIS_HOST", "localhost"),
        port=port,
        db=db,
        password=os.environ.get("REDIS_PASSWORD") or None,
        **connections.DEFAULT_CLIENT_OPTIONS,
    )


@dataclass
class Counters:
    """The reference's per-process counters (``get_metrics``)."""

    total_sessions: int = 0
    total_messages: int = 0
    total_checkpoints: int = 0


class EngineBase:
    """Holds the store and the settings aiecs reads and writes as plain attributes.

    ``conversation_limit`` (newest N kept; None = all), ``session_ttl`` and
    ``checkpoint_ttl`` (sliding, seconds; None = never expire) take effect on the next
    call when set after construction, the way aiecs configures an engine.
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
        socket_timeout: float | None = connections.DEFAULT_CLIENT_OPTIONS["socket_timeout"],
        socket_connect_timeout: float | None = connections.DEFAULT_CLIENT_OPTIONS[
            "socket_connect_timeout"
        ],
        retry: RetryPolicy | None = DEFAULT_RETRY,
    ) -> None:
        given = [
            n for n, v in (("store", store), ("url", url), ("client", client)) if v is not None
        ]
        if len(given) > 1:
            raise ValidationError(
                f"pass only one of store, url and client (got {given})", field="store"
            )
        self._owns_client = store is None and client is None
        if store is not None:
            if not isinstance(store, AsyncConversationStore):
                raise ValidationError(
                    f"store must be an AsyncConversationStore, got {type(store).__name__}",
                    field="store",
                )
            self.store = store
        else:
            url = url or os.environ.get("REDIS_URL") or None
            if client is not None:
                self.store = AsyncConversationStore(client, namespace=namespace, retry=retry)
            elif url is not None:
                self.store = AsyncConversationStore.from_url(
                    url,
                    namespace=namespace,
                    retry=retry,
                    socket_timeout=socket_timeout,
                    socket_connect_timeout=socket_connect_timeout,
                )
            else:
                self.store = AsyncConversationStore(_env_client(), namespace=namespace, retry=retry)
        inherited = self.store.config.retention
        if conversation_limit is FROM_STORE:
            conversation_limit = (
                DEFAULT_CONVERSATION_LIMIT if store is None else inherited.max_messages
            )
        if session_ttl is FROM_STORE:
            session_ttl = (
                DEFAULT_SESSION_TTL if store is None else optional_seconds(inherited.ttl, "ttl")
            )
        self._settings: dict[str, Any] = {}
        self.conversation_limit = conversation_limit
        self.session_ttl = session_ttl
        self.checkpoint_ttl = checkpoint_ttl
        self._counters = Counters()
        self._initialized = False

    # ----------------------------------------------------------------- live settings

    @property
    def conversation_limit(self) -> int | None:
        """Messages kept per conversation (the newest); None keeps everything."""
        value: int | None = self._settings["conversation_limit"]
        return value

    @conversation_limit.setter
    def conversation_limit(self, value: int | None) -> None:
        self._settings["conversation_limit"] = optional_positive_int(value, "conversation_limit")
        self._rebuild()

    @property
    def session_ttl(self) -> float | None:
        """Sliding expiry of a session and everything of it, in seconds; None = never."""
        value: float | None = self._settings["session_ttl"]
        return value

    @session_ttl.setter
    def session_ttl(self, value: float | None) -> None:
        seconds_to_ms(value, "session_ttl")
        self._settings["session_ttl"] = value
        self._rebuild()

    @property
    def checkpoint_ttl(self) -> float | None:
        """Expiry of checkpoints of a thread that is no session, in seconds; None = never."""
        value: float | None = self._settings["checkpoint_ttl"]
        return value

    @checkpoint_ttl.setter
    def checkpoint_ttl(self, value: float | None) -> None:
        self._settings["checkpoint_ttl_ms"] = seconds_to_ms(value, "checkpoint_ttl")
        self._settings["checkpoint_ttl"] = value

    def _rebuild(self) -> None:
        if {"conversation_limit", "session_ttl"} <= self._settings.keys():
            retention = Retention(
                self._settings["conversation_limit"],
                self.store.config.retention.max_age,
                self._settings["session_ttl"],
            )
            self._settings["config"] = replace(self.store.config, retention=retention)

    @property
    def config(self) -> StoreConfig:
        """The store's configuration with this engine's current retention."""
        config: StoreConfig = self._settings["config"]
        return config

    @property
    def session_ttl_ms(self) -> int:
        return seconds_to_ms(self.session_ttl, "session_ttl")

    @property
    def checkpoint_ttl_ms(self) -> int:
        value: int = self._settings["checkpoint_ttl_ms"]
        return value

    # ----------------------------------------------------------------- plumbing

    @property
    def client(self) -> Any:
        return self.store.client

    async def _run(self, plan: Plan[Any]) -> Any:
        """Run a plan through the store's own driver (same scripts, same coalescing)."""
        return await self.store.driver.run(plan)

    async def _call(self, *command: Any) -> Any:
        return await self._run(cep.call(command))

    # ----------------------------------------------------------------- lifecycle

    async def initialize(self) -> bool:
        """Check the connection: True, or :class:`StoreUnavailable` (never a memory fallback)."""
        try:
            await self.store.ping()
        except Exception as exc:
            if isinstance(exc, ConvstoreError):
                raise
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        self._initialized = True
        return True

    async def close(self) -> None:
        """Close the client if this object created it; a client or store you passed stays open."""
        if self._owns_client:
            await self.store.aclose()
        self._initialized = False


Require = Literal["session", "record"]
