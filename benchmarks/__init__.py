"""convstore benchmark suite: ``python -m benchmarks --redis-url redis://127.0.0.1:6379/13``.

Every convstore figure is reported beside a raw redis-py baseline measured in the
same run against the same server, and as a ratio to it; the run ends with issue 11's goal
table, measured on a private pinned redis-server (``benchmarks/goals.py``); see
``benchmarks/README.md``.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    from benchmarks.runner import main as run

    return run(argv)
