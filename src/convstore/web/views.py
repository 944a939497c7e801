"""The inspector's pages, all GET, all read through the store's public API.

Every stored string reaches the page through a Jinja2 template with autoescaping on, or
through a JSON block (``tojson`` escapes ``<``, ``>``, ``&`` and ``'``) that the page's
script reads and renders as text nodes.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from convstore.errors import CodecError, SessionNotFound, ValidationError
from convstore.models import ConversationSession, SessionType, utc_now
from convstore.store import AsyncConversationStore
from convstore.validation import stream_id_arg
from convstore.web.diagram import arrow, diagram
from convstore.web.export import session_jsonl, to_json

__all__ = ["export", "inbox_page", "live", "session_page", "sessions_page"]

#: Pages of the index read at most for one sessions page when an idle filter skips rows.
MAX_INDEX_PAGES = 20
#: Seconds between two keep-alive comments on an idle event stream.
KEEPALIVE = 15.0


def _store(request: Request) -> AsyncConversationStore:
    store: AsyncConversationStore = request.app.state.store
    return store


def _render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    response: Response = request.app.state.templates.TemplateResponse(
        request, name, context, status_code=status
    )
    return response


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"{name} must be a whole number, got {raw!r}", field=name) from None
    if not low <= value <= high:
        raise ValidationError(f"{name} must be between {low} and {high}, got {value}", field=name)
    return value


def _text_param(request: Request, name: str) -> str | None:
    return request.query_params.get(name) or None


def session_url(key: str, **query: str | None) -> str:
    """The session page's URL; any key (``/``, ``?``, ``#``, non-ASCII) survives the trip."""
    params = {k: v for k, v in query.items() if v}
    return f"/sessions/{quote(key, safe='')}" + (f"?{urlencode(params)}" if params else "")


def _idle_minutes(session: ConversationSession, now: datetime) -> float:
    return (now - session.last_activity).total_seconds() / 60


async def sessions_page(request: Request) -> Response:
    """``/``: most recently active first, from the indexes (``sessions.list``), filtered by
    participant and type there, and by idle time on the page (the index is ordered by
    activity, so an ``idle_max`` filter stops at the first session idle longer)."""
    participant = _text_param(request, "participant")
    session_type = _text_param(request, "type")
    idle_min = _int_param(request, "idle_min", 0, 0, 10**7)
    idle_max = _int_param(request, "idle_max", 0, 0, 10**7)
    limit = _int_param(request, "limit", 50, 1, 500)
    cursor = _text_param(request, "cursor")
    store, now = _store(request), utc_now()
    rows: list[ConversationSession] = []
    skipped = 0
    for _ in range(MAX_INDEX_PAGES):
        page = await store.sessions.list(
            participant, session_type, limit=limit, cursor=cursor, on_error="skip"
        )
        skipped += len(page.skipped)
        cursor = page.cursor
        for session in page.items:
            idle = _idle_minutes(session, now)
            if idle_max and idle > idle_max:
                cursor = None  # the index is by activity: every later one is idler still
                break
            if idle >= idle_min:
                rows.append(session)
        if cursor is None or len(rows) >= limit:
            break
    counts = await asyncio.gather(*(store.messages.count(s.generate_session_key()) for s in rows))
    filters = {
        "participant": participant,
        "type": session_type,
        "idle_min": str(idle_min or ""),
        "idle_max": str(idle_max or ""),
        "limit": str(limit) if limit != 50 else None,
    }
    next_url = None
    if cursor is not None:
        next_url = "/?" + urlencode({k: v for k, v in {**filters, "cursor": cursor}.items() if v})
    return _render(
        request,
        "sessions.html",
        {
            "rows": [
                {
                    "session": s,
                    "key": s.generate_session_key(),
                    "url": session_url(s.generate_session_key()),
                    "count": n,
                    "idle": _idle_minutes(s, now),
                }
                for s, n in zip(rows, counts, strict=True)
            ],
            "filters": filters,
            "session_types": [str(t) for t in SessionType],
            "next_url": next_url,
            "skipped": skipped,
            "first_page": _text_param(request, "cursor") is None,
        },
    )


