"""The chart's monitoring (issue 15 item 8): `monitoring.enabled` renders the inference-log collector and wires the
predictor's payload logger to it.

Given the chart rendered by Helm's own engine with monitoring off and on (and with or without the Prometheus
Operator's CRDs among the cluster's API versions), then: nothing of it exists when off; when on, the collector's
Deployment, Service, PVC, ServiceAccount and NetworkPolicies validate strictly, its pod is restricted, its command
and FRAUD_* environment are what `python -m monitoring.collector` and `fraud.settings.Settings` read, KServe's
logger posts to its Service, the NetworkPolicies select the pods they are about, and the PrometheusRule and
ServiceMonitor appear exactly when their CRDs do, naming only metrics the collector exports.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import helm_python as helm
import kubernetes_validate
import pytest
import typer.main

from fraud.cli.main import app as fraudctl
from fraud.settings import Settings
from monitoring.collector.metrics import CollectorMetrics

from .conftest import CHART, KUBE_VERSIONS, NAMESPACE, RELEASE, ROOT, Obj, Rendered, render, yaml_load

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

COLLECTOR = f"{RELEASE}-collector"
DRIFT = f"{RELEASE}-drift"
REPORT = f"{RELEASE}-report"
PROMETHEUS_RULE = "monitoring.coreos.com/v1/PrometheusRule"
SERVICE_MONITOR = "monitoring.coreos.com/v1/ServiceMonitor"
ON: dict[str, Any] = {"monitoring": {"enabled": True}}
CUSTOM: dict[str, Any] = {
    "monitoring": {
        "enabled": True,
        "logBucket": "fraud-monitoring-test",
        "collector": {
            "port": 9095,
            "maxEventBytes": 2 * 1024 * 1024,
            "segmentBytes": 16 * 1024 * 1024,
            "flushSeconds": 2.5,
            "flushRows": 1234,
            "unmatchedSeconds": 90,
            "dedupSeconds": 86400.5,
        },
    }
}
"""Every collector setting away from its default, so a misspelt variable (Settings ignores unknown ones) shows."""


@pytest.fixture(scope="module")
def off() -> Rendered:
    return render({}, "off", api_versions=(PROMETHEUS_RULE, SERVICE_MONITOR))


@pytest.fixture(scope="module")
def on() -> Rendered:
    return render(ON, "on")


@pytest.fixture(scope="module")
def on_with_crds() -> Rendered:
    return render(ON, "on+crds", api_versions=(PROMETHEUS_RULE, SERVICE_MONITOR))


def _pod(deployment: Obj) -> Obj:
    spec: Obj = deployment["spec"]["template"]["spec"]
    return spec


def _pod_labels(obj: Obj) -> dict[str, str]:
    """Labels of the pods an object runs (KServe predictor variants carry them in the spec)."""
    if obj["kind"] == "InferenceService":
        labels: dict[str, str] = obj["spec"]["predictor"]["labels"]
        return labels
    if obj["kind"] == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"])
    return dict(obj["spec"]["template"]["metadata"]["labels"])


def _matches(selector: Obj, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics for matchLabels and In/NotIn/Exists expressions."""
    assert set(selector) <= {"matchLabels", "matchExpressions"}, selector
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
    return True


def _env(container: Obj) -> dict[str, Obj]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def _monitoring_objects(rendered: Rendered) -> list[Obj]:
    return [
        obj
        for obj in rendered.objects
        if obj["metadata"]["labels"].get("app.kubernetes.io/component")
        in {"collector", "alerts", "drift", "report", "monitor"}
        or obj["kind"] in {"PrometheusRule", "ServiceMonitor"}
        or obj["metadata"]["name"].endswith(("-minio-monitoring", "-mlflow-monitoring", "-predictor-logger"))
    ]


# --- on / off ------------------------------------------------------------------------------------------------------


def test_monitoring_off_renders_none_of_it_even_with_the_crds(off: Rendered) -> None:
    assert _monitoring_objects(off) == []
    isvc = off.one("InferenceService", "fraud-detector")
    assert "logger" not in isvc["spec"]["predictor"]
    assert "collector" not in off.notes


