"""Shape comparison of the reference ContextEngine and ContextEngineStore, with counters.

``shape(value)`` is the structure a consumer sees: dict keys and, recursively, value types
(``list`` and ``tuple`` kept apart; a raised exception is its own shape). ``Diff.check``
counts one comparison as *same*, *deliberate* (a difference listed in ``DELIBERATE`` whose
documented outcome convstore produces exactly) or *other* (anything else: a failure).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

# Every deliberate difference the differential accepts, and where README documents it.
DELIBERATE: dict[str, str] = {
    "limit_newest": "limit=N returns the newest N messages, oldest first (reference Redis path: oldest N)",
    "dicts_not_objects": "history / task context are returned as dicts, not ConversationMessage / TaskContext objects",
    "trim_newest": "the conversation_limit cap keeps the newest messages (reference kept the oldest and dropped new ones)",
    "filter_before_limit": "get_agent_conversation_history applies message_types before limit",
    "task_context_trackers_kept": "get_task_context returns the stored file_tracker / model_tracker (the reference's read dropped them)",
    "task_context_true": "store_task_context returns True once stored (reference always returned False)",
    "writes_tuples": "get_writes returns tuples as declared (List[tuple]); the values inside are JSON-shaped",
    "message_id_in_metadata": "every stored message carries metadata['message_id']",
    "compaction_keeps_messages": "compression never deletes a stored message (the reference deleted them)",
    "compaction_chronological": "after compaction the history stays oldest first and later appends come last (the reference read it back reversed)",
    "compaction_keeps_metadata": "messages kept by compaction keep their metadata (the reference rebuilt them without it)",
    "counts_whole_history": "compression counts the whole history, not the first 50 messages",
    "compaction_summary_entry": "a token-based compaction (compress_on_append_if_needed) shows one summary entry tagged {type: summary, summarized_count} like compress_conversation's, not aiecs's boundary-marker message plus an untagged summary (the boundary lives in the session hash)",
}


@dataclass
class Raised:
    """A call that raised instead of returning."""

    exc: BaseException

    def __repr__(self) -> str:
        return f"raises {type(self.exc).__name__}({self.exc})"


@dataclass
class Counts:
    compared: int = 0
    same: int = 0
    deliberate: int = 0
    other: int = 0
    failures: list[str] = field(default_factory=list)
    by_rule: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"aiecs differential: calls compared={self.compared} same={self.same} "
            f"deliberate={self.deliberate} other={self.other}"
        )


COUNTS = Counts()


async def outcome(awaitable: Awaitable[Any]) -> Any:
    try:
        return await awaitable
    except Exception as exc:  # noqa: BLE001 - a raised exception is an outcome to compare
        return Raised(exc)


def normalise(value: Any) -> Any:
    """The reference's objects as the dicts a consumer reads (``to_dict()``)."""
    if isinstance(value, Raised | dict | str | bytes):
        return value
    if callable(getattr(value, "to_dict", None)):
        return value.to_dict()
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def shape(value: Any) -> Any:
    if isinstance(value, Raised):
        return ("raises", type(value.exc).__name__)
    if isinstance(value, dict):
        return ("dict", tuple(sorted((str(k), shape(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        kinds = sorted({repr(shape(v)) for v in value})
        return (type(value).__name__, tuple(kinds))
    return type(value).__name__


def lists_of_tuples_as_lists(value: Any) -> Any:
    return (
        [list(v) if isinstance(v, tuple) else v for v in value]
        if isinstance(value, list)
        else value
    )


def without_message_ids(value: Any) -> Any:
    """Messages with the ``message_id`` convstore adds to every message's metadata removed."""
    if isinstance(value, list):
        return [without_message_ids(v) for v in value]
    if isinstance(value, dict) and isinstance(value.get("metadata"), dict):
        meta = {k: v for k, v in value["metadata"].items() if k != "message_id"}
        return {**value, "metadata": meta}
    return value


def _same_raise(ref: Any, ours: Any) -> bool:
    return (
        isinstance(ref, Raised) and isinstance(ours, Raised) and isinstance(ours.exc, type(ref.exc))
    )


@dataclass
class Diff:
    """One test's comparisons; ``done()`` fails the test with every *other* difference."""

    failures: list[str] = field(default_factory=list)

    def check(
        self,
        call: str,
        ref: Any,
        ours: Any,
        *,
        values: bool = False,
        deliberate: str | None = None,
        expect: Any = None,
        adjust: Callable[[Any], Any] | None = None,
    ) -> None:
        """Compare one call. ``values``: the values must be equal too. ``deliberate``: the
        rule that may explain a difference, satisfied when ``ours == expect`` (if ``expect``
        is given) or when ``adjust(ours)`` has the reference's shape (if ``adjust`` is)."""
        COUNTS.compared += 1
        ref = normalise(ref)
        if _same_raise(ref, ours) or (shape(ref) == shape(ours) and (not values or ref == ours)):
            COUNTS.same += 1
            return
        if deliberate is not None:
            assert deliberate in DELIBERATE, deliberate
            explained = (expect is not None and ours == expect) or (
                adjust is not None
                and shape(ref) == shape(adjust(ours))
                and (not values or ref == adjust(ours))
            )
            if explained:
                COUNTS.deliberate += 1
                COUNTS.by_rule[deliberate] = COUNTS.by_rule.get(deliberate, 0) + 1
                return
        COUNTS.other += 1
        message = f"{call}: reference {describe(ref)} | convstore {describe(ours)}"
        self.failures.append(message)
        COUNTS.failures.append(message)

    def done(self) -> None:
        assert not self.failures, "differences from the reference:\n" + "\n".join(self.failures)


def describe(value: Any, limit: int = 600) -> str:
    text = f"{value!r} (shape {shape(value)!r})"
    return text if len(text) <= limit else text[: limit - 3] + "..."
