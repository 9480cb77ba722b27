"""Replay transactions against a predictor (or the canary splitter) at a steady rate, and say what came back.

Open loop: request *i* is due at ``t0 + i / rate`` whatever happened to the ones before it, and its latency is
measured from the time it was due, so a server that falls behind shows its queue in the latency rather than
slowing the sender down. Each request carries one transaction (the decision-time fields only) and its own request
id, in the body's ``id`` and in ``x-request-id``, so the answer, the payload log and a later label can be joined.

With ``labels_after`` set, each transaction's true label (``isFraud``) is posted to the collector's labels
endpoint that many seconds after the transaction was sent: the delayed-label feed of production, compressed.

Canary tests, `make demo` and the monitoring work all drive traffic through this one module
(`fraudctl replay` is its command line).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import aiohttp
import numpy as np
import orjson
import pyarrow as pa

from fraud.errors import ConfigError
from fraud.schema import DECISION_TIME_FIELDS, LABEL
from fraud.settings import Settings

log = logging.getLogger(__name__)

Protocol = Literal["v1", "v2"]
ARM_HEADER: Final = "x-canary-arm"
"""Response header the splitter sets to the arm that answered (absent on a bare predictor)."""
NO_ARM: Final = "-"
CONNECTION_ERROR: Final = 0
"""Status recorded for a request that got no HTTP answer (refused, reset, timed out)."""
_V2_TYPES: Final = {"step": "INT64", "amount": "FP64", "oldbalanceOrg": "FP64", "oldbalanceDest": "FP64"}


# --------------------------------------------------------------------------------------------- transactions


@dataclass(frozen=True)
class Transactions:
    """Rows to send (decision-time fields only) and their labels (None when the source has none)."""

    rows: list[dict[str, Any]]
    labels: list[int] | None

    def __len__(self) -> int:
        return len(self.rows)


def transactions_from_table(table: pa.Table) -> Transactions:
    """The decision-time fields of each row, and ``isFraud`` when the table has it.

    Raises:
        ConfigError: a required field is missing (the message names it).
    """
    missing = [name for name in ("step", "type", "amount", "nameOrig", "nameDest") if name not in table.column_names]
    if missing:
        raise ConfigError(f"the source has no column(s) {', '.join(missing)}; it must have the PaySim schema")
    fields = [name for name in DECISION_TIME_FIELDS if name in table.column_names]
    rows = table.select(fields).to_pylist()
    labels = [int(v) for v in table.column(LABEL).to_pylist()] if LABEL in table.column_names else None
    return Transactions(rows, labels)


def load_transactions(
    settings: Settings,
    *,
    source: str | None,
    scenario: str | None,
    rows: int,
    seed: int = 0,
    scenario_params: dict[str, str] | None = None,
) -> Transactions:
    """Transactions from a file/URI (``source``) or freshly generated (``scenario``, ``rows`` of them).

    A generated month is sorted by step, so a replay walks through the month's hours in order.

    Raises:
        ConfigError: both or neither of ``source`` and ``scenario`` given; the source cannot be read.
    """
    if (source is None) == (scenario is None):
        raise ConfigError("give exactly one of --source (a file or URI) and --scenario (a generator preset)")
    from fraud.data.generator import generate
    from fraud.data.scenarios import get_scenario
    from fraud.data.sources import fetch, generator_options, parse_source

    if scenario is not None:
        return transactions_from_table(
            generate(rows, seed=seed, scenario=get_scenario(scenario, **(scenario_params or {})))
        )
    assert source is not None
    parsed = parse_source(source)
    if parsed.kind == "generator":
        count, gen_seed, name, params = generator_options(parsed)
        return transactions_from_table(generate(count, seed=gen_seed, scenario=get_scenario(name, **params)))
    from fraud.data.adapters import get_adapter
    from fraud.data.readers import validated_batches

    staging = Path(tempfile.mkdtemp(prefix="replay-"))
    try:
        path = fetch(parsed, staging, settings)
        table = pa.Table.from_batches(list(validated_batches(path, get_adapter("paysim"))))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return transactions_from_table(table)


def request_body(protocol: Protocol, request_id: str, row: dict[str, Any]) -> bytes:
    """One transaction as a V1 or V2 request body carrying the request id."""
    if protocol == "v1":
        return orjson.dumps({"id": request_id, "instances": [row]})
    inputs = [
        {"name": name, "datatype": _V2_TYPES.get(name, "BYTES"), "shape": [1], "data": [value]}
        for name, value in row.items()
    ]
    return orjson.dumps({"id": request_id, "inputs": inputs})


def predict_url(endpoint: str, protocol: Protocol, model_name: str) -> str:
    """The inference URL: ``endpoint`` itself when it already names a route, else the protocol's route on it."""
    if endpoint.endswith(":predict") or endpoint.endswith("/infer"):
        return endpoint
    base = endpoint.rstrip("/")
    if protocol == "v1":
        return f"{base}/v1/models/{model_name}:predict"
    return f"{base}/v2/models/{model_name}/infer"