async def session_page(request: Request) -> Response:
    """``/sessions/{key}``: the record, retention and TTL, the diagram and the list; the
    newest ``limit`` messages, ``before`` a page cursor, or a ``since``/``until`` range."""
    key = request.path_params["session_key"]
    limit = _int_param(request, "limit", 100, 1, 2000)
    before = _text_param(request, "before")
    since, until = _text_param(request, "since"), _text_param(request, "until")
    store = _store(request)
    session = await store.sessions.get(key)
    if session is None:
        raise SessionNotFound(key)
    ranged = since is not None or until is not None
    live_after = None
    older_url = None
    if ranged:
        found = await store.messages.history(key, limit, since=since, until=until, on_error="skip")
        messages, skipped = list(found), len(found.skipped)
    else:
        if before is None:  # read the live cursor first: the tail may repeat, never skip
            live_after = await _newest_id(store, key)
        page = await store.messages.page(key, before, limit, on_error="skip")
        messages, skipped = page.items, len(page.skipped)
        if page.cursor is not None:
            older_url = session_url(key, before=page.cursor, limit=str(limit))
    count, retention = await asyncio.gather(
        store.messages.count(key), store.sessions.retention(key)
    )
    drawn = diagram(session, messages)
    return _render(
        request,
        "session.html",
        {
            "key": key,
            "session": session,
            "record": session.to_dict(),
            "count": count,
            "retention": retention,
            "rows": list(zip(messages, drawn["arrows"], strict=True)),
            "diagram": drawn,
            "older_url": older_url,
            "newest_url": session_url(key) if before or ranged else None,
            "export_url": f"/export/{quote(key, safe='')}",
            "live_url": f"/live/{quote(key, safe='')}" if live_after is not None else None,
            "live_after": live_after,
            "since": since or "",
            "until": until or "",
            "limit": limit,
            "ranged": ranged,
            "skipped": skipped,
            "inbox_urls": {
                p.participant_id: f"/inboxes/{quote(p.participant_id, safe='')}"
                for p in session.participants
            },
        },
    )


async def export(request: Request) -> Response:
    """``/export/{key}``: the session as JSON Lines (see :mod:`convstore.web.export`)."""
    key = request.path_params["session_key"]
    lines = session_jsonl(_store(request), key)
    first = await anext(lines)  # a missing session is a 404, not a broken download
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in key)[:100]

    async def body() -> Any:
        yield first
        async for line in lines:
            yield line

    return StreamingResponse(
        body(),
        media_type="application/x-ndjson; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{safe or "session"}.jsonl"'},
    )


async def _newest_id(store: AsyncConversationStore, key: str) -> str:
    """The newest entry id ("0-0" for an empty history), damaged or not."""
    newest = await store.messages.entries(key, limit=1, on_error="skip")
    found = [e.entry_id for e in newest] + [x.entry_id for x in newest.skipped if x.entry_id]
    return found[0] if found else "0-0"


def _event(entry_id: str, data: dict[str, Any]) -> str:
    return f"id: {entry_id}\nevent: message\ndata: {to_json(data)}\n\n"


async def live(request: Request) -> Response:
    """``/live/{key}``: server-sent events, one per message appended after ``after`` (or
    the ``Last-Event-ID`` the browser resends on reconnect, which wins), from the store's
    live tail (``messages.follow``: a blocking read on a connection of its own per viewer).
    Every ``KEEPALIVE`` quiet seconds it sends a comment and checks the session still
    exists (a deleted one ends the stream with a ``gone`` event)."""
    key = request.path_params["session_key"]
    after = request.headers.get("last-event-id") or _text_param(request, "after")
    store = _store(request)
    session = await store.sessions.get(key)
    if session is None:
        raise SessionNotFound(key)
    if after is None:
        after = await _newest_id(store, key)
    stream_id_arg(after, "after")  # a bad cursor is a 400 here, before the stream starts

    async def stream() -> Any:
        cursor: str = after
        yield "retry: 1000\n\n"
        while True:
            follower = store.messages.follow(key, after=cursor, wait=KEEPALIVE)
            try:
                async for item in follower:
                    cursor = item.entry_id
                    try:
                        message = item.message
                    except CodecError as exc:
                        yield f"id: {cursor}\nevent: damaged\ndata: {to_json(str(exc))}\n\n"
                        continue
                    drawn = arrow(session, message, 0)
                    yield _event(cursor, {"message": message, "arrow": drawn})
            finally:
                await follower.aclose()
            if not await store.sessions.exists(key):
                yield "event: gone\ndata: {}\n\n"
                return
            yield ": keep-alive\n\n"

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"x-accel-buffering": "no"}
    )


async def inbox_page(request: Request) -> Response:
    """``/inboxes/{recipient_id}``: per consumer group what is pending and acknowledged
    (``store.inboxes.status``), then the dead letters, newest ``limit``
    (``store.inboxes.dead_letters``)."""
    recipient = request.path_params["recipient_id"]
    limit = _int_param(request, "limit", 50, 1, 1000)
    store = _store(request)
    status = await store.inboxes.status(recipient)
    dead = await store.inboxes.dead_letters(recipient, limit)
    return _render(
        request,
        "inbox.html",
        {
            "recipient": recipient,
            "limit": limit,
            "status": status,
            "dead": [
                {"letter": d, "url": session_url(d.session_key) if d.session_key else None}
                for d in reversed(dead)
            ],
        },
    )