def test_monitoring_on_renders_the_collector(on: Rendered) -> None:
    kinds = sorted((obj["kind"], obj["metadata"]["name"]) for obj in _monitoring_objects(on))
    assert kinds == [
        ("CronJob", DRIFT),
        ("CronJob", REPORT),
        ("Deployment", COLLECTOR),
        ("NetworkPolicy", COLLECTOR),
        ("NetworkPolicy", DRIFT),
        ("NetworkPolicy", f"{RELEASE}-minio-monitoring"),
        ("NetworkPolicy", f"{RELEASE}-mlflow-monitoring"),
        ("NetworkPolicy", f"{RELEASE}-predictor-logger"),
        ("NetworkPolicy", REPORT),
        ("PersistentVolumeClaim", COLLECTOR),
        ("PersistentVolumeClaim", f"{RELEASE}-drift-state"),
        ("Service", COLLECTOR),
        ("ServiceAccount", COLLECTOR),
        ("ServiceAccount", f"{RELEASE}-monitor"),
    ]


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_monitoring_objects_validate_strictly(on_with_crds: Rendered, kube_version: str) -> None:
    for obj in _monitoring_objects(on_with_crds):
        if obj["kind"] in {"PrometheusRule", "ServiceMonitor"}:  # CRDs: no built-in schema
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(obj, kube_version, strict=True)
            continue
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} invalid for {kube_version}: {exc.message}")


def test_helm_lint_is_clean_with_monitoring_on() -> None:
    result = helm.lint(str(CHART), ON, strict=True, kube_version="v1.33.0")
    assert result["errors"] == []
    assert [m for m in result["messages"] if m["severity"] >= 2] == []


# --- the collector's pod -------------------------------------------------------------------------------------------


def test_collector_pod_is_restricted_with_writable_volumes_only(on: Rendered) -> None:
    deployment = on.one("Deployment", COLLECTOR)
    pod = _pod(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == COLLECTOR
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert set(mounts) == {"/tmp", "/data"}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert volumes[mounts["/data"]]["persistentVolumeClaim"]["claimName"] == COLLECTOR
    for volume in volumes.values():
        assert set(volume) - {"name"} <= {"emptyDir", "persistentVolumeClaim"}, volume


def test_collector_keeps_one_writer_on_its_write_ahead_log(on: Rendered) -> None:
    deployment = on.one("Deployment", COLLECTOR)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # never two pods on one log
    claim = on.one("PersistentVolumeClaim", COLLECTOR)
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    # the collector drains for 30 s (monitoring.collector.app.serve): the pod must be given longer
    assert _pod(deployment)["terminationGracePeriodSeconds"] > 30


def test_monitoring_service_accounts_have_no_rights(on: Rendered) -> None:
    for name in (COLLECTOR, f"{RELEASE}-monitor"):
        assert on.one("ServiceAccount", name)["automountServiceAccountToken"] is False
    for kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
        assert on.of_kind(kind) == []


def test_collector_runs_its_module_with_the_settings_it_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The env names reach `Settings` (each value set away from its default), the flags the module's parser."""
    rendered = render(CUSTOM, "custom-collector")
    deployment = rendered.one("Deployment", COLLECTOR)
    (container,) = _pod(deployment)["containers"]
    assert container["command"] == ["python", "-m", "monitoring.collector"]
    args = container["args"]
    flags = dict(zip(args[::2], args[1::2], strict=True))
    assert flags == {"--host": "0.0.0.0", "--port": "9095", "--wal-dir": "/data/wal"}
    assert flags["--wal-dir"].startswith("/data/")  # on the PVC, not the read-only root or /tmp
    assert container["ports"] == [{"name": "http", "containerPort": 9095, "protocol": "TCP"}]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}

    env = _env(container)
    for secret in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[secret]["valueFrom"]["secretKeyRef"]["name"] == f"{RELEASE}-minio"
        monkeypatch.setenv(secret, "from-the-secret")
    for name, entry in env.items():
        if "value" in entry:
            assert isinstance(entry["value"], str), name
            monkeypatch.setenv(name, entry["value"])
    settings = Settings()
    assert settings.s3_endpoint == f"http://{RELEASE}-minio.{NAMESPACE}.svc.cluster.local:9000"
    assert settings.monitor_log_bucket == "fraud-monitoring-test"
    assert settings.collector_max_event_bytes == 2 * 1024 * 1024
    assert settings.collector_segment_bytes == 16 * 1024 * 1024
    assert settings.collector_flush_seconds == 2.5
    assert settings.collector_flush_rows == 1234
    assert settings.collector_unmatched_seconds == 90
    assert settings.collector_dedup_seconds == 86400.5


