"""Lifecycle of the local stack with real processes: idempotent up, stale pid files, busy ports, clean down.

MLflow needs 20–30 s to start, so the lifecycle tests share ONE stack of their own (own home and ports, never
the session's `stack`), and run in file order: the ones that only look come first, the ones that break or
stop it come last. The busy-port checks fail before anything starts, so they cost nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from fraud.errors import PortInUseError, StackError
from fraud.settings import Settings, get_settings
from fraud.stack.credentials import read_credentials
from fraud.stack.local import LocalStack
from fraud.stack.ports import listening_addresses, pick_free_ports, port_is_free
from fraud.stack.process import PidRecord, boot_id, command_line, group_members, is_alive, read_stat
from fraud.stack.seaweedfs import GRPC_OFFSET, SeaweedFS
from fraud.store import ObjectStore, S3Uri

pytestmark = pytest.mark.stack

HOST = "127.0.0.1"


# --- fixtures ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lifecycle(
    tmp_path_factory: pytest.TempPathFactory, make_stack_settings: Callable[[Path], Settings]
) -> Iterator[LocalStack]:
    """A stack of this module's own, brought up once; always taken down at the end."""
    settings = make_stack_settings(tmp_path_factory.mktemp("lifecycle-home"))
    local = LocalStack(settings)
    try:
        local.up()
        yield local
    finally:
        local.down()


