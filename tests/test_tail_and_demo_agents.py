"""``convstore tail`` and ``convstore demo-agents``, run as a user runs them (subprocesses)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from conftest import SessionFactory
from convstore import AsyncConversationStore, ConversationStore
from convstore.cli import EXIT_FAILED, EXIT_INTERRUPTED
from convstore.demo_agents import run_agents
from test_inbox import agent_message

COMMAND = Path(sys.executable).parent / "convstore"


def _env(url: str, namespace: str) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": url, "CONVSTORE_NAMESPACE": namespace}


@pytest.mark.real_redis
def test_tail_prints_what_arrives_and_ctrl_c_ends_it_cleanly(
    real_url: str, namespace: str, make_session: SessionFactory
) -> None:
    store = ConversationStore.from_url(real_url, namespace=namespace)
    key = store.sessions.create(make_session("tail", "agent_to_agent"))
    tail = subprocess.Popen(
        [str(COMMAND), "tail", key], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(real_url, namespace),
    )  # fmt: skip
    try:
        assert tail.stdout is not None
        assert "following" in tail.stdout.readline()
        time.sleep(0.3)  # the tail starts from "now"
        store.messages.append(key, {"role": "user", "content": "plain hello"})
        store.messages.append(
            key, agent_message(key, "t1", "agent_writer", "agent_researcher", "draft ready")
        )
        lines = [tail.stdout.readline() for _ in range(2)]
        assert "user" in lines[0] and "plain hello" in lines[0]
        assert "agent_writer -> agent_researcher [communication]" in lines[1]
        assert "draft ready" in lines[1]
        tail.send_signal(signal.SIGINT)
        _, err = tail.communicate(timeout=10)
        assert tail.returncode == EXIT_INTERRUPTED
        assert err.strip() == "convstore: interrupted"  # one line, no traceback
    finally:
        if tail.poll() is None:
            tail.kill()
        store.sessions.delete(key)
        store.close()


def test_tail_of_a_missing_session_fails_with_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # the embedded store
    result = subprocess.run(
        [str(COMMAND), "tail", "no-such-session"], capture_output=True, text=True, timeout=60,
        env=env,
    )  # fmt: skip
    assert result.returncode == EXIT_FAILED
    assert result.stderr.startswith("convstore: error: SessionNotFound")


def test_demo_agents_runs_on_the_embedded_store() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    result = subprocess.run(
        [str(COMMAND), "demo-agents"], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "embedded" in result.stdout
    assert "agent_002 -> mc_001 [task_completion]" in result.stdout
    assert "6 messages, delivered through inboxes" in result.stdout


@pytest.mark.real_redis
async def test_demo_agents_twice_on_a_real_server(real_url: str, namespace: str) -> None:
    try:
        for _ in range(2):  # it starts afresh each time
            async with AsyncConversationStore.from_url(
                real_url, namespace=namespace, inboxes=True
            ) as store:
                out = io.StringIO()
                assert await run_agents(store, out) == 6
                assert out.getvalue().count("[task_completion]") == 1
    finally:
        with redis.Redis.from_url(real_url) as admin:
            keys = list(admin.scan_iter(match=f"{namespace}:*"))
            if keys:
                admin.delete(*keys)
