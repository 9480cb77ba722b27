"""The collector as a real process against the session's SeaweedFS: events in, Parquet out, and every way an event
can go wrong (duplicate, half missing, bad, collector killed)."""

from __future__ import annotations

import concurrent.futures
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pandas as pd

from fraud.store import ObjectStore, S3Uri
from monitoring.inference_log import JOIN_COLUMNS, LogReader, read_log

from .conftest import Harness


def txn(i: int) -> dict[str, Any]:
    return {
        "step": 1 + i % 700,
        "type": ("TRANSFER", "CASH_OUT", "PAYMENT")[i % 3],
        "amount": 100.0 + i,
        "nameOrig": f"C{i}",
        "oldbalanceOrg": 1000.0 + i,
        "nameDest": f"M{i}",
        "oldbalanceDest": 0.0,
    }


def v1_request(*ids: int) -> bytes:
    return orjson.dumps({"instances": [txn(i) for i in ids]})


def v1_response(*ids: int, version: str = "3") -> bytes:
    predictions = [
        {
            "fraud_probability": (i % 100) / 100,
            "decision": "block" if i % 10 == 9 else "allow",
            "model_version": version,
            "reasons": [{"reason": "amount", "feature": "amount", "contribution": 1.0}] if i % 10 == 9 else [],
        }
        for i in ids
    ]
    return orjson.dumps({"predictions": predictions})


def v2_request(*ids: int) -> bytes:
    rows = [txn(i) for i in ids]
    kinds = {"step": "INT64", "amount": "FP64", "oldbalanceOrg": "FP64", "oldbalanceDest": "FP64"}
    inputs = [
        {"name": name, "datatype": kinds.get(name, "BYTES"), "shape": [len(rows)], "data": [r[name] for r in rows]}
        for name in rows[0]
    ]
    return orjson.dumps({"id": "x", "inputs": inputs})


def v2_response(*ids: int, version: str = "4") -> bytes:
    n = len(ids)
    outputs = [
        {"name": "fraud_probability", "datatype": "FP64", "shape": [n], "data": [(i % 100) / 100 for i in ids]},
        {"name": "decision", "datatype": "BYTES", "shape": [n], "data": ["allow"] * n},
        {"name": "model_version", "datatype": "BYTES", "shape": [n], "data": [version] * n},
        {"name": "reasons", "datatype": "BYTES", "shape": [n], "data": ["[]"] * n},
    ]
    return orjson.dumps({"model_name": "fraud-detector", "model_version": version, "id": "x", "outputs": outputs})


def window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(hours=1), now + timedelta(hours=1)


def logged(harness: Harness, version: str | None = None) -> pd.DataFrame:
    return read_log(harness.settings, *window(), version=version)


