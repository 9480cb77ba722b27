"""The project's own canary code rolling out the chart's canary on a real API server with KServe reconciling it.

Given the chart's canary-controller release (stable version 2, canary version 3) in a restricted namespace and the
registry holding those versions, when `fraudctl canary controller` runs with the command line the chart gives its
Deployment, under a token the API server issued for the controller's ServiceAccount, and the same runtime
(`serving.canary.cluster.ClusterRuntime`, same identity) then applies the state machine's decisions, then each
weight lands in `spec.canary[0].trafficPercent` and KServe's canary status, the promotion makes the stable predictor
the canary's (name, storage URI, version) with the canary gone and KServe serving it from the canary's Deployment,
and the next canary's rollback removes it with the stable predictor unchanged and KServe deleting its Deployment;
an upgrade that would undo the promotion or the rollback is refused by the chart. A `helm upgrade` racing the
controller mid-rollout keeps the controller's split and state (the chart looks them up), and the rollout ends
consistently from its persisted state.

Stand-ins, each said where: no predictor container runs, so the evidence each window carries comes from the
project's traffic simulator (`serving.canary.simulation`) instead of scraping the predictors' /metrics; the
registry is the session's MLflow server, with versions whose sources are the chart values' storage URIs.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import helm_python as helm
import pytest
import yaml
from kubernetes import client, config

from fraud.registry import CHAMPION, connect, set_alias, version_by_alias
from fraud.settings import Settings
from fraud.store import ObjectStore, S3Uri
from serving.canary.cluster import STATE_ANNOTATION, ClusterRuntime, rollout_key
from serving.canary.rollout import Action, ActionKind, Phase, RolloutState, reconcile
from serving.canary.simulation import SCENARIOS, TrafficSimulator

from .conftest import Cluster, create_namespace, service_account_kubeconfig, wait_for
from .helm_release import RELEASE, Obj, ci_values, install, rendered_objects, uninstall, upgrade

ISVC = "fraud-detector"
GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
CONTROLLER = f"{RELEASE}-canary-controller"
NEXT_URI = "s3://mlflow-artifacts/1/models/m-5c1d9e3a7b2f4d6e8a0c2e4f6a8b0d2f/artifacts"
REQUESTS_PER_WINDOW = 20_000
WINDOW_SECONDS = 60.0
STEPS = {"steps": (5, 25, 50, 100)}
"""The controller's spec overrides in every test: the chart's --steps."""


@contextmanager
def controller_release(cluster: Cluster) -> Iterator[tuple[str, Obj]]:
    """The chart's canary-controller value set installed in fresh namespaces; uninstalled and deleted afterwards."""
    namespace = create_namespace(cluster)
    kfp = create_namespace(cluster, f"{namespace}-kfp", restricted=False)
    values = ci_values("canary-controller")
    values["pipelines"] = {"namespace": kfp}
    install(cluster.kubeconfig, namespace, values)
    try:
        yield namespace, values
    finally:
        uninstall(cluster.kubeconfig, namespace)
        cluster.core.delete_namespace(namespace)
        cluster.core.delete_namespace(kfp)


@pytest.fixture(scope="module")
def release(cluster: Cluster) -> Iterator[tuple[str, Obj]]:
    with controller_release(cluster) as installed:
        yield installed


@pytest.fixture
def racing_release(cluster: Cluster) -> Iterator[tuple[str, Obj]]:
    with controller_release(cluster) as installed:
        yield installed


@pytest.fixture
def registry(stack: Settings) -> Settings:
    """A model of its own in the session's registry with versions 1-4 (2 and 3 the chart's stable and canary, 4 the
    next canary), each sourced from its storage URI; champion -> 2, challenger -> 3."""
    settings = stack.model_copy(update={"model_name": f"fraud-detector-cluster-{uuid.uuid4().hex[:6]}"})
    predictor = ci_values("canary-controller")["predictor"]
    sources = [
        "s3://mlflow-artifacts/1/models/m-00000000000000000000000000000001/artifacts",
        predictor["model"]["storageUri"],
        predictor["canary"]["model"]["storageUri"],
        NEXT_URI,
    ]
    mlflow = connect(settings)
    mlflow.create_registered_model(settings.model_name)
    for source in sources:  # each from a run of its own, where the rollout report of that version goes
        run = mlflow.create_run("0", run_name=f"{settings.model_name}-train")
        mlflow.set_terminated(run.info.run_id)
        mlflow.create_model_version(settings.model_name, source, run_id=run.info.run_id)
    set_alias(mlflow, settings.model_name, CHAMPION, "2")
    set_alias(mlflow, settings.model_name, "challenger", "3")
    return settings


