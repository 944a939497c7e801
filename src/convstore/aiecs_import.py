"""Import a live aiecs ContextEngine Redis (the reference's key layout) into convstore.

Read-only on the source: only SCAN, HSCAN, HGETALL, LLEN and LRANGE are sent to it.
Idempotent: every message gets a deterministic id (its own ``metadata.message_id`` when it
has one, else a uuid5 of the list key, its position counted from the *oldest* end — which
the reference's LPUSH/LTRIM never moves —, its timestamp and its content), so convstore's
idempotent append skips what a previous run imported; sessions, conversation sessions,
checkpoints, writes and task contexts already present in the target are left alone.

Order: ``conversation:{id}`` lists are newest first (LPUSH), so they are read reversed.
A list rewritten by the reference's compression is oldest first (RPUSH) and its timestamps
were reset; when the reversed timestamps are not monotonic the list is reported as
"order not trustworthy" and imported as-is in the reversed stored order (convstore keeps
the append order), so nothing is dropped and the report tells which histories to check.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any, Protocol, TextIO

from convstore.contextengine import ContextEngineStore
from convstore.errors import ConvstoreError, ValidationError
from convstore.models import to_utc
from convstore.plans import as_text
from convstore.store import AsyncConversationStore

__all__ = ["IMPORT_NAMESPACE", "ImportReport", "import_aiecs"]

#: uuid5 namespace of imported message ids.
IMPORT_NAMESPACE = uuid.UUID("6f1c3c7e-2a4b-5b8e-9c1d-0e4f7a2b9d31")
_CHUNK = 200


@dataclass
class ImportReport:
    """What an import did: counts by kind, skips by (kind, reason), and warnings."""

    imported: Counter[str] = field(default_factory=Counter)
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)

    def skip(self, kind: str, reason: str, n: int = 1) -> None:
        self.skipped[(kind, reason)] += n

    def summary(self) -> str:
        lines = ["imported:"]
        kinds = (
            "sessions",
            "conversation_sessions",
            "messages",
            "task_contexts",
            "checkpoints",
            "checkpoint_writes",
        )
        lines += [f"  {k}: {self.imported[k]}" for k in kinds]
        lines.append("skipped:" if self.skipped else "skipped: nothing")
        lines += [f"  {k}: {n} ({reason})" for (k, reason), n in sorted(self.skipped.items())]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


class Progress(Protocol):
    def advance(self, n: int = 1) -> None: ...
    def close(self) -> None: ...


class _PlainProgress:
    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.done, self.stream = total, 0, stream

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.stream.write(f"\rimporting: {self.done}/{self.total}")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


class _RichProgress:
    def __init__(self, total: int, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import Progress as RichProgress

        self._progress = RichProgress(console=Console(file=stream))
        self._progress.start()
        self._task = self._progress.add_task("importing", total=total)

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)

    def close(self) -> None:
        self._progress.stop()


class _NoProgress:
    def advance(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _make_progress(total: int, show: bool, stream: TextIO) -> Progress:
    if not show:
        return _NoProgress()
    try:
        return _RichProgress(total, stream)
    except ImportError:
        return _PlainProgress(total, stream)


async def _scan(source: Any, pattern: str) -> AsyncIterator[str]:
    async for key in source.scan_iter(match=pattern, count=500):
        yield as_text(key)


async def _hash_items(source: Any, key: str) -> list[tuple[str, str]]:
    return [(as_text(f), as_text(v)) async for f, v in source.hscan_iter(key, count=500)]


def _json(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _message_id(list_key: str, position: int, item: dict[str, Any]) -> str:
    meta = item.get("metadata")
    own = meta.get("message_id") if isinstance(meta, dict) else None
    if isinstance(own, str) and own:
        return own
    basis = f"{list_key}\x00{position}\x00{item.get('timestamp')}\x00{item.get('content')}"
    return str(uuid.uuid5(IMPORT_NAMESPACE, basis))


def _parse_message(raw: str) -> tuple[dict[str, Any] | None, str]:
    item = _json(raw)
    if not isinstance(item, dict):
        return None, "not a JSON object"
    extra = set(item) - {"role", "content", "timestamp", "metadata"}
    if extra:
        return None, f"unexpected keys {sorted(extra)}"
    role, content, meta = item.get("role"), item.get("content"), item.get("metadata")
    if not isinstance(role, str) or not role or not isinstance(content, str):
        return None, "role or content missing"
    if meta is not None and not isinstance(meta, dict):
        return None, "metadata is not an object"
    try:
        to_utc(item.get("timestamp"), "timestamp")
    except ValidationError:
        return None, "invalid timestamp"
    return item, ""


async def _import_list(
    source: Any, target: ContextEngineStore, key: str, report: ImportReport, progress: Progress
) -> None:
    session_key = key[len("conversation:") :]
    length = int(await source.llen(key))
    marker = await target.activity_marker(session_key)
    raw_items: list[str] = []
    for start in range(0, length, 1000):
        raw_items += [as_text(r) for r in await source.lrange(key, start, start + 999)]
    raw_items.reverse()  # LPUSH: index 0 is the newest
    stamps: list[datetime] = []
    batch: list[dict[str, Any]] = []
    for position, raw in enumerate(raw_items):
        item, reason = _parse_message(raw)
        if item is None:
            report.skip("messages", reason)
            continue
        moment = to_utc(item["timestamp"], "timestamp")
        stamps.append(moment)
        meta = dict(item.get("metadata") or {})
        meta["message_id"] = _message_id(key, position, item)
        batch.append(
            {
                "role": item["role"],
                "content": item["content"],
                "timestamp": moment,
                "metadata": meta,
            }
        )
    if any(later < earlier for earlier, later in pairwise(stamps)):
        report.warnings.append(
            f"{key}: timestamps are not in order once reversed (compression rewrote it?); "
            "imported as-is in stored order, check this history"
        )
    for start in range(0, len(batch), _CHUNK):
        chunk = batch[start : start + _CHUNK]
        results = await target.append_records(session_key, chunk)
        created = sum(1 for r in results if r.created)
        report.imported["messages"] += created
        if len(chunk) - created:
            report.skip("messages", "already imported", len(chunk) - created)
        progress.advance(len(chunk))
    progress.advance(len(raw_items) - len(batch))
    if marker is not None:  # appending marks activity now: keep the source's last activity
        await target.restore_activity(session_key, marker)


def _moment(value: object) -> datetime | None:
    try:
        return None if value is None else to_utc(value, "created_at")
    except ValidationError:
        return None


async def _put_checkpoint(
    engine: ContextEngineStore, thread_id: str, checkpoint_id: str, data: dict[str, Any]
) -> bool:
    return await engine.put_checkpoint_record(
        thread_id,
        checkpoint_id,
        data.get("data"),
        data.get("metadata") or {},
        created_at=_moment(data.get("created_at")),
        only_if_absent=True,
    )


async def _put_writes(engine: ContextEngineStore, thread_id: str, data: dict[str, Any]) -> bool:
    writes = data.get("writes") or []
    return await engine.put_writes_record(
        thread_id,
        str(data["checkpoint_id"]),
        str(data["task_id"]),
        [tuple(w) if isinstance(w, list) else w for w in writes],
        created_at=_moment(data.get("created_at")),
        only_if_absent=True,
    )


async def import_aiecs(
    source: Any,
    target: AsyncConversationStore | ContextEngineStore,
    *,
    progress: bool = True,
    stream: TextIO | None = None,
    on_report: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Copy a ContextEngine Redis (``source``: a ``redis.asyncio`` client) into ``target``.

    Order of work: sessions, conversation sessions, histories, task contexts, checkpoints,
    checkpoint writes. Returns the :class:`ImportReport`; a progress bar (rich when
    installed, else a counter) goes to ``stream`` (stderr by default).
    """
    engine = target if isinstance(target, ContextEngineStore) else ContextEngineStore(target)
    out = stream if stream is not None else sys.stderr
    report = ImportReport()

    sessions = await _hash_items(source, "sessions")
    conv_sessions = await _hash_items(source, "conversation_sessions")
    tasks = await _hash_items(source, "task_contexts")
    lists = [k async for k in _scan(source, "conversation:*")]
    checkpoint_keys = [k async for k in _scan(source, "checkpoints:*")]
    writes_keys = [k async for k in _scan(source, "checkpoint_writes:*")]
    total = len(sessions) + len(conv_sessions) + len(tasks)
    total += sum([int(await source.llen(k)) for k in lists])
    total += sum([int(await source.hlen(k)) for k in checkpoint_keys + writes_keys])
    bar = _make_progress(total, progress, out)
    try:
        for session_id, raw in sessions:
            data = _json(raw)
            try:
                if not isinstance(data, dict) or data.get("session_id") != session_id:
                    report.skip("sessions", "invalid SessionMetrics JSON")
                elif await engine.upsert_session_metrics(data, create_only=True):
                    report.imported["sessions"] += 1
                else:
                    report.skip("sessions", "already present")
            except ConvstoreError as exc:
                report.skip("sessions", f"rejected: {type(exc).__name__}")
                report.warnings.append(f"session {session_id!r}: {exc}")
            bar.advance()
        for session_key, raw in conv_sessions:
            data = _json(raw)
            try:
                if not isinstance(data, dict):
                    report.skip("conversation_sessions", "invalid JSON")
                elif await engine.save_conversation_dict(data, create_only=True) is None:
                    report.skip("conversation_sessions", "already present")
                else:
                    report.imported["conversation_sessions"] += 1
            except (ConvstoreError, ValueError, KeyError, TypeError) as exc:
                report.skip("conversation_sessions", f"rejected: {type(exc).__name__}")
                report.warnings.append(f"conversation session {session_key!r}: {exc}")
            bar.advance()
        for key in sorted(lists):
            await _import_list(source, engine, key, report, bar)
        for session_id, raw in tasks:
            data = _json(raw)
            if not isinstance(data, dict):
                report.skip("task_contexts", "invalid JSON")
            elif await engine.put_task_context(session_id, data, only_if_absent=True):
                report.imported["task_contexts"] += 1
            else:
                report.skip("task_contexts", "already present")
            bar.advance()
        for key in sorted(checkpoint_keys):
            thread_id = key[len("checkpoints:") :]
            for checkpoint_id, raw in await _hash_items(source, key):
                data = _json(raw)
                if not isinstance(data, dict):
                    report.skip("checkpoints", "invalid JSON")
                elif await _put_checkpoint(engine, thread_id, checkpoint_id, data):
                    report.imported["checkpoints"] += 1
                else:
                    report.skip("checkpoints", "already present")
                bar.advance()
        for key in sorted(writes_keys):
            thread_id = key[len("checkpoint_writes:") :]
            for _field, raw in await _hash_items(source, key):
                data = _json(raw)
                if not isinstance(data, dict) or not {"checkpoint_id", "task_id"} <= set(data):
                    report.skip("checkpoint_writes", "invalid JSON")
                elif await _put_writes(engine, thread_id, data):
                    report.imported["checkpoint_writes"] += 1
                else:
                    report.skip("checkpoint_writes", "already present")
                bar.advance()
    finally:
        bar.close()
    if on_report is not None:
        on_report(report)
    return report
