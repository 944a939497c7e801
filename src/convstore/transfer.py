"""Export and import of sessions as JSON Lines: streaming, constant memory, exact.

The file is one JSON document per line: a header, then each session followed by its
messages, oldest first::

    {"format":"convstore-export","version":1}
    {"type":"session","key":...,"revision":3,"last_activity_us":...,"retention":{...},"session":{...}}
    {"type":"message","key":...,"id":"1716...-0","message_id":...,"role":...,"content":...,"timestamp":...,"metadata":{...}}

Values JSON has no type for are tagged: ``{"$dt": iso}`` (a datetime), ``{"$b64": ...}``
(bytes), ``{"$float": "nan"}`` (a non-finite float), and a dict whose only key is one of
those tags is wrapped as ``{"$map": {...}}``, so the encoding is injective. Import restores
revisions, last activity, message ids and stream entry ids; only a session's remaining TTL
cannot be restored (it restarts at import). A second import changes nothing.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from convstore.errors import CodecError, ValidationError
from convstore.models import PARTICIPANT_FIELDS, ConversationSession, to_utc
from convstore.plans import transfer as tp
from convstore.store import ConversationStore

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ExportReport",
    "ImportReport",
    "export_jsonl",
    "from_json_value",
    "import_jsonl",
    "iter_session_keys",
    "to_json_value",
]

FORMAT = "convstore-export"
FORMAT_VERSION = 1
_TAGS = frozenset({"$dt", "$b64", "$float", "$map"})
_CHUNK = 1000  # messages per read or write round trip: bounded memory
_SESSION_PAGE = 200

Progress = Callable[[int, int], None]  # (sessions so far, messages so far)


def to_json_value(value: Any) -> Any:
    """A stored value (metadata) as JSON-compatible data, tagged where JSON lacks the type."""
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    if isinstance(value, dict):
        out = {key: to_json_value(item) for key, item in value.items()}
        return {"$map": out} if len(out) == 1 and next(iter(out)) in _TAGS else out
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    return value


def from_json_value(value: Any) -> Any:
    """Inverse of :func:`to_json_value`."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, inner),) = value.items()
            if tag == "$dt":
                return to_utc(inner, "metadata")
            if tag == "$b64":
                return base64.b64decode(inner, validate=True)
            if tag == "$float":
                return float(inner)
            if tag == "$map":
                return {key: from_json_value(item) for key, item in inner.items()}
        return {key: from_json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_json_value(item) for item in value]
    return value


def _dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _session_doc(key: str, session: ConversationSession, state: tp.SessionState) -> dict[str, Any]:
    retention = {
        "max_messages": state.max_messages,
        "max_age_ms": state.max_age_ms,
        "ttl_ms": state.ttl_ms,
    }
    return {
        "type": "session",
        "key": key,
        "revision": state.revision,
        "last_activity_us": state.last_activity_us,
        "retention": retention,
        "session": {
            "session_id": session.session_id,
            "session_type": str(session.session_type),
            "participants": [
                {name: to_json_value(getattr(p, name)) for name in PARTICIPANT_FIELDS.names}
                for p in session.participants
            ],
            "created_at": session.created_at.isoformat(),
            "last_activity": session.last_activity.isoformat(),
            "metadata": to_json_value(session.metadata),
        },
    }


