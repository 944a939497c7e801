"""Validation messages are the same in every process, whatever PYTHONHASHSEED is.

The reference put set reprs in its messages, whose order changes with the hash seed.
"""

from __future__ import annotations

import os
import subprocess
import sys

SEEDS = ("0", "1", "2", "3")

SCRIPT = r"""
from datetime import datetime, timezone

from convstore import (
    AgentCommunicationMessage,
    ConversationParticipant,
    ConversationSession,
    ValidationError,
    parse_session_key,
)

now = datetime(2024, 1, 1, tzinfo=timezone.utc)
user = ConversationParticipant("u", "user")
mc = ConversationParticipant("m", "master_controller")
agent = ConversationParticipant("a", "agent", "writer")


def message(**overrides):
    fields = dict(
        message_id="", session_key="k", sender_id="s", sender_type="agent", sender_role="w",
        recipient_id="r", recipient_type="user", recipient_role=None, content="c",
        message_type="feedback", timestamp=now,
    )
    fields.update(overrides)
    return AgentCommunicationMessage(**fields)


attempts = [
    lambda: ConversationParticipant("p", "alien"),
    lambda: ConversationParticipant("p", "agent"),
    lambda: ConversationSession("s", [user, mc], "group_chat", now, now),
    lambda: ConversationSession("s", [user], "user_to_mc", now, now),
    lambda: ConversationSession("s", [user, agent], "mc_to_agent", now, now),
    lambda: ConversationSession("s", [user, agent, agent], "user_to_agent", now, now),
    lambda: message(message_type="chat"),
    lambda: message(sender_type="robot"),
    lambda: message(recipient_type="robot"),
    lambda: message(timestamp=12),
    lambda: parse_session_key("s", "nope"),
]
for attempt in attempts:
    try:
        attempt()
    except ValidationError as exc:
        print(f"{exc.field}|{exc.allowed}|{exc}")
    else:
        print("NO ERROR")
"""

# The reference's style of message, as a control: it must differ between these seeds,
# or this test could not tell a deterministic message from a lucky one.
CONTROL = r"""
valid = {"task_assignment", "result_report", "collaboration_request", "feedback",
         "communication", "status_update", "error_report", "task_completion",
         "progress_update", "clarification_request"}
print(f"message_type must be one of {valid}")
"""


def run(script: str, seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_validation_messages_do_not_depend_on_the_hash_seed() -> None:
    outputs = {seed: run(SCRIPT, seed) for seed in SEEDS}
    assert len(set(outputs.values())) == 1, outputs
    lines = outputs["0"].splitlines()
    assert len(lines) == 11
    assert "NO ERROR" not in lines
    assert lines[0] == (
        "participant_type|('agent', 'master_controller', 'user')|participant_type must be one of "
        "['agent', 'master_controller', 'user'], got 'alien'"
    )
    assert lines[2].endswith(
        "session_type must be one of "
        "['agent_to_agent', 'mc_to_agent', 'user_to_agent', 'user_to_mc'], got 'group_chat'"
    )
    assert lines[6].endswith(
        "message_type must be one of ['clarification_request', 'collaboration_request', "
        "'communication', 'error_report', 'feedback', 'progress_update', 'result_report', "
        "'status_update', 'task_assignment', 'task_completion'], got 'chat'"
    )


def test_the_seeds_really_change_set_order() -> None:
    outputs = {run(CONTROL, seed) for seed in SEEDS}
    assert len(outputs) > 1
