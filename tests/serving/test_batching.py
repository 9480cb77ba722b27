"""The micro-batcher: concurrent requests share a model call, answers go back to their own request."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from serving.batching import MicroBatcher


def test_requests_arriving_while_the_model_is_busy_share_the_next_call() -> None:
    # given a slow "model" that records the groups it is called with
    calls: list[list[int]] = []
    release = threading.Event()

    def score_many(jobs: Sequence[int]) -> list[int]:
        calls.append(list(jobs))
        if len(calls) == 1:
            release.wait(5)  # the first call is still running while the others arrive
        return [job * 10 for job in jobs]

    async def scenario() -> list[int]:
        batcher: MicroBatcher[int, int] = MicroBatcher(score_many, max_rows=3)
        first = asyncio.ensure_future(batcher.submit(1, rows=1))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher.submit(job, rows=1)) for job in (2, 3, 4, 5)]
        await asyncio.sleep(0.05)
        release.set()
        return [await first, *[await r for r in rest]]

    # when five requests are submitted, four of them while the first is being scored
    answers = asyncio.run(scenario())
    # then each gets its own answer, the four waiting ones went together (capped at max_rows)
    assert answers == [10, 20, 30, 40, 50]
    assert calls == [[1], [2, 3, 4], [5]]


def test_a_failing_call_fails_only_its_own_requests() -> None:
    def score_many(jobs: Sequence[int]) -> list[int]:
        if 13 in jobs:
            raise ValueError("unlucky")
        return list(jobs)

    async def scenario() -> tuple[int, BaseException | None]:
        batcher: MicroBatcher[int, int] = MicroBatcher(score_many, max_rows=1)
        bad = asyncio.ensure_future(batcher.submit(13, rows=1))
        good = asyncio.ensure_future(batcher.submit(7, rows=1))
        error: BaseException | None = None
        try:
            await bad
        except ValueError as exc:
            error = exc
        return await good, error

    value, error = asyncio.run(scenario())
    assert value == 7
    assert isinstance(error, ValueError)


def test_a_request_larger_than_the_cap_is_scored_alone_not_split() -> None:
    seen: list[list[int]] = []

    def score_many(jobs: Sequence[int]) -> list[int]:
        seen.append(list(jobs))
        return list(jobs)

    async def scenario() -> list[int]:
        batcher: MicroBatcher[int, int] = MicroBatcher(score_many, max_rows=10)
        return list(await asyncio.gather(batcher.submit(1, rows=50), batcher.submit(2, rows=5)))

    assert asyncio.run(scenario()) == [1, 2]
    assert [1] in seen


@pytest.mark.parametrize("rows", [1, 3])
def test_single_request_goes_straight_through(rows: int) -> None:
    batcher: MicroBatcher[str, str] = MicroBatcher(lambda jobs: [j.upper() for j in jobs], max_rows=5)
    assert asyncio.run(batcher.submit("tx", rows=rows)) == "TX"
    assert (batcher.calls, batcher.jobs) == (1, 1)
