"""`fraudctl canary …`: roll a new model version out behind the champion, judged on live traffic.

A thin shell over `serving.canary.local` (this machine) and `serving.canary.cluster` (an InferenceService).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from fraud.cli.ui import console, err_console
from fraud.errors import FraudError
from fraud.settings import get_settings, reset_settings

app = typer.Typer(
    help="Roll out a new model version: shadow, weighted steps, automatic promotion or rollback.",
    no_args_is_help=True,
)

EPILOG = """Examples:

  fraudctl canary start --alias challenger --min-requests 500 --min-seconds 20

  fraudctl replay --endpoint http://127.0.0.1:8180 --scenario baseline --rate 100 --duration 120

  fraudctl canary status --json;  fraudctl canary report --output report.html
"""


NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        help="Act on the cluster rollout of an InferenceService in this namespace (with --inference-service; "
        "kubeconfig from KUBECONFIG, or in-cluster, as `canary controller`).",
    ),
]
InferenceServiceOption = Annotated[
    str | None,
    typer.Option(
        "--inference-service", help="The InferenceService whose cluster rollout to act on (with --namespace)."
    ),
]


def _runtime(namespace: str | None = None, inference_service: str | None = None) -> Any:
    """This machine's rollout, or with both cluster options the InferenceService's (`ClusterRuntime`)."""
    if namespace is None and inference_service is None:
        from serving.canary.local import LocalRuntime

        return LocalRuntime(get_settings())
    if namespace is None or inference_service is None:
        raise typer.BadParameter(
            "give --namespace and --inference-service together (a cluster rollout), or neither (this machine's)"
        )
    from serving.canary.cluster import ClusterRuntime

    return ClusterRuntime(get_settings(), namespace, inference_service)


def _no_rollout(namespace: str | None) -> str:
    if namespace is not None:
        return "no rollout on that InferenceService: its controller starts one when a spec.canary entry is added"
    return "no rollout has been started here: `fraudctl canary start`"


def _ensure_stack() -> None:
    from fraud.stack.local import LocalStack

    stack = LocalStack(get_settings())
    current = stack.status()
    if current.ok:
        return
    try:
        with err_console.status("starting the local stack…") as spinner:
            status = stack.up(on_event=spinner.update)
    except FraudError as exc:
        needed = [service for service in current.services if service.name in {"seaweedfs", "mlflow"}]
        if needed and all(service.healthy for service in needed):  # the registry and the store are what it needs
            err_console.print(f"[yellow]warning:[/] the stack is not complete ({exc}); going on without the rest")
            return
        raise
    reset_settings()
    if not status.ok:
        err_console.print("[red]the local stack did not come up[/]: see `fraudctl status`")
        raise typer.Exit(1)


@app.command(epilog=EPILOG)
def start(
    version: Annotated[str | None, typer.Option(help="Registry version to roll out.")] = None,
    alias: Annotated[
        str | None, typer.Option(help="Roll out the version this alias points at (default: challenger).")
    ] = None,
    steps: Annotated[
        str | None,
        typer.Option(help="Challenger weights in percent, comma-separated; 100 = promotion (FRAUD_CANARY_STEPS)."),
    ] = None,
    shadow: Annotated[
        bool | None, typer.Option("--shadow/--no-shadow", help="Begin with a shadow phase (FRAUD_CANARY_SHADOW).")
    ] = None,
    min_requests: Annotated[
        int | None, typer.Option(min=0, help="Requests each phase/step needs (FRAUD_CANARY_MIN_REQUESTS).")
    ] = None,
    min_seconds: Annotated[
        float | None, typer.Option(min=0, help="Seconds each phase/step lasts at least (FRAUD_CANARY_MIN_SECONDS).")
    ] = None,
    champion_version: Annotated[
        str | None,
        typer.Option(
            help="Compare against this version instead of the champion alias (e.g. when the training pipeline's "
            "offline gate already moved the alias to the new version)."
        ),
    ] = None,
) -> None:
    """Start the champion and the challenger, the splitter in front of them and the rollout; returns once it runs."""
    from serving.canary.local import parse_steps, resolve_versions, spec_from_settings, start_rollout

    if version is not None and alias is not None:
        raise typer.BadParameter("give --version or --alias, not both")
    _ensure_stack()
    settings = get_settings()
    champion, challenger = resolve_versions(settings, version, alias, champion_version)
    spec = spec_from_settings(
        settings,
        champion,
        challenger,
        steps=None if steps is None else parse_steps(steps),
        shadow=shadow,
        min_requests=min_requests,
        min_seconds=min_seconds,
    )
    runtime = _runtime()
    with err_console.status("starting the rollout…") as spinner:
        started = start_rollout(runtime, spec, spinner.update)
    console.print(
        f"rolling out [bold]v{challenger}[/] against champion v{champion}: {started.state.phase} at "
        f"{started.state.weight} %, steps {','.join(map(str, spec.steps))}"
        f"{' after shadow' if spec.shadow else ''}, each ≥ {spec.min_requests:,} requests and ≥ {spec.min_seconds:g} s"
    )
    console.print(f"endpoint:  [bold]{started.endpoint}[/]  (same V1/V2 routes as the predictor)")
    console.print(
        "follow it: fraudctl canary status   ·   send traffic: fraudctl replay --endpoint " + started.endpoint
    )


def _status(runtime: Any, *, cluster: bool = False) -> dict[str, Any] | None:
    if cluster:  # `ClusterRuntime.status`: the same keys, from the InferenceService
        status: dict[str, Any] | None = runtime.status()
        return status
    state = runtime.load_state()
    if state is None:
        return None
    summary: dict[str, Any] = state.summary()
    route = runtime.current_route()
    summary["endpoint"] = runtime.endpoint
    summary["controller_pid"] = runtime.controller_process.running_pid()
    summary["pending_action"] = None if state.pending_action is None else state.pending_action.to_dict()
    summary["routing"] = None if route is None else route.to_json()
    summary["check_details"] = state.checks
    return summary


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    namespace: NamespaceOption = None,
    inference_service: InferenceServiceOption = None,
) -> None:
    """Phase, weight, versions, the last verdict of each check, and why it stopped (if it did)."""
    summary = _status(_runtime(namespace, inference_service), cluster=namespace is not None)
    if summary is None:
        err_console.print(_no_rollout(namespace))
        raise typer.Exit(1)
    if as_json:
        console.print_json(json.dumps({k: v for k, v in summary.items() if k != "check_details"}))
        return
    if namespace is not None:
        running = f"cluster controller of {namespace}/{inference_service}"
    elif summary["controller_pid"]:
        running = f"controller pid {summary['controller_pid']}"
    else:
        running = "controller not running"
    console.print(
        f"[bold]{summary['phase']}[/] at {summary['weight']} %: v{summary['challenger_version']} against champion "
        f"v{summary['champion_version']} ({running}); endpoint {summary['endpoint']}"
    )
    if summary["reason"]:
        console.print(f"reason: {summary['reason']}", highlight=False)
    console.print(checks_table(summary["check_details"]))
    console.print(checks_reasons(summary["check_details"]))


def checks_table(checks: dict[str, dict[str, Any]]) -> Table:
    """Each check's verdict, statistic, interval and sample, narrow enough for an 80-column log (reasons apart)."""
    table = Table(
        "check", "status", "statistic", "interval", "n", box=box.SIMPLE_HEAD, caption="n: challenger / champion"
    )
    for name, check in checks.items():
        colour = {"pass": "green", "fail": "red"}.get(check["status"], "yellow")
        statistic = check.get("statistic")
        interval = check.get("interval")
        sample = check.get("sample_size") or {}
        table.add_row(
            name,
            f"[{colour}]{check['status']}[/]",
            "–" if statistic is None else f"{statistic:.3g}",
            "–" if not interval else f"[{_num(interval[0])}, {_num(interval[1], '∞')}]",
            f"{sample.get('challenger', 0):,} / {sample.get('champion', 0):,}",
        )
    return table


