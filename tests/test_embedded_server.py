"""The persistent embedded store: a real Valkey server the library keeps under a directory.

Every test uses its own ``tmp_path`` (so its own server, on a Unix socket there, no TCP
port), and checks at the end that the server it caused is gone. Killing is done by pid:
the test's own child process, or the server whose pid the lock file records.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REQUIRE_REDIS
from convstore import (
    AsyncConversationStore,
    ConfigurationError,
    ConversationParticipant,
    ConversationSession,
    ConversationStore,
    ValidationError,
    utc_now,
)
from convstore import embedded_server as es


@pytest.fixture(autouse=True)
def _binary() -> None:
    try:
        es.valkey_binary()
    except ConfigurationError as exc:
        if REQUIRE_REDIS:
            pytest.fail(f"{exc} (required in CI)", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """The store's directory; any server still running there at the end is stopped by pid."""
    yield tmp_path
    record = recorded(tmp_path)
    if record is not None and es.process_alive(record["pid"]):
        os.kill(record["pid"], signal.SIGKILL)
        pytest.fail(f"a server was left running on {tmp_path}")


def recorded(path: Path) -> dict[str, object] | None:
    lock = path / es.LOCK_FILE
    text = lock.read_text() if lock.exists() else ""
    return json.loads(text) if text.strip() else None


def server_pid(path: Path) -> int:
    record = recorded(path)
    assert record is not None, "no server recorded"
    pid = record["pid"]
    assert isinstance(pid, int)
    return pid


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while es.process_alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} still runs"
        time.sleep(0.02)


def session(session_id: str = "chat") -> ConversationSession:
    now = utc_now()
    people = [
        ConversationParticipant("u1", "user"),
        ConversationParticipant("mc", "master_controller"),
    ]
    return ConversationSession(session_id, people, "user_to_mc", now, now)


def write(store: ConversationStore, contents: list[str], session_id: str = "chat") -> str:
    key = store.sessions.save(session(session_id))
    store.messages.append_many(key, [{"role": "user", "content": c} for c in contents])
    return key


def contents(store: ConversationStore, key: str) -> list[str]:
    return [m["content"] for m in store.messages.history(key)]


# A child process: open the store on argv[1], append argv[2:], say "ready", then wait.
CHILD = textwrap.dedent(
    """
    import os, sys
    from convstore import ConversationStore, ConversationSession, ConversationParticipant, utc_now
    store = ConversationStore.embedded(path=sys.argv[1])
    now = utc_now()
    people = [ConversationParticipant("u1", "user"), ConversationParticipant("mc", "master_controller")]
    name = os.environ.get("CHILD_SESSION", "child")
    key = store.sessions.save(ConversationSession(name, people, "user_to_mc", now, now))
    store.messages.append_many(key, [{"role": "user", "content": c} for c in sys.argv[2:]])
    print("ready", flush=True)
    sys.stdin.readline()
    store.close()
    print("closed", flush=True)
    """
)


def spawn(
    path: Path, *messages: str, session_id: str = "child", wait: bool = True
) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), *messages],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "CHILD_SESSION": session_id},
    )  # fmt: skip
    if wait:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    return child


