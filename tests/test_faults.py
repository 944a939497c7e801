"""Fault tests: what the store guarantees when the server dies, stalls or fails over.

Each test starts its own redis-server(s) on free loopback ports (``tests/servers.py``)
and stops them by pid. The figures each test measured are printed (``pytest -s``) and
quoted in README's "Errors, retries and durability" section.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.cluster

from conftest import SessionFactory
from convstore import (
    ConversationStore,
    DurabilityNotMet,
    StoreUnavailable,
)
from servers import ServerProcess, start_cluster, start_server

pytestmark = pytest.mark.slow


def contents(store: ConversationStore, key: str) -> list[str]:
    return [m["content"] for m in store.messages.history(key)]


def test_kill9_and_restart_five_times_during_10000_appends(
    tmp_path: Path, make_session: SessionFactory
) -> None:
    server = start_server(tmp_path, ["--appendonly", "yes", "--appendfsync", "always"])
    store = ConversationStore.from_url(server.url, socket_timeout=2.0, socket_connect_timeout=1.0)
    key = store.sessions.save(make_session("kill9"))
    total, kills = 10_000, 5
    acked: list[int] = []
    errors: list[BaseException] = []
    downtimes: list[float] = []

    def killer() -> None:
        for k in range(1, kills + 1):
            while len(acked) < k * total // (kills + 1):
                time.sleep(0.001)
            down = time.monotonic()
            server.kill()
            time.sleep(0.05)
            server.restart()
            downtimes.append(time.monotonic() - down)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        started = time.monotonic()
        for i in range(total):
            try:
                store.messages.append(key, {"role": "user", "content": str(i)})
                acked.append(i)
            except StoreUnavailable as exc:
                errors.append(exc)
        elapsed = time.monotonic() - started
        thread.join()
        stored = contents(store, key)
    finally:
        store.close()
        server.stop()
    counts = Counter(stored)
    lost = [i for i in acked if str(i) not in counts]
    duplicated = [c for c, n in counts.items() if n > 1]
    print(
        f"\nkill -9 x{len(downtimes)} during {total} appends (AOF always): {len(acked)} acked, "
        f"{len(lost)} lost, {len(duplicated)} duplicated, {len(errors)} errors reached the "
        f"caller, stored {len(stored)}, downtime max {max(downtimes):.2f} s, {elapsed:.1f} s"
    )
    assert len(downtimes) == kills
    assert errors == [] and len(acked) == total
    assert lost == [] and duplicated == []
    assert stored == [str(i) for i in range(total)]  # order kept, nothing extra


def test_timeout_after_the_script_ran_then_retry_stores_one_copy(
    tmp_path: Path, make_session: SessionFactory
) -> None:
    """The server runs the append, then sleeps before writing the reply: the reply times out.

    Redis writes replies after the event-loop iteration. A first ``DEBUG SLEEP`` holds
    the append in the socket; when it ends, the append and a second ``DEBUG SLEEP`` (sent
    later, on a connection that is already open) are read in the same iteration: the
    script runs, then the server sleeps again before sending its reply.
    """
    server = start_server(tmp_path, ["--enable-debug-command", "local"])
    store = ConversationStore.from_url(server.url, socket_timeout=0.6)
    key = store.sessions.save(make_session("stall"))  # the store's connection is open
    store.messages.append(key, {"role": "user", "content": "warm"})  # the script is loaded
    first, second = (redis.Redis(port=server.port, socket_timeout=10) for _ in range(2))
    first.ping(), second.ping()
    stalls = [
        threading.Thread(target=first.execute_command, args=("DEBUG", "SLEEP", "0.4")),
        threading.Thread(target=second.execute_command, args=("DEBUG", "SLEEP", "1.0")),
    ]
    try:
        stalls[0].start()
        time.sleep(0.05)
        threading.Timer(0.05, stalls[1].start).start()
        started = time.monotonic()
        result = store.messages.append(key, {"role": "user", "content": "once"})
        waited = time.monotonic() - started
        for stall in stalls:
            stall.join()
        stored = contents(store, key)
    finally:
        store.close()
        first.close()
        second.close()
        server.stop()
    print(f"\nDEBUG SLEEP: answered after {waited:.2f} s (retried), {stored.count('once')} copy")
    assert waited > 0.6  # the first attempt timed out; the built-in retry answered
    assert not result.created  # the timed-out attempt had stored it ...
    assert stored == ["warm", "once"]  # ... and the retry did not store it again


def _append_worker(url: str, key: str, worker: int, count: int) -> None:
    store = ConversationStore.from_url(url)
    for i in range(count):
        store.messages.append(key, {"role": "user", "content": f"{worker}:{i}"})
    store.close()


def test_eight_processes_append_to_one_session(
    tmp_path: Path, make_session: SessionFactory
) -> None:
    server = start_server(tmp_path)
    store = ConversationStore.from_url(server.url)
    key = store.sessions.save(make_session("many"))
    workers, each = 8, 250
    context = multiprocessing.get_context("fork")
    procs = [
        context.Process(target=_append_worker, args=(server.url, key, w, each))
        for w in range(workers)
    ]
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=60)
        assert [proc.exitcode for proc in procs] == [0] * workers
        stored = contents(store, key)
        assert store.messages.count(key) == workers * each
    finally:
        store.close()
        server.stop()
    print(f"\n{workers} processes x {each} appends: {len(stored)} stored")
    assert Counter(stored) == Counter(f"{w}:{i}" for w in range(workers) for i in range(each))
    for w in range(workers):
        mine = [int(c.split(":")[1]) for c in stored if c.startswith(f"{w}:")]
        assert mine == list(range(each))


def test_cluster_master_kill9_with_wait_replicas_loses_no_acknowledged_write(
    tmp_path: Path, make_session: SessionFactory
) -> None:
    cluster = start_cluster(tmp_path, masters=3, replicas=1)
    client = redis.cluster.RedisCluster(
        host="127.0.0.1", port=cluster.ports[0], socket_timeout=1.0, socket_connect_timeout=0.5
    )
    store = ConversationStore(client, namespace="faults", wait_replicas=1, wait_timeout=0.5)
    try:
        keys = [store.sessions.save(make_session(f"c{{{i}}}")) for i in range(24)]
        slot = client.keyslot(store.config.keyspace.session(keys[0]).session)
        victim: ServerProcess = cluster.node_on(
            client.get_node_from_key(store.config.keyspace.session(keys[0]).session).port
        )
        on_victim = {
            k
            for k in keys
            if client.get_node_from_key(store.config.keyspace.session(k).session).port
            == victim.port
        }
        acked: dict[str, list[str]] = {k: [] for k in keys}
        not_replicated: list[Any] = []
        unavailable: list[StoreUnavailable] = []
        killed_at = recovered_at = None
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < 15 and (
            recovered_at is None or time.monotonic() - recovered_at < 2
        ):
            key = keys[n % len(keys)]
            text = f"m{n}"
            n += 1
            try:
                store.messages.append(key, {"role": "user", "content": text})
                acked[key].append(text)
            except DurabilityNotMet as exc:  # applied, but the new master has no replica
                not_replicated.append(exc)
                if killed_at and not recovered_at and key in on_victim:
                    recovered_at = time.monotonic()
            except StoreUnavailable as exc:
                unavailable.append(exc)
            else:
                if killed_at and not recovered_at and key in on_victim:
                    recovered_at = time.monotonic()
            if killed_at is None and time.monotonic() - started > 1.5:
                victim.kill()
                killed_at = time.monotonic()
        failover_owner = client.get_node_from_key(store.config.keyspace.session(keys[0]).session)
        lost = {key: sorted(set(texts) - set(contents(store, key))) for key, texts in acked.items()}
        total_lost = sum(len(v) for v in lost.values())
        print(
            f"\ncluster 3+3, master :{victim.port} (slot {slot}) kill -9 during writes with "
            f"wait_replicas=1: {sum(len(v) for v in acked.values())} acknowledged, "
            f"{total_lost} lost, {len(not_replicated)} DurabilityNotMet, "
            f"{len(unavailable)} StoreUnavailable; slot now on :{failover_owner.port}; "
            f"failover took {recovered_at - killed_at if recovered_at else -1:.1f} s"
        )
        assert (
            failover_owner.port != victim.port and recovered_at is not None
        )  # a replica took over
        assert total_lost == 0
        assert sum(len(v) for v in acked.values()) > 100
    finally:
        client.close()
        cluster.stop()
