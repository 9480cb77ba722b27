"""The loop batcher: requests of one event-loop turn share a model call, answers go back to their own request."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from serving.batching import LoopBatcher


def test_requests_of_one_loop_turn_share_a_call_capped_at_max_rows() -> None:
    calls: list[list[int]] = []

    def score_many(jobs: Sequence[int]) -> list[int]:
        calls.append(list(jobs))
        return [job * 10 for job in jobs]

    async def scenario() -> list[int]:
        batcher: LoopBatcher[int, int] = LoopBatcher(score_many, max_rows=3)
        # five jobs queued in the same turn (no await between them)
        futures = [batcher.submit(job, rows=1) for job in (1, 2, 3, 4, 5)]
        answers = [await f for f in futures]
        # a job submitted in a later turn gets its own call
        answers.append(await batcher.submit(6, rows=1))
        return answers

    answers = asyncio.run(scenario())
    assert answers == [10, 20, 30, 40, 50, 60]
    assert calls == [[1, 2, 3], [4, 5], [6]]


def test_a_failing_call_fails_only_its_own_requests() -> None:
    def score_many(jobs: Sequence[int]) -> list[int]:
        if 13 in jobs:
            raise ValueError("unlucky")
        return list(jobs)

    async def scenario() -> tuple[int, BaseException | None]:
        batcher: LoopBatcher[int, int] = LoopBatcher(score_many, max_rows=1)
        bad = batcher.submit(13, rows=1)
        good = batcher.submit(7, rows=1)
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
        batcher: LoopBatcher[int, int] = LoopBatcher(score_many, max_rows=10)
        return list(await asyncio.gather(batcher.submit(1, rows=50), batcher.submit(2, rows=5)))

    assert asyncio.run(scenario()) == [1, 2]
    assert seen == [[1], [2]]


def test_a_cancelled_request_is_not_scored() -> None:
    seen: list[int] = []

    def score_many(jobs: Sequence[int]) -> list[int]:
        seen.extend(jobs)
        return list(jobs)

    async def scenario() -> int:
        batcher: LoopBatcher[int, int] = LoopBatcher(score_many, max_rows=10)
        gone = batcher.submit(1, rows=1)
        kept = batcher.submit(2, rows=1)
        gone.cancel()  # the client disconnected before the flush
        return await kept

    assert asyncio.run(scenario()) == 2
    assert seen == [2]


def test_large_calls_run_off_the_loop_and_the_loop_keeps_serving() -> None:
    release = threading.Event()
    threads: dict[int, str] = {}

    def score_many(jobs: Sequence[int]) -> list[int]:
        threads[jobs[0]] = threading.current_thread().name
        if jobs[0] == 1000:
            assert release.wait(5), "the small call never ran while the large one was in progress"
        return list(jobs)

    async def scenario() -> tuple[int, int, int]:
        with ThreadPoolExecutor(1, thread_name_prefix="offload") as pool:
            batcher: LoopBatcher[int, int] = LoopBatcher(score_many, max_rows=10_000, offload_rows=500, executor=pool)
            large = batcher.submit(1000, rows=1000)
            await asyncio.sleep(0)  # the large call is flushed alone, then runs in the pool
            small = await batcher.submit(1, rows=1)  # scored on the loop while the large one is blocked
            release.set()
            return await large, small, batcher.offloaded

    large, small, offloaded = asyncio.run(scenario())
    assert (large, small, offloaded) == (1000, 1, 1)
    assert threads[1000].startswith("offload")
    assert threads[1] == threading.main_thread().name


@pytest.mark.parametrize("rows", [1, 3])
def test_single_request_goes_straight_through(rows: int) -> None:
    batcher: LoopBatcher[str, str] = LoopBatcher(lambda jobs: [j.upper() for j in jobs], max_rows=5)
    assert asyncio.run(_submit(batcher, "tx", rows)) == "TX"
    assert (batcher.calls, batcher.jobs) == (1, 1)


async def _submit(batcher: LoopBatcher[str, str], job: str, rows: int) -> str:
    return await batcher.submit(job, rows=rows)
