"""Install, upgrade and uninstall the chart on the test API server with Helm's own engine (helm-python-sdk).

Also the facts the tests read back from a release: every object it made and every pod template it holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

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
