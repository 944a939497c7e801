"""Differential, compression: the four compression methods against the real aiecs 2.2.0 ones.

Both engines get the same settings the way aiecs sets them on an engine: as attributes
(``compression_config``, ``llm_client``, ``compression_policy``) after construction. The LLM
client is a fake with the surface aiecs's compression kernel calls (``generate_text``).
Where the reference destroys data (it deletes compacted messages, rebuilds kept ones
without their metadata and reads them back reversed), convstore's documented behaviour is
asserted instead: see ``DELIBERATE``.
"""

from __future__ import annotations

from typing import Any

import pytest

from differential import without_message_ids as no_ids
from differential_pair import (  # noqa: F401
    FakeLLM,
    Pair,
    add_messages,
    contents,
    pair_fixture,
    private_server_fixture,
)

# one xdist worker runs all of the aiecs tests, in file order (the summary test comes last,
# and the wheel is downloaded once)
pytestmark = [pytest.mark.aiecs, pytest.mark.xdist_group("aiecs")]


def configure(p: Pair, **config: Any) -> None:
    cfg = p.aiecs.context_engine.CompressionConfig(**config)
    for engine in (p.ref, p.ours):
        engine.compression_config = cfg
        engine.llm_client = FakeLLM()


def kept_metadata_dropped(messages: Any) -> Any:
    """``messages`` as the reference rebuilds compacted ones: only summaries keep metadata."""
    if not isinstance(messages, list):
        return messages
    out = []
    for m in no_ids(messages):
        meta = m.get("metadata") or {}
        out.append(m if meta.get("type") == "summary" else {**m, "metadata": {}})
    return out


def untagged(messages: Any) -> Any:
    """``messages`` with every metadata emptied, as the reference rebuilds a token-based
    compaction (its summary carries no tag either)."""
    if not isinstance(messages, list):
        return messages
    return [{**m, "metadata": {}} for m in messages]