def test_chart_defaults_agree_with_the_settings() -> None:
    # The declared defaults, not Settings(): the session stack exports its own FRAUD_* ports into the environment.
    defaults = Settings.model_construct()
    values = yaml_load((CHART / "values.yaml").read_text())["monitoring"]
    collector = values["collector"]
    assert values["logBucket"] == defaults.monitor_log_bucket
    assert collector["port"] == defaults.collector_port
    assert collector["maxEventBytes"] == defaults.collector_max_event_bytes
    assert collector["segmentBytes"] == defaults.collector_segment_bytes
    assert collector["flushSeconds"] == defaults.collector_flush_seconds
    assert collector["flushRows"] == defaults.collector_flush_rows
    assert collector["unmatchedSeconds"] == defaults.collector_unmatched_seconds
    assert collector["dedupSeconds"] == defaults.collector_dedup_seconds


# --- the payload logger -------------------------------------------------------------------------------------------


def test_logger_defaults_to_the_collector_service(on: Rendered) -> None:
    isvc = on.one("InferenceService", "fraud-detector")
    logger = isvc["spec"]["predictor"]["logger"]
    assert logger["mode"] == "all"
    url = urlsplit(logger["url"])
    service = on.one("Service", COLLECTOR)
    assert url.scheme == "http" and url.path == "/"  # the collector takes events on POST /
    assert url.hostname == f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    (port,) = service["spec"]["ports"]
    assert url.port == port["port"]
    # the Service sends it to the collector's pods, on the port the container listens on
    deployment = on.one("Deployment", COLLECTOR)
    assert _matches({"matchLabels": service["spec"]["selector"]}, _pod_labels(deployment))
    (container_port,) = _pod(deployment)["containers"][0]["ports"]
    assert port["targetPort"] == container_port["name"] and port["port"] == container_port["containerPort"]
    # with the logger on, KServe's agent fronts the model server on 9081
    predictor_policy = on.one("NetworkPolicy", f"{RELEASE}-predictor")
    assert {p["port"] for p in predictor_policy["spec"]["ingress"][0]["ports"]} == {8080, 9081}


def test_an_explicit_logger_url_wins(render_chart: Callable[..., Rendered]) -> None:
    url = "http://collector.elsewhere.svc.cluster.local:8080/"
    rendered = render_chart({**ON, "predictor": {"logger": {"url": url, "mode": "response"}}})
    logger = rendered.one("InferenceService", "fraud-detector")["spec"]["predictor"]["logger"]
    assert logger == {"mode": "response", "url": url}
    names = {p["metadata"]["name"] for p in rendered.of_kind("NetworkPolicy")}
    assert f"{RELEASE}-predictor-logger" not in names  # the egress goes to that URL's port instead
    egress = rendered.one("NetworkPolicy", f"{RELEASE}-predictor")["spec"]["egress"]
    assert {"to": [{"namespaceSelector": {}}], "ports": [{"port": 8080, "protocol": "TCP"}]} in egress
    rendered.one("Deployment", COLLECTOR)  # the collector still runs (labels endpoint, other senders)


# --- NetworkPolicies ----------------------------------------------------------------------------------------------


