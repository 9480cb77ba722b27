# syntax=docker/dockerfile:1.7
# The project image: one image for every Kubernetes workload of the platform.
#
#   predictor (default CMD)   python -m serving --model_name fraud-detector --http_port 8080 [--grpc_port 8081]
#                             (the KServe InferenceService sets FRAUD_SERVE_HOST=0.0.0.0 and MLFLOW_TRACKING_URI)
#   pipeline steps            Kubeflow Pipelines runs `python3 -m kfp.dsl.executor_main ...` in it: every component's
#                             base_image is this image (components/base.py, install_kfp_package=False)
#   MLflow tracking server    mlflow server --backend-store-uri ... --artifacts-destination s3://mlflow-artifacts/ ...
#   CLI                       fraudctl ...
#
# Build (make images):  docker build --build-arg BASE_IMAGE=python:3.11-slim -t localhost:5001/fraud-platform:0.1.0 .
# Both stages start from BASE_IMAGE: the virtual environment built in the first is copied into the second and
# links to its interpreter, so the two must be the same Python 3.11 image.

ARG BASE_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------------------------
# builder: resolve nothing, install exactly uv.lock into /opt/venv, bytecode compiled (mlflow's first import takes
# ~20 s without it). uv comes from PyPI at the version the Makefile bootstraps.
# ---------------------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS builder
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1
WORKDIR /src

# Dependencies first, from the lock file alone: this layer is rebuilt only when pyproject.toml or uv.lock change.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-dev --no-install-project --compile-bytecode --python /usr/local/bin/python3

# Then the project itself, installed as a regular (non-editable) package so /opt/venv needs nothing from /src.
COPY pyproject.toml uv.lock README.md ./
COPY fraud ./fraud
COPY components ./components
COPY pipelines ./pipelines
COPY serving ./serving
COPY monitoring ./monitoring
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --compile-bytecode --python /usr/local/bin/python3

# ---------------------------------------------------------------------------------------------------------------
# runtime: the base image plus the virtual environment; no compiler, no uv, no pip cache, no source tree.
# ---------------------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="fraud-platform" \
      org.opencontainers.image.description="Fraud-detection platform: KFP pipeline steps, KServe predictor, MLflow server"

# UID/GID 1000, no login shell, no home of its own: the pods run it with a read-only root filesystem and an
# emptyDir on /tmp, which is where HOME and every cache or scratch directory point.
RUN groupadd --system --gid 1000 fraud \
 && useradd --system --uid 1000 --gid 1000 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin fraud

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    FRAUD_HOME=/tmp/fraud \
    MPLCONFIGDIR=/tmp/matplotlib

USER 1000:1000
WORKDIR /tmp
# 8080: predictor HTTP (8081 gRPC when enabled); 5000: MLflow server.
EXPOSE 8080 5000
CMD ["python", "-m", "serving", "--model_name", "fraud-detector", "--http_port", "8080"]
