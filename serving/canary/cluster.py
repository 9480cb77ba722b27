"""The cluster canary runtime: the same rollout state machine driving a KServe InferenceService (Standard mode).

The InferenceService has a stable predictor (the champion) and one ``spec.canary`` entry (the challenger), each
serving its registry version (``FRAUD_MODEL_VERSION`` in the container, or a ``STORAGE_URI`` that KServe's storage
initializer fetches to ``/mnt/models``). The controller (``fraudctl canary controller --namespace NS
--inference-service NAME``) needs only ``get`` and ``patch`` on that one object:

- **weight**: ``spec.canary[0].trafficPercent`` is set to the step's weight (KServe 0.21 weights the HTTPRoute);
- **promotion** (the KServe 0.21 way): the stable predictor takes the canary's predictor spec (name, containers
  and so storage URI or version, everything that says *which model*) while keeping its own autoscaling fields, and
  the canary entry is removed; KServe re-points the route without restarting the canary's pods. The registry's
  ``champion`` alias moves first (``previous`` keeps the old one), exactly as locally;
- **rollback**: the canary entry is removed; the challenger's version is tagged with the reason;
- **state**: the `RolloutState` JSON lives in the annotation ``fraud.platform/rollout-state`` on the
  InferenceService, written (with ``pending_action``) in the same patch as the routing change it announces is
  *not* possible (the registry is another system), so the protocol is the local one: annotate the pending action,
  apply registry then routing (each idempotent), annotate the cleared state.

- **report**: each window the runtime judges is kept beside the rollout in the object store
  (``s3://<report bucket>/canary-reports/<model>/v<challenger>-<started>/windows/<end>.json``, one small object a
  look: the annotation stays the size of the state), and when the rollout ends and settles the same report as
  locally (`serving.canary.report`: JSON + HTML, object store + the challenger's MLflow run) is published once;
  where it went is the annotation ``fraud.platform/rollout-report`` (which also makes it once per rollout).

KServe has no traffic mirroring, so a cluster rollout has no shadow phase: it starts at the first weighted step
(the spec is forced to ``shadow=False``).

Evidence comes from each variant's ``/metrics`` (Prometheus text, scraped through its Service,
``http://<isvc>-predictor.<ns>`` and ``http://<isvc>-<canary>-predictor.<ns>``): per look, the growth of
``fraud_decisions_total`` (rows, blocks, reviews), ``request_predict_seconds`` (requests and latency) and
``fraud_score`` (scores) and ``fraud_failed_requests_total{kind="server"}`` (errors: the 5xx answers the analysis'
error check compares) since the previous look. Histograms give bucketed values (latencies at their bucket's upper
bound, scores at their bucket's middle), identical for both arms, so the comparisons stay like for like. A request
that failed before the predict stage (not ready, say) is missing from the latency histogram, so it is added to the
arm's requests from the failure counter. A Service with several pods answers from one pod per
scrape, so counts are exact with one replica per variant (the canary's usual size) and approximate otherwise.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import requests

from fraud.errors import FraudError
from fraud.registry import CHAMPION, connect, set_alias, version_by_alias
from fraud.settings import Settings
from fraud.store import ObjectStore, S3Uri
from serving.canary.evidence import ArmSample, Window
from serving.canary.report import SCORE_BINS, ReportLocations, publish_report
from serving.canary.rollout import (
    Action,
    ActionKind,
    RolloutSpec,
    RolloutState,
    applied,
    manual,
    reconcile,
    start,
)

log = logging.getLogger(__name__)

GROUP: Final = "serving.kserve.io"
API_VERSION: Final = "v1beta1"
PLURAL: Final = "inferenceservices"
STATE_ANNOTATION: Final = "fraud.platform/rollout-state"
REPORT_ANNOTATION: Final = "fraud.platform/rollout-report"
PREVIOUS: Final = "previous"
AUTOSCALING_FIELDS: Final = ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "autoScaling")
"""Fields that stay with the stable predictor at promotion (and that KServe refuses on a canary)."""
VERSION_ENV: Final = "FRAUD_MODEL_VERSION"
STORAGE_ENV: Final = "STORAGE_URI"

Obj = dict[str, Any]


class ClusterRolloutError(FraudError):
    """The InferenceService cannot be rolled out as it is (the message names what is missing)."""

    exit_code = 13


# --------------------------------------------------------------------------------------------- objects (pure)


def canary_entry(isvc: Mapping[str, Any]) -> Obj | None:
    """The one canary entry of the InferenceService, or None."""
    entries = isvc.get("spec", {}).get("canary") or []
    if len(entries) > 1:
        raise ClusterRolloutError(f"{len(entries)} canary entries: a rollout compares exactly one challenger")
    return dict(entries[0]) if entries else None


def _env(predictor: Mapping[str, Any], name: str) -> str | None:
    for container in predictor.get("containers") or []:
        for item in container.get("env") or []:
            if item.get("name") == name and "value" in item:
                return str(item["value"])
    return None


def served_version(predictor: Mapping[str, Any]) -> str:
    """The registry version a predictor variant serves (its ``FRAUD_MODEL_VERSION``).

    Raises:
        ClusterRolloutError: the variant pins no version (an alias would change under the rollout).
    """
    version = _env(predictor, VERSION_ENV)
    if version is None:
        name = predictor.get("name") or "the stable predictor"
        raise ClusterRolloutError(
            f"{name} sets no {VERSION_ENV}: pin each variant to a registry version so promotion and rollback "
            "move exactly the versions compared"
        )
    return version


def weight_patch(isvc: Mapping[str, Any], weight: int) -> Obj:
    """Merge patch: the canary's ``trafficPercent`` set to ``weight`` (the whole canary list, as merge patches do)."""
    entry = canary_entry(isvc)
    if entry is None:
        raise ClusterRolloutError("the InferenceService has no spec.canary entry to send traffic to")
    return {"spec": {"canary": [{**entry, "trafficPercent": int(weight)}]}}