def checks_reasons(checks: dict[str, dict[str, Any]]) -> Table:
    """Why each check says what it says: one entry per check, long reasons wrapped under themselves."""
    reasons = Table.grid(padding=(0, 1))
    reasons.add_column(no_wrap=True, style="bold")
    reasons.add_column(overflow="fold")
    for name, check in checks.items():
        reasons.add_row(f"{name}:", check.get("reason", ""))
    return reasons


def _num(value: float | None, missing: str = "–") -> str:
    """A figure in three digits; `missing` for none (an unbounded interval end is written as none)."""
    return missing if value is None else f"{value:.3g}"


def _manual(command: str, namespace: str | None = None, inference_service: str | None = None) -> None:
    runtime = _runtime(namespace, inference_service)
    state = runtime.command(command)
    console.print(f"{command}: rollout now [bold]{state.phase}[/] at {state.weight} %")
    if state.terminal and namespace is None:
        console.print("stop the controller and write the report: it does so within one interval")
    elif state.terminal:
        where = runtime.report_locations() or {}
        console.print(f"report: {where.get('object_store') or 'not written yet (the controller retries each look)'}")


@app.command()
def wait(
    timeout: Annotated[float, typer.Option(min=0, help="Give up after this many seconds (exit code 2).")] = 600.0,
) -> None:
    """Wait until the rollout is promoted or rolled back, showing its progress; exit 0 when promoted, 1 if not."""
    runtime = _runtime()
    deadline = time.monotonic() + timeout
    last = None
    with err_console.status("waiting for the rollout…") as spinner:
        while True:
            state = runtime.load_state()
            if state is None:
                err_console.print("no rollout has been started here: `fraudctl canary start`")
                raise typer.Exit(1)
            now = (state.phase, state.weight)
            if now != last:
                err_console.print(f"  {state.phase} at {state.weight} %", highlight=False)
                last = now
            spinner.update(f"{state.phase} at {state.weight} %: {state.step_requests:,} requests in this step")
            if state.settled:  # promoted or rolled back, and registry and routing already say so
                break
            if time.monotonic() > deadline:
                err_console.print(f"[yellow]still {state.phase} after {timeout:g} s[/]: see `fraudctl canary status`")
                raise typer.Exit(2)
            time.sleep(1.0)
    colour = "green" if str(state.phase) == "promoted" else "red"
    console.print(f"[{colour}]{state.phase}[/]: {state.reason}", highlight=False)
    if str(state.phase) != "promoted":
        raise typer.Exit(1)


