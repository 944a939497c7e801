"""langgraph-checkpoint-conformance against ConvstoreSaver on every backend.

The suite's report never raises by itself, so the test asserts ``passed is True`` for
every base capability and for ``copy_thread``, ``prune`` and ``delete_for_runs``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import BASE_CAPABILITIES, Capability

from conftest import StoreFactory
from convstore.adapters.langgraph import ConvstoreSaver

REQUIRED = {c.value for c in BASE_CAPABILITIES} | {
    Capability.COPY_THREAD.value,
    Capability.PRUNE.value,
    Capability.DELETE_FOR_RUNS.value,
}


async def test_the_conformance_suite_passes(factory: StoreFactory) -> None:
    store = factory()

    @checkpointer_test(name="ConvstoreSaver")
    async def saver() -> AsyncIterator[ConvstoreSaver]:
        yield ConvstoreSaver(store=store)

    report = await validate(saver)
    failures = {c: r.failures for c, r in report.results.items() if r.passed is False}
    assert not failures, failures
    for capability in REQUIRED:
        assert report.results[capability].passed is True, capability
        assert report.results[capability].tests_passed > 0, capability
