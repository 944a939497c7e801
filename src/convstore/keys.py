"""Redis key names: one namespace, one cluster hash tag per session, injective encoding.

Layout, for namespace ``ns`` and a session key ``k`` encoded as ``E(k)``::

    ns:{E(k)}:session       HASH    the session record (msgpack values) and counters
    ns:{E(k)}:messages      STREAM  one entry per message: m = message_id, d = msgpack,
                                    tc/tr tool-call ids (layout 3, lua.LAYOUT_VERSION)
    ns:{E(k)}:ids           HASH    message_id -> stream entry id (idempotent appends)
    ns:{E(k)}:checkpoints   HASH    ContextEngine checkpoints (adapter)
    ns:{E(k)}:writes        HASH    ContextEngine checkpoint writes (adapter)
    ns:{E(k)}:task          STRING  ContextEngine task context (adapter)
    ns:idx:all              ZSET    session keys by last activity (ms)
    ns:idx:type:T           ZSET    ... of one session type
    ns:idx:participant:E(p) ZSET    ... with one participant
    ns:lg:{E(t)}:cps        ZSET    LangGraph checkpoints of thread t (lexical: ns NUL id)
    ns:lg:{E(t)}:cp         HASH    ... their records; :blobs channel values by version;
    ns:lg:{E(t)}:writes     HASH    ... pending writes; :wix (ZSET) their fields, lexical
    ns:lg:threads           SET     LangGraph thread ids (list() without a thread)
    ns:lg:run:{E(r)}        SET     "thread NUL member" of the checkpoints of run r
    ns:adk:app:{E(a)}       HASH    ADK app state of app a (key -> JSON)
    ns:adk:user:{E(a)}:E(u) HASH    ADK user state of user u in app a
    ns:inbox:{E(r)}:stream  STREAM  recipient r's inbox (consumer groups read it)
    ns:inbox:{E(r)}:ids     HASH    delivery dedup: session key + message_id -> inbox entry id
    ns:inbox:{E(r)}:dead    STREAM  r's dead letters (with the reason)
    ns:outbox               ZSET    session keys with deliveries to check, by last append (ms)

``E`` percent-encodes ``%``, ``{``, ``}`` and newline, so the braces of the hash
tag are always ours, two different session keys (or namespaces) never share a
key, and the newline-separated index list in the session hash stays parseable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from convstore.errors import ValidationError

__all__ = [
    "MAX_SESSION_KEY_LENGTH",
    "InboxKeys",
    "KeySpace",
    "SessionKeys",
    "ThreadKeys",
    "encode_component",
]

#: Longest accepted session key, in characters (a Redis key stays under ~13 KiB).
MAX_SESSION_KEY_LENGTH = 1024
_NAMESPACE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D", "\n": "%0A"})

SESSION_SUFFIXES = ("session", "messages", "ids", "checkpoints", "writes", "task")


def encode_component(text: str, field: str = "session_key") -> str:
    """Injective, brace-free form of ``text`` for use inside a key."""
    if not isinstance(text, str) or not text:
        raise ValidationError(f"{field} must be a non-empty string", field=field)
    if len(text) > MAX_SESSION_KEY_LENGTH:
        raise ValidationError(
            f"{field} is {len(text)} characters long; the limit is {MAX_SESSION_KEY_LENGTH}",
            field=field,
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{field} is not valid Unicode text", field=field) from None
    return text.translate(_ESCAPES)


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """All Redis keys of one session; they share one hash tag, so one cluster slot."""

    session: str
    messages: str
    ids: str
    checkpoints: str
    writes: str
    task: str
    #: ``all()`` as UTF-8 bytes, made once (the names are cached per session): redis-py
    #: sends bytes as they are, and on asyncio encodes every str argument in Python.
    encoded: tuple[bytes, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoded", tuple(k.encode() for k in self.all()))

    def all(self) -> tuple[str, ...]:
        return (self.session, self.messages, self.ids, self.checkpoints, self.writes, self.task)


@dataclass(frozen=True, slots=True)
class ThreadKeys:
    """The keys of one LangGraph thread; one hash tag, so one cluster slot."""

    checkpoints: str  # ZSET, score 0, members "ns NUL checkpoint_id" (lexical order)
    records: str  # HASH member -> checkpoint record
    blobs: str  # HASH "ns NUL channel NUL version" -> channel value
    writes: str  # HASH "member NUL task_id NUL idx" -> pending write
    write_index: str  # ZSET, score 0, the fields of ``writes`` (lexical order)

    def all(self) -> tuple[str, ...]:
        return (self.checkpoints, self.records, self.blobs, self.writes, self.write_index)


@dataclass(frozen=True, slots=True)
class InboxKeys:
    """The keys of one recipient's inbox; they share one hash tag (one cluster slot), which
    is not the slot of any session's keys in general: delivery never spans two slots."""

    stream: str
    ids: str
    dead: str

    def all(self) -> tuple[str, str, str]:
        return (self.stream, self.ids, self.dead)


@lru_cache(maxsize=8192)
def _session_keys(namespace: str, session_key: str) -> SessionKeys:
    """Cached: every operation needs these names and building them is pure."""
    base = f"{namespace}:{{{encode_component(session_key)}}}:"
    return SessionKeys(*(base + suffix for suffix in SESSION_SUFFIXES))


@dataclass(frozen=True, slots=True)
class KeySpace:
    """Key names of one namespace."""

    namespace: str = "convstore"

    def __post_init__(self) -> None:
        if not isinstance(self.namespace, str) or not _NAMESPACE.fullmatch(self.namespace):
            raise ValidationError(
                "namespace must be 1-64 characters of letters, digits, '_', '.' or '-', "
                f"got {self.namespace!r}",
                field="namespace",
            )

    def session(self, session_key: str) -> SessionKeys:
        return _session_keys(self.namespace, session_key)

    def thread(self, thread_id: str) -> ThreadKeys:
        base = f"{self.namespace}:lg:{{{encode_component(thread_id, 'thread_id')}}}:"
        return ThreadKeys(*(base + s for s in ("cps", "cp", "blobs", "writes", "wix")))

    def adk_app_state(self, app_name: str) -> str:
        return f"{self.namespace}:adk:app:{{{encode_component(app_name, 'app_name')}}}"

    def adk_user_state(self, app_name: str, user_id: str) -> str:
        app, user = encode_component(app_name, "app_name"), encode_component(user_id, "user_id")
        return f"{self.namespace}:adk:user:{{{app}}}:{user}"

    def lg_run(self, run_id: str) -> str:
        return f"{self.namespace}:lg:run:{{{encode_component(run_id, 'run_id')}}}"

    @property
    def threads(self) -> str:
        return f"{self.namespace}:lg:threads"

    def inbox(self, recipient_id: str) -> InboxKeys:
        base = f"{self.namespace}:inbox:{{{encode_component(recipient_id, 'recipient_id')}}}:"
        return InboxKeys(base + "stream", base + "ids", base + "dead")

    @property
    def outbox(self) -> str:
        return f"{self.namespace}:outbox"

    @property
    def index_all(self) -> str:
        return f"{self.namespace}:idx:all"

    def index_type(self, session_type: str) -> str:
        return f"{self.namespace}:idx:type:{session_type}"

    def index_participant(self, participant_id: str) -> str:
        return (
            f"{self.namespace}:idx:participant:{encode_component(participant_id, 'participant_id')}"
        )

    def index_participant_type(self, participant_id: str, session_type: str) -> str:
        pid = encode_component(participant_id, "participant_id")
        return f"{self.namespace}:idx:participant-type:{session_type}:{pid}"
