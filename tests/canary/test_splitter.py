"""The splitter in front of real predictor processes: sticky split, shadow that never delays, evidence, events.

Traffic is replayed with `serving.canary.replay` (what `fraudctl replay` runs) from generated transactions.
The CloudEvents receiver here is a stand-in for the collector of the monitoring work (which is not part of this
suite): it only records what arrives and answers 200.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import orjson
import pytest
import requests

from fraud.settings import Settings
from fraud.stack.ports import pick_free_ports
from serving.canary.evidence import ArmSample
from serving.canary.replay import Answer, ReplayConfig, load_transactions, predict_url, replay
from serving.canary.splitter import BUCKETS, Route, Target, bucket, first_account, read_rows
from serving.process import LOOPBACK, PredictorProcess

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(1800)]

MODEL = "canary-split"


# --------------------------------------------------------------------------------------------- pure parts


def test_bucket_is_stable_and_spreads_accounts_evenly() -> None:
    accounts = [f"C{n}" for n in range(1_000_000, 1_040_000)]
    buckets = np.array([bucket(a, "rollout-7") for a in accounts])
    assert [bucket(a, "rollout-7") for a in accounts[:100]] == buckets[:100].tolist()
    share = float((buckets < 0.25 * BUCKETS).mean())
    assert abs(share - 0.25) < 4 * (0.25 * 0.75 / len(accounts)) ** 0.5
    other_salt = np.array([bucket(a, "rollout-8") for a in accounts])
    assert float((buckets == other_salt).mean()) < 0.01  # another rollout picks other customers


def test_route_refuses_what_cannot_be_routed() -> None:
    champion = Target("http://127.0.0.1:1", "1")
    with pytest.raises(ValueError, match="weight"):
        Route(champion, Target("http://127.0.0.1:2", "2"), weight=101)
    with pytest.raises(ValueError, match="without a challenger"):
        Route(champion, None, weight=5)
    assert Route.from_json(Route(champion, None).to_json()) == Route(champion, None)


def test_first_account_reads_v1_and_v2_and_tolerates_junk() -> None:
    assert first_account({"instances": [{"nameOrig": "C1"}, {"nameOrig": "C2"}]}) == "C1"
    assert first_account({"inputs": [{"name": "step", "data": [1]}, {"name": "nameOrig", "data": ["C9"]}]}) == "C9"
    junk: Any
    for junk in (None, [], {"instances": []}, {"instances": [3]}, {"inputs": [{"name": "nameOrig", "data": [5]}]}):
        assert first_account(junk) is None
    scores, codes, version = read_rows(
        b'{"predictions":[{"fraud_probability":0.5,"decision":"block","model_version":"4"}]}'
    )
    assert (scores, codes, version) == ([0.5], [2], "4")


# --------------------------------------------------------------------------------------------- live


@pytest.fixture(scope="module")
def versions(register_variant: Callable[..., str]) -> tuple[str, str]:
    return register_variant(MODEL, label="champion"), register_variant(MODEL, label="challenger")


@pytest.fixture
def arms(start_predictor: Callable[..., PredictorProcess], versions: tuple[str, str]) -> tuple[PredictorProcess, ...]:
    champion, challenger = start_predictor(MODEL, versions[0]), start_predictor(MODEL, versions[1])
    champion.wait_ready(600)
    challenger.wait_ready(600)
    return champion, challenger


def _run(url: str, stack: Settings, *, rate: float, seconds: float, seed: int = 5) -> list[Answer]:
    config = ReplayConfig(url=predict_url(url, "v1", MODEL), rate=rate, duration_s=seconds, timeout_s=20)
    transactions = load_transactions(stack, source=None, scenario="baseline", rows=config.planned, seed=seed)
    answers: list[Answer] = []
    replay(config, transactions, on_answer=answers.append)
    return sorted(answers, key=lambda a: a.index)


def test_split_is_sticky_by_account_and_matches_the_weight(
    stack: Settings, arms: tuple[PredictorProcess, ...], versions: tuple[str, str], start_splitter: Any
) -> None:
    champion, challenger = arms
    route = Route(Target(champion.url, versions[0]), Target(challenger.url, versions[1]), weight=30, salt="t1")
    splitter = start_splitter(route, MODEL)
    transactions = load_transactions(stack, source=None, scenario="baseline", rows=600, seed=5)
    first = _run(splitter.url, stack, rate=100, seconds=6)
    second = _run(splitter.url, stack, rate=100, seconds=6)  # the same transactions again
    assert all(a.status == 200 for a in first + second), [a.error for a in first + second if a.status != 200][:3]
    for answer in first:
        account = transactions.rows[answer.index]["nameOrig"]
        expected = "challenger" if bucket(account, "t1") < 3000 else "champion"
        assert answer.arm == expected
        assert answer.model_version == versions[0 if expected == "champion" else 1]
    assert [a.arm for a in first] == [a.arm for a in second]
    share = sum(a.arm == "challenger" for a in first) / len(first)
    assert abs(share - 0.30) < 4 * (0.3 * 0.7 / len(first)) ** 0.5
    window = splitter.admin("POST", "window")
    assert len(window["challenger"]["latencies_ms"]) == sum(a.arm == "challenger" for a in first + second)
    sample = ArmSample.from_answers(
        latencies_ms=window["champion"]["latencies_ms"],
        failed=window["champion"]["failed"],
        scores=window["champion"]["scores"],
        decisions=window["champion"]["decisions"],
    )
    assert sample.requests == sum(a.arm == "champion" for a in first + second) and sample.errors == 0
    assert window["pairs"]["champion_scores"] == []  # no shadow, no pairs


def test_shadow_copies_traffic_without_delaying_answers(
    stack: Settings,
    arms: tuple[PredictorProcess, ...],
    versions: tuple[str, str],
    start_splitter: Any,
    delay_proxy: Any,
) -> None:
    champion, challenger = arms
    slow = delay_proxy(challenger.http_port, 0.4)  # the challenger takes 400 ms more per answer
    route = Route(Target(champion.url, versions[0]), Target(slow.url, versions[1]), shadow=True, salt="t2")
    splitter = start_splitter(route, MODEL)
    answers = _run(splitter.url, stack, rate=50, seconds=6)
    assert {a.arm for a in answers} == {"champion"}
    assert {a.model_version for a in answers} == {versions[0]}
    assert statistics.median(a.latency_ms for a in answers) < 200  # nowhere near the shadow's 400 ms
    time.sleep(1.5)  # the last copies come back
    window = splitter.admin("POST", "window")
    pairs = window["pairs"]
    assert len(pairs["champion_scores"]) == len(answers) == len(pairs["challenger_scores"])
    # the same model on both arms: every pair agrees, score for score
    assert np.allclose(pairs["champion_scores"], pairs["challenger_scores"])
    assert min(window["challenger"]["latencies_ms"]) >= 400


def test_request_ids_travel_through_and_v2_works(
    stack: Settings, arms: tuple[PredictorProcess, ...], versions: tuple[str, str], start_splitter: Any
) -> None:
    champion, challenger = arms
    splitter = start_splitter(Route(Target(champion.url, versions[0]), Target(challenger.url, versions[1]), 50), MODEL)
    row = {"step": 3, "type": "TRANSFER", "amount": 181000.0, "nameOrig": "C1231006815", "nameDest": "C1979787155"}
    v1 = f"{splitter.url}/v1/models/{MODEL}:predict"
    by_header = requests.post(v1, json={"instances": [row]}, headers={"x-request-id": "abc-1"}, timeout=10)
    assert by_header.status_code == 200 and by_header.headers["x-request-id"] == "abc-1"
    by_body = requests.post(v1, json={"id": "abc-2", "instances": [row]}, timeout=10)
    assert by_body.headers["x-request-id"] == "abc-2"
    fresh = requests.post(v1, json={"instances": [row]}, timeout=10)
    assert len(fresh.headers["x-request-id"]) == 32
    inputs = [
        {"name": k, "datatype": "FP64" if k == "amount" else "INT64" if k == "step" else "BYTES", "shape": [1],
         "data": [v]}
        for k, v in row.items()
    ]  # fmt: skip
    v2 = requests.post(f"{splitter.url}/v2/models/{MODEL}/infer", json={"id": "v2-1", "inputs": inputs}, timeout=10)
    assert v2.status_code == 200, v2.text
    arm = v2.headers["x-canary-arm"]
    assert v2.json()["model_version"] == versions[0 if arm == "champion" else 1]
    assert v2.json()["id"] == "v2-1"
    bad = requests.post(v1, json={"instances": [{**row, "amount": -1}]}, timeout=10)
    assert bad.status_code == 400 and "amount" in bad.json()["error"]
    stats = splitter.admin("GET", "stats")
    assert stats["champion"]["errors"] + stats["challenger"]["errors"] == 0  # a client's 400 is not an arm error
    assert requests.get(f"{splitter.url}/v2/health/ready", timeout=10).status_code == 200
    metrics = requests.get(f"{splitter.url}/metrics", timeout=10).text
    assert 'canary_requests_total{arm="champion"' in metrics


def test_a_dead_arm_answers_502_and_counts_as_that_arms_error(
    stack: Settings, arms: tuple[PredictorProcess, ...], versions: tuple[str, str], start_splitter: Any
) -> None:
    champion, challenger = arms
    route = Route(Target(champion.url, versions[0]), Target(challenger.url, versions[1]), weight=50, salt="t3")
    splitter = start_splitter(route, MODEL)
    challenger.stop(20)
    answers = _run(splitter.url, stack, rate=50, seconds=2)
    failed = [a for a in answers if a.status != 200]
    assert failed and {a.status for a in failed} == {502} and {a.arm for a in failed} == {"challenger"}
    assert all(a.status == 200 for a in answers if a.arm == "champion")
    window = splitter.admin("POST", "window")
    assert sum(window["challenger"]["failed"]) == len(failed)


class _EventReceiver:
    """Records CloudEvents POSTed to it (headers and body) and answers 200."""

    def __init__(self) -> None:
        (self.port,) = pick_free_ports(1, LOOPBACK)
        self.events: list[tuple[dict[str, str], bytes]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")[1:]
            headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.events.append((headers, body))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    def start(self) -> _EventReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(asyncio.start_server(self._handle, LOOPBACK, self.port), self._loop).result(5)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.fixture
def receiver() -> Iterator[_EventReceiver]:
    found = _EventReceiver().start()
    yield found
    found.stop()


def test_every_call_is_emitted_as_kserve_style_cloudevents(
    stack: Settings,
    arms: tuple[PredictorProcess, ...],
    versions: tuple[str, str],
    start_splitter: Any,
    receiver: _EventReceiver,
) -> None:
    champion, challenger = arms
    route = Route(Target(champion.url, versions[0]), Target(challenger.url, versions[1]), weight=50, salt="t4")
    splitter = start_splitter(route, MODEL, f"http://{LOOPBACK}:{receiver.port}/")
    answers = _run(splitter.url, stack, rate=40, seconds=2)
    deadline = time.monotonic() + 10
    while len(receiver.events) < 2 * len(answers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(receiver.events) == 2 * len(answers)
    by_id: dict[str, list[tuple[dict[str, str], bytes]]] = {}
    for headers, body in receiver.events:
        by_id.setdefault(headers["ce-id"], []).append((headers, body))
    for answer in answers:
        pair = sorted(by_id[answer.request_id], key=lambda event: event[0]["ce-type"])
        (request_headers, request_body), (response_headers, response_body) = pair
        assert request_headers["ce-type"] == "org.kubeflow.serving.inference.request"
        assert response_headers["ce-type"] == "org.kubeflow.serving.inference.response"
        for headers in (request_headers, response_headers):
            assert headers["ce-specversion"] == "1.0"
            assert headers["ce-source"] == headers["ce-endpoint"] == answer.arm
            assert headers["ce-inferenceservicename"] == MODEL and headers["ce-namespace"] == "local"
            assert headers["content-type"] == "application/json"
        assert orjson.loads(request_body)["id"] == answer.request_id
        assert orjson.loads(response_body)["predictions"][0]["model_version"] == answer.model_version
    assert splitter.admin("GET", "stats")["events"] == {"sent": 2 * len(answers), "failed": 0, "dropped": 0}
