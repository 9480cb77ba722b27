"""The training pipeline: ingest → preprocess → tune → evaluate → register.

The same definition runs locally through `kfp.local` (`fraudctl pipeline run`) and on a Kubeflow Pipelines
cluster from its compiled YAML (`fraudctl pipeline compile` / `submit`). Its parameters are `fraud.params.
TrainingParams`, one pipeline parameter per field with the field's default; its outputs name the MLflow run the
steps logged into and the model version registered, so a caller reads the results of *its* run, not of the latest.

The project image every step runs is a setting (``FRAUD_IMAGE``), so the pipeline is built for an image when it is
compiled or run (`build_pipeline`), never when this module is imported.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple, cast, get_type_hints

from kfp import dsl

from components.evaluate import evaluate
from components.ingest import ingest
from components.preprocess import preprocess
from components.register import register
from components.tune import tune
from fraud.params import TrainingParams, pipeline_parameters, with_signature
from pipelines.platform import use_platform_config

PIPELINE_NAME: Final = "fraud-training"
STEPS: Final = ("ingest", "preprocess", "tune", "evaluate", "register")


class Outputs(NamedTuple):
    """What a run returns: the MLflow run id its steps logged into, the version registered, its aliases (comma-
    separated) and whether it became champion."""

    run_id: str
    version: str
    aliases: str
    promoted: bool


def build_pipeline(image: str) -> Any:
    """The ``@dsl.pipeline`` whose every step runs ``image`` (the project image, `fraud.settings.Settings.image`)."""
    # a fresh type per build: KFP rewrites the annotations of the return type it is given
    outputs_type = cast(Any, NamedTuple)("Outputs", list(get_type_hints(Outputs).items()))

    def training(*values: Any) -> Any:
        # KFP calls the pipeline function with one channel per parameter, in the signature's order
        p = dict(zip(TrainingParams.model_fields, values, strict=True))
        landed = ingest(
            source=p["source"],
            rows=p["rows"],
            seed=p["seed"],
            scenario=p["scenario"],
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        ).set_display_name("ingest")
        run_id = landed.outputs["Output"]
        prepared = preprocess(
            raw=landed.outputs["raw"],
            feature_set=p["feature_set"],
            train_end_step=p["train_end_step"],
            valid_end_step=p["valid_end_step"],
            run_id=run_id,
        ).set_display_name("preprocess")
        tuned = tune(
            train=prepared.outputs["train"],
            validation=prepared.outputs["validation"],
            feature_spec=prepared.outputs["feature_spec"],
            n_trials=p["n_trials"],
            timeout_s=p["timeout_s"],
            seed=p["seed"],
            families=p["families"],
            run_id=run_id,
        ).set_display_name("tune")
        evaluated = evaluate(
            model=tuned.outputs["model"],
            feature_spec=prepared.outputs["feature_spec"],
            validation=prepared.outputs["validation"],
            test=prepared.outputs["test"],
            alert_budget=p["alert_budget"],
            review_cost=p["review_cost"],
            review_share=p["review_share"],
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
            task.set_container_image(image)
            use_platform_config(task)  # cluster runs read endpoints and keys from the chart's ConfigMap and Secret
        return outputs_type(
            run_id,
            registered.outputs["version"],
            registered.outputs["aliases"],
            registered.outputs["promoted"],
        )

    with_signature(training, pipeline_parameters(), return_annotation=outputs_type)
    return dsl.pipeline(
        name=PIPELINE_NAME,
        description="Train, evaluate and register the fraud-detector model on PaySim-schema transactions.",
    )(training)


if __name__ == "__main__":
    from kfp import compiler

    from fraud.settings import load_settings

    compiler.Compiler().compile(build_pipeline(load_settings().image), "fraud-training.yaml")
