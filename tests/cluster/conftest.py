"""The cluster tier: one real Kubernetes control plane with KServe per test session (see controlplane.py, kserve.py).

Every test under tests/cluster is marked `cluster`. The binaries come from `hack/k8s/build.sh` (`make k8s-build`);
without them the tier is skipped with one line saying how to enable it, except under CI=true, where a missing
build fails the run (CI builds first: `make test` calls the build script before pytest).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from .controlplane import (
    ControlPlane,
    ControlPlaneError,
    build_complete,
    build_root,
    remove_workdir,
    start_control_plane,
)
from .kserve import KServe, apply, install_crds, start_kserve

HERE = Path(__file__).resolve().parent
NOT_BUILT = (
    "cluster tier skipped: the Kubernetes control plane is not built; run `make k8s-build` "
    "(needs Go >= 1.26 and the Go module proxy; ~16 min cold on 2 quiet cores, then cached) to enable tests/cluster"
)
FAKE_NODES = ("kwok-node-0", "kwok-node-1")
MONITORING_CRDS = ("prometheusrules.monitoring.coreos.com", "servicemonitors.monitoring.coreos.com")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


_skipped: list[int] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tier's tests `cluster`; without the build (and not in CI) leave them out, said in one loud line."""
    ours = [item for item in items if HERE in Path(str(item.fspath)).parents]
    for item in ours:
        item.add_marker(pytest.mark.cluster)
    if ours and not _in_ci() and not build_complete():
        config.hook.pytest_deselected(items=ours)
        items[:] = [item for item in items if item not in ours]
        _skipped.append(len(ours))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _skipped:
        terminalreporter.write_line(f"{NOT_BUILT} ({_skipped[0]} tests)", red=True, bold=True)


@dataclass
class Cluster:
    """The running control plane, KServe, and admin clients for it."""

    plane: ControlPlane
    kserve: KServe
    api: client.ApiClient
    dynamic: DynamicClient
    nodes_ready_in_s: float
    monitoring_crds_in_s: float

    @property
    def kubeconfig(self) -> Path:
        return self.plane.admin_kubeconfig

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def apply(self, obj: dict[str, Any]) -> Any:
        return apply(self.dynamic, obj)

    def resource(self, api_version: str, kind: str) -> Any:
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def client_as(self, user: str, groups: tuple[str, ...] = ()) -> client.ApiClient:
        """An API client that impersonates ``user`` (RBAC then judges every call as that user)."""
        impersonating = config.new_client_from_config(config_file=str(self.kubeconfig))
        impersonating.set_default_header("Impersonate-User", user)
        for group in groups:
            impersonating.set_default_header("Impersonate-Group", group)
        return impersonating


def service_account_kubeconfig(cluster: Cluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig holding a token the API server issued for the ServiceAccount (TokenRequest): what a pod of that
    account presents, so a client using it is judged by RBAC as that account, with no admin rights behind it."""
    token = cluster.core.create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": admin["clusters"],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [{"name": account, "context": {"cluster": admin["clusters"][0]["name"], "user": account}}],
                "current-context": account,
            }
        )
    )
    return path


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60.0, interval: float = 0.25) -> Any:
    """Poll until ``predicate`` returns something truthy; fail naming ``what`` and the last error otherwise."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except Exception as exc:
            last = exc
        else:
            if result:
                return result
            last = result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def _create_fake_nodes(core: client.CoreV1Api) -> None:
    for name in FAKE_NODES:
        core.create_node(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"},
                },
                "spec": {"podCIDR": "10.244.0.0/24" if name.endswith("0") else "10.244.1.0/24"},
            }
        )

    def all_ready() -> bool:
        for node in core.list_node().items:
            conditions = {c.type: c.status for c in node.status.conditions or []}
            if conditions.get("Ready") != "True":
                return False
        return len(core.list_node().items) == len(FAKE_NODES)

    wait_for(all_ready, "kwok to mark the fake nodes Ready")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A real API server (etcd, RBAC, admission incl. Pod Security), controller manager, scheduler, kwok fake nodes,
    KServe's manager with its webhooks and the Prometheus Operator's ServiceMonitor and PrometheusRule CRDs, on
    127.0.0.1, for the whole session; always torn down."""
    if not build_complete():
        pytest.fail(f"CI=true and {NOT_BUILT}")  # only reached in CI: elsewhere the items were skipped
    workdir = tmp_path_factory.mktemp("k8s")
    plane = start_control_plane(workdir, build_root())
    try:
        api = config.new_client_from_config(config_file=str(plane.admin_kubeconfig))
        started = time.monotonic()
        _create_fake_nodes(client.CoreV1Api(api))
        nodes_ready_in_s = time.monotonic() - started
        kserve = start_kserve(plane, api)
        dynamic = DynamicClient(api)
        started = time.monotonic()
        # The Prometheus Operator's ServiceMonitor and PrometheusRule (no Operator runs): the chart's monitoring
        # objects are then rendered (Helm sees the API) and validated by their real schemas.
        installed = install_crds(dynamic, [plane.crds / "prometheus-operator"])
        if sorted(installed) != sorted(MONITORING_CRDS):
            raise ControlPlaneError(f"expected the CRDs {MONITORING_CRDS} in {plane.crds}, installed {installed}")
        monitoring_crds_in_s = time.monotonic() - started
        yield Cluster(plane, kserve, api, dynamic, nodes_ready_in_s, monitoring_crds_in_s)
    finally:
        plane.stop()
        remove_workdir(plane)


RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def create_namespace(cluster: Cluster, name: str | None = None, *, restricted: bool = True) -> str:
    """A namespace (by default fresh and enforcing the `restricted` Pod Security level), ready for pods."""
    # Short: KServe builds host names `<isvc>-predictor-<namespace>.<domain>`, and each label has at most 63 bytes.
    name = name or f"t-{uuid.uuid4().hex[:8]}"
    labels = RESTRICTED if restricted else {}
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    # The ServiceAccount admission plugin refuses pods until the controller manager has made `default`.
    wait_for(lambda: cluster.core.read_namespaced_service_account("default", name), f"ServiceAccount {name}/default")
    return name


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace enforcing the `restricted` Pod Security level, deleted after the test."""
    name = create_namespace(cluster)
    yield name
    cluster.core.delete_namespace(name)
