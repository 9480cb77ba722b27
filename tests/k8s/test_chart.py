"""The Helm chart, rendered by Helm's own engine for every value set and checked object by object.

Given a value set (the defaults and every helm/fraud-platform/ci/*-values.yaml), when the chart is linted and
rendered as `helm install fraud-platform -n fraud`, then every object validates strictly against the Kubernetes
schemas (the InferenceService against KServe's typed models), every pod meets the restricted Pod Security
Standard with requests, limits and probes, labels and names follow the conventions, and no secret value is in the
manifests. Bad values are rejected by values.schema.json before anything renders.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from pipelines import platform

from .conftest import (
    CHART,
    KUBE_VERSIONS,
    NAMESPACE,
    RELEASE,
    VALUE_SETS,
    Obj,
    Rendered,
    load_values,
    pod_specs,
    yaml_dump,
    yaml_load,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/component",
    "helm.sh/chart",
)
CRD_KINDS = {"InferenceService"}
PREDICTOR_PORT = 8080


def _containers(spec: Obj) -> list[Obj]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def _env(container: Obj) -> dict[str, Obj]:
    return {entry["name"]: entry for entry in container.get("env", [])}


# --- lint and render --------------------------------------------------------------------------------------------


def test_value_sets_cover_the_required_configurations() -> None:
    assert len(VALUE_SETS) >= 4
    assert {"default", "postgresql", "existing-secret", "canary", "logger"} <= set(VALUE_SETS)


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint_is_clean(name: str) -> None:
    result = helm.lint(str(CHART), load_values(VALUE_SETS[name]) or None, strict=True, kube_version="v1.33.0")
    assert result["errors"] == []
    # Helm's severities: 1 info, 2 warning, 3 error. The only info it gives is the missing chart icon.
    assert [m for m in result["messages"] if m["severity"] >= 2] == []


def test_every_template_renders_objects_with_kind_and_name(rendered: Rendered) -> None:
    assert rendered.objects
    for obj in rendered.objects:
        assert obj.get("apiVersion") and obj.get("kind") and obj["metadata"].get("name"), obj
    names = [(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]) for obj in rendered.objects]
    assert len(names) == len(set(names)), "duplicate objects"


# --- Kubernetes schemas ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_builtin_object_validates_strictly(rendered: Rendered, kube_version: str) -> None:
    for obj in rendered.objects:
        if obj["kind"] in CRD_KINDS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(obj, kube_version, strict=True)
            continue
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} invalid for {kube_version}: {exc.message}")


def test_inference_service_builds_kserve_typed_models(rendered: Rendered, typed_isvc: Callable[[Obj], Any]) -> None:
    (isvc,) = rendered.of_kind("InferenceService")
    model = typed_isvc(isvc)
    assert model.api_version == "serving.kserve.io/v1beta1"
    assert model.kind == "InferenceService"
    assert model.metadata.name == rendered.values.get("predictor", {}).get("inferenceServiceName", "fraud-detector")
    assert model.metadata.namespace == NAMESPACE
    assert model.spec.predictor.containers, "custom predictor without a container"
    (container,) = model.spec.predictor.containers
    assert container.name == "kserve-container"  # the name KServe treats as the model server
    assert container.image
    for variant in [model.spec.predictor, *[c.predictor for c in model.spec.canary or []]]:
        assert variant.automount_service_account_token is False
        assert variant.service_account_name


def test_typed_model_check_rejects_what_the_sdk_lets_through(typed_isvc: Callable[[Obj], Any]) -> None:
    """The strict walk catches wrong types, unknown fields and missing required fields."""
    good = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "x"},
        "spec": {"predictor": {"containers": [{"name": "kserve-container", "image": "i"}]}},
    }
    typed_isvc(good)
    wrong_type = json.loads(json.dumps(good))
    wrong_type["spec"]["predictor"]["minReplicas"] = "2"
    unknown = json.loads(json.dumps(good))
    unknown["spec"]["predictor"]["canaryTraficPercent"] = 10
    canary_without_predictor = json.loads(json.dumps(good))
    canary_without_predictor["spec"]["canary"] = [{"trafficPercent": 10}]
    container_without_name = json.loads(json.dumps(good))
    del container_without_name["spec"]["predictor"]["containers"][0]["name"]
    for bad, expected in [
        (wrong_type, "expected int"),
        (unknown, "unknown field"),
        (canary_without_predictor, "predictor"),
        (container_without_name, "name"),
    ]:
        with pytest.raises(AssertionError, match=expected):
            typed_isvc(bad)


# --- Pod Security Standard "restricted", resources, probes ------------------------------------------------------


def test_every_pod_meets_the_restricted_profile(rendered: Rendered) -> None:
    specs = [labelled for obj in rendered.objects for labelled in pod_specs(obj)]
    assert len(specs) >= 5  # minio, mlflow, bucket job, test pod, predictor (+ canary)
    for where, spec in specs:
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, where
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True, where
        # Only the canary controller talks to the API server (its Role: get/patch one InferenceService).
        expects_token = spec.get("serviceAccountName", "").endswith("-canary-controller")
        assert spec.get("automountServiceAccountToken") is expects_token, where
        for volume in spec.get("volumes", []):
            assert "hostPath" not in volume, where
        for container in _containers(spec):
            label = f"{where}/{container['name']}"
            sc = container.get("securityContext", {})
            assert sc.get("allowPrivilegeEscalation") is False, label
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], label
            assert not sc.get("capabilities", {}).get("add"), label
            assert sc.get("privileged") is not True, label
            assert sc.get("runAsNonRoot") is True and sc.get("runAsUser", 1) != 0, label
            assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", label
            # Every process here can run read-only: their writable paths are emptyDirs or volumes.
            assert sc.get("readOnlyRootFilesystem") is True, label
            mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{label}: read-only root needs a writable /tmp"


def test_every_container_has_requests_and_limits(rendered: Rendered) -> None:
    for obj in rendered.objects:
        for where, spec in pod_specs(obj):
            for container in _containers(spec):
                resources = container.get("resources", {})
                for kind in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{where}: {kind} {resources}"


def test_long_running_containers_have_liveness_and_readiness_probes(rendered: Rendered) -> None:
    for obj in rendered.objects:
        if obj["kind"] in {"Job", "CronJob", "Pod"}:  # one-shot: bucket job, monitoring jobs, helm test pod
            continue
        if obj["metadata"]["name"].endswith("-canary-controller"):  # a reconcile loop with no port: it exits on error
            continue
        for where, spec in pod_specs(obj):
            for container in spec["containers"]:
                assert "livenessProbe" in container and "readinessProbe" in container, where


# --- labels, names, namespaces -----------------------------------------------------------------------------------


def test_standard_labels_and_immutable_selectors(rendered: Rendered) -> None:
    for obj in rendered.objects:
        labels = obj["metadata"].get("labels", {})
        missing = [key for key in STANDARD_LABELS if key not in labels and not key.endswith("component")]
        assert not missing, f"{obj['kind']}/{obj['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        if obj["kind"] == "Deployment":
            selector = obj["spec"]["selector"]["matchLabels"]
            # selector labels never include the chart version, so upgrades can keep the immutable selector
            assert "helm.sh/chart" not in selector and "app.kubernetes.io/version" not in selector
            assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()
            assert "app.kubernetes.io/component" in selector


def test_names_are_dns_labels_and_objects_are_namespaced(rendered: Rendered) -> None:
    for obj in rendered.objects:
        name = obj["metadata"]["name"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63, name
        assert obj["metadata"].get("namespace") in {NAMESPACE, "kubeflow"}, name


def test_long_release_names_are_truncated_to_63(render_chart: Callable[..., Rendered]) -> None:
    long_name = "x" * 70
    rendered = render_chart({"fullnameOverride": "a" * 40})
    for obj in rendered.objects:
        assert len(obj["metadata"]["name"]) <= 63
    with pytest.raises(helm.HelmValuesError):
        render_chart({"fullnameOverride": long_name})


# --- secrets: generated or referenced, never in the values ------------------------------------------------------


def _secret_values(rendered: Rendered) -> dict[tuple[str, str], str]:
    return {
        (secret["metadata"]["name"], key): base64.b64decode(value).decode()
        for secret in rendered.of_kind("Secret")
        for key, value in secret.get("data", {}).items()
    }


def test_no_credential_is_written_in_values_or_pod_specs(rendered: Rendered) -> None:
    default_values = (CHART / "values.yaml").read_text()
    for (name, key), value in _secret_values(rendered).items():
        assert value not in default_values, f"{name}/{key} comes from values.yaml"
        assert len(value) >= 12, f"{name}/{key} is too short to be generated"
    for obj in rendered.objects:
        if obj["kind"] == "Secret":
            continue
        text = yaml_dump(obj)
        for value in _secret_values(rendered).values():
            assert value not in text, f"a secret value leaks into {obj['kind']}/{obj['metadata']['name']}"
        for _, spec in pod_specs(obj):
            for container in _containers(spec):
                for name, entry in _env(container).items():
                    if any(word in name for word in ("SECRET", "PASSWORD", "ACCESS_KEY", "BACKEND_STORE_URI")):
                        assert "valueFrom" in entry and "secretKeyRef" in entry["valueFrom"], name


def test_generated_keys_are_shared_with_the_pipeline_secret(default_render: Rendered) -> None:
    minio = default_render.one("Secret", f"{RELEASE}-minio")
    pipeline = default_render.one("Secret", platform.PIPELINE_SECRET_NAME)
    assert pipeline["metadata"]["namespace"] == "kubeflow"
    assert set(pipeline["data"]) == set(platform.SECRET_KEYS)
    assert pipeline["data"]["AWS_ACCESS_KEY_ID"] == minio["data"]["root-user"]
    assert pipeline["data"]["AWS_SECRET_ACCESS_KEY"] == minio["data"]["root-password"]


def test_existing_secret_is_referenced_not_created(rendered_sets: dict[str, Rendered]) -> None:
    rendered = rendered_sets["existing-secret"]
    assert [s["metadata"]["name"] for s in rendered.of_kind("Secret")] == [], "no Secret may be rendered"
    minio = rendered.one("Deployment", f"{RELEASE}-minio")
    env = _env(minio["spec"]["template"]["spec"]["containers"][0])
    assert env["MINIO_ROOT_USER"]["valueFrom"]["secretKeyRef"] == {
        "name": "fraud-minio-credentials",
        "key": "accessKey",
    }
    assert env["MINIO_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "fraud-minio-credentials",
        "key": "secretKey",
    }
    mlflow = rendered.one("Deployment", f"{RELEASE}-mlflow")
    env = _env(mlflow["spec"]["template"]["spec"]["containers"][0])
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "fraud-minio-credentials"
    assert "MINIO_ROOT_PASSWORD" not in yaml_dump(rendered.values)


def test_postgresql_uri_comes_from_its_secret(rendered_sets: dict[str, Rendered]) -> None:
    rendered = rendered_sets["postgresql"]
    mlflow = rendered.one("Deployment", f"{RELEASE}-mlflow")
    container = mlflow["spec"]["template"]["spec"]["containers"][0]
    assert _env(container)["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-postgresql",
        "key": "uri",
    }
    assert "--backend-store-uri" not in container["args"]
    assert not [p for p in rendered.of_kind("PersistentVolumeClaim") if p["metadata"]["name"].endswith("mlflow")]
    assert mlflow["spec"]["strategy"]["type"] == "RollingUpdate"
    policy = rendered.one("NetworkPolicy", f"{RELEASE}-mlflow")
    assert {"ports": [{"port": 5432, "protocol": "TCP"}]} in policy["spec"]["egress"]


def test_sqlite_backend_lives_on_a_volume(default_render: Rendered) -> None:
    mlflow = default_render.one("Deployment", f"{RELEASE}-mlflow")
    args = mlflow["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--backend-store-uri") + 1] == "sqlite:////data/mlflow.db"
    assert mlflow["spec"]["strategy"]["type"] == "Recreate"
    default_render.one("PersistentVolumeClaim", f"{RELEASE}-mlflow")


# --- the platform's wiring ---------------------------------------------------------------------------------------


def test_pipeline_names_match_the_pipeline_code(default_render: Rendered) -> None:
    values = yaml_load((CHART / "values.yaml").read_text())
    assert values["pipelines"]["secretName"] == platform.PIPELINE_SECRET_NAME
    assert values["pipelines"]["configMapName"] == platform.PIPELINE_CONFIGMAP_NAME
    config = default_render.one("ConfigMap", platform.PIPELINE_CONFIGMAP_NAME)
    assert config["metadata"]["namespace"] == "kubeflow"
    assert set(config["data"]) == set(platform.CONFIGMAP_KEYS)
    assert config["data"]["MLFLOW_TRACKING_URI"] == f"http://{RELEASE}-mlflow.{NAMESPACE}.svc.cluster.local:5000"
    assert config["data"]["MLFLOW_S3_ENDPOINT_URL"] == f"http://{RELEASE}-minio.{NAMESPACE}.svc.cluster.local:9000"


def test_chart_defaults_agree_with_the_settings() -> None:
    from fraud.settings import Settings

    settings = Settings()
    values = yaml_load((CHART / "values.yaml").read_text())
    assert f"{values['image']['repository']}:{values['image']['tag']}" == settings.image
    assert values["platform"]["modelName"] == settings.model_name
    assert values["platform"]["experimentName"] == settings.experiment_name
    assert values["platform"]["region"] == settings.aws_region
    assert values["predictor"]["model"]["alias"] == settings.model_alias
    buckets = values["platform"]["buckets"]
    assert (buckets["data"], buckets["artifacts"], buckets["pipeline"]) == settings.buckets


def test_mlflow_accepts_the_host_names_its_clients_use(default_render: Rendered) -> None:
    mlflow = default_render.one("Deployment", f"{RELEASE}-mlflow")
    args = mlflow["spec"]["template"]["spec"]["containers"][0]["args"]
    allowed = args[args.index("--allowed-hosts") + 1].split(",")
    assert f"{RELEASE}-mlflow.{NAMESPACE}.svc.cluster.local:5000" in allowed  # pipeline steps, predictor
    assert "localhost:*" in allowed  # kubectl port-forward
    assert "*" not in allowed
    assert args[args.index("--artifacts-destination") + 1] == "s3://mlflow-artifacts/"
    env = _env(mlflow["spec"]["template"]["spec"]["containers"][0])
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]["value"] == "false"


def test_predictor_serves_the_registry_alias_on_all_interfaces(default_render: Rendered) -> None:
    isvc = default_render.one("InferenceService", "fraud-detector")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    predictor = isvc["spec"]["predictor"]
    assert "canary" not in isvc["spec"] and "name" not in predictor and "logger" not in predictor
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 3)
    container = predictor["containers"][0]
    assert container["command"] == ["python", "-m", "serving"]
    assert container["args"] == ["--model_name", "fraud-detector", "--http_port", str(PREDICTOR_PORT)]
    env = {name: entry.get("value") for name, entry in _env(container).items()}
    assert env["FRAUD_SERVE_HOST"] == "0.0.0.0"
    assert env["FRAUD_MODEL_ALIAS"] == "champion" and "FRAUD_MODEL_VERSION" not in env
    assert env["MLFLOW_TRACKING_URI"] == f"http://{RELEASE}-mlflow.{NAMESPACE}.svc.cluster.local:5000"
    assert not any(name.startswith("AWS_") for name in env), "the predictor reads artifacts through MLflow"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"


def test_predictor_service_account_has_no_rights(default_render: Rendered) -> None:
    (account,) = default_render.of_kind("ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    for kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
        assert default_render.of_kind(kind) == []


def test_canary_at_ten_percent(rendered_sets: dict[str, Rendered], typed_isvc: Callable[[Obj], Any]) -> None:
    isvc = rendered_sets["canary"].one("InferenceService", "fraud-detector")
    model = typed_isvc(isvc)
    (canary,) = model.spec.canary
    assert canary.traffic_percent == 10
    assert canary.predictor.name == "challenger"
    assert model.spec.predictor.name is None  # stable keeps the default Deployment name
    # KServe v0.21 rejects autoscaling fields on a canary; its replicas follow its traffic share.
    for field in ("min_replicas", "max_replicas", "scale_metric", "scale_target", "auto_scaling"):
        assert getattr(canary.predictor, field) is None, field
    assert sum(c.traffic_percent for c in model.spec.canary) <= 100
    assert len(f"fraud-detector-{canary.predictor.name}-predictor") <= 63
    stable_env = {e.name: e.value for e in model.spec.predictor.containers[0].env}
    canary_env = {e.name: e.value for e in canary.predictor.containers[0].env}
    assert stable_env["FRAUD_MODEL_VERSION"] == "2" and "FRAUD_MODEL_ALIAS" not in stable_env
    assert canary_env["FRAUD_MODEL_VERSION"] == "3" and "FRAUD_MODEL_ALIAS" not in canary_env
    assert stable_env["STORAGE_URI"] != canary_env["STORAGE_URI"]
    assert canary.predictor.containers[0].image == model.spec.predictor.containers[0].image


def test_promoted_values_keep_the_canary_deployment(rendered_sets: dict[str, Rendered]) -> None:
    isvc = rendered_sets["promoted"].one("InferenceService", "fraud-detector")
    assert "canary" not in isvc["spec"]
    assert isvc["spec"]["predictor"]["name"] == "challenger"
    env = _env(isvc["spec"]["predictor"]["containers"][0])
    assert env["FRAUD_MODEL_VERSION"]["value"] == "3"
    ingress = rendered_sets["promoted"].one("Ingress", f"{RELEASE}-mlflow")
    assert ingress["spec"]["rules"][0]["host"] == "mlflow.fraud.example.com"
    mlflow = rendered_sets["promoted"].one("Deployment", f"{RELEASE}-mlflow")
    args = mlflow["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "mlflow.fraud.example.com" in args[args.index("--allowed-hosts") + 1].split(",")


def test_logger_sends_payloads_to_the_collector(rendered_sets: dict[str, Rendered]) -> None:
    rendered = rendered_sets["logger"]
    isvc = rendered.one("InferenceService", "fraud-detector")
    assert isvc["spec"]["predictor"]["logger"] == {
        "mode": "all",
        "url": "http://fraud-collector.fraud-monitoring.svc.cluster.local:8080/events",
    }
    policy = rendered.one("NetworkPolicy", f"{RELEASE}-predictor")
    assert {"to": [{"namespaceSelector": {}}], "ports": [{"port": 8080, "protocol": "TCP"}]} in policy["spec"]["egress"]
    ingress_ports = {p["port"] for p in policy["spec"]["ingress"][0]["ports"]}
    assert ingress_ports == {PREDICTOR_PORT, 9081}  # KServe's agent fronts the model server when logging


def test_network_policies_deny_by_default_and_open_only_the_platform_flows(default_render: Rendered) -> None:
    policies = {p["metadata"]["name"]: p["spec"] for p in default_render.of_kind("NetworkPolicy")}
    deny = policies[f"{RELEASE}-default-deny"]
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny and "egress" not in deny
    selected = deny["podSelector"]["matchLabels"]
    for obj in default_render.objects:
        for _, spec in pod_specs(obj):
            labels: dict[str, str] = (
                spec["labels"]  # KServe predictor variants carry their pod labels in the spec
                if obj["kind"] == "InferenceService"
                else obj["spec"].get("template", {}).get("metadata", obj["metadata"]).get("labels", {})
            )
            assert selected.items() <= labels.items(), f"{obj['kind']}/{obj['metadata']['name']} escapes default deny"
    minio_from = policies[f"{RELEASE}-minio"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}}} in minio_from
    predictor_from = policies[f"{RELEASE}-predictor"]["ingress"][0]["from"]
    gateway = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}}}
    assert gateway in predictor_from


def test_disabling_network_policies_and_tests(render_chart: Callable[..., Rendered]) -> None:
    rendered = render_chart({"networkPolicy": {"enabled": False}, "tests": {"enabled": False}})
    assert rendered.of_kind("NetworkPolicy") == [] and rendered.of_kind("Pod") == []


def test_helm_test_pod_checks_the_answer_shape(default_render: Rendered) -> None:
    (pod,) = default_render.of_kind("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    script, url = container["command"][2], container["command"][3]
    assert url == f"http://fraud-detector-predictor.{NAMESPACE}.svc.cluster.local/v1/models/fraud-detector:predict"
    for field in ("fraud_probability", "decision", "model_version", '"instances"'):
        assert field in script
    compile(script, "helm-test", "exec")  # the embedded check is valid Python


def test_notes_give_port_forward_commands(rendered: Rendered) -> None:
    assert "kubectl -n fraud port-forward svc/fraud-platform-mlflow" in rendered.notes
    assert "port-forward svc/ml-pipeline-ui" in rendered.notes
    assert "helm test fraud-platform" in rendered.notes


# --- the schema rejects bad values -------------------------------------------------------------------------------

BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    ("canary above 100%", {"predictor": {"canary": {"trafficPercent": 101}}}, "maximum"),
    ("negative canary", {"predictor": {"canary": {"trafficPercent": -1}}}, "minimum"),
    ("canary percent as text", {"predictor": {"canary": {"trafficPercent": "10"}}}, "integer"),
    ("unknown top-level key", {"minioo": {}}, "additional"),
    ("unknown nested key", {"predictor": {"canary": {"percent": 10}}}, "additional"),
    ("unknown backend", {"mlflow": {"backend": {"type": "mysql"}}}, "mlflow/backend/type"),
    ("postgresql without Secret", {"mlflow": {"backend": {"type": "postgresql"}}}, "existingSecret"),
    ("logger without URL", {"predictor": {"logger": {"enabled": True}}}, "url"),
    ("logger URL not http", {"predictor": {"logger": {"enabled": True, "url": "ftp://x"}}}, "url"),
    ("logger mode", {"predictor": {"logger": {"mode": "everything"}}}, "mode"),
    ("existing Secret yet pipeline copy", {"minio": {"auth": {"existingSecret": "mine"}}}, "createSecret"),
    ("version that is not a number", {"predictor": {"model": {"version": "latest"}}}, "version"),
    ("canary name not a DNS label", {"predictor": {"canary": {"name": "Challenger_1"}}}, "name"),
    ("zero replicas", {"predictor": {"minReplicas": 0}}, "minimum"),
    ("limits removed", {"mlflow": {"resources": {"limits": None}}}, "limits"),  # null deletes the default
    ("pull policy", {"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    ("reserved predictor env", {"predictor": {"env": {"FRAUD_SERVE_HOST": "127.0.0.1"}}}, "FRAUD_SERVE_HOST"),
]


@pytest.mark.parametrize(("case", "values", "mentions"), BAD_VALUES, ids=[case for case, _, _ in BAD_VALUES])
def test_schema_rejects_bad_values(
    render_chart: Callable[..., Rendered], case: str, values: dict[str, Any], mentions: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        render_chart(values)
    assert mentions.lower() in str(caught.value).lower(), f"{case}: {caught.value}"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"predictor": {"minReplicas": 4, "maxReplicas": 2}}, "maxReplicas"),
        (
            {
                "predictor": {
                    "variantName": "challenger",
                    "model": {"storageUri": "s3://models/v2"},
                    "canary": {"enabled": True, "model": {"storageUri": "s3://models/v3"}},
                }
            },
            "must differ",
        ),
        (
            {
                "predictor": {
                    "model": {"storageUri": "s3://models/v2"},
                    "canary": {"enabled": True, "model": {"storageUri": "s3://models/v2"}},
                }
            },
            "storageUri must differ",
        ),
    ],
)
def test_template_rejects_inconsistent_values(
    render_chart: Callable[..., Rendered], values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render_chart(values)


def test_every_value_is_documented() -> None:
    """Each leaf of values.yaml has a `# --` comment (helm-docs) and a schema description."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    schema = json.loads((CHART / "values.schema.json").read_text())
    undocumented = []
    stack: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z][A-Za-z0-9]*):(.*)$", line)
        if not match:
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3).strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k in stack] + [key]
        is_leaf = bool(rest) or (number + 1 < len(lines) and not lines[number + 1].startswith(" " * (indent + 2)))
        node = schema
        for part in path:
            node = node["properties"][part]
        if is_leaf or "# --" in lines[number - 1]:
            if "# --" not in "\n".join(lines[max(0, number - 4) : number]):
                undocumented.append(".".join(path))
            assert node.get("description") or node.get("properties") or node.get("const") is False, path
        if not rest:
            stack.append((indent, key))
    assert undocumented == []


