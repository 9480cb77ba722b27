"""How every pipeline step gets its settings on a cluster: one Secret and one ConfigMap, by name.

On Kubeflow Pipelines the steps run in pods that inherit nothing from the submitting machine, so the
endpoints and credentials that ``fraud.settings`` reads from the environment must be injected into each pod.
The Helm chart (``helm/fraud-platform``) creates the two objects below in the KFP namespace; this module is the
one place their names and keys are written down. The chart's ``values.yaml`` defaults to the same names and
``tests/k8s`` checks that they agree, so renaming one without the other fails a test, not a pipeline run.

``kfp.local`` ignores this platform configuration and lets the steps inherit the local environment, so
:func:`use_platform_config` is applied unconditionally: the same pipeline definition runs in both places.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kfp import kubernetes

if TYPE_CHECKING:
    from kfp.dsl import PipelineTask

    from fraud.settings import Settings

PIPELINE_SECRET_NAME = "fraud-pipeline-credentials"  # noqa: S105 - a Secret's name, not its content
"""Secret in the KFP namespace with the object-store key pair (also read by the KFP launcher, see manifests/)."""

PIPELINE_CONFIGMAP_NAME = "fraud-pipeline-config"
"""ConfigMap in the KFP namespace with the non-secret endpoints and names the steps read."""

SECRET_KEYS: tuple[str, ...] = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
"""Keys of the Secret; each becomes the environment variable of the same name (the names ``Settings`` reads)."""

CONFIGMAP_KEYS: tuple[str, ...] = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "FRAUD_DATA_BUCKET",
    "FRAUD_ARTIFACT_BUCKET",
    "FRAUD_PIPELINE_BUCKET",
    "FRAUD_MODEL_NAME",
    "FRAUD_EXPERIMENT_NAME",
)
"""Keys of the ConfigMap; each becomes the environment variable of the same name."""

PIPELINE_ROOT_PREFIX = "pipeline-root"
"""Key prefix under the pipeline bucket where KFP writes the steps' artifacts."""


def use_platform_config(task: PipelineTask) -> PipelineTask:
    """Inject the platform Secret and ConfigMap into one pipeline task as environment variables.

    Args:
        task: a task inside a ``@dsl.pipeline`` function.

    Returns:
        The same task, so the call can be chained like KFP's own task methods.
    """
    kubernetes.use_secret_as_env(task, secret_name=PIPELINE_SECRET_NAME, secret_key_to_env={k: k for k in SECRET_KEYS})
    kubernetes.use_config_map_as_env(
        task, config_map_name=PIPELINE_CONFIGMAP_NAME, config_map_key_to_env={k: k for k in CONFIGMAP_KEYS}
    )
    return task


def pipeline_root(settings: Settings) -> str:
    """Where a cluster run keeps its artifacts: ``s3://<pipeline bucket>/pipeline-root``.

    The bucket lives in the platform's MinIO; the KFP launcher finds the endpoint and the key pair for ``s3://``
    roots in its ``kfp-launcher`` ConfigMap (``manifests/kubeflow-pipelines/``).
    """
    return f"s3://{settings.pipeline_bucket}/{PIPELINE_ROOT_PREFIX}"
