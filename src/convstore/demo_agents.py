"""``convstore demo-agents``: a master controller and two agents that talk only through inboxes.

Three concurrent asyncio tasks, one per participant, each consuming its own inbox
(``store.inbox``) and answering by appending to a session (which delivers to the
recipient's inbox), while tails (``messages.follow``) print the three conversations as
they happen. Uses the Redis at ``REDIS_URL``, else the embedded in-process store.
"""

from __future__ import annotations

import asyncio
import os
from typing import TextIO

from convstore.models import (
    AgentCommunicationMessage,
    ConversationParticipant,
    ConversationSession,
    utc_now,
)
from convstore.store import AsyncConversationStore
from convstore.tail import format_message
from convstore.urls import redact_url

__all__ = ["main", "run_agents"]

NAMESPACE = "convstore-demo-agents"
MC = ConversationParticipant("mc_001", "master_controller")
ANALYST = ConversationParticipant("agent_001", "agent", "data_analyst")
WRITER = ConversationParticipant("agent_002", "agent", "report_writer")
#: How long the whole exchange may take before the demo gives up.
DEADLINE = 30.0


def _say(
    key: str,
    sender: ConversationParticipant,
    recipient: ConversationParticipant,
    content: str,
    kind: str,
) -> AgentCommunicationMessage:
    return AgentCommunicationMessage(
        "", key,
        sender.participant_id, sender.participant_type, sender.participant_role,
        recipient.participant_id, recipient.participant_type, recipient.participant_role,
        content, kind, utc_now(),
    )  # fmt: skip


async def _sessions(store: AsyncConversationStore) -> dict[str, str]:
    now = utc_now()
    wanted = {
        "mc-analyst": ConversationSession("demo_agents", [MC, ANALYST], "mc_to_agent", now, now),
        "mc-writer": ConversationSession("demo_agents", [MC, WRITER], "mc_to_agent", now, now),
        "analyst-writer": ConversationSession(
            "demo_agents", [ANALYST, WRITER], "agent_to_agent", now, now
        ),
    }
    keys = {}
    for name, session in wanted.items():
        await store.sessions.delete(session.generate_session_key())  # start afresh
        keys[name] = await store.sessions.create(session)
    for person in (MC, ANALYST, WRITER):
        await store.inboxes.delete(person.participant_id)
    return keys


async def run_agents(store: AsyncConversationStore, out: TextIO) -> int:
    """Run the exchange on ``store`` (which must have ``inboxes=True``); returns the number
    of messages the tails printed."""
    keys = await _sessions(store)
    printed = 0

    async def tail(name: str) -> None:
        nonlocal printed
        async for item in store.messages.follow(keys[name], after="0-0"):
            printed += 1
            print(f"[{name:<14}] {format_message(item)}", file=out, flush=True)

    async def controller() -> None:
        send = store.messages.append
        await send(keys["mc-analyst"], _say(keys["mc-analyst"], MC, ANALYST,
                                            "Analyse Q3 sales by region.", "task_assignment"))  # fmt: skip
        async with store.inbox(MC.participant_id, consumer="mc") as box:
            async for got in box:
                await got.ack()
                if got.message.message_type == "result_report":
                    key = keys["mc-writer"]
                    await send(key, _say(key, MC, WRITER, f"Write the report: {got.message.content}",
                                         "task_assignment"))  # fmt: skip
                elif got.message.message_type == "task_completion":
                    return

    async def analyst() -> None:
        async with store.inbox(ANALYST.participant_id, consumer="analyst") as box:
            async for got in box:
                if got.message.message_type == "task_assignment":
                    key = keys["analyst-writer"]
                    await store.messages.append(key, _say(key, ANALYST, WRITER,
                        "Bar chart by region, or a table?", "collaboration_request"))  # fmt: skip
                elif got.message.message_type == "feedback":
                    key = keys["mc-analyst"]
                    await store.messages.append(key, _say(key, ANALYST, MC,
                        "Sales rose 15% over Q2; chart by region attached.", "result_report"))  # fmt: skip
                await got.ack()

    async def writer() -> None:
        async with store.inbox(WRITER.participant_id, consumer="writer") as box:
            async for got in box:
                if got.message.message_type == "collaboration_request":
                    key = keys["analyst-writer"]
                    await store.messages.append(key, _say(key, WRITER, ANALYST,
                        "A bar chart, please.", "feedback"))  # fmt: skip
                elif got.message.message_type == "task_assignment":
                    key = keys["mc-writer"]
                    await store.messages.append(key, _say(key, WRITER, MC,
                        "Report ready: q3_sales.pdf", "task_completion"))  # fmt: skip
                await got.ack()

    background = [asyncio.create_task(t) for t in (analyst(), writer())]
    background += [asyncio.create_task(tail(name)) for name in keys]
    try:
        await asyncio.wait_for(controller(), DEADLINE)
        for _ in range(100):  # let the tails print the last message
            if printed >= 6:
                break
            await asyncio.sleep(0.02)
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
    print(f"\n{printed} messages, delivered through inboxes; nothing polled.", file=out)
    return printed


def main(out: TextIO) -> int:
    url = os.environ.get("REDIS_URL")

    async def run() -> int:
        if url:
            print(f"convstore demo-agents: using the Redis server at {redact_url(url)}", file=out)
            store = AsyncConversationStore.from_url(url, namespace=NAMESPACE, inboxes=True)
        else:
            print("convstore demo-agents: REDIS_URL is not set, using the embedded Redis", file=out)
            store = AsyncConversationStore.embedded(namespace=NAMESPACE, inboxes=True)
        async with store:
            printed = await run_agents(store, out)
        return 0 if printed == 6 else 1

    return asyncio.run(run())
