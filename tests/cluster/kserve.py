"""KServe's manager out of cluster, against the test control plane: CRDs, its ConfigMap, webhooks, the process.

The CRDs are the ones `hack/k8s/build.sh` generates with controller-gen from KServe's and the Gateway API's Go
types (the same generator KServe's release uses). The manager is KServe's own `cmd/manager`, built from the Go
module, with its admission webhooks registered on the API server by URL (https://127.0.0.1:<port>/...) under a
certificate of the test CA, so every InferenceService the tests write goes through KServe's real defaulting and
validation, and every predictor pod through its real pod mutator (storage initializer injection).

Stand-ins, each named: the manager runs with the admin kubeconfig rather than its ClusterRole; its
`inferenceservice-config` base is written here (KServe ships it as YAML, which the module proxy does not serve),
with the manifests/ patch applied on top exactly as `make cluster-up` applies it.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from fraud.stack.ports import pick_free_ports

from .controlplane import HOST, Component, ControlPlane, ControlPlaneError, start_process, wait_https_ok

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
KSERVE_NAMESPACE = "kserve"
FIELD_MANAGER = "fraud-platform-tests"
KSERVE_IMAGE_TAG = "v0.20.0"

Obj = dict[str, Any]


def _json(value: Obj) -> str:
    return json.dumps(value, indent=2)


def base_inferenceservice_config() -> dict[str, str]:
    """The controller's ConfigMap keys as a KServe release ships them (Serverless default, Gateway API off).

    Every key the manager, the reconciler and the pod mutator read, with the shipped defaults; the platform's patch
    (manifests/kserve/inferenceservice-config.yaml) is applied over it afterwards, as on a real cluster.
    """
    image = "kserve/{}:" + KSERVE_IMAGE_TAG
    small = {"memoryRequest": "100Mi", "memoryLimit": "1Gi", "cpuRequest": "100m", "cpuLimit": "1"}
    return {
        "explainers": _json({"art": {"image": "kserve/art-explainer", "defaultImageVersion": "latest"}}),
        "storageInitializer": _json(
            {
                "image": image.format("storage-initializer"),
                **small,
                "caBundleConfigMapName": "",
                "caBundleVolumeMountPath": "/etc/ssl/custom-certs",
                "enableModelcar": False,
                "cpuModelcar": "10m",
                "memoryModelcar": "15Mi",
            }
        ),
        "credentials": _json(
            {
                "storageSpecSecretName": "storage-config",
                "storageSecretNameAnnotation": "serving.kserve.io/storageSecretName",
                "gcs": {"gcsCredentialFileName": "gcloud-application-credentials.json"},
                "s3": {"s3AccessKeyIDName": "AWS_ACCESS_KEY_ID", "s3SecretAccessKeyName": "AWS_SECRET_ACCESS_KEY"},
            }
        ),
        "ingress": _json(
            {
                "enableGatewayApi": False,
                "kserveIngressGateway": "kserve/kserve-ingress-gateway",
                "ingressGateway": "knative-serving/knative-ingress-gateway",
                "localGateway": "knative-serving/knative-local-gateway",
                "localGatewayService": "knative-local-gateway.istio-system.svc.cluster.local",
                "ingressDomain": "example.com",
                "ingressClassName": "istio",
                "domainTemplate": "{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}",
                "urlScheme": "http",
                "disableIstioVirtualHost": False,
                "disableIngressCreation": False,
            }
        ),
        "logger": _json({"image": image.format("agent"), **small, "defaultUrl": "http://default-broker"}),
        "batcher": _json({"image": image.format("agent"), **small, "maxBatchSize": "32", "maxLatency": "5000"}),
        "agent": _json({"image": image.format("agent"), **small}),
        "router": _json({"image": image.format("router"), **small, "imagePullPolicy": "IfNotPresent"}),
        "deploy": _json({"defaultDeploymentMode": "Serverless"}),
        "metricsAggregator": _json({"enableMetricAggregation": "false", "enablePrometheusScraping": "false"}),
        "localModel": _json(
            {
                "enabled": False,
                "jobNamespace": "kserve-localmodel-jobs",
                "defaultJobImage": image.format("storage-initializer"),
                "fsGroup": 1000,
                "jobTTLSecondsAfterFinished": 3600,
                "reconcilationFrequencyInSecs": 60,
                "disableVolumeManagement": False,
            }
        ),
        "security": _json({"autoMountServiceAccountToken": True}),
        "inferenceService": _json(
            {"resource": {"cpuLimit": "1", "memoryLimit": "2Gi", "cpuRequest": "1", "memoryRequest": "2Gi"}}
        ),
        "opentelemetryCollector": _json(
            {
                "scrapeInterval": "5s",
                "metricReceiverEndpoint": "keda-otel-scaler.keda.svc:4317",
                "metricScalerEndpoint": "keda-otel-scaler.keda.svc:4318",
            }
        ),
        "autoscaler": _json({"scaleUpStabilizationWindowSeconds": "0", "scaleDownStabilizationWindowSeconds": "300"}),
    }


def load_yaml_documents(path: Path) -> list[Obj]:
    # libyaml's loader: the pure-Python one took ~10 CPU-s for KServe's three big CRDs alone.
    docs = [doc for doc in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader) if doc]
    assert all(isinstance(doc, dict) for doc in docs), path
    return docs


def apply(dynamic: DynamicClient, obj: Obj, *, manager: str = FIELD_MANAGER, force: bool = True) -> Any:
    """Server-side apply one object (creates or merges; field ownership as `kubectl apply --server-side`)."""
    resource = dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    metadata = obj["metadata"]
    return resource.server_side_apply(
        body=obj,
        name=metadata["name"],
        namespace=metadata.get("namespace") if resource.namespaced else None,
        field_manager=manager,
        force_conflicts=force,
    )


GATEWAY_API_STANDARD = {"gatewayclasses", "gateways", "httproutes", "grpcroutes", "referencegrants"}
"""The Gateway API's standard-channel kinds (what Envoy Gateway installs); the experimental ones are left out."""
KSERVE_CRDS = {
    "inferenceservices",
    "servingruntimes",
    "clusterservingruntimes",
    "trainedmodels",
    "inferencegraphs",
    "clusterstoragecontainers",
}
"""What the v1beta1 manager watches or reads; the LLM and local-model CRDs belong to other KServe controllers."""
PROMETHEUS_OPERATOR_CRDS = {"servicemonitors", "prometheusrules"}
"""The Prometheus Operator's kinds the chart writes (monitoring.enabled); its other CRDs are not installed."""
INSTALLED = {
    "gateway.networking.k8s.io": GATEWAY_API_STANDARD,
    "serving.kserve.io": KSERVE_CRDS,
    "monitoring.coreos.com": PROMETHEUS_OPERATOR_CRDS,
}
"""The CRDs the tier installs, by API group (kinds by plural)."""
GATEWAY_API_APPROVAL = "https://github.com/kubernetes-sigs/gateway-api/pull/1538"
"""*.k8s.io groups need an API-review annotation; the Gateway API's release YAML carries it (its generator adds it
outside the Go types, so controller-gen's output lacks it)."""


