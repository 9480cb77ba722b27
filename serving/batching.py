"""Coalescing on the event loop: the requests of one loop turn share one model call, with no thread hand-off.

Most of the cost of scoring one transaction is fixed overhead inside the model library (XGBoost spends ~0.1 ms
per ``inplace_predict`` and ~0.1 ms building the DMatrix for contributions, whatever the row count), so ten
single-transaction requests scored in one call cost little more than one. `LoopBatcher` never waits to fill a
batch: a request that reaches the model queues its job and, if none is pending yet, schedules one flush with
``loop.call_soon``. Every request whose bytes arrived in the same turn of the event loop has queued its job by
the time the flush runs (they were all ready before it), so under load the calls grow by themselves and at low
load a request is scored alone, one loop turn after it was parsed: no added latency, no waiting for a timer.

Calls run on the event loop itself unless they are large: a worker-thread hand-off costs more than scoring a few
rows (a futex wake-up, a second GIL owner, and up to Python's switch interval of waiting when the loop is busy),
while a large call (exact TreeSHAP for hundreds of rows: tens of milliseconds inside XGBoost, which releases the
GIL) would stall every other request and probe. With ``offload_rows``, calls of at least that many rows go to
``executor`` instead, and the loop keeps serving meanwhile.

Rows are scored independently by every model family (`fraud.modeling.NativeModel`), so a transaction's answer
is the same whether it was scored alone or with others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

JobT = TypeVar("JobT")
ResultT = TypeVar("ResultT")


@dataclass
class _Waiting(Generic[JobT, ResultT]):
    job: JobT
    rows: int
    future: asyncio.Future[ResultT] = field(repr=False)


class LoopBatcher(Generic[JobT, ResultT]):
    """Runs ``score_many`` once per event-loop turn on the jobs submitted in it, at most ``max_rows`` rows per call.

    ``score_many`` gets a non-empty list of jobs and returns one result per job, in order; an exception fails
    every job of that call (and only those). A job larger than ``max_rows`` is scored alone, never split. Calls of
    at least ``offload_rows`` rows run in ``executor`` (default: the loop's), the others on the loop.
    """

    def __init__(
        self,
        score_many: Callable[[Sequence[JobT]], Sequence[ResultT]],
        max_rows: int,
        *,
        offload_rows: int | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.score_many = score_many
        self.max_rows = max_rows
        self.offload_rows = offload_rows
        self.executor = executor
        self._waiting: list[_Waiting[JobT, ResultT]] = []
        self._scheduled = False
        self.calls = 0
        """Model calls made."""
        self.jobs = 0
        """Jobs scored (``jobs / calls`` is the average coalescing)."""
        self.offloaded = 0
        """Calls that ran in the executor."""

    def submit(self, job: JobT, rows: int) -> asyncio.Future[ResultT]:
        """Queue a job for this loop turn's call; await the returned future for its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ResultT] = loop.create_future()
        self._waiting.append(_Waiting(job, rows, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush, loop)
        return future

    def _groups(self, waiting: list[_Waiting[JobT, ResultT]]) -> list[list[_Waiting[JobT, ResultT]]]:
        groups: list[list[_Waiting[JobT, ResultT]]] = []
        current: list[_Waiting[JobT, ResultT]] = []
        rows = 0
        for item in waiting:
            if item.future.done():  # cancelled (client gone): not scored
                continue
            if current and rows + item.rows > self.max_rows:
                groups.append(current)
                current, rows = [], 0
            current.append(item)
            rows += item.rows
        if current:
            groups.append(current)
        return groups

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        waiting, self._waiting = self._waiting, []
        for group in self._groups(waiting):
            self.calls += 1
            self.jobs += len(group)
            jobs = [item.job for item in group]
            if self.offload_rows is not None and sum(item.rows for item in group) >= self.offload_rows:
                self.offloaded += 1
                running = loop.run_in_executor(self.executor, self.score_many, jobs)
                running.add_done_callback(lambda done, group=group: self._deliver_done(group, done))  # type: ignore[misc]
                continue
            try:
                results = self.score_many(jobs)
            except Exception as exc:  # delivered to each waiting request, which maps it to its own answer
                _fail(group, exc)
            else:
                _deliver(group, results)

    @staticmethod
    def _deliver_done(group: list[_Waiting[JobT, ResultT]], done: asyncio.Future[Sequence[ResultT]]) -> None:
        if done.cancelled():
            for item in group:
                item.future.cancel()
            return
        exc = done.exception()
        if exc is not None:
            _fail(group, exc)
        else:
            _deliver(group, done.result())


def _deliver(group: Sequence[_Waiting[JobT, ResultT]], results: Sequence[ResultT]) -> None:
    for item, result in zip(group, results, strict=True):
        if not item.future.done():
            item.future.set_result(result)


def _fail(group: Sequence[_Waiting[JobT, ResultT]], exc: BaseException) -> None:
    for item in group:
        if not item.future.done():
            item.future.set_exception(exc)
