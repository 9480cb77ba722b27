"""KServe's own controller and webhooks on the chart's InferenceService: reconcile, canary, promotion, rollback.

Given the chart installed with a canary in a `restricted` namespace, when KServe's manager reconciles it, then the
stable and canary predictors become Deployments and Services whose pods (mutated by KServe's pod webhook, which
injects the storage initializer) pass Pod Security; the HTTPRoutes appear once the predictors are ready; promotion
(name and storage URI moved together) and rollback (canary removed) are accepted by KServe's webhook and reconciled
as KServe documents; and the designs the webhook forbids are refused with its own messages.

Stand-ins, each set by the test and said where: no gateway controller runs, so the HTTPRoute's parent status
(Accepted) is written by the test; pods never run containers (kwok reports them Running and Ready).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .conftest import Cluster, wait_for
from .helm_release import KFP_NAMESPACE, ci_values, install, rendered_objects, uninstall, upgrade
from .kserve import MANIFESTS, load_yaml_documents

ISVC = "fraud-detector"
GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
NAMESPACE = "kserve-canary"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def canary_release(cluster: Cluster) -> Iterator[str]:
    """The chart with the canary value set, installed once for this module in a restricted namespace."""
    for name, labels in ((KFP_NAMESPACE, {}), (NAMESPACE, RESTRICTED)):
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    wait_for(lambda: cluster.core.read_namespaced_service_account("default", NAMESPACE), "the default ServiceAccount")
    install(cluster.kubeconfig, NAMESPACE, ci_values("canary"))
    try:
        yield NAMESPACE
    finally:
        uninstall(cluster.kubeconfig, NAMESPACE)
        cluster.core.delete_namespace(NAMESPACE)


def isvc(cluster: Cluster) -> Obj:
    obj: Obj = client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, ISVC
    )
    return obj


def conditions(obj: Obj) -> dict[str, str]:
    return {c["type"]: c["status"] for c in obj.get("status", {}).get("conditions", [])}


def deployments(cluster: Cluster) -> set[str]:
    return {d.metadata.name for d in client.AppsV1Api(cluster.api).list_namespaced_deployment(NAMESPACE).items}


def httproute(cluster: Cluster, name: str) -> Obj:
    route: Obj = client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", NAMESPACE, "httproutes", name
    )
    return route


def replace(cluster: Cluster, body: Obj, *, dry_run: bool) -> Obj:
    """Send an InferenceService through KServe's webhooks as an update of the stored one (a server-side dry run
    changes nothing). KServe keeps writing status, so the stored resourceVersion is read right before each try and
    a 409 (it moved in between) is retried."""
    api = client.CustomObjectsApi(cluster.api)
    for _ in range(10):
        stored = isvc(cluster)
        metadata = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
        metadata["resourceVersion"] = stored["metadata"]["resourceVersion"]
        try:
            result: Obj = api.replace_namespaced_custom_object(
                GROUP,
                VERSION,
                NAMESPACE,
                PLURAL,
                ISVC,
                {**body, "metadata": metadata},
                dry_run="All" if dry_run else None,
            )
            return result
        except ApiException as exc:
            if exc.status != 409:
                raise
    raise AssertionError("the InferenceService kept changing under 10 updates in a row")


def dry_run_replace(cluster: Cluster, body: Obj) -> Obj:
    return replace(cluster, body, dry_run=True)


def env_of(predictor: Obj) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in predictor["containers"][0]["env"]}


def set_env(predictor: Obj, name: str, value: str) -> None:
    for entry in predictor["containers"][0]["env"]:
        if entry["name"] == name:
            entry["value"] = value
            return
    predictor["containers"][0]["env"].append({"name": name, "value": value})


def test_kserve_reconciles_stable_and_canary_predictors(cluster: Cluster, canary_release: str) -> None:
    wait_for(
        lambda: {f"{ISVC}-predictor", f"{ISVC}-challenger-predictor"} <= deployments(cluster),
        "KServe to create the stable and canary Deployments",
    )
    services = {s.metadata.name for s in cluster.core.list_namespaced_service(NAMESPACE).items}
    assert {f"{ISVC}-predictor", f"{ISVC}-challenger-predictor"} <= services
    wait_for(lambda: conditions(isvc(cluster)).get("PredictorReady") == "True", "PredictorReady (kwok-Ready pods)")

    # Each variant serves its own version: KServe's pod mutator injected the storage initializer with that variant's
    # storage URI, its S3 keys from the chart's Secret (via the ServiceAccount), and the restricted settings from
    # manifests/kserve/storage-initializer.yaml (the pod exists, so Pod Security admitted it).
    values = ci_values("canary")["predictor"]
    for deployment, uri in (
        (f"{ISVC}-predictor", values["model"]["storageUri"]),
        (f"{ISVC}-challenger-predictor", values["canary"]["model"]["storageUri"]),
    ):
        pods = cluster.core.list_namespaced_pod(NAMESPACE, label_selector=f"app=isvc.{deployment}").items
        assert pods, f"no pod of {deployment}"
        (init,) = [c for c in pods[0].spec.init_containers if c.name == "storage-initializer"]
        assert init.args[0] == uri
        assert init.security_context.allow_privilege_escalation is False
        assert init.security_context.capabilities.drop == ["ALL"]
        env = {e.name: e for e in init.env}
        assert env["AWS_ACCESS_KEY_ID"].value_from.secret_key_ref.name == "fraud-platform-storage"
        assert env["S3_ENDPOINT"].value == "fraud-platform-minio.kserve-canary.svc.cluster.local:9000"


def test_routes_appear_and_the_service_becomes_ready(cluster: Cluster, canary_release: str) -> None:
    wait_for(lambda: httproute(cluster, ISVC), "KServe to create the top-level HTTPRoute")
    route = httproute(cluster, ISVC)
    backends = [ref["name"] for rule in route["spec"]["rules"] for ref in rule.get("backendRefs", [])]
    assert f"{ISVC}-predictor" in backends
    # Stand-in for a gateway controller (none runs here): the test marks each route Accepted by its Gateway.
    for name in (ISVC, f"{ISVC}-predictor"):
        route = httproute(cluster, name)
        parent = route["spec"]["parentRefs"][0]
        status = {
            "parents": [
                {
                    "parentRef": parent,
                    "controllerName": "gateway.envoyproxy.io/gatewayclass-controller",
                    "conditions": [
                        {
                            "type": "Accepted",
                            "status": "True",
                            "reason": "Accepted",
                            "message": "set by the test: no gateway controller runs here",
                            "lastTransitionTime": "2026-01-01T00:00:00Z",
                            "observedGeneration": route["metadata"]["generation"],
                        }
                    ],
                }
            ]
        }
        client.CustomObjectsApi(cluster.api).patch_namespaced_custom_object_status(
            "gateway.networking.k8s.io", "v1", NAMESPACE, "httproutes", name, {"status": status}
        )
    wait_for(lambda: conditions(isvc(cluster)).get("Ready") == "True", "the InferenceService to become Ready")


def test_canary_split_is_in_spec_and_status(cluster: Cluster, canary_release: str) -> None:
    """What KServe v0.20.0 does carry of the split (the route weights cannot be checked, see the xfail below): the
    canary's trafficPercent in the spec and in KServe's canary status, and the canary's own Deployment and Service."""
    weight = ci_values("canary")["predictor"]["canary"]["trafficPercent"]
    assert [c["trafficPercent"] for c in isvc(cluster)["spec"]["canary"]] == [weight]

    def status_weights() -> list[int]:
        return [int(s.get("trafficPercent", -1)) for s in isvc(cluster).get("status", {}).get("canaryStatuses") or []]

    wait_for(lambda: status_weights() == [weight], f"KServe's canaryStatuses at {weight} %")
    canary = f"{ISVC}-challenger-predictor"
    wait_for(lambda: canary in deployments(cluster), "the canary Deployment")
    assert canary in {s.metadata.name for s in cluster.core.list_namespaced_service(NAMESPACE).items}


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="KServe v0.20.0 writes the top-level HTTPRoute without canary weights: applyCanaryWeights "
    "(kserve/kserve#5912) came after v0.20.0, and the Go module proxy refuses every later github.com/kserve/kserve "
    "(v0.21.0, v0.21.1, v0.21.0-rc0/rc1, v0.22.0, @latest, @master and a pseudo-version of commit aaac4e294dae of "
    "2026-08-21 all answer 403 Forbidden: This module version is not available). Checked instead: the canary's "
    "Deployment and Service, status.canaryStatuses and spec.canary[].trafficPercent "
    "(test_canary_split_is_in_spec_and_status, test_canary_rollout). Strict: fails once the tier runs a KServe "
    "that weights the route.",
)
def test_route_weights_equal_the_canary_split(cluster: Cluster, canary_release: str) -> None:
    wait_for(lambda: httproute(cluster, ISVC), "the top-level HTTPRoute")
    refs = [ref for rule in httproute(cluster, ISVC)["spec"]["rules"] for ref in rule.get("backendRefs", [])]
    weights = {ref["name"]: ref.get("weight") for ref in refs}
    assert weights == {f"{ISVC}-predictor": 90, f"{ISVC}-challenger-predictor": 10}


