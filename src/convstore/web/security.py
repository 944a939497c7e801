"""What keeps the inspector safe to run: loopback by default, a token anywhere else, a
Host check against DNS rebinding, and headers that forbid inline script and framing.

Both middlewares are plain ASGI so that server-sent event streams pass through unbuffered.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from convstore.errors import ConfigurationError

__all__ = [
    "SECURITY_HEADERS",
    "TOKEN_COOKIE",
    "HostGate",
    "TokenGate",
    "allowed_hosts",
    "check_token",
    "host_name",
    "is_loopback",
    "new_token",
    "security_headers",
]

TOKEN_COOKIE = "convstore_web_token"

#: Sent with every response: no inline script (the pages' data sits in JSON blocks that
#: the browser never runs), no framing, no MIME sniffing, no referrer leaking keys.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and any loopback IP address (``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> list[str]:
    """Host header values to accept: the loopback names, the bind address, and ``extra``
    (a name the server is reached by). A rebinding page's own name is never among them."""
    hosts = ["127.0.0.1", "localhost", "::1", "[::1]"]
    if bind not in ("0.0.0.0", "::", ""):
        hosts.append(f"[{bind}]" if ":" in bind else bind)
    hosts.extend(extra)
    return list(dict.fromkeys(hosts))


def check_token(token: object) -> str:
    """A token must be a printable ASCII string of at least 16 characters (guessing-proof)."""
    if not (
        isinstance(token, str) and len(token) >= 16 and token.isascii() and token.isprintable()
    ):
        raise ConfigurationError("the web token must be printable ASCII, at least 16 characters")
    return token


def new_token() -> str:
    return secrets.token_urlsafe(24)


def security_headers(app: ASGIApp) -> ASGIApp:
    """Wrap ``app`` so every HTTP response carries :data:`SECURITY_HEADERS`."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await app(scope, receive, send_with_headers)

    return wrapped


def host_name(header: str) -> str:
    """The name in a Host header, without the port (``[::1]:8765`` -> ``[::1]``)."""
    if header.startswith("["):
        return header[: header.find("]") + 1] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostGate:
    """Refuse (400) a request whose Host header names none of ``hosts``: a page on another
    name that rebinds its DNS to 127.0.0.1 still sends its own name, and is refused."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        self.app = app
        self._hosts = {h.lower() for h in hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = dict(scope["headers"])
            host = host_name(headers.get(b"host", b"").decode("latin-1").lower())
            if host not in self._hosts:
                await _respond(send, 400, [(b"content-type", b"text/plain; charset=utf-8")],
                               b"convstore web: this Host is not served (see --allow-host)")  # fmt: skip
                return
        await self.app(scope, receive, send)


class TokenGate:
    """Refuse every request without the token (401). The token comes as ``?token=`` once
    (answered with a redirect that sets an HttpOnly, SameSite=Strict cookie and drops it
    from the address bar), as the cookie, or as ``Authorization: Bearer``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = check_token(token).encode()

    def _matches(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self._token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        cookie = SimpleCookie()
        cookie.load(headers.get("cookie", ""))
        bearer = headers.get("authorization", "")
        if self._matches(query.get("token", [None])[-1]):
            here = scope.get("raw_path") or quote(scope["path"]).encode()
            await _respond(send, 303, [(b"location", here), _cookie(self._token)])
        elif (TOKEN_COOKIE in cookie and self._matches(cookie[TOKEN_COOKIE].value)) or (
            bearer.startswith("Bearer ") and self._matches(bearer[7:])
        ):
            await self.app(scope, receive, send)
        else:
            await _respond(send, 401, [(b"content-type", b"text/plain; charset=utf-8")],
                           b"convstore web: a token is required (open the URL the server printed)")  # fmt: skip


def _cookie(token: bytes) -> tuple[bytes, bytes]:
    return (
        b"set-cookie",
        TOKEN_COOKIE.encode() + b"=" + token + b"; HttpOnly; SameSite=Strict; Path=/",
    )


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
