"""KFP component: register the model version, move aliases through the champion gate, close the MLflow run."""

from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Input, Model

from components.base import project_component


@project_component
def register(
    model: Input[Model],
    feature_spec: Input[Artifact],
    evaluation: Input[Artifact],
    test: Input[Dataset],
    run_id: str,
) -> NamedTuple("Registration", [("version", str), ("aliases", str), ("promoted", bool)]):  # type: ignore[valid-type]
    from collections import namedtuple
    from pathlib import Path

    from fraud.jobs import register as job
    from fraud.jobs.runtime import reporting_failure, start_step

    settings = start_step("register")
    # register has no output artifact of its own: its failure record goes beside the evaluation it read
    with reporting_failure(settings, "register", output=Path(evaluation.path), run_id=run_id):
        outcome = job.run(
            settings,
            model_dir=Path(model.path),
            spec_path=Path(feature_spec.path),
            evaluation_dir=Path(evaluation.path),
            test_path=Path(test.path),
            run_id=run_id,
        )
    Registration = namedtuple("Registration", ["version", "aliases", "promoted"])
    return Registration(outcome.version, ",".join(outcome.aliases), outcome.gate.promote)
