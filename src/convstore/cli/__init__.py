"""The ``convstore`` command.

Errors are one line on stderr (``convstore: error: ...``); ``--traceback`` adds the full
trace. Exit codes: 0 success, 1 the command failed (a server unreachable or refusing,
an unknown session, bad data), 2 bad command line or configuration (argparse's own code,
a malformed URL, a rejected option), 3 ``doctor`` found problems, 70 an unexpected
internal error (a bug: please report it with ``--traceback``), 130 interrupted.

Adding a command: write a module with ``register(commands)`` (see ``cli/common.py``) and
add it to :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from types import ModuleType

import redis

from convstore import __version__
from convstore.cli import agents, doctor, legacy, migrate, sessions, transfer
from convstore.cli.common import EXIT_PROBLEMS, Context
from convstore.errors import ConfigurationError, ConvstoreError, ValidationError
from convstore.store import ConversationStore
from convstore.web import command as web

__all__ = [
    "COMMAND_MODULES",
    "EXIT_FAILED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_PROBLEMS",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

#: Each module's ``register(commands)`` adds its sub-command(s); order = ``--help`` order.
COMMAND_MODULES: list[ModuleType] = [legacy, agents, sessions, transfer, doctor, migrate, web]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convstore", description="The convstore command.")
    parser.add_argument("--version", action="version", version=f"convstore {__version__}")
    parser.add_argument(
        "--traceback", action="store_true", help="on an error, print the full Python traceback"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, ConfigurationError | ValidationError):
        return EXIT_USAGE
    if isinstance(exc, ConvstoreError | redis.exceptions.RedisError | OSError):
        return EXIT_FAILED
    if isinstance(exc, ValueError):  # redis-py's URL parsing: a malformed URL
        return EXIT_USAGE
    return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text}"


def main(
    argv: Sequence[str] | None = None,
    *,
    store_factory: Callable[[argparse.Namespace], ConversationStore] | None = None,
) -> int:
    """Run the command line; ``store_factory`` (tests) replaces ``--url`` with a given store."""
    args = build_parser().parse_args(argv)
    ctx = Context(sys.stdout, sys.stderr, store_factory)
    try:
        code: int = args.handler(args, ctx)
        return code
    except KeyboardInterrupt:
        print("convstore: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the command's one place that reports failures
        if args.traceback:
            traceback.print_exc()
        code = _exit_code(exc)
        hint = "" if args.traceback else " (--traceback for details)"
        bug = "internal error, please report it: " if code == EXIT_INTERNAL else ""
        print(f"convstore: error: {bug}{_one_line(exc)}{hint}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
