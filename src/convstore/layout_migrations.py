"""Upgrading stored records in place: a registry of migration steps and a resumable runner.

A :class:`MigrationStep` upgrades one session key from one stored layout to the next. It
is two plans: ``needed`` (read-only: does this key need the step?) and ``apply``
(idempotent: upgrade it if needed, return True when it changed something). The runner
walks the namespace's session index with ``ZSCAN`` (never ``KEYS``), a page at a time,
and returns a cursor, so an interrupted run resumes where it stopped; a second run changes
nothing. ``dry_run=True`` runs only ``needed``.

Adding a step (say, for a new stream-entry layout)::

    from convstore.layout_migrations import MigrationStep, register_step

    def needed(config: StoreConfig, key: str) -> Plan[bool]: ...   # reads only
    def apply(config: StoreConfig, key: str) -> Plan[bool]: ...    # idempotent

    register_step(MigrationStep("entries-v2", "entries 1", "entries 2", "why", needed, apply))

Steps run in registration order on each key. This module registers the session-record
step (model schema 1.0 -> current, see :mod:`convstore.migration`) and the stream-layout
step (layouts 1 and 2 -> layout 3, see :mod:`convstore.layout`); the ContextEngine
adapter registers its own in ``adapters/contextengine/layout_step.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from convstore import codec
from convstore.drivers import SyncDriver
from convstore.errors import CodecError, ConvstoreError, ValidationError
from convstore.lua import LAYOUT_VERSION
from convstore.lua import transfer as lua_transfer
from convstore.migration import migrate_session_dict
from convstore.models import ConversationSession
from convstore.plans import Batch, Call, Plan, Run, StoreConfig, as_text, epoch_micros
from convstore.plans.indexes import cluster_index_sync, index_keys, split_idx
from convstore.plans.layout import migrate_session_layout
from convstore.plans.sessions import session_identity
from convstore.plans.transfer import scan_index

__all__ = [
    "SESSION_RECORD_STEP",
    "MigrationReport",
    "MigrationStep",
    "StepPlan",
    "register_step",
    "registered_steps",
    "run_migrations",
]

StepPlan = Callable[[StoreConfig, str], Plan[bool]]


@dataclass(frozen=True, slots=True)
class MigrationStep:
    """One upgrade, ``source`` layout -> ``target`` layout, of one session key at a time."""

    name: str
    source: str
    target: str
    description: str
    needed: StepPlan
    apply: StepPlan


_REGISTRY: dict[str, MigrationStep] = {}


def register_step(step: MigrationStep) -> MigrationStep:
    """Add ``step`` to the registry (once: registering the same step again is a no-op)."""
    found = _REGISTRY.get(step.name)
    if found is not None and found != step:
        raise ValidationError(f"a different migration step is named {step.name!r}", field="name")
    _REGISTRY[step.name] = step
    return step


def registered_steps() -> tuple[MigrationStep, ...]:
    return tuple(_REGISTRY.values())


@dataclass
class MigrationReport:
    """What a run did (or, dry, would do): per step, the keys changed; and where it stopped."""

    dry_run: bool
    cursor: str  # "0" when the walk is complete; else pass it back to resume
    keys_seen: int = 0
    changed: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.cursor == "0"


def run_migrations(
    driver: SyncDriver,
    config: StoreConfig,
    *,
    dry_run: bool,
    cursor: str = "0",
    batch: int = 100,
    max_keys: int | None = None,
    steps: Iterable[MigrationStep] | None = None,
) -> MigrationReport:
    """Walk the namespace from ``cursor`` and run every step on every key.

    Stops after at least ``max_keys`` keys (None: the whole namespace) at a page boundary;
    a key whose step fails (an unreadable record) is reported in ``problems`` and the walk
    goes on.
    """
    chosen = tuple(registered_steps() if steps is None else steps)
    report = MigrationReport(dry_run, cursor, changed={s.name: 0 for s in chosen})
    while True:
        cursor, keys = driver.run(scan_index(config, cursor, batch))
        for key in keys:
            report.keys_seen += 1
            for step in chosen:
                try:
                    plan = step.needed if dry_run else step.apply
                    if driver.run(plan(config, key)):
                        report.changed[step.name] += 1
                except ConvstoreError as exc:
                    report.problems.append(f"{key}: {step.name}: {type(exc).__name__}: {exc}")
        report.cursor = cursor
        if cursor == "0" or (max_keys is not None and report.keys_seen >= max_keys):
            return report


# --------------------------------------------------------------------------- session records


def _legacy_session(raw: bytes) -> ConversationSession:
    """A session record written in dict schema 1.0 / 1.1 (legacy participant form, naive
    or string timestamps, missing metadata), upgraded to the current model."""
    try:
        obj = msgpack.unpackb(raw, raw=False, timestamp=3, strict_map_key=True)
    except Exception as exc:  # noqa: BLE001 - msgpack raises many types on bad input
        raise CodecError(f"the session record is not msgpack: {exc}") from None
    if not isinstance(obj, dict) or obj.get("k", "session") != "session":
        raise CodecError("the session record is not a session payload")
    data = {k: v for k, v in obj.items() if k not in ("v", "k")}
    try:
        return ConversationSession.from_dict(migrate_session_dict(data))
    except (ValidationError, TypeError, KeyError) as exc:
        raise CodecError(f"the session record cannot be upgraded: {exc}") from None


def _current(raw: bytes) -> bool:
    try:
        codec.decode_session(raw)
    except CodecError:
        return False
    return True


def _record_needed(config: StoreConfig, key: str) -> Plan[bool]:
    raw = yield Call(("HGET", config.keyspace.session(key).session, "rec"))
    if raw is None or _current(raw):
        return False
    _legacy_session(raw)  # raises when the record is not an old layout either
    return True


def _record_apply(config: StoreConfig, key: str) -> Plan[bool]:
    raw = yield Call(("HGET", config.keyspace.session(key).session, "rec"))
    if raw is None or _current(raw):
        return False
    session = _legacy_session(raw)
    if session.generate_session_key() != key:
        raise CodecError(f"the record belongs to {session.generate_session_key()!r}")
    keys, common = config.common(key)
    index = index_keys(config, session)
    args: tuple[Any, ...] = (
        *common,
        raw,
        codec.encode_session(session, limits=config.limits),
        session_identity(session),
        str(epoch_micros(session.last_activity)),
        "\n".join(index),
    )
    reply = yield Run(lua_transfer.REPLACE_RECORD, keys.all(), args)
    if int(reply[0]) == 0:
        raise CodecError("the record changed while it was upgraded; run migrate again")
    yield from cluster_index_sync(config, key, split_idx(reply[2]), (), reply[1])
    return True


SESSION_RECORD_STEP = register_step(
    MigrationStep(
        "session-record",
        "model schema 1.0",
        "model schema 2.0",
        "session records in the dict schema 1.0 (legacy participants, naive timestamps) "
        "re-encoded in the current form",
        _record_needed,
        _record_apply,
    )
)


def _stream_needed(config: StoreConfig, key: str) -> Plan[bool]:
    """A stored session not yet marked layout 3 (``lv``): what the step would change (an
    empty stream is only marked)."""
    keys = config.keyspace.session(key)
    exists, lv = yield Batch((Call(("EXISTS", keys.session)), Call(("HGET", keys.session, "lv"))))
    return bool(exists) and (lv is None or as_text(lv) != str(LAYOUT_VERSION))


STREAM_LAYOUT_STEP = register_step(
    MigrationStep(
        "stream-layout",
        "stream layouts 1-2",
        f"stream layout {LAYOUT_VERSION}",
        "stream entries keyed by message id rewritten as fields m/d plus the tool-call "
        "fields tc/tr, and map payloads {v, r, c, t, m} as arrays [2, r, c, t, m], under "
        "the same entry ids (see convstore.layout)",
        _stream_needed,
        migrate_session_layout,
    )
)
