"""Command line, safety checks (loopback, empty database) and cleanup."""

from __future__ import annotations

import argparse
import ipaddress
import os
import platform
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import redis

from benchmarks import report
from benchmarks.common import SIZES, Progress, Results
from benchmarks.goal_table import print_goals
from benchmarks.goals import GoalRun, goal_peers_state, parser_in_use
from benchmarks.peers import PEERS, availability
from benchmarks.workloads import CLIENT_OPTIONS, Bench, Step, run_steps
from convstore import KeySpace, ValidationError
from convstore.urls import redact_url

DEFAULT_URL = "redis://127.0.0.1:6379/13"


class Refused(Exception):
    """The benchmark will not run against this server or database."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark convstore against raw redis-py baselines and its peers.",
    )
    p.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", DEFAULT_URL),
        help=f"the Redis to measure against (default $REDIS_URL or {DEFAULT_URL})",
    )
    p.add_argument("--size", choices=sorted(SIZES), default="full")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("benchmark-results"),
        help="directory for results.json and results.png",
    )
    p.add_argument(
        "--allow-nonempty",
        action="store_true",
        help="run even if the database already holds keys (only ours are touched)",
    )
    p.add_argument(
        "--namespace",
        default=None,
        help="key prefix of the run (default: a fresh bench-<random>); every key it writes, "
        "and so every key it deletes, is under NAMESPACE:*",
    )
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback server")
    p.add_argument("--no-peers", action="store_true", help="skip langchain / llama-index")
    goals = p.add_argument_group("issue 11 goal table (measured after W1-W9, same run)")
    goals.add_argument("--no-goals", action="store_true", help="skip the goal table")
    goals.add_argument("--goals-only", action="store_true", help="only the goal table")
    goals.add_argument(
        "--goals-on-target",
        action="store_true",
        help="measure the goals on --redis-url instead of a private pinned redis-server",
    )
    goals.add_argument("--no-pin", action="store_true", help="do not pin client and server")
    args = p.parse_args(argv)
    if args.no_goals and args.goals_only:
        p.error("--no-goals and --goals-only exclude each other")
    return args


def is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return True
    host = parts.hostname or "localhost"
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_target(url: str, allow_remote: bool, allow_nonempty: bool) -> redis.Redis:
    if not is_loopback(url) and not allow_remote:
        raise Refused(f"{redact_url(url)} is not a loopback address; pass --allow-remote to use it")
    client = redis.Redis.from_url(url, **CLIENT_OPTIONS)
    try:
        keys = int(client.dbsize())
    except redis.RedisError as exc:
        client.close()
        raise Refused(f"cannot reach Redis at {redact_url(url)}: {exc}") from exc
    if keys and not allow_nonempty:
        db = client.connection_pool.connection_kwargs.get("db", 0)
        client.close()
        raise Refused(
            f"database {db} at {redact_url(url)} already holds {keys} keys; use an empty database "
            f"(e.g. {DEFAULT_URL}) or pass --allow-nonempty (only keys under the run's own "
            "prefix are written and deleted)"
        )
    return client


def cleanup(client: redis.Redis, namespace: str) -> int:
    """Delete every key under the run's prefix; returns how many went."""
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += int(client.delete(*batch))
            batch = []
    if batch:
        deleted += int(client.delete(*batch))
    return deleted


def _meta(url: str, size: str, namespace: str, client: redis.Redis) -> dict[str, Any]:
    info = client.info("server")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "size": size,
        "redis_url": redact_url(url),
        "redis_version": info.get("redis_version"),
        "python": platform.python_version(),
        "redis_py": redis.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "namespace": namespace,
    }


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size = SIZES[args.size]
    try:
        admin = check_target(args.redis_url, args.allow_remote, args.allow_nonempty)
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    namespace = args.namespace or f"bench-{uuid.uuid4().hex[:10]}"
    try:
        KeySpace(namespace)  # the store's own rule, so the prefix is one convstore accepts
    except ValidationError as exc:
        admin.close()
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, _sigterm)
    results = Results()
    bench: Bench | None = None
    peers_state = (
        availability() if not args.no_peers else {name: "skipped (--no-peers)" for name in PEERS}
    )
    peers: list[Any] = []
    goals: GoalRun | None = None
    started = time.perf_counter()
    try:
        meta = _meta(args.redis_url, size.name, namespace, admin)
        steps: list[Step] = []
        if not args.goals_only:
            bench = Bench(args.redis_url, namespace, size, results)
            steps += bench.steps()
            for name, factory in PEERS.items():
                if peers_state[name].startswith("installed"):
                    try:
                        peer = factory(bench)
                    except Exception as exc:  # noqa: BLE001 - a broken peer must not stop the run
                        peers_state[name] = f"failed to start: {type(exc).__name__}: {exc}"
                        continue
                    peers.append(peer)
                    steps += peer.steps(size)
        if not args.no_goals:
            goals = GoalRun(
                target_url=args.redis_url,
                prefix=namespace,
                size=size.name,
                pin=not args.no_pin,
                own_server=not args.goals_on_target,
                peers_state=goal_peers_state(peers_state),
            )
            steps += goals.steps()
        print(
            f"convstore benchmark, size={size.name}, {len(steps)} steps, prefix {namespace}:*",
            file=sys.stderr,
        )
        with Progress(len(steps)) as progress:
            run_steps(steps, progress)
        meta["seconds"] = round(time.perf_counter() - started, 1)
        meta["reply_parser"] = parser_in_use()
        built = report.build(results, meta, peers_state)
        args.out.mkdir(parents=True, exist_ok=True)
        json_path = args.out / "results.json"
        if args.goals_only:
            built["chart"] = "skipped (--goals-only)"
        else:
            built["chart"] = report.write_chart(built, args.out / "results.png")
        if goals is not None:
            built["goals"] = goals.report()
        report.write_json(built, json_path)
        if not args.goals_only:
            report.print_tables(built)
        if goals is not None:
            print_goals(built["goals"])
        print(f"\npeers: {peers_state}", file=sys.stderr)
        print(f"JSON: {json_path}\nchart: {built['chart']}", file=sys.stderr)
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        closers = [p.close for p in peers] + ([bench.close] if bench else [])
        for closer in [*closers, *([goals.stop] if goals else [])]:
            try:
                closer()
            except Exception as exc:  # noqa: BLE001 - cleanup below must still run
                print(f"while closing: {type(exc).__name__}: {exc}", file=sys.stderr)
        gone = cleanup(admin, namespace)
        print(f"cleanup: deleted {gone} keys under {namespace}:*", file=sys.stderr)
        admin.close()
        signal.signal(signal.SIGTERM, previous)