def _may_be_installed(path: Path) -> bool:
    """controller-gen names each file `<group>_<plural>.yaml`: files of kinds the tier leaves out (KServe's LLM
    CRDs are 4 MB of YAML) are not even parsed. Any other name is parsed and judged by its content."""
    group, _, plural = path.stem.partition("_")
    return group not in INSTALLED or not plural or plural in INSTALLED[group]


def install_crds(dynamic: DynamicClient, directories: list[Path], timeout: float = 60.0) -> list[str]:
    """Create the CRDs under the directories that the tier installs (`INSTALLED`) and wait until each is
    Established; returns their names."""
    names: list[str] = []
    # The typed client with raw replies: the dynamic client turns each 2 MB reply into nested Python objects, which
    # cost more CPU than the API server's own work when polled.
    crds = client.ApiextensionsV1Api(dynamic.client)
    for directory in directories:
        for path in sorted(directory.glob("*.yaml")):
            if not _may_be_installed(path):
                continue
            for doc in load_yaml_documents(path):
                if doc["spec"]["names"]["plural"] not in INSTALLED.get(doc["spec"]["group"], set()):
                    continue
                if doc["spec"]["group"] == "gateway.networking.k8s.io":
                    annotations = doc["metadata"].setdefault("annotations", {})
                    annotations["api-approved.kubernetes.io"] = GATEWAY_API_APPROVAL
                # Created, not server-side applied: field tracking of a 2 MB object costs minutes on 2 busy cores.
                crds.create_custom_resource_definition(body=doc, _preload_content=False).read()
                names.append(doc["metadata"]["name"])
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            reply = crds.read_custom_resource_definition_status(name, _preload_content=False)
            status = json.loads(reply.data).get("status") or {}
            if any(c["type"] == "Established" and c["status"] == "True" for c in status.get("conditions") or []):
                pending.discard(name)
        if pending:
            time.sleep(0.2)
    if pending:
        raise ControlPlaneError(f"CRDs not Established after {timeout:.0f} s: {sorted(pending)}")
    return names