def promote_patch(isvc: Mapping[str, Any]) -> Obj:
    """Merge patch: the stable predictor takes the canary's predictor (keeping its autoscaling), the canary goes.

    Idempotent: with no canary left, nothing to change (an empty patch).
    """
    entry = canary_entry(isvc)
    if entry is None:
        return {}
    stable = isvc["spec"]["predictor"]
    promoted = copy.deepcopy(entry["predictor"])
    for name in AUTOSCALING_FIELDS:
        promoted.pop(name, None)
        if name in stable:
            promoted[name] = stable[name]
    replaced: Obj = {key: None for key in stable if key not in promoted}  # merge patch: null removes a key
    return {"spec": {"predictor": {**replaced, **promoted}, "canary": None}}


def rollback_patch(isvc: Mapping[str, Any]) -> Obj:
    """Merge patch: the canary entry removed (empty when it is gone already)."""
    return {"spec": {"canary": None}} if canary_entry(isvc) is not None else {}


def state_patch(state: RolloutState) -> Obj:
    return {"metadata": {"annotations": {STATE_ANNOTATION: state.to_json()}}}


def endpoint_of(isvc: Mapping[str, Any]) -> str:
    """Where clients reach the InferenceService: KServe's ``status.url``, else ``status.address.url``, else its name."""
    status = isvc.get("status") or {}
    url = status.get("url") or (status.get("address") or {}).get("url")
    metadata = isvc.get("metadata", {})
    return str(url) if url else f"inferenceservice {metadata.get('namespace')}/{metadata.get('name')}"


def rollout_key(state: RolloutState) -> str:
    """One rollout's name in the object store and the report annotation: challenger version and start (UTC)."""
    return f"v{state.spec.challenger_version}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(state.started_at))}"


def window_record(state: RolloutState, window: Window) -> dict[str, Any]:
    """One line of the report's timeline, as the local runtime writes it (scores as histograms over SCORE_BINS)."""
    return {
        "time": window.end,
        "phase": str(state.phase),
        "weight": state.weight,
        "window": window.summary(),
        "checks": state.checks,
        "scores": {
            arm: np.histogram(getattr(window, arm).scores, bins=SCORE_BINS)[0].tolist()
            for arm in ("champion", "challenger")
        },
    }


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies it (for tests and dry runs)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


