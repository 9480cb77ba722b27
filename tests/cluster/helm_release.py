"""Install, upgrade and uninstall the chart on the test API server with Helm's own engine (helm-python-sdk).

Also the facts the tests read back from a release: every object it made and every pod template it holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.resource import ResourceList

Release = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "fraud-platform"
CI_VALUES = CHART / "ci"
RELEASE = "fraud-platform"
KFP_NAMESPACE = "kubeflow"
HELM_TIMEOUT_S = 180

Obj = dict[str, Any]


def ci_values(name: str) -> Obj:
    """One of the chart's ci/<name>-values.yaml value sets."""
    loaded = yaml.safe_load((CI_VALUES / f"{name}-values.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def helm_config(kubeconfig: Path, namespace: str) -> helm.Config:
    return helm.Config(kubeconfig_path=kubeconfig, namespace=namespace)


def install(kubeconfig: Path, namespace: str, values: Obj | None, release: str = RELEASE) -> Release:
    """`helm install` (hooks included: it waits for the bucket Job to complete, which kwok reports)."""
    with helm_config(kubeconfig, namespace) as cfg:
        return cfg.install(str(CHART), release, values or None, namespace=namespace, timeout=HELM_TIMEOUT_S)


def upgrade(kubeconfig: Path, namespace: str, values: Obj | None, release: str = RELEASE) -> Release:
    with helm_config(kubeconfig, namespace) as cfg:
        return cfg.upgrade(
            str(CHART), release, values or None, namespace=namespace, timeout=HELM_TIMEOUT_S, reset_values=True
        )


def uninstall(kubeconfig: Path, namespace: str, release: str = RELEASE) -> Release:
    with helm_config(kubeconfig, namespace) as cfg:
        return cfg.uninstall(release, timeout=HELM_TIMEOUT_S)


def rendered_objects(values: Obj | None, namespace: str, release: str = RELEASE) -> list[Obj]:
    """Every object the chart renders for these values, hooks and the `helm test` pod included (Helm's release
    summary lists only the non-hook manifest)."""
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(values or None, name=release, namespace=namespace, is_install=True)
    objects: list[Obj] = []
    for path, text in sorted(manifests.items()):
        if path.endswith(".yaml"):
            objects += [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]
    return objects


def pod_templates(objects: list[Obj]) -> Iterator[tuple[str, Obj]]:
    """(label, pod manifest) for every pod a workload object of the chart would create."""
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            template = obj["spec"]["template"]
        elif kind == "CronJob":
            template = obj["spec"]["jobTemplate"]["spec"]["template"]
        elif kind == "Pod":
            template = {"metadata": obj["metadata"], "spec": obj["spec"]}
        else:
            continue
        metadata = {"name": f"dry-run-{name}"[:63], "labels": dict(template.get("metadata", {}).get("labels", {}))}
        yield f"{kind}/{name}", {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


def carries_release(obj: Obj, release: str = RELEASE) -> bool:
    """Whether an object is marked as the release's: Helm's ownership annotation, the chart's instance label (which
    KServe copies from the InferenceService onto what it creates), or Helm's own release record (a Secret)."""
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    return (
        annotations.get("meta.helm.sh/release-name") == release
        or labels.get("app.kubernetes.io/instance") == release
        or (labels.get("owner") == "helm" and labels.get("name") == release)
    )


def release_leftovers(dynamic: DynamicClient, namespaces: tuple[str, ...], release: str = RELEASE) -> list[Obj]:
    """Every object in the namespaces that carries the release's marks, over every listable namespaced kind the API
    server's discovery reports (CRDs included), each as ``{"ref": "<ns>/<group>/<Kind>/<name>", "object": ...}``."""
    found: dict[str, Obj] = {}
    for resource in dynamic.resources.search():
        if isinstance(resource, ResourceList) or not resource.namespaced or "/" in resource.name:
            continue
        if "list" not in (resource.verbs or []):
            continue
        for namespace in namespaces:
            try:
                items = resource.get(namespace=namespace).to_dict()["items"]
            except ApiException as exc:
                if exc.status in (404, 405):  # a kind served by an aggregated API that is not running here
                    continue
                raise
            for item in items:
                if carries_release(item, release):
                    ref = f"{namespace}/{resource.group}/{resource.kind}/{item['metadata']['name']}"
                    found[ref] = {"ref": ref, "object": item}  # one entry per object, whatever versions serve it
    return [found[ref] for ref in sorted(found)]
