"""`Collector`: duplicate filter → write-ahead log → request/response join → Parquet flushes, and recovery.

The order of the steps is what makes the guarantees hold:

1. An event is checked (`events.from_http`) and looked up by (ce-id, ce-type); a key seen before, or one whose
   first delivery is still being written, is answered as a duplicate (after that write, so the duplicate's sender
   is never told "stored" for something that is not).
2. It is appended to the write-ahead log; only when its group is durable is it joined and acknowledged.
3. A flush takes joined pairs (and halves that waited longer than ``collector_unmatched_seconds``), records an
   intent in the flush journal, uploads one Parquet object per (day, model version), then commits.
4. A write-ahead segment is deleted once every event in it is committed; its keys are kept for the dedup horizon.

At start the log is replayed: committed events are skipped, open intents are redone under their own keys, and
everything else is joined again (a half whose partner arrives after the restart still pairs up).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import ctypes
import gc
import io
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson
import pyarrow.parquet as pq

from fraud.errors import DataValidationError, FraudError
from fraud.settings import Settings
from fraud.store import ObjectStore, S3Uri
from monitoring.collector import events
from monitoring.collector.events import BadEventError, Envelope, Kind
from monitoring.collector.http import Deferred, constant
from monitoring.collector.http import Response as Answer
from monitoring.collector.journal import Intent, Journal
from monitoring.collector.keys import KeyIndex
from monitoring.collector.metrics import TYPES, CollectorMetrics
from monitoring.collector.rows import Pair, label_tables, log_tables
from monitoring.collector.wal import WriteAheadLog, list_segments, read_segment
from monitoring.inference_log import LOG_PREFIX, PARQUET_OPTIONS
from monitoring.labels import parse_labels_body

log = logging.getLogger(__name__)

MAX_BACKLOG: Final = 2_000_000
"""Events held in memory (joined or waiting) before new ones get 503: bounds memory while the store is down."""
_JOURNAL_COMPACT_BYTES: Final = 16 * 1024 * 1024
_RETRY_MAX: Final = 30.0
_PRUNE_SECONDS: Final = 3600.0
STORED_ANSWER: Final = constant(200, b'{"status":"stored"}')
DUPLICATE_ANSWER: Final = constant(200, b'{"status":"duplicate"}')


class _Logged:
    """An event (or a label post) on its way into the write-ahead log, with whoever waits for its answer."""

    __slots__ = ("envelope", "key", "waiters")

    def __init__(self, envelope: Envelope, key: int | None, waiters: list[Deferred]) -> None:
        self.envelope = envelope
        self.key = key
        """Its dedup key (None for a label post)."""
        self.waiters = waiters
        """The first delivery's answer, then those of duplicates that came while it was being written."""


class FlushNotStartedError(Exception):
    """A flush failed before its intent was recorded, so its events can go into another flush."""


def _error(status: int, message: str, **extra: Any) -> Answer:
    return Answer(status, orjson.dumps({"error": message, **extra}))


def _writer_id(directory: Path) -> str:
    """This log's name in object keys, so two collectors (or a rebuilt volume) never write the same key."""
    path = directory / "writer-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = secrets.token_hex(4)
        path.write_text(value + "\n")
        return value


