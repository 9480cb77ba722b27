"""The chart's Prometheus Operator objects on a real API server with the Operator's CRDs, and without them.

Given the ServiceMonitor and PrometheusRule CRDs generated from the Operator's Go types (hack/k8s/build.sh) and
installed by the session, when the chart is installed with the monitoring value set, then Helm sees the API (the
chart's `.Capabilities.APIVersions` check), the API server accepts both objects under their schemas (the alert
rules' expressions and `for:` durations are schema fields: stored exactly, and a malformed duration is refused),
the ServiceMonitor selects the collector's Service by a port it has, and `helm uninstall` removes both. With the
CRDs deleted, the same install leaves them out and succeeds. No Operator runs: nothing scrapes or evaluates.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .conftest import MONITORING_CRDS, Cluster, create_namespace, wait_for
from .helm_release import RELEASE, Obj, ci_values, install, release_leftovers, uninstall
from .kserve import install_crds

GROUP, VERSION = "monitoring.coreos.com", "v1"
COLLECTOR = f"{RELEASE}-collector"
ALERTS = f"{RELEASE}-alerts"


@pytest.fixture
def namespaces(cluster: Cluster) -> Iterator[tuple[str, str]]:
    """A restricted release namespace and its KFP namespace, deleted afterwards."""
    namespace = create_namespace(cluster)
    kfp = create_namespace(cluster, f"{namespace}-kfp", restricted=False)
    yield namespace, kfp
    cluster.core.delete_namespace(namespace)
    cluster.core.delete_namespace(kfp)


def monitoring_values(kfp: str) -> Obj:
    values = ci_values("monitoring")
    values["pipelines"] = {"namespace": kfp}
    return values


def manifest_objects(release: dict[str, Any]) -> list[Obj]:
    """The objects Helm recorded in the release (what it rendered against this API server's capabilities)."""
    return [doc for doc in yaml.safe_load_all(release["manifest"]) if isinstance(doc, dict)]


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] == kind]


def custom(cluster: Cluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(cluster.api)


def stored(cluster: Cluster, namespace: str, plural: str, name: str) -> Obj:
    obj: Obj = custom(cluster).get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
    return obj


def monitoring_served(cluster: Cluster) -> bool:
    groups = client.ApisApi(cluster.api).get_api_versions().groups
    return any(group.name == GROUP for group in groups)


def test_servicemonitor_and_prometheusrule_are_installed_validated_and_uninstalled(
    cluster: Cluster, namespaces: tuple[str, str]
) -> None:
    namespace, kfp = namespaces
    release = install(cluster.kubeconfig, namespace, monitoring_values(kfp))
    installed = True
    try:
        assert release["status"] == "deployed", release
        objects = manifest_objects(release)
        (monitor,) = of_kind(objects, "ServiceMonitor")
        (rule,) = of_kind(objects, "PrometheusRule")

        # Stored exactly as rendered: every field is in the CRDs' schemas (unknown fields would have been pruned).
        stored_rule = stored(cluster, namespace, "prometheusrules", ALERTS)
        assert stored_rule["spec"] == rule["spec"]
        alerts = {r["alert"]: r for group in stored_rule["spec"]["groups"] for r in group["rules"]}
        assert {"FraudCollectorDown", "FraudModelDrift", "FraudDriftCheckStale"} <= set(alerts)
        assert all(r["expr"] and r["for"] for r in alerts.values())
        assert stored_rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        stored_monitor = stored(cluster, namespace, "servicemonitors", COLLECTOR)
        assert stored_monitor["spec"] == monitor["spec"]

        # The ServiceMonitor selects the collector's Service, on a port that Service names.
        service = cluster.core.read_namespaced_service(COLLECTOR, namespace)
        selector = stored_monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= (service.metadata.labels or {}).items()
        (endpoint,) = stored_monitor["spec"]["endpoints"]
        assert endpoint["port"] in {port.name for port in service.spec.ports}

        # The schemas are live: a rule whose `for:` is not a Prometheus duration, and a scrape interval likewise,
        # are refused by the API server (server-side dry runs).
        bad_rule = copy.deepcopy({k: rule[k] for k in ("apiVersion", "kind", "spec")})
        bad_rule["metadata"] = {"name": "bad-duration"}
        bad_rule["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
        with pytest.raises(ApiException) as refused:
            custom(cluster).create_namespaced_custom_object(
                GROUP, VERSION, namespace, "prometheusrules", bad_rule, dry_run="All"
            )
        assert refused.value.status == 422 and "spec.groups[0].rules[0].for" in refused.value.body
        bad_monitor = copy.deepcopy({k: monitor[k] for k in ("apiVersion", "kind", "spec")})
        bad_monitor["metadata"] = {"name": "bad-interval"}
        bad_monitor["spec"]["endpoints"][0]["interval"] = "every minute"
        with pytest.raises(ApiException) as refused:
            custom(cluster).create_namespaced_custom_object(
                GROUP, VERSION, namespace, "servicemonitors", bad_monitor, dry_run="All"
            )
        assert refused.value.status == 422 and "spec.endpoints[0].interval" in refused.value.body

        uninstall(cluster.kubeconfig, namespace)
        installed = False
        for plural in ("prometheusrules", "servicemonitors"):
            assert custom(cluster).list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"] == []
        wait_for(
            lambda: not release_leftovers(cluster.dynamic, (namespace, kfp)), "the release's objects to go", timeout=60
        )
    finally:
        if installed:
            uninstall(cluster.kubeconfig, namespace)


def delete_monitoring_crds(cluster: Cluster) -> None:
    crds = client.ApiextensionsV1Api(cluster.api)
    for name in MONITORING_CRDS:
        crds.delete_custom_resource_definition(name)

    def gone() -> bool:
        names = {crd.metadata.name for crd in crds.list_custom_resource_definition().items}
        return not names & set(MONITORING_CRDS) and not monitoring_served(cluster)

    wait_for(gone, "the monitoring.coreos.com CRDs and API group to go", timeout=60)


def test_without_the_crds_the_chart_leaves_them_out(cluster: Cluster, namespaces: tuple[str, str]) -> None:
    """The same install on an API server without the Operator's CRDs: no ServiceMonitor or PrometheusRule is
    rendered (Helm's capabilities come from this server's discovery), the rest installs. The CRDs are restored."""
    namespace, kfp = namespaces
    delete_monitoring_crds(cluster)
    try:
        release = install(cluster.kubeconfig, namespace, monitoring_values(kfp))
        try:
            assert release["status"] == "deployed", release
            kinds = {obj["kind"] for obj in manifest_objects(release)}
            assert not kinds & {"ServiceMonitor", "PrometheusRule"}, kinds
            assert {"Deployment", "Service", "CronJob"} <= kinds
            assert COLLECTOR in {s.metadata.name for s in cluster.core.list_namespaced_service(namespace).items}
        finally:
            uninstall(cluster.kubeconfig, namespace)
    finally:
        started = time.monotonic()
        restored = install_crds(cluster.dynamic, [cluster.plane.crds / "prometheus-operator"])
        assert sorted(restored) == sorted(MONITORING_CRDS)
        wait_for(lambda: monitoring_served(cluster), "the monitoring.coreos.com API group again")
        print(f"monitoring CRDs restored in {time.monotonic() - started:.1f} s")
