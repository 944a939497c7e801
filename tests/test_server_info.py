"""Capability detection: who the server is and what it can do, on every backend, cached.

The live tests run on fakeredis, the machine's Redis 7.0 and the suite's Valkey 9; the
parsing tests feed the plan canned replies (RESP2 and RESP3 shapes, and garbage).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from conftest import StoreFactory, aw
from convstore import ConversationStore, ServerInfo, UnexpectedReply, set_metrics_hook
from convstore.plans import StoreConfig
from convstore.plans.server import parse_hello, parse_info, parse_version, server_info
from servers import start_server

VALKEY_INFO = (
    "# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:9.1.2\r\n"
    "redis_mode:standalone\r\n\r\n# Persistence\r\naof_enabled:1\r\n\r\n"
    "# Cluster\r\ncluster_enabled:0\r\n"
)


def drive(replies: list[Any]) -> ServerInfo:
    """Run the sans-IO plan on canned replies, checking the commands it asks for."""
    plan = server_info(StoreConfig.__new__(StoreConfig))
    asked = [next(plan).args]
    try:
        for reply in replies:
            asked.append(plan.send(reply).args)
    except StopIteration as stop:
        assert asked[: len(replies)] == [("HELLO",), ("INFO",)][: len(replies)]
        result: ServerInfo = stop.value
        return result
    raise AssertionError(f"the plan wanted more steps: {asked}")


async def test_server_info_names_each_backend(backend: str, factory: StoreFactory) -> None:
    store = factory()
    info = await aw(store.server_info())
    assert isinstance(info, ServerInfo)
    if backend == "fake":
        assert info.name == "fakeredis" and info.emulated
        assert (info.waitaof, info.aof_enabled, info.cluster) == (False, False, False)
        assert info.client_setinfo  # fakeredis accepts CLIENT SETINFO
    elif backend == "real":
        assert info.name == "redis" and info.version >= (7, 0, 0) and not info.emulated
        assert info.waitaof == (info.version >= (7, 2, 0))
    else:
        assert info.name == "valkey" and info.version >= (9, 0, 0)
        assert info.waitaof and info.client_setinfo and info.hash_field_expiry
    assert info.mode == "standalone" and not info.cluster
    assert info.version_string.count(".") == 2


async def test_server_info_is_asked_once(backend: str, factory: StoreFactory) -> None:
    store = factory()
    seen: list[str] = []
    set_metrics_hook(lambda name, value, tags: seen.append(tags["operation"]))
    try:
        first = await aw(store.server_info())
        second = await aw(store.server_info())
    finally:
        set_metrics_hook(None)
    assert first is second
    assert seen == ["server_info"]


def test_valkey_reports_an_old_redis_version_but_its_own_is_used(real_url: str) -> None:
    """Valkey's INFO says redis_version:7.2.4 (compatibility); WAITAOF is judged on its own."""
    with redis.Redis.from_url(real_url) as client:
        raw = client.info("server")
        store_info = drive([client.execute_command("HELLO"), client.execute_command("INFO")])
    if "valkey_version" in raw:
        assert raw["redis_version"] == "7.2.4" and store_info.name == "valkey"
        assert store_info.version == parse_version(raw["valkey_version"])
    else:
        assert store_info.version == parse_version(raw["redis_version"])


def test_aof_enabled_is_read_from_info_persistence(tmp_path: Path) -> None:
    """A Redis started with appendonly yes says so; the shared one (AOF off) says not."""
    server = start_server(tmp_path, ["--appendonly", "yes"])
    try:
        with redis.Redis.from_url(server.url) as client:
            info = drive([client.execute_command("HELLO"), client.execute_command("INFO")])
        assert info.aof_enabled and info.name == "redis"
    finally:
        server.stop()


