"""`fraudctl pipeline …`: run the training pipeline locally, compile it for a cluster, submit it.

The training options of `run` and `submit` are not written here: they are `fraud.params.TrainingParams`' fields
(flag, type, default, range and help), so they always match the pipeline's parameters.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fraud.cli.ui import console, err_console
from fraud.errors import ConfigError
from fraud.params import CLUSTER_DEFAULTS, LOCAL_DEFAULTS, TrainingParams, cli_parameters, flag, with_signature
from fraud.settings import get_settings

app = typer.Typer(
    help="Train, evaluate and register the model with the Kubeflow training pipeline.", no_args_is_help=True
)


def _params(values: dict[str, Any]) -> TrainingParams:
    """The options as training parameters; an invalid combination is a usage error naming the option."""
    try:
        return TrainingParams.parse(values)
    except ConfigError as exc:
        names = [name for name in TrainingParams.model_fields if name in str(exc)]
        hint = flag(names[0], TrainingParams.model_fields[names[0]]) if names else None
        raise typer.BadParameter(str(exc), param_hint=hint) from None


def run(logs: bool, **values: Any) -> None:
    """Run ingest → preprocess → tune → evaluate → register locally (kfp.local) against the local stack."""
    from pipelines.runner import StepEvent, run_local

    params = _params(values)
    settings = get_settings()
    with err_console.status("starting the pipeline…") as status:

        def on_event(event: StepEvent) -> None:
            if event.state == "started":
                status.update(f"[bold]{event.step}[/] running…")
            elif event.state == "progress":
                err_console.print(f"  [dim]{event.step}: {event.detail}[/]", highlight=False)
                status.update(f"[bold]{event.step}[/] running… {event.seconds:.0f} s, last: {event.detail}")
            elif event.state == "succeeded":
                err_console.print(f"[green]✓[/] {event.step:<11} {event.seconds:6.1f} s")
            else:
                err_console.print(f"[red]✗[/] {event.step:<11} {event.seconds:6.1f} s")

        outcome = run_local(settings, params, on_event=on_event, echo=logs)
    _print_summary(outcome)


_LOGS = inspect.Parameter(
    "logs",
    inspect.Parameter.KEYWORD_ONLY,
    default=False,
    annotation=Annotated[bool, typer.Option("--logs", help="Stream every step's log output too.")],
)
app.command("run")(with_signature(run, [*cli_parameters(LOCAL_DEFAULTS, typer.Option), _LOGS]))


def _print_summary(outcome: Any) -> None:
    metrics = outcome.metrics
    table = Table(
        title=f"fraud-detector v{outcome.version}  ·  {outcome.model_family}  ·  {outcome.feature_set} features"
    )
    table.add_column("test block metric")
    table.add_column("value", justify="right")
    budget = metrics.get("test_alert_budget")
    budget_text = f"{budget:.0%}" if budget is not None else "the"
    rows = [
        ("fraud rate", "test_fraud_rate", "{:.3%}"),
        ("average precision", "test_average_precision", "{:.4f}"),
        ("ROC AUC", "test_roc_auc", "{:.4f}"),
        ("recall at 0.1% FPR", "test_recall_at_fpr_0_1pct", "{:.3f}"),
        ("recall at 1% FPR", "test_recall_at_fpr_1pct", "{:.3f}"),
        ("precision at threshold", "test_precision_at_threshold", "{:.3f}"),
        ("recall at threshold", "test_recall_at_threshold", "{:.3f}"),
        (f"precision at {budget_text} alert budget", "test_precision_at_budget", "{:.3f}"),
        (f"recall at {budget_text} alert budget", "test_recall_at_budget", "{:.3f}"),
        ("expected cost (vs no model)", "test_expected_cost", "{:,.0f}"),
    ]
    for label, key, fmt in rows:
        if key in metrics:
            value = fmt.format(metrics[key])
            if key == "test_expected_cost" and "test_baseline_cost" in metrics:
                value += f"  (vs {metrics['test_baseline_cost']:,.0f})"
            table.add_row(label, value)
    console.print(table)
    state = "[green]champion[/]" if "champion" in outcome.aliases else "[yellow]challenger only[/]"
    console.print(
        f"registered [bold]fraud-detector v{outcome.version}[/] → aliases: {', '.join(outcome.aliases)} ({state})"
    )
    console.print(f"  gate: {outcome.gate_reason}")
    for note in outcome.notes:
        console.print(f"  [yellow]note:[/] {note}")
    console.print(f"  MLflow run:   {outcome.run_url}", soft_wrap=True)
    console.print(f"  model:        {outcome.model_url}", soft_wrap=True)
    console.print("  step times:   " + ", ".join(f"{k} {v:.0f}s" for k, v in outcome.durations.items()))
    console.print(f"  full log:     {outcome.log_path}", soft_wrap=True)


@app.command("compile")
def compile_(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the pipeline YAML.")] = Path(
        "build/fraud-training.yaml"
    ),
) -> None:
    """Compile the pipeline to the YAML a Kubeflow Pipelines cluster takes (upload it in the KFP UI or submit)."""
    from pipelines.runner import compile_pipeline

    path = compile_pipeline(get_settings(), output)
    console.print(f"compiled the training pipeline to [bold]{path}[/]")


def submit(host: str, experiment: str, **values: Any) -> None:
    """Compile and submit the pipeline to a Kubeflow Pipelines cluster (needs a reachable cluster)."""
    from pipelines.runner import compile_pipeline
    from pipelines.runner import submit as submit_run

    params = _params(values)
    settings = get_settings()
    package = compile_pipeline(settings, settings.home_dir / "build" / "fraud-training.yaml")
    run_id = submit_run(settings, host, package, params, experiment)
    console.print(f"submitted: run {run_id} in experiment '{experiment}' on {host}")


_HOST = inspect.Parameter(
    "host",
    inspect.Parameter.KEYWORD_ONLY,
    annotation=Annotated[str, typer.Option(help="KFP API endpoint, e.g. http://localhost:8080 after a port-forward.")],
)
_EXPERIMENT = inspect.Parameter(
    "experiment",
    inspect.Parameter.KEYWORD_ONLY,
    default="fraud-detection",
    annotation=Annotated[str, typer.Option(help="KFP experiment name.")],
)
app.command("submit")(with_signature(submit, [_HOST, *cli_parameters(CLUSTER_DEFAULTS, typer.Option), _EXPERIMENT]))
