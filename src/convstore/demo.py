"""The spec's scenario end to end, against a real store: the main job behind ``convstore demo``."""

from __future__ import annotations

import os
from typing import TextIO

from convstore.models import (
    AgentCommunicationMessage,
    ConversationParticipant,
    ConversationSession,
    utc_now,
)
from convstore.store import ConversationStore
from convstore.urls import redact_url

__all__ = ["run_demo"]

NAMESPACE = "convstore-demo"


def _session(
    session_id: str, session_type: str, *people: ConversationParticipant
) -> ConversationSession:
    now = utc_now()
    return ConversationSession(session_id, list(people), session_type, now, now)


def _message(
    key: str,
    sender: ConversationParticipant,
    recipient: ConversationParticipant,
    content: str,
    message_type: str,
    **metadata: object,
) -> AgentCommunicationMessage:
    return AgentCommunicationMessage(
        "", key,
        sender.participant_id, sender.participant_type, sender.participant_role,
        recipient.participant_id, recipient.participant_type, recipient.participant_role,
        content, message_type, utc_now(), dict(metadata),
    )  # fmt: skip


def run_demo(store: ConversationStore, out: TextIO) -> list[str]:
    """Write the scenario into ``store``, read it back, print it; returns the session keys used."""
    user = ConversationParticipant("user_123", "user", metadata={"name": "John Doe"})
    mc = ConversationParticipant("mc_001", "master_controller")
    analyst = ConversationParticipant("agent_001", "agent", "data_analyst")
    writer = ConversationParticipant("agent_002", "agent", "report_writer")

    sessions = [
        _session("demo_session", "user_to_mc", user, mc),
        _session("demo_session", "mc_to_agent", mc, analyst),
        _session("demo_session", "mc_to_agent", mc, writer),
        _session("demo_session", "agent_to_agent", analyst, writer),
    ]
    keys = []
    for session in sessions:
        store.sessions.delete(session.generate_session_key())  # the demo starts from scratch
        keys.append(store.sessions.save(session))
    user_key, analyst_key, writer_key, collab_key = keys

    m = store.messages
    m.append(
        user_key, {"role": "user", "content": "How did sales do last quarter? I need a report."}
    )
    m.append(user_key, {"role": "master_controller", "content": "On it: analysis, then a report."})
    m.append(
        analyst_key,
        _message(
            analyst_key,
            mc,
            analyst,
            "Analyse Q3 sales data.",
            "task_assignment",
            task_id="task_001",
            priority="high",
        ),
    )
    m.append_many(
        collab_key,
        [
            _message(
                collab_key, analyst, writer, "Need the figures in a chart?", "collaboration_request"
            ),
            _message(collab_key, writer, analyst, "Yes, one bar chart by region.", "feedback"),
        ],
    )
    m.append(
        analyst_key,
        _message(
            analyst_key, analyst, mc, "Sales rose 15% over Q2.", "result_report", confidence=0.95
        ),
    )
    m.append(
        writer_key,
        _message(
            writer_key,
            mc,
            writer,
            "Write the report from the analysis.",
            "task_assignment",
            task_id="task_002",
        ),
    )
    m.append(
        writer_key,
        _message(writer_key, writer, mc, "Report ready: q3_sales.pdf", "task_completion"),
    )
    m.append(user_key, {"role": "master_controller", "content": "Your report is ready: q3_sales.pdf",
                        "metadata": {"attachments": ["q3_sales.pdf"]}})  # fmt: skip

    for key in keys:
        stored = store.sessions.get(key)
        assert stored is not None
        names = ", ".join(
            p.participant_id + (f" ({p.participant_role})" if p.participant_role else "")
            for p in stored.participants
        )
        print(f"\n== {key}  [{stored.session_type}]  {names}", file=out)
        for entry in m.history(key):
            kind = entry["metadata"].get("message_type", "")
            print(f"  {entry['timestamp'][11:23]}  {entry['role']:<24} {kind:<22} "
                  f"{entry['content']}", file=out)  # fmt: skip
    reports = m.agent_messages(analyst_key, message_types=["result_report"])
    print(f"\nresult reports from the analyst: {[r.content for r in reports]}", file=out)
    active = store.sessions.list(participant_id="mc_001")
    print(f"sessions with mc_001, most recent first: {[s.generate_session_key() for s in active.items]}",
          file=out)  # fmt: skip
    return keys


def main(out: TextIO, *, path: str | None = None) -> int:
    url = os.environ.get("REDIS_URL")
    if path is not None:
        print(f"convstore demo: using the persistent embedded Valkey server in {path}", file=out)
        store = ConversationStore.embedded(namespace=NAMESPACE, path=path)
        sessions = store.sessions.list(limit=100).items
        kept = sum(store.messages.count(s.generate_session_key()) for s in sessions)
        print(f"kept from an earlier run: {len(sessions)} sessions, {kept} messages", file=out)
    elif url:
        print(f"convstore demo: using the Redis server at REDIS_URL={redact_url(url)}", file=out)
        store = ConversationStore.from_url(url, namespace=NAMESPACE)
    else:
        print("convstore demo: REDIS_URL is not set, using the embedded in-process Redis", file=out)
        store = ConversationStore.embedded(namespace=NAMESPACE)
    with store:
        run_demo(store, out)
    return 0
