"""The ContextEngine adapter's migration step: layout 1 -> 2, in the migration registry.

Layout 1 marked a ContextEngine session with the hash field ``ce`` = ``"session"`` and took
its user and creation time from the session record; layout 2 keeps them in ``ce:uid`` and
``ce:ca``. Same upgrade as ``ContextEngineStore.upgrade_layout``, as plans.
"""

from __future__ import annotations

from convstore.adapters.contextengine.sessions import metrics_fields
from convstore.layout_migrations import MigrationStep, register_step
from convstore.plans import Call, Plan, StoreConfig, as_text
from convstore.plans import contextengine as cep

__all__ = ["CONTEXTENGINE_LAYOUT_STEP"]


def _layout_1(config: StoreConfig, key: str) -> Plan[bool]:
    legacy, uid = yield Call(("HMGET", config.keyspace.session(key).session, "ce", "ce:uid"))
    return legacy is not None and uid is None and as_text(legacy) == "session"


def _apply(config: StoreConfig, key: str) -> Plan[bool]:
    if not (yield from _layout_1(config, key)):
        return False
    found = yield from cep.session_metrics(config, key)
    if found is None:
        return False
    fields = metrics_fields({"user_id": found["user_id"], "created_at": found["created_at"]})
    return (yield from cep.update(config, key, require="session", bump=False, fields=fields))


CONTEXTENGINE_LAYOUT_STEP = register_step(
    MigrationStep(
        "contextengine-layout",
        "ContextEngine layout 1",
        "ContextEngine layout 2",
        "ContextEngine sessions marked ce=session get their user and creation time in "
        "ce:uid / ce:ca",
        _layout_1,
        _apply,
    )
)
