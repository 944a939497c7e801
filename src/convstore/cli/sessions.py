"""``sessions ls``, ``sessions show``, ``history`` and ``stats``: read-only views."""

from __future__ import annotations

import argparse
from typing import Any

from convstore.cli.common import STORE, Context, emit_json, moment
from convstore.errors import SessionNotFound
from convstore.models import ConversationSession, SessionType
from convstore.plans import transfer as tp
from convstore.store import ConversationStore
from convstore.transfer import iter_session_keys, to_json_value
from convstore.validation import limit_or_all

__all__ = ["register", "session_summary"]


def register(commands: Any) -> None:
    group = commands.add_parser("sessions", help="list sessions or show one")
    sub = group.add_subparsers(dest="sessions_command", required=True)
    ls = sub.add_parser("ls", parents=[STORE], help="sessions, most recently active first")
    ls.add_argument("--participant", default=None, help="only sessions with this participant id")
    ls.add_argument("--type", dest="session_type", default=None, help="only this session type")
    ls.add_argument(
        "--idle-since", default=None, help="only sessions idle since (ISO time, or 30m, 2h, 7d)"
    )
    ls.add_argument("--limit", type=int, default=50, help="sessions per page (default 50)")
    ls.add_argument("--cursor", default=None, help="the cursor printed by the previous page")
    ls.set_defaults(handler=_ls)
    show = sub.add_parser("show", parents=[STORE], help="one session: record, counts, TTL, size")
    show.add_argument("key", metavar="KEY", help="the session key")
    show.set_defaults(handler=_show)

    history = commands.add_parser("history", parents=[STORE], help="a session's messages")
    history.add_argument("key", metavar="KEY", help="the session key")
    history.add_argument("--limit", type=int, default=20, help="the newest N (default 20)")
    history.add_argument("--all", action="store_true", help="every message (no limit)")
    history.add_argument("--since", default=None, help="from this time (ISO, or 30m, 2h, 7d)")
    history.add_argument("--until", default=None, help="up to this time (ISO, or a duration ago)")
    history.set_defaults(handler=_history)

    stats = commands.add_parser("stats", parents=[STORE], help="sessions, messages, bytes by type")
    stats.set_defaults(handler=_stats)


def session_summary(session: ConversationSession) -> dict[str, Any]:
    """A session as JSON: its key, record fields and revision."""
    return {
        "key": session.generate_session_key(),
        "session_id": session.session_id,
        "session_type": str(session.session_type),
        "participants": [to_json_value(p.to_dict()) for p in session.participants],
        "created_at": session.created_at.isoformat(),
        "last_activity": session.last_activity.isoformat(),
        "revision": session.revision,
        "metadata": to_json_value(session.metadata),
    }


def _ls(args: argparse.Namespace, ctx: Context) -> int:
    limit = limit_or_all(args.limit)
    cutoff = None if args.idle_since is None else moment(args.idle_since, "idle_since")
    with ctx.store(args) as store:
        found: list[ConversationSession] = []
        cursor = args.cursor
        while limit is None or len(found) < limit:
            page = store.sessions.list(
                args.participant, args.session_type, limit=limit, cursor=cursor
            )
            for session in page.items:
                if cutoff is None or session.last_activity <= cutoff:
                    found.append(session)
            cursor = page.cursor
            if cursor is None:
                break
        if limit is not None and len(found) > limit:
            found = found[:limit]  # the cursor still points after the last page read
    if args.json:
        emit_json(ctx, {"sessions": [session_summary(s) for s in found], "cursor": cursor})
        return 0
    for s in found:
        people = ",".join(p.participant_id for p in s.participants)
        print(
            f"{s.generate_session_key()}\t{s.session_type}\t{people}\t"
            f"{s.last_activity.isoformat(timespec='seconds')}",
            file=ctx.out,
        )
    if cursor is not None:
        print(f"(more: --cursor {cursor})", file=ctx.out)
    return 0


