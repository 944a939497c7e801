"""Compaction that loses nothing: the reference's four compression methods (issue 8).

The reference deleted messages 50..N, reversed the list and counted only the first 50
(defects 3-5 of shared/reference/aiecs-contextengine.md); each of those is checked here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from convstore import AsyncConversationStore
from convstore.contextengine import CompressionConfig, ContextEngineStore
from convstore.errors import ValidationError


class FakeSummarizer:
    """An async summarizer that records what it was asked to summarize."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def __call__(self, messages: Sequence[dict[str, Any]]) -> str:
        self.calls.append([m["content"] for m in messages])
        return f"summary of {len(messages)}"


@dataclass
class Policy:
    """The fields of aiecs's CompressionPolicy the adapter reads."""

    enabled: bool = True
    context_window_tokens: int = 200_000
    buffer_tokens: int = 13_000
    auto_compact_threshold_tokens: int | None = None
    preserve_recent: int = 12
    chain: tuple[str, ...] = ("microcompact", "collapse", "session_memory", "llm")
    summary_role: str = "user"


async def _fill(ce: ContextEngineStore, key: str, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        await ce.add_conversation_message(key, "user" if i % 2 == 0 else "assistant", f"m{i}")


def _contents(history: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in history]


@pytest.fixture
def ce(astore: AsyncConversationStore) -> ContextEngineStore:
    return ContextEngineStore(astore, compression_config=CompressionConfig(keep_recent=5))


async def test_truncate_keeps_every_message_and_the_order(
    ce: ContextEngineStore, astore: AsyncConversationStore
) -> None:
    await ce.create_session("s", "u")
    await _fill(ce, "s", 100)
    result = await ce.compress_conversation("s")
    assert result["success"] is True
    assert (result["original_count"], result["compressed_count"]) == (100, 5)  # all 100 counted
    assert result["compression_ratio"] == pytest.approx(0.95)
    assert _contents(await ce.get_conversation_history("s", 0)) == [f"m{i}" for i in range(95, 100)]
    await _fill(ce, "s", 2, start=100)  # later appends come after the view, in order
    assert _contents(await ce.get_conversation_history("s", 0))[-3:] == ["m99", "m100", "m101"]
    # nothing was deleted: the full history is still readable, in order
    full = await ce.get_conversation_history("s", 0, include_compacted=True)
    assert _contents(full) == [f"m{i}" for i in range(102)]
    assert [m["content"] for m in await astore.messages.history("s")] == _contents(full)


async def test_summarize_with_a_user_summarizer(astore: AsyncConversationStore) -> None:
    summarizer = FakeSummarizer()
    ce = ContextEngineStore(
        astore,
        compression_config=CompressionConfig(strategy="summarize", keep_recent=3),
        summarizer=summarizer,
        compression_summary_role="system",
    )
    await _fill(ce, "s", 10)
    result = await ce.compress_conversation("s")
    assert (result["original_count"], result["compressed_count"]) == (10, 4)
    assert summarizer.calls == [[f"m{i}" for i in range(7)]]
    view = await ce.get_conversation_history("s", 0)
    assert view[0]["role"] == "system"
    assert view[0]["content"] == "[Summary of 7 previous messages]\n\nsummary of 7"
    assert view[0]["metadata"] == {"type": "summary", "summarized_count": 7}
    assert _contents(view[1:]) == ["m7", "m8", "m9"]
    # limit counts the summary as one message, as the reference's list did
    assert _contents(await ce.get_conversation_history("s", 2)) == ["m8", "m9"]
    assert len(await ce.get_conversation_history("s", 4)) == 4
    # a second compaction summarizes the previous summary with what follows it
    await _fill(ce, "s", 4, start=10)
    await ce.compress_conversation("s")
    assert summarizer.calls[1][0].startswith("[Summary of 7")
    assert _contents(await ce.get_conversation_history("s", 0))[1:] == ["m11", "m12", "m13"]
    assert await astore.messages.count("s") == 14


async def test_retention_never_drops_the_summary(astore: AsyncConversationStore) -> None:
    ce = ContextEngineStore(
        astore,
        conversation_limit=5,
        compression_config=CompressionConfig(strategy="summarize", keep_recent=2),
        summarizer=FakeSummarizer(),
    )
    await _fill(ce, "s", 5)
    await ce.compress_conversation("s")
    await _fill(ce, "s", 10, start=5)  # trims far past the boundary
    view = await ce.get_conversation_history("s", 0)
    assert view[0]["metadata"]["type"] == "summary"
    assert _contents(view[1:]) == [f"m{i}" for i in range(10, 15)]


async def test_failures_are_reported_like_the_reference(ce: ContextEngineStore) -> None:
    assert await ce.compress_conversation("nothing") == {
        "success": False,
        "error": "No messages to compress",
        "original_count": 0,
        "compressed_count": 0,
    }
    await _fill(ce, "s", 8)
    for strategy, text in (
        ("summarize", "summarizer"),
        ("semantic", "embeddings"),
        ("bogus", "Unknown compression strategy"),
    ):
        result = await ce.compress_conversation("s", strategy=strategy)
        assert result["success"] is False and text in result["error"]
        assert set(result) == {"success", "error", "strategy", "time_taken"}
    assert len(await ce.get_conversation_history("s", 0)) == 8  # nothing changed
    with pytest.raises(ValidationError):
        CompressionConfig(strategy="bogus")


async def test_tool_call_and_result_stay_together(ce: ContextEngineStore) -> None:
    await _fill(ce, "s", 6)
    await ce.add_conversation_message("s", "assistant", "calling", {"tool_calls": [{"id": "t1"}]})
    for i in range(5):
        await ce.add_conversation_message("s", "tool", f"r{i}", {"tool_call_id": "t1"})
    await ce.compress_conversation("s")  # keep_recent=5 would start at a tool result
    assert _contents(await ce.get_conversation_history("s", 0)) == [
        "calling", "r0", "r1", "r2", "r3", "r4",
    ]  # fmt: skip


async def test_auto_compress_counts_the_whole_history(astore: AsyncConversationStore) -> None:
    config = CompressionConfig(
        auto_compress_enabled=True, auto_compress_threshold=100, keep_recent=10
    )
    ce = ContextEngineStore(astore, compression_config=config)
    await _fill(ce, "s", 100)
    assert await ce.auto_compress_on_limit("s") is None  # 100 is not over 100
    await _fill(ce, "s", 5, start=100)
    result = await ce.auto_compress_on_limit("s")  # the reference counted 50 and never fired
    assert result is not None and result["original_count"] == 105
    assert len(await ce.get_conversation_history("s", 0)) == 10
    disabled = ContextEngineStore(astore)
    assert await disabled.auto_compress_on_limit("s") is None


async def test_compress_on_append_with_a_policy(astore: AsyncConversationStore) -> None:
    """aiecs's MemoryPlugin sets ``compression_policy`` and calls this after each turn."""
    ce = ContextEngineStore(astore)
    assert await ce.compress_on_append_if_needed("s") is None  # no policy: off
    ce.compression_policy = Policy(auto_compact_threshold_tokens=40, preserve_recent=4)
    await _fill(ce, "s", 6)
    assert await ce.compress_on_append_if_needed("s") is None  # under the threshold
    await _fill(ce, "s", 60, start=6)
    result = await ce.compress_on_append_if_needed("s", strategy=ce.compression_policy.chain)
    assert result is not None
    assert set(result) == {
        "success", "strategy", "resolved_chain", "original_count", "compressed_count",
        "compression_ratio",
    }  # fmt: skip
    assert (result["original_count"], result["compressed_count"]) == (66, 4)
    assert result["resolved_chain"] == ce.compression_policy.chain
    assert await astore.messages.count("s") == 66
    # with compress_on_append, add_conversation_message compacts by itself, with a summary
    summarizer = FakeSummarizer()
    ce.summarizer = summarizer
    ce.compress_on_append = True
    await ce.add_conversation_message("s", "user", "x" * 400)
    view = await ce.get_conversation_history("s", 0)
    assert view[0]["metadata"]["type"] == "summary" and summarizer.calls
    assert await astore.messages.count("s") == 67


async def test_llm_client_is_called_for_summaries(astore: AsyncConversationStore) -> None:
    class Client:
        def __init__(self) -> None:
            self.prompts: list[Any] = []

        async def generate_text(self, *, messages: list[Any], max_tokens: int) -> Any:
            self.prompts.append((messages, max_tokens))
            return type("Response", (), {"content": "short"})()

    client = Client()
    config = CompressionConfig(strategy="summarize", keep_recent=2, summary_max_tokens=77)
    ce = ContextEngineStore(astore, compression_config=config, llm_client=client)
    await _fill(ce, "s", 5)
    assert (await ce.compress_conversation("s"))["success"]
    [(messages, max_tokens)] = client.prompts
    assert max_tokens == 77
    assert "m0" in str(messages[0]) and "m2" in str(messages[0])
    assert "short" in (await ce.get_conversation_history("s", 0))[0]["content"]


async def test_get_compressed_context_formats(ce: ContextEngineStore) -> None:
    await _fill(ce, "s", 8)
    as_string = await ce.get_compressed_context("s", "string", compress_first=True)
    blocks = as_string.split("\n\n")
    assert len(blocks) == 5 and blocks[0].endswith("] assistant: m3")
    assert _contents(await ce.get_compressed_context("s", "dict")) == ["m3", "m4", "m5", "m6", "m7"]
    assert _contents(await ce.get_compressed_context("s")) == ["m3", "m4", "m5", "m6", "m7"]
    with pytest.raises(ValueError, match="Invalid format"):
        await ce.get_compressed_context("s", "xml")


async def test_concurrent_compactions_do_not_clobber(astore: AsyncConversationStore) -> None:
    gate = asyncio.Event()

    async def slow(messages: Sequence[dict[str, Any]]) -> str:
        await gate.wait()
        return "slow"

    config = CompressionConfig(strategy="summarize", keep_recent=2)
    ce = ContextEngineStore(astore, compression_config=config, summarizer=slow)
    fast = ContextEngineStore(astore, compression_config=CompressionConfig(keep_recent=3))
    await _fill(ce, "s", 10)
    pending = asyncio.ensure_future(ce.compress_conversation("s"))
    await asyncio.sleep(0.05)
    assert (await fast.compress_conversation("s"))["success"]
    gate.set()
    late = await pending
    assert late["success"] is False and "concurrently" in late["error"]
    assert _contents(await ce.get_conversation_history("s", 0)) == ["m7", "m8", "m9"]