def _webhook(name: str, url: str, ca_bundle: str, rules: list[Obj], **extra: Any) -> Obj:
    return {
        "name": name,
        "clientConfig": {"url": url, "caBundle": ca_bundle},
        "admissionReviewVersions": ["v1", "v1beta1"],
        "sideEffects": "None",
        "failurePolicy": "Fail",
        "timeoutSeconds": 10,
        "rules": rules,
        **extra,
    }


def _rule(group: str, version: str, resource: str, operations: tuple[str, ...] = ("CREATE", "UPDATE")) -> Obj:
    return {"apiGroups": [group], "apiVersions": [version], "operations": list(operations), "resources": [resource]}


def webhook_configurations(base_url: str, ca_bundle: str) -> list[Obj]:
    """KServe's webhook registrations (names, paths, rules and selectors as its release has them), by URL."""
    isvc = _rule("serving.kserve.io", "v1beta1", "inferenceservices")
    mutating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "inferenceservice.serving.kserve.io"},
        "webhooks": [
            _webhook(
                "inferenceservice.kserve-webhook-server.defaulter",
                f"{base_url}/mutate-serving-kserve-io-v1beta1-inferenceservice",
                ca_bundle,
                [isvc],
            ),
            _webhook(
                "inferenceservice.kserve-webhook-server.pod-mutator",
                f"{base_url}/mutate-pods",
                ca_bundle,
                [_rule("", "v1", "pods", ("CREATE",))],
                reinvocationPolicy="IfNeeded",
                namespaceSelector={"matchExpressions": [{"key": "control-plane", "operator": "DoesNotExist"}]},
                objectSelector={
                    "matchExpressions": [{"key": "serving.kserve.io/inferenceservice", "operator": "Exists"}]
                },
            ),
        ],
    }
    validating = [
        ("inferenceservice", "v1beta1", "inferenceservices", "validate-serving-kserve-io-v1beta1-inferenceservice"),
        ("trainedmodel", "v1alpha1", "trainedmodels", "validate-serving-kserve-io-v1alpha1-trainedmodel"),
        ("inferencegraph", "v1alpha1", "inferencegraphs", "validate-serving-kserve-io-v1alpha1-inferencegraph"),
        ("servingruntime", "v1alpha1", "servingruntimes", "validate-serving-kserve-io-v1alpha1-servingruntime"),
        (
            "clusterservingruntime",
            "v1alpha1",
            "clusterservingruntimes",
            "validate-serving-kserve-io-v1alpha1-clusterservingruntime",
        ),
    ]
    configs: list[Obj] = [mutating]
    for short, version, resource, path in validating:
        configs.append(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": f"{short}.serving.kserve.io"},
                "webhooks": [
                    _webhook(
                        f"{short}.kserve-webhook-server.validator",
                        f"{base_url}/{path}",
                        ca_bundle,
                        [_rule("serving.kserve.io", version, resource)],
                    )
                ],
            }
        )
    return configs