def _size(store: ConversationStore, key: str) -> int | None:
    """Bytes the server holds for the session (None on fakeredis: it has no MEMORY USAGE)."""
    if store.server_info().emulated:
        return None
    return store.driver.run(tp.memory_usage(store.config, key))


def _show(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.store(args) as store:
        session = store.sessions.get(args.key)
        if session is None:
            store.messages.count(args.key)  # SessionNotFound with its "did you mean" hints
            raise SessionNotFound(args.key)
        state = store.driver.run(tp.session_state(store.config, args.key))
        size = _size(store, args.key)
    report = {
        **session_summary(session),
        "messages": state.stream_length,
        "ttl_ms": None if state.pttl_ms < 0 else state.pttl_ms,
        "retention": {
            "max_messages": state.max_messages,
            "max_age_ms": state.max_age_ms,
            "ttl_ms": state.ttl_ms,
        },
        "size_bytes": size,
    }
    if args.json:
        emit_json(ctx, report)
        return 0
    for name in ("key", "session_id", "session_type", "created_at", "last_activity", "revision"):
        print(f"{name}: {report[name]}", file=ctx.out)
    print("participants:", file=ctx.out)
    for p in session.participants:
        role = f" ({p.participant_role})" if p.participant_role else ""
        print(f"  {p.participant_id}: {p.participant_type}{role}", file=ctx.out)
    print(f"metadata: {report['metadata']}", file=ctx.out)
    print(f"messages: {report['messages']}", file=ctx.out)
    ttl = report["ttl_ms"]
    print(f"ttl: {'none' if ttl is None else f'{ttl / 1000:.0f} s'}", file=ctx.out)
    overrides = {k: v for k, v in report["retention"].items() if v is not None}
    print(f"retention overrides: {overrides or 'none (store defaults)'}", file=ctx.out)
    print(f"size: {'unknown (no MEMORY USAGE)' if size is None else f'{size} bytes'}", file=ctx.out)
    return 0


def _history(args: argparse.Namespace, ctx: Context) -> int:
    limit = None if args.all else limit_or_all(args.limit)
    since = None if args.since is None else moment(args.since, "since")
    until = None if args.until is None else moment(args.until, "until")
    with ctx.store(args) as store:
        messages = store.messages.history(args.key, limit, since=since, until=until)
    if args.json:
        emit_json(ctx, {"key": args.key, "messages": [to_json_value(m) for m in messages]})
        return 0
    for m in messages:
        meta = m["metadata"]
        who = meta.get("sender_id")
        sender = f" [{who} -> {meta.get('recipient_id')}]" if who else ""
        print(f"{m['timestamp']}  {m['role']}{sender}: {m['content']}", file=ctx.out)
    return 0


def _stats(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.store(args) as store:
        emulated = store.server_info().emulated
        by_type: dict[str, dict[str, int]] = {
            str(t): {"sessions": 0, "messages": 0} for t in SessionType
        }
        total = {"sessions": 0, "messages": 0}
        size = 0
        for key in iter_session_keys(store):
            state = store.driver.run(tp.session_state(store.config, key))
            session = store.sessions.get(key)
            if session is None:
                continue  # deleted meanwhile
            row = by_type[str(session.session_type)]
            for counts in (row, total):
                counts["sessions"] += 1
                counts["messages"] += state.stream_length
            if not emulated:
                size += store.driver.run(tp.memory_usage(store.config, key))
    report = {**total, "bytes": None if emulated else size, "by_type": by_type}
    if args.json:
        emit_json(ctx, report)
        return 0
    shown = "unknown (no MEMORY USAGE)" if emulated else f"{size}"
    print(f"sessions: {total['sessions']}", file=ctx.out)
    print(f"messages: {total['messages']}", file=ctx.out)
    print(f"bytes: {shown}", file=ctx.out)
    for kind, counts in by_type.items():
        print(
            f"  {kind}: {counts['sessions']} session(s), {counts['messages']} message(s)",
            file=ctx.out,
        )
    return 0
