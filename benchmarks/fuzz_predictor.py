"""Fuzz the predictor with malformed requests: ≥ 10,000 of them, and not one 5xx.

Usage (against a running predictor, or one this script starts on free loopback ports)::

    python -m benchmarks.fuzz_predictor --url http://127.0.0.1:8080 --examples 10000
    python -m benchmarks.fuzz_predictor --examples 10000 -- --model_version 3      # starts python -m serving
    python -m benchmarks.fuzz_predictor --examples 10000 -- --model_dir /tmp/model

Prints the total sent, the count by status class and by kind of fault, the 5xx count (must be 0), the 2xx count
(a malformed request that was accepted: must be 0 too) and whether the server is alive afterwards; exits 1 when
any of these is wrong.

The requests come from Hypothesis strategies (also used by ``tests/serving/test_fuzz.py`` for a short run). Each
one starts from a valid V1 or V2 request and breaks exactly one thing, or is not a request at all (random bytes,
random JSON, truncated bodies, lying V2 binary headers), so each is invalid by construction.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import orjson
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from fraud import schema
from serving.process import LOOPBACK, PredictorProcess
from serving.validation import EXAMPLE_TRANSACTION

V1_PATH = "/v1/models/fraud-detector:predict"
V2_PATH = "/v2/models/fraud-detector/infer"
REQUIRED = ("step", "type", "amount", "nameOrig", "nameDest")
V2_TYPES = {"step": "INT64", "type": "BYTES", "amount": "FP64", "nameOrig": "BYTES", "nameDest": "BYTES"}
MAX_BATCH = 1000


@dataclass(frozen=True)
class Malformed:
    """One request to send: where, what, and which fault it carries (for the report)."""

    path: str
    body: bytes
    fault: str
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


def _transaction(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "step": draw(st.integers(1, 743)),
        "type": draw(st.sampled_from(schema.TRANSACTION_TYPES)),
        "amount": draw(st.floats(0, 1e7, allow_nan=False)),
        "nameOrig": draw(st.from_regex(r"C[0-9]{1,10}", fullmatch=True)),
        "nameDest": draw(st.from_regex(r"[CM][0-9]{1,10}", fullmatch=True)),
    }


json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
not_a_number = st.one_of(
    st.booleans(),
    st.none(),
    st.text(max_size=10),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
not_an_integer = (
    not_a_number | st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x != int(x)) | st.just(3.0)
)
not_a_string = st.one_of(
    st.booleans(), st.none(), st.integers(), st.floats(allow_nan=False), st.lists(st.text(), max_size=2)
)
bad_type = not_a_string | st.text(max_size=12).filter(lambda t: t not in schema.TRANSACTION_TYPES)
bad_step = not_an_integer | st.integers(max_value=0) | st.integers(min_value=1_000_001)
bad_amount = (
    not_a_number | st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False) | st.integers(max_value=-1)
)
bad_name = not_a_string | st.just("") | st.text(min_size=257, max_size=300)
BAD_VALUES = {"step": bad_step, "type": bad_type, "amount": bad_amount, "nameOrig": bad_name, "nameDest": bad_name}


@st.composite
def v1_malformed(draw: st.DrawFn) -> Malformed:
    instances: list[Any] = [_transaction(draw) for _ in range(draw(st.integers(1, 4)))]
    fault = draw(
        st.sampled_from(
            [
                "bad value",
                "missing field",
                "not an object",
                "instances not a list",
                "no instances",
                "empty batch",
                "oversized batch",
                "body not an object",
                "bad parameters",
                "random json",
            ]
        )
    )
    body: Any = {"instances": instances}
    if fault == "bad value":
        field_name = draw(st.sampled_from(REQUIRED))
        instances[draw(st.integers(0, len(instances) - 1))][field_name] = draw(BAD_VALUES[field_name])
        fault = f"bad {field_name}"
    elif fault == "missing field":
        field_name = draw(st.sampled_from(REQUIRED))
        del instances[draw(st.integers(0, len(instances) - 1))][field_name]
        fault = f"missing {field_name}"
    elif fault == "not an object":
        instances[draw(st.integers(0, len(instances) - 1))] = draw(json_scalars | st.lists(json_scalars, max_size=3))
    elif fault == "instances not a list":
        body = {"instances": draw(json_scalars | st.dictionaries(st.text(max_size=5), json_scalars, max_size=3))}
    elif fault == "no instances":
        body = {draw(st.sampled_from(["inputs", "instance", "Instances", "data"])): instances}
    elif fault == "empty batch":
        body = {"instances": []}
    elif fault == "oversized batch":
        body = {"instances": [instances[0]] * (MAX_BATCH + draw(st.integers(1, 50)))}
    elif fault == "body not an object":
        body = draw(json_scalars | st.lists(json_values, max_size=3))
    elif fault == "bad parameters":
        body["parameters"] = draw(
            st.dictionaries(
                st.just("reasons"), json_scalars.filter(lambda v: v not in ("all", "flagged", "none")), min_size=1
            )
            | json_scalars.filter(lambda v: v is not None)
        )
    else:
        body = draw(json_values.filter(lambda v: not (isinstance(v, dict) and "instances" in v)))
    return Malformed(V1_PATH, _dumps(body), f"v1: {fault}")


def _v2_request(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": name, "shape": [len(rows)], "datatype": datatype, "data": [row[name] for row in rows]}
            for name, datatype in V2_TYPES.items()
        ]
    }


@st.composite
def v2_malformed(draw: st.DrawFn) -> Malformed:
    rows = [_transaction(draw) for _ in range(draw(st.integers(1, 4)))]
    request = _v2_request(rows)
    inputs: list[dict[str, Any]] = request["inputs"]
    target = draw(st.integers(0, len(inputs) - 1))
    name = inputs[target]["name"]
    fault = draw(
        st.sampled_from(
            [
                "bad value",
                "wrong datatype",
                "bad shape",
                "length mismatch",
                "unknown input",
                "duplicate input",
                "missing input",
                "data not a list",
                "missing key",
                "no inputs",
                "unknown output",
                "bad parameters",
                "random json",
            ]
        )
    )
    body: Any = request
    if fault == "bad value":
        inputs[target]["data"][draw(st.integers(0, len(rows) - 1))] = draw(BAD_VALUES[name])
        fault = f"bad {name}"
    elif fault == "wrong datatype":
        allowed = {"INT64", "INT32"} if name == "step" else {"FP64", "FP32"} if name == "amount" else {"BYTES"}
        choices = ["INT8", "INT16", "INT32", "INT64", "UINT8", "FP16", "FP32", "FP64", "BOOL", "BYTES", "STRING", "x"]
        inputs[target]["datatype"] = draw(st.sampled_from([c for c in choices if c not in allowed]))
    elif fault == "bad shape":
        inputs[target]["shape"] = draw(
            st.lists(st.integers(-2, 6), min_size=0, max_size=3).filter(
                lambda s: s not in ([len(rows)], [len(rows), 1])
            )
        )
    elif fault == "length mismatch":
        extra = draw(st.integers(1, 3))
        inputs[target]["data"] = inputs[target]["data"] + inputs[target]["data"][:1] * extra
        inputs[target]["shape"] = [len(rows) + extra]
    elif fault == "unknown input":
        inputs.append(
            {
                "name": draw(
                    st.text(max_size=10).filter(lambda n: n not in {*V2_TYPES, "oldbalanceOrg", "oldbalanceDest"})
                ),
                "shape": [len(rows)],
                "datatype": "FP64",
                "data": [1.0] * len(rows),
            }
        )
    elif fault == "duplicate input":
        inputs.append(copy.deepcopy(inputs[target]))
    elif fault == "missing input":
        del inputs[target]
    elif fault == "data not a list":
        inputs[target]["data"] = draw(json_scalars | st.dictionaries(st.text(max_size=3), json_scalars, max_size=2))
    elif fault == "missing key":
        del inputs[target][draw(st.sampled_from(["name", "shape", "datatype", "data"]))]
    elif fault == "no inputs":
        body = draw(st.sampled_from([{"inputs": []}, {}, {"outputs": []}, {"inputs": None}]))
    elif fault == "unknown output":
        request["outputs"] = [
            {
                "name": draw(
                    st.text(max_size=10).filter(
                        lambda n: n not in {"fraud_probability", "decision", "model_version", "reasons"}
                    )
                )
            }
        ]
    elif fault == "bad parameters":
        request["parameters"] = {
            "reasons": draw(st.text(max_size=8).filter(lambda v: v not in ("all", "flagged", "none")))
        }
    else:
        body = draw(json_values.filter(lambda v: not (isinstance(v, dict) and "inputs" in v)))
    return Malformed(V2_PATH, _dumps(body), f"v2: {fault}")


@st.composite
def raw_malformed(draw: st.DrawFn) -> Malformed:
    """Not JSON, truncated JSON, or a V2 binary payload whose header lies."""
    path = draw(st.sampled_from([V1_PATH, V2_PATH]))
    kind = draw(st.sampled_from(["bytes", "truncated", "binary header"]))
    if kind == "bytes":
        body = draw(st.binary(max_size=64).filter(_not_json))
        return Malformed(path, body, "raw: not JSON")
    if kind == "truncated":
        valid = orjson.dumps(
            {"instances": [{"step": 1, "type": "PAYMENT", "amount": 1.0, "nameOrig": "a", "nameDest": "b"}]}
        )
        cut = draw(st.integers(1, len(valid) - 1))
        return Malformed(path, valid[:cut], "raw: truncated JSON")
    body = draw(st.binary(min_size=1, max_size=64))
    length = draw(st.integers(0, 80))
    headers = {"content-type": "application/octet-stream", "inference-header-content-length": str(length)}
    return Malformed(V2_PATH, body, "raw: V2 binary header", headers)


def _dumps(body: Any) -> bytes:
    """stdlib JSON: it writes integers beyond 64 bits (orjson refuses) and Infinity/NaN (invalid JSON: good)."""
    return json.dumps(body).encode("utf-8")


def _not_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return True
    return False


malformed_requests = st.one_of(v1_malformed(), v2_malformed(), raw_malformed())


# ------------------------------------------------------------------------------------------------- the run


@dataclass
class Tally:
    """Statuses by class and by fault, plus the failures worth printing."""

    by_class: Counter[str] = field(default_factory=Counter)
    by_fault: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.by_class.values())

    def add(self, request: Malformed, status: int | None, detail: str = "") -> None:
        kind = "no answer" if status is None else f"{status // 100}xx"
        self.by_class[kind] += 1
        self.by_fault.setdefault(request.fault, Counter())[kind] += 1
        if kind != "4xx" and len(self.failures) < 20:
            self.failures.append(f"{request.fault}: {status} {detail[:200]} body={request.body[:120]!r}")


def fuzz(base_url: str, examples: int, seed: int) -> Tally:
    """Send ``examples`` malformed requests to ``base_url``; never raises on a bad answer, counts it."""
    tally = Tally()
    session = requests.Session()

    @hypothesis.seed(seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(malformed_requests)
    def send(request: Malformed) -> None:
        try:
            response = session.post(base_url + request.path, data=request.body, headers=request.headers, timeout=30)
        except requests.RequestException as exc:
            tally.add(request, None, str(exc))
            return
        tally.add(request, response.status_code, response.text)

    send()
    return tally


def _alive(base_url: str) -> bool:
    try:
        live = requests.get(f"{base_url}/v2/health/live", timeout=5).status_code == 200
        answer = requests.post(
            f"{base_url}{V1_PATH}", json={"instances": [EXAMPLE_TRANSACTION]}, timeout=10
        ).status_code
    except requests.RequestException:
        return False
    return live and answer == 200


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--url", help="A running predictor (default: start python -m serving on free ports).")
    parser.add_argument("--examples", type=int, default=10_000, help="Malformed requests to send.")
    parser.add_argument("--seed", type=int, default=20261124, help="Hypothesis seed (same seed, same requests).")
    parser.add_argument("server_args", nargs="*", help="Arguments for python -m serving (after --).")
    args = parser.parse_args(argv)

    predictor: PredictorProcess | None = None
    base_url = args.url
    if base_url is None:
        from fraud.stack.ports import pick_free_ports

        http_port, grpc_port = pick_free_ports(2, LOOPBACK)
        log_path = Path(tempfile.mkdtemp(prefix="fuzz-predictor-")) / "predictor.log"
        predictor = PredictorProcess.start(http_port, grpc_port, args.server_args, log_path=log_path)
        try:
            predictor.wait_ready()
        except TimeoutError:
            predictor.stop()
            print(
                f"error: the predictor did not load a model (log: {log_path}); start the local stack with a "
                "registered model (make demo), or give one: -- --model_dir DIR",
                file=sys.stderr,
            )
            return 2
        base_url = predictor.url
        print(f"started python -m serving {' '.join(args.server_args)} on {base_url} (log: {log_path})")
    started = time.monotonic()
    try:
        tally = fuzz(base_url.rstrip("/"), args.examples, args.seed)
        alive = _alive(base_url.rstrip("/"))
    finally:
        exit_code = predictor.stop() if predictor is not None else None
    elapsed = time.monotonic() - started

    print(f"sent: {tally.total:,} malformed requests in {elapsed:.1f} s ({tally.total / elapsed:,.0f}/s)")
    print("by status class: " + ", ".join(f"{k} {v:,}" for k, v in sorted(tally.by_class.items())))
    print("by fault:")
    for fault, counts in sorted(tally.by_fault.items()):
        print(f"  {fault:<32} " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))
    server_errors = tally.by_class["5xx"]
    accepted = tally.by_class["2xx"]
    print(f"5xx: {server_errors}  (must be 0)")
    print(f"2xx: {accepted}  (malformed but accepted; must be 0)")
    print(f"no answer: {tally.by_class['no answer']}")
    print(f"server alive after: {'yes' if alive else 'NO'}")
    if exit_code is not None:
        print(f"predictor exit code after SIGTERM: {exit_code}")
    for failure in tally.failures:
        print(f"  ! {failure}")
    ok = (
        tally.total >= args.examples
        and server_errors == 0
        and accepted == 0
        and tally.by_class["no answer"] == 0
        and alive
        and exit_code in (None, 0)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