@pytest.fixture(scope="module")
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """A live process the stack did not start (stands in for a program that got a recycled pid)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield child
    finally:
        child.kill()
        child.wait()


def all_ports(settings: Settings) -> set[int]:
    http = {
        settings.s3_port,
        settings.seaweed_master_port,
        settings.seaweed_volume_port,
        settings.seaweed_filer_port,
        settings.seaweed_admin_port,
    }
    return http | {port + GRPC_OFFSET for port in http} | {settings.mlflow_port, settings.collector_port}


def stack_pids(local: LocalStack) -> set[int]:
    """Every live process of the stack: each server and the workers in its process group."""
    pids: set[int] = set()
    for pid in local.status().pids.values():
        if pid is not None:
            pids |= set(group_members(pid)) | {pid}
    return pids


def store_for(local: LocalStack) -> ObjectStore:
    credentials = read_credentials(local.settings.credentials_path)
    assert credentials is not None
    return ObjectStore(local.s3_endpoint, credentials.access_key, credentials.secret_key)


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} still alive"
        time.sleep(0.05)


# --- a running stack ---------------------------------------------------------------------------------------
def test_second_up_is_a_no_op(lifecycle: LocalStack) -> None:
    before = lifecycle.status()
    assert before.ok, before
    started = time.monotonic()
    after = lifecycle.up()
    elapsed = time.monotonic() - started
    assert after.ok
    assert after.pids == before.pids
    assert all(before.pids.values())
    assert elapsed < 5, f"an up with everything healthy took {elapsed:.1f} s"


def test_status_names_urls_and_everything_listens_on_loopback_only(lifecycle: LocalStack) -> None:
    settings = lifecycle.settings
    status = lifecycle.status()
    assert status.mlflow_ui == f"http://{HOST}:{settings.mlflow_port}"
    assert status.s3_endpoint == f"http://{HOST}:{settings.s3_port}"
    assert status.service("seaweedfs").url == status.s3_endpoint
    assert status.service("mlflow").url == status.mlflow_ui
    assert all(s.detail == "healthy" and s.log_path.is_file() for s in status.services)
    assert status.home == settings.home_dir
    assert status.as_dict()["ok"] is True

    listening = listening_addresses(stack_pids(lifecycle))
    assert {address for address, _ in listening} == {HOST}, listening
    assert {port for _, port in listening} == all_ports(settings), "a server opened a port we did not assign"


def test_credentials_are_generated_private_and_reused(lifecycle: LocalStack) -> None:
    path = lifecycle.settings.credentials_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_bytes()
    credentials = read_credentials(path)
    assert credentials is not None
    assert len(credentials.secret_key) >= 40 and credentials.secret_key not in repr(credentials)
    lifecycle.up()
    assert path.read_bytes() == first


def test_s3_refuses_wrong_keys_and_anonymous_writes(lifecycle: LocalStack) -> None:
    endpoint, bucket = lifecycle.s3_endpoint, lifecycle.settings.data_bucket
    credentials = read_credentials(lifecycle.settings.credentials_path)
    assert credentials is not None
    path_style = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})

    def refused(client: object, key: str) -> str:
        with pytest.raises(ClientError) as caught:
            client.put_object(Bucket=bucket, Key=key, Body=b"x")  # type: ignore[attr-defined]
        return str(caught.value.response["Error"]["Code"])

    wrong_secret = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key="not-the-secret-0123456789",
        region_name="us-east-1",
        config=path_style,
    )
    unknown_key = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="AKIAUNKNOWN000000000",
        aws_secret_access_key="whatever-0123456789",
        region_name="us-east-1",
        config=path_style,
    )
    anonymous = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=path_style.merge(Config(signature_version=UNSIGNED)),
    )
    assert refused(wrong_secret, "wrong-secret") == "SignatureDoesNotMatch"
    assert refused(unknown_key, "unknown-key") == "InvalidAccessKeyId"
    assert refused(anonymous, "anonymous") == "AccessDenied"
    request = urllib.request.Request(f"{endpoint}/{bucket}/plain-http", data=b"x", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as plain:
        urllib.request.urlopen(request, timeout=5)
    assert plain.value.code == 403

    store = store_for(lifecycle)
    for key in ("wrong-secret", "unknown-key", "anonymous", "plain-http"):
        assert not store.exists(S3Uri(bucket, key))
    for name in lifecycle.settings.buckets:
        assert store.ensure_bucket(name) is False, f"up should have created bucket {name}"


def test_mlflow_artifacts_are_proxied_into_the_s3_store(lifecycle: LocalStack, tmp_path: Path) -> None:
    import mlflow  # imported here: it takes seconds, and only this test needs it

    client = mlflow.MlflowClient(tracking_uri=lifecycle.mlflow_url)
    experiment = client.create_experiment(f"stack-test-{uuid.uuid4().hex[:8]}")
    run = client.create_run(experiment)
    artifact = tmp_path / "hello.txt"
    artifact.write_text("proxied through the tracking server")
    client.log_artifact(run.info.run_id, str(artifact))
    client.set_terminated(run.info.run_id)

    assert run.info.artifact_uri.startswith("mlflow-artifacts:"), "clients must not need S3 keys"
    prefix = S3Uri(lifecycle.settings.artifact_bucket, f"{experiment}/{run.info.run_id}/")
    objects = list(store_for(lifecycle).list(prefix))
    assert [uri.key for uri in objects] == [f"{prefix.key}artifacts/hello.txt"]
    assert store_for(lifecycle).get_bytes(objects[0]) == artifact.read_bytes()


# --- recovery ----------------------------------------------------------------------------------------------
def test_crashed_server_leaves_a_stale_pid_file_that_up_recovers(lifecycle: LocalStack) -> None:
    before = lifecycle.up().pids
    weed = before["seaweedfs"]
    assert weed is not None
    os.kill(weed, signal.SIGKILL)
    wait_gone(weed)
    pid_file = lifecycle.settings.home_dir / "run" / "seaweedfs.pid"
    assert pid_file.exists()
    assert lifecycle.status().service("seaweedfs").detail == "not running (stale pid file)"

    events: list[str] = []
    after = lifecycle.up(on_event=events.append)
    assert after.ok
    assert after.pids["seaweedfs"] not in {None, weed}
    assert after.pids["mlflow"] == before["mlflow"], "a healthy MLflow must not be restarted"
    assert any("stale pid file" in event for event in events), events


def test_pid_reused_by_another_program_is_left_alone(lifecycle: LocalStack, stranger: subprocess.Popen[bytes]) -> None:
    weed = lifecycle.up().pids["seaweedfs"]
    assert weed is not None
    pid_file = lifecycle.settings.home_dir / "run" / "seaweedfs.pid"
    record = PidRecord.from_json(pid_file.read_text())
    os.kill(weed, signal.SIGKILL)
    wait_gone(weed)
    # The crashed server's pid now belongs to another program: same number in the file, different process.
    pid_file.write_text(PidRecord(stranger.pid, record.start_time, record.boot_id, record.command).to_json())

    assert lifecycle.status().service("seaweedfs").pid is None
    after = lifecycle.up()
    assert after.ok
    assert after.pids["seaweedfs"] not in {None, stranger.pid}
    assert stranger.poll() is None, "up signalled a process it did not start"


def test_changed_settings_restart_only_the_server_they_concern(lifecycle: LocalStack) -> None:
    before = lifecycle.up().pids
    (admin_port,) = pick_free_ports(1, HOST, with_grpc_offset=GRPC_OFFSET)
    moved = LocalStack(lifecycle.settings.model_copy(update={"seaweed_admin_port": admin_port}))
    events: list[str] = []
    try:
        after = moved.up(on_event=events.append)
        assert after.ok
        assert after.pids["seaweedfs"] != before["seaweedfs"]
        assert after.pids["mlflow"] == before["mlflow"], "MLflow's configuration did not change"
        assert any("changed since it started" in event for event in events), events
        weed = after.pids["seaweedfs"]
        assert weed is not None and f"-admin.port={admin_port} " in command_line(weed) + " "
    finally:
        assert lifecycle.up().ok  # back to the module's own settings


# --- down --------------------------------------------------------------------------------------------------
def test_down_stops_everything_even_orphaned_workers_and_is_idempotent(lifecycle: LocalStack) -> None:
    settings = lifecycle.settings
    status = lifecycle.up()
    pids = stack_pids(lifecycle)
    mlflow_leader = status.pids["mlflow"]
    assert mlflow_leader is not None and len(pids) >= 3, pids  # weed, mlflow CLI, its uvicorn worker
    # Kill only MLflow's leader: its uvicorn worker lives on, holding the port, with no live pid in any file.
    os.kill(mlflow_leader, signal.SIGKILL)
    wait_gone(mlflow_leader)

    assert sorted(lifecycle.down()) == ["collector", "mlflow", "seaweedfs"]
    for pid in pids:
        wait_gone(pid, timeout=1.0)
    assert [port for port in sorted(all_ports(settings)) if not port_is_free(port, HOST)] == []
    assert list((settings.home_dir / "run").glob("*.pid")) == []
    assert [p for p in SeaweedFS(settings, None).socket_files() if p.exists()] == []

    assert lifecycle.down() == []
    status = lifecycle.status()
    assert not status.ok
    assert {s.detail for s in status.services} == {"not running"}


def test_down_never_signals_a_process_it_did_not_start(
    lifecycle: LocalStack, stranger: subprocess.Popen[bytes]
) -> None:
    lifecycle.down()  # (a no-op after the previous test) so no real pid file gets overwritten below
    run = lifecycle.settings.home_dir / "run"
    stranger_stat = read_stat(stranger.pid)
    assert stranger_stat is not None
    fakes = {
        "seaweedfs": PidRecord(stranger.pid, stranger_stat.start_time + 1, boot_id(), ("weed",)),
        "mlflow": PidRecord(stranger.pid, stranger_stat.start_time, "an-earlier-boot", ("mlflow",)),
    }
    for name, record in fakes.items():
        (run / f"{name}.pid").write_text(record.to_json())

    assert all(not s.running for s in lifecycle.status().services)
    assert lifecycle.down() == []
    assert stranger.poll() is None
    assert list(run.glob("*.pid")) == []


# --- busy ports (nothing starts) ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("which", "setting"),
    [
        ("s3", "FRAUD_S3_PORT"),
        ("filer-grpc", "FRAUD_SEAWEED_FILER_PORT"),
        ("mlflow", "FRAUD_MLFLOW_PORT"),
    ],
)
def test_port_held_by_a_foreign_listener_is_refused_before_anything_starts(
    make_stack_settings: Callable[[Path], Settings], tmp_path: Path, which: str, setting: str
) -> None:
    settings = make_stack_settings(tmp_path / "home")
    port = {
        "s3": settings.s3_port,
        "filer-grpc": settings.seaweed_filer_port + GRPC_OFFSET,
        "mlflow": settings.mlflow_port,
    }[which]
    local = LocalStack(settings)
    with socket.socket() as foreign:
        foreign.bind((HOST, port))
        foreign.listen()
        try:
            with pytest.raises(PortInUseError) as caught:
                local.up()
        finally:
            local.down()
    message = str(caught.value)
    assert caught.value.port == port
    assert f"port {port} " in message and setting in message and f"pid {os.getpid()}" in message
    assert "\n" not in message
    assert list((settings.home_dir / "run").glob("*.pid")) == [], "nothing may start when a port is taken"
    assert all(not s.running for s in local.status().services)


# --- a server that does not come up in time ---------------------------------------------------------------
def test_start_timeout_quotes_the_log_and_leaves_nothing_running(
    make_stack_settings: Callable[[Path], Settings], tmp_path: Path
) -> None:
    settings = make_stack_settings(tmp_path / "home").model_copy(update={"stack_start_timeout": 0.2})
    local = LocalStack(settings)
    try:
        with pytest.raises(StackError) as caught:
            local.up()
    finally:
        local.down()
    message = str(caught.value)
    assert "SeaweedFS S3 did not become healthy within" in message
    assert f"full log: {settings.home_dir / 'logs' / 'seaweedfs.log'}" in message
    assert "FRAUD_STACK_START_TIMEOUT" in message and "\n" not in message
    assert list((settings.home_dir / "run").glob("*.pid")) == []
    assert [port for port in sorted(all_ports(settings)) if not port_is_free(port, HOST)] == []


# --- the session fixture -----------------------------------------------------------------------------------
def test_session_stack_fixture_exports_its_settings(stack: Settings) -> None:
    assert os.environ["FRAUD_HOME"] == str(stack.home_dir)
    assert os.environ["MLFLOW_TRACKING_URI"] == stack.tracking_uri == f"http://{HOST}:{stack.mlflow_port}"
    assert os.environ["MLFLOW_S3_ENDPOINT_URL"] == stack.s3_endpoint == f"http://{HOST}:{stack.s3_port}"
    current = get_settings()
    assert current.s3_credentials() == stack.s3_credentials()
    assert current.s3_port == stack.s3_port and current.mlflow_port == stack.mlflow_port
    assert ObjectStore.from_settings(current).ensure_bucket(stack.data_bucket) is False
    assert LocalStack(current).status().ok
