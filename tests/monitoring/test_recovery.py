"""Crashes: every acknowledged event reaches the store exactly once, whatever moment the collector dies at."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fraud.settings import Settings
from fraud.store import ObjectStore, S3Uri
from monitoring.collector.client import cloudevent_headers
from monitoring.collector.service import Collector
from monitoring.inference_log import read_log

from .conftest import Harness
from .test_collector import v1_request, v1_response


def window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(hours=1), now + timedelta(hours=1)


def test_kill_9_then_restart_writes_every_acknowledged_event_once(make_collector: Callable[..., Harness]) -> None:
    c = make_collector(
        FRAUD_COLLECTOR_FLUSH_SECONDS="3600",  # nothing is written unless asked, so the crash finds work in the log
        FRAUD_COLLECTOR_SEGMENT_BYTES="65536",  # many small segments: flushed ones are retired before the crash
    )
    c.start()

    def send_pairs(ids: range, *, responses: bool = True) -> list[str]:
        statuses = [c.send(f"tx-{i}", "request", v1_request(i)).json()["status"] for i in ids]
        if responses:
            statuses += [c.send(f"tx-{i}", "response", v1_response(i)).json()["status"] for i in ids]
        return statuses

    assert set(send_pairs(range(200))) == {"stored"}
    assert c.flush() == 200  # written; their segments are retired, their ids kept as keys
    assert list((c.wal_dir / "keys").glob("keys-*.npy")), "a flushed segment was retired"
    assert set(send_pairs(range(200, 280))) == {"stored"}  # joined, acknowledged, only in the log
    assert set(send_pairs(range(280, 300), responses=False)) == {"stored"}  # halves waiting for a partner
    wal_files = sorted(p.name for p in c.wal_dir.glob("wal-*.log"))
    assert c.process is not None
    c.process.kill()

    c.start()  # same write-ahead log directory
    assert sorted(p.name for p in c.wal_dir.glob("wal-*.log"))[: len(wal_files)] == wal_files[-len(wal_files) :]
    assert set(send_pairs(range(280))) == {"duplicate"}, "ids from before the crash, flushed or not, are known"
    assert set(send_pairs(range(280, 300), responses=False)) == {"duplicate"}
    assert {c.send(f"tx-{i}", "response", v1_response(i)).json()["status"] for i in range(280, 300)} == {"stored"}
    c.flush(unmatched=True)

    frame = read_log(c.settings, *window())
    assert len(frame) == 300 and frame["request_id"].is_unique
    assert frame["matched"].all(), "halves from before the crash met their partners sent after it"
    assert sorted(frame["amount"]) == [100.0 + i for i in range(300)]
    assert len(list(c.wal_dir.glob("wal-*.log"))) <= 2, "flushed segments are deleted"


def test_a_flush_interrupted_between_upload_and_commit_is_redone_under_the_same_keys(
    stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = stack.model_copy(
        update={
            "monitor_log_bucket": f"log-redo-{uuid.uuid4().hex[:12]}",
            "collector_wal_dir": tmp_path / "wal",
            "collector_flush_seconds": 3600.0,
        }
    )
    store = ObjectStore.from_settings(settings)

    class Crash(BaseException):
        """Stands in for the process dying: nothing after it runs."""

    async def first_life() -> list[str]:
        collector = Collector(settings, store)
        await collector.start()
        for i in range(40):
            for half, body in (("request", v1_request(i)), ("response", v1_response(i))):
                headers = {k.encode(): v.encode() for k, v in cloudevent_headers(f"redo-{i}", half).items()}  # type: ignore[arg-type]
                assert (await collector.ingest(headers, body)).status == 200

        def crash(flush: int) -> None:
            raise Crash

        monkeypatch.setattr(collector.journal, "commit", crash)
        with pytest.raises(Crash):
            await collector.flush()
        await collector.wal.close()
        collector.journal.close()
        return [uri.key for uri in store.list(S3Uri(settings.monitor_log_bucket, "inference-log/"))]

    uploaded = asyncio.run(first_life())
    assert uploaded, "the crash came after the upload"
    assert len(read_log(settings, *window())) == 40

    async def second_life() -> None:
        collector = Collector(settings, store)
        await collector.start()
        assert collector.recovered_events == 80
        await collector.stop()

    asyncio.run(second_life())
    keys = [uri.key for uri in store.list(S3Uri(settings.monitor_log_bucket, "inference-log/"))]
    assert keys == uploaded, "redone under the same object keys, nothing new"
    frame = read_log(settings, *window())
    assert len(frame) == 40 and frame["request_id"].is_unique
    assert (
        list((tmp_path / "wal").glob("wal-*.log")) != []
        and Collector(settings, store).journal.load().open_intents == {}
    )
