"""The training pipeline: ingest → preprocess → tune → evaluate → register.

The same definition runs locally through `kfp.local` (`fraudctl pipeline run`) and on a Kubeflow Pipelines
cluster from its compiled YAML (`fraudctl pipeline compile` / `submit`). Defaults are sized for a laptop-class
machine: a 200k-row generated month and 12 trials finish in a few minutes on 2 cores.
"""

from kfp import dsl

from components.evaluate import evaluate
from components.ingest import ingest
from components.preprocess import preprocess
from components.register import register
from components.tune import tune
from fraud.evaluation.thresholds import DEFAULT_REVIEW_COST
from fraud.split import SplitBoundaries
from pipelines.platform import use_platform_config

PIPELINE_NAME = "fraud-training"
DEFAULT_BOUNDARIES = SplitBoundaries()
STEPS = ("ingest", "preprocess", "tune", "evaluate", "register")


@dsl.pipeline(  # type: ignore[untyped-decorator]
    name=PIPELINE_NAME,
    description="Train, evaluate and register the fraud-detector model on PaySim-schema transactions.",
)
def training_pipeline(
    source: str = "generator",
    rows: int = 200_000,
    seed: int = 7,
    scenario: str = "baseline",
    feature_set: str = "strict",
    train_end_step: int = DEFAULT_BOUNDARIES.train_end_step,
    valid_end_step: int = DEFAULT_BOUNDARIES.valid_end_step,
    n_trials: int = 12,
    timeout_s: float = 900.0,
    families: str = "xgboost,hist_gb,logreg",
    alert_budget: float = 0.02,
    review_cost: float = DEFAULT_REVIEW_COST,
    review_share: float = 0.01,
) -> None:
    landed = ingest(
        source=source,
        rows=rows,
        seed=seed,
        scenario=scenario,
        pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
    ).set_display_name("ingest")
    run_id = landed.outputs["Output"]
    prepared = preprocess(
        raw=landed.outputs["raw"],
        feature_set=feature_set,
        train_end_step=train_end_step,
        valid_end_step=valid_end_step,
        run_id=run_id,
    ).set_display_name("preprocess")
    tuned = tune(
        train=prepared.outputs["train"],
        validation=prepared.outputs["validation"],
        feature_spec=prepared.outputs["feature_spec"],
        n_trials=n_trials,
        timeout_s=timeout_s,
        seed=seed,
        families=families,
        run_id=run_id,
    ).set_display_name("tune")
    evaluated = evaluate(
        model=tuned.outputs["model"],
        feature_spec=prepared.outputs["feature_spec"],
        validation=prepared.outputs["validation"],
        test=prepared.outputs["test"],
        alert_budget=alert_budget,
        review_cost=review_cost,
        review_share=review_share,
        run_id=run_id,
    ).set_display_name("evaluate")
    registered = register(
        model=tuned.outputs["model"],
        feature_spec=prepared.outputs["feature_spec"],
        evaluation=evaluated.outputs["evaluation"],
        test=prepared.outputs["test"],
        run_id=run_id,
    ).set_display_name("register")
    for task in (landed, prepared, tuned, evaluated, registered):
        use_platform_config(task)  # cluster runs read endpoints and keys from the chart's ConfigMap and Secret


if __name__ == "__main__":
    from kfp import compiler

    compiler.Compiler().compile(training_pipeline, "fraud-training.yaml")