# --------------------------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class Answer:
    """What came back for one request (status 0: no HTTP answer)."""

    request_id: str
    index: int
    status: int
    latency_ms: float
    arm: str = NO_ARM
    model_version: str | None = None
    decision: str | None = None
    score: float | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "index": self.index,
            "status": self.status,
            "latency_ms": round(self.latency_ms, 3),
            "arm": self.arm,
            "model_version": self.model_version,
            "decision": self.decision,
            "score": self.score,
            "error": self.error,
        }


def parse_answer(protocol: Protocol, body: bytes) -> tuple[str | None, str | None, float | None]:
    """(model_version, decision, fraud probability) of the first row of a V1 or V2 answer."""
    data = orjson.loads(body)
    if protocol == "v1":
        first = data["predictions"][0]
        return str(first.get("model_version")), str(first.get("decision")), float(first["fraud_probability"])
    outputs = {out["name"]: out["data"] for out in data["outputs"]}
    version = data.get("model_version") or (outputs.get("model_version") or [None])[0]
    decision = (outputs.get("decision") or [None])[0]
    score = (outputs.get("fraud_probability") or [None])[0]
    return (
        None if version is None else str(version),
        None if decision is None else str(decision),
        None if score is None else float(score),
    )


@dataclass
class ReplaySummary:
    """Totals of one replay, printed by the CLI and returned to tests and the demo."""

    url: str
    planned: int
    rate: float
    duration_s: float = 0.0
    sent: int = 0
    ok: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    decisions: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    """(arm, model_version) -> decision -> count."""
    latencies_ms: list[float] = field(default_factory=list)
    labels_posted: int = 0
    labels_accepted: int = 0
    labels_unknown: int = 0
    labels_failed: int = 0

    def add(self, answer: Answer) -> None:
        self.sent += 1
        self.statuses[answer.status] += 1
        self.latencies_ms.append(answer.latency_ms)
        if answer.status == 200 and answer.decision is not None:
            self.ok += 1
            key = (answer.arm, answer.model_version or "?")
            self.decisions.setdefault(key, Counter())[answer.decision] += 1
        else:
            self.errors[answer.error or f"HTTP {answer.status}"] += 1

    def percentiles(self) -> dict[str, float | None]:
        """Latency percentiles over every request (errors included, at the time they took)."""
        if not self.latencies_ms:
            return {"p50": None, "p90": None, "p99": None, "max": None}
        values = np.asarray(self.latencies_ms)
        p50, p90, p99 = np.quantile(values, [0.5, 0.9, 0.99])
        return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(values.max())}

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "planned": self.planned,
            "rate": self.rate,
            "duration_s": round(self.duration_s, 3),
            "achieved_rate": round(self.sent / self.duration_s, 1) if self.duration_s > 0 else None,
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.sent - self.ok,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors.most_common(10)),
            "latency_ms": self.percentiles(),
            "by_arm": [
                {"arm": arm, "model_version": version, "requests": sum(counts.values()), "decisions": dict(counts)}
                for (arm, version), counts in sorted(self.decisions.items())
            ],
            "labels": {
                "posted": self.labels_posted,
                "accepted": self.labels_accepted,
                "unknown": self.labels_unknown,
                "failed": self.labels_failed,
            },
        }


# --------------------------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class ReplayConfig:
    """How to send: where, how fast, for how long, and where labels go."""

    url: str
    rate: float
    duration_s: float
    protocol: Protocol = "v1"
    timeout_s: float = 10.0
    max_connections: int = 64
    labels_after_s: float | None = None
    labels_url: str | None = None
    id_prefix: str = field(default_factory=lambda: f"replay-{secrets.token_hex(4)}")

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ConfigError(f"--rate must be > 0 requests per second, got {self.rate}")
        if self.duration_s <= 0:
            raise ConfigError(f"--duration must be > 0 seconds, got {self.duration_s}")
        if self.labels_after_s is not None and not self.labels_url:
            raise ConfigError("--labels-after needs the collector's labels URL (--labels-url)")

    @property
    def planned(self) -> int:
        return max(1, round(self.rate * self.duration_s))


Progress = Callable[[ReplaySummary, float], None]
"""Called about once a second with the totals so far and the seconds elapsed."""
AnswerSink = Callable[[Answer], None]


class _LabelFeed:
    """Labels due at a time, posted in batches by one background task."""

    BATCH: Final = 500

    def __init__(self, session: aiohttp.ClientSession, url: str, summary: ReplaySummary) -> None:
        self.session = session
        self.url = url
        self.summary = summary
        self.pending: list[tuple[float, str, int]] = []

    def schedule(self, due: float, request_id: str, label: int) -> None:
        heapq.heappush(self.pending, (due, request_id, label))

    async def run(self, stop: asyncio.Event) -> None:
        """Post matured labels every 0.2 s until ``stop`` is set and nothing is pending."""
        while True:
            now = time.monotonic()
            batch: list[dict[str, Any]] = []
            while self.pending and self.pending[0][0] <= now and len(batch) < self.BATCH:
                _, request_id, label = heapq.heappop(self.pending)
                batch.append({"request_id": request_id, "row": 0, "isFraud": label})
            if batch:
                await self._post(batch)
                continue
            if stop.is_set() and not self.pending:
                return
            await asyncio.sleep(0.2)

    async def _post(self, batch: list[dict[str, Any]]) -> None:
        self.summary.labels_posted += len(batch)
        try:
            async with self.session.post(self.url, data=orjson.dumps({"labels": batch})) as response:
                body = await response.read()
                if response.status // 100 != 2:
                    self.summary.labels_failed += len(batch)
                    log.warning("labels endpoint answered %d: %s", response.status, body[:200])
                    return
                answer = orjson.loads(body)
                self.summary.labels_accepted += int(answer.get("accepted", 0))
                self.summary.labels_unknown += int(answer.get("unknown", 0))
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            self.summary.labels_failed += len(batch)
            log.warning("cannot post %d labels to %s: %s", len(batch), self.url, exc)


