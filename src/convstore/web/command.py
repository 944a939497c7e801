"""``convstore web``: serve the inspector with uvicorn (needs ``convstore[web]``)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from convstore.errors import ConfigurationError
from convstore.urls import redact_url

__all__ = ["add_parser", "register", "web_command"]

DEFAULT_PORT = 8765


def register(commands: Any) -> None:
    """The CLI package's hook: ``web`` and its handler."""
    add_parser(commands).set_defaults(handler=lambda args, ctx: web_command(args))


def add_parser(commands: Any) -> Any:
    """Add ``web`` to the CLI's subparsers; returns its parser."""
    web = commands.add_parser("web", help="a read-only web inspector of the store (loopback)")
    web.add_argument("--url", default=None, help="the Redis to read (default: REDIS_URL)")
    web.add_argument("--namespace", default=None, help="default: CONVSTORE_NAMESPACE or convstore")
    web.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    web.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default: {DEFAULT_PORT}")
    web.add_argument(
        "--token",
        default=None,
        help="required on every request (default: CONVSTORE_WEB_TOKEN; generated when "
        "--host is not loopback)",
    )
    web.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another Host header to accept (the name clients use); repeatable",
    )
    return web


def web_command(args: argparse.Namespace) -> int:
    """Run the server until interrupted. Off loopback a token is always required."""
    try:
        import uvicorn
    except ImportError as exc:
        raise ConfigurationError(
            "convstore web needs the web extra: pip install 'convstore[web]'"
        ) from exc
    from convstore.store import AsyncConversationStore
    from convstore.web.app import create_app
    from convstore.web.security import allowed_hosts, is_loopback, new_token

    url = args.url or os.environ.get("REDIS_URL")
    if not url:
        raise ConfigurationError("convstore web needs --url or REDIS_URL (the Redis to inspect)")
    namespace = args.namespace or os.environ.get("CONVSTORE_NAMESPACE") or "convstore"
    token = args.token or os.environ.get("CONVSTORE_WEB_TOKEN") or None
    if token is None and not is_loopback(args.host):
        token = new_token()
    store = AsyncConversationStore.from_url(url, namespace=namespace)
    app = create_app(
        store, token=token, hosts=allowed_hosts(args.host, args.allow_host), close_store=True
    )
    shown = f"[{args.host}]" if ":" in args.host else args.host
    link = f"http://{shown}:{args.port}/" + (f"?token={token}" if token else "")
    print(f"convstore web: {redact_url(url)} namespace {namespace!r}, read-only", flush=True)
    print(f"convstore web: open {link}", flush=True)
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=2
    )
    return 0


if __name__ == "__main__":  # python -m convstore.web.command
    parser = argparse.ArgumentParser(prog="convstore")
    add_parser(parser.add_subparsers(dest="command", required=True))
    sys.exit(web_command(parser.parse_args(["web", *sys.argv[1:]])))