def test_webhook_refuses_what_kserve_forbids(cluster: Cluster, canary_release: str) -> None:
    """The rules the old chart broke, refused by KServe's real webhook with its own messages."""
    current = isvc(cluster)
    # A canary beside a stable predictor without a model (the old chart: the model came from the registry).
    no_model = copy.deepcopy(current)
    no_model["spec"]["predictor"]["containers"][0]["env"] = [
        e for e in no_model["spec"]["predictor"]["containers"][0]["env"] if e["name"] != "STORAGE_URI"
    ]
    with pytest.raises(ApiException) as refused:
        dry_run_replace(cluster, no_model)
    assert "canary requires a stable predictor with a model" in refused.value.body
    # A promotion that renames the stable predictor but keeps its storage URI (the old promotion example).
    rename_only = copy.deepcopy(current)
    rename_only["spec"]["predictor"]["name"] = "challenger"
    del rename_only["spec"]["canary"]
    with pytest.raises(ApiException) as refused:
        dry_run_replace(cluster, rename_only)
    assert "predictor.name change requires a model change" in refused.value.body
    # Autoscaling fields on a canary.
    scaled = copy.deepcopy(current)
    scaled["spec"]["canary"][0]["predictor"]["maxReplicas"] = 3
    with pytest.raises(ApiException) as refused:
        dry_run_replace(cluster, scaled)
    assert "must not set maxReplicas" in refused.value.body