@app.command()
def promote(namespace: NamespaceOption = None, inference_service: InferenceServiceOption = None) -> None:
    """Promote the challenger now: champion alias → its version, previous → the old champion, all traffic to it."""
    _manual("promote", namespace, inference_service)


@app.command()
def rollback(namespace: NamespaceOption = None, inference_service: InferenceServiceOption = None) -> None:
    """Roll back now: all traffic to the champion, the challenger tagged with the reason; nothing deleted."""
    _manual("rollback", namespace, inference_service)


@app.command()
def pause(namespace: NamespaceOption = None, inference_service: InferenceServiceOption = None) -> None:
    """Hold the current weight (evidence keeps accruing; a failing check still rolls back)."""
    _manual("pause", namespace, inference_service)


@app.command()
def resume(namespace: NamespaceOption = None, inference_service: InferenceServiceOption = None) -> None:
    """Continue a paused rollout."""
    _manual("resume", namespace, inference_service)


@app.command()
def report(
    output: Annotated[Path | None, typer.Option(help="Also copy the HTML report here.")] = None,
    wait: Annotated[float, typer.Option(min=0, help="Seconds to wait for a finished rollout's report.")] = 30.0,
    namespace: NamespaceOption = None,
    inference_service: InferenceServiceOption = None,
) -> None:
    """Write (or find) the rollout's evidence report and print where it is: local, object store, MLflow run."""
    from serving.canary.report import REPORT_HTML

    runtime = _runtime(namespace, inference_service)
    state = runtime.load_state()
    if state is None:
        err_console.print(_no_rollout(namespace))
        raise typer.Exit(1)
    if namespace is not None:
        _cluster_report(runtime, state, output)
        return
    locations_file = runtime.paths.report_dir / "locations.json"
    deadline = time.monotonic() + wait
    while state.terminal and not locations_file.is_file() and time.monotonic() < deadline:
        time.sleep(0.5)  # the controller writes the report as it stops
    if state.terminal and locations_file.is_file():
        where = json.loads(locations_file.read_text())
    else:
        where = runtime.publish_report(state).to_json()
    if output is not None:
        output.write_bytes((runtime.paths.report_dir / REPORT_HTML).read_bytes())
        where["output"] = str(output)
    for key, value in where.items():
        if value:
            console.print(f"{key:>13}: {value}")