@dataclass
class KServe:
    manager: Component
    webhook_port: int
    probe_port: int
    started_in_s: float


def _wait_tls(component: Component, port: int, timeout: float = 60.0) -> None:
    """Wait until the webhook server completes a TLS handshake (it starts after the manager's caches)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if component.process.poll() is not None:
            raise ControlPlaneError(f"kserve-manager exited with {component.process.returncode}:\n{component.tail()}")
        try:
            with socket.create_connection((HOST, port), timeout=2) as raw, context.wrap_socket(raw):
                return
        except OSError:
            time.sleep(0.25)
    raise ControlPlaneError(
        f"kserve-manager webhook port {port} not serving TLS in {timeout:.0f} s:\n{component.tail()}"
    )


def start_kserve(plane: ControlPlane, api: client.ApiClient) -> KServe:
    """Install CRDs, the kserve namespace and ConfigMap (with the manifests/ patch), start the manager, register
    its webhooks; returns once the webhook server answers TLS and /readyz is 200."""
    started = time.monotonic()
    dynamic = DynamicClient(api)
    install_crds(dynamic, [plane.crds / "gateway-api", plane.crds / "kserve"])
    # The namespace comes from manifests/kserve/namespace.yaml, as on a real cluster (KServe's release lacks it).
    for doc in load_yaml_documents(MANIFESTS / "kserve" / "namespace.yaml"):
        apply(dynamic, doc, manager="fraud-platform")
    apply(
        dynamic,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "inferenceservice-config", "namespace": KSERVE_NAMESPACE},
            "data": base_inferenceservice_config(),
        },
        manager="kserve-release",
    )
    for doc in load_yaml_documents(MANIFESTS / "kserve" / "inferenceservice-config.yaml"):
        apply(dynamic, doc, manager="fraud-platform")
    for doc in load_yaml_documents(MANIFESTS / "kserve" / "storage-initializer.yaml"):
        apply(dynamic, doc, manager="fraud-platform")

    certs = plane.workdir / "kserve-tmp" / "k8s-webhook-server" / "serving-certs"
    certs.mkdir(parents=True, exist_ok=True)
    serving = plane.pki.issue("kserve-webhook", "kserve-webhook-server", server_ips=[HOST])
    (certs / "tls.crt").write_bytes(serving.cert.read_bytes())
    (certs / "tls.key").write_bytes(serving.key.read_bytes())
    webhook_port, metrics_port, probe_port = pick_free_ports(3, HOST)
    manager = start_process(
        "kserve-manager",
        [
            str(plane.bin / "kserve-manager"),
            f"--metrics-addr={HOST}:{metrics_port}",
            f"--health-probe-addr={HOST}:{probe_port}",
            f"--webhook-port={webhook_port}",
            "--leader-elect=false",
        ],
        plane.workdir,
        env={
            "KUBECONFIG": str(plane.admin_kubeconfig),
            "POD_NAMESPACE": KSERVE_NAMESPACE,
            "TMPDIR": str(plane.workdir / "kserve-tmp"),
        },
    )
    plane.components.append(manager)
    _wait_tls(manager, webhook_port)
    wait_https_ok(manager, f"http://{HOST}:{probe_port}/readyz", ca=None, client=None)
    ca_bundle = base64.b64encode(plane.pki.ca_pem).decode()
    for config in webhook_configurations(f"https://{HOST}:{webhook_port}", ca_bundle):
        apply(dynamic, config)
    return KServe(manager, webhook_port, probe_port, time.monotonic() - started)
