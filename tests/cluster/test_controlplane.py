"""The control plane itself: the right version, loopback only, admission and RBAC live, fake nodes schedulable.

Given the session's control plane, when it is asked for its version, its listeners, a non-compliant pod in a
`restricted` namespace and a pod on the fake nodes, then it answers as a real cluster does.
"""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fraud.stack.ports import listening_addresses

from .conftest import FAKE_NODES, Cluster, wait_for
from .controlplane import HOST

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


def restricted_pod(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "main",
                    "image": PAUSE_IMAGE,
                    "securityContext": {
                        "runAsUser": 65535,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def test_version_is_stamped(cluster: Cluster) -> None:
    """/version reports the built release (Helm's kubeVersion checks and kwok read it), not v0.0.0-master."""
    info = client.VersionApi(cluster.api).get_code()
    assert info.git_version == "v1.36.3", info
    assert (info.major, info.minor) == ("1", "36")
    print(
        f"control plane {info.git_version}: started in {cluster.plane.started_in_s:.1f} s, fake nodes Ready in "
        f"{cluster.nodes_ready_in_s:.1f} s, KServe (CRDs, config, manager, webhooks) in "
        f"{cluster.kserve.started_in_s:.1f} s, Prometheus Operator CRDs in {cluster.monitoring_crds_in_s:.1f} s"
    )


def test_servers_listen_on_loopback_only(cluster: Cluster) -> None:
    """Every component binds 127.0.0.1, except KServe's webhook server, which has no bind-address flag."""
    for component in cluster.plane.components:
        addresses = listening_addresses([component.process.pid])
        assert addresses, f"{component.name} listens nowhere"
        if component.name == "kserve-manager":
            others = [(a, p) for a, p in addresses if p != cluster.kserve.webhook_port]
            assert all(address == HOST for address, _ in others), (component.name, addresses)
        else:
            assert all(address == HOST for address, _ in addresses), (component.name, addresses)


def test_pod_security_admission_is_enforced(cluster: Cluster, namespace: str) -> None:
    """A compliant pod is admitted (server-side dry run) and a privileged one is rejected, naming the violations."""
    core = cluster.core
    core.create_namespaced_pod(namespace, restricted_pod("compliant"), dry_run="All")
    bad = restricted_pod("root")
    # Valid for the API server (--allow-privileged=false already refuses `privileged`), but below `restricted`.
    bad["spec"]["containers"][0]["securityContext"] = {"allowPrivilegeEscalation": True, "runAsUser": 0}  # type: ignore[index]
    with pytest.raises(ApiException) as rejected:
        core.create_namespaced_pod(namespace, bad, dry_run="All")
    assert rejected.value.status == 403
    assert "violates PodSecurity" in rejected.value.body and "restricted:latest" in rejected.value.body
    assert "allowPrivilegeEscalation" in rejected.value.body


def test_rbac_denies_an_unbound_user(cluster: Cluster) -> None:
    """Authorization is RBAC, not always-allow: a user bound to nothing is refused."""
    nobody = client.CoreV1Api(cluster.client_as("nobody@example.com"))
    with pytest.raises(ApiException) as denied:
        nobody.list_namespaced_secret("default")
    assert denied.value.status == 403


def test_pods_run_on_fake_nodes(cluster: Cluster, namespace: str) -> None:
    """Controller manager, scheduler and kwok together: a Deployment's pod is scheduled and reported Running."""
    apps = client.AppsV1Api(cluster.api)
    labels = {"app": "probe"}
    template = restricted_pod("probe")
    template["metadata"] = {"labels": labels}
    apps.create_namespaced_deployment(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "probe"},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template},
        },
    )

    def available() -> bool:
        status = apps.read_namespaced_deployment_status("probe", namespace).status
        return bool(status.available_replicas == 1)

    wait_for(available, "the probe Deployment to become available on a fake node")
    pods = cluster.core.list_namespaced_pod(namespace, label_selector="app=probe").items
    assert [pod.spec.node_name in FAKE_NODES for pod in pods] == [True]
    assert pods[0].status.phase == "Running"