def _cycled(transactions: Transactions, count: int) -> Iterator[tuple[int, dict[str, Any], int | None]]:
    """(index, row, label) for ``count`` requests, going round the source again when it is shorter."""
    size = len(transactions)
    for i in range(count):
        j = i % size
        yield j, transactions.rows[j], None if transactions.labels is None else transactions.labels[j]


async def _send_one(
    session: aiohttp.ClientSession,
    config: ReplayConfig,
    request_id: str,
    index: int,
    body: bytes,
    due: float,
) -> Answer:
    headers = {"content-type": "application/json", "x-request-id": request_id}
    try:
        async with session.post(config.url, data=body, headers=headers) as response:
            payload = await response.read()
            latency = (time.monotonic() - due) * 1000.0
            arm = response.headers.get(ARM_HEADER, NO_ARM)
            if response.status != 200:
                message = f"HTTP {response.status}: {payload[:120].decode(errors='replace')}"
                return Answer(request_id, index, response.status, latency, arm, error=message)
            version, decision, score = parse_answer(config.protocol, payload)
            return Answer(request_id, index, 200, latency, arm, version, decision, score)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        latency = (time.monotonic() - due) * 1000.0
        return Answer(request_id, index, CONNECTION_ERROR, latency, error=f"{type(exc).__name__}: {exc}"[:160])
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
        latency = (time.monotonic() - due) * 1000.0
        return Answer(request_id, index, 200, latency, error=f"unreadable answer ({type(exc).__name__}: {exc})"[:160])


async def replay_async(
    config: ReplayConfig,
    transactions: Transactions,
    *,
    on_progress: Progress | None = None,
    on_answer: AnswerSink | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ReplaySummary:
    """Send ``config.planned`` requests at ``config.rate`` per second and gather what came back.

    ``should_stop`` is asked before each request; once it says so, nothing more is sent (answers of the requests
    in flight are still gathered).
    """
    if not len(transactions):
        raise ConfigError("the source holds no transactions to replay")
    if config.labels_after_s is not None and transactions.labels is None:
        raise ConfigError("--labels-after needs labels, but the source has no isFraud column")
    summary = ReplaySummary(url=config.url, planned=config.planned, rate=config.rate)
    connector = aiohttp.TCPConnector(limit=config.max_connections, keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=config.timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        feed = None
        stop_labels = asyncio.Event()
        label_task = None
        if config.labels_after_s is not None and config.labels_url:
            feed = _LabelFeed(session, config.labels_url, summary)
            label_task = asyncio.create_task(feed.run(stop_labels))
        in_flight: set[asyncio.Task[Answer]] = set()

        def collect(task: asyncio.Task[Answer]) -> None:
            in_flight.discard(task)
            answer = task.result()
            summary.add(answer)
            if on_answer is not None:
                on_answer(answer)

        start = time.monotonic()
        next_report = start + 1.0
        interval = 1.0 / config.rate
        for i, (index, row, label) in enumerate(_cycled(transactions, config.planned)):
            if should_stop is not None and should_stop():
                break
            due = start + i * interval
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            request_id = f"{config.id_prefix}-{i:07d}"
            task = asyncio.create_task(
                _send_one(session, config, request_id, index, request_body(config.protocol, request_id, row), due)
            )
            in_flight.add(task)
            task.add_done_callback(collect)
            if feed is not None and label is not None and config.labels_after_s is not None:
                feed.schedule(due + config.labels_after_s, request_id, label)
            if on_progress is not None and time.monotonic() >= next_report:
                on_progress(summary, time.monotonic() - start)
                next_report += 1.0
        if in_flight:
            await asyncio.wait(set(in_flight))
        summary.duration_s = time.monotonic() - start
        if on_progress is not None:
            on_progress(summary, summary.duration_s)
        if label_task is not None:
            stop_labels.set()
            await label_task
    return summary


def replay(
    config: ReplayConfig,
    transactions: Transactions,
    *,
    on_progress: Progress | None = None,
    on_answer: AnswerSink | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ReplaySummary:
    """Blocking wrapper of `replay_async` (own event loop)."""
    return asyncio.run(
        replay_async(config, transactions, on_progress=on_progress, on_answer=on_answer, should_stop=should_stop)
    )
