"""RBAC of the chart's ServiceAccounts on a real API server: each can do what it needs and nothing more.

Given the chart installed with every component that has an identity (predictor, canary controller, monitoring
collector and batch jobs), when the API server is asked what each ServiceAccount may do (its own rule review,
SubjectAccessReviews) and when each one's calls are made under its identity (impersonation), then the canary
controller may get and patch its own InferenceService and nothing else, and the others may do nothing beyond what
every ServiceAccount of the namespace may do.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .conftest import Cluster, create_namespace
from .helm_release import RELEASE, Obj, ci_values, install, rendered_objects, uninstall

ISVC = "fraud-detector"
GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
CONTROLLER = f"{RELEASE}-canary-controller"
PREDICTOR = f"{RELEASE}-predictor"
COLLECTOR = f"{RELEASE}-collector"
MONITOR = f"{RELEASE}-monitor"

Rule = tuple[str, str, str, str]  # (api group, resource, resource name or "", verb)
GRANTED: dict[str, set[Rule]] = {
    CONTROLLER: {(GROUP, PLURAL, ISVC, "get"), (GROUP, PLURAL, ISVC, "patch")},
    PREDICTOR: set(),
    COLLECTOR: set(),
    MONITOR: set(),
}
"""What the chart grants each of its ServiceAccounts, beyond what every account of the namespace has."""


@pytest.fixture(scope="module")
def release(cluster: Cluster) -> Iterator[tuple[str, list[Obj]]]:
    """The chart with the canary controller and the monitoring on, in a restricted namespace: every identity."""
    namespace = create_namespace(cluster)
    kfp = create_namespace(cluster, f"{namespace}-kfp", restricted=False)
    values = ci_values("canary-controller") | ci_values("monitoring")
    values["pipelines"] = {"namespace": kfp}
    install(cluster.kubeconfig, namespace, values)
    try:
        yield namespace, rendered_objects(values, namespace)
    finally:
        uninstall(cluster.kubeconfig, namespace)
        cluster.core.delete_namespace(namespace)
        cluster.core.delete_namespace(kfp)


def account(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def groups(namespace: str) -> tuple[str, ...]:
    return ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")


def rules_of(cluster: Cluster, namespace: str, name: str) -> set[Rule]:
    """Every (group, resource, name, verb) the API server says the ServiceAccount may do in the namespace (its own
    SelfSubjectRulesReview, asked under its identity), wildcards kept as they are."""
    api = client.AuthorizationV1Api(cluster.client_as(account(namespace, name), groups(namespace)))
    review = api.create_self_subject_rules_review({"spec": {"namespace": namespace}})
    assert not review.status.incomplete, review.status.evaluation_error
    found: set[Rule] = set()
    for rule in review.status.resource_rules:
        for group in rule.api_groups or [""]:
            for resource in rule.resources or []:
                for resource_name in rule.resource_names or [""]:
                    found |= {(group, resource, resource_name, verb) for verb in rule.verbs}
    return found


def test_the_chart_creates_these_service_accounts(release: tuple[str, list[Obj]]) -> None:
    _, objects = release
    accounts = {o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"}
    assert accounts == set(GRANTED), "a new ServiceAccount needs its expected rights in GRANTED"


@pytest.mark.parametrize("name", sorted(GRANTED))
def test_each_account_has_exactly_its_grants(cluster: Cluster, release: tuple[str, list[Obj]], name: str) -> None:
    """The account's rules minus those of the namespace's `default` account (bound to nothing by the chart: what
    any authenticated ServiceAccount may do, such as asking its own access reviews) are exactly the chart's grant."""
    namespace, _ = release
    baseline = rules_of(cluster, namespace, "default")
    assert rules_of(cluster, namespace, name) - baseline == GRANTED[name]


Check = tuple[str, str, str, str | None]  # (api group, resource, verb, resource name)

CONTROLLER_DENIED: list[Check] = [
    (GROUP, PLURAL, "get", "another-model"),
    (GROUP, PLURAL, "patch", "another-model"),
    (GROUP, PLURAL, "list", None),
    (GROUP, PLURAL, "watch", None),
    (GROUP, PLURAL, "update", ISVC),
    (GROUP, PLURAL, "delete", ISVC),
    (GROUP, PLURAL, "create", None),
    (GROUP, "inferenceservices/status", "patch", ISVC),
    ("", "secrets", "get", None),
    ("", "secrets", "list", None),
    ("", "configmaps", "create", None),
    ("", "pods", "list", None),
    ("", "pods", "create", None),
    ("apps", "deployments", "patch", f"{ISVC}-predictor"),
    ("autoscaling", "horizontalpodautoscalers", "delete", f"{ISVC}-challenger-predictor"),
    ("gateway.networking.k8s.io", "httproutes", "patch", ISVC),
    ("rbac.authorization.k8s.io", "roles", "patch", CONTROLLER),
]
CONTROLLER_ALLOWED: list[Check] = [(GROUP, PLURAL, "get", ISVC), (GROUP, PLURAL, "patch", ISVC)]
NOTHING: list[Check] = [
    ("", "secrets", "get", None),
    ("", "secrets", "get", f"{RELEASE}-storage"),
    ("", "configmaps", "get", None),
    ("", "pods", "list", None),
    ("", "serviceaccounts", "get", None),
    ("", "persistentvolumeclaims", "get", None),
    ("batch", "jobs", "create", None),
    ("apps", "deployments", "list", None),
    *CONTROLLER_ALLOWED,
]


