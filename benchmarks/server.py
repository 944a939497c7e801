"""The goal table's own redis-server, core pinning, and the server-side counters.

The goals are ratios of small costs (a few µs of server CPU per call), so they are measured
on a private ``redis-server`` (no persistence, nobody else's clients) pinned to its own core,
with the client pinned to the other one: otherwise where the scheduler puts the two decides
the result. The server is stopped by its pid at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import redis

CLIENT_CORE, SERVER_CORE = 0, 1
T = TypeVar("T")


def can_pin() -> bool:
    """``taskset`` exists, this OS has sched_setaffinity, and there are two cores to split."""
    return (
        shutil.which("taskset") is not None
        and hasattr(os, "sched_setaffinity")
        and len(os.sched_getaffinity(0)) >= 2
    )


@contextlib.contextmanager
def pinned_client(pin: bool) -> Iterator[None]:
    """Pin this process to CLIENT_CORE for the block, then restore its previous cores."""
    if not pin:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {CLIENT_CORE})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OwnServer:
    """A private redis-server on a free loopback port; ``stop()`` ends it by pid."""

    proc: subprocess.Popen[bytes]
    port: int
    workdir: str
    pinned: bool

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_server(pin: bool) -> OwnServer | str:
    """A running server, or the reason there is none (no ``redis-server`` binary, no start)."""
    binary = shutil.which("redis-server")
    if binary is None:
        return "no redis-server binary on PATH"
    port, workdir = free_port(), tempfile.mkdtemp(prefix="convstore-bench-")
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    cmd += ["--appendonly", "no", "--dir", workdir]
    if pin:
        cmd = ["taskset", "-c", str(SERVER_CORE), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = OwnServer(proc, port, workdir, pin)
    client = redis.Redis(port=port, socket_connect_timeout=1)
    try:
        for _ in range(100):
            try:
                client.ping()
                return server
            except redis.ConnectionError:
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
    finally:
        client.close()
    server.stop()
    return f"redis-server did not start on port {port}"


def on_own_server(pin: bool, who: str, run: Callable[[redis.Redis], T]) -> T:
    """``run`` with a client of a fresh private server (client and server pinned when
    ``pin``), the server stopped afterwards; a server that cannot start ends ``who``."""
    server = start_server(pin)
    if isinstance(server, str):
        raise SystemExit(f"{who}: {server}")
    try:
        with pinned_client(pin):
            return run(redis.Redis(port=server.port))
    finally:
        server.stop()


def server_cpu(client: redis.Redis) -> float:
    """The server process's CPU seconds so far (user + system), from INFO cpu."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def commandstats(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """``{command: (calls, usec)}`` from INFO commandstats (``info`` itself left out)."""
    out: dict[str, tuple[int, int]] = {}
    for name, row in client.info("commandstats").items():
        command = name.removeprefix("cmdstat_")
        if command != "info":
            out[command] = (int(row["calls"]), int(row["usec"]))
    return out


def stats_delta(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    """What ran between two ``commandstats`` snapshots: ``{command: (calls, usec)}``."""
    out: dict[str, tuple[int, int]] = {}
    for command, (calls, usec) in after.items():
        c0, u0 = before.get(command, (0, 0))
        if calls > c0:
            out[command] = (calls - c0, usec - u0)
    return out
