"""``convstore tail SESSION_KEY``: print a session's messages as they arrive.

Self-contained (``tail_command(args)`` plus ``add_tail_parser``) so the CLI can wire it in
wherever its commands live. Ctrl-C closes the tail and is reported by the CLI as an
interruption (exit code 130); a missing session or an unreachable server fails (exit 1).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from convstore.follow import FollowedMessage
from convstore.store import ConversationStore

__all__ = ["add_tail_parser", "format_message", "tail_command"]


def add_tail_parser(commands: Any) -> argparse.ArgumentParser:
    """Register ``tail`` on an argparse subparsers object."""
    tail: argparse.ArgumentParser = commands.add_parser(
        "tail", help="follow a session: print its messages as they arrive (Ctrl-C stops)"
    )
    tail.add_argument("session_key", metavar="SESSION_KEY", help="the session to follow")
    tail.add_argument(
        "--after",
        default=None,
        help="start after this entry id ('0-0': the whole history first); default: from now",
    )
    tail.add_argument("--namespace", default=None, help="default: CONVSTORE_NAMESPACE or convstore")
    tail.add_argument(
        "--wait", type=float, default=None, help="stop after this many seconds without a message"
    )
    return tail


def format_message(item: FollowedMessage) -> str:
    """One readable line: time, who, to whom and what kind, then the content."""
    entry = item.message
    meta = entry["metadata"]
    when = str(entry["timestamp"])[11:23]
    agent = item.agent_message()
    if agent is None:
        who = entry["role"]
    else:
        who = f"{agent.sender_id} -> {agent.recipient_id} [{agent.message_type}]"
    extra = {k: v for k, v in meta.items() if k in ("task_id", "attachments")}
    suffix = f"  {extra}" if extra else ""
    return f"{when}  {who:<48} {entry['content']}{suffix}"


def tail_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Follow ``args.session_key`` until Ctrl-C (or ``--wait`` idle seconds); returns 0."""
    store = ConversationStore.from_env(namespace=args.namespace)
    try:
        print(f"convstore tail: following {args.session_key} (Ctrl-C stops)", file=out, flush=True)
        with store.messages.follow(args.session_key, after=args.after, wait=args.wait) as follower:
            for item in follower:
                print(format_message(item), file=out, flush=True)
    finally:
        store.close()
    return 0