class Collector:
    def __init__(self, settings: Settings, store: ObjectStore, metrics: CollectorMetrics | None = None) -> None:
        self.settings = settings
        self.store = store
        self.bucket = settings.monitor_log_bucket
        self.metrics = metrics or CollectorMetrics()
        self.directory = settings.collector_wal_path
        self.directory.mkdir(parents=True, exist_ok=True)
        self.writer_id = _writer_id(self.directory)
        self.wal = WriteAheadLog(self.directory, settings.collector_segment_bytes, self._on_durable, self._on_failed)
        self.journal = Journal(self.directory)
        self.keys = KeyIndex(self.directory / "keys", settings.collector_dedup_seconds)
        self._next_seq = 0
        self._next_flush = 0
        self._inflight: dict[int, _Logged] = {}
        self._halves: dict[str, Pair] = {}
        self._ready: list[Pair] = []
        self._label_posts: list[Envelope] = []
        self._outstanding: dict[int, int] = {}
        """Per live segment: events in it not yet committed to the store."""
        self._segment_keys: dict[int, list[int]] = {}
        self._segment_ids: list[int] = []
        self._flush_lock = asyncio.Lock()
        self._flushing_since: float | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self.last_flush_at: float | None = None
        self.last_flush_error: str | None = None
        self.recovered_events = 0
        self._pruned_at = time.monotonic()
        self.metrics.bind(self.flush_lag, self._wal_bytes, lambda: float(len(self._halves)))

    # --- lifecycle -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Replay the write-ahead log, open a fresh segment, start the flush loop."""
        self.store.ensure_bucket(self.bucket)
        started = time.monotonic()
        self.journal.open()
        await self._recover()
        if self.recovered_events:
            _give_back_memory()
        self.wal.open(self._next_seq)
        self._track_segment(self.wal.active_segment)
        await self._retire_segments()
        if self._ready:  # replayed pairs are already old: write them now, not after a flush interval
            self._wake.set()
        self._loop_task = asyncio.create_task(self._flush_loop(), name="collector-flush")
        log.info(
            "collector ready: replayed %d events in %.1f s; %d halves wait for their partner; log in %s",
            self.recovered_events,
            time.monotonic() - started,
            len(self._halves),
            self.directory,
        )

    async def stop(self) -> None:
        """Flush what is joined (halves wait in the log for their partner), then close."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await self.wal.close()
        with contextlib.suppress(Exception):
            await self.flush(unmatched=False, final=True)
        self.journal.close()

    # --- ingest ----------------------------------------------------------------------------------------------
    async def ingest(self, headers: Mapping[bytes, bytes], body: bytes) -> Answer:
        """One binary-mode CloudEvent: 200 once durable (or a duplicate), 4xx when bad, 503 when not stored."""
        answer = self.submit(headers, body)
        return answer if isinstance(answer, Answer) else await answer

    def submit(self, headers: Mapping[bytes, bytes], body: bytes) -> Answer | Deferred:
        """`ingest` without a coroutine: the answer now (bad, duplicate, full) or one resolved once durable.

        The HTTP server calls this on every event; the `Deferred` is resolved from `_on_durable`, which writes
        the HTTP answer in the same call.
        """
        m = self.metrics
        try:
            envelope = events.from_http(headers, body)
        except BadEventError as exc:
            m.received["unknown"] += 1
            m.bad[exc.reason] += 1
            return _error(exc.status, str(exc), reason=exc.reason)
        kind = TYPES[envelope.kind]
        m.received[kind] += 1
        key = events.dedup_key(envelope.id, envelope.kind)
        if key in self.keys:
            m.duplicates[kind] += 1
            return DUPLICATE_ANSWER
        answer = Deferred()
        first = self._inflight.get(key)
        if first is not None:  # its first delivery is being written: answer this one when that write ends
            first.waiters.append(answer)
            return answer
        if self.backlog() >= MAX_BACKLOG:
            m.unavailable += 1
            return _error(503, "collector backlog full (object store unreachable?); send it again later")
        envelope.seq = self._take_seq()
        envelope.key = key
        logged = _Logged(envelope, key, [answer])
        self._inflight[key] = logged
        self.wal.append(envelope.seq, events.encode(envelope), logged)
        return answer

    async def ingest_labels(self, body: bytes) -> Answer:
        """``POST /v1/labels``: validated, durable, then answered with accepted/unknown counts."""
        now = time.time()
        try:
            table = parse_labels_body(body, datetime.fromtimestamp(now, UTC))
        except DataValidationError as exc:
            self.metrics.bad["bad_labels"] += 1
            return _error(400, str(exc), field=exc.column, index=exc.row)
        envelope = Envelope(
            seq=self._take_seq(),
            kind=int(Kind.LABELS),
            id="labels",
            received_at=now,
            time=None,
            source=None,
            model_name=None,
            namespace=None,
            component=None,
            endpoint=None,
            status=None,
            body=body,
        )
        written = Deferred()
        self.wal.append(envelope.seq, events.encode(envelope), _Logged(envelope, None, [written]))
        outcome = await written
        if outcome.status != 200:
            return outcome
        request_ids = table.column("request_id").to_pylist()
        unknown = sum(
            1
            for request_id in request_ids
            if events.dedup_key(request_id, Kind.REQUEST) not in self.keys and request_id not in self._halves
        )
        self.metrics.labels_received += len(request_ids)
        self.metrics.labels_unknown += unknown
        return Answer(200, orjson.dumps({"accepted": len(request_ids), "unknown": unknown}))

    def _take_seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def _on_durable(self, items: list[_Logged], segment: int) -> None:
        """A group is on disk: remember its keys, count it against its segment, join it, answer its senders."""
        m = self.metrics
        m.wal_groups += 1
        self._track_segment(segment)
        keys = self._segment_keys[segment]
        self._outstanding[segment] += len(items)
        inflight = self._inflight
        for item in items:
            envelope, key = item.envelope, item.key
            if key is not None:
                self.keys.add(key)
                keys.append(key)
                del inflight[key]
                kind = TYPES[envelope.kind]
                m.acked[kind] += 1
                m.duplicates[kind] += len(item.waiters) - 1
            self._place(envelope)
            first, *later = item.waiters
            first.resolve(STORED_ANSWER)
            for waiter in later:
                waiter.resolve(DUPLICATE_ANSWER)
        if len(self._ready) >= self.settings.collector_flush_rows:
            self._wake.set()

    def _on_failed(self, items: list[_Logged], error: OSError) -> None:
        """A group could not be written: nothing in it is acknowledged; every sender is told to send again."""
        answer = _error(503, f"write-ahead log unavailable ({error}); send it again")
        for item in items:
            if item.key is not None:
                self._inflight.pop(item.key, None)
            self.metrics.unavailable += len(item.waiters)
            for waiter in item.waiters:
                waiter.resolve(answer)

    def _track_segment(self, segment: int) -> None:
        if segment not in self._outstanding:
            self._outstanding[segment] = 0
            self._segment_keys[segment] = []
            bisect.insort(self._segment_ids, segment)

    def _place(self, envelope: Envelope) -> None:
        if envelope.kind == Kind.LABELS:
            self._label_posts.append(envelope)
            return
        pair = self._halves.get(envelope.id)
        if pair is None:
            if envelope.kind == Kind.REQUEST:
                self._halves[envelope.id] = Pair(envelope, None)
            else:
                self._halves[envelope.id] = Pair(None, envelope)
            return
        if envelope.kind == Kind.REQUEST:
            pair.request = envelope
        else:
            pair.response = envelope
        del self._halves[envelope.id]
        self._ready.append(pair)

    # --- state for metrics and status -------------------------------------------------------------------------
    def backlog(self) -> int:
        return len(self._ready) + len(self._halves) + len(self._label_posts)

    def flush_lag(self) -> float:
        oldest = [
            self._flushing_since,
            self._ready[0].first.received_at if self._ready else None,
            next(iter(self._halves.values())).first.received_at if self._halves else None,
            self._label_posts[0].received_at if self._label_posts else None,
        ]
        known = [t for t in oldest if t is not None]
        return max(0.0, time.time() - min(known)) if known else 0.0

    def _wal_bytes(self) -> float:
        return float(self.wal.size_on_disk())

    def status(self) -> dict[str, Any]:
        return {
            "writer_id": self.writer_id,
            "wal_dir": str(self.directory),
            "wal_bytes": self.wal.size_on_disk(),
            "wal_segments": len(self._segment_ids),
            "pending_halves": len(self._halves),
            "ready_rows": len(self._ready),
            "flush_lag_seconds": round(self.flush_lag(), 3),
            "last_flush_at": self.last_flush_at,
            "last_flush_error": self.last_flush_error,
            "bucket": self.bucket,
            "remembered_event_ids": len(self.keys),
        }

    # --- flushing --------------------------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        interval = self.settings.collector_flush_seconds
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.flush(unmatched=True)
                if time.monotonic() - self._pruned_at > _PRUNE_SECONDS:
                    async with self._flush_lock:  # no segment is retired (its keys frozen) meanwhile
                        await asyncio.to_thread(self.keys.load)  # forgets ids older than the dedup horizon
                    self._pruned_at = time.monotonic()
            except Exception:  # a bug must not stop the collector from taking events; it stays in the log
                log.exception("flush failed; the events stay in the write-ahead log and are retried")
                await asyncio.sleep(1.0)

    async def flush(self, *, unmatched: bool = True, all_halves: bool = False, final: bool = False) -> int:
        """Write what is joined (and, with ``unmatched``, halves past their wait; with ``all_halves``, every half
        still waiting, as unmatched); returns the inference-log rows written."""
        async with self._flush_lock:
            pairs, self._ready = self._ready, []
            if all_halves:
                pairs.extend(self._expired_halves(float("inf")))
            elif unmatched:
                pairs.extend(self._expired_halves(time.time() - self.settings.collector_unmatched_seconds))
            posts, self._label_posts = self._label_posts, []
            if not pairs and not posts:
                return 0
            flush = self._next_flush
            self._next_flush += 1
            try:
                rows = await self._write_flush(flush, pairs, posts, None, final=final)
            except FlushNotStartedError:
                self._ready[:0] = pairs  # nothing recorded: they go into the next flush
                self._label_posts[:0] = posts
                raise
            if not final:
                await self._retire_segments()
            return rows

    def _expired_halves(self, cutoff: float) -> list[Pair]:
        expired: list[Pair] = []
        for _event_id, pair in self._halves.items():
            if pair.first.received_at > cutoff:
                break
            expired.append(pair)
        for pair in expired:
            del self._halves[pair.first.id]
        return expired

    async def _write_flush(
        self, flush: int, pairs: list[Pair], posts: list[Envelope], intent: Intent | None, *, final: bool = False
    ) -> int:
        """Build, record the intent, upload, commit. Raises `FlushNotStartedError` if nothing was recorded yet.

        Once the intent is in the journal the flush is only ever finished under the same number and keys: here
        (uploads and the commit are retried until they work) or, if the process stops first, by the next start.
        """
        started = time.monotonic()
        envelopes = [e for pair in pairs for e in (pair.request, pair.response) if e is not None] + posts
        seqs = np.fromiter((e.seq for e in envelopes), dtype=np.uint64, count=len(envelopes))
        self._flushing_since = min(e.received_at for e in envelopes)
        try:
            try:
                objects, rows = await asyncio.to_thread(self._build, flush, pairs, posts)
                if intent is None:
                    await asyncio.to_thread(self.journal.intent, flush, sorted(objects), seqs)
            except Exception as exc:
                raise FlushNotStartedError(str(exc)) from exc
            await self._retrying(f"upload flush {flush}", lambda: self._upload(objects), final=final)
            if intent is not None:
                for stale in set(intent.objects) - set(objects):
                    await asyncio.to_thread(self.store.delete, S3Uri(self.bucket, stale))
            await self._retrying(
                f"commit flush {flush}", lambda: asyncio.to_thread(self.journal.commit, flush), final=final
            )
        finally:
            self._flushing_since = None
        self._account(seqs)
        m = self.metrics
        m.flushes += 1
        m.rows_written += rows
        for pair in pairs:
            if pair.request is None:
                m.unmatched["response"] += 1
            elif pair.response is None:
                m.unmatched["request"] += 1
        m.flush_seconds.observe(time.monotonic() - started)
        self.last_flush_at = time.time()
        self.last_flush_error = None
        return rows

    def _build(self, flush: int, pairs: list[Pair], posts: list[Envelope]) -> tuple[dict[str, bytes], int]:
        objects: dict[str, bytes] = {}
        rows = 0
        name = f"part-{self.writer_id}-{flush:012d}.parquet"
        with _garbage_collection_paused():
            tables = {**log_tables(pairs), **label_tables(posts)}
        for prefix, table in tables.items():
            sink = io.BytesIO()
            if prefix.startswith(LOG_PREFIX):
                pq.write_table(table, sink, **PARQUET_OPTIONS)
            else:
                pq.write_table(table, sink, compression="zstd")
            objects[prefix + name] = sink.getvalue()
            if prefix.startswith(LOG_PREFIX):
                rows += table.num_rows
        return objects, rows

    async def _upload(self, objects: dict[str, bytes]) -> None:
        for key, data in objects.items():
            await asyncio.to_thread(self.store.put_bytes, S3Uri(self.bucket, key), data)

    async def _retrying(self, what: str, step: Callable[[], Awaitable[None]], *, final: bool) -> None:
        """Run ``step`` until it works, backing off up to 30 s; when stopping, give up (the next start redoes it)."""
        delay = 0.5
        while True:
            try:
                await step()
                return
            except (FraudError, OSError) as exc:
                self.metrics.flush_errors += 1
                self.last_flush_error = f"{what}: {exc}"
                if final or self._stopping:
                    raise
                log.warning("%s failed (%s); retrying in %.1f s", what, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)

    def _account(self, seqs: np.ndarray) -> None:
        """Committed events no longer hold their segments."""
        if not len(seqs):
            return
        ids = np.array(self._segment_ids, dtype=np.uint64)
        where = np.searchsorted(ids, seqs, side="right") - 1
        for index, count in zip(*np.unique(where, return_counts=True), strict=True):
            self._outstanding[self._segment_ids[int(index)]] -= int(count)

    async def _retire_segments(self) -> None:
        for segment in list(self._segment_ids):
            if segment >= self.wal.settled_segment or self._outstanding[segment] > 0:
                continue
            keys = self._segment_keys.pop(segment)
            await asyncio.to_thread(self.keys.freeze, segment, keys)
            self.wal.delete(segment)
            del self._outstanding[segment]
            self._segment_ids.remove(segment)
        if self.journal.size() > _JOURNAL_COMPACT_BYTES:
            await asyncio.to_thread(self.journal.compact, self._segment_ids[0] if self._segment_ids else 0)

    # --- recovery --------------------------------------------------------------------------------------------
    async def _recover(self) -> None:
        state = self.journal.load()
        self._next_flush = state.next_flush
        committed = set(state.committed_seqs().tolist())
        redo_of: dict[int, int] = {}
        for intent in state.open_intents.values():
            redo_of.update(dict.fromkeys(intent.seqs.tolist(), intent.flush))
        redo: dict[int, list[Envelope]] = {flush: [] for flush in state.open_intents}
        self.keys.load()
        segments = list_segments(self.directory)
        last_seq = -1
        flush_rows = self.settings.collector_flush_rows
        writing: asyncio.Task[int] | None = None
        """The flush being built and uploaded (in threads) while the next segment is read and joined here."""
        reading = _read_task(segments[0].path) if segments else None
        """The next segment being read and decoded (in a thread) while this one is joined."""
        for index, segment in enumerate(segments):
            self._track_segment(segment.id)
            last_seq = max(last_seq, segment.id - 1)
            assert reading is not None
            envelopes, torn = await reading
            reading = _read_task(segments[index + 1].path) if index + 1 < len(segments) else None
            if torn:
                log.warning("write-ahead segment %s ends in a torn record (never acknowledged)", segment.path.name)
            last_seq = max(last_seq, max((e.seq for e in envelopes), default=-1))
            keys = [
                envelope.key or events.dedup_key(envelope.id, envelope.kind)
                for envelope in envelopes
                if envelope.kind != Kind.LABELS
            ]
            self.keys.add_many(keys)
            self._segment_keys[segment.id].extend(keys)
            todo, redone = _not_stored(envelopes, committed, redo_of, redo) if committed or redo_of else (envelopes, 0)
            self._outstanding[segment.id] += len(todo) + redone
            self.recovered_events += len(todo) + redone
            place = self._place
            for envelope in todo:
                place(envelope)
                if len(self._ready) >= flush_rows:
                    if writing is not None:
                        await writing  # one flush at a time: memory stays bounded by two flushes' events
                    writing = asyncio.create_task(self.flush(unmatched=False))
                    await asyncio.sleep(0)  # it takes the joined pairs now; its build runs while replay goes on
        if writing is not None:
            await writing
        self._next_seq = last_seq + 1
        for flush, envelopes in redo.items():
            log.info("redoing flush %d (%d events) interrupted before its commit", flush, len(envelopes))
            await self._write_flush(
                flush, _pairs(envelopes), [e for e in envelopes if e.kind == Kind.LABELS], state.open_intents[flush]
            )


@contextlib.contextmanager
def _garbage_collection_paused() -> Iterator[None]:
    """Building a flush makes several short-lived containers per row (decoded bodies, column lists); collection
    passes triggered in the middle walk them all, measured at a third of the build's CPU. Flushes are built one
    at a time (under the flush lock), so pausing the collector for one build is safe."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _give_back_memory() -> None:
    """After a replay, hand the heap it freed back to the system.

    Replaying a large log decodes, joins and flushes hundreds of MB of short-lived objects; glibc keeps the freed
    pages, so the process would stay at its replay peak (measured: ~1 GB after 2M events) next to whatever else
    the pod or machine runs. ``malloc_trim`` returns them (elsewhere than glibc it is simply not done)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _not_stored(
    envelopes: list[Envelope], committed: set[int], redo_of: dict[int, int], redo: dict[int, list[Envelope]]
) -> tuple[list[Envelope], int]:
    """After a crash mid-flush: the envelopes to join again, and how many went to ``redo`` (those of an open
    intent: its flush is redone under its own number and keys); those of committed flushes are skipped."""
    todo: list[Envelope] = []
    redone = 0
    for envelope in envelopes:
        seq = envelope.seq
        if seq in committed:
            continue
        flush = redo_of.get(seq)
        if flush is None:
            todo.append(envelope)
        else:
            redo[flush].append(envelope)
            redone += 1
    return todo, redone


def _read_task(path: Path) -> asyncio.Task[tuple[list[Envelope], bool]]:
    return asyncio.create_task(asyncio.to_thread(_read_envelopes, path))


def _read_envelopes(path: Path) -> tuple[list[Envelope], bool]:
    """A segment's envelopes in log order, and whether it ended in a torn (never acknowledged) record."""
    records, torn = read_segment(path)
    return [envelope for record in records for envelope in events.decode_group(record)], torn


def _pairs(envelopes: list[Envelope]) -> list[Pair]:
    """Events of one interrupted flush, joined exactly as they were when it was first written."""
    by_id: dict[str, Pair] = {}
    for envelope in envelopes:
        if envelope.kind == Kind.LABELS:
            continue
        pair = by_id.setdefault(envelope.id, Pair(None, None))
        if envelope.kind == Kind.REQUEST:
            pair.request = envelope
        else:
            pair.response = envelope
    return list(by_id.values())
