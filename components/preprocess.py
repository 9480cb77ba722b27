"""KFP component: clean, split forward in time, fit the feature spec, build features."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components.base import project_component


@project_component
def preprocess(
    raw: Input[Dataset],
    feature_set: str,
    train_end_step: int,
    valid_end_step: int,
    run_id: str,
    train: Output[Dataset],
    validation: Output[Dataset],
    test: Output[Dataset],
    feature_spec: Output[Artifact],
    split_stats: Output[Metrics],
) -> None:
    from pathlib import Path

    from fraud.jobs import preprocess as job
    from fraud.jobs.runtime import reporting_failure, start_step
    from fraud.split import SplitBoundaries

    settings = start_step("preprocess")
    with reporting_failure(settings, "preprocess", output=Path(feature_spec.path), run_id=run_id):
        metrics = job.run(
            settings,
            raw_path=Path(raw.path),
            feature_set=feature_set,  # type: ignore[arg-type]
            boundaries=SplitBoundaries(train_end_step, valid_end_step),
            outputs={"train": Path(train.path), "validation": Path(validation.path), "test": Path(test.path)},
            spec_path=Path(feature_spec.path),
            run_id=run_id,
        )
    for name, value in metrics.items():
        split_stats.log_metric(name, value)
    for block, artifact in (("train", train), ("validation", validation), ("test", test)):
        artifact.metadata.update({"rows": metrics[f"{block}_rows"], "fraud": metrics[f"{block}_fraud"]})
    feature_spec.metadata["feature_set"] = feature_set