def promote(current: Obj) -> Obj:
    """The promotion the canary controller writes: the stable predictor takes the canary's name together with its
    model (storage URI and version), and the canary entry goes."""
    promoted = copy.deepcopy(current)
    (canary,) = promoted["spec"].pop("canary")
    stable = promoted["spec"]["predictor"]
    stable["name"] = canary["predictor"]["name"]
    canary_env = env_of(canary["predictor"])
    set_env(stable, "STORAGE_URI", canary_env["STORAGE_URI"])
    set_env(stable, "FRAUD_MODEL_VERSION", canary_env["FRAUD_MODEL_VERSION"])
    return promoted


def test_promotion_moves_name_and_storage_uri_together(cluster: Cluster, canary_release: str) -> None:
    wait_for(lambda: f"{ISVC}-challenger-predictor" in deployments(cluster), "the canary Deployment")
    accepted = dry_run_replace(cluster, promote(isvc(cluster)))
    assert accepted["spec"]["predictor"]["name"] == "challenger" and "canary" not in accepted["spec"]

    # For real, as the chart's promoted value set does it (helm upgrade); KServe keeps the canary's Deployment as
    # the stable one and deletes the old stable Deployment. The Service `helm test` and NOTES.txt now address is the
    # one KServe serves.
    promoted = ci_values("promoted")
    del promoted["mlflow"]  # the Ingress is beside the point here
    upgrade(cluster.kubeconfig, NAMESPACE, promoted)
    wait_for(lambda: f"{ISVC}-predictor" not in deployments(cluster), "KServe to delete the old stable Deployment")
    assert f"{ISVC}-challenger-predictor" in deployments(cluster)
    (test_pod,) = [o for o in rendered_objects(promoted, NAMESPACE) if o["kind"] == "Pod"]
    url = test_pod["spec"]["containers"][0]["command"][-1]
    host = url.removeprefix("http://").split(".")[0]
    assert host == f"{ISVC}-challenger-predictor", url
    wait_for(
        lambda: host in {s.metadata.name for s in cluster.core.list_namespaced_service(NAMESPACE).items},
        "the Service helm test addresses after the promotion",
    )

    # Rollback of the next canary: back to the canary values, then the canary removed with the stable unchanged.
    canary_values = ci_values("canary")
    canary_values["predictor"]["variantName"] = ""
    upgrade(cluster.kubeconfig, NAMESPACE, canary_values)
    wait_for(lambda: f"{ISVC}-challenger-predictor" in deployments(cluster), "the canary again")
    rolled_back = ci_values("canary")
    rolled_back["predictor"]["canary"]["enabled"] = False
    upgrade(cluster.kubeconfig, NAMESPACE, rolled_back)
    wait_for(lambda: f"{ISVC}-challenger-predictor" not in deployments(cluster), "KServe to delete the canary")
    stable = isvc(cluster)["spec"]["predictor"]
    assert env_of(stable)["STORAGE_URI"] == rolled_back["predictor"]["model"]["storageUri"]


def test_manifests_examples_pass_the_webhook_in_order(cluster: Cluster, canary_release: str) -> None:
    """manifests/examples applied in a rollout's order, each judged by KServe's webhook against the one before."""
    current = isvc(cluster)
    for name in ("inferenceservice", "canary", "promotion", "canary", "rollback"):
        (example,) = load_yaml_documents(MANIFESTS / "examples" / f"{name}.yaml")
        meta = current["metadata"]
        example["metadata"] = {
            "name": ISVC,
            "namespace": NAMESPACE,
            "labels": meta.get("labels", {}),
            "annotations": {**meta.get("annotations", {}), **example["metadata"]["annotations"]},
        }
        current = replace(cluster, example, dry_run=False)
        assert current["spec"]["predictor"].get("name", "") == example["spec"]["predictor"].get("name", ""), name
