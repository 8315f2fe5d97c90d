"""Synthesis units side by side: one single-threaded model run per core instead of one
multi-threaded run at a time.

onnxruntime spreads one run of a Piper model over its intra-op threads well in the decoder
(convolutions over the samples) but poorly in the text encoder and duration predictor (many small
ops): on 2 cores a 2-thread run is only ~1.7x faster than a 1-thread run. When several units
(sentences) are known up front, running them concurrently, one thread each, keeps every core busy
instead: same number of compute threads, ~10% less wall time on a 5-sentence text here (see
docs/benchmarks.md). Each run is slower, so `Voice.stream` still synthesises the *first* unit
with all threads (that is what the listener waits for) and uses lanes only for the rest, only when
the units balance well enough to win, and only when a lane is fast enough to stay ahead of real
time.
"""
from __future__ import annotations

import threading
from typing import Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# One multi-threaded run is modelled as this fraction of `threads` single-threaded runs
# (measured 1.69-1.72x for 2 threads on the joe-medium voice, x86-64, see docs/benchmarks.md).
PARALLEL_EFFICIENCY = 0.85


def lane_makespan(costs: Sequence[float], lanes: int) -> float:
    """Finish time when `lanes` workers take the units in order, each the next one when free."""
    finish = [0.0] * max(1, lanes)
    for cost in costs:
        i = finish.index(min(finish))
        finish[i] += cost
    return max(finish)


def lanes_pay_off(costs: Sequence[float], lanes: int, efficiency: float = PARALLEL_EFFICIENCY) -> bool:
    """Whether `lanes` single-threaded lanes beat one `lanes`-threaded run after another.

    Costs are in single-thread time units (phoneme ids work well: the model's work is about
    linear in them). Sequentially, the multi-threaded runs take sum / (lanes * efficiency).
    """
    if lanes < 2 or len(costs) < 2:
        return False
    return lane_makespan(costs, lanes) < sum(costs) / (lanes * efficiency)


def in_lanes(fn: Callable[[T], R], items: Sequence[T], lanes: int, ahead: int) -> Iterator[R]:
    """`fn(item)` for each item on `lanes` threads; results are yielded in input order.

    A lane does not start item i until item i - `ahead` has been yielded, so a slow consumer
    (playback) holds the work back instead of buffering the whole text. An exception from
    `fn` is raised at its item's turn. Closing the iterator stops the lanes from starting new
    items and waits for the runs in flight (at most one per lane).
    """
    if lanes < 1 or ahead < lanes:
        raise ValueError(f"need lanes >= 1 and ahead >= lanes, got lanes={lanes}, ahead={ahead}")
    cond = threading.Condition()
    results: dict[int, tuple[bool, object]] = {}
    state = {"next_start": 0, "next_yield": 0, "stop": False}

    def worker() -> None:
        while True:
            with cond:
                while not state["stop"] and state["next_start"] < len(items) and state["next_start"] >= state["next_yield"] + ahead:
                    cond.wait()
                if state["stop"] or state["next_start"] >= len(items):
                    return
                i = state["next_start"]
                state["next_start"] += 1
            try:
                outcome: tuple[bool, object] = (True, fn(items[i]))
            except BaseException as exc:  # handed to the consumer, raised at this item's turn
                outcome = (False, exc)
            with cond:
                results[i] = outcome
                cond.notify_all()

    threads = [threading.Thread(target=worker, name=f"edgegen-voice-lane-{k}", daemon=True) for k in range(min(lanes, len(items)))]
    for t in threads:
        t.start()
    try:
        for i in range(len(items)):
            with cond:
                while i not in results:
                    cond.wait()
                ok, value = results.pop(i)
                state["next_yield"] = i + 1
                cond.notify_all()
            if not ok:
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        with cond:
            state["stop"] = True
            cond.notify_all()
        for t in threads:
            t.join()