def _cluster_report(runtime: Any, state: Any, output: Path | None) -> None:
    """An ended rollout's report as published (or published now if it is missing); a running one's report so far."""
    from fraud.store import ObjectStore, S3Uri
    from serving.canary.cluster import endpoint_of
    from serving.canary.report import REPORT_HTML

    if state.terminal:
        where = runtime.ensure_report(state)
        if where is None:
            err_console.print("[red]the report could not be written[/]: see the messages above, then try again")
            raise typer.Exit(1)
    else:
        where = runtime.publish_report(state, endpoint_of(runtime.get())).to_json()
    if output is not None:
        local = Path(where["local"]) / REPORT_HTML
        if local.is_file():
            output.write_bytes(local.read_bytes())
        elif where.get("object_store"):
            store = ObjectStore.from_settings(get_settings())
            output.write_bytes(store.get_bytes(S3Uri.parse(where["object_store"]).child(REPORT_HTML)))
        where["output"] = str(output)
    for key, value in where.items():
        if value:
            console.print(f"{key:>13}: {value}")


@app.command()
def controller(
    namespace: Annotated[str, typer.Option(help="Namespace of the InferenceService.")],
    inference_service: Annotated[str, typer.Option(help="InferenceService whose spec.canary is rolled out.")],
    interval: Annotated[
        float | None, typer.Option(min=0.1, help="Seconds between looks (FRAUD_CANARY_INTERVAL_SECONDS).")
    ] = None,
    metrics_port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the predictors' Services.")] = 80,
    steps: Annotated[
        str | None,
        typer.Option(help="Challenger weights in percent, comma-separated; 100 = promotion (FRAUD_CANARY_STEPS)."),
    ] = None,
    min_requests: Annotated[
        int | None, typer.Option(min=0, help="Requests each step needs (FRAUD_CANARY_MIN_REQUESTS).")
    ] = None,
    min_seconds: Annotated[
        float | None, typer.Option(min=0, help="Seconds each step lasts at least (FRAUD_CANARY_MIN_SECONDS).")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Look once and exit (cron-style or debugging).")] = False,
) -> None:
    """Cluster controller: roll an InferenceService's canary out (weights, promotion, rollback) until stopped.

    Needs only get/patch on that InferenceService; the rollout state is kept in its annotation
    fraud.platform/rollout-state. Steps and minimums come from the options, else (like the tolerances) from the
    FRAUD_CANARY_* settings.
    """
    import logging

    from serving.canary.cluster import ClusterRuntime, run_cluster_controller
    from serving.canary.local import analysis_from_settings, parse_steps

    logging.getLogger().setLevel(logging.INFO)
    settings = get_settings()
    overrides = {
        "steps": parse_steps(steps if steps is not None else settings.canary_steps),
        "min_requests": settings.canary_min_requests if min_requests is None else min_requests,
        "min_seconds": settings.canary_min_seconds if min_seconds is None else min_seconds,
        "max_inconclusive_seconds": settings.canary_max_inconclusive_seconds,
        "label_gate": settings.canary_label_gate,
        "analysis": analysis_from_settings(settings),
    }
    runtime = ClusterRuntime(settings, namespace, inference_service, metrics_port=metrics_port)
    state = run_cluster_controller(runtime, overrides, interval=interval or settings.canary_interval_seconds, once=once)
    if state is not None:
        console.print_json(json.dumps(state.summary()))


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="canary")
