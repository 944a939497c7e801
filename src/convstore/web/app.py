"""``create_app(store)``: the read-only inspector as a Starlette ASGI app.

Only GET routes exist (anything else is 405). The Host header must be one of
``allowed_hosts`` (400 otherwise: a DNS-rebinding page cannot talk to it), and with a
``token`` every request must carry it (see :class:`convstore.web.security.TokenGate`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from convstore.errors import CodecError, ConvstoreError, SessionNotFound, ValidationError
from convstore.store import AsyncConversationStore
from convstore.web import views
from convstore.web.security import HostGate, TokenGate, allowed_hosts, check_token, security_headers

__all__ = ["create_app"]

_PACKAGE = files("convstore.web")


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_PACKAGE / "templates")),
        autoescape=True,  # every {{ value }} is HTML-escaped; nothing is marked safe
        undefined=jinja2.StrictUndefined,
    )
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "default": repr}
    return Jinja2Templates(env=env)


def _error_status(exc: Exception) -> int:
    if isinstance(exc, SessionNotFound):
        return 404
    if isinstance(exc, ValidationError):
        return 400
    if isinstance(exc, CodecError):
        return 500
    return 503  # the server is unreachable, refusing, or answering what convstore cannot read


async def _on_error(request: Request, exc: Exception) -> Response:
    status = _error_status(exc)
    response: Response = request.app.state.templates.TemplateResponse(
        request,
        "error.html",
        {"status": status, "kind": type(exc).__name__, "message": str(exc)},
        status_code=status,
    )
    return response


def create_app(
    store: AsyncConversationStore,
    *,
    token: str | None = None,
    hosts: Sequence[str] | None = None,
    close_store: bool = False,
) -> Any:
    """The inspector over ``store`` (an :class:`AsyncConversationStore`).

    ``hosts``: the Host header values accepted (default: the loopback names). ``token``:
    when given, required on every request (``convstore web`` always sets one when bound
    beyond loopback).
    ``close_store``: close the store when the app shuts down (the command's own store).
    """
    if not isinstance(store, AsyncConversationStore):
        raise TypeError(f"create_app needs an AsyncConversationStore, got {type(store).__name__}")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if close_store:
            await store.aclose()

    routes = [
        Route("/", views.sessions_page, methods=["GET"]),
        Route("/sessions/{session_key:path}", views.session_page, methods=["GET"]),
        Route("/live/{session_key:path}", views.live, methods=["GET"]),
        Route("/export/{session_key:path}", views.export, methods=["GET"]),
        Route("/inboxes/{recipient_id:path}", views.inbox_page, methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(_PACKAGE / "static")), name="static"),
    ]
    middleware = [Middleware(HostGate, hosts=list(hosts or allowed_hosts("127.0.0.1")))]
    if token is not None:
        middleware.append(Middleware(TokenGate, token=check_token(token)))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={ConvstoreError: _on_error},
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.templates = _templates()
    return security_headers(app)
