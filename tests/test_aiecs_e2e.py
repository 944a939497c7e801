"""aiecs's own ConversationMemory and MemoryPlugin over ContextEngineStore, on the real Redis.

The aiecs code is the real 2.2.0 code, loaded from its wheel (tests/aiecs_reference.py). It
never calls ``create_session``; it appends and reads through the engine and, on any
exception, silently falls back to process memory. So each test checks that nothing landed
in that fallback, restarts (a new engine object and a new ConversationMemory / plugin), and
reads the history back from Redis. The store runs on the server at REDIS_URL under a unique
namespace and deletes its own keys afterwards.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from aiecs_reference import CORE_MODULES, MEMORY_MODULES, PLUGIN_MODULES, Reference, loaded
from conftest import REDIS_URL, require_real_redis
from convstore.contextengine import ContextEngineStore
from differential_pair import FakeLLM

pytestmark = [pytest.mark.aiecs, pytest.mark.real_redis, pytest.mark.xdist_group("aiecs")]

TURNS = [("q1", "a1"), ("q2", "a2"), ("q3", "a3")]
EXPECTED = [(role, text) for q, a in TURNS for role, text in (("user", q), ("assistant", a))]

EngineFactory = Callable[..., ContextEngineStore]


@pytest.fixture
def aiecs() -> Iterator[Reference]:
    """aiecs's ConversationMemory and MemoryPlugin (and the engine modules), for one test."""
    with loaded(CORE_MODULES + MEMORY_MODULES + PLUGIN_MODULES) as reference:
        yield reference


@pytest.fixture
async def engines() -> AsyncIterator[EngineFactory]:
    """Builds ContextEngineStores on REDIS_URL sharing one fresh namespace; cleans it up."""
    require_real_redis()
    namespace = f"e2e-{uuid.uuid4().hex[:12]}"
    made: list[ContextEngineStore] = []

    def make(**options: Any) -> ContextEngineStore:
        engine = ContextEngineStore(url=REDIS_URL, namespace=namespace, **options)
        made.append(engine)
        return engine

    try:
        yield make
    finally:
        for engine in made:
            await engine.close()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


async def three_turns(memory: Any, session_id: str) -> None:
    for question, answer in TURNS:
        assert await memory.aadd_conversation_message(session_id, "user", question) is True
        assert await memory.aadd_conversation_message(session_id, "assistant", answer) is True
    assert memory._sessions == {}, "ConversationMemory fell back to process memory"


async def test_conversation_memory_survives_a_restart(
    aiecs: Reference, engines: EngineFactory
) -> None:
    memory_cls = aiecs["aiecs.domain.agent.memory.conversation"].ConversationMemory
    engine = engines()
    await engine.initialize()
    await three_turns(memory_cls(agent_id="agent-1", context_engine=engine), "chat-1")
    await engine.close()

    restarted = engines()  # a new engine object: what an agent restart builds
    await restarted.initialize()
    memory = memory_cls(agent_id="agent-1", context_engine=restarted)
    history = await memory.aget_conversation_history("chat-1")
    assert [(m.role, m.content) for m in history] == EXPECTED
    assert memory._sessions == {}, "the history came from process memory, not Redis"


@pytest.mark.parametrize("via", ["llm_client", "summarizer"])
async def test_compression_keeps_every_original_message(
    aiecs: Reference, engines: EngineFactory, via: str
) -> None:
    """Summarize with aiecs's llm_client interface, or with a plain async summarizer callable
    (``summarizer=``: a sequence of ``{role, content, ...}`` dicts in, the summary text out)."""
    memory_cls = aiecs["aiecs.domain.agent.memory.conversation"].ConversationMemory
    config = aiecs.context_engine.CompressionConfig(strategy="summarize", keep_recent=2)
    llm = FakeLLM()
    seen: list[list[Any]] = []

    async def summarizer(messages: Any) -> str:
        seen.append(list(messages))
        return f"summary of {len(messages)} messages"

    source = {"llm_client": llm} if via == "llm_client" else {"summarizer": summarizer}
    engine = engines(compression_config=config, **source)
    await engine.initialize()
    await three_turns(memory_cls(agent_id="agent-1", context_engine=engine), "chat-2")

    result = await engine.compress_conversation("chat-2")
    assert result["success"] is True, result
    assert (result["original_count"], result["compressed_count"]) == (6, 3)
    assert llm.calls or seen, "the summarizer was never called"

    restarted = engines(compression_config=config)
    await restarted.initialize()
    memory = memory_cls(agent_id="agent-1", context_engine=restarted)
    view = await memory.aget_conversation_history("chat-2")
    assert view[0].content.startswith("[Summary of 4 previous messages]")
    assert [(m.role, m.content) for m in view[1:]] == EXPECTED[-2:]
    stored = await restarted.store.messages.history("chat-2")
    assert [(m["role"], m["content"]) for m in stored] == EXPECTED


