"""Pipeline step 1: land the source data in the store and open the pipeline's MLflow run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import mlflow

from fraud.data.ingest import DatasetManifest, ingest
from fraud.registry import connect, experiment_id
from fraud.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestOutcome:
    manifest: DatasetManifest
    already_present: bool
    run_id: str


def source_string(source: str, rows: int, seed: int, scenario: str) -> str:
    """The generator takes its size, seed and scenario from the pipeline's parameters; other sources as given."""
    if source.strip() != "generator":
        return source
    return "generator://?" + urlencode({"rows": rows, "seed": seed, "scenario": scenario})


def run(
    settings: Settings,
    *,
    source: str,
    rows: int,
    seed: int,
    scenario: str,
    output: Path,
    pipeline_run: str,
) -> IngestOutcome:
    """Validate and store the data, keep a copy as the step's Dataset artifact, start the MLflow run."""
    resolved = source_string(source, rows, seed, scenario)
    result = ingest(resolved, settings, output=output)
    manifest = result.manifest
    log.info("ingested %d rows (%d fraud) from %s", manifest.rows, manifest.positives, resolved)
    client = connect(settings)
    run = client.create_run(
        experiment_id(settings),
        run_name=pipeline_run,
        tags={
            "pipeline": "fraud-training",
            "pipeline_run": pipeline_run,
            "data_fingerprint": manifest.fingerprint,
            "data_uri": manifest.data_uri,
            "mlflow.source.name": "pipelines/training.py",
        },
    )
    run_id = run.info.run_id
    with mlflow.start_run(run_id=run_id):
        mlflow.log_params({"source": resolved, "rows": manifest.rows, "seed": seed, "scenario": scenario})
        mlflow.log_metrics({"data_rows": manifest.rows, "data_fraud": manifest.positives})
        mlflow.log_dict(manifest.model_dump(), "data/manifest.json")
    return IngestOutcome(manifest, result.already_present, run_id)