def test_resp2_replies_and_raw_info_text() -> None:
    hello = [b"server", b"redis", b"version", b"7.2.5", b"proto", 2, b"mode", b"standalone"]
    info = drive([hello, VALKEY_INFO.encode()])
    assert info == ServerInfo("valkey", (9, 1, 2), "standalone", False, True, True, True, True)
    assert drive([{"server": "fakeredis", "version": "2.40.0"}]).emulated


def test_old_servers_lack_the_new_commands() -> None:
    hello = {b"server": b"redis", b"version": b"7.0.15", b"mode": b"cluster"}
    info = drive([hello, {"aof_enabled": 0, "cluster_enabled": 1}])
    assert (info.waitaof, info.client_setinfo, info.hash_field_expiry) == (False, False, False)
    assert info.cluster and info.mode == "cluster"
    redis_74 = drive([{"server": "redis", "version": "7.4.1"}, {"aof_enabled": 0}])
    assert redis_74.waitaof and redis_74.hash_field_expiry
    valkey_8 = drive([{"server": "valkey", "version": "8.1.0"}, {"aof_enabled": 1}])
    assert valkey_8.waitaof and not valkey_8.hash_field_expiry


@pytest.mark.parametrize(
    ("replies", "message"),
    [
        ([b"OK"], "HELLO replied"),
        ([[b"server", b"redis", b"version"]], "HELLO replied"),
        ([{"server": "redis"}], "no 'version' field"),
        ([{"server": "redis", "version": "seven"}], "not a version number"),
        ([{"server": b"\xff", "version": "7.0.0"}], "not UTF-8"),
        ([{"server": "redis", "version": "7.0.0"}, b"# Server\r\ngarbage\r\n"], "line 2"),
        ([{"server": "redis", "version": "7.0.0"}, {"aof_enabled": "yes"}], "0 or 1"),
        ([{"server": "redis", "version": "7.0.0"}, [b"aof_enabled", 1]], "should be text"),
    ],
)
def test_garbage_replies_raise_a_typed_error(replies: list[Any], message: str) -> None:
    with pytest.raises(UnexpectedReply, match=message):
        drive(replies)


def test_parsers_accept_both_shapes() -> None:
    assert parse_hello({b"server": b"valkey", b"version": b"9.1.2"})["server"] == b"valkey"
    assert parse_info("a:1\n# Section\nb:x:y\n") == {"a": "1", "b": "x:y"}
    assert parse_version("8.0.0-rc1") == (8, 0, 0) and parse_version(b"7.2") == (7, 2, 0)


@pytest.mark.parametrize("protocol", [2, 3])
def test_same_answer_over_resp2_and_resp3(real_url: str, protocol: int) -> None:
    """HELLO comes back as a flat list on RESP2 and a map on RESP3; INFO likewise differs."""
    with redis.Redis.from_url(real_url, protocol=protocol) as client:
        info = ConversationStore(client, namespace="info").server_info()
        raw = client.execute_command("HELLO")
    assert isinstance(raw, list if protocol == 2 else dict)
    with redis.Redis.from_url(real_url, protocol=3) as other:
        assert ConversationStore(other, namespace="info").server_info() == info


def test_detected_capabilities_match_what_the_server_accepts(real_url: str) -> None:
    """WAITAOF and CLIENT SETINFO work exactly where server_info() says they exist."""
    with redis.Redis.from_url(real_url) as client:
        info = ConversationStore(client, namespace="info").server_info()
        probes = {
            "waitaof": ("WAITAOF", 0, 0, 0),  # numlocal 0: allowed with AOF off
            "client_setinfo": ("CLIENT", "SETINFO", "LIB-VER", "1.0"),
        }
        for capability, command in probes.items():
            try:
                client.execute_command(*command)
                accepted = True
            except redis.exceptions.ResponseError as exc:
                assert "unknown" in str(exc).lower(), exc
                accepted = False
            assert accepted == getattr(info, capability), (capability, info)
        if info.waitaof and not info.aof_enabled:
            with pytest.raises(redis.exceptions.ResponseError, match="appendonly is disabled"):
                client.execute_command("WAITAOF", 1, 0, 0)