def get_isvc(cluster: Cluster, namespace: str) -> Obj:
    obj: Obj = client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, ISVC
    )
    return obj


def env_of(predictor: Obj) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in predictor["containers"][0]["env"]}


def deployments(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return {d.metadata.name: d for d in client.AppsV1Api(cluster.api).list_namespaced_deployment(namespace).items}


def route_backends(cluster: Cluster, namespace: str) -> set[str]:
    """The Services the InferenceService's top-level HTTPRoute sends traffic to (KServe writes it once the predictors
    are ready; kwok reports their pods Ready)."""
    route = client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", ISVC
    )
    return {ref["name"] for rule in route["spec"]["rules"] for ref in rule.get("backendRefs", [])}


def canary_status_is(cluster: Cluster, namespace: str, weight: int) -> bool:
    """KServe's status reports the one canary at this traffic percent."""
    statuses = get_isvc(cluster, namespace).get("status", {}).get("canaryStatuses") or []
    return [int(s.get("trafficPercent", 0)) for s in statuses] == [weight]


def run_chart_controller(values: Obj, namespace: str, kubeconfig: Path, settings: Settings) -> str:
    """`fraudctl canary controller` with the command line of the chart's controller Deployment, once."""
    objects = rendered_objects(values, namespace)
    (deployment,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == CONTROLLER]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    argv = [str(Path(sys.executable).parent / container["command"][0]), *container["command"][1:], *container["args"]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env |= {"KUBECONFIG": str(kubeconfig), "FRAUD_MODEL_NAME": settings.model_name}
    done = subprocess.run([*argv, "--once"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def assert_metrics_reachable_by_name(cluster: Cluster, runtime: ClusterRuntime, isvc: Obj) -> None:
    """Each /metrics URL the runtime scrapes names a Service KServe made, on a port that Service exposes."""
    urls = runtime.metrics_urls(isvc)
    assert set(urls) == ({"champion", "challenger"} if isvc["spec"].get("canary") else {"champion"})
    for url in urls.values():
        parts = urlsplit(url)
        assert parts.hostname is not None
        name, namespace = parts.hostname.split(".")[:2]
        service = wait_for(partial(cluster.core.read_namespaced_service, name, namespace), f"Service {name} of {url}")
        assert parts.port in [port.port for port in service.spec.ports], (url, service.spec.ports)


def drive(
    runtime: ClusterRuntime,
    state: RolloutState,
    scenario: str,
    cluster: Cluster,
    namespace: str,
    *,
    max_actions: int | None = None,
) -> tuple[RolloutState, list[Action]]:
    """Feed the state machine simulated windows and let the runtime apply every action it returns (up to
    ``max_actions``), checking after each weight that the InferenceService and KServe's canary status carry it."""
    simulator = TrafficSimulator(*SCENARIOS[scenario], seed=7)
    now = max(time.time(), state.step_started_at)
    actions: list[Action] = []
    for _ in range(40):
        window = simulator.window(now, WINDOW_SECONDS, REQUESTS_PER_WINDOW, state.weight, shadow=False)
        now += WINDOW_SECONDS
        state, action = reconcile(state, window, now)
        runtime.record_window(state, window)  # as `ClusterRuntime.step` does with the windows it scrapes
        if action.kind is ActionKind.NONE:
            continue
        state = runtime.commit(state, action)
        actions.append(action)
        if action.kind is ActionKind.SET_WEIGHT:
            (entry,) = get_isvc(cluster, namespace)["spec"]["canary"]
            assert entry["trafficPercent"] == action.weight
            wait_for(partial(canary_status_is, cluster, namespace, action.weight), f"KServe at {action.weight} %")
        if state.terminal or len(actions) == max_actions:
            break
    return state, actions


def assert_report_published(runtime: ClusterRuntime, state: RolloutState, settings: Settings, outcome: str) -> None:
    """The ended rollout's report (JSON + HTML) in the object store and the challenger's MLflow run, built from every
    window the runtime kept, and named by the report annotation; published once (a later look changes nothing)."""
    published = runtime.report_locations()
    assert published is not None and published["rollout"] == rollout_key(state), published
    store = ObjectStore.from_settings(settings)
    report_dir = S3Uri.parse(published["object_store"])
    report = json.loads(store.get_bytes(report_dir.child("report.json")))
    kept = list(store.list(runtime.windows_prefix(state)))
    assert kept and len(report["windows"]) == len(kept)
    assert (report["outcome"], report["summary"]["challenger_version"]) == (outcome, state.spec.challenger_version)
    assert report["history"][-1]["to"] == outcome and report["totals"]["challenger"]["requests"] > 0
    assert "<img" in store.get_bytes(report_dir.child("report.html")).decode()
    run_id = connect(settings).get_model_version(settings.model_name, state.spec.challenger_version).run_id
    assert run_id is not None
    assert published["mlflow_run"] == f"runs:/{run_id}/canary-report/"
    logged = {Path(f.path).name for f in connect(settings).list_artifacts(run_id, "canary-report")}
    assert {"report.json", "report.html"} <= logged
    assert runtime.step(STEPS).to_json() == state.to_json()
    assert runtime.report_locations() == published
    assert json.loads(store.get_bytes(report_dir.child("report.json")))["generated_at"] == report["generated_at"]


def test_controller_promotes_then_rolls_back_the_next_canary(
    cluster: Cluster, release: tuple[str, Obj], registry: Settings, tmp_path: Path
) -> None:
    namespace, values = release
    predictor = values["predictor"]
    canary_uri = predictor["canary"]["model"]["storageUri"]
    kubeconfig = service_account_kubeconfig(cluster, namespace, CONTROLLER, tmp_path / "controller.kubeconfig")
    as_controller = client.CustomObjectsApi(config.new_client_from_config(config_file=str(kubeconfig)))

    # 1. The chart's own controller command line starts the rollout at its first step (5 % from --steps).
    wait_for(lambda: f"{ISVC}-challenger-predictor" in deployments(cluster, namespace), "the canary Deployment")
    run_chart_controller(values, namespace, kubeconfig, registry)
    isvc = get_isvc(cluster, namespace)
    state = RolloutState.from_json(isvc["metadata"]["annotations"][STATE_ANNOTATION])
    assert (state.phase, state.weight, state.pending_action) == (Phase.PROGRESSING, 5, None)
    assert (state.spec.champion_version, state.spec.challenger_version) == ("2", "3")
    assert state.spec.steps == (5, 25, 50, 100)
    assert [c["trafficPercent"] for c in isvc["spec"]["canary"]] == [5]
    wait_for(partial(canary_status_is, cluster, namespace, 5), "KServe's canary status at 5 %")

    # 2. The same runtime, same identity, applies the machine's decisions on an A/A challenger: 25, 50, promotion.
    runtime = ClusterRuntime(registry, namespace, ISVC, api=as_controller)
    loaded = runtime.load_state()
    assert loaded is not None
    assert_metrics_reachable_by_name(cluster, runtime, isvc)
    stable_before = copy.deepcopy(isvc["spec"]["predictor"])
    state, actions = drive(runtime, loaded, "same_model", cluster, namespace)
    assert [(a.kind, a.weight) for a in actions] == [
        (ActionKind.SET_WEIGHT, 25),
        (ActionKind.SET_WEIGHT, 50),
        (ActionKind.PROMOTE, 100),
    ]
    assert state.phase is Phase.PROMOTED and state.pending_action is None

    spec = get_isvc(cluster, namespace)["spec"]
    assert "canary" not in spec
    stable = spec["predictor"]
    assert stable["name"] == "challenger"
    assert (env_of(stable)["STORAGE_URI"], env_of(stable)["FRAUD_MODEL_VERSION"]) == (canary_uri, "3")
    autoscaling = ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget")
    assert {k: stable.get(k) for k in autoscaling} == {k: stable_before.get(k) for k in autoscaling}
    # KServe serves the promoted predictor from the canary's Deployment, now the stable one, and deletes the old.
    promoted = f"{ISVC}-challenger-predictor"
    wait_for(lambda: f"{ISVC}-predictor" not in deployments(cluster, namespace), "KServe to delete the old stable")
    source = "internal.serving.kserve.io/storage-initializer-sourceuri"
    wait_for(
        lambda: deployments(cluster, namespace)[promoted].spec.template.metadata.annotations.get(source) == canary_uri,
        "the stable Deployment with the promoted storage URI",
    )
    assert_metrics_reachable_by_name(cluster, runtime, get_isvc(cluster, namespace))
    wait_for(lambda: route_backends(cluster, namespace) == {promoted}, "the route to send everything to the promoted")
    # The registry moved first: champion -> 3, previous -> 2, version 3 tagged promoted.
    mlflow = connect(registry)
    champion = version_by_alias(mlflow, registry.model_name, CHAMPION)
    assert champion is not None and str(champion.version) == "3"
    previous = version_by_alias(mlflow, registry.model_name, "previous")
    assert previous is not None and str(previous.version) == "2"
    assert mlflow.get_model_version(registry.model_name, "3").tags["canary_outcome"] == "promoted"
    # The rollout's report, published once as it ended: in the object store and version 3's MLflow run.
    assert_report_published(runtime, state, registry, "promoted")

    # 3. The next canary (version 4) by `helm upgrade` with the promoted values; the controller begins a new rollout
    #    and rolls it back on a challenger that blocks five times as much.
    next_values = copy.deepcopy(values)
    next_values["predictor"]["variantName"] = "challenger"
    next_values["predictor"]["model"] = {"alias": "champion", "version": "3", "storageUri": canary_uri}
    next_values["predictor"]["canary"] = {
        "enabled": True,
        "name": "candidate",
        "trafficPercent": 0,
        "model": {"alias": "challenger", "version": "4", "storageUri": NEXT_URI},
    }
    upgrade(cluster.kubeconfig, namespace, next_values)
    candidate = f"{ISVC}-candidate-predictor"
    wait_for(lambda: candidate in deployments(cluster, namespace), "KServe to create the next canary's Deployment")
    stable_before = copy.deepcopy(get_isvc(cluster, namespace)["spec"]["predictor"])
    state = runtime.step(STEPS)
    assert (state.phase, state.weight, state.spec.challenger_version) == (Phase.PROGRESSING, 5, "4")
    state, actions = drive(runtime, state, "blocks_5x", cluster, namespace)
    assert [a.kind for a in actions][-1] is ActionKind.ROLLBACK and state.phase is Phase.ROLLED_BACK

    spec = get_isvc(cluster, namespace)["spec"]
    assert "canary" not in spec
    assert spec["predictor"] == stable_before
    wait_for(lambda: candidate not in deployments(cluster, namespace), "KServe to delete the rolled-back canary")
    assert deployments(cluster, namespace)[promoted].spec.template.metadata.annotations[source] == canary_uri
    assert route_backends(cluster, namespace) == {promoted}
    champion = version_by_alias(mlflow, registry.model_name, CHAMPION)
    assert champion is not None and str(champion.version) == "3"
    assert mlflow.get_model_version(registry.model_name, "4").tags["canary_outcome"] == "rolled_back"
    assert_report_published(runtime, state, registry, "rolled_back")
    # An upgrade with the same values would bring the rolled-back version back as a canary no rollout drives:
    # refused at render time, nothing changed.
    with pytest.raises(helm.HelmError) as refused:
        upgrade(cluster.kubeconfig, namespace, next_values)
    assert "the canary controller rolled version 4 back" in str(refused.value)
    assert "predictor.canary.enabled=false" in str(refused.value)
    assert get_isvc(cluster, namespace)["spec"] == spec


def controller_at_first_step(
    cluster: Cluster, namespace: str, registry: Settings, tmp_path: Path
) -> tuple[ClusterRuntime, RolloutState, Path]:
    """The controller's runtime under a token the API server issued for its ServiceAccount, after its first look
    started the release's canary at the first step (5 %); with that ServiceAccount's kubeconfig."""
    kubeconfig = service_account_kubeconfig(cluster, namespace, CONTROLLER, tmp_path / "controller.kubeconfig")
    as_controller = client.CustomObjectsApi(config.new_client_from_config(config_file=str(kubeconfig)))
    wait_for(lambda: f"{ISVC}-challenger-predictor" in deployments(cluster, namespace), "the canary Deployment")
    runtime = ClusterRuntime(registry, namespace, ISVC, api=as_controller)
    started = runtime.step(STEPS)
    assert (started.phase, started.weight) == (Phase.PROGRESSING, 5)
    return runtime, started, kubeconfig


def manifest_isvc(release: dict[str, Any]) -> Obj:
    """The InferenceService as Helm rendered it for a revision (its manifest), not as the API server holds it."""
    (isvc,) = [doc for doc in yaml.safe_load_all(release["manifest"]) if doc and doc["kind"] == "InferenceService"]
    return dict(isvc)


def test_helm_upgrade_mid_rollout_keeps_the_controllers_split(
    cluster: Cluster, racing_release: tuple[str, Obj], registry: Settings, tmp_path: Path
) -> None:
    """A `helm upgrade` of an unrelated value while the controller has the canary at 25 % (the chart's value is 5):
    the chart renders the live weight (its lookup of the controller's state), so the upgrade succeeds without
    touching the split or the state; the rollout then goes on from its persisted state to a promotion that registry
    and InferenceService agree on; and an upgrade still enabling the promoted canary is refused, naming what to set."""
    namespace, values = racing_release
    # The controller's first look (the chart's command line is run in the test above; here its runtime, in process).
    runtime, started, _ = controller_at_first_step(cluster, namespace, registry, tmp_path)
    state, actions = drive(runtime, started, "same_model", cluster, namespace, max_actions=1)
    assert [(a.kind, a.weight) for a in actions] == [(ActionKind.SET_WEIGHT, 25)]
    before = get_isvc(cluster, namespace)

    # The operator bumps MLflow's worker count; the values still enable the canary at the chart's 5 %.
    upgraded = copy.deepcopy(values)
    upgraded["mlflow"] = {"workers": 3}
    assert upgraded["predictor"]["canary"]["trafficPercent"] == 5
    release = upgrade(cluster.kubeconfig, namespace, upgraded)
    assert (release["revision"], release["status"]) == (2, "deployed")
    assert [c["trafficPercent"] for c in manifest_isvc(release)["spec"]["canary"]] == [25]
    after = get_isvc(cluster, namespace)
    assert after["spec"]["canary"] == before["spec"]["canary"]
    assert after["metadata"]["annotations"][STATE_ANNOTATION] == before["metadata"]["annotations"][STATE_ANNOTATION]
    mlflow = client.AppsV1Api(cluster.api).read_namespaced_deployment(f"{RELEASE}-mlflow", namespace)
    args = mlflow.spec.template.spec.containers[0].args
    assert args[args.index("--workers") + 1] == "3", args  # the unrelated change did land
    wait_for(partial(canary_status_is, cluster, namespace, 25), "KServe's canary status still at 25 %")

    # The rollout goes on from the state it persisted: 50 %, then the promotion.
    resumed = runtime.load_state()
    assert resumed is not None and (resumed.phase, resumed.weight) == (Phase.PROGRESSING, 25)
    state, actions = drive(runtime, resumed, "same_model", cluster, namespace)
    assert [(a.kind, a.weight) for a in actions] == [(ActionKind.SET_WEIGHT, 50), (ActionKind.PROMOTE, 100)]
    assert state.phase is Phase.PROMOTED and state.pending_action is None
    spec = get_isvc(cluster, namespace)["spec"]
    assert "canary" not in spec and spec["predictor"]["name"] == "challenger"
    assert env_of(spec["predictor"])["FRAUD_MODEL_VERSION"] == "3"
    champion = version_by_alias(connect(registry), registry.model_name, CHAMPION)
    assert champion is not None and str(champion.version) == "3"

    # The same values again would bring the promoted version back as a canary beside the old stable: refused at
    # render time (no revision is written), the promotion untouched.
    with pytest.raises(helm.HelmError) as refused:
        upgrade(cluster.kubeconfig, namespace, upgraded)
    assert "the canary controller promoted version 3" in str(refused.value)
    assert "predictor.variantName=challenger" in str(refused.value)
    assert get_isvc(cluster, namespace)["spec"] == spec


def test_the_controller_answers_changes_made_behind_it(
    cluster: Cluster, racing_release: tuple[str, Obj], registry: Settings, tmp_path: Path
) -> None:
    """Someone else edits the InferenceService mid-rollout: a split changed by hand is put back to the rollout's
    step (exposure nobody judged); a `helm upgrade` naming another canary version is refused by the chart, saying
    how to end the rollout; a canary version replaced by hand abandons the old rollout (its version tagged
    `superseded`) and starts a new one from the first step; a canary removed by hand ends the rollout as rolled back
    (tagged), the champion untouched."""
    namespace, values = racing_release
    as_admin = client.CustomObjectsApi(cluster.api)
    runtime, started, _ = controller_at_first_step(cluster, namespace, registry, tmp_path)
    assert started.spec.challenger_version == "3"

    # 1. The admin sends 60 % to the canary by hand: the next look restores 5 %, the state unchanged.
    (entry,) = get_isvc(cluster, namespace)["spec"]["canary"]
    as_admin.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, ISVC, {"spec": {"canary": [{**entry, "trafficPercent": 60}]}}
    )
    assert [c["trafficPercent"] for c in get_isvc(cluster, namespace)["spec"]["canary"]] == [60]
    state = runtime.step(STEPS)
    isvc = get_isvc(cluster, namespace)
    assert [c["trafficPercent"] for c in isvc["spec"]["canary"]] == [5]
    assert state.to_json() == started.to_json()
    assert isvc["metadata"]["annotations"][STATE_ANNOTATION] == started.to_json()
    wait_for(partial(canary_status_is, cluster, namespace, 5), "KServe's canary status back at 5 %")

    # 2. A `helm upgrade` naming version 4 as the canary mid-rollout is refused at render time, saying what to do
    #    (server-side apply cannot take spec.canary over from the controller: the release would fail half applied).
    replaced = copy.deepcopy(values)
    replaced["predictor"]["canary"] = {
        "enabled": True,
        "name": "candidate",
        "trafficPercent": 0,
        "model": {"alias": "challenger", "version": "4", "storageUri": NEXT_URI},
    }
    before = get_isvc(cluster, namespace)
    with pytest.raises(helm.HelmError) as refused:
        upgrade(cluster.kubeconfig, namespace, replaced)
    assert "the canary controller is rolling out version 3" in str(refused.value)
    assert "--type merge" in str(refused.value) and "predictor.canary.model.version=3" in str(refused.value)
    assert get_isvc(cluster, namespace)["spec"] == before["spec"]

    # 3. The admin puts version 4 in the canary's place by hand: version 3's rollout is abandoned (tagged
    #    superseded with its checks) and version 4's begins at the first step.
    candidate = copy.deepcopy(entry)
    candidate["predictor"]["name"] = "candidate"
    replacements = {"FRAUD_MODEL_VERSION": "4", "STORAGE_URI": NEXT_URI}
    for item in candidate["predictor"]["containers"][0]["env"]:
        if item["name"] in replacements:
            item["value"] = replacements.pop(item["name"])
    assert not replacements, f"the canary entry lacks {replacements}"
    as_admin.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, ISVC, {"spec": {"canary": [{**candidate, "trafficPercent": 0}]}}
    )
    state = runtime.step(STEPS)
    assert (state.phase, state.weight) == (Phase.PROGRESSING, 5)
    assert (state.spec.champion_version, state.spec.challenger_version) == ("2", "4")
    assert [c["trafficPercent"] for c in get_isvc(cluster, namespace)["spec"]["canary"]] == [5]
    mlflow = connect(registry)
    tags = mlflow.get_model_version(registry.model_name, "3").tags
    assert tags["canary_outcome"] == "superseded" and "version 4 at 5 %" in tags["canary_reason"]

    # 4. The admin deletes the canary: the rollout ends rolled back, version 4 tagged, the champion still 2.
    as_admin.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, ISVC, {"spec": {"canary": None}})
    state = runtime.step(STEPS)
    assert (state.phase, state.pending_action) == (Phase.ROLLED_BACK, None)
    assert "canary" not in get_isvc(cluster, namespace)["spec"]
    assert mlflow.get_model_version(registry.model_name, "4").tags["canary_outcome"] == "rolled_back"
    champion = version_by_alias(mlflow, registry.model_name, CHAMPION)
    assert champion is not None and str(champion.version) == "2"