def test_network_policies_select_the_pods_they_are_about(on: Rendered) -> None:
    collector = on.one("Deployment", COLLECTOR)
    minio = on.one("Deployment", f"{RELEASE}-minio")
    predictor = on.one("InferenceService", "fraud-detector")
    port = _pod(collector)["containers"][0]["ports"][0]["containerPort"]
    deny = on.one("NetworkPolicy", f"{RELEASE}-default-deny")
    assert _matches(deny["spec"]["podSelector"], _pod_labels(collector)), "the collector escapes default deny"

    policy = on.one("NetworkPolicy", COLLECTOR)["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert _matches(policy["podSelector"], _pod_labels(collector))
    assert not _matches(policy["podSelector"], _pod_labels(minio))
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": port, "protocol": "TCP"}]
    pod_peers = [peer for peer in ingress["from"] if "namespaceSelector" not in peer]
    prometheus_peers = [peer for peer in ingress["from"] if "namespaceSelector" in peer]
    assert len(pod_peers) == 1 and _matches(pod_peers[0]["podSelector"], _pod_labels(predictor))
    assert not _matches(pod_peers[0]["podSelector"], _pod_labels(minio))
    assert prometheus_peers == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]
    (egress,) = policy["egress"]
    assert egress["ports"] == [{"port": 9000, "protocol": "TCP"}]
    (peer,) = egress["to"]
    assert _matches(peer["podSelector"], _pod_labels(minio))

    minio_policy = on.one("NetworkPolicy", f"{RELEASE}-minio-monitoring")["spec"]
    assert _matches(minio_policy["podSelector"], _pod_labels(minio))
    (minio_ingress,) = minio_policy["ingress"]
    assert _matches(minio_ingress["from"][0]["podSelector"], _pod_labels(collector))
    assert minio_ingress["ports"] == [{"port": 9000, "protocol": "TCP"}]

    logger_policy = on.one("NetworkPolicy", f"{RELEASE}-predictor-logger")["spec"]
    assert logger_policy["policyTypes"] == ["Egress"]
    assert _matches(logger_policy["podSelector"], _pod_labels(predictor))
    (logger_egress,) = logger_policy["egress"]
    assert _matches(logger_egress["to"][0]["podSelector"], _pod_labels(collector))
    assert logger_egress["ports"] == [{"port": port, "protocol": "TCP"}]


def test_any_prometheus_pod_of_the_namespace_when_no_pod_labels(render_chart: Callable[..., Rendered]) -> None:
    rendered = render_chart({"monitoring": {"enabled": True, "prometheus": {"namespace": "obs", "podLabels": None}}})
    (ingress,) = rendered.one("NetworkPolicy", COLLECTOR)["spec"]["ingress"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "obs"}}} in ingress["from"]


def test_no_monitoring_policies_without_network_policies(render_chart: Callable[..., Rendered]) -> None:
    rendered = render_chart({**ON, "networkPolicy": {"enabled": False}})
    assert rendered.of_kind("NetworkPolicy") == []
    rendered.one("Deployment", COLLECTOR)


# --- Prometheus Operator objects, only with their CRDs -------------------------------------------------------------


def test_render_passes_api_versions_to_capabilities(on: Rendered, on_with_crds: Rendered) -> None:
    """The native option the render helper relies on really reaches `.Capabilities.APIVersions`."""
    assert on.of_kind("PrometheusRule") == [] and on.of_kind("ServiceMonitor") == []
    assert len(on_with_crds.of_kind("PrometheusRule")) == 1 and len(on_with_crds.of_kind("ServiceMonitor")) == 1


@pytest.mark.parametrize(
    ("api_versions", "expected"),
    [
        ((), set()),
        ((PROMETHEUS_RULE,), {"PrometheusRule"}),
        ((SERVICE_MONITOR,), {"ServiceMonitor"}),
        ((PROMETHEUS_RULE, SERVICE_MONITOR), {"PrometheusRule", "ServiceMonitor"}),
        (("monitoring.coreos.com/v1",), set()),  # the group alone is not the kind
    ],
)
def test_prometheus_objects_follow_their_crds(api_versions: tuple[str, ...], expected: set[str]) -> None:
    rendered = render(ON, "crds", api_versions=api_versions)
    kinds = {obj["kind"] for obj in rendered.objects if obj["apiVersion"].startswith("monitoring.coreos.com/")}
    assert kinds == expected