def check_canary_rules(isvc: Mapping[str, Any]) -> None:
    """The rules KServe's admission webhook enforces on canaries (``validateCanarySpecs``), checked before writing.

    Raises:
        ClusterRolloutError: naming the broken rule.
    """
    spec = isvc.get("spec", {})
    stable = spec.get("predictor", {})
    entries = spec.get("canary") or []
    names = [entry.get("predictor", {}).get("name") for entry in entries]
    if entries and not (_env(stable, STORAGE_ENV) or _env(stable, VERSION_ENV) or stable.get("model")):
        raise ClusterRolloutError("a canary needs a stable predictor that names its model (STORAGE_URI or a version)")
    if any(not name for name in names) or len(set(names)) != len(names) or stable.get("name") in names:
        raise ClusterRolloutError(f"canary names must be set, unique and differ from the stable one: {names}")
    total = sum(int(entry.get("trafficPercent", 0)) for entry in entries)
    if total > 100:
        raise ClusterRolloutError(f"canary trafficPercent adds up to {total} > 100")
    for entry in entries:
        present = [name for name in AUTOSCALING_FIELDS if name in entry.get("predictor", {}) and name != "minReplicas"]
        if present:
            raise ClusterRolloutError(f"canary {entry['predictor']['name']} sets autoscaling field(s) {present}")


