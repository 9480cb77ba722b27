"""A drift check stored in the object store (`fraudctl monitor drift --publish`, the cluster CronJob's way): its
pages and verdict land under the check's UTC day and time, the verdict last, and checks of one day sort in order.

Runs against the session's real S3 store (SeaweedFS).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from fraud.settings import Settings
from fraud.store import ObjectStore
from monitoring.publish import drift_prefix, publish_drift


def test_a_check_is_stored_under_its_utc_time_with_its_pages(stack: Settings, tmp_path: Path) -> None:
    settings = stack.model_copy(update={"data_bucket": f"drift-{uuid.uuid4().hex[:12]}"})
    store = ObjectStore.from_settings(settings)
    page = tmp_path / "drift.html"
    page.write_text("<html>drift</html>")
    checked_at = datetime(2026, 12, 6, 1, 10, 5, tzinfo=timezone(timedelta(hours=2)))  # 23:10:05 UTC the day before
    verdict = {"drift": True, "rows": 1234, "reference_version": "3", "columns": [{"name": "amount"}]}

    prefix = publish_drift(settings, verdict, [page], checked_at, store=store)

    assert str(prefix) == f"s3://{settings.data_bucket}/monitoring/drift/day=2026-12-05/231005Z/"
    assert store.get_json(prefix.child("drift.json")) == verdict
    names = sorted(uri.key.rsplit("/", 1)[-1] for uri in store.list(prefix))
    assert names == ["drift.html", "drift.json"]


def test_checks_of_a_day_sort_in_time_order(stack: Settings) -> None:
    start = datetime(2026, 12, 6, 0, 10, tzinfo=UTC)
    keys = [drift_prefix(stack, start + timedelta(hours=hours)).key for hours in (13, 1, 9, 0)]
    assert sorted(keys) == [drift_prefix(stack, start + timedelta(hours=h)).key for h in (0, 1, 9, 13)]
