"""A drop-in storage backend for aiecs's ContextEngine, and a permanent-backend adapter.

:class:`ContextEngineStore` exposes the ContextEngine method set (aiecs 2.2.0) with the
same names, signatures and return shapes, backed by :class:`AsyncConversationStore`.
:class:`PermanentBackend` implements aiecs's ``IPermanentStorageBackend`` so a stock
ContextEngine can dual-write everything into convstore.

Storage. A ContextEngine session ``S`` is a convstore ``user_to_mc`` session (key ``S``)
with two participants: the user and the master controller :data:`ENGINE_ID`. Its
messages go to the session's stream. The SessionMetrics counters live as extra fields of
the session hash (``ce``, ``ce:rq``, ``ce:er``, ``ce:pt``, ``ce:st``); ``created_at`` and
``user_id`` come from the session record and ``last_activity`` from the store's own
activity stamp. Checkpoints, checkpoint writes and the task context use the session's
reserved ``checkpoints``/``writes``/``task`` keys, so everything of one session shares one
hash tag, expires together and is removed by ``sessions.delete``. Every write is one Lua
script (atomic, one round trip).

Where the reference is buggy this class does what its documentation intends: ``limit`` is
the newest N, oldest first; the retention cap keeps the newest messages; message-type
filters run before the limit; ``store_task_context`` returns True; failures raise typed
convstore errors and nothing ever falls back to process memory; nothing is written to the
working directory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio

from convstore import codec, connections, lua
from convstore.errors import (
    CodecError,
    ConvstoreError,
    SessionNotFound,
    StoreUnavailable,
    ValidationError,
)
from convstore.keys import SessionKeys
from convstore.migration import migrate_participant_dict
from convstore.models import (
    AgentCommunicationMessage,
    ConversationParticipant,
    ConversationSession,
    to_utc,
    utc_now,
)
from convstore.plans import (
    Batch,
    Call,
    Run,
    as_text,
    epoch_micros,
    from_epoch_micros,
    seconds_to_ms,
)
from convstore.store import DEFAULT_NAMESPACE, AsyncConversationStore

__all__ = [
    "ENGINE_ID",
    "ContextEngineStore",
    "PermanentBackend",
    "naive_iso",
    "register_with_aiecs",
]

logger = logging.getLogger("convstore.contextengine")

#: participant_id of the master controller in every ContextEngine session.
ENGINE_ID = "context_engine"

#: The reference's defaults (``session_ttl``, ``conversation_limit``, ``checkpoint_ttl``).
DEFAULT_SESSION_TTL = 86_400.0
DEFAULT_CONVERSATION_LIMIT = 1000
DEFAULT_CHECKPOINT_TTL = 604_800.0

_SESSION_FIELDS = (
    "session_id",
    "user_id",
    "created_at",
    "last_activity",
    "request_count",
    "error_count",
    "total_processing_time",
    "status",
)
_KIND_SESSION, _KIND_CONVERSATION = "session", "conversation"
_CHECKPOINTS, _WRITES, _TASK = 4, 5, 6  # positions in SessionKeys.all() (1-based, as in Lua)

Plan = Generator[Call | Run | Batch, Any, Any]


# --------------------------------------------------------------------------- helpers


def naive_iso(moment: datetime) -> str:
    """ISO text of ``moment`` in UTC without an offset, as ContextEngine stores timestamps."""
    return to_utc(moment).replace(tzinfo=None).isoformat()


def _require_str(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{field} must be a non-empty string", field=field)
    return value


def _metadata(value: object, field: str = "metadata") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"{field} must be a dict, got {type(value).__name__}", field=field)
    data = dict(value)
    codec.check_storable(data, field)
    return data


def _count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{field} must be a non-negative integer", field=field)
    return value


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValidationError(f"{field} must be a non-negative number", field=field)
    return float(value)


def _limit(value: object, field: str = "limit") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{field} must be a non-negative integer (0 = all)", field=field)
    return value


def _escape(part: str) -> str:
    return part.replace("%", "%25").replace(":", "%3A")


def _writes_field(checkpoint_id: str, task_id: str) -> str:
    """``checkpoint_id:task_id`` made injective (``:`` and ``%`` escaped in both parts)."""
    return f"{_escape(checkpoint_id)}:{_escape(task_id)}"


def participant_from_dict(data: Mapping[str, Any]) -> ConversationParticipant:
    """A participant from either form: ``{id, type, role, metadata}`` or ``{participant_id, ...}``."""
    return ConversationParticipant.from_dict(migrate_participant_dict(data))


def _entry_out(entry: dict[str, Any]) -> dict[str, Any]:
    """A store history entry with its timestamp as naive UTC ISO text (the reference's form)."""
    return {
        "role": entry["role"],
        "content": entry["content"],
        "timestamp": naive_iso(datetime.fromisoformat(entry["timestamp"])),
        "metadata": entry["metadata"],
    }


# --------------------------------------------------------------------------- Lua


#: Write SessionMetrics fields of an existing session, optionally bumping its activity.
#: ARGV[5] kind marker ("" = leave it), [6] "1" to bump activity to NOW, [7] explicit last activity (µs or
#: ""), [8] request_count increment, [9] error_count increment, [10] processing-time
#: increment, then (field, value) pairs to set. Reply {-1} or {1, la, idx}.
CE_UPDATE = lua.script(
    "ce_update",
    r"""
if redis.call('HEXISTS', H, 'rec') == 0 then return {-1} end
if ARGV[5] ~= '' then redis.call('HSET', H, 'ce', ARGV[5]) end
for i = 11, #ARGV, 2 do redis.call('HSET', H, ARGV[i], ARGV[i + 1]) end
if tonumber(ARGV[8]) ~= 0 then redis.call('HINCRBY', H, 'ce:rq', ARGV[8]) end
if tonumber(ARGV[9]) ~= 0 then redis.call('HINCRBY', H, 'ce:er', ARGV[9]) end
if tonumber(ARGV[10]) ~= 0 then redis.call('HINCRBYFLOAT', H, 'ce:pt', ARGV[10]) end
local la = redis.call('HGET', H, 'la')
local gt = true
if ARGV[7] ~= '' then
  la, gt = ARGV[7], false
  redis.call('HSET', H, 'la', la)
elseif ARGV[6] == '1' and ((not la) or tonumber(NOW) > tonumber(la)) then
  la = NOW
  redis.call('HSET', H, 'la', la)
end
local idx = redis.call('HGET', H, 'idx') or ''
if INLINE and la then
  for _, k in ipairs(split(idx)) do
    if gt then redis.call('ZADD', k, 'GT', la, MEMBER) else redis.call('ZADD', k, la, MEMBER) end
  end
end
refresh_ttl(redis.call('HGET', H, 'ttl'))
return {1, la or '0', idx}
""",
)

#: Put one value into the checkpoints/writes hash or the task string of a key's hash tag.
#: ARGV[5] which key (4, 5 or 6), [6] hash field (unused for the task), [7] value,
#: [8] TTL in ms when no session owns the key ("0" = none), [9] "1" = only if absent.
#: The key follows its session's TTL when the session exists. Reply 1 written, 0 present.
CE_PUT = lua.script(
    "ce_put",
    r"""
local key, field, value = KEYS[tonumber(ARGV[5])], ARGV[6], ARGV[7]
local nx = ARGV[9] == '1'
if ARGV[5] == '6' then
  if nx and redis.call('EXISTS', key) == 1 then return 0 end
  redis.call('SET', key, value)
else
  if nx and redis.call('HEXISTS', key, field) == 1 then return 0 end
  redis.call('HSET', key, field, value)
end
if redis.call('EXISTS', H) == 1 then
  local t = redis.call('PTTL', H)
  if t > 0 then redis.call('PEXPIRE', key, t) else redis.call('PERSIST', key) end
elseif tonumber(ARGV[8]) > 0 then
  redis.call('PEXPIRE', key, ARGV[8])
end
return 1
""",
)


# --------------------------------------------------------------------------- aiecs registration


def register_with_aiecs() -> bool:
    """Register the adapters as virtual subclasses of aiecs's storage ABCs, if aiecs imports.

    Called once at import; call it again after importing aiecs later. Returns whether the
    registration happened. aiecs is never required.
    """
    try:
        from aiecs.core.interface import storage_interface as si  # type: ignore[import-not-found]
    except ImportError:
        return False
    except Exception as exc:  # noqa: BLE001 - a broken aiecs install must not break convstore
        logger.debug("aiecs is installed but could not be imported: %s", exc)
        return False
    si.IStorageBackend.register(ContextEngineStore)
    si.ICheckpointerBackend.register(ContextEngineStore)
    si.IPermanentStorageBackend.register(PermanentBackend)
    return True


# --------------------------------------------------------------------------- the store


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
class _Counters:
    total_sessions: int = 0
    total_messages: int = 0
    total_checkpoints: int = 0


class ContextEngineStore:
    """The ContextEngine method set on convstore. Pass it where a ContextEngine goes.

    Give it one of: ``store`` (an :class:`AsyncConversationStore`), ``url``
    (``redis://``, ``rediss://``, ``unix://``, credentials included) or ``client`` (a
    ``redis.asyncio`` client with ``decode_responses=False``). With none of them it reads
    ``REDIS_URL``, else the reference's ``REDIS_HOST``/``REDIS_PORT``/``REDIS_DB``/
    ``REDIS_PASSWORD``. When it builds the store itself, ``conversation_limit`` (newest N
    kept) and ``session_ttl`` (sliding, seconds) become its retention; a store you pass
    keeps its own. ``checkpoint_ttl`` applies to checkpoints of threads that are no session.
    """

    def __init__(
        self,
        store: AsyncConversationStore | None = None,
        *,
        url: str | None = None,
        client: Any = None,
        namespace: str = DEFAULT_NAMESPACE,
        conversation_limit: int | None = DEFAULT_CONVERSATION_LIMIT,
        session_ttl: float | None = DEFAULT_SESSION_TTL,
        checkpoint_ttl: float | None = DEFAULT_CHECKPOINT_TTL,
        **client_options: Any,
    ) -> None:
        given = [
            name
            for name, value in (("store", store), ("url", url), ("client", client))
            if value is not None
        ]
        if len(given) > 1:
            raise ValidationError(
                f"pass only one of store, url and client (got {given})", field="store"
            )
        self.session_ttl = session_ttl
        self.conversation_limit = conversation_limit
        self.checkpoint_ttl = checkpoint_ttl
        self._checkpoint_ttl_ms = seconds_to_ms(checkpoint_ttl, "checkpoint_ttl")
        self._session_ttl_ms = seconds_to_ms(session_ttl, "session_ttl")
        retention: dict[str, Any] = {"max_messages": conversation_limit, "ttl": session_ttl}
        self._owns_client = store is None
        if store is not None:
            if not isinstance(store, AsyncConversationStore):
                raise ValidationError(
                    f"store must be an AsyncConversationStore, got {type(store).__name__}",
                    field="store",
                )
            self.store = store
        elif url is not None:
            self.store = AsyncConversationStore.from_url(
                url, namespace=namespace, **retention, **client_options
            )
        elif client is not None:
            self.store = AsyncConversationStore(client, namespace=namespace, **retention)
            self._owns_client = False
        elif os.environ.get("REDIS_URL"):
            self.store = AsyncConversationStore.from_url(
                os.environ["REDIS_URL"], namespace=namespace, **retention, **client_options
            )
        else:
            self.store = AsyncConversationStore(_env_client(), namespace=namespace, **retention)
        self._driver = self.store.driver  # shared: same script cache, same coalescing
        self._counters = _Counters()
        self._initialized = False

    # ----------------------------------------------------------------- plumbing

    @property
    def client(self) -> Any:
        return self.store.client

    def _keys(self, key: str) -> tuple[SessionKeys, tuple[str, str, str, str]]:
        return self.store.config.common(key)

    async def _run(self, plan: Plan) -> Any:
        return await self._driver.run(plan)

    def _sync_indexes(self, key: str, reply: Sequence[Any]) -> Plan:
        """On Redis Cluster the session indexes live in other slots: update them here."""
        if self.store.config.cluster and reply[1] not in (b"0", "0", 0):
            calls = [Call(("ZADD", k, reply[1], key)) for k in as_text(reply[2]).split("\n") if k]
            if calls:
                yield Batch(tuple(calls))

    def _update_plan(
        self,
        key: str,
        kind: str,
        *,
        bump: bool,
        last_activity: datetime | None = None,
        incr_requests: int = 0,
        incr_errors: int = 0,
        add_time: float = 0.0,
        fields: Mapping[str, str] | None = None,
    ) -> Plan:
        keys, common = self._keys(key)
        args: list[Any] = [
            *common,
            kind,
            "1" if bump else "0",
            ""
            if last_activity is None
            else str(epoch_micros(to_utc(last_activity, "last_activity"))),
            str(incr_requests),
            str(incr_errors),
            repr(float(add_time)),
        ]
        for name, value in (fields or {}).items():
            args += [name, value]
        reply = yield Run(CE_UPDATE, keys.all(), tuple(args))
        if int(reply[0]) == -1:
            return False
        yield from self._sync_indexes(key, reply)
        return True

    def _put_plan(
        self, key: str, slot: int, field: str, value: bytes, ttl_ms: int, nx: bool
    ) -> Plan:
        keys, common = self._keys(key)
        reply = yield Run(
            CE_PUT, keys.all(), (*common, str(slot), field, value, str(ttl_ms), "1" if nx else "0")
        )
        return bool(int(reply))

    def _read_plan(self, command: tuple[Any, ...]) -> Plan:
        return (yield Call(command))

    async def _call(self, *command: Any) -> Any:
        return await self._run(self._read_plan(command))

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

    # ----------------------------------------------------------------- sessions

    async def create_session(
        self, session_id: str, user_id: str, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Create (or, like the reference, silently reset) a session; returns the SessionMetrics dict."""
        data = await self._create_session(session_id, user_id, metadata, None, None)
        self._counters.total_sessions += 1
        return data

    async def _create_session(
        self,
        session_id: str,
        user_id: str,
        metadata: Mapping[str, Any] | None,
        created_at: datetime | None,
        metrics: Mapping[str, Any] | None,
        *,
        task_context: bool = True,
    ) -> dict[str, Any]:
        _require_str(session_id, "session_id")
        _require_str(user_id, "user_id")
        meta = _metadata(metadata)
        now = utc_now() if created_at is None else to_utc(created_at, "created_at")
        session = ConversationSession(
            session_id,
            [
                ConversationParticipant(user_id, "user"),
                ConversationParticipant(ENGINE_ID, "master_controller"),
            ],
            "user_to_mc",
            now,
            now,
            meta,
        )
        fields = {"ce:rq": "0", "ce:er": "0", "ce:pt": "0", "ce:st": "active"}
        last_activity = None
        if metrics is not None:
            fields = {
                "ce:rq": str(_count(metrics.get("request_count", 0), "request_count")),
                "ce:er": str(_count(metrics.get("error_count", 0), "error_count")),
                "ce:pt": repr(
                    _number(metrics.get("total_processing_time", 0.0), "total_processing_time")
                ),
                "ce:st": _require_str(metrics.get("status", "active"), "status"),
            }
            if metrics.get("last_activity") is not None:
                last_activity = to_utc(metrics["last_activity"], "last_activity")
        task = None
        if task_context:
            task = codec.packb(
                {
                    "v": codec.WIRE_VERSION,
                    "k": "task_context",
                    "data": {
                        "user_id": user_id,
                        "chat_id": session_id,
                        "metadata": meta,
                        "context_history": [],
                        "file_tracker": {},
                        "model_tracker": {},
                    },
                }
            )
        key = await self.store.sessions.save(session, force=True)
        await self._run(
            self._update_plan(
                key, _KIND_SESSION, bump=False, last_activity=last_activity, fields=fields
            )
        )
        if task is not None:
            await self._run(self._put_plan(key, _TASK, "", task, self._session_ttl_ms, False))
        found = await self.get_session(session_id)
        if found is None:  # deleted concurrently between the two writes
            raise SessionNotFound(session_id)
        return found

    async def get_session(self, session_id: str) -> dict[str, Any] | None:
        """The SessionMetrics dict (exactly its eight keys, naive ISO timestamps) or None."""
        _require_str(session_id, "session_id")
        fields = await self._call(
            "HMGET",
            self._keys(session_id)[0].session,
            "rec",
            "la",
            "ce:rq",
            "ce:er",
            "ce:pt",
            "ce:st",
        )
        record, la, rq, er, pt, st = fields
        if record is None:
            return None
        session = codec.decode_session(record)
        if str(session.session_type) != "user_to_mc":
            return None
        user = session.get_participant_by_type_and_role("user")
        last = from_epoch_micros(la) if la is not None else session.last_activity
        return {
            "session_id": session_id,
            "user_id": user.participant_id if user is not None else "",
            "created_at": naive_iso(session.created_at),
            "last_activity": naive_iso(last),
            "request_count": int(rq or 0),
            "error_count": int(er or 0),
            "total_processing_time": float(pt or 0.0),
            "status": as_text(st) if st is not None else "active",
        }

    async def update_session(
        self,
        session_id: str,
        updates: dict[str, Any] | None = None,
        increment_requests: bool = False,
        add_processing_time: float = 0.0,
        mark_error: bool = False,
    ) -> bool:
        """Atomically apply ``updates`` (SessionMetrics fields; unknown keys are ignored, like
        the reference) and the increments, and mark activity now. False if there is no session."""
        _require_str(session_id, "session_id")
        add = _number(add_processing_time, "add_processing_time")
        fields: dict[str, str] = {}
        last_activity: datetime | None = None
        updates = dict(updates or {})
        if "session_id" in updates and updates["session_id"] != session_id:
            raise ValidationError(
                "a session cannot be renamed through update_session", field="session_id"
            )
        for name, value in updates.items():
            if name == "request_count":
                fields["ce:rq"] = str(_count(value, name))
            elif name == "error_count":
                fields["ce:er"] = str(_count(value, name))
            elif name == "total_processing_time":
                fields["ce:pt"] = repr(_number(value, name))
            elif name == "status":
                fields["ce:st"] = _require_str(value, name)
            elif name == "last_activity":
                last_activity = to_utc(value, name)
        if "user_id" in updates or "created_at" in updates:
            if not await self._rewrite_record(
                session_id, updates.get("user_id"), updates.get("created_at")
            ):
                return False
        result: bool = await self._run(
            self._update_plan(
                session_id,
                _KIND_SESSION,
                bump=True,
                last_activity=last_activity,
                incr_requests=1 if increment_requests else 0,
                incr_errors=1 if mark_error else 0,
                add_time=add,
                fields=fields,
            )
        )
        return result

    async def _rewrite_record(self, session_id: str, user_id: object, created_at: object) -> bool:
        session = await self.store.sessions.get(session_id)
        if session is None or str(session.session_type) != "user_to_mc":
            return False
        if user_id is not None:
            uid = _require_str(user_id, "user_id")
            session.participants = [
                ConversationParticipant(uid, "user") if p.participant_type == "user" else p
                for p in session.participants
            ]
        if created_at is not None:
            session.created_at = to_utc(created_at, "created_at")
        await self.store.sessions.save(session)
        return True

    async def end_session(self, session_id: str, status: str = "completed") -> bool:
        _require_str(status, "status")
        return await self.update_session(session_id, {"status": status})

    # ----------------------------------------------------------------- conversation

    async def add_conversation_message(
        self,
        session_id: str,
        role: str,
        content: str,
        metadata: dict[str, Any] | None = None,
        *,
        strategy: str | tuple[str, ...] | None = None,
    ) -> bool:
        """Append one message atomically (trim, TTL and activity included); True once stored.

        Raises :class:`SessionNotFound` for an unknown session, :class:`CodecError` for
        metadata that cannot be stored (nothing is written then). ``strategy`` is the
        reference's compression strategy; this store does not compress, so it is only checked.
        """
        if strategy is not None and not isinstance(strategy, str | tuple):
            raise ValidationError(
                "strategy must be a str, a tuple of str or None", field="strategy"
            )
        _require_str(session_id, "session_id")
        meta = _metadata(metadata)
        await self.store.messages.append(
            session_id, {"role": role, "content": content, "timestamp": utc_now(), "metadata": meta}
        )
        self._counters.total_messages += 1
        return True

    async def get_conversation_history(
        self, session_id: str, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` messages (0 = all), oldest first, as ``{role, content,
        timestamp, metadata}`` dicts; [] for an unknown session, like the reference."""
        _require_str(session_id, "session_id")
        n = _limit(limit)
        try:
            entries = await self.store.messages.history(session_id, n or None)
        except SessionNotFound:
            return []
        return [_entry_out(e) for e in entries]

    async def create_conversation_session(
        self,
        session_id: str,
        participants: list[dict[str, Any]],
        session_type: str,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Store an agent conversation session; returns its session key.

        Participants may be ``{id, type, role, metadata}`` (the reference's input form) or
        ``{participant_id, participant_type, participant_role, metadata}`` (its stored form).
        """
        if not isinstance(participants, list | tuple):
            raise ValidationError("participants must be a list of dicts", field="participants")
        now = utc_now()
        session = ConversationSession(
            session_id,
            [participant_from_dict(p) for p in participants],
            session_type,
            now,
            now,
            _metadata(metadata),
        )
        key = await self.store.sessions.save(session, force=True)
        await self._run(self._update_plan(key, _KIND_CONVERSATION, bump=False))
        return key

    async def add_agent_communication_message(
        self,
        session_key: str,
        sender_id: str,
        sender_type: str,
        sender_role: str | None,
        recipient_id: str,
        recipient_type: str,
        recipient_role: str | None,
        content: str,
        message_type: str = "communication",
        metadata: dict[str, Any] | None = None,
    ) -> bool:
        """Append an agent message (routing fields in metadata); True once stored."""
        message = AgentCommunicationMessage(
            message_id="",
            session_key=session_key,
            sender_id=sender_id,
            sender_type=sender_type,
            sender_role=sender_role,
            recipient_id=recipient_id,
            recipient_type=recipient_type,
            recipient_role=recipient_role,
            content=content,
            message_type=message_type,
            timestamp=utc_now(),
            metadata=_metadata(metadata),
        )
        await self.store.messages.append(session_key, message)
        self._counters.total_messages += 1
        return True

    async def get_agent_conversation_history(
        self, session_key: str, limit: int = 50, message_types: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` (0 = all) messages *of the given types*, oldest first.

        The filter runs before the limit (the reference filtered the newest ``limit``
        messages, returning fewer than asked). A message without ``message_type`` counts
        as ``"communication"``, as in the reference.
        """
        _require_str(session_key, "session_key")
        n = _limit(limit)
        if message_types is not None:
            if isinstance(message_types, str) or not all(isinstance(t, str) for t in message_types):
                raise ValidationError("message_types must be a list of str", field="message_types")
            if not message_types:
                return []
        wanted = None if message_types is None else set(message_types)
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            try:
                page = await self.store.messages.page(session_key, cursor, 200)
            except SessionNotFound:
                return []
            for entry in reversed(page.items):
                if (
                    wanted is None
                    or entry["metadata"].get("message_type", "communication") in wanted
                ):
                    found.append(entry)
                    if n and len(found) == n:
                        break
            if (n and len(found) == n) or page.cursor is None:
                break
            cursor = page.cursor
        found.reverse()
        return [_entry_out(e) for e in found]

    # ----------------------------------------------------------------- checkpoints

    async def store_checkpoint(
        self,
        thread_id: str,
        checkpoint_id: str,
        checkpoint_data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
    ) -> bool:
        return await self._store_checkpoint(
            thread_id, checkpoint_id, checkpoint_data, metadata, None, False
        )

    async def _store_checkpoint(
        self,
        thread_id: str,
        checkpoint_id: str,
        checkpoint_data: Any,
        metadata: Mapping[str, Any] | None,
        created_at: datetime | None,
        only_if_absent: bool,
    ) -> bool:
        _require_str(thread_id, "thread_id")
        _require_str(checkpoint_id, "checkpoint_id")
        codec.check_storable(checkpoint_data, "checkpoint_data")
        payload = codec.packb(
            {
                "v": codec.WIRE_VERSION,
                "k": "checkpoint",
                "checkpoint_id": checkpoint_id,
                "thread_id": thread_id,
                "data": checkpoint_data,
                "metadata": _metadata(metadata),
                "created_at": utc_now() if created_at is None else to_utc(created_at, "created_at"),
            }
        )
        written: bool = await self._run(
            self._put_plan(
                thread_id,
                _CHECKPOINTS,
                checkpoint_id,
                payload,
                self._checkpoint_ttl_ms,
                only_if_absent,
            )
        )
        if written:
            self._counters.total_checkpoints += 1
        return written or not only_if_absent

    put_checkpoint = store_checkpoint

    @staticmethod
    def _checkpoint_out(raw: bytes) -> dict[str, Any]:
        obj = codec.unpackb(raw, "checkpoint")
        created = obj.get("created_at")
        if not isinstance(created, datetime):
            raise CodecError("stored checkpoint has no created_at")
        return {
            "checkpoint_id": obj.get("checkpoint_id"),
            "thread_id": obj.get("thread_id"),
            "data": obj.get("data"),
            "metadata": obj.get("metadata") or {},
            "created_at": naive_iso(created),
        }

    async def _all_checkpoints(self, thread_id: str) -> list[dict[str, Any]]:
        _require_str(thread_id, "thread_id")
        raw = await self._call("HGETALL", self._keys(thread_id)[0].checkpoints)
        items = raw.values() if isinstance(raw, dict) else raw[1::2]
        found = [self._checkpoint_out(v) for v in items]
        found.sort(key=lambda c: (c["created_at"], c["checkpoint_id"]), reverse=True)
        return found

    async def get_checkpoint(
        self, thread_id: str, checkpoint_id: str | None = None
    ) -> dict[str, Any] | None:
        """One checkpoint, or the latest (by ``created_at``) when no id is given; None if absent."""
        if checkpoint_id is None:
            found = await self._all_checkpoints(thread_id)
            return found[0] if found else None
        _require_str(thread_id, "thread_id")
        _require_str(checkpoint_id, "checkpoint_id")
        raw = await self._call("HGET", self._keys(thread_id)[0].checkpoints, checkpoint_id)
        return None if raw is None else self._checkpoint_out(raw)

    async def list_checkpoints(self, thread_id: str, limit: int = 10) -> list[dict[str, Any]]:
        """Newest first, at most ``limit``."""
        n = _limit(limit)
        return (await self._all_checkpoints(thread_id))[:n]

    async def put_writes(
        self, thread_id: str, checkpoint_id: str, task_id: str, writes_data: list[tuple[Any, ...]]
    ) -> bool:
        return await self._put_writes(thread_id, checkpoint_id, task_id, writes_data, None, False)

    async def _put_writes(
        self,
        thread_id: str,
        checkpoint_id: str,
        task_id: str,
        writes_data: Sequence[Any],
        created_at: datetime | None,
        only_if_absent: bool,
    ) -> bool:
        _require_str(thread_id, "thread_id")
        _require_str(checkpoint_id, "checkpoint_id")
        _require_str(task_id, "task_id")
        if not isinstance(writes_data, list | tuple):
            raise ValidationError("writes_data must be a list of tuples", field="writes_data")
        codec.check_storable(list(writes_data), "writes_data")
        payload = codec.packb(
            {
                "v": codec.WIRE_VERSION,
                "k": "writes",
                "thread_id": thread_id,
                "checkpoint_id": checkpoint_id,
                "task_id": task_id,
                "writes": list(writes_data),
                "created_at": utc_now() if created_at is None else to_utc(created_at, "created_at"),
            }
        )
        field = _writes_field(checkpoint_id, task_id)
        written: bool = await self._run(
            self._put_plan(
                thread_id, _WRITES, field, payload, self._checkpoint_ttl_ms, only_if_absent
            )
        )
        return written or not only_if_absent

    async def get_writes(self, thread_id: str, checkpoint_id: str) -> list[tuple[Any, ...]]:
        """Every write of the checkpoint, as tuples, ordered by task write time then task id."""
        _require_str(thread_id, "thread_id")
        _require_str(checkpoint_id, "checkpoint_id")
        raw = await self._call("HGETALL", self._keys(thread_id)[0].writes)
        pairs = (
            list(raw.items())
            if isinstance(raw, dict)
            else list(zip(raw[::2], raw[1::2], strict=True))
        )
        prefix = _escape(checkpoint_id) + ":"
        batches = []
        for field, value in pairs:
            if not as_text(field).startswith(prefix):
                continue
            obj = codec.unpackb(value, "writes")
            batches.append(
                (obj.get("created_at"), str(obj.get("task_id")), obj.get("writes") or [])
            )
        batches.sort(key=lambda b: (b[0], b[1]))
        return [
            tuple(w) if isinstance(w, list) else (w,) for _, _, writes in batches for w in writes
        ]

    # ----------------------------------------------------------------- task context

    async def get_task_context(self, session_id: str) -> dict[str, Any] | None:
        """The stored task context as a dict (``TaskContext.to_dict()`` form), or None."""
        _require_str(session_id, "session_id")
        raw = await self._call("GET", self._keys(session_id)[0].task)
        if raw is None:
            return None
        data = codec.unpackb(raw, "task_context").get("data")
        if not isinstance(data, dict):
            raise CodecError("stored task context is not a map")
        return data

    async def store_task_context(self, session_id: str, context: Any) -> bool:
        """Store a TaskContext (anything with ``to_dict()``) or a dict; True once stored."""
        return await self._store_task_context(session_id, context, False)

    async def _store_task_context(
        self, session_id: str, context: Any, only_if_absent: bool
    ) -> bool:
        _require_str(session_id, "session_id")
        to_dict = getattr(context, "to_dict", None)
        data = to_dict() if callable(to_dict) else context
        if not isinstance(data, Mapping):
            raise ValidationError(
                f"context must be a dict or have to_dict(), got {type(context).__name__}",
                field="context",
            )
        data = dict(data)
        codec.check_storable(data, "context")
        payload = codec.packb({"v": codec.WIRE_VERSION, "k": "task_context", "data": data})
        written: bool = await self._run(
            self._put_plan(session_id, _TASK, "", payload, self._session_ttl_ms, only_if_absent)
        )
        return written or not only_if_absent

    # ----------------------------------------------------------------- maintenance

    async def _marked_sessions(self, max_score: str) -> list[str]:
        """Session keys in the store's activity index up to ``max_score`` (µs)."""
        rows = await self._call(
            "ZRANGE", self.store.config.keyspace.index_all, "-inf", max_score, "BYSCORE"
        )
        return [as_text(r) for r in rows]

    async def cleanup_expired_sessions(self, max_idle_hours: int = 24) -> int:
        """Delete sessions written through this adapter (ContextEngine sessions and agent
        conversation sessions) idle for more than ``max_idle_hours``, with their messages,
        checkpoints, writes and task context. Returns how many sessions were deleted."""
        hours = _number(max_idle_hours, "max_idle_hours")
        cutoff = epoch_micros(utc_now()) - int(hours * 3_600_000_000)
        deleted = 0
        for key in await self._marked_sessions(f"({cutoff}"):
            fields = await self._call("HMGET", self._keys(key)[0].session, "la", "ce")
            la, kind = fields
            if kind is None or la is None or int(la) >= cutoff:
                continue
            if await self.store.sessions.delete(key):
                deleted += 1
        return deleted

    async def _count_active(self) -> int:
        index = self.store.config.keyspace.index_participant(ENGINE_ID)
        members = [as_text(m) for m in await self._call("ZRANGE", index, "0", "-1")]
        active = 0
        for start in range(0, len(members), 500):
            chunk = members[start : start + 500]
            replies = await self._run(
                self._batch_plan(
                    [Call(("HMGET", self._keys(m)[0].session, "ce", "ce:st")) for m in chunk]
                )
            )
            active += sum(
                1
                for kind, st in replies
                if kind is not None and (st is None or as_text(st) == "active")
            )
        return active

    def _batch_plan(self, calls: list[Call]) -> Plan:
        if not calls:
            return []
        return (yield Batch(tuple(calls)))

    async def _connected(self) -> bool:
        try:
            await self.store.ping()
        except Exception:  # noqa: BLE001 - any failure means "not connected" for a health report
            return False
        return True

    async def get_metrics(self) -> dict[str, Any]:
        """The reference's metrics: per-process counters, active sessions counted in Redis."""
        connected = await self._connected()
        return {
            "total_sessions": self._counters.total_sessions,
            "active_sessions": await self._count_active() if connected else 0,
            "total_messages": self._counters.total_messages,
            "total_checkpoints": self._counters.total_checkpoints,
            "storage_backend": "redis",
            "redis_connected": connected,
            "timestamp": naive_iso(utc_now()),
        }

    async def health_check(self) -> dict[str, Any]:
        """``{status, storage_backend, redis_connected, issues}``; never raises for a dead Redis."""
        connected = await self._connected()
        issues = [] if connected else ["Redis connection failed"]
        return {
            "status": "healthy" if connected else "degraded",
            "storage_backend": "redis",
            "redis_connected": connected,
            "issues": issues,
        }

    # ----------------------------------------------------------------- used by PermanentBackend / import

    async def activity_marker(self, key: str) -> tuple[str, str] | None:
        """(last activity in µs, adapter kind) of a stored session, for :meth:`restore_activity`."""
        la, kind = await self._call("HMGET", self._keys(key)[0].session, "la", "ce")
        return None if la is None else (as_text(la), "" if kind is None else as_text(kind))

    async def restore_activity(self, key: str, marker: tuple[str, str]) -> None:
        """Set a session's last activity back to a value read by :meth:`activity_marker`."""
        moment = from_epoch_micros(marker[0])
        await self._run(self._update_plan(key, marker[1], bump=False, last_activity=moment))

    async def upsert_session_metrics(
        self, payload: Mapping[str, Any], *, create_only: bool = False
    ) -> bool:
        """Write a SessionMetrics dict as it is (counters, status, timestamps).

        Creates the session when missing. With ``create_only`` an existing session is left
        alone and False is returned.
        """
        if not isinstance(payload, Mapping):
            raise ValidationError("a SessionMetrics payload is a dict", field="payload")
        unknown = set(payload) - set(_SESSION_FIELDS)
        if unknown:
            raise ValidationError(f"unknown SessionMetrics keys {sorted(unknown)}", field="payload")
        session_id = _require_str(payload.get("session_id"), "session_id")
        existing = await self.get_session(session_id)
        if existing is not None and create_only:
            return False
        if existing is None:
            created = payload.get("created_at")
            await self._create_session(
                session_id,
                _require_str(payload.get("user_id"), "user_id"),
                None,
                None if created is None else to_utc(created, "created_at"),
                payload,
                task_context=False,
            )
            return True
        updates = {k: v for k, v in payload.items() if k not in ("session_id", "last_activity")}
        if updates.get("user_id") == existing["user_id"]:
            updates.pop("user_id")
        if (
            updates.get("created_at") is not None
            and naive_iso(to_utc(updates["created_at"])) == existing["created_at"]
        ):
            updates.pop("created_at")
        if "user_id" in updates or "created_at" in updates:
            await self._rewrite_record(
                session_id, updates.pop("user_id", None), updates.pop("created_at", None)
            )
        fields = {
            "ce:rq": str(
                _count(updates.get("request_count", existing["request_count"]), "request_count")
            ),
            "ce:er": str(
                _count(updates.get("error_count", existing["error_count"]), "error_count")
            ),
            "ce:pt": repr(
                _number(
                    updates.get("total_processing_time", existing["total_processing_time"]),
                    "total_processing_time",
                )
            ),
            "ce:st": _require_str(updates.get("status", existing["status"]), "status"),
        }
        last = payload.get("last_activity")
        result: bool = await self._run(
            self._update_plan(
                session_id,
                _KIND_SESSION,
                bump=last is None,
                last_activity=None if last is None else to_utc(last, "last_activity"),
                fields=fields,
            )
        )
        return result

    async def save_conversation_session(
        self, data: Mapping[str, Any], *, create_only: bool = False
    ) -> str | None:
        """Store a ``ConversationSession.to_dict()`` dict; returns its key (None if it existed
        and ``create_only``)."""
        session = ConversationSession.from_dict(data)
        key = session.generate_session_key()
        if create_only and await self.store.sessions.exists(key):
            return None
        key = await self.store.sessions.save(session, force=True)
        await self._run(self._update_plan(key, _KIND_CONVERSATION, bump=False))
        return key


# --------------------------------------------------------------------------- permanent backend


class PermanentBackend:
    """aiecs ``IPermanentStorageBackend`` writing into convstore: pass it as
    ``ContextEngine(permanent_backend=PermanentBackend(...))``.

    Takes the same arguments as :class:`ContextEngineStore` (or ``engine=`` an existing
    one). Every method returns True once the data is stored and raises a typed convstore
    error otherwise; note that a stock ContextEngine swallows those errors at debug level.
    """

    def __init__(
        self,
        store: AsyncConversationStore | None = None,
        *,
        engine: ContextEngineStore | None = None,
        **options: Any,
    ) -> None:
        if engine is not None and (store is not None or options):
            raise ValidationError(
                "pass engine alone, or the ContextEngineStore arguments", field="engine"
            )
        self.engine = engine if engine is not None else ContextEngineStore(store, **options)

    async def initialize(self) -> bool:
        return await self.engine.initialize()

    async def close(self) -> None:
        await self.engine.close()

    @staticmethod
    def _moment(created_at: str | None) -> datetime | None:
        return None if created_at is None else to_utc(created_at, "created_at")

    async def append_session_event(
        self,
        session_id: str,
        user_id: str,
        event_type: str,
        payload: dict[str, Any],
        created_at: str | None = None,
    ) -> bool:
        """``create``/``update``/``end`` with the SessionMetrics dict: the session mirrors it."""
        if event_type not in ("create", "update", "end"):
            raise ValidationError(
                f"event_type must be one of ['create', 'end', 'update'], got {event_type!r}",
                field="event_type",
            )
        data = {**dict(payload or {}), "session_id": session_id, "user_id": user_id}
        if event_type == "create":
            existing = await self.engine.get_session(session_id)
            if existing is None:
                await self.engine.upsert_session_metrics(data)
                return True
        return await self.engine.upsert_session_metrics(data)

    async def append_conversation_message(
        self,
        session_id: str,
        role: str,
        content: str,
        metadata: dict[str, Any] | None = None,
        created_at: str | None = None,
    ) -> bool:
        """Append to the session's history (a ``message_id`` in metadata makes it idempotent)."""
        moment = self._moment(created_at) or utc_now()
        await self.engine.store.messages.append(
            session_id,
            {
                "role": role,
                "content": content,
                "timestamp": moment,
                "metadata": _metadata(metadata),
            },
        )
        return True

    async def append_checkpoint(
        self,
        thread_id: str,
        checkpoint_id: str,
        checkpoint_data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        created_at: str | None = None,
    ) -> bool:
        return await self.engine._store_checkpoint(
            thread_id, checkpoint_id, checkpoint_data, metadata, self._moment(created_at), False
        )

    async def append_checkpoint_writes(
        self,
        thread_id: str,
        checkpoint_id: str,
        task_id: str,
        writes_data: list[tuple[Any, ...]],
        created_at: str | None = None,
    ) -> bool:
        return await self.engine._put_writes(
            thread_id, checkpoint_id, task_id, writes_data, self._moment(created_at), False
        )

    async def append_conversation_session(
        self, session_key: str, session_data: dict[str, Any], created_at: str | None = None
    ) -> bool:
        """Store a ``ConversationSession.to_dict()``; its generated key must be ``session_key``."""
        session = ConversationSession.from_dict(session_data)
        if session.generate_session_key() != session_key:
            raise ValidationError(
                f"session_data generates key {session.generate_session_key()!r}, not {session_key!r}",
                field="session_key",
            )
        await self.engine.save_conversation_session(session_data)
        return True

    async def append_task_context_snapshot(
        self, session_id: str, context_data: dict[str, Any], created_at: str | None = None
    ) -> bool:
        return await self.engine.store_task_context(session_id, context_data)


register_with_aiecs()
