"""What every store command shares: the connection options, the store, and the output.

A command module exposes ``register(commands)``: it adds its sub-parser(s) to ``commands``
(argparse's sub-parsers action) with ``set_defaults(handler=run)``, where
``run(args, ctx) -> int`` returns the exit code. Store commands take ``parents=[STORE]``
for ``--url`` / ``--namespace`` / ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TextIO

from redis.backoff import ExponentialWithJitterBackoff

from convstore.errors import ConfigurationError, ValidationError
from convstore.models import to_utc, utc_now
from convstore.policies import RetryPolicy
from convstore.store import DEFAULT_NAMESPACE, ConversationStore

__all__ = [
    "CLI_RETRY",
    "EXIT_PROBLEMS",
    "STORE",
    "Context",
    "Handler",
    "emit_json",
    "moment",
    "progress_printer",
]

#: ``doctor`` found problems (``migrate --dry-run --check``: records need upgrading).
EXIT_PROBLEMS = 3

#: A command line gives up on a dead server within seconds, not the library's 10 s.
CLI_RETRY = RetryPolicy(attempts=3, backoff=ExponentialWithJitterBackoff(0.05, 0.5), deadline=3.0)


def _store_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--url",
        default=None,
        help="the Redis URL (redis://, rediss://, unix://; default: REDIS_URL)",
    )
    parent.add_argument(
        "--namespace",
        default=None,
        help=f"the convstore namespace (default: CONVSTORE_NAMESPACE, else {DEFAULT_NAMESPACE})",
    )
    parent.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parent


#: The parent parser of every store command.
STORE = _store_options()


@dataclass
class Context:
    """What a command runs with: where to print, and how to get its store."""

    out: TextIO
    err: TextIO
    store_factory: Callable[[argparse.Namespace], ConversationStore] | None = None

    def store(self, args: argparse.Namespace) -> ConversationStore:
        """The store named by ``--url``/``REDIS_URL`` and ``--namespace`` (or the test's)."""
        if self.store_factory is not None:
            return self.store_factory(args)
        url = args.url or os.environ.get("REDIS_URL")
        if not url:
            raise ConfigurationError("no server given: pass --url or set REDIS_URL")
        namespace = args.namespace or os.environ.get("CONVSTORE_NAMESPACE") or DEFAULT_NAMESPACE
        return ConversationStore.from_url(
            url,
            namespace=namespace,
            retry=CLI_RETRY,
            socket_connect_timeout=3.0,
        )


Handler = Callable[[argparse.Namespace, Context], int]


def emit_json(ctx: Context, value: Any) -> None:
    """One JSON document on stdout (``--json``)."""
    ctx.out.write(json.dumps(value, ensure_ascii=False, indent=2, allow_nan=False) + "\n")


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def moment(text: str, field: str) -> datetime:
    """An ISO 8601 time, or a duration ago (``90s``, ``30m``, ``2h``, ``7d``)."""
    found = _DURATION.fullmatch(text.strip())
    if found:
        return utc_now() - timedelta(seconds=float(found[1]) * _UNITS[found[2]])
    try:
        return to_utc(text, field)
    except ValidationError:
        raise ValidationError(
            f"{field} must be an ISO 8601 time or a duration like 30m, 2h, 7d; got {text!r}",
            field=field,
        ) from None


def progress_printer(enabled: bool, verb: str) -> Callable[[int, int], None] | None:
    """A one-line counter on stderr when it is a terminal (and not ``--no-progress``)."""
    if not enabled or not sys.stderr.isatty():
        return None

    def show(sessions: int, messages: int) -> None:
        sys.stderr.write(f"\r{verb} {sessions} session(s), {messages} message(s)")
        sys.stderr.flush()

    return show