def fraudctl(kubeconfig: Path, settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`fraudctl` as an operator runs it, under the controller's ServiceAccount token (its Role: get/patch on the
    one InferenceService)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env |= {"KUBECONFIG": str(kubeconfig), "FRAUD_MODEL_NAME": settings.model_name}
    argv = [str(Path(sys.executable).parent / "fraudctl"), *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_status_and_a_manual_rollback_from_the_command_line(
    cluster: Cluster, racing_release: tuple[str, Obj], registry: Settings, tmp_path: Path
) -> None:
    """`fraudctl canary status|rollback|promote --namespace NS --inference-service NAME` on a cluster rollout: the
    status has the local command's keys with the InferenceService's values; the rollback removes the canary, tags
    the version and publishes the report; a promotion after it is refused, naming why, nothing changed."""
    namespace, _ = racing_release
    runtime, started, kubeconfig = controller_at_first_step(cluster, namespace, registry, tmp_path)
    target = ("--namespace", namespace, "--inference-service", ISVC)

    shown = fraudctl(kubeconfig, registry, "canary", "status", "--json", *target)
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    local_keys = {*started.summary(), "endpoint", "controller_pid", "pending_action", "routing"}
    assert set(summary) == local_keys
    assert {k: summary[k] for k in ("phase", "weight", "champion_version", "challenger_version")} == {
        "phase": "progressing",
        "weight": 5,
        "champion_version": "2",
        "challenger_version": "3",
    }
    assert summary["reason"] == started.reason and summary["checks"] == started.summary()["checks"]
    status = get_isvc(cluster, namespace).get("status", {})
    url = status.get("url") or (status.get("address") or {}).get("url")  # set once Ready: no gateway runs here
    assert summary["endpoint"] == (url or f"inferenceservice {namespace}/{ISVC}")
    assert summary["routing"] == {"canary_traffic_percent": 5} and summary["pending_action"] is None
    text = fraudctl(kubeconfig, registry, "canary", "status", *target)
    assert text.returncode == 0 and "progressing at 5 %" in text.stdout, text.stdout + text.stderr

    rolled = fraudctl(kubeconfig, registry, "canary", "rollback", *target)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "rolled_back" in rolled.stdout
    isvc = get_isvc(cluster, namespace)
    assert "canary" not in isvc["spec"] and env_of(isvc["spec"]["predictor"])["FRAUD_MODEL_VERSION"] == "2"
    state = RolloutState.from_json(isvc["metadata"]["annotations"][STATE_ANNOTATION])
    assert (state.phase, state.pending_action) == (Phase.ROLLED_BACK, None)
    mlflow = connect(registry)
    assert mlflow.get_model_version(registry.model_name, "3").tags["canary_outcome"] == "rolled_back"
    champion = version_by_alias(mlflow, registry.model_name, CHAMPION)
    assert champion is not None and str(champion.version) == "2"
    wait_for(lambda: f"{ISVC}-challenger-predictor" not in deployments(cluster, namespace), "the canary deleted")
    published = runtime.report_locations()
    assert published is not None and published["rollout"] == rollout_key(state) and published["object_store"]
    assert runtime.step(STEPS).to_json() == state.to_json()  # the controller agrees

    refused = fraudctl(kubeconfig, registry, "canary", "promote", *target)
    assert refused.returncode != 0 and "version 3 was rolled back" in refused.stderr
    assert get_isvc(cluster, namespace)["spec"] == isvc["spec"]
