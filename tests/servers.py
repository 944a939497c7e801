"""Server processes the suite starts itself: redis-server (or valkey-server) on loopback.

Every fault, cluster, TLS, AOF and differential test starts its own server through
:func:`start_server` on a free loopback port and stops it by pid, so the shared server
at ``REDIS_URL`` is never restarted, reconfigured or flushed. Without the binary the
test fails when ``CI``/``CONVSTORE_REQUIRE_REDIS`` is set and is skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

REQUIRE_REDIS = bool(os.environ.get("CI") or os.environ.get("CONVSTORE_REQUIRE_REDIS"))


def free_port(*, with_bus: bool = False) -> int:
    """A loopback port that is free now (and, with ``with_bus``, port + 10000 too)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if not with_bus:
            return port
        if port + 10000 > 65535:
            continue
        try:
            with socket.socket() as bus:
                bus.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free loopback port found")


def require_binary(name: str = "redis-server") -> str:
    """The path of ``name``; fails in CI, skips elsewhere, when it is not installed."""
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed"
    if REQUIRE_REDIS:
        pytest.fail(message + " (required in CI)", pytrace=False)
    pytest.skip(message)


@dataclass
class ServerProcess:
    """One server process on ``127.0.0.1:port``; its files live under ``workdir``."""

    binary: str
    port: int
    workdir: Path
    args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, timeout: float = 10.0) -> ServerProcess:
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--logfile", str(self.workdir / f"server-{self.port}.log"),
            "--save", "",
            *self.args,
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_ready(timeout=timeout)
        return self

    def wait_ready(self, *, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                log = self.workdir / f"server-{self.port}.log"
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise RuntimeError(f"{self.binary} exited with {self.proc.returncode}: {tail}")
            try:
                with redis.Redis(port=self.port, socket_connect_timeout=0.2) as probe:
                    if probe.ping():
                        return
            except redis.exceptions.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.binary} on port {self.port} did not answer in time")
            time.sleep(0.02)

    def kill(self) -> None:
        """kill -9: no shutdown, no final save."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 10 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart(self, *, timeout: float = 10.0) -> ServerProcess:
        """Start again on the same port and directory (after :meth:`kill` or :meth:`stop`)."""
        return self.start(timeout=timeout)


def start_server(
    workdir: Path,
    args: Sequence[str] = (),
    *,
    binary: str = "redis-server",
    port: int | None = None,
) -> ServerProcess:
    """Start ``binary`` with ``args`` on a free loopback port; call ``stop()`` when done."""
    path = binary if os.path.sep in binary else require_binary(binary)
    workdir.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(path, port or free_port(), workdir, tuple(args))
    return server.start()


@dataclass
class ClusterProcesses:
    """A Redis Cluster on loopback: ``masters`` (slot owners first) and their replicas."""

    nodes: list[ServerProcess]

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def node_on(self, port: int) -> ServerProcess:
        return next(node for node in self.nodes if node.port == port)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(
    workdir: Path,
    *,
    masters: int = 3,
    replicas: int = 0,
    node_timeout_ms: int = 1000,
    binary: str = "redis-server",
) -> ClusterProcesses:
    """``masters`` redis-server processes (plus ``replicas`` per master) joined with
    ``redis-cli --cluster create``, on free loopback ports (cluster bus at port + 10000).
    Returns once every node reports ``cluster_state:ok`` and every replica is in sync."""
    cli = require_binary("redis-cli")
    nodes: list[ServerProcess] = []
    try:
        for _ in range(masters * (1 + replicas)):
            port = free_port(with_bus=True)
            args = (
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", str(node_timeout_ms),
                "--appendonly", "no",
                "--repl-diskless-sync-delay", "0",
            )  # fmt: skip
            nodes.append(start_server(workdir / str(port), args, port=port, binary=binary))
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
             "--cluster-replicas", str(replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        for node in nodes:
            with redis.Redis(port=node.port) as probe:
                while True:
                    info = probe.cluster("info")
                    replication = probe.info("replication")
                    synced = replication["role"] == "master" or (
                        replication.get("master_link_status") == "up"
                    )
                    if info["cluster_state"] == "ok" and synced:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"cluster node {node.port} did not become ready")
                    time.sleep(0.05)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return ClusterProcesses(nodes)
