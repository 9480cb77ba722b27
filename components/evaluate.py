"""KFP component: thresholds on validation, metrics on test, the HTML model report."""

from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components.base import project_component


@project_component
def evaluate(
    model: Input[Model],
    feature_spec: Input[Artifact],
    validation: Input[Dataset],
    test: Input[Dataset],
    alert_budget: float,
    review_cost: float,
    review_share: float,
    run_id: str,
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[HTML],
) -> None:
    from pathlib import Path

    from fraud.jobs import evaluate as job
    from fraud.jobs.runtime import reporting_failure, start_step

    settings = start_step("evaluate")
    with reporting_failure(settings, "evaluate", output=Path(evaluation.path), run_id=run_id):
        outcome = job.run(
            settings,
            model_dir=Path(model.path),
            spec_path=Path(feature_spec.path),
            valid_path=Path(validation.path),
            test_path=Path(test.path),
            alert_budget=alert_budget,
            review_cost=review_cost,
            review_share=review_share,
            output_dir=Path(evaluation.path),
            report_path=Path(report.path),
            run_id=run_id,
        )
    for name, value in outcome.reports["test"].metrics(prefix="test_").items():
        metrics.log_metric(name, value)
    metrics.log_metric("threshold_block", outcome.thresholds.block)
    metrics.log_metric("threshold_review", outcome.thresholds.review)
    fpr, tpr, cuts = outcome.roc
    classification.log_roc_curve(fpr, tpr, cuts)
    classification.log_confusion_matrix(["legit", "fraud"], outcome.confusion)
