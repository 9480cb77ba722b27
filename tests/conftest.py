"""Shared fixtures: one live local stack (SeaweedFS S3 + MLflow) per test session.

The stack is started the way a user starts it (`LocalStack.up`), on freshly allocated ports and a temporary
FRAUD_HOME, and its settings are exported to the process environment for the session, so code that calls
`get_settings()` and subprocesses (the KFP local runner) see the same store and tracking server. It is always
stopped at the end, whatever happened in between.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fraud.settings import Settings, load_settings, reset_settings
from fraud.stack.local import LocalStack, private_stack_overrides

HOST = "127.0.0.1"

StackSettingsFactory = Callable[[Path], Settings]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the live stack are marked `stack`, so `-m "not stack"` runs without servers."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def make_stack_settings() -> StackSettingsFactory:
    """Settings for an extra, independent stack (own home and ports), for tests that stop and break one."""

    def make(home: Path) -> Settings:
        overrides = private_stack_overrides(home)
        local = f"http://{HOST}"
        return load_settings(
            **overrides,
            mlflow_tracking_uri=f"{local}:{overrides['mlflow_port']}",
            s3_endpoint_url=f"{local}:{overrides['s3_port']}",
        )

    return make


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of the session's running local stack, also exported to ``os.environ`` until the session ends."""
    env = pytest.MonkeyPatch()
    local: LocalStack | None = None
    try:
        for name in list(os.environ):
            if name.startswith("AWS_") or name in {"MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL"}:
                env.delenv(name)
        overrides = private_stack_overrides(tmp_path_factory.mktemp("fraud-home"))
        env.setenv("FRAUD_HOME", str(overrides.pop("home")))
        for name, value in overrides.items():
            env.setenv(f"FRAUD_{name.upper()}", str(value))
        reset_settings()
        local = LocalStack(load_settings())
        local.up()
        settings = load_settings()  # now with the keys `up` generated into FRAUD_HOME
        for name, value in settings.server_env().items():
            env.setenv(name, value)
        reset_settings()
        yield settings
    finally:
        if local is not None:
            local.down()
        env.undo()
        reset_settings()