def finish(child: subprocess.Popen[str]) -> None:
    """Tell a waiting child to close its store, and check it did."""
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write("\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == "closed"
    assert child.wait(timeout=30) == 0


# --------------------------------------------------------------------------- one process


def test_write_close_reopen_read_all_back(data_dir: Path) -> None:
    with ConversationStore.embedded(path=data_dir, namespace="app") as store:
        key = write(store, [f"m{i}" for i in range(50)])
        info = store.server_info()
        assert info.name == "valkey" and info.aof_enabled and info.waitaof
        pid = server_pid(data_dir)
    wait_gone(pid)  # the last store to close stopped the server
    assert recorded(data_dir) is None
    assert list((data_dir / "appendonlydir").iterdir())  # the data is in the append-only file
    with ConversationStore.embedded(path=data_dir, namespace="app") as again:
        assert server_pid(data_dir) != pid
        assert contents(again, key) == [f"m{i}" for i in range(50)]
        assert again.sessions.get(key) is not None


async def test_async_twin_keeps_data_too(data_dir: Path) -> None:
    store = AsyncConversationStore.embedded(path=data_dir)
    key = await store.sessions.save(session())
    await store.messages.append(key, {"role": "user", "content": "kept"})
    assert (await store.server_info()).name == "valkey"
    await store.aclose()
    again = AsyncConversationStore.embedded(path=data_dir)
    assert [m["content"] for m in await again.messages.history(key)] == ["kept"]
    pid = server_pid(data_dir)
    await again.aclose()
    wait_gone(pid)


def test_stores_on_one_path_share_the_server_until_the_last_closes(data_dir: Path) -> None:
    first = ConversationStore.embedded(path=data_dir)
    second = ConversationStore.embedded(path=data_dir)
    pid = server_pid(data_dir)
    key = write(first, ["from first"])
    assert contents(second, key) == ["from first"]
    first.close()
    assert es.process_alive(pid) and second.ping()
    second.close()
    wait_gone(pid)
    first.close()  # closing twice is harmless


def test_no_socket_or_tcp_port_is_exposed(data_dir: Path) -> None:
    with ConversationStore.embedded(path=data_dir) as store:
        config = (data_dir / es.CONFIG_FILE).read_text()
        assert "port 0\n" in config and "unixsocketperm 700" in config
        assert "appendfsync always" in config
        assert store.client.connection_pool.connection_kwargs["path"] == str(
            data_dir / "valkey.sock"
        )


def test_a_long_path_puts_the_socket_in_the_temp_dir(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with ConversationStore.embedded(path=deep) as store:
        write(store, ["deep"])
        socket_path = store.client.connection_pool.connection_kwargs["path"]
        assert not socket_path.startswith(str(deep)) and len(socket_path) < 100
        pid = server_pid(deep)
    wait_gone(pid)


# --------------------------------------------------------------------------- several processes


def test_two_processes_on_one_path(data_dir: Path) -> None:
    child = spawn(data_dir, "c1", "c2")
    pid = server_pid(data_dir)
    with ConversationStore.embedded(path=data_dir) as store:
        assert server_pid(data_dir) == pid  # attached, not a second server
        assert contents(store, "child") == ["c1", "c2"]
        key = write(store, ["parent"])
        finish(child)
        assert es.process_alive(pid)  # the parent still holds it
        assert contents(store, key) == ["parent"]
    wait_gone(pid)


def test_processes_opening_at_once_share_one_server(data_dir: Path) -> None:
    children = [spawn(data_dir, f"from {i}", session_id=f"c{i}", wait=False) for i in range(3)]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    pid = server_pid(data_dir)
    with ConversationStore.embedded(path=data_dir) as store:
        assert [contents(store, f"c{i}") for i in range(3)] == [["from 0"], ["from 1"], ["from 2"]]
        for child in children:
            finish(child)
        assert server_pid(data_dir) == pid and es.process_alive(pid)
    wait_gone(pid)


def test_killed_owner_process_leaves_a_server_the_next_open_attaches_to(data_dir: Path) -> None:
    child = spawn(data_dir, "before the kill")
    pid = server_pid(data_dir)
    os.kill(child.pid, signal.SIGKILL)  # the process that started the server
    child.wait(timeout=10)
    assert es.process_alive(pid)  # the server is its own daemon
    with ConversationStore.embedded(path=data_dir) as store:
        assert server_pid(data_dir) == pid
        assert contents(store, "child") == ["before the kill"]
    wait_gone(pid)  # the dead child's registration did not keep it alive


def test_killed_server_is_replaced_without_losing_data(data_dir: Path) -> None:
    store = ConversationStore.embedded(path=data_dir)
    key = write(store, [f"m{i}" for i in range(20)])
    old = server_pid(data_dir)
    os.kill(old, signal.SIGKILL)  # kill -9 of the server: no shutdown, no final fsync
    wait_gone(old)
    with ConversationStore.embedded(path=data_dir) as fresh:
        assert server_pid(data_dir) != old  # the stale lock was detected and replaced
        assert contents(fresh, key) == [f"m{i}" for i in range(20)]
        assert contents(store, key) == [f"m{i}" for i in range(20)]  # the old one reconnects
        store.close()
        new = server_pid(data_dir)
    wait_gone(new)


def test_a_lock_naming_another_program_or_garbage_is_stale(data_dir: Path) -> None:
    with ConversationStore.embedded(path=data_dir) as store:
        key = write(store, ["kept"])
    record = {"pid": os.getpid(), "socket": str(data_dir / "nowhere.sock"), "binary": "x"}
    (data_dir / es.LOCK_FILE).write_text(json.dumps(record))  # a live pid, not a server
    with ConversationStore.embedded(path=data_dir) as store:
        assert contents(store, key) == ["kept"]
        pid = server_pid(data_dir)
    wait_gone(pid)
    (data_dir / es.LOCK_FILE).write_text("{not json")
    with ConversationStore.embedded(path=data_dir) as store:
        assert contents(store, key) == ["kept"]
        pid = server_pid(data_dir)
    wait_gone(pid)


# --------------------------------------------------------------------------- errors


def test_no_binary_for_the_platform_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(es.platform, "machine", lambda: "riscv64")
    with pytest.raises(ConfigurationError, match=r"no Valkey server binary .*linux-riscv64"):
        ConversationStore.embedded(path=tmp_path)
    assert not list((tmp_path / es.CLIENTS_DIR).iterdir())  # nothing left registered
    monkeypatch.setattr(es.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigurationError, match=r"convstore\[server\]"):
        es.valkey_binary()
    assert ConversationStore.embedded().ping()  # the in-process store needs no binary


def test_path_and_fake_server_together_are_refused(tmp_path: Path) -> None:
    import fakeredis

    with pytest.raises(ConfigurationError, match="not both"):
        ConversationStore.embedded(server=fakeredis.FakeServer(), path=tmp_path)


def test_demo_with_a_path_shows_data_surviving_a_second_run(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from convstore.cli import main as cli_main

    assert cli_main(["demo", "--path", str(data_dir)]) == 0
    assert "kept from an earlier run: 0 sessions, 0 messages" in capsys.readouterr().out
    assert cli_main(["demo", "--path", str(data_dir)]) == 0
    second = capsys.readouterr().out
    assert f"persistent embedded Valkey server in {data_dir}" in second
    assert "kept from an earlier run: 4 sessions, 9 messages" in second
    assert recorded(data_dir) is None  # the demo's store closed and stopped the server


def test_appendfsync_is_checked_and_applied(data_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"path=\.\.\.\) only"):
        ConversationStore.embedded(appendfsync="everysec")
    with pytest.raises(
        ValidationError, match=r"appendfsync must be one of \['always', 'everysec'\]"
    ):
        ConversationStore.embedded(path=data_dir, appendfsync="no")  # type: ignore[arg-type]
    assert not (data_dir / es.CLIENTS_DIR).exists()  # refused before anything was touched
    with ConversationStore.embedded(path=data_dir, appendfsync="everysec") as store:
        assert store.client.config_get("appendfsync") == {"appendfsync": "everysec"}
        pid = server_pid(data_dir)
    wait_gone(pid)


def test_a_lost_lock_adopts_the_running_server_instead_of_starting_a_second(
    data_dir: Path,
) -> None:
    first = ConversationStore.embedded(path=data_dir)
    key = write(first, ["one server only"])
    pid = server_pid(data_dir)
    (data_dir / es.LOCK_FILE).write_text("")  # the record is lost, the server still runs
    with ConversationStore.embedded(path=data_dir) as second:
        assert server_pid(data_dir) == pid
        assert contents(second, key) == ["one server only"]
        first.close()
    wait_gone(pid)
