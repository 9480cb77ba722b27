"""KFP component: land the source data in the store (raw Dataset artifact) and open the MLflow run."""

from kfp.dsl import Dataset, Output

from components.base import project_component


@project_component
def ingest(
    source: str,
    rows: int,
    seed: int,
    scenario: str,
    pipeline_run: str,
    raw: Output[Dataset],
) -> str:
    """Returns the pipeline's MLflow run id, which every later step logs into."""
    from pathlib import Path

    from fraud.jobs import ingest as job
    from fraud.jobs.runtime import reporting_failure, start_step

    settings = start_step("ingest")
    with reporting_failure(settings, "ingest", output=Path(raw.path), run_id=None):
        outcome = job.run(
            settings,
            source=source,
            rows=rows,
            seed=seed,
            scenario=scenario,
            output=Path(raw.path),
            pipeline_run=pipeline_run,
        )
    raw.metadata.update(
        {
            "rows": outcome.manifest.rows,
            "fraud": outcome.manifest.positives,
            "fingerprint": outcome.manifest.fingerprint,
            "store_uri": outcome.manifest.data_uri,
            "already_in_store": outcome.already_present,
        }
    )
    return outcome.run_id
