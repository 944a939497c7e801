"""The real aiecs 2.2.0 code for the tests: benchmarks/aiecs_wheel.py, with pytest's verdicts.

The loader itself (download the wheel once, serve ``aiecs.*`` from it with stub packages, drop
it all again on exit) lives in ``benchmarks/aiecs_wheel.py``, shared with the benchmark's
aiecs peer. Here ``loaded`` turns "the wheel cannot be had" into a failure under
``CI``/``CONVSTORE_REQUIRE_REDIS`` and a skip elsewhere, with the reason.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.aiecs_wheel import (  # noqa: E402 - after the path set-up above
    AIECS_VERSION,
    CORE_MODULES,
    MEMORY_MODULES,
    PLUGIN_MODULES,
    Reference,
    ReferenceUnavailable,
    load,
)

__all__ = ["CORE_MODULES", "MEMORY_MODULES", "PLUGIN_MODULES", "Reference", "loaded"]

REQUIRE = bool(os.environ.get("CI") or os.environ.get("CONVSTORE_REQUIRE_REDIS"))


def _unavailable(reason: str) -> NoReturn:
    message = f"aiecs {AIECS_VERSION} reference unavailable: {reason}"
    if REQUIRE:
        pytest.fail(message + " (required: CI or CONVSTORE_REQUIRE_REDIS is set)", pytrace=False)
    pytest.skip(message)


@contextlib.contextmanager
def loaded(names: tuple[str, ...]) -> Iterator[Reference]:
    """``load(names)`` for the ``with`` block; fails in CI and skips elsewhere without it."""
    with contextlib.ExitStack() as stack:
        try:
            reference = stack.enter_context(load(names))
        except ReferenceUnavailable as exc:
            _unavailable(str(exc))
        yield reference