@dataclass
class FakeAgent:
    """What MemoryPlugin reads from an agent (LLMAgent path: ``_conversation_history``)."""

    agent_id: str
    _context_engine: Any
    _config: Any
    _conversation_history: list[Any] = field(default_factory=list)


def agent_config(policy: Any = None) -> Any:
    return SimpleNamespace(
        memory_enabled=True,
        temporal_memory_enabled=False,
        enable_context_compression=policy is not None,
        compression_policy=policy,
        context_window_limit=20000,
    )


def make_plugin(aiecs: Reference, agent: FakeAgent) -> tuple[Any, Callable[[str], Any]]:
    """A MemoryPlugin for ``agent`` and a factory of its per-task contexts (session chat-3)."""
    plugin_cls = aiecs["aiecs.domain.agent.plugins.builtin.memory_plugin"].MemoryPlugin
    config_cls = aiecs["aiecs.domain.agent.plugins.models"].PluginConfig
    context_cls = aiecs["aiecs.domain.agent.plugins.context"].AgentPluginContext

    def ctx(description: str) -> Any:
        return context_cls(
            agent=agent, task={}, context={"session_id": "chat-3"}, task_description=description
        )

    return plugin_cls(config_cls(name="memory"), agent), ctx


async def run_turns(aiecs: Reference, agent: FakeAgent) -> Any:
    """Three tasks through the plugin hooks an agent runs: init, pre-task, post-task."""
    plugin, ctx = make_plugin(aiecs, agent)
    await plugin.on_agent_init(ctx(""))
    for question, answer in TURNS:
        task = ctx(question)
        await plugin.on_pre_task(task)
        await plugin.on_post_task(task, {"final_response": answer})
    assert plugin._memory._sessions == {}, "MemoryPlugin fell back to process memory"
    return plugin


async def test_memory_plugin_survives_a_restart(aiecs: Reference, engines: EngineFactory) -> None:
    engine = engines()
    await engine.initialize()
    await run_turns(aiecs, FakeAgent("agent-1", engine, agent_config()))
    await engine.close()

    restarted = engines()
    await restarted.initialize()
    agent = FakeAgent("agent-1", restarted, agent_config())
    plugin, ctx = make_plugin(aiecs, agent)
    await plugin.on_agent_init(ctx(""))
    await plugin.on_pre_task(ctx("q4"))  # hydrates agent._conversation_history from the engine
    assert [(m.role, m.content) for m in agent._conversation_history] == EXPECTED


async def test_memory_plugin_compression_keeps_every_original_message(
    aiecs: Reference,
    engines: EngineFactory,
) -> None:
    policy = aiecs.policy.CompressionPolicy(
        enabled=True, auto_compact_threshold_tokens=1, preserve_recent=2
    )
    llm = FakeLLM()
    engine = engines(llm_client=llm)
    await engine.initialize()
    await run_turns(aiecs, FakeAgent("agent-1", engine, agent_config(policy)))
    assert engine.compression_policy is policy, "MemoryPlugin sets the engine's compression_policy"

    view = await engine.get_conversation_history("chat-3", 0)
    assert len(view) < len(EXPECTED), f"nothing was compacted: {view}"
    assert view[-1]["content"] == "a3"
    stored = await engine.store.messages.history("chat-3")
    assert [(m["role"], m["content"]) for m in stored] == EXPECTED


README_RECIPE = re.search(
    r"```python aiecs\n(.*?)```",
    (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8"),
    flags=re.S,
)


async def test_readme_recipe_installs_into_the_real_aiecs_singleton(
    aiecs: Reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README's aiecs recipe, run as written against aiecs's own context_engine_client: the
    application singleton is then the convstore engine, and a ConversationMemory built on
    ``get_context_engine()`` persists to Redis."""
    require_real_redis()
    assert README_RECIPE is not None, "README has no ```python aiecs block"
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    client_module = aiecs["aiecs.infrastructure.persistence.context_engine_client"]
    scope: dict[str, Any] = {}
    exec(compile(README_RECIPE.group(1), "README.md", "exec"), scope)
    engine = scope["engine"]
    assert isinstance(engine, ContextEngineStore)
    try:
        assert client_module.get_context_engine() is engine
        assert await client_module.initialize_context_engine() is engine  # aiecs.main's call
        assert client_module.is_context_engine_initialized()
        memory_cls = aiecs["aiecs.domain.agent.memory.conversation"].ConversationMemory
        session_id = f"recipe-{uuid.uuid4().hex[:12]}"
        await three_turns(
            memory_cls(agent_id="a", context_engine=client_module.get_context_engine()),
            session_id,
        )
        history = await engine.store.messages.history(session_id)
        assert [(m["role"], m["content"]) for m in history] == EXPECTED
        await engine.store.sessions.delete(session_id)  # only this test's keys
        await client_module.close_context_engine()  # aiecs closes it on shutdown
        assert client_module.get_context_engine() is None
    finally:
        await engine.close()
