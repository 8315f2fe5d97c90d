"""Fixtures of the fuzz tests: the smoke runs of every target, two at a time (CI has two cores
and the rest of the suite runs on one)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fuzz import fuzzlib, targets


@pytest.fixture(scope="session")
def smoke_results() -> dict[str, "fuzzlib.Result | BaseException"]:
    for name in targets.NATIVE:  # build first (two compile jobs), then fuzz two targets at a time
        fuzzlib.build(name)

    def one(name: str):
        try:
            return fuzzlib.run(name, targets.SMOKE_SECONDS[targets.kind(name)])
        except BaseException as exc:  # noqa: BLE001 - reported by the test of that target
            return exc

    names = targets.all_targets()
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(names, pool.map(one, names)))
