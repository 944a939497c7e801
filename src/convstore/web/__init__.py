"""``convstore web``: a read-only inspector of a store, as a small Starlette app.

Needs the ``web`` extra (``pip install 'convstore[web]'``). ``create_app(store)`` builds
the ASGI app over an :class:`~convstore.AsyncConversationStore`; ``web_command`` is the
CLI's entry. See README "Web inspector". Importing this package needs no extra: the app
and its dependencies load on first use of ``create_app`` or ``session_jsonl``.
"""

from typing import Any

from convstore.web.command import add_parser, web_command

__all__ = ["add_parser", "create_app", "session_jsonl", "web_command"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from convstore.web.app import create_app

        return create_app
    if name == "session_jsonl":
        from convstore.web.export import session_jsonl

        return session_jsonl
    raise AttributeError(f"module 'convstore.web' has no attribute {name!r}")
