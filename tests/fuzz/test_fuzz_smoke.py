"""Every fuzz target runs briefly on every test run (tests/fuzz/targets.py: SMOKE_SECONDS): its
seeds and regression inputs are replayed first, then it fuzzes. Any crash, sanitizer report,
leak, timeout or broken invariant fails the test with the target's log and the saved input
(build/fuzz/artifacts/TARGET/). Long campaigns: scripts/fuzz.sh TARGET SECONDS (docs/fuzzing.md)."""
from __future__ import annotations

import pytest

from tests.fuzz import targets


@pytest.mark.parametrize("name", targets.all_targets())
def test_fuzz_smoke(name: str, smoke_results) -> None:
    res = smoke_results[name]
    if isinstance(res, BaseException):
        raise res
    assert not res.finding, f"{res.summary()}\n--- log tail ---\n{res.log[-8000:]}"
    assert res.executions > 0, f"{name} executed nothing:\n{res.log[-4000:]}"