def _message_doc(key: str, entry_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    metadata = dict(entry["metadata"])
    message_id = metadata.pop("message_id")
    return {
        "type": "message",
        "key": key,
        "id": entry_id,
        "message_id": message_id,
        "role": entry["role"],
        "content": entry["content"],
        "timestamp": entry["timestamp"],
        "metadata": to_json_value(metadata),
    }


@dataclass
class ExportReport:
    sessions: int = 0
    messages: int = 0


@dataclass
class ImportReport:
    sessions: int = 0
    messages_read: int = 0
    messages_added: int = 0


def iter_session_keys(store: ConversationStore, page: int = _SESSION_PAGE) -> Iterator[str]:
    """Every stored session key of the namespace, most recently active first, a page at
    a time (``sessions.list`` with its cursor: never KEYS, never the whole index at once)."""
    cursor: str | None = None
    while True:
        found = store.sessions.list(limit=page, cursor=cursor)
        for session in found.items:
            yield session.generate_session_key()
        if found.cursor is None:
            return
        cursor = found.cursor


def export_jsonl(
    store: ConversationStore,
    out: TextIO,
    *,
    keys: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> ExportReport:
    """Write the namespace (or only ``keys``) to ``out``; memory stays bounded by one
    page of messages whatever the history size. A missing key raises SessionNotFound."""
    report = ExportReport()
    out.write(_dumps({"format": FORMAT, "version": FORMAT_VERSION}) + "\n")
    for key in keys if keys is not None else iter_session_keys(store):
        driver, config = store.driver, store.config
        state = driver.run(tp.session_state(config, key))
        if state.record is None:
            store.messages.count(key)  # raises SessionNotFound, with its hints
            continue  # an adapter-only key (no record): nothing to export
        session = store.sessions.get(key)
        assert session is not None
        out.write(_dumps(_session_doc(key, session, state)) + "\n")
        report.sessions += 1
        after: str | None = None
        while True:
            rows = driver.run(tp.read_entries(config, key, after, _CHUNK))
            for entry_id, entry in rows:
                out.write(_dumps(_message_doc(key, entry_id, entry)) + "\n")
            report.messages += len(rows)
            if progress is not None:
                progress(report.sessions, report.messages)
            if len(rows) < _CHUNK:
                break
            after = rows[-1][0]
    return report


def _optional_int(raw: dict[str, Any], name: str) -> int | None:
    value = raw.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ValidationError(
            f"retention.{name} must be a non-negative integer or null", field=name
        )
    return value


def _session_from(
    doc: dict[str, Any],
) -> tuple[ConversationSession, tuple[int | None, int | None, int | None]]:
    data = dict(doc["session"])
    data["metadata"] = from_json_value(data.get("metadata", {}))
    data["participants"] = [
        {name: from_json_value(value) for name, value in p.items()} for p in data["participants"]
    ]
    session = ConversationSession.from_dict(data)
    if session.generate_session_key() != doc["key"]:
        raise ValidationError(
            f"session line for {doc['key']!r} holds session {session.generate_session_key()!r}",
            field="key",
        )
    raw = doc.get("retention") or {}
    names = ("max_messages", "max_age_ms", "ttl_ms")
    mm, ma, ttl = (_optional_int(raw, name) for name in names)
    return session, (mm, ma, ttl)


def _entry_from(doc: dict[str, Any]) -> tp.ImportedEntry:
    return tp.ImportedEntry(
        doc["id"],
        doc["message_id"],
        doc["role"],
        doc["content"],
        doc["timestamp"],
        from_json_value(doc["metadata"]),
    )


def _documents(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CodecError(f"line {number}: not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise CodecError(f"line {number}: expected a JSON object")
        yield number, doc


def import_jsonl(
    store: ConversationStore, lines: Iterable[str], *, progress: Progress | None = None
) -> ImportReport:
    """Restore an export into ``store``'s namespace, exactly and idempotently.

    Sessions keep their revision and last activity, messages their ids and stream entry
    ids; messages already stored (by id) are skipped. Reads one line at a time.
    """
    report = ImportReport()
    documents = _documents(lines)
    first = next(documents, None)
    if first is None or first[1].get("format") != FORMAT:
        raise CodecError(f"not a {FORMAT} file (its first line is not the header)")
    if first[1].get("version") != FORMAT_VERSION:
        raise CodecError(f"export format version {first[1].get('version')!r} is not supported")
    driver, config = store.driver, store.config
    current: str | None = None
    pending: list[tp.ImportedEntry] = []

    def flush() -> None:
        if current is not None and pending:
            report.messages_added += driver.run(tp.import_entries(config, current, pending))
            pending.clear()
            if progress is not None:
                progress(report.sessions, report.messages_read)

    for number, doc in documents:
        try:
            kind = doc.get("type")
            if kind == "session":
                flush()
                session, overrides = _session_from(doc)
                current = driver.run(
                    tp.restore_session(
                        config,
                        session,
                        revision=int(doc["revision"]),
                        last_activity_us=int(doc["last_activity_us"]),
                        overrides=overrides,
                    )
                )
                report.sessions += 1
            elif kind == "message":
                if doc.get("key") != current:
                    raise CodecError(f"message of {doc.get('key')!r} outside its session's block")
                pending.append(_entry_from(doc))
                report.messages_read += 1
                if len(pending) >= _CHUNK:
                    flush()
            else:
                raise CodecError(f"unknown line type {kind!r}")
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CodecError | ValidationError):
                raise CodecError(f"line {number}: {exc}") from exc
            raise CodecError(f"line {number}: malformed {doc.get('type')!r} line: {exc!r}") from exc
    flush()
    return report
