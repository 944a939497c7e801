"""Export/import throughput (messages/s) and peak memory, at 100k messages by default.

    python benchmarks/transfer.py --redis-url redis://127.0.0.1:6379/13 [--messages 100000]

Writes and deletes only keys under its own namespaces (``bench-transfer-<random>``).
Memory is measured with ``tracemalloc`` in a second pass (peak Python allocations while
exporting or importing); the timed pass runs without it. Constant memory shows as the
same peak at 10k and 100k messages (``--messages 10000``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable

import redis

from convstore import ConversationParticipant, ConversationSession, ConversationStore, utc_now
from convstore.transfer import export_jsonl, import_jsonl


def _fill(store: ConversationStore, messages: int, sessions: int) -> None:
    now = utc_now()
    people = [ConversationParticipant("u", "user"), ConversationParticipant("mc", "master_controller")]
    per = messages // sessions
    for s in range(sessions):
        key = store.sessions.create(ConversationSession(f"s{s}", people, "user_to_mc", now, now))
        for start in range(0, per, 1000):
            batch = [
                {"role": "user", "content": f"message {n} " + "x" * 80, "metadata": {"n": n}}
                for n in range(start, min(per, start + 1000))
            ]
            store.messages.append_many(key, batch)


def _measure(action: Callable[[], object]) -> tuple[float, float]:
    started = time.perf_counter()
    action()
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    action()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return elapsed, peak / 2**20


def _cleanup(client: redis.Redis, namespace: str) -> None:
    for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        client.delete(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13"))
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=10)
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    source_ns, target_ns = f"bench-transfer-{tag}", f"bench-transfer-{tag}-copy"
    source = ConversationStore.from_url(args.redis_url, namespace=source_ns)
    target = ConversationStore.from_url(args.redis_url, namespace=target_ns)
    path = tempfile.mktemp(suffix=".jsonl")
    try:
        _fill(source, args.messages, args.sessions)

        def export() -> None:
            with open(path, "w", encoding="utf-8") as out:
                export_jsonl(source, out)

        def load() -> None:
            with open(path, encoding="utf-8") as lines:
                import_jsonl(target, lines)

        export_s, export_mb = _measure(export)
        _cleanup(target.client, target_ns)
        started = time.perf_counter()
        load()
        import_s = time.perf_counter() - started
        tracemalloc.start()
        load()  # idempotent rerun: every message is skipped, same reading path
        import_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        size = os.path.getsize(path) / 2**20
        n = args.messages
        print(f"messages: {n} in {args.sessions} sessions, file {size:.1f} MiB")
        print(f"export: {n / export_s:,.0f} messages/s ({export_s:.1f} s), peak {export_mb:.1f} MiB")
        print(f"import: {n / import_s:,.0f} messages/s ({import_s:.1f} s), peak {import_mb:.1f} MiB")
    finally:
        _cleanup(source.client, source_ns)
        _cleanup(target.client, target_ns)
        if os.path.exists(path):
            os.unlink(path)


if __name__ == "__main__":
    main()