# --- the happy path ---------------------------------------------------------------------------------------------
def test_events_are_joined_into_one_row_per_transaction_partitioned_by_day_and_version(
    shared_collector: Harness,
) -> None:
    c = shared_collector
    for n in range(20):
        rid = f"happy-v1-{n}"
        assert c.send(rid, "request", v1_request(n), ce_endpoint="default").json() == {"status": "stored"}
        assert c.send(rid, "response", v1_response(n)).status_code == 200
    assert c.send("happy-v2", "request", v2_request(100, 101, 102), ce_endpoint="canary").status_code == 200
    assert c.send("happy-v2", "response", v2_response(100, 101, 102)).status_code == 200
    assert c.send("happy-batch", "request", v1_request(50, 51, 52)).status_code == 200
    assert c.send("happy-batch", "response", v1_response(50, 51, 52)).status_code == 200
    c.flush()

    frame = logged(c)
    mine = frame[frame["request_id"].str.startswith("happy-")].set_index(["request_id", "row"]).sort_index()
    assert len(mine) == 26 and mine.index.is_unique
    assert mine["matched"].all()
    first = mine.loc[[("happy-v1-0", 0)]].iloc[0]
    assert first["type"] == "TRANSFER" and first["amount"] == 100.0 and first["nameOrig"] == "C0"
    assert first["score"] == 0.0 and first["decision"] == "allow" and first["model_version"] == "3"
    assert first["protocol"] == "v1" and first["arm"] == "champion" and first["status"] == 200
    blocked = mine.loc[[("happy-v1-19", 0)]].iloc[0]
    assert json.loads(blocked["reasons"])[0]["feature"] == "amount"
    v2 = mine.loc["happy-v2"]
    assert list(v2["amount"]) == [200.0, 201.0, 202.0] and list(v2["step"]) == [101, 102, 103]
    assert set(v2["model_version"]) == {"4"} and set(v2["protocol"]) == {"v2"} and set(v2["arm"]) == {"challenger"}
    batch = mine.loc["happy-batch"]  # one V1 call of three transactions: three rows, in the order sent
    assert list(batch.index) == [0, 1, 2] and list(batch["amount"]) == [150.0, 151.0, 152.0]
    assert list(batch["score"]) == [0.5, 0.51, 0.52] and set(batch["arm"]) == {"champion"}

    subset = read_log(c.settings, *window(), columns=["amount", "type"])  # only what a reader asks for
    assert list(subset.columns) == ["type", "amount"] and len(subset) == len(frame)
    assert isinstance(subset["type"].dtype, pd.CategoricalDtype)

    assert set(logged(c, version="4")["request_id"]) == {"happy-v2"}
    store = ObjectStore.from_settings(c.settings)
    keys = [uri.key for uri in store.list(S3Uri(c.settings.monitor_log_bucket, "inference-log/"))]
    today = datetime.now(UTC).date().isoformat()
    assert any(key.startswith(f"inference-log/day={today}/model_version=3/part-") for key in keys), keys
    assert any(key.startswith(f"inference-log/day={today}/model_version=4/part-") for key in keys), keys


def test_duplicate_deliveries_are_dropped_even_when_concurrent(shared_collector: Harness) -> None:
    c = shared_collector
    assert c.send("dup-1", "request", v1_request(1)).json() == {"status": "stored"}
    assert c.send("dup-1", "request", v1_request(1)).json() == {"status": "duplicate"}
    assert c.send("dup-1", "response", v1_response(1)).json() == {"status": "stored"}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: c.send("dup-2", "request", v1_request(2)).json()["status"], range(8)))
    assert sorted(answers) == ["duplicate"] * 7 + ["stored"]
    assert c.send("dup-2", "response", v1_response(2)).json() == {"status": "stored"}
    c.flush()
    assert c.send("dup-1", "response", v1_response(1)).json() == {"status": "duplicate"}, "after its flush, too"
    c.flush()
    frame = logged(c)
    assert (frame["request_id"] == "dup-1").sum() == 1 and (frame["request_id"] == "dup-2").sum() == 1
    assert c.metrics()['collector_events_duplicate_total{type="request"}'] >= 8


def test_a_half_without_its_partner_is_kept_as_unmatched_and_rejoined_when_the_partner_comes_late(
    shared_collector: Harness,
) -> None:
    c = shared_collector
    before = c.metrics()
    assert c.send("lonely-request", "request", v1_request(7)).status_code == 200
    assert c.send("lonely-response", "response", v1_response(8)).status_code == 200
    assert c.send("late-partner", "request", v1_request(9)).status_code == 200
    rows_before = len(logged(c))
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while datetime.now(UTC) < deadline and len(logged(c)) < rows_before + 3:
        time.sleep(0.2)  # the flush loop writes them once collector_unmatched_seconds (1.5 s) have passed
    frame = logged(c).set_index("request_id")
    request_only, response_only = frame.loc[["lonely-request"]].iloc[0], frame.loc[["lonely-response"]].iloc[0]
    assert not request_only["matched"] and request_only["model_version"] == "unknown"
    assert request_only["amount"] == 107.0 and pd.isna(request_only["score"])
    assert response_only["score"] == 0.08 and pd.isna(response_only["amount"])
    after = c.metrics()
    assert after['collector_unmatched_total{half="request"}'] - before['collector_unmatched_total{half="request"}'] == 2
    assert (
        after['collector_unmatched_total{half="response"}'] - before['collector_unmatched_total{half="response"}'] == 1
    )

    assert c.send("late-partner", "response", v1_response(9)).status_code == 200
    c.flush(unmatched=True)
    late = logged(c).set_index("request_id").loc[["late-partner"]]
    assert len(late) == 1, "read_log puts the two halves back together"
    assert bool(late["matched"].iloc[0]) and late["score"].iloc[0] == 0.09 and late["amount"].iloc[0] == 109.0
    subset = read_log(c.settings, *window(), columns=["model_version", "amount", "score"])  # joined before the cut
    assert list(subset.columns) == ["model_version", "amount", "score"] and len(subset) == len(logged(c))
    assert isinstance(subset["model_version"].dtype, pd.CategoricalDtype)


