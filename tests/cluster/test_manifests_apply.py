"""The platform install pieces of manifests/ that apply to an API server, applied server-side.

Given the control plane with the KServe and Gateway API CRDs, when manifests/kserve (namespace, the
inferenceservice-config patch over the release's ConfigMap, the storage initializer), manifests/gateway and the KFP
launcher patch are applied with server-side apply, then each is accepted and the result is what the platform needs.
Not applied here: the pieces that are remote release assets (cert-manager, Envoy Gateway, KServe's and KFP's own
YAML), and manifests/gateway/envoyproxy.yaml, whose CRD belongs to Envoy Gateway (not built here).
"""

from __future__ import annotations

import json

from kubernetes import client

from .conftest import Cluster
from .kserve import KSERVE_NAMESPACE, MANIFESTS, apply, load_yaml_documents


def test_kserve_namespace_comes_from_the_manifests(cluster: Cluster) -> None:
    """KServe's release no longer ships its Namespace: manifests/kserve/namespace.yaml creates it."""
    (doc,) = load_yaml_documents(MANIFESTS / "kserve" / "namespace.yaml")
    assert doc["metadata"]["name"] == KSERVE_NAMESPACE
    assert cluster.core.read_namespace(KSERVE_NAMESPACE).status.phase == "Active"


def test_config_patch_switches_kserve_to_standard_mode_with_the_gateway_api(cluster: Cluster) -> None:
    config_map = cluster.core.read_namespaced_config_map("inferenceservice-config", KSERVE_NAMESPACE)
    assert json.loads(config_map.data["deploy"])["defaultDeploymentMode"] == "Standard"
    ingress = json.loads(config_map.data["ingress"])
    assert ingress["enableGatewayApi"] is True
    assert ingress["kserveIngressGateway"] == "kserve/kserve-ingress-gateway"
    # The patch owns exactly its two keys; every other key stays the release's.
    owned = [
        entry.fields_v1
        for entry in config_map.metadata.managed_fields or []
        if entry.manager == "fraud-platform" and entry.operation == "Apply"
    ]
    assert owned and set(owned[0]["f:data"]) == {"f:deploy", "f:ingress"}
    assert "storageInitializer" in config_map.data and "credentials" in config_map.data


def test_storage_initializer_is_registered(cluster: Cluster) -> None:
    (doc,) = load_yaml_documents(MANIFESTS / "kserve" / "storage-initializer.yaml")
    stored = client.CustomObjectsApi(cluster.api).get_cluster_custom_object(
        "serving.kserve.io", "v1alpha1", "clusterstoragecontainers", doc["metadata"]["name"]
    )
    assert stored["spec"]["supportedUriFormats"] == [{"prefix": "s3://"}]
    assert stored["spec"]["container"]["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_gateway_objects_and_kfp_patch_apply(cluster: Cluster) -> None:
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeflow"}})
    applied = []
    for path in (
        MANIFESTS / "gateway" / "gatewayclass.yaml",
        MANIFESTS / "gateway" / "gateway.yaml",
        MANIFESTS / "kubeflow-pipelines" / "kfp-launcher-providers.yaml",
    ):
        for doc in load_yaml_documents(path):
            result = apply(cluster.dynamic, doc, manager="fraud-platform")
            applied.append(f"{result.kind}/{result.metadata.name}")
    assert applied == ["GatewayClass/envoy", "Gateway/kserve-ingress-gateway", "ConfigMap/kfp-launcher"]
    gateway = client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", KSERVE_NAMESPACE, "gateways", "kserve-ingress-gateway"
    )
    assert gateway["spec"]["listeners"][0]["allowedRoutes"]["namespaces"]["from"] == "All"