def test_service_monitor_scrapes_the_collector_metrics(render_chart: Callable[..., Rendered]) -> None:
    values = {"monitoring": {"enabled": True, "prometheus": {"selectorLabels": {"release": "kps"}}}}
    rendered = render(values, "sm", api_versions=(SERVICE_MONITOR,))
    monitor = rendered.one("ServiceMonitor", COLLECTOR)
    assert monitor["metadata"]["labels"]["release"] == "kps"
    service = rendered.one("Service", COLLECTOR)
    assert _matches(monitor["spec"]["selector"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": service["spec"]["ports"][0]["name"], "path": "/metrics", "interval": "30s"}


_EXTERNAL_METRICS = {
    "up",  # Prometheus, per scrape target
    "kubelet_volume_stats_available_bytes",  # the kubelet
    "kubelet_volume_stats_capacity_bytes",
    "push_time_seconds",  # the Pushgateway, per pushed group
}
_PROMQL_WORDS = {"sum", "rate", "max", "absent", "clamp_min", "or", "and", "by", "increase", "time"}


def _drift_metric_names() -> set[str]:
    """The gauges `monitoring.metrics.registry_for` defines (the drift job's exposition)."""
    source = (ROOT / "monitoring" / "metrics.py").read_text()
    return set(re.findall(r'Gauge\(\s*"(fraud_[a-z0-9_]+)"', source))


def _collector_metric_names() -> set[str]:
    """Every series name the collector's /metrics exposes (counters with their _total suffix)."""
    metrics = CollectorMetrics()
    metrics.bind(lambda: 0.0, lambda: 0.0, lambda: 0.0)  # the scrape-time gauges, as the Collector binds them
    text = metrics.render().decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


@pytest.mark.parametrize("pushgateway", ["", "http://pushgateway.monitoring.svc:9091"])
def test_alert_rules_name_only_metrics_that_exist(pushgateway: str) -> None:
    values = {"monitoring": {"enabled": True, "drift": {"pushgatewayUrl": pushgateway}}}
    rendered = render(values, "rules", api_versions=(PROMETHEUS_RULE,))
    (rule,) = rendered.of_kind("PrometheusRule")
    assert rule["metadata"]["namespace"] == NAMESPACE
    collector_metrics, drift_metrics = _collector_metric_names(), _drift_metric_names()
    assert "collector_events_received_total" in collector_metrics  # the exposition really was read
    assert {"fraud_drift_window", "fraud_drift_alert_firing"} <= drift_metrics
    exported = collector_metrics | drift_metrics
    groups = rule["spec"]["groups"]
    # the drift rules only where the drift metrics reach Prometheus (pushed); else they would always be absent
    assert ("fraud-model-drift" in [g["name"] for g in groups]) == bool(pushgateway)
    drift_alerts = {r["alert"] for g in groups for r in g["rules"] if re.search(r"\bfraud_", r["expr"])}
    model_alerts = {"FraudModelDrift", "FraudBlockRateShift", "FraudScoreTailGrowing", "FraudInferenceLogLag"}
    assert drift_alerts == (model_alerts if pushgateway else set())
    alerts = [r for group in groups for r in group["rules"]]
    assert len(alerts) >= 5
    names = [a["alert"] for a in alerts]
    assert len(names) == len(set(names))
    for alert in alerts:
        assert re.fullmatch(r"Fraud[A-Za-z0-9]+", alert["alert"]), alert["alert"]
        assert alert["labels"]["severity"] in {"critical", "warning"}
        assert re.fullmatch(r"\d+[smh]", alert["for"]), alert
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        expr = alert["expr"]
        assert "{{" not in expr and expr.count("(") == expr.count(")"), expr
        without_selectors = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\bby \([^)]*\)", "", expr)
        identifiers = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", without_selectors))
        metrics = identifiers - _PROMQL_WORDS - {"e"}
        unknown = metrics - exported - _EXTERNAL_METRICS
        assert not unknown, f"{alert['alert']} names metrics nobody exports: {unknown}"
        for selected, selector in re.findall(r"([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}", expr):
            pairs = dict(re.findall(r'(\w+)="([^"]*)"', selector))
            if selected == "push_time_seconds":
                assert "fraud-drift" in (pairs.get("job"), pairs.get("exported_job")), expr
                continue
            if selected in drift_metrics:  # pushed: their series carry the Pushgateway's target labels
                continue
            assert pairs.get("namespace") == NAMESPACE, expr
            if "service" in pairs:
                assert pairs["service"] == rendered.one("Service", COLLECTOR)["metadata"]["name"]
            if "persistentvolumeclaim" in pairs:
                assert pairs["persistentvolumeclaim"] == COLLECTOR


# --- values -------------------------------------------------------------------------------------------------------

BAD_MONITORING_VALUES: list[tuple[str, dict[str, Any], str]] = [
    ("privileged port", {"monitoring": {"collector": {"port": 80}}}, "port"),
    ("port above the setting's range", {"monitoring": {"collector": {"port": 60000}}}, "port"),
    ("unknown key", {"monitoring": {"collector": {"replicas": 2}}}, "additional"),
    ("bucket name", {"monitoring": {"logBucket": "Fraud_Logs"}}, "logBucket"),
    ("zero flush seconds", {"monitoring": {"collector": {"flushSeconds": 0}}}, "flushSeconds"),
    ("size not a quantity", {"monitoring": {"collector": {"persistence": {"size": "lots"}}}}, "size"),
    ("scrape interval", {"monitoring": {"prometheus": {"scrapeInterval": "often"}}}, "scrapeInterval"),
    ("enabled as text", {"monitoring": {"enabled": "yes"}}, "enabled"),
    ("empty peer", {"monitoring": {"collector": {"ingressFrom": [{}]}}}, "ingressFrom"),
    ("peer with a typo", {"monitoring": {"collector": {"ingressFrom": [{"podSelecter": {}}]}}}, "additional"),
    ("schedule", {"monitoring": {"drift": {"schedule": "hourly"}}}, "schedule"),
    ("window", {"monitoring": {"drift": {"since": "1 day"}}}, "since"),
    ("alpha of 1", {"monitoring": {"drift": {"alpha": 1}}}, "alpha"),
    ("pushgateway not http", {"monitoring": {"drift": {"pushgatewayUrl": "pgw:9091"}}}, "pushgatewayUrl"),
    ("logger without URL and no monitoring", {"predictor": {"logger": {"enabled": True}}}, "url"),
]


@pytest.mark.parametrize(
    ("case", "values", "mentions"), BAD_MONITORING_VALUES, ids=[case for case, _, _ in BAD_MONITORING_VALUES]
)
def test_schema_rejects_bad_monitoring_values(
    render_chart: Callable[..., Rendered], case: str, values: dict[str, Any], mentions: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        render_chart(values)
    assert mentions.lower() in str(caught.value).lower(), f"{case}: {caught.value}"


def test_logger_enabled_without_url_is_fine_with_monitoring(render_chart: Callable[..., Rendered]) -> None:
    rendered = render_chart({**ON, "predictor": {"logger": {"enabled": True}}})
    logger = rendered.one("InferenceService", "fraud-detector")["spec"]["predictor"]["logger"]
    assert logger["url"].startswith(f"http://{COLLECTOR}.{NAMESPACE}.svc.cluster.local:")


def test_notes_say_where_the_collector_is(on: Rendered) -> None:
    assert f"svc/{COLLECTOR}" in on.notes
    assert "fraudctl monitor" in on.notes


# --- the drift and report jobs ------------------------------------------------------------------------------------


def _job_pod(cronjob: Obj) -> Obj:
    spec: Obj = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def _cli_context(argv: list[str]) -> Any:
    """Parse a `fraudctl` command line with the real Typer app (its click context): unknown options or bad values
    raise, as they would in the pod."""
    command: Any = typer.main.get_command(fraudctl)
    assert argv[0] == "fraudctl"
    words = argv[1:]
    while hasattr(command, "get_command"):  # a group: descend into the named subcommand
        command = command.get_command(command.context_class(command), words[0])
        assert command is not None, argv
        words = words[1:]
    return command.make_context(command.name, words)


def _settings_from(container: Obj, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, entry in _env(container).items():
        monkeypatch.setenv(name, entry.get("value", "from-the-secret"))  # secrets by reference
    return Settings()


def test_drift_job_runs_the_drift_command_with_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "monitoring": {
            "enabled": True,
            "labelMaturitySeconds": 86400,
            "drift": {
                "since": "6h",
                "alpha": 0.02,
                "alertWindows": 4,
                "alertWebhook": "http://alertmanager.monitoring.svc:9093/api/v2/alerts",
                "pushgatewayUrl": "http://pushgateway.monitoring.svc:9091",
            },
        }
    }
    rendered = render(values, "drift")
    cronjob = rendered.one("CronJob", DRIFT)
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"  # one window at a time on the state volume
    assert cronjob["spec"]["schedule"] == "10 * * * *"
    pod = _job_pod(cronjob)
    (container,) = pod["containers"]
    argv = container["command"] + container["args"]
    assert argv[:6] == ["fraudctl", "monitor", "drift", "--since", "6h", "--json"]
    params = _cli_context(argv).params
    assert params["since"] == "6h" and params["as_json"] is True and params["retrain"] is False
    # the verdict and its page go to the object store; the page is written on the writable emptyDir
    assert params["publish"] is True and params["evidently"] is False
    assert str(params["html"]).startswith("/tmp/")

    settings = _settings_from(container, monkeypatch)
    assert settings.home_dir.as_posix() == "/state"
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes[mounts["/state"]]["persistentVolumeClaim"]["claimName"] == f"{RELEASE}-drift-state"
    assert (settings.monitor_alpha, settings.monitor_alert_windows) == (0.02, 4)
    assert settings.monitor_alert_webhook == "http://alertmanager.monitoring.svc:9093/api/v2/alerts"
    assert settings.monitor_pushgateway_url == "http://pushgateway.monitoring.svc:9091"
    assert settings.monitor_label_maturity_seconds == 86400
    assert settings.tracking_uri == f"http://{RELEASE}-mlflow.{NAMESPACE}.svc.cluster.local:5000"
    assert settings.s3_endpoint == f"http://{RELEASE}-minio.{NAMESPACE}.svc.cluster.local:9000"
    assert (settings.model_name, settings.model_alias) == ("fraud-detector", "champion")
    assert settings.monitor_log_bucket == "fraud-monitoring"

    # its egress: MinIO, MLflow, and the Pushgateway's and webhook's ports
    egress = rendered.one("NetworkPolicy", DRIFT)["spec"]["egress"]
    open_ports = {port["port"] for rule in egress for port in rule["ports"]}
    assert open_ports == {9000, 5000, 9091, 9093}


def test_retraining_submits_to_kubeflow_pipelines(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "monitoring": {"enabled": True, "drift": {"evidently": True, "retrain": {"enabled": True, "minFrauds": 20}}}
    }
    rendered = render(values, "retrain")
    (container,) = _job_pod(rendered.one("CronJob", DRIFT))["containers"]
    params = _cli_context(container["command"] + container["args"]).params
    assert params["retrain"] is True and params["evidently"] is True
    assert params["kfp_host"] == "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
    settings = _settings_from(container, monkeypatch)
    assert (settings.monitor_retrain_min_frauds, settings.monitor_retrain_cooldown_hours) == (20, 24)
    egress = rendered.one("NetworkPolicy", DRIFT)["spec"]["egress"]
    assert {"to": [{"namespaceSelector": {}}], "ports": [{"port": 8888, "protocol": "TCP"}]} in egress


def test_report_job_reports_the_previous_utc_day(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = render({"monitoring": {"enabled": True}, "predictor": {"model": {"version": "7"}}}, "report")
    cronjob = rendered.one("CronJob", REPORT)
    assert cronjob["spec"]["timeZone"] == "Etc/UTC"
    (container,) = _job_pod(cronjob)["containers"]
    shell, flag, script = container["command"]
    assert (shell, flag) == ("/bin/sh", "-c")
    words = shlex.split(script)
    assert words[0] == "exec"
    argv = words[1:]
    day = argv.index("--day") + 1
    assert argv[day] == "$(date -u -d yesterday +%F)"  # GNU date in the Debian-based image
    argv[day] = "2026-12-05"
    params = _cli_context(argv).params
    assert params["day"] == "2026-12-05" and params["publish"] is True  # stored in S3 and MLflow
    assert str(params["output"]).startswith("/tmp/")  # the writable emptyDir
    assert params["version"] == "7"  # a pinned predictor is judged against its own version
    drift_args = _job_pod(rendered.one("CronJob", DRIFT))["containers"][0]["args"]
    assert drift_args[drift_args.index("--version") + 1] == "7"
    settings = _settings_from(container, monkeypatch)
    assert settings.data_bucket == "fraud-data"  # where publish_report stores the report
    egress = rendered.one("NetworkPolicy", REPORT)["spec"]["egress"]
    assert {port["port"] for rule in egress for port in rule["ports"]} == {9000, 5000}


def test_job_pods_are_restricted(on: Rendered) -> None:
    for name in (DRIFT, REPORT):
        cronjob = on.one("CronJob", name)
        pod = _job_pod(cronjob)
        assert pod["restartPolicy"] == "Never"
        assert pod["automountServiceAccountToken"] is False
        assert pod["serviceAccountName"] == f"{RELEASE}-monitor"
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (container,) = pod["containers"]
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["allowPrivilegeEscalation"] is False
        assert {"/tmp"} <= {mount["mountPath"] for mount in container["volumeMounts"]}
        assert cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0


def test_job_network_policies_select_the_job_pods(on: Rendered) -> None:
    minio = on.one("Deployment", f"{RELEASE}-minio")
    mlflow = on.one("Deployment", f"{RELEASE}-mlflow")
    collector = on.one("Deployment", COLLECTOR)
    minio_from = on.one("NetworkPolicy", f"{RELEASE}-minio-monitoring")["spec"]["ingress"][0]["from"][0]
    mlflow_policy = on.one("NetworkPolicy", f"{RELEASE}-mlflow-monitoring")["spec"]
    assert _matches(mlflow_policy["podSelector"], _pod_labels(mlflow))
    mlflow_from = mlflow_policy["ingress"][0]["from"][0]
    deny = on.one("NetworkPolicy", f"{RELEASE}-default-deny")["spec"]["podSelector"]
    for name in (DRIFT, REPORT):
        labels = _pod_labels(on.one("CronJob", name))
        assert _matches(deny, labels), f"{name} escapes default deny"
        policy = on.one("NetworkPolicy", name)["spec"]
        assert policy["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in policy  # nothing calls a job
        assert _matches(policy["podSelector"], labels)
        assert not _matches(policy["podSelector"], _pod_labels(collector))
        peers = [peer["podSelector"] for rule in policy["egress"] for peer in rule["to"] if "podSelector" in peer]
        assert any(_matches(peer, _pod_labels(minio)) for peer in peers)
        assert any(_matches(peer, _pod_labels(mlflow)) for peer in peers)
        assert _matches(minio_from["podSelector"], labels) and _matches(mlflow_from["podSelector"], labels)
    assert _matches(minio_from["podSelector"], _pod_labels(collector))
    assert not _matches(mlflow_from["podSelector"], _pod_labels(collector))  # the collector needs no registry


def test_jobs_can_be_turned_off(render_chart: Callable[..., Rendered]) -> None:
    rendered = render_chart(
        {"monitoring": {"enabled": True, "drift": {"enabled": False}, "report": {"enabled": False}}}
    )
    assert rendered.of_kind("CronJob") == []
    names = {obj["metadata"]["name"] for obj in rendered.objects}
    assert not names & {DRIFT, REPORT, f"{RELEASE}-drift-state", f"{RELEASE}-mlflow-monitoring"}
    rendered.one("Deployment", COLLECTOR)


def test_more_peers_may_reach_the_collector(rendered_sets: dict[str, Rendered]) -> None:
    """The `monitoring` value set lets a case-management namespace post labels; the rest stays as it was."""
    rendered = rendered_sets["monitoring"]
    (ingress,) = rendered.one("NetworkPolicy", COLLECTOR)["spec"]["ingress"]
    case_management = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "case-management"}}}
    assert case_management in ingress["from"]
    assert len(ingress["from"]) == 3  # predictor pods, Prometheus, case management
    egress = rendered.one("NetworkPolicy", DRIFT)["spec"]["egress"]
    assert {"to": [{"namespaceSelector": {}}], "ports": [{"port": 9091, "protocol": "TCP"}]} in egress