def test_a_log_reader_reads_each_object_once_as_objects_land(shared_collector: Harness) -> None:
    c = shared_collector
    c.flush(unmatched=False)
    reader = LogReader(c.settings, *window(), columns=["amount", *JOIN_COLUMNS])
    reader.refresh()
    before = len(reader.frame())
    for i in range(7300, 7305):
        assert c.send(f"follow-{i}", "request", v1_request(i)).status_code == 200
        assert c.send(f"follow-{i}", "response", v1_response(i)).status_code == 200
    amounts = [7400.0, 7401.0, 7402.0, 7403.0, 7404.0]
    new_objects, deadline = 0, time.monotonic() + 30
    while time.monotonic() < deadline:  # (the flush loop may have written some of them already)
        c.flush()
        new_objects += reader.refresh()
        if int(reader.frame(["amount"])["amount"].isin(amounts).sum()) == 5:
            break
    assert new_objects >= 1 and reader.refresh() == 0, "an object is read once, when it is new"
    frame = reader.frame(["amount"])
    assert list(frame.columns) == ["amount"] and len(frame) == before + 5
    assert len(frame) == len(logged(c)), "what a reader followed is what read_log reads at the end"


def test_bad_events_get_a_4xx_are_counted_and_do_not_disturb_the_collector(shared_collector: Harness) -> None:
    c = shared_collector
    before = c.metrics()
    assert c.send("bad-1", "request", v1_request(1), ce_type="com.example.other").status_code == 400
    assert c.send("bad-2", "request", b"{not json").status_code == 400
    assert c.send("bad-3", "response", b'{"something": "else"}').status_code == 400
    assert c.send("", "request", v1_request(1)).status_code == 400
    no_specversion = c.session.post(f"{c.url}/", data=v1_request(1), headers={"ce-id": "bad-5"}, timeout=10)
    assert no_specversion.status_code == 400
    oversized = c.send("bad-6", "request", b'{"instances": [' + b" " * (9 * 1024 * 1024) + b"]}")
    assert oversized.status_code == 413 and oversized.json()["reason"] == "oversized"
    answer = c.send("bad-7", "request", b"\xff\xfe garbage")
    assert "not JSON" in answer.json()["error"]
    after = c.metrics()

    def grew(reason: str) -> float:
        key = f'collector_events_bad_total{{reason="{reason}"}}'
        return after[key] - before[key]

    assert (grew("unknown_type"), grew("unparseable_body"), grew("missing_id")) == (1, 3, 1)
    assert (grew("not_cloudevent"), grew("oversized")) == (1, 1)
    assert c.send("good-after-bad", "request", v1_request(1)).json() == {"status": "stored"}
    assert c.session.get(f"{c.url}/healthz", timeout=5).status_code == 200


# --- labels ------------------------------------------------------------------------------------------------------
def test_labels_endpoint_counts_unknown_ids_and_names_the_bad_field(shared_collector: Harness) -> None:
    c = shared_collector
    assert c.send("labelled-1", "request", v1_request(1)).status_code == 200
    answer = c.session.post(
        f"{c.url}/v1/labels",
        json={
            "labels": [{"request_id": "labelled-1", "isFraud": 1}, {"request_id": "never-seen", "row": 2, "isFraud": 0}]
        },
        timeout=10,
    )
    assert answer.json() == {"accepted": 2, "unknown": 1}
    bad = c.session.post(f"{c.url}/v1/labels", json={"labels": [{"request_id": "x", "isFraud": 1}, {"isFraud": 1}]})
    assert bad.status_code == 400
    assert bad.json()["field"] == "request_id" and bad.json()["index"] == 1
