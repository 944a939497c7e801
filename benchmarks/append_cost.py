"""``python -m benchmarks.append_cost``: the issue 11 goal table alone.

Kept for the commands in older notes: it is ``python -m benchmarks --goals-only`` (same
options), which measures the goals on a private pinned redis-server (benchmarks/goals.py).
``python -m benchmarks`` reports the same table at the end of a full run.
"""

from __future__ import annotations

import sys

from benchmarks.runner import main

if __name__ == "__main__":
    sys.exit(main(["--goals-only", "--allow-nonempty", *sys.argv[1:]]))
