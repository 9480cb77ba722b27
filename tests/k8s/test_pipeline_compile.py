"""The compiled training pipeline carries what a Kubeflow Pipelines cluster needs to run it.

Given the pipeline compiled by `pipelines.runner.compile_pipeline` (what `fraudctl pipeline compile/submit` send),
then every one of the five steps runs the project image, and gets the platform Secret and ConfigMap injected as
environment variables by name (never by value), with the names the Helm chart creates.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fraud.params import TrainingParams
from fraud.settings import Settings, load_settings, reset_settings
from pipelines import platform
from pipelines.runner import compile_pipeline
from pipelines.training import STEPS

from .conftest import yaml_load_all

SENTINEL_KEY = "sentinel-secret-that-must-not-be-compiled"
IMAGE = "registry.test/fraud-platform:compile-check"
"""A non-default project image, set in the environment only while the pipeline is compiled."""


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Compile once, with a recognisable secret in the environment (it must not end up in the YAML)."""
    env = pytest.MonkeyPatch()
    env.setenv("AWS_SECRET_ACCESS_KEY", SENTINEL_KEY)
    env.setenv("AWS_ACCESS_KEY_ID", "sentinel-access-key")
    env.setenv("FRAUD_IMAGE", IMAGE)
    reset_settings()
    try:
        path = compile_pipeline(load_settings(), tmp_path_factory.mktemp("kfp") / "fraud-training.yaml")
    finally:
        env.undo()
        reset_settings()
    text = path.read_text()
    pipeline_spec, platform_spec = yaml_load_all(text)
    return pipeline_spec, platform_spec, text


def test_all_five_steps_are_in_the_dag(compiled: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    pipeline_spec, _, _ = compiled
    assert set(pipeline_spec["root"]["dag"]["tasks"]) == set(STEPS)
    assert set(pipeline_spec["deploymentSpec"]["executors"]) == {f"exec-{step}" for step in STEPS}


def test_every_step_runs_the_image_set_when_compiling(
    compiled: tuple[dict[str, Any], dict[str, Any], str],
) -> None:
    pipeline_spec, _, _ = compiled
    for name, executor in pipeline_spec["deploymentSpec"]["executors"].items():
        container = executor["container"]
        assert container["image"] == IMAGE, name
        # install_kfp_package=False: no pip install at step start, kfp comes from the image
        assert "pip install" not in " ".join(container["command"]), name


def test_every_step_reads_the_platform_secret_and_configmap(
    compiled: tuple[dict[str, Any], dict[str, Any], str],
) -> None:
    _, platform_spec, _ = compiled
    executors = platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == {f"exec-{step}" for step in STEPS}
    for name, config in executors.items():
        (secret,) = config["secretAsEnv"]
        assert secret["secretName"] == platform.PIPELINE_SECRET_NAME, name
        assert {(k["secretKey"], k["envVar"]) for k in secret["keyToEnv"]} == {(k, k) for k in platform.SECRET_KEYS}
        assert secret.get("optional", False) is False, name
        (config_map,) = config["configMapAsEnv"]
        assert config_map["configMapName"] == platform.PIPELINE_CONFIGMAP_NAME, name
        pairs = {(k["configMapKey"], k["envVar"]) for k in config_map["keyToEnv"]}
        assert pairs == {(k, k) for k in platform.CONFIGMAP_KEYS}, name


def test_settings_read_every_injected_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each injected variable is one `fraud.settings` reads, so a step sees the chart's endpoints and keys."""
    injected = {
        key: f"value-of-{key.lower().replace('_', '-')}" for key in (*platform.SECRET_KEYS, *platform.CONFIGMAP_KEYS)
    }
    for key, value in injected.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    read = {
        "AWS_ACCESS_KEY_ID": settings.aws_access_key_id,
        "AWS_SECRET_ACCESS_KEY": settings.s3_credentials()[1],
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "MLFLOW_S3_ENDPOINT_URL": settings.s3_endpoint,
        "AWS_DEFAULT_REGION": settings.aws_region,
        "FRAUD_DATA_BUCKET": settings.data_bucket,
        "FRAUD_ARTIFACT_BUCKET": settings.artifact_bucket,
        "FRAUD_PIPELINE_BUCKET": settings.pipeline_bucket,
        "FRAUD_MODEL_NAME": settings.model_name,
        "FRAUD_EXPERIMENT_NAME": settings.experiment_name,
    }
    assert read == injected


def test_no_credential_is_compiled_into_the_package(compiled: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    _, _, text = compiled
    assert SENTINEL_KEY not in text
    assert "sentinel-access-key" not in text


def test_pipeline_root_is_the_pipeline_bucket() -> None:
    assert platform.pipeline_root(Settings()) == "s3://kfp-artifacts/pipeline-root"
    assert platform.pipeline_root(Settings(pipeline_bucket="other")) == "s3://other/pipeline-root"


def test_kfp_local_ignores_the_platform_config(compiled: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    """The same definition runs through kfp.local: the platform config lives only in the platform spec."""
    pipeline_spec, _, _ = compiled
    for executor in pipeline_spec["deploymentSpec"]["executors"].values():
        assert "env" not in executor["container"] or not any(
            e.get("name", "").startswith("AWS_") for e in executor["container"]["env"]
        )


def test_compiled_package_path(tmp_path: Path) -> None:
    out = compile_pipeline(Settings(), tmp_path / "nested" / "pipeline.yaml")
    assert out.is_file() and out.parent.name == "nested"


def test_pipeline_parameters_are_the_training_parameters(
    compiled: tuple[dict[str, Any], dict[str, Any], str],
) -> None:
    pipeline_spec, _, _ = compiled
    declared = pipeline_spec["root"]["inputDefinitions"]["parameters"]
    assert set(declared) == set(TrainingParams.model_fields)
    defaults = TrainingParams().arguments()
    for name, spec in declared.items():
        assert spec["defaultValue"] == defaults[name], name
    # the run's results come back as pipeline outputs: the MLflow run id and the registered version
    outputs = pipeline_spec["root"]["outputDefinitions"]["parameters"]
    assert {"run_id", "version", "aliases", "promoted"} <= set(outputs)


def test_importing_the_pipeline_reads_no_settings() -> None:
    """With an invalid setting in the environment, importing the pipeline and its components still works: the
    settings (the project image) are read when the pipeline is built, not at import."""
    env = {**os.environ, "FRAUD_S3_PORT": "not-a-port"}
    script = "import components.evaluate, components.ingest, components.tune, pipelines.training, pipelines.runner"
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    check = "from fraud.settings import load_settings; load_settings()"
    failed = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, check=False)
    assert failed.returncode != 0 and "s3_port" in failed.stderr  # the setting is invalid indeed
