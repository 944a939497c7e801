"""Compaction that loses nothing: the reference's four compression methods over a view.

aiecs's ContextEngine compresses by deleting messages and rewriting the list (and, on
Redis, loses messages 50..N and reverses the order: reference defects 3-5). Here a
compaction only moves a *boundary* and stores an optional *summary*, both in the session
hash (so retention can never trim them away): ``get_conversation_history`` shows the
summary and the messages from the boundary on, while every stored message stays
readable (``include_compacted=True``, or the native store). Strategies: ``truncate``
(built in) and ``summarize`` through your async ``summarizer`` or aiecs's ``llm_client``;
convstore makes no network call of its own. Thresholds count the whole view.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from convstore import codec
from convstore.adapters.contextengine.base import EngineBase, Summarizer
from convstore.errors import ConvstoreError, ValidationError
from convstore.models import to_utc, utc_now
from convstore.plans import contextengine as cep
from convstore.validation import non_negative_int

__all__ = ["STRATEGIES", "CompressionConfig", "CompressionMethods", "estimate_tokens"]

STRATEGIES = ("truncate", "summarize", "semantic", "hybrid")

#: The reference's legacy strategy names and the compaction chains they stand for.
_LEGACY_CHAINS: dict[str, tuple[str, ...]] = {
    "truncate": ("microcompact",),
    "summarize": ("microcompact", "llm"),
    "semantic": ("microcompact",),
    "hybrid": ("microcompact", "collapse", "llm"),
}
_DEFAULT_CHAIN = ("microcompact", "collapse", "session_memory", "llm")


@dataclass
class CompressionConfig:
    """The reference's ``CompressionConfig``, field for field (an aiecs one works too)."""

    strategy: str = "truncate"
    max_messages: int = 50
    keep_recent: int = 10
    summary_prompt_template: str | None = None
    summary_max_tokens: int = 500
    include_summary_in_history: bool = True
    similarity_threshold: float = 0.95
    embedding_model: str = "text-embedding-ada-002"
    hybrid_strategies: list[str] | None = field(default=None)
    auto_compress_enabled: bool = False
    auto_compress_threshold: int = 100
    auto_compress_target: int = 50
    compression_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.hybrid_strategies is None:
            self.hybrid_strategies = ["truncate", "summarize"]
        if self.strategy not in STRATEGIES:
            raise ValidationError(
                f"Invalid strategy '{self.strategy}'. Must be one of: {', '.join(STRATEGIES)}",
                field="strategy",
                allowed=STRATEGIES,
            )
        non_negative_int(self.keep_recent, "keep_recent")