def can(cluster: Cluster, namespace: str, user: str, check: Check, in_namespace: str | None = None) -> bool:
    group, resource, verb, name = check
    resource, _, subresource = resource.partition("/")
    review = client.AuthorizationV1Api(cluster.api).create_subject_access_review(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": [*groups(namespace), "system:authenticated"],
                "resourceAttributes": {
                    "namespace": in_namespace or namespace,
                    "group": group,
                    "resource": resource,
                    "verb": verb,
                    **({"subresource": subresource} if subresource else {}),
                    **({"name": name} if name else {}),
                },
            },
        }
    )
    return bool(review.status.allowed)


def test_subject_access_reviews(cluster: Cluster, release: tuple[str, list[Obj]]) -> None:
    namespace, _ = release
    controller = account(namespace, CONTROLLER)
    for check in CONTROLLER_ALLOWED:
        assert can(cluster, namespace, controller, check), f"canary controller cannot {check}"
    for check in CONTROLLER_DENIED:
        assert not can(cluster, namespace, controller, check), f"canary controller can {check}"
    # Its Role is namespaced: the same InferenceService name elsewhere is out of reach.
    assert not can(cluster, namespace, controller, CONTROLLER_ALLOWED[0], in_namespace="default")
    for name in (PREDICTOR, COLLECTOR, MONITOR):
        for check in NOTHING:
            assert not can(cluster, namespace, account(namespace, name), check), f"{name} can {check}"


def denied(call: object) -> int:
    """The HTTP status of a call that must fail (it must fail: no status means it succeeded)."""
    assert callable(call)
    with pytest.raises(ApiException) as refused:
        call()
    return int(refused.value.status)


def test_impersonated_calls(cluster: Cluster, release: tuple[str, list[Obj]]) -> None:
    """Calls made as each ServiceAccount: the controller reads and patches its InferenceService (through KServe's
    webhook too) and is refused everything else with 403; the others are refused even that."""
    namespace, _ = release
    as_controller = cluster.client_as(account(namespace, CONTROLLER), groups(namespace))
    isvcs = client.CustomObjectsApi(as_controller)
    current = isvcs.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, ISVC)
    entry = {**current["spec"]["canary"][0], "trafficPercent": 25}  # a merge patch replaces the whole list
    patched = isvcs.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, ISVC, {"spec": {"canary": [entry]}}
    )
    assert [c["trafficPercent"] for c in patched["spec"]["canary"]] == [25]

    core = client.CoreV1Api(as_controller)
    refusals = {
        "list inferenceservices": denied(
            lambda: isvcs.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        ),
        "get another inferenceservice": denied(
            lambda: isvcs.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "another-model")
        ),
        "get it in another namespace": denied(
            lambda: isvcs.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, ISVC)
        ),
        "delete it": denied(lambda: isvcs.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, ISVC)),
        "list secrets": denied(lambda: core.list_namespaced_secret(namespace)),
        "read the storage secret": denied(lambda: core.read_namespaced_secret(f"{RELEASE}-storage", namespace)),
        "create a configmap": denied(
            lambda: core.create_namespaced_config_map(namespace, {"metadata": {"name": "x"}, "data": {}})
        ),
        "list pods": denied(lambda: core.list_namespaced_pod(namespace)),
    }
    for name in (PREDICTOR, COLLECTOR, MONITOR):
        as_other = cluster.client_as(account(namespace, name), groups(namespace))
        other_isvcs, other_core = client.CustomObjectsApi(as_other), client.CoreV1Api(as_other)
        refusals[f"{name}: get the inferenceservice"] = denied(
            lambda api=other_isvcs: api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, ISVC)
        )
        refusals[f"{name}: list pods"] = denied(lambda api=other_core: api.list_namespaced_pod(namespace))
        refusals[f"{name}: read the storage secret"] = denied(
            lambda api=other_core: api.read_namespaced_secret(f"{RELEASE}-storage", namespace)
        )
    assert refusals == dict.fromkeys(refusals, 403)
    # Nothing of the refused delete happened.
    assert client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, ISVC)