async def stored_and_view(p: Pair, sid: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """(messages physically stored, messages in the engine's history view), for each engine:
    the reference's list length, convstore's native history."""
    ref_len = await p.ref.redis_client.llen(f"conversation:{sid}")
    ref_view = len(await p.ref.get_conversation_history(sid, 0))
    ours_view = len(await p.ours.get_conversation_history(sid, 0))
    return (ref_len, ref_view), (len(await p.ours.store.messages.history(sid)), ours_view)


def counts(result: Any) -> Any:
    keys = ("success", "strategy", "original_count", "compressed_count")
    return {k: result.get(k) for k in keys} if isinstance(result, dict) else result


async def test_compress_conversation_truncate(pair: Pair) -> None:
    p = pair
    configure(p, strategy="truncate", keep_recent=3)
    await p.compare(
        "compress_conversation of an empty history", "compress_conversation", "e", values=True
    )
    await p.compare("create_session", "create_session", "z", "u")
    everything = await add_messages(p, "z", 8)
    r, o = await p.compare("compress_conversation truncate", "compress_conversation", "z")
    p.diff.check("compress_conversation truncate counts", counts(r), counts(o), values=True)
    r, o = await p.compare(
        "history after truncate",
        "get_conversation_history",
        "z",
        0,
        deliberate="message_id_in_metadata",
        adjust=no_ids,
    )
    p.diff.check(
        "history after truncate contents",
        contents(r),
        contents(o) if isinstance(o, list) else o,
        values=True,
        deliberate="compaction_chronological",
        expect=everything[-3:],
    )
    ref_n, ours_n = await stored_and_view(p, "z")
    p.diff.check(
        "(stored, view) after truncate",
        ref_n,
        ours_n,
        values=True,
        deliberate="compaction_keeps_messages",
        expect=(8, 3),
    )
    await p.compare(
        "add after truncate", "add_conversation_message", "z", "user", "late", values=True
    )
    r, o = await p.compare(
        "history after a later append",
        "get_conversation_history",
        "z",
        0,
        deliberate="message_id_in_metadata",
        adjust=no_ids,
    )
    p.diff.check(
        "later append comes last",
        contents(r)[-1:],
        contents(o)[-1:] if isinstance(o, list) else o,
        values=True,
        deliberate="compaction_chronological",
        expect=["late"],
    )
    await p.compare("compress_conversation unknown strategy", "compress_conversation", "z", "nope")
    p.diff.done()


async def test_compress_conversation_summarize(pair: Pair) -> None:
    p = pair
    configure(p, strategy="summarize", keep_recent=3)
    await p.compare("create_session", "create_session", "s", "u")
    everything = await add_messages(p, "s", 8)
    r, o = await p.compare("compress_conversation summarize", "compress_conversation", "s")
    p.diff.check("compress_conversation summarize counts", counts(r), counts(o), values=True)
    r, o = await p.compare(
        "history after summarize",
        "get_conversation_history",
        "s",
        0,
        deliberate="compaction_keeps_metadata",
        adjust=kept_metadata_dropped,
    )
    if isinstance(o, list) and o:
        summary_ref = next(m for m in r if m.metadata and m.metadata.get("type") == "summary")
        p.diff.check(
            "summary entry metadata", summary_ref.metadata, no_ids(o)[0]["metadata"], values=True
        )
        p.diff.check(
            "summary entry prefix",
            summary_ref.content.startswith("[Summary of 5 previous messages]"),
            str(o[0].get("content", "")).startswith("[Summary of 5 previous messages]"),
            values=True,
        )
        p.diff.check(
            "kept messages after the summary", everything[-3:], contents(o)[1:], values=True
        )
    ref_n, ours_n = await stored_and_view(p, "s")
    p.diff.check(
        "(stored, view) after summarize",
        ref_n,
        ours_n,
        values=True,
        deliberate="compaction_keeps_messages",
        expect=(8, 4),
    )
    for fmt in ("messages", "dict", "string"):
        r, o = await p.compare(
            f"get_compressed_context format={fmt}",
            "get_compressed_context",
            "s",
            fmt,
            deliberate="compaction_keeps_metadata",
            adjust=kept_metadata_dropped,
        )
    await p.compare("get_compressed_context bad format", "get_compressed_context", "s", "xml")
    p.diff.done()


async def test_compress_summarize_without_llm_client(pair: Pair) -> None:
    p = pair
    configure(p, strategy="summarize", keep_recent=1)
    for engine in (p.ref, p.ours):
        engine.llm_client = None
    await p.compare("create_session", "create_session", "n", "u")
    await add_messages(p, "n", 3)
    r, o = await p.compare(
        "compress_conversation summarize without llm_client", "compress_conversation", "n"
    )
    p.diff.check(
        "summarize without llm_client fails",
        r.get("success"),
        o.get("success") if isinstance(o, dict) else o,
        values=True,
    )
    p.diff.done()


async def test_auto_compress_on_limit(pair: Pair) -> None:
    p = pair
    configure(p, strategy="truncate", keep_recent=2)
    await p.compare("create_session", "create_session", "a", "u")
    await add_messages(p, "a", 6)
    await p.compare("auto_compress_on_limit disabled", "auto_compress_on_limit", "a", values=True)
    configure(
        p,
        strategy="truncate",
        keep_recent=2,
        auto_compress_enabled=True,
        auto_compress_threshold=10,
    )
    await p.compare(
        "auto_compress_on_limit under the threshold", "auto_compress_on_limit", "a", values=True
    )
    configure(
        p, strategy="truncate", keep_recent=2, auto_compress_enabled=True, auto_compress_threshold=5
    )
    r, o = await p.compare(
        "auto_compress_on_limit over the threshold", "auto_compress_on_limit", "a"
    )
    p.diff.check("auto_compress_on_limit counts", counts(r), counts(o), values=True)
    configure(
        p,
        strategy="truncate",
        keep_recent=2,
        auto_compress_enabled=True,
        auto_compress_threshold=52,
    )
    await p.compare("create_session", "create_session", "big", "u")
    await add_messages(p, "big", 55)
    r, o = await p.compare(
        "auto_compress_on_limit, 55 messages, threshold 52",
        "auto_compress_on_limit",
        "big",
        deliberate="counts_whole_history",
        adjust=lambda v: None if isinstance(v, dict) and v.get("original_count") == 55 else v,
    )
    p.diff.done()


async def test_compress_on_append_if_needed(pair: Pair) -> None:
    p = pair
    configure(p, strategy="truncate", keep_recent=2)
    await p.compare("create_session", "create_session", "c", "u")
    await add_messages(p, "c", 6)
    await p.compare(
        "compress_on_append_if_needed without a policy",
        "compress_on_append_if_needed",
        "c",
        values=True,
    )
    policy_cls = p.aiecs.policy.CompressionPolicy
    quiet = policy_cls(enabled=True, context_window_tokens=200_000)
    for engine in (p.ref, p.ours):
        engine.compression_policy = quiet  # what MemoryPlugin does
    await p.compare(
        "compress_on_append_if_needed under the token threshold",
        "compress_on_append_if_needed",
        "c",
        values=True,
    )
    eager = policy_cls(enabled=True, auto_compact_threshold_tokens=1, preserve_recent=2)
    for engine in (p.ref, p.ours):
        engine.compression_policy = eager
    r, o = await p.compare(
        "compress_on_append_if_needed strategy=summarize",
        "compress_on_append_if_needed",
        "c",
        strategy="summarize",
    )
    keys = ("success", "strategy", "resolved_chain", "original_count")  # the count: below
    p.diff.check(
        "compress_on_append_if_needed values",
        {k: r.get(k) for k in keys} if isinstance(r, dict) else r,
        {k: o.get(k) for k in keys} if isinstance(o, dict) else o,
        values=True,
    )
    rh, oh = await p.compare(
        "history after compress_on_append",
        "get_conversation_history",
        "c",
        0,
        deliberate="compaction_summary_entry",
        adjust=untagged,
    )
    p.diff.check(
        "history length is compressed_count",
        len(rh) == r["compressed_count"],
        len(oh) == o.get("compressed_count") if isinstance(o, dict) and isinstance(oh, list) else o,
        values=True,
    )
    p.diff.check(
        "(newest message last, compacted) after compress_on_append",
        (contents(rh)[-1:] == ["m5"], len(rh) < 6),
        (contents(oh)[-1:] == ["m5"], len(oh) < 6) if isinstance(oh, list) else oh,
        values=True,
        deliberate="compaction_chronological",
        expect=(True, True),
    )
    ref_n, ours_n = await stored_and_view(p, "c")
    p.diff.check(
        "(stored, view) after compress_on_append",
        ref_n,
        ours_n,
        values=True,
        deliberate="compaction_keeps_messages",
        expect=(6, o.get("compressed_count") if isinstance(o, dict) else None),
    )
    p.diff.done()
