"""The cluster runtime's objects: what it writes to an InferenceService, checked against KServe's typed models and
the admission rules KServe enforces on canaries, and its evidence read from the predictor's own metrics code.

The patches are applied here with JSON merge-patch semantics (RFC 7386, what the API server does with them); a
real API server runs them in the control-plane work. The typed-model check is strict: unknown fields, wrong
primitive types and missing required fields fail, naming the JSON path.
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import kserve
import numpy as np
import pytest
from kserve.errors import ModelNotReady
from kubernetes.client import models as k8s_models
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

from fraud.settings import Settings
from serving.artifacts import DirectorySource
from serving.canary.cluster import (
    STATE_ANNOTATION,
    ClusterRolloutError,
    arm_sample,
    check_canary_rules,
    check_name_change,
    merge,
    parse_metrics,
    promote_patch,
    rollback_patch,
    served_version,
    state_patch,
    weight_patch,
)
from serving.canary.rollout import RolloutSpec, RolloutState, start
from serving.metrics import SCORE_BUCKETS, BatchHistogram
from serving.predictor import FraudPredictor

IMAGE = "localhost:5001/fraud-platform:0.1.0"


def _variant(name: str | None, version: str) -> dict[str, Any]:
    predictor: dict[str, Any] = {
        "containers": [
            {
                "name": "kserve-container",
                "image": IMAGE,
                "command": ["python", "-m", "serving"],
                "args": ["--model_name", "fraud-detector", "--http_port", "8080"],
                "env": [
                    {"name": "FRAUD_SERVE_HOST", "value": "0.0.0.0"},
                    {"name": "STORAGE_URI", "value": f"s3://mlflow-artifacts/models/fraud-detector/{version}"},
                    {"name": "FRAUD_MODEL_VERSION", "value": version},
                ],
                "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
            }
        ]
    }
    if name:
        predictor["name"] = name
    return predictor


def isvc_with_canary(weight: int = 0) -> dict[str, Any]:
    stable = {**_variant(None, "3"), "minReplicas": 1, "maxReplicas": 3, "scaleMetric": "cpu", "scaleTarget": 70}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "fraud-detector",
            "namespace": "fraud",
            "annotations": {"serving.kserve.io/deploymentMode": "Standard"},
        },
        "spec": {"predictor": stable, "canary": [{"trafficPercent": weight, "predictor": _variant("v4", "4")}]},
    }


_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "object": (object,),
    "ResourceQuantity": (str, int, float),
}


def to_typed(data: Any, type_name: str, path: str = "") -> Any:
    """KServe's typed model (and the Kubernetes ones it nests) from a manifest, strictly."""
    if data is None:
        return None
    if type_name.startswith("list["):
        assert isinstance(data, list), f"{path}: expected a list"
        return [to_typed(item, type_name[5:-1], f"{path}[{i}]") for i, item in enumerate(data)]
    if type_name.startswith("dict("):
        assert isinstance(data, dict), f"{path}: expected a mapping"
        value_type = type_name[5:-1].split(",", 1)[1].strip()
        return {key: to_typed(value, value_type, f"{path}.{key}") for key, value in data.items()}
    if type_name in _PRIMITIVES:
        assert isinstance(data, _PRIMITIVES[type_name]), f"{path}: expected {type_name}, got {data!r}"
        assert not (type_name in {"int", "float"} and isinstance(data, bool)), f"{path}: bool where {type_name}"
        return data
    cls = getattr(kserve.models, type_name, None) or getattr(k8s_models, type_name)
    assert isinstance(data, dict), f"{path}: expected a {type_name} mapping"
    json_to_attr = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    unknown = sorted(set(data) - set(json_to_attr))
    assert not unknown, f"{path}: unknown field(s) {unknown} for {type_name}"
    kwargs = {json_to_attr[k]: to_typed(v, cls.openapi_types[json_to_attr[k]], f"{path}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def valid(isvc: dict[str, Any]) -> dict[str, Any]:
    """The object passes KServe's typed models and canary admission rules; returned for chaining."""
    assert isinstance(to_typed(isvc, "V1beta1InferenceService", "InferenceService"), kserve.V1beta1InferenceService)
    check_canary_rules(isvc)
    return isvc


def test_each_step_sets_only_the_canarys_traffic_percent() -> None:
    before = valid(isvc_with_canary(0))
    patch = weight_patch(before, 25)
    after = valid(merge(before, patch))
    assert after["spec"]["canary"][0]["trafficPercent"] == 25
    expected = copy.deepcopy(before)
    expected["spec"]["canary"][0]["trafficPercent"] = 25
    assert after == expected
    assert merge(after, weight_patch(after, 25)) == after  # idempotent


def test_promotion_moves_model_and_name_to_the_stable_predictor_and_removes_the_canary() -> None:
    before = valid(isvc_with_canary(50))
    patch = promote_patch(before)
    after = valid(merge(before, patch))
    check_name_change(before, after)
    predictor = after["spec"]["predictor"]
    assert "canary" not in after["spec"]
    assert predictor["name"] == "v4" and served_version(predictor) == "4"
    assert {k: predictor[k] for k in ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget")} == {
        "minReplicas": 1,
        "maxReplicas": 3,
        "scaleMetric": "cpu",
        "scaleTarget": 70,
    }
    golden = {
        "spec": {
            "canary": None,
            "predictor": {
                **_variant("v4", "4"),
                "minReplicas": 1,
                "maxReplicas": 3,
                "scaleMetric": "cpu",
                "scaleTarget": 70,
            },
        }
    }
    assert json.loads(json.dumps(patch)) == golden
    assert promote_patch(after) == {}  # a second promotion (after a crash) changes nothing


def test_rollback_removes_the_canary_and_keeps_the_stable_predictor() -> None:
    before = valid(isvc_with_canary(5))
    after = valid(merge(before, rollback_patch(before)))
    assert "canary" not in after["spec"] and after["spec"]["predictor"] == before["spec"]["predictor"]
    assert rollback_patch(after) == {}


def test_kserve_admission_rules_are_enforced_before_writing() -> None:
    same_name = isvc_with_canary()
    same_name["spec"]["predictor"]["name"] = "v4"
    with pytest.raises(ClusterRolloutError, match="unique"):
        check_canary_rules(same_name)
    autoscaled = isvc_with_canary()
    autoscaled["spec"]["canary"][0]["predictor"]["maxReplicas"] = 2
    with pytest.raises(ClusterRolloutError, match="autoscaling"):
        check_canary_rules(autoscaled)
    renamed = copy.deepcopy(isvc_with_canary())
    renamed["spec"]["predictor"]["name"] = "other"
    with pytest.raises(ClusterRolloutError, match="storage URI"):
        check_name_change(isvc_with_canary(), renamed)
    unpinned = isvc_with_canary()
    unpinned["spec"]["canary"][0]["predictor"]["containers"][0]["env"] = []
    with pytest.raises(ClusterRolloutError, match="FRAUD_MODEL_VERSION"):
        served_version(unpinned["spec"]["canary"][0]["predictor"])


def test_the_state_lives_in_an_annotation_and_round_trips() -> None:
    state, _ = start(RolloutSpec("3", "4", shadow=False, steps=(5, 25, 100)), 1000.0)
    after = valid(merge(isvc_with_canary(), state_patch(state)))
    text = after["metadata"]["annotations"][STATE_ANNOTATION]
    assert RolloutState.from_json(text) == state
    assert after["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"


def _scrape(decisions: dict[str, int], latencies_s: list[float], scores: list[float]) -> str:
    """A predictor's /metrics text as its own metrics code writes it (fresh registry per scrape)."""
    registry = CollectorRegistry()
    counter = Counter("fraud_decisions", "d", ["decision", "model_version"], registry=registry)
    for decision, count in decisions.items():
        counter.labels(decision, "4").inc(count)
    histogram = Histogram("request_predict_seconds", "p", ["model_name"], registry=registry)
    for value in latencies_s:
        histogram.labels("fraud-detector").observe(value)
    score_histogram = BatchHistogram("fraud_score", "s", SCORE_BUCKETS, "model_version")
    registry.register(score_histogram)
    score_histogram.observe("4", np.asarray(scores))
    return generate_latest(registry).decode()


def test_evidence_is_the_growth_of_the_predictors_metrics_between_two_looks() -> None:
    first = parse_metrics(
        _scrape({"allow": 90, "review": 8, "block": 2}, [0.004] * 100, [0.001] * 100), "fraud-detector"
    )
    later_scores = [0.001] * 100 + [0.0005] * 50 + [0.4] * 10
    second = parse_metrics(
        _scrape({"allow": 135, "review": 22, "block": 3}, [0.004] * 100 + [0.3] * 60, later_scores), "fraud-detector"
    )
    sample = arm_sample(first, second)
    assert (sample.requests, sample.rows, sample.blocks, sample.reviews) == (60, 60, 1, 14)
    assert np.all(sample.latencies_ms == 500.0)  # 0.3 s falls in the (0.25, 0.5] bucket: its upper bound
    assert sorted(set(sample.scores.tolist())) == [0.0005, 0.4]  # bucket midpoints of (0, 0.001] and (0.3, 0.5]
    assert np.count_nonzero(sample.scores == 0.4) == 10


def test_server_failures_of_a_real_predictor_are_an_arms_errors(tmp_path: Path) -> None:
    """A predictor answering 503 (no model loaded yet): its own failure counter, rendered from the registry its
    server exports on /metrics, makes the requests and errors of the window; they are not in the latency histogram."""
    predictor = FraudPredictor("fraud-detector", DirectorySource(tmp_path / "no-model"), Settings())
    body = {"instances": [{"step": 1}]}
    before = parse_metrics(generate_latest(REGISTRY).decode(), "fraud-detector")
    for _ in range(3):
        with pytest.raises(ModelNotReady):
            asyncio.run(predictor.infer_rest(body))
    after = parse_metrics(generate_latest(REGISTRY).decode(), "fraud-detector")
    sample = arm_sample(before, after)
    assert (sample.requests, sample.errors, sample.rows) == (3, 3, 0)
    assert arm_sample(after, after).errors == 0
    other_model = arm_sample(
        parse_metrics(generate_latest(REGISTRY).decode(), "another-model"),
        parse_metrics(generate_latest(REGISTRY).decode(), "another-model"),
    )
    assert other_model.errors == 0
