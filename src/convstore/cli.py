"""The ``convstore`` command.

Errors are one line on stderr (``convstore: error: ...``); ``--traceback`` adds the full
trace. Exit codes: 0 success, 1 the command failed (a server unreachable or refusing,
bad data), 2 bad command line or configuration (argparse's own code, a malformed URL,
a rejected option), 70 an unexpected internal error (a bug: please report it with
``--traceback``), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

import redis

from convstore import __version__
from convstore.errors import (
    ConfigurationError,
    ConvstoreError,
    StoreUnavailable,
    ValidationError,
)
from convstore.urls import redact_url

__all__ = ["EXIT_FAILED", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_USAGE", "build_parser", "main"]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convstore", description="The convstore command.")
    parser.add_argument("--version", action="version", version=f"convstore {__version__}")
    parser.add_argument(
        "--traceback", action="store_true", help="on an error, print the full Python traceback"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="run the spec's scenario against REDIS_URL, or the embedded Redis"
    )
    demo.add_argument("--path", default=None, help="keep the data in a Valkey server under DIR")
    importer = commands.add_parser(
        "import-aiecs",
        help="copy a live aiecs ContextEngine Redis (its key layout) into convstore",
    )
    importer.add_argument("source_url", metavar="SOURCE_URL", help="the ContextEngine Redis")
    importer.add_argument(
        "--target-url",
        default=None,
        help="the convstore Redis (default: REDIS_URL, else SOURCE_URL itself)",
    )
    importer.add_argument("--namespace", default="convstore", help="convstore namespace")
    importer.add_argument("--no-progress", action="store_true", help="no progress bar")
    from convstore.web.command import add_parser as add_web_parser

    add_web_parser(commands)
    return parser


def _import_aiecs(args: argparse.Namespace) -> int:
    import asyncio

    import redis.asyncio

    from convstore.aiecs_import import import_aiecs
    from convstore.store import AsyncConversationStore

    if args.target_url:
        target_url, origin = args.target_url, "--target-url"
    elif os.environ.get("REDIS_URL"):
        target_url, origin = os.environ["REDIS_URL"], "REDIS_URL"
    else:
        target_url, origin = args.source_url, "SOURCE_URL, as no target was given"
    print(f"import-aiecs: source {redact_url(args.source_url)}")
    print(f"import-aiecs: target {redact_url(target_url)} (from {origin})")
    print(f"import-aiecs: namespace {args.namespace}", flush=True)

    async def run() -> int:
        source = redis.asyncio.Redis.from_url(  # timeouts: a dead host must not hang it
            args.source_url, decode_responses=True, socket_connect_timeout=5.0, socket_timeout=30.0
        )
        try:
            target = AsyncConversationStore.from_url(target_url, namespace=args.namespace)
        except BaseException:
            await source.aclose()
            raise
        try:
            try:
                await source.ping()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                raise StoreUnavailable(
                    f"source {redact_url(args.source_url)} is unreachable: {exc}"
                ) from exc
            try:
                await target.ping()  # an empty source must not hide a dead target
            except StoreUnavailable as exc:
                raise StoreUnavailable(
                    f"target {redact_url(target_url)} is unreachable: {exc}"
                ) from exc
            report = await import_aiecs(source, target, progress=not args.no_progress)
        finally:
            await source.aclose()
            await target.aclose()
        print(report.summary())
        return 0

    return asyncio.run(run())


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from convstore.demo import main as demo_main

            return demo_main(sys.stdout, path=args.path)
        if args.command == "import-aiecs":
            return _import_aiecs(args)
        if args.command == "web":
            from convstore.web.command import web_command

            return web_command(args)
        raise AssertionError(f"unhandled command {args.command}")  # argparse rejects others
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
