"""KFP component: the Optuna study over XGBoost and scikit-learn families; the best model as a Model artifact."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components.base import project_component


@project_component
def tune(
    train: Input[Dataset],
    validation: Input[Dataset],
    feature_spec: Input[Artifact],
    n_trials: int,
    timeout_s: float,
    seed: int,
    families: str,
    run_id: str,
    model: Output[Model],
    tuning: Output[Metrics],
) -> None:
    from pathlib import Path

    from fraud.jobs import tune as job
    from fraud.jobs.runtime import reporting_failure, start_step
    from fraud.modeling import parse_families
    from fraud.tuning import TuneConfig

    settings = start_step("tune")
    with reporting_failure(settings, "tune", output=Path(model.path), run_id=run_id):
        result = job.run(
            settings,
            train_path=Path(train.path),
            valid_path=Path(validation.path),
            spec_path=Path(feature_spec.path),
            model_dir=Path(model.path),
            config=TuneConfig(
                n_trials=n_trials,
                timeout=timeout_s if timeout_s > 0 else None,
                seed=seed,
                families=parse_families(families),
            ),
            run_id=run_id,
        )
    model.metadata.update({"family": result.family, "validation_average_precision": result.best_value})
    tuning.log_metric("validation_average_precision", result.best_value)
    tuning.log_metric("trials_complete", result.n_complete)
    tuning.log_metric("trials_pruned", result.n_pruned)