def test_a_canary_needs_storage_uris(render_chart: Callable[..., Rendered]) -> None:
    """KServe's webhook admits a canary only beside a stable predictor with a model: the schema asks for both URIs."""
    with pytest.raises(helm.HelmValuesError, match="storageUri"):
        render_chart({"predictor": {"canary": {"enabled": True}}})


def test_each_variant_serves_its_own_storage_uri(rendered_sets: dict[str, Rendered]) -> None:
    rendered = rendered_sets["canary"]
    isvc = rendered.one("InferenceService", "fraud-detector")
    stable_env = {e["name"]: e.get("value") for e in isvc["spec"]["predictor"]["containers"][0]["env"]}
    (canary,) = isvc["spec"]["canary"]
    canary_env = {e["name"]: e.get("value") for e in canary["predictor"]["containers"][0]["env"]}
    values = rendered.values["predictor"]
    assert stable_env["STORAGE_URI"] == values["model"]["storageUri"]
    assert canary_env["STORAGE_URI"] == values["canary"]["model"]["storageUri"] != stable_env["STORAGE_URI"]
    # The storage initializer's keys: a Secret listed on the predictor's ServiceAccount, annotated for KServe.
    (account,) = [sa for sa in rendered.of_kind("ServiceAccount") if sa["metadata"]["name"].endswith("-predictor")]
    (secret_ref,) = account["secrets"]
    secret = rendered.one("Secret", secret_ref["name"])
    assert set(secret["data"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert secret["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"].endswith(".svc.cluster.local:9000")
    # ... and the network path for it: predictor egress to MinIO, MinIO ingress from the predictor.
    policy = rendered.one("NetworkPolicy", "fraud-platform-predictor")
    egress_to = [
        peer["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
        for rule in policy["spec"]["egress"]
        for peer in rule.get("to", [])
    ]
    assert "minio" in egress_to
    minio = rendered.one("NetworkPolicy", "fraud-platform-minio")
    components = minio["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][1]["values"]
    assert "predictor" in components


def test_promoted_release_addresses_the_variant_service(rendered_sets: dict[str, Rendered]) -> None:
    """After a promotion KServe names the Service <isvc>-<variant>-predictor; helm test and NOTES must follow."""
    rendered = rendered_sets["promoted"]
    test_pod = rendered.one("Pod", "fraud-platform-test")
    url = test_pod["spec"]["containers"][0]["command"][-1]
    assert url.startswith("http://fraud-detector-challenger-predictor.fraud.svc.cluster.local/"), url
    assert "svc/fraud-detector-challenger-predictor " in rendered.notes
    assert "svc/fraud-detector-predictor " not in rendered.notes


def test_canary_controller_identity_is_one_role(rendered_sets: dict[str, Rendered]) -> None:
    rendered = rendered_sets["canary-controller"]
    assert not rendered.of_kind("ClusterRole") and not rendered.of_kind("ClusterRoleBinding")
    role = rendered.one("Role", "fraud-platform-canary-controller")
    assert role["rules"] == [
        {
            "apiGroups": ["serving.kserve.io"],
            "resources": ["inferenceservices"],
            "resourceNames": ["fraud-detector"],
            "verbs": ["get", "patch"],
        }
    ]
    deployment = rendered.one("Deployment", "fraud-platform-canary-controller")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] + container["args"][:4] == [
        "fraudctl",
        "canary",
        "controller",
        "--namespace",
        "fraud",
        "--inference-service",
        "fraud-detector",
    ]
