"""ConvstoreSaver's sync methods, TTL, keys, and a real graph that interrupts and resumes.

The conformance suite only calls the async methods, so the sync ones run the very same
suite through a saver whose async methods call the sync ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, TypedDict

import pytest
import redis
from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import BASE_CAPABILITIES
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from convstore import AsyncConversationStore, ConfigurationError, ConversationStore
from convstore.adapters.langgraph import ConvstoreSaver
from convstore.errors import ValidationError


class SyncDriven(ConvstoreSaver):
    """The async API answered by the sync methods, so the suite exercises those."""

    async def aget_tuple(self, config: Any) -> CheckpointTuple | None:
        return self.get_tuple(config)

    async def alist(self, config: Any, **kw: Any) -> AsyncIterator[CheckpointTuple]:
        for tup in self.list(config, **kw):
            yield tup

    async def aput(self, config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
        return self.put(config, checkpoint, metadata, versions)

    async def aput_writes(
        self, config: Any, writes: Any, task_id: str, task_path: str = ""
    ) -> None:
        self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)

    async def acopy_thread(self, source: str, target: str) -> None:
        self.copy_thread(source, target)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self.prune(thread_ids, strategy=strategy)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        self.delete_for_runs(run_ids)


async def test_the_sync_methods_pass_the_conformance_suite(store: ConversationStore) -> None:
    @checkpointer_test(name="ConvstoreSaver (sync methods)")
    async def saver() -> AsyncIterator[ConvstoreSaver]:
        yield SyncDriven(store=store)

    report = await validate(saver)
    required = {c.value for c in BASE_CAPABILITIES} | {"copy_thread", "prune", "delete_for_runs"}
    for capability in required:
        assert report.results[capability].passed is True, report.results[capability].failures


class State(TypedDict):
    request: str
    answer: str


def _graph() -> StateGraph[State]:
    def ask(state: State) -> dict[str, str]:
        decision = interrupt({"question": f"approve {state['request']}?"})
        return {"answer": f"{state['request']}: {decision}"}

    builder = StateGraph(State)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    return builder


def test_a_graph_interrupts_and_resumes_sync(store: ConversationStore) -> None:
    graph = _graph().compile(checkpointer=ConvstoreSaver(store=store))
    config: Any = {"configurable": {"thread_id": "t-sync"}}
    first = graph.invoke({"request": "refund", "answer": ""}, config)
    assert first["__interrupt__"][0].value == {"question": "approve refund?"}
    state = graph.get_state(config)
    assert state.next == ("ask",)
    # a new saver on the same store (a restarted process) resumes from Redis
    again = _graph().compile(checkpointer=ConvstoreSaver(store=store))
    done = again.invoke(Command(resume="yes"), config)
    assert done["answer"] == "refund: yes"
    assert len(list(again.get_state_history(config))) >= 3


async def test_a_graph_interrupts_and_resumes_async(astore: AsyncConversationStore) -> None:
    graph = _graph().compile(checkpointer=ConvstoreSaver(store=astore))
    config: Any = {"configurable": {"thread_id": "t-async"}}
    first = await graph.ainvoke({"request": "upgrade", "answer": ""}, config)
    assert first["__interrupt__"][0].value == {"question": "approve upgrade?"}
    done = await graph.ainvoke(Command(resume="no"), config)
    assert done["answer"] == "upgrade: no"
    saver = ConvstoreSaver(store=astore)
    await saver.acopy_thread("t-async", "t-copy")
    copied = await saver.aget_tuple({"configurable": {"thread_id": "t-copy"}})
    assert copied is not None and copied.checkpoint["channel_values"]["answer"] == "upgrade: no"
    await saver.aprune(["t-async"])
    assert len([t async for t in saver.alist({"configurable": {"thread_id": "t-async"}})]) == 1
    resumed = await graph.aget_state({"configurable": {"thread_id": "t-async"}})
    assert resumed.values["answer"] == "upgrade: no"  # the kept checkpoint is whole
    with pytest.raises(ConfigurationError):
        saver.get_tuple({"configurable": {"thread_id": "t-async"}})


def test_ttl_covers_all_of_a_thread_and_keys_share_a_tag(
    store: ConversationStore, sync_client: redis.Redis
) -> None:
    saver = ConvstoreSaver(store=store, ttl=60)
    graph = _graph().compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": "t{ttl}"}}
    graph.invoke({"request": "x", "answer": ""}, config)
    keys = store.config.keyspace.thread("t{ttl}").all()
    assert all(sync_client.exists(k) for k in keys)
    assert all(0 < sync_client.pttl(k) <= 60_000 for k in keys)
    assert len({k.split("{", 1)[1].rsplit("}", 1)[0] for k in keys}) == 1
    saver.delete_thread("t{ttl}")
    assert not any(sync_client.exists(k) for k in keys)
    assert list(saver.list(None)) == []


def test_bad_input_is_refused(store: ConversationStore) -> None:
    saver = ConvstoreSaver(store=store)
    with pytest.raises(ValidationError):
        saver.prune(["t"], strategy="sometimes")
    with pytest.raises(ValidationError):
        saver.get_tuple({"configurable": {"thread_id": "t", "checkpoint_ns": "a\0b"}})
    with pytest.raises(ValidationError):
        saver.get_tuple({"configurable": {}})

