"""Shared machinery for the Kubernetes artifact tests: render the chart with Helm's own engine, parse the output,
and turn an InferenceService into KServe's typed models strictly.

Nothing here needs Docker or a cluster: rendering goes through helm-python-sdk (the Helm Go library, `lookup`
returns nothing offline), Kubernetes schemas come from kubernetes-validate, KServe's API from its Python SDK.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import kserve
import kubernetes.client.models as k8s_models
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "fraud-platform"
RELEASE = "fraud-platform"
NAMESPACE = "fraud"
KUBE_VERSIONS = ("1.33", "1.34")
"""1.33: the version the issue validates against; 1.34: the kind node image kind-config.yaml pins."""

VALUE_SETS: dict[str, Path | None] = {"default": None} | {
    path.name.removesuffix("-values.yaml"): path for path in sorted((CHART / "ci").glob("*-values.yaml"))
}
"""The default values plus every ci/*-values.yaml (chart-testing's convention), by short name."""

Obj = dict[str, Any]


def yaml_load(text: str) -> Any:
    """Parse one YAML document (safe loader)."""
    return yaml.safe_load(text)


def yaml_load_all(text: str) -> list[Any]:
    """Parse every document of a YAML stream, dropping empty ones."""
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def yaml_dump(data: Any) -> str:
    return str(yaml.safe_dump(data))


@dataclass
class Rendered:
    """One render of the chart: the manifests by template path and the Kubernetes objects they hold."""

    name: str
    values: dict[str, Any]
    manifests: dict[str, str]
    objects: list[Obj] = field(default_factory=list)
    notes: str = ""

    def of_kind(self, kind: str) -> list[Obj]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str, name: str) -> Obj:
        found = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
        return found[0]


def load_values(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    loaded = yaml_load(path.read_text())
    assert isinstance(loaded, dict), path
    return loaded


def render(values: dict[str, Any] | None = None, name: str = "custom", api_versions: tuple[str, ...] = ()) -> Rendered:
    """Render the chart offline as `helm install fraud-platform -n fraud` would (schema enforced).

    `api_versions` are added to `.Capabilities.APIVersions` (as `helm template --api-versions` does), e.g.
    ``monitoring.coreos.com/v1/PrometheusRule`` for a cluster with the Prometheus Operator's CRDs.
    """
    with helm.Chart.load(str(CHART)) as chart:
        if api_versions:
            manifests = _render_with_api_versions(chart, values, api_versions)
        else:
            manifests = chart.render(values or None, name=RELEASE, namespace=NAMESPACE, is_install=True)
    rendered = Rendered(name=name, values=values or {}, manifests=manifests)
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            rendered.notes = text
            continue
        for doc in yaml_load_all(text):
            if doc:
                assert isinstance(doc, dict), f"{path}: not a mapping"
                rendered.objects.append(doc)
    return rendered


def _render_with_api_versions(
    chart: helm.Chart, values: dict[str, Any] | None, api_versions: tuple[str, ...]
) -> dict[str, str]:
    """`Chart.render` with extra API versions. helm-python-sdk 0.2.2's native render takes an `api_versions` option
    (Helm's `--api-versions`) that its Python wrapper does not expose yet, so this passes it to the native call
    with the same options `Chart.render` sends; `test_monitoring_chart` checks that the option takes effect."""
    from helm_python import _native

    options = {"name": RELEASE, "namespace": NAMESPACE, "is_install": True, "api_versions": list(api_versions)}
    text = _native.call_string("helm_render", chart._raw(), json.dumps(values) if values else None, json.dumps(options))
    manifests: dict[str, str] = json.loads(text)
    return manifests


@pytest.fixture(scope="session")
def rendered_sets() -> dict[str, Rendered]:
    """Every value set rendered once per session."""
    return {name: render(load_values(path), name) for name, path in VALUE_SETS.items()}


@pytest.fixture(params=sorted(VALUE_SETS), ids=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest, rendered_sets: dict[str, Rendered]) -> Rendered:
    """One rendered value set (the test runs once per set)."""
    name: str = request.param
    return rendered_sets[name]


@pytest.fixture(scope="session")
def default_render(rendered_sets: dict[str, Rendered]) -> Rendered:
    return rendered_sets["default"]


@pytest.fixture(scope="session")
def render_chart() -> Callable[[dict[str, Any]], Rendered]:
    """Render with ad-hoc values (for negative and targeted cases)."""
    return render


# --- KServe typed models --------------------------------------------------------------------------------------

_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "object": (object,),
    "ResourceQuantity": (str, int, float),
}


def _model_class(name: str) -> Any:
    cls = getattr(kserve.models, name, None) or getattr(k8s_models, name, None)
    if cls is None:
        raise TypeError(f"no KServe or Kubernetes model named {name}")
    return cls


def to_typed_model(data: Any, type_name: str, path: str = "") -> Any:
    """Build KServe's typed model (and the Kubernetes models it nests) from a manifest, strictly.

    The SDK's own deserializer cannot resolve the Kubernetes types it nests (V1ObjectMeta, V1Container, ...), and
    its models check little beyond required fields. This walk resolves both packages and adds what a strict
    schema check would: unknown fields are errors, primitive types are checked (bool is not an int), and every
    model's constructor runs, so a missing required field raises.

    Raises:
        AssertionError: naming the JSON path of the first problem.
    """
    if data is None:
        return None
    if type_name.startswith("list["):
        assert isinstance(data, list), f"{path}: expected a list, got {type(data).__name__}"
        return [to_typed_model(item, type_name[5:-1], f"{path}[{i}]") for i, item in enumerate(data)]
    if type_name.startswith("dict("):
        assert isinstance(data, dict), f"{path}: expected a mapping, got {type(data).__name__}"
        value_type = type_name[5:-1].split(",", 1)[1].strip()
        return {key: to_typed_model(value, value_type, f"{path}.{key}") for key, value in data.items()}
    if type_name in _PRIMITIVES:
        allowed = _PRIMITIVES[type_name]
        assert isinstance(data, allowed), f"{path}: expected {type_name}, got {type(data).__name__} {data!r}"
        assert not (type_name in {"int", "float"} and isinstance(data, bool)), f"{path}: bool where {type_name}"
        return data
    cls = _model_class(type_name)
    assert isinstance(data, dict), f"{path}: expected a {type_name} mapping, got {type(data).__name__}"
    json_to_attr = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    unknown = sorted(set(data) - set(json_to_attr))
    assert not unknown, f"{path}: unknown field(s) {unknown} for {type_name}"
    kwargs = {
        json_to_attr[key]: to_typed_model(value, cls.openapi_types[json_to_attr[key]], f"{path}.{key}")
        for key, value in data.items()
    }
    try:
        return cls(**kwargs)
    except ValueError as exc:  # the generated models' client-side validation (required fields, enums)
        raise AssertionError(f"{path}: {exc}") from exc


@pytest.fixture(scope="session")
def typed_isvc() -> Callable[[Obj], Any]:
    """Turn an InferenceService manifest into `kserve.V1beta1InferenceService` (see `to_typed_model`)."""

    def convert(obj: Obj) -> Any:
        model = to_typed_model(obj, "V1beta1InferenceService", "InferenceService")
        assert isinstance(model, kserve.V1beta1InferenceService)
        return model

    return convert


def pod_specs(obj: Obj) -> Iterator[tuple[str, Obj]]:
    """Every pod spec an object defines, labelled: workloads' templates, bare pods, KServe predictor variants."""
    kind = obj["kind"]
    name = obj["metadata"]["name"]
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        yield f"{kind}/{name}", obj["spec"]["template"]["spec"]
    elif kind == "CronJob":
        yield f"{kind}/{name}", obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    elif kind == "Pod":
        yield f"{kind}/{name}", obj["spec"]
    elif kind == "InferenceService":
        yield f"{kind}/{name}/predictor", obj["spec"]["predictor"]
        for canary in obj["spec"].get("canary", []):
            yield f"{kind}/{name}/canary/{canary['predictor']['name']}", canary["predictor"]


@pytest.fixture(scope="session")
def all_pod_specs() -> Callable[[Obj], list[tuple[str, Obj]]]:
    return lambda obj: list(pod_specs(obj))
