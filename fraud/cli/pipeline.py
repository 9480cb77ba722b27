"""`fraudctl pipeline …`: run the training pipeline locally, compile it for a cluster, submit it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fraud.cli.ui import console, err_console
from fraud.features import FEATURE_SETS
from fraud.settings import get_settings
from fraud.split import SplitBoundaries

app = typer.Typer(
    help="Train, evaluate and register the model with the Kubeflow training pipeline.", no_args_is_help=True
)

_DEFAULTS = SplitBoundaries()

SourceOpt = Annotated[
    str,
    typer.Option(help="Data source: generator | PATH | s3://… | https://… | kaggle://ealaxi/paysim1."),
]
RowsOpt = Annotated[int, typer.Option(min=1000, help="Rows to generate (generator source only).")]
SeedOpt = Annotated[int, typer.Option(help="Seed for the generator and the tuner.")]
TrialsOpt = Annotated[int, typer.Option("--trials", min=1, help="Optuna trials.")]
TimeoutOpt = Annotated[float, typer.Option(help="Tuning time limit in seconds (0 = none).")]
FeatureSetOpt = Annotated[str, typer.Option(help=f"Feature set: {' | '.join(FEATURE_SETS)}.")]
FamiliesOpt = Annotated[str, typer.Option(help="Model families to search, comma-separated.")]
ScenarioOpt = Annotated[str, typer.Option(help="Generator scenario preset (see `fraudctl data scenarios`).")]
TrainEndOpt = Annotated[int, typer.Option(help="Last step of the training block.")]
ValidEndOpt = Annotated[int, typer.Option(help="Last step of the validation block; later steps are the test block.")]
BudgetOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of transactions analysts can review.")]
ReviewCostOpt = Annotated[float | None, typer.Option(min=0.0, help="Cost of reviewing one false alert.")]


def _arguments(
    source: str,
    rows: int,
    seed: int,
    trials: int,
    timeout: float,
    feature_set: str,
    families: str,
    scenario: str,
    train_end_step: int,
    valid_end_step: int,
    alert_budget: float,
    review_cost: float | None,
) -> dict[str, Any]:
    if feature_set not in FEATURE_SETS:
        raise typer.BadParameter(f"choose one of {', '.join(FEATURE_SETS)}", param_hint="--feature-set")
    SplitBoundaries(train_end_step, valid_end_step)
    arguments: dict[str, Any] = {
        "source": source,
        "rows": rows,
        "seed": seed,
        "scenario": scenario,
        "feature_set": feature_set,
        "train_end_step": train_end_step,
        "valid_end_step": valid_end_step,
        "n_trials": trials,
        "timeout_s": timeout,
        "families": families,
        "alert_budget": alert_budget,
    }
    if review_cost is not None:
        arguments["review_cost"] = review_cost
    return arguments


@app.command()
def run(
    source: SourceOpt = "generator",
    rows: RowsOpt = 200_000,
    seed: SeedOpt = 7,
    trials: TrialsOpt = 12,
    timeout: TimeoutOpt = 900.0,
    feature_set: FeatureSetOpt = "strict",
    families: FamiliesOpt = "xgboost,hist_gb,logreg",
    scenario: ScenarioOpt = "baseline",
    train_end_step: TrainEndOpt = _DEFAULTS.train_end_step,
    valid_end_step: ValidEndOpt = _DEFAULTS.valid_end_step,
    alert_budget: BudgetOpt = 0.02,
    review_cost: ReviewCostOpt = None,
    logs: Annotated[bool, typer.Option("--logs", help="Stream every step's log output too.")] = False,
) -> None:
    """Run ingest → preprocess → tune → evaluate → register locally (kfp.local) against the local stack."""
    from pipelines.runner import StepEvent, run_local

    arguments = _arguments(
        source,
        rows,
        seed,
        trials,
        timeout,
        feature_set,
        families,
        scenario,
        train_end_step,
        valid_end_step,
        alert_budget,
        review_cost,
    )
    settings = get_settings()
    with err_console.status("starting the pipeline…") as status:

        def on_event(event: StepEvent) -> None:
            if event.state == "started":
                status.update(f"[bold]{event.step}[/] running…")
            elif event.state == "succeeded":
                err_console.print(f"[green]✓[/] {event.step:<11} {event.seconds:6.1f} s")
            else:
                err_console.print(f"[red]✗[/] {event.step:<11} {event.seconds:6.1f} s")

        outcome = run_local(settings, arguments, on_event=on_event, echo=logs)
    _print_summary(outcome)


def _print_summary(outcome: Any) -> None:
    metrics = outcome.metrics
    table = Table(
        title=f"fraud-detector v{outcome.version}  ·  {outcome.model_family}  ·  {outcome.feature_set} features"
    )
    table.add_column("test block metric")
    table.add_column("value", justify="right")
    rows = [
        ("fraud rate", "test_fraud_rate", "{:.3%}"),
        ("average precision", "test_average_precision", "{:.4f}"),
        ("ROC AUC", "test_roc_auc", "{:.4f}"),
        ("recall at 0.1% FPR", "test_recall_at_fpr_0_1pct", "{:.3f}"),
        ("recall at 1% FPR", "test_recall_at_fpr_1pct", "{:.3f}"),
        ("precision at threshold", "test_precision_at_threshold", "{:.3f}"),
        ("recall at threshold", "test_recall_at_threshold", "{:.3f}"),
        ("precision at 2% alert budget", "test_precision_at_budget", "{:.3f}"),
        ("recall at 2% alert budget", "test_recall_at_budget", "{:.3f}"),
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

    path = compile_pipeline(output)
    console.print(f"compiled the training pipeline to [bold]{path}[/]")


@app.command()
def submit(
    host: Annotated[str, typer.Option(help="KFP API endpoint, e.g. http://localhost:8080 after a port-forward.")],
    source: SourceOpt = "generator",
    rows: RowsOpt = 1_000_000,
    seed: SeedOpt = 7,
    trials: TrialsOpt = 20,
    timeout: TimeoutOpt = 1800.0,
    feature_set: FeatureSetOpt = "strict",
    families: FamiliesOpt = "xgboost,hist_gb,logreg",
    scenario: ScenarioOpt = "baseline",
    train_end_step: TrainEndOpt = _DEFAULTS.train_end_step,
    valid_end_step: ValidEndOpt = _DEFAULTS.valid_end_step,
    alert_budget: BudgetOpt = 0.02,
    review_cost: ReviewCostOpt = None,
    experiment: Annotated[str, typer.Option(help="KFP experiment name.")] = "fraud-detection",
) -> None:
    """Compile and submit the pipeline to a Kubeflow Pipelines cluster (needs a reachable cluster)."""
    from pipelines.runner import compile_pipeline
    from pipelines.runner import submit as submit_run

    arguments = _arguments(
        source,
        rows,
        seed,
        trials,
        timeout,
        feature_set,
        families,
        scenario,
        train_end_step,
        valid_end_step,
        alert_budget,
        review_cost,
    )
    package = compile_pipeline(get_settings().home_dir / "build" / "fraud-training.yaml")
    run_id = submit_run(host, package, arguments, experiment)
    console.print(f"submitted: run {run_id} in experiment '{experiment}' on {host}")
