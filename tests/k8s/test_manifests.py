"""The platform install (manifests/), the kind cluster config and the Makefile targets, checked without a cluster.

Remote resources must be pinned to exact releases; the KServe configuration must switch on Standard mode and the
Gateway API without losing the shipped settings; names shared between manifests, chart and pipeline code must
agree; the example InferenceServices must be valid KServe objects whose canary, promotion and rollback follow the
v0.21 rules.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fraud.settings import Settings
from pipelines import platform

from .conftest import ROOT, Obj, Rendered, yaml_load, yaml_load_all

MANIFESTS = ROOT / "manifests"
PINNED = {
    "cert-manager": "v1.17.0",
    "envoy-gateway": "v1.8.1",
    "kserve": "v0.21.0",
    "kubeflow-pipelines": "2.17.1",
    "kubeflow-pipelines/cluster-scoped": "2.17.1",
}
# inferenceservice-config `ingress` keys as KServe v0.21.0 ships them (install/v0.21.0): the patch replaces the JSON
# document whole, so it must carry every one of them.
KSERVE_V021_INGRESS_KEYS = {
    "enableGatewayApi",
    "kserveIngressGateway",
    "ingressGateway",
    "localGateway",
    "localGatewayService",
    "ingressDomain",
    "ingressClassName",
    "domainTemplate",
    "urlScheme",
    "disableIstioVirtualHost",
    "disableIngressCreation",
    "disableHTTPRouteTimeout",
}


def _yaml(path: Path) -> Any:
    return yaml_load(path.read_text())


def _docs(path: Path) -> list[Obj]:
    return [doc for doc in yaml_load_all(path.read_text()) if doc]


@pytest.mark.parametrize(("folder", "version"), sorted(PINNED.items()))
def test_remote_resources_are_pinned_to_exact_releases(folder: str, version: str) -> None:
    kustomization = _yaml(MANIFESTS / folder / "kustomization.yaml")
    remote = [r for r in kustomization["resources"] if "://" in r or r.startswith("github.com/")]
    assert remote, folder
    for resource in remote:
        assert "latest" not in resource and not re.search(r"ref=(master|main)\b", resource), resource
        assert f"/download/{version}/" in resource or resource.endswith(f"?ref={version}"), resource
    readme = (MANIFESTS / "README.md").read_text()
    assert version in readme, f"{folder} {version} missing from manifests/README.md"


def test_local_patches_and_resources_exist() -> None:
    for kustomization in MANIFESTS.rglob("kustomization.yaml"):
        spec = _yaml(kustomization)
        for resource in spec.get("resources", []):
            if "://" not in resource and not resource.startswith("github.com/"):
                assert (kustomization.parent / resource).is_file(), resource
        for patch in spec.get("patches", []):
            assert (kustomization.parent / patch["path"]).is_file(), patch


def test_kserve_runs_in_standard_mode_behind_the_gateway() -> None:
    (config,) = _docs(MANIFESTS / "kserve" / "inferenceservice-config.yaml")
    assert (config["metadata"]["name"], config["metadata"]["namespace"]) == ("inferenceservice-config", "kserve")
    assert json.loads(config["data"]["deploy"]) == {"defaultDeploymentMode": "Standard"}
    ingress = json.loads(config["data"]["ingress"])
    assert set(ingress) == KSERVE_V021_INGRESS_KEYS
    assert ingress["enableGatewayApi"] is True
    (gateway,) = _docs(MANIFESTS / "gateway" / "gateway.yaml")
    assert ingress["kserveIngressGateway"] == f"{gateway['metadata']['namespace']}/{gateway['metadata']['name']}"
    assert gateway["spec"]["listeners"][0]["allowedRoutes"]["namespaces"]["from"] == "All"


def test_gateway_is_reachable_through_the_kind_port_mapping() -> None:
    (gateway_class,) = _docs(MANIFESTS / "gateway" / "gatewayclass.yaml")
    (proxy,) = _docs(MANIFESTS / "gateway" / "envoyproxy.yaml")
    (gateway,) = _docs(MANIFESTS / "gateway" / "gateway.yaml")
    assert gateway["spec"]["gatewayClassName"] == gateway_class["metadata"]["name"]
    ref = gateway_class["spec"]["parametersRef"]
    assert (ref["kind"], ref["name"], ref["namespace"]) == (
        "EnvoyProxy",
        proxy["metadata"]["name"],
        "envoy-gateway-system",
    )
    service = proxy["spec"]["provider"]["kubernetes"]["envoyService"]
    assert service["type"] == "NodePort"
    (port,) = service["patch"]["value"]["spec"]["ports"]
    kind = _yaml(ROOT / "kind-config.yaml")
    mappings = {m["containerPort"]: m for m in kind["nodes"][0]["extraPortMappings"]}
    assert port["nodePort"] in mappings
    assert port["port"] == gateway["spec"]["listeners"][0]["port"]
    assert mappings[port["nodePort"]]["listenAddress"] == "127.0.0.1"


def test_kind_config_wires_the_local_registry() -> None:
    kind = _yaml(ROOT / "kind-config.yaml")
    assert kind["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert 'config_path = "/etc/containerd/certs.d"' in kind["containerdConfigPatches"][0]
    assert re.fullmatch(r"kindest/node:v1\.\d+\.\d+@sha256:[0-9a-f]{64}", kind["nodes"][0]["image"])
    registry = Settings().image.split("/", 1)[0]
    assert registry == "localhost:5001"
    script = (MANIFESTS / "scripts" / "cluster-up.sh").read_text()
    assert "REGISTRY_PORT=${REGISTRY_PORT:-5001}" in script
    assert "certs.d/localhost:${REGISTRY_PORT}" in script
    assert "printf '[host.\"http://%s:5000\"]\\n'" in script


def test_cluster_scripts_are_valid_bash() -> None:
    for path in (MANIFESTS / "scripts").glob("*.sh"):
        subprocess.run(["bash", "-n", str(path)], check=True)
    script = (MANIFESTS / "scripts" / "cluster-up.sh").read_text()
    for folder in ("cert-manager", "envoy-gateway", "kserve", "gateway", "kubeflow-pipelines/cluster-scoped"):
        assert f'"${{MANIFESTS}}/{folder}"' in script, folder


def test_kfp_launcher_finds_the_charts_minio_and_secret(default_render: Rendered) -> None:
    (patch,) = _docs(MANIFESTS / "kubeflow-pipelines" / "kfp-launcher-providers.yaml")
    providers = yaml_load(patch["data"]["providers"])["s3"]["default"]
    secret = default_render.one("Secret", platform.PIPELINE_SECRET_NAME)
    assert patch["metadata"]["namespace"] == secret["metadata"]["namespace"]
    assert "defaultPipelineRoot" not in patch["data"]  # KFP's own default stays for UI-started runs
    config = default_render.one("ConfigMap", platform.PIPELINE_CONFIGMAP_NAME)
    assert "http://" + providers["endpoint"] == config["data"]["MLFLOW_S3_ENDPOINT_URL"]
    assert providers["region"] == config["data"]["AWS_DEFAULT_REGION"]
    assert providers["disableSSL"] is True and providers["forcePathStyle"] is True
    ref = providers["credentials"]["secretRef"]
    assert providers["credentials"]["fromEnv"] is False
    assert ref["secretName"] == platform.PIPELINE_SECRET_NAME
    assert (ref["accessKeyKey"], ref["secretKeyKey"]) == platform.SECRET_KEYS


# --- example InferenceServices: valid objects, and canary / promotion / rollback by the v0.21 rules --------------


def _example(name: str) -> Obj:
    (obj,) = _docs(MANIFESTS / "examples" / f"{name}.yaml")
    return obj


@pytest.mark.parametrize("name", ["inferenceservice", "canary", "promotion", "rollback"])
def test_examples_are_valid_kserve_objects(name: str, typed_isvc: Callable[[Obj], Any]) -> None:
    obj = _example(name)
    model = typed_isvc(obj)
    assert obj["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    (container,) = model.spec.predictor.containers
    assert container.name == "kserve-container"
    env = {e.name: e.value for e in container.env}
    assert env["FRAUD_SERVE_HOST"] == "0.0.0.0"
    assert ("FRAUD_MODEL_ALIAS" in env) != ("FRAUD_MODEL_VERSION" in env)


def test_canary_example_follows_the_v021_rules(typed_isvc: Callable[[Obj], Any]) -> None:
    model = typed_isvc(_example("canary"))
    assert model.spec.canary, "no canary"
    names = [c.predictor.name for c in model.spec.canary]
    assert all(names) and len(set(names)) == len(names)
    assert model.spec.predictor.name not in names
    assert 0 <= sum(c.traffic_percent for c in model.spec.canary) <= 100
    for canary in model.spec.canary:
        assert 0 <= canary.traffic_percent <= 100
        for field in ("min_replicas", "max_replicas", "scale_metric", "scale_target", "auto_scaling"):
            assert getattr(canary.predictor, field) is None, field


def test_promotion_reuses_the_canary_pod_spec(typed_isvc: Callable[[Obj], Any]) -> None:
    canary_obj, promotion_obj = _example("canary"), _example("promotion")
    (canary,) = canary_obj["spec"]["canary"]
    promoted = promotion_obj["spec"]["predictor"]
    assert "canary" not in promotion_obj["spec"]
    assert promoted["name"] == canary["predictor"]["name"]
    # Same containers as the canary: KServe retargets the running Deployment instead of restarting it.
    assert promoted["containers"] == canary["predictor"]["containers"]
    typed_isvc(promotion_obj)


def test_rollback_restores_the_stable_predictor(typed_isvc: Callable[[Obj], Any]) -> None:
    rollback, stable, canary = _example("rollback"), _example("inferenceservice"), _example("canary")
    assert "canary" not in rollback["spec"]
    assert rollback["spec"] == stable["spec"] == {"predictor": canary["spec"]["predictor"]}
    typed_isvc(rollback)


# --- Makefile ------------------------------------------------------------------------------------------------------


def _recipe(makefile: str, target: str) -> str:
    match = re.search(rf"^{re.escape(target)}:.*?\n((?:\t.*\n|\n)*)", makefile, re.MULTILINE)
    assert match, f"no target {target}"
    return match.group(1)


@pytest.mark.parametrize(
    ("target", "tools"),
    [
        ("cluster-up", "docker kind kubectl"),
        ("images", "docker"),
        ("deploy", "kubectl helm"),
        ("pipeline-submit", "kubectl"),
        ("cluster-down", "docker kind"),
    ],
)
def test_cluster_targets_check_their_tools_first_and_say_what_they_do(target: str, tools: str) -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = _recipe(makefile, target)
    first = recipe.strip().splitlines()[0].strip()
    assert first == f"$(call require,{tools},$(NEEDS_CLUSTER))", first
    assert '@echo ">> ' in recipe


def test_require_fails_fast_with_a_clear_message(tmp_path: Path) -> None:
    """Run the real `make cluster-down` with a PATH that has no kind: it stops before touching anything."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sh", "make"):
        found = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True, text=True, check=True)
        (bin_dir / tool).symlink_to(found.stdout.strip())
    completed = subprocess.run(
        ["make", "--no-print-directory", "cluster-down"],
        cwd=ROOT,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode != 0
    assert "'docker' is not on PATH" in completed.stderr