def estimate_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """The reference's estimate: ``(len(text) + 3) // 4`` per message, padded by 4/3."""
    total = sum(
        max(1, (len(text) + 3) // 4) for m in messages if (text := str(m.get("content") or ""))
    )
    return int(total * 4 / 3)


def _is_tool_result(message: dict[str, Any]) -> bool:
    meta = message.get("metadata") or {}
    return message.get("role") == "tool" or "tool_call_id" in meta


@dataclass
class _Plan:
    """What a compaction decided: keep entries[keep_from:], show ``summary`` before them."""

    keep_from: int
    summary: dict[str, Any] | None


class CompressionMethods(EngineBase):
    compression_config: Any
    compression_policy: Any
    compress_on_append: bool
    compression_summary_role: Literal["user", "system"] | None
    llm_client: Any
    summarizer: Summarizer | None

    def configure_compression(
        self,
        *,
        compression_config: Any,
        compression_policy: Any,
        compress_on_append: bool,
        compression_summary_role: Literal["user", "system"] | None,
        llm_client: Any,
        summarizer: Summarizer | None,
    ) -> None:
        """Set the attributes aiecs reads and writes (they are plain attributes after this)."""
        if compression_summary_role not in (None, "user", "system"):
            raise ValidationError(
                "compression_summary_role must be 'user', 'system' or None",
                field="compression_summary_role",
            )
        self.compression_config = compression_config or CompressionConfig()
        self.compression_policy = compression_policy
        self.compress_on_append = bool(compress_on_append)
        self.compression_summary_role = compression_summary_role
        self.llm_client = llm_client
        self.summarizer = summarizer

    # ----------------------------------------------------------------- the four methods

    async def compress_conversation(
        self, session_id: str, strategy: str | None = None, config_override: Any = None
    ) -> dict[str, Any]:
        """Compact the view with ``strategy`` (default: the config's); the reference's result
        dict. Nothing is deleted; a failure is reported in the dict, as the reference does."""
        started = time.time()
        config = config_override or self.compression_config
        chosen = strategy or config.strategy
        try:
            return await self._compact(session_id, chosen, config, started)
        except (ConvstoreError, ValueError) as exc:
            return {
                "success": False,
                "error": str(exc),
                "strategy": chosen,
                "time_taken": time.time() - started,
            }

    async def auto_compress_on_limit(self, session_id: str) -> dict[str, Any] | None:
        """Compact when the whole view holds more than ``auto_compress_threshold`` messages
        (or, with a policy / ``compress_on_append``, when its tokens pass the threshold)."""
        if self.compress_on_append or self._policy_enabled():
            return await self.compress_on_append_if_needed(session_id)
        config = self.compression_config
        if not config.auto_compress_enabled:
            return None
        view = await self._run(cep.view(self.config, session_id, 0))
        if len(view.entries) + (view.summary is not None) <= config.auto_compress_threshold:
            return None
        return await self.compress_conversation(session_id)

    async def compress_on_append_if_needed(
        self, session_id: str, *, strategy: str | tuple[str, ...] | None = None
    ) -> dict[str, Any] | None:
        """Token-based compaction (aiecs's ``compression_policy``): None when not needed."""
        if not self._policy_enabled() and not self.compress_on_append:
            return None
        view = await self._run(cep.view(self.config, session_id, 0))
        messages = ([view.summary] if view.summary else []) + view.entries
        if not messages or estimate_tokens(messages) < self._token_threshold():
            return None
        chain = self._resolve_chain(strategy)
        use_llm = "llm" in chain and self._summarize_fn() is not None
        keep = getattr(self.compression_policy, "preserve_recent", 12)
        config = CompressionConfig(
            strategy="summarize" if use_llm else "truncate",
            keep_recent=keep,
            summary_max_tokens=self.compression_config.summary_max_tokens,
        )
        result = await self._compact(session_id, config.strategy, config, time.time())
        if not result.get("success") or result["compressed_count"] == result["original_count"]:
            return None
        return {
            "success": True,
            "strategy": strategy or chain,
            "resolved_chain": chain,
            "original_count": result["original_count"],
            "compressed_count": result["compressed_count"],
            "compression_ratio": result["compression_ratio"],
        }

    # ----------------------------------------------------------------- how

    async def _compact(
        self, session_id: str, strategy: str, config: Any, started: float
    ) -> dict[str, Any]:
        view = await self._run(cep.view(self.config, session_id, 0))
        messages = ([view.summary] if view.summary else []) + view.entries
        if not messages:
            return {
                "success": False,
                "error": "No messages to compress",
                "original_count": 0,
                "compressed_count": 0,
            }
        offset = len(messages) - len(view.entries)  # 1 when a summary leads the view
        plan = _Plan(0, view.summary)
        steps = config.hybrid_strategies if strategy == "hybrid" else [strategy]
        for step in steps:
            plan = await self._step(step, messages, offset, plan, config)
        kept = view.entries[plan.keep_from :]
        count = len(kept) + (plan.summary is not None)
        if plan.keep_from or plan.summary is not view.summary:
            boundary = view.ids[plan.keep_from] if kept else _after(view.ids[-1])
            summary = None
            if plan.summary is not None:
                s = plan.summary
                moment = to_utc(s["timestamp"], "timestamp")
                summary = codec.encode_entry(s["role"], s["content"], moment, s["metadata"])
            done = await self._run(
                cep.compact(
                    self.config, session_id, seen=view.boundary, boundary=boundary, summary=summary
                )
            )
            if not done:
                raise ConvstoreError(f"session {session_id!r} was compacted concurrently")
        return {
            "success": True,
            "strategy": strategy,
            "original_count": len(messages),
            "compressed_count": count,
            "compression_ratio": 1.0 - count / len(messages),
            "time_taken": time.time() - started,
        }

    async def _step(
        self, step: str, messages: list[dict[str, Any]], offset: int, plan: _Plan, config: Any
    ) -> _Plan:
        """One strategy applied to what is still shown (``messages[offset + keep_from:]``)."""
        shown = len(messages) - offset - plan.keep_from
        keep_recent = int(config.keep_recent)
        if step == "semantic":
            raise ValidationError(
                "the semantic strategy needs embeddings, which convstore does not compute; "
                "use truncate or summarize",
                field="strategy",
            )
        if step not in ("truncate", "summarize"):
            raise ValidationError(f"Unknown compression strategy: {step}", field="strategy")
        if shown <= keep_recent:
            return plan
        cut = offset + plan.keep_from + shown - keep_recent
        while cut > offset and _is_tool_result(messages[cut]):
            cut -= 1  # never separate a tool result from the call it answers
        if step == "truncate":
            return _Plan(cut - offset, None)
        summarize = self._summarize_fn()
        if summarize is None:
            raise ValidationError(
                "summarization needs a summarizer= (async callable) or an llm_client",
                field="summarizer",
            )
        older = ([plan.summary] if plan.summary else []) + messages[offset + plan.keep_from : cut]
        text = await summarize(older)
        if not isinstance(text, str):
            raise ValidationError("the summarizer must return a str", field="summarizer")
        summarized = len(older)
        if not text.startswith("[Summary of"):
            text = f"[Summary of {summarized} previous messages]\n\n{text}"
        summary = None
        if config.include_summary_in_history:
            summary = {
                "role": self._summary_role(),
                "content": text,
                "timestamp": utc_now(),
                "metadata": {"type": "summary", "summarized_count": summarized},
            }
        return _Plan(cut - offset, summary)

    def _summarize_fn(self) -> Summarizer | None:
        if self.summarizer is not None:
            return self.summarizer
        if self.llm_client is None:
            return None
        client, max_tokens = self.llm_client, self.compression_config.summary_max_tokens
        template = self.compression_config.summary_prompt_template

        async def via_llm_client(messages: Sequence[dict[str, Any]]) -> str:
            text = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)
            prompt = (
                template.format(messages=text)
                if template
                else "Please provide a concise summary of the following conversation.\n"
                "Focus on key points, decisions, and important information.\n"
                f"Keep the summary under {max_tokens} tokens.\n\nConversation:\n{text}\n\nSummary:"
            )
            response = await client.generate_text(
                messages=[_prompt_message("user", prompt)], max_tokens=max_tokens
            )
            return str(getattr(response, "content", None) or response)

        return via_llm_client

    def _summary_role(self) -> str:
        if self.compression_summary_role is not None:
            return self.compression_summary_role
        return str(getattr(self.compression_policy, "summary_role", "user"))

    def _policy_enabled(self) -> bool:
        return bool(getattr(self.compression_policy, "enabled", False))

    def _token_threshold(self) -> int:
        policy = self.compression_policy
        explicit = getattr(policy, "auto_compact_threshold_tokens", None)
        if explicit:
            return int(explicit)
        window = int(getattr(policy, "context_window_tokens", 200_000))
        buffer = int(getattr(policy, "buffer_tokens", 13_000))
        return window - 20_000 - buffer  # the reference reserves 20k tokens for the summary
        # (so aiecs's default agent, a 20k window, compacts on every append: nothing is lost)

    def _resolve_chain(self, strategy: str | tuple[str, ...] | None) -> tuple[str, ...]:
        chain = tuple(getattr(self.compression_policy, "chain", _DEFAULT_CHAIN))
        if strategy is None:
            return chain
        if isinstance(strategy, tuple):
            return strategy
        return _LEGACY_CHAINS.get(str(strategy).strip().lower(), chain)


def _after(entry_id: str) -> str:
    """The stream id right after ``entry_id`` (a boundary past every stored message)."""
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq) + 1}"


def _prompt_message(role: str, content: str) -> Any:
    """aiecs's ``LLMMessage`` when aiecs is installed (its clients take those), else a dict."""
    try:
        from aiecs.llm import LLMMessage  # type: ignore[import-not-found]
    except ImportError:
        return {"role": role, "content": content}
    return LLMMessage(role=role, content=content)
