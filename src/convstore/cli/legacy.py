"""``demo`` and ``import-aiecs``: the commands that predate the operations CLI."""

from __future__ import annotations

import argparse
import os
from typing import Any

from convstore.cli.common import Context
from convstore.errors import StoreUnavailable
from convstore.urls import redact_url

__all__ = ["register"]


def register(commands: Any) -> None:
    demo = commands.add_parser(
        "demo", help="run the spec's scenario against REDIS_URL, or the embedded Redis"
    )
    demo.add_argument("--path", default=None, help="keep the data in a Valkey server under DIR")
    demo.set_defaults(handler=_demo)
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
    importer.set_defaults(handler=_import_aiecs)


def _demo(args: argparse.Namespace, ctx: Context) -> int:
    from convstore.demo import main as demo_main

    return demo_main(ctx.out, path=args.path)


def _import_aiecs(args: argparse.Namespace, ctx: Context) -> int:
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
    print(f"import-aiecs: source {redact_url(args.source_url)}", file=ctx.out)
    print(f"import-aiecs: target {redact_url(target_url)} (from {origin})", file=ctx.out)
    print(f"import-aiecs: namespace {args.namespace}", file=ctx.out, flush=True)

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
        print(report.summary(), file=ctx.out)
        return 0

    return asyncio.run(run())
