"""Shared pieces: sizes, the message corpus, results, timing and the progress display."""

from __future__ import annotations

import contextlib
import gc
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import msgpack

T = TypeVar("T")
Better = Literal["higher", "lower"]
Role = Literal["convstore", "baseline", "reference", "peer"]

CONVSTORE = "convstore"
RAW_XADD = "raw XADD (1 call/msg)"
RAW_PIPE = "raw pipelined XADD (100 deep)"
RAW_XRANGE = "raw XRANGE + msgpack"
RAW_XREV = "raw XREVRANGE COUNT 20 + msgpack"
RAW_PAGE = "raw XREVRANGE paging + msgpack"
RAW_STREAM = "raw stream + msgpack"
RAW_HASH = "raw HSET/HGET + msgpack"
LIST_STORE = "list store (ContextEngine layout)"
LANGCHAIN = "langchain-community"
LLAMA = "llama-index"
AIECS = "aiecs ContextEngine"

PAGE_SIZE = 50
BATCH = 100
LAST_N = 20


@dataclass(frozen=True, slots=True)
class Size:
    """How big each workload is; ``tiny`` is the CI size."""

    name: str
    w1_n: int  # messages appended one call at a time (W1), split over rounds
    rounds: int  # interleaved convstore/baseline rounds for W1 and W9
    read_ns: tuple[int, ...]  # history lengths for W2 (built), W3, W4, W5
    w6_sessions: int
    w6_messages: int
    w8_sessions: int
    w8_messages: int  # per session
    w9_n: int
    peer_ns: tuple[int, ...]  # read lengths the peers are built to
    async_w2_n: int

    @property
    def w7_n(self) -> int:
        """History length W7 measures (the largest read length the peers also build)."""
        return max(self.peer_ns)


SIZES: dict[str, Size] = {
    "tiny": Size("tiny", 200, 2, (200, 1_000), 50, 10, 64, 5, 100, (200, 1_000), 1_000),
    "small": Size("small", 2_000, 4, (1_000, 10_000), 200, 10, 64, 20, 300, (1_000,), 5_000),
    "full": Size(
        "full",
        5_000,
        5,
        (1_000, 10_000, 100_000),
        1_000,
        10,
        64,
        100,
        1_000,
        (1_000, 10_000),
        10_000,
    ),
}


def read_reps(n: int, size: Size) -> int:
    """Repetitions of one full read of ``n`` messages (fewer for long histories)."""
    top = 5 if size.name == "tiny" else 25
    return max(3, min(top, 300_000 // n))


# --------------------------------------------------------------------------- messages

_WORDS = (
    "the agent reviewed the draft and suggested tightening the introduction while the "
    "researcher collected three further sources on retrieval latency and cache placement "
    "before the controller assigned the next task to the writer for a final pass"
).split()


@dataclass(frozen=True, slots=True)
class Msg:
    role: str
    content: str
    metadata: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"role": self.role, "content": self.content, "metadata": self.metadata}


def make_messages(count: int, offset: int = 0) -> list[Msg]:
    """``count`` messages of about 200 characters with a 4-key metadata dict."""
    out: list[Msg] = []
    for i in range(offset, offset + count):
        words = [_WORDS[(i * 7 + j) % len(_WORDS)] for j in range(40)]
        content = (f"[{i}] " + " ".join(words))[:200]
        metadata = {
            "model": "gpt-4o-mini",
            "tokens": 40 + i % 160,
            "turn": i,
            "tags": ["bench", "user" if i % 2 == 0 else "assistant"],
        }
        out.append(Msg("user" if i % 2 == 0 else "assistant", content, metadata))
    return out


def raw_payload(msg: Msg) -> bytes:
    """What a bare stream store writes: msgpack of role, content, timestamp, metadata + an id.

    It does the same per-message work convstore must do (a uuid4 and the current time),
    so the baseline is the honest client-side limit, not a replay of prepared bytes.
    """
    packed: bytes = msgpack.packb(
        {
            "v": 1,
            "r": msg.role,
            "c": msg.content,
            "t": datetime.now(UTC),
            "m": {**msg.metadata, "message_id": str(uuid.uuid4())},
        },
        use_bin_type=True,
        datetime=True,
    )
    return packed


def raw_decode(payload: bytes) -> Any:
    return msgpack.unpackb(payload, raw=False, timestamp=3)


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class Result:
    workload: str  # "W1" .. "W9"
    variant: str  # e.g. "append", "write", "read", "save", "stream+ids+session"
    mode: str  # "sync" | "async"
    n: int
    subject: str
    role: Role
    value: float | None
    unit: str
    better: Better
    note: str = ""

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.workload, self.variant, self.mode, self.n)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Results:
    items: list[Result] = field(default_factory=list)
    baseline_of: dict[tuple[str, str, str, int], str] = field(default_factory=dict)

    def add(self, result: Result) -> Result:
        self.items.append(result)
        return result

    def pair(
        self,
        workload: str,
        variant: str,
        mode: str,
        n: int,
        conv: float,
        baseline_name: str,
        base: float,
        unit: str,
        better: Better,
    ) -> None:
        """Record a convstore figure and the baseline it is a ratio against."""
        self.add(Result(workload, variant, mode, n, CONVSTORE, "convstore", conv, unit, better))
        self.add(Result(workload, variant, mode, n, baseline_name, "baseline", base, unit, better))
        self.baseline_of[(workload, variant, mode, n)] = baseline_name


# --------------------------------------------------------------------------- timing


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


async def atimed(fn: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await fn()
    return time.perf_counter() - started


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Measure with the objects that exist before the rounds out of the collector's sight.

    The peers' imports (langchain, llama-index, pydantic) leave about 160k tracked objects,
    and every full collection walks them all: about 100 ms on a 2-vCPU VM. Landing inside
    one round of a read goal, such a collection moved that round's ratio by up to 2x, at
    random. ``gc.freeze()`` parks what exists before the rounds (the harness, the imports,
    the histories built for the reads), so a collection during a round walks only what
    the rounds allocate, as in a process that holds nothing else; the rounds' own garbage
    is still collected, inside the round that made it.
    """
    if gc.get_freeze_count():  # inside another set of rounds: its freeze holds
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def interleaved(
    fns: dict[str, Callable[[], T]], rounds: int, *, lean: bool = True
) -> dict[str, list[T]]:
    """Each variant once per round, the order reversed every other round (A/B, B/A, ...)
    to cancel drift, on a frozen heap (:func:`frozen_heap`) unless ``lean`` is False."""
    out: dict[str, list[T]] = {name: [] for name in fns}
    names = list(fns)
    with frozen_heap() if lean else contextlib.nullcontext():
        for r in range(rounds):
            for name in names if r % 2 == 0 else reversed(names):
                out[name].append(fns[name]())
    return out


async def ainterleaved(
    fns: dict[str, Callable[[], Awaitable[float]]], rounds: int
) -> dict[str, list[float]]:
    """:func:`interleaved` for coroutines."""
    out: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    with frozen_heap():
        for r in range(rounds):
            for name in names if r % 2 == 0 else reversed(names):
                out[name].append(await fns[name]())
    return out


# --------------------------------------------------------------------------- progress


class Progress:
    """A progress bar (rich, when importable) or numbered lines on stderr."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self._bar: Any = None
        self._task: Any = None
        try:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=True,
            )
        except ImportError:
            self._bar = None

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.__enter__()
            self._task = self._bar.add_task("starting", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def start(self, description: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=description)
        else:
            print(
                f"[{self.done + 1:>2}/{self.total}] {description} ...", file=sys.stderr, flush=True
            )

    def finish(self) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1)
