"""The ``convstore`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convstore", description=__doc__)
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
    return parser


def _import_aiecs(args: argparse.Namespace) -> int:
    import asyncio
    import os

    import redis.asyncio

    from convstore.aiecs_import import import_aiecs
    from convstore.errors import ConvstoreError
    from convstore.store import AsyncConversationStore

    async def run() -> int:
        source = redis.asyncio.Redis.from_url(args.source_url, decode_responses=True)
        target_url = args.target_url or os.environ.get("REDIS_URL") or args.source_url
        target = AsyncConversationStore.from_url(target_url, namespace=args.namespace)
        try:
            report = await import_aiecs(source, target, progress=not args.no_progress)
        except (ConvstoreError, redis.exceptions.RedisError, OSError) as exc:
            print(f"import-aiecs failed: {exc}", file=sys.stderr)
            return 1
        finally:
            await source.aclose()
            await target.aclose()
        print(report.summary())
        return 0

    return asyncio.run(run())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from convstore.demo import main as demo_main

        return demo_main(sys.stdout, path=args.path)
    if args.command == "import-aiecs":
        return _import_aiecs(args)
    raise AssertionError(f"unhandled command {args.command}")  # argparse rejects unknown ones


if __name__ == "__main__":
    sys.exit(main())
