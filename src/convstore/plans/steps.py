"""The steps a plan yields: one command, one script, or several in one round trip."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from convstore import lua

__all__ = ["Batch", "Call", "Plan", "Run", "Step"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """One Redis command; ``any_node``: a keyless command any one cluster node can answer."""

    args: tuple[Any, ...]
    any_node: bool = False


@dataclass(frozen=True, slots=True)
class Run:
    """One Lua script (EVALSHA, loaded on first use)."""

    script: lua.Script
    keys: tuple[str, ...]
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Batch:
    """Several steps in one round trip (a non-transactional pipeline); replies come back in order."""

    steps: tuple[Call | Run, ...]


Step = Call | Run | Batch
Plan = Generator[Step, Any, T]