def check_name_change(before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
    """KServe's ``validatePredictorNameChange``: a new stable name must come with a new model (storage URI)."""
    old, new = before["spec"]["predictor"], after["spec"]["predictor"]
    if old.get("name") == new.get("name"):
        return
    model_of = [(_env(p, STORAGE_ENV), _env(p, VERSION_ENV)) for p in (old, new)]
    if model_of[0] == model_of[1]:
        raise ClusterRolloutError("the stable predictor's name changes but its storage URI / version does not")


# --------------------------------------------------------------------------------------------- metrics evidence


@dataclass
class Counters:
    """One scrape of a variant's ``/metrics``: cumulative counts."""

    decisions: dict[str, float] = field(default_factory=dict)
    latency_buckets: dict[float, float] = field(default_factory=dict)
    score_buckets: dict[float, float] = field(default_factory=dict)
    server_errors: float = 0.0
    """Failed requests answered 5xx, every stage."""
    unmeasured_errors: float = 0.0
    """The part of ``server_errors`` that failed before the predict stage (so not in the latency histogram)."""


def parse_metrics(text: str, model_name: str) -> Counters:
    """The counters a window needs, summed over model versions (a variant serves one)."""
    from prometheus_client.parser import text_string_to_metric_families

    found = Counters()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "fraud_decisions_total":
                found.decisions[labels["decision"]] = found.decisions.get(labels["decision"], 0.0) + sample.value
            elif sample.name == "request_predict_seconds_bucket" and labels.get("model_name", model_name) == model_name:
                bound = float(labels["le"])
                found.latency_buckets[bound] = found.latency_buckets.get(bound, 0.0) + sample.value
            elif (
                sample.name == "fraud_failed_requests_total"
                and labels.get("kind") == "server"
                and labels.get("model_name", model_name) == model_name
            ):
                found.server_errors += sample.value
                if labels.get("stage") == "preprocess":
                    found.unmeasured_errors += sample.value
            elif sample.name == "fraud_score_bucket":
                bound = float(labels["le"])
                found.score_buckets[bound] = found.score_buckets.get(bound, 0.0) + sample.value
    return found


def _bucket_values(before: Mapping[float, float], after: Mapping[float, float], *, midpoint: bool) -> np.ndarray:
    """The observations between two scrapes of a cumulative histogram, each at its bucket's value."""
    bounds = sorted(after)
    counts, previous_bound, previous_cumulative = [], 0.0, 0.0
    values = []
    for bound in bounds:
        grown = max(after[bound] - before.get(bound, 0.0), 0.0)  # a reset (pod restart) counts from zero
        in_bucket = max(grown - previous_cumulative, 0.0)
        previous_cumulative = grown
        finite = bound if np.isfinite(bound) else previous_bound
        values.append((previous_bound + finite) / 2 if midpoint else finite)
        counts.append(round(in_bucket))
        previous_bound = finite
    return np.repeat(np.asarray(values, dtype=np.float64), counts)


def arm_sample(before: Counters, after: Counters) -> ArmSample:
    """What a variant did between two scrapes."""
    decisions = {k: max(v - before.decisions.get(k, 0.0), 0.0) for k, v in after.decisions.items()}
    latencies_ms = _bucket_values(before.latency_buckets, after.latency_buckets, midpoint=False) * 1000.0
    scores = np.clip(_bucket_values(before.score_buckets, after.score_buckets, midpoint=True), 0.0, 1.0)
    errors = round(max(after.server_errors - before.server_errors, 0.0))
    unmeasured = round(max(after.unmeasured_errors - before.unmeasured_errors, 0.0))
    return ArmSample(
        requests=int(latencies_ms.size) + unmeasured,
        errors=min(errors, int(latencies_ms.size) + unmeasured),
        rows=int(sum(decisions.values())),
        blocks=int(decisions.get("block", 0)),
        reviews=int(decisions.get("review", 0)),
        latencies_ms=latencies_ms,
        scores=scores,
    )


# --------------------------------------------------------------------------------------------- the runtime


Fetch = Callable[[str], str]


def _http_get(url: str) -> str:
    answer = requests.get(url, timeout=10)
    answer.raise_for_status()
    return answer.text


class ClusterRuntime:
    """One InferenceService's rollout through the Kubernetes API (``get`` / ``patch`` on that object only)."""

    def __init__(
        self,
        settings: Settings,
        namespace: str,
        name: str,
        *,
        api: Any | None = None,
        fetch: Fetch = _http_get,
        metrics_port: int = 80,
    ) -> None:
        self.settings = settings
        self.namespace = namespace
        self.name = name
        self.fetch = fetch
        self.metrics_port = metrics_port
        if api is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                try:
                    config.load_kube_config()
                except (config.ConfigException, OSError) as exc:
                    raise ClusterRolloutError(
                        f"no Kubernetes API to talk to: not in a pod and no usable kubeconfig ({exc}); set KUBECONFIG"
                    ) from exc
            api = client.CustomObjectsApi()
        self.api = api
        self._last: dict[str, Counters] = {}
        self._window_start = time.time()

    # --- the object ----------------------------------------------------------------------------------------
    def get(self) -> Obj:
        result: Obj = self.api.get_namespaced_custom_object(GROUP, API_VERSION, self.namespace, PLURAL, self.name)
        return result

    def patch(self, body: Obj) -> Obj:
        if not body:
            return self.get()
        result: Obj = self.api.patch_namespaced_custom_object(
            GROUP, API_VERSION, self.namespace, PLURAL, self.name, body
        )
        return result

    def load_state(self, isvc: Obj | None = None) -> RolloutState | None:
        annotations = (isvc or self.get()).get("metadata", {}).get("annotations") or {}
        text = annotations.get(STATE_ANNOTATION)
        return None if not text else RolloutState.from_json(text)

    def save_state(self, state: RolloutState) -> None:
        self.patch(state_patch(state))

    def commit(self, state: RolloutState, action: Action) -> RolloutState:
        """Announce, apply, clear (the local protocol); a rollout that ended publishes its report."""
        self.save_state(state)
        if action.kind is not ActionKind.NONE:
            self.apply(state, action)
        if state.pending_action is not None:
            state = applied(state)
            self.save_state(state)
        if state.terminal:
            self.ensure_report(state)
        return state

    # --- a person's commands (`fraudctl canary promote|rollback|pause|resume --namespace NS --inference-service N`)
    def command(self, command: str) -> RolloutState:
        """``promote`` / ``rollback`` / ``pause`` / ``resume`` by hand, committed through the same protocol as the
        controller's own decisions (a pending action left by either is finished first)."""
        state = self.load_state()
        if state is None:
            raise ClusterRolloutError(
                f"{self.namespace}/{self.name} has no rollout: its controller starts one when a canary is added"
            )
        if state.pending_action is not None:
            state = self.commit(state, state.pending_action)
        state, action = manual(state, command, time.time())  # type: ignore[arg-type]
        return self.commit(state, action)

    def status(self) -> dict[str, Any] | None:
        """What `fraudctl canary status` shows, with the local runtime's keys (the controller is a Deployment, so
        no pid; ``routing`` is the live canary entry's ``trafficPercent``); None when no rollout has started."""
        isvc = self.get()
        state = self.load_state(isvc)
        if state is None:
            return None
        entry = canary_entry(isvc)
        summary: dict[str, Any] = state.summary()
        summary["endpoint"] = endpoint_of(isvc)
        summary["controller_pid"] = None
        summary["pending_action"] = None if state.pending_action is None else state.pending_action.to_dict()
        summary["routing"] = None if entry is None else {"canary_traffic_percent": int(entry.get("trafficPercent", 0))}
        summary["check_details"] = state.checks
        return summary

    # --- the report ----------------------------------------------------------------------------------------
    def windows_prefix(self, state: RolloutState) -> S3Uri:
        bucket = self.settings.canary_report_bucket or self.settings.data_bucket
        return S3Uri(bucket, f"canary-reports/{self.settings.model_name}/{rollout_key(state)}/windows/")

    def record_window(self, state: RolloutState, window: Window) -> None:
        """Keep a judged window for the report (``state``: after judging it). A store that cannot be reached costs
        the report that window, never the rollout."""
        uri = self.windows_prefix(state).child(f"{int(window.end * 1000):015d}.json")
        try:
            ObjectStore.from_settings(self.settings).put_json(uri, window_record(state, window))
        except (FraudError, OSError, ValueError) as exc:
            log.warning("window not kept for the report (%s): %s", uri, exc)

    def windows(self, state: RolloutState) -> list[dict[str, Any]]:
        """The windows kept for this rollout, in time order."""
        store = ObjectStore.from_settings(self.settings)
        return [store.get_json(uri) for uri in store.list(self.windows_prefix(state))]

    def report_locations(self, isvc: Obj | None = None) -> dict[str, Any] | None:
        """Where the last ended rollout's report went (the report annotation), or None."""
        annotations = (isvc or self.get()).get("metadata", {}).get("annotations") or {}
        text = annotations.get(REPORT_ANNOTATION)
        return None if not text else dict(json.loads(text))

    def ensure_report(self, state: RolloutState) -> dict[str, Any] | None:
        """Publish the ended rollout's report unless its annotation says it is published already (once per rollout).

        Returns the locations (``rollout``, ``local``, ``object_store``, ``mlflow_run``), or None when the report
        could not be written this time (logged; the next look tries again).
        """
        if not state.terminal or state.pending_action is not None:
            return None
        isvc = self.get()
        known = self.report_locations(isvc)
        key = rollout_key(state)
        if known is not None and known.get("rollout") == key and known.get("object_store"):
            return known  # published; one that missed the object store is tried again
        try:
            locations = self.publish_report(state, endpoint_of(isvc))
        except Exception:  # the rollout is over either way; say why the report is missing
            log.exception("%s/%s: could not write the report of rollout %s", self.namespace, self.name, key)
            return None
        published = {"rollout": key, **locations.to_json()}
        self.patch({"metadata": {"annotations": {REPORT_ANNOTATION: json.dumps(published)}}})
        log.info("%s/%s: report of rollout %s written: %s", self.namespace, self.name, key, published)
        return published

    def publish_report(self, state: RolloutState, endpoint: str) -> ReportLocations:
        """The local runtime's report from the windows kept in the object store."""
        try:
            windows = self.windows(state)
        except (FraudError, OSError, ValueError) as exc:
            log.warning("the report's windows could not be read (%s): the report has the transitions only", exc)
            windows = []
        local = self.settings.home_dir / "canary" / "cluster" / self.namespace / self.name / rollout_key(state)
        local.mkdir(parents=True, exist_ok=True)
        windows_path = local / "windows.jsonl"
        windows_path.write_text("".join(json.dumps(w) + "\n" for w in windows), encoding="utf-8")
        return publish_report(self.settings, state, windows_path=windows_path, local=local, endpoint=endpoint)

    # --- actions -------------------------------------------------------------------------------------------
    def apply(self, state: RolloutState, action: Action) -> None:
        isvc = self.get()
        if action.kind is ActionKind.SET_WEIGHT:
            body = weight_patch(isvc, action.weight)
        elif action.kind is ActionKind.PROMOTE:
            self.promote_in_registry(state.spec.champion_version, state.spec.challenger_version, action.reason)
            body = promote_patch(isvc)
            after = merge(isvc, body)
            check_name_change(isvc, after)
        elif action.kind is ActionKind.ROLLBACK:
            self.tag(state.spec.challenger_version, "rolled_back", action.reason)
            body = rollback_patch(isvc)
        else:
            return
        check_canary_rules(merge(isvc, body))
        self.patch(body)
        self._last.clear()  # the variants' Services change: counting starts afresh
        self._window_start = time.time()
        log.info("applied %s to %s/%s: %s", action.kind, self.namespace, self.name, action.reason)

    def promote_in_registry(self, champion: str, challenger: str, reason: str) -> None:
        client = connect(self.settings)
        model = self.settings.model_name
        current = version_by_alias(client, model, CHAMPION)
        if current is None or str(current.version) != challenger:
            set_alias(client, model, PREVIOUS, champion)
            set_alias(client, model, CHAMPION, challenger)
        self.tag(challenger, "promoted", reason)

    def tag(self, version: str, outcome: str, reason: str) -> None:
        client = connect(self.settings)
        client.set_model_version_tag(self.settings.model_name, version, "canary_outcome", outcome)
        client.set_model_version_tag(self.settings.model_name, version, "canary_reason", reason[:5000])

    # --- evidence ------------------------------------------------------------------------------------------
    def metrics_urls(self, isvc: Obj) -> dict[str, str]:
        """Each variant's ``/metrics`` through its Service (KServe Standard mode naming)."""
        stable = isvc["spec"]["predictor"].get("name")
        entry = canary_entry(isvc)
        base = f"{self.name}-{stable}-predictor" if stable else f"{self.name}-predictor"
        urls = {"champion": f"http://{base}.{self.namespace}.svc:{self.metrics_port}/metrics"}
        if entry is not None:
            canary = f"{self.name}-{entry['predictor']['name']}-predictor"
            urls["challenger"] = f"http://{canary}.{self.namespace}.svc:{self.metrics_port}/metrics"
        return urls

    def collect(self, state: RolloutState, isvc: Obj) -> Window | None:
        """The growth of both variants' counters since the last look (None on the first look: no baseline yet)."""
        scraped = {
            arm: parse_metrics(self.fetch(url), self.settings.model_name)
            for arm, url in self.metrics_urls(isvc).items()
        }
        now = time.time()
        if set(scraped) != {"champion", "challenger"} or set(self._last) != set(scraped):
            self._last, self._window_start = scraped, now
            return None
        window = Window(
            start=self._window_start,
            end=max(now, self._window_start + 1e-6),
            champion=arm_sample(self._last["champion"], scraped["champion"]),
            challenger=arm_sample(self._last["challenger"], scraped["challenger"]),
            expected_challenger_share=state.weight / 100.0,
            shadow=False,
        )
        self._last, self._window_start = scraped, now
        return window

    # --- the loop ------------------------------------------------------------------------------------------
    def begin(self, isvc: Obj, spec_overrides: Mapping[str, Any]) -> RolloutState:
        """Start a rollout of the InferenceService's canary against its stable predictor."""
        entry = canary_entry(isvc)
        if entry is None:
            raise ClusterRolloutError(
                f"{self.namespace}/{self.name} has no spec.canary entry: add the challenger as a canary "
                "(trafficPercent 0) and the controller takes it from there"
            )
        spec = RolloutSpec(
            champion_version=served_version(isvc["spec"]["predictor"]),
            challenger_version=served_version(entry["predictor"]),
            **{**spec_overrides, "shadow": False},
        )
        state, action = start(spec, time.time())
        return self.commit(state, action)

    def step(self, spec_overrides: Mapping[str, Any]) -> RolloutState:
        """One look: finish a pending action, start a rollout for a new canary, or judge the latest window."""
        isvc = self.get()
        state = self.load_state(isvc)
        if state is not None and state.pending_action is not None:
            state = self.commit(state, state.pending_action)
            isvc = self.get()
        entry = canary_entry(isvc)
        if entry is not None and (
            state is None or (state.terminal and state.spec.challenger_version != served_version(entry["predictor"]))
        ):
            return self.begin(isvc, spec_overrides)
        if state is None:
            raise ClusterRolloutError(f"{self.namespace}/{self.name}: no rollout and no canary; waiting for one")
        if state.terminal:
            self.ensure_report(state)  # a no-op once published; a retry if the last attempt failed
            return state
        handled = self.outside_change(state, isvc, spec_overrides)
        if handled is not None:
            return handled
        window = self.collect(state, isvc)
        if window is None:
            return state
        state, action = reconcile(state, window, time.time())
        self.record_window(state, window)
        return self.commit(state, action)

    # --- changes made behind the controller (kubectl edit, helm upgrade, another tool) -----------------------
    def outside_change(self, state: RolloutState, isvc: Obj, spec_overrides: Mapping[str, Any]) -> RolloutState | None:
        """The rollout's answer to a canary removed, replaced or re-weighted by someone else (None: no change)."""
        entry = canary_entry(isvc)
        if entry is None:
            return self.canary_removed(state)
        if served_version(entry["predictor"]) != state.spec.challenger_version:
            return self.canary_replaced(state, isvc, spec_overrides)
        live = int(entry.get("trafficPercent", 0))
        return self.restore_weight(state, isvc, live) if live != state.weight else None

    def canary_removed(self, state: RolloutState) -> RolloutState:
        """The canary entry went away mid-rollout: nothing is left to judge, so the rollout ends as rolled back
        (the challenger tagged), exactly as if the rollback had been asked for."""
        log.warning(
            "%s/%s: the canary (version %s) was removed outside the controller at %s %%: recording a rollback",
            self.namespace,
            self.name,
            state.spec.challenger_version,
            state.weight,
        )
        state, action = manual(state, "rollback", time.time())
        return self.commit(state, action)

    def canary_replaced(self, state: RolloutState, isvc: Obj, spec_overrides: Mapping[str, Any]) -> RolloutState:
        """A different version took the canary's place mid-rollout: the evidence gathered was about the old one, so
        that rollout is abandoned (its version tagged ``superseded``) and a new one starts from the first step."""
        entry = canary_entry(isvc)
        new_version = served_version(entry["predictor"]) if entry is not None else "none"
        reason = f"superseded by version {new_version} at {state.weight} % (checks: {json.dumps(state.checks)})"
        log.warning("%s/%s: version %s %s", self.namespace, self.name, state.spec.challenger_version, reason)
        self.tag(state.spec.challenger_version, "superseded", reason)
        return self.begin(isvc, spec_overrides)

    def restore_weight(self, state: RolloutState, isvc: Obj, live: int) -> RolloutState:
        """The live split differs from the rollout's step: the rollout's weight is put back, since every check
        compares the arms under the split the state machine set (a larger canary share is exposure nobody judged)."""
        log.warning(
            "%s/%s: spec.canary trafficPercent was changed to %s %% outside the controller; restoring the rollout's "
            "%s %% (pause, promote or roll back through `fraudctl canary` instead)",
            self.namespace,
            self.name,
            live,
            state.weight,
        )
        body = weight_patch(isvc, state.weight)
        check_canary_rules(merge(isvc, body))
        self.patch(body)
        self._last.clear()  # the window under the other split is not evidence about this one
        self._window_start = time.time()
        return state


def run_cluster_controller(
    runtime: ClusterRuntime, spec_overrides: Mapping[str, Any], *, interval: float, once: bool = False
) -> RolloutState | None:
    """Look every ``interval`` seconds, forever (a controller Deployment) or once (``once``)."""
    state = None
    while True:
        try:
            state = runtime.step(spec_overrides)
            log.info(
                "%s/%s: %s at %s %%, checks %s",
                runtime.namespace,
                runtime.name,
                state.phase,
                state.weight,
                json.dumps(state.summary()["checks"]),
            )
        except (ClusterRolloutError, requests.RequestException) as exc:
            log.warning("%s", exc)
        if once:
            return state
        time.sleep(interval)
