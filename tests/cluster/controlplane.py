"""A real Kubernetes control plane on 127.0.0.1, started from the binaries `hack/k8s/build.sh` builds.

etcd, kube-apiserver (RBAC and admission on, Pod Security admission active as in every API server),
kube-controller-manager, kube-scheduler and kwok (fake nodes: Node and Pod status without a kubelet or containers)
run as child processes on ports allocated here, with a throwaway PKI: a cluster CA, the API server's serving
certificate, one client certificate per component, and the ServiceAccount token signing key. Each component gets
its own kubeconfig, so RBAC sees the controller manager and the scheduler as themselves, not as admins.

Nothing here is a stand-in for the API server: it is the upstream server, built from the published Go modules.
What is faked is the node: kwok marks nodes Ready and pods Running, and no container ever runs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fraud.stack.ports import pick_free_ports

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "hack" / "k8s" / "build.sh"
HOST = "127.0.0.1"
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
START_TIMEOUT_S = 90.0


class ControlPlaneError(RuntimeError):
    """A component did not start; the message names it and ends with the tail of its log."""


def build_root() -> Path:
    """The cache directory `hack/k8s/build.sh` builds into for the pinned versions (bin/, crds/, kwok/)."""
    out = subprocess.run(["bash", str(BUILD_SCRIPT), "--print-dir"], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def build_complete() -> bool:
    """True when every binary, the CRDs and the kwok stages are built (nothing is built here)."""
    done = subprocess.run(["bash", str(BUILD_SCRIPT), "--check"], check=False, capture_output=True)
    return done.returncode == 0


# --- PKI ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _write_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


class Pki:
    """A throwaway cluster CA and the certificates signed by it (valid for a day: one test session)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fraud-platform-test-ca")])
        now = dt.datetime.now(dt.UTC)
        self._ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca = directory / "ca.crt"
        self.ca.write_bytes(self._ca_cert.public_bytes(serialization.Encoding.PEM))
        _write_key(self._ca_key, directory / "ca.key")
        self.ca_key = directory / "ca.key"

    @property
    def ca_pem(self) -> bytes:
        return self._ca_cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        name: str,
        common_name: str,
        *,
        organizations: Sequence[str] = (),
        server_ips: Sequence[str] = (),
        server_dns: Sequence[str] = (),
    ) -> KeyPair:
        """A key and certificate: a server certificate when given IPs/DNS names, else a client certificate."""
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
        now = dt.datetime.now(dt.UTC)
        server = bool(server_ips or server_dns)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(self._ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        )
        if server:
            alt_names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
            alt_names += [x509.DNSName(dns) for dns in server_dns]
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        cert = builder.sign(self._ca_key, hashes.SHA256())
        pair = KeyPair(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, pair.key)
        return pair

    def service_account_keys(self) -> tuple[Path, Path]:
        """The RSA pair the API server signs ServiceAccount tokens with (private) and verifies them with (public)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private, public = self.directory / "sa.key", self.directory / "sa.pub"
        _write_key(key, private)
        public.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        return private, public


def write_kubeconfig(path: Path, server: str, ca: Path, client: KeyPair, user: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(client.cert), "client-key": str(client.key)}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": user}}],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


# --- processes ------------------------------------------------------------------------------------------------------


@dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


def _dying_with_the_tests(argv: Sequence[str]) -> list[str]:
    """``argv`` under util-linux's setpriv, which asks Linux to send it SIGTERM when the test process dies, however it
    dies (a pytest killed by a timeout otherwise leaves a whole control plane running, holding CPU and ports).
    setpriv execs the command, so the pid stays the component's."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else list(argv)


def start_process(name: str, argv: Sequence[str], workdir: Path, env: dict[str, str] | None = None) -> Component:
    """Start one component with its output in ``<workdir>/<name>.log``; it dies with the test process."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            _dying_with_the_tests(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    return Component(name, process, log)


def wait_https_ok(
    component: Component, url: str, *, ca: Path | None, client: KeyPair | None, timeout: float = START_TIMEOUT_S
) -> None:
    """Poll ``url`` until it answers 200; fail early, with the component's log, if the process exits."""
    context = ssl.create_default_context(cafile=str(ca)) if ca else ssl.create_default_context()
    if ca is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if component.process.poll() is not None:
            raise ControlPlaneError(
                f"{component.name} exited with code {component.process.returncode} before {url} answered:\n"
                f"{component.tail()}"
            )
        try:
            opener = (
                urllib.request.urlopen(url, timeout=5, context=context)
                if url.startswith("https")
                else urllib.request.urlopen(url, timeout=5)
            )
            with opener as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.25)
    raise ControlPlaneError(
        f"{component.name}: {url} did not answer 200 in {timeout:.0f} s ({last}):\n{component.tail()}"
    )


@dataclass
class ControlPlane:
    """The running control plane: its address, the admin kubeconfig and each component's process and log."""

    workdir: Path
    root: Path
    pki: Pki
    apiserver_port: int
    admin_kubeconfig: Path
    admin: KeyPair
    components: list[Component] = field(default_factory=list)
    started_in_s: float = 0.0

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def crds(self) -> Path:
        return self.root / "crds"

    @property
    def server(self) -> str:
        return f"https://{HOST}:{self.apiserver_port}"

    def component(self, name: str) -> Component:
        return next(c for c in self.components if c.name == name)

    def stop(self) -> None:
        """Stop every component, the last started first (etcd last), and wait for each to exit."""
        for component in reversed(self.components):
            component.stop()

    def version(self) -> str:
        out = subprocess.run(
            [str(self.bin / "kube-apiserver"), "--version"], check=True, capture_output=True, text=True
        )
        return out.stdout.strip()


def start_control_plane(workdir: Path, root: Path, *, with_controllers: bool = True) -> ControlPlane:
    """Start etcd, the API server and (by default) the controller manager, the scheduler and kwok.

    Returns once the API server answers /readyz and each other component its /healthz; on any failure every
    component already started is stopped before the error propagates.
    """
    started = time.monotonic()
    bin_dir = root / "bin"
    workdir.mkdir(parents=True, exist_ok=True)
    pki = Pki(workdir / "pki")
    sa_key, sa_pub = pki.service_account_keys()
    serving = pki.issue(
        "apiserver",
        "kube-apiserver",
        server_ips=[HOST, "10.96.0.1"],
        server_dns=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
    )
    admin = pki.issue("admin", "admin", organizations=["system:masters"])
    etcd_client, etcd_peer, apiserver, kcm_port, scheduler_port, kwok_port = pick_free_ports(6, HOST)
    plane = ControlPlane(
        workdir=workdir,
        root=root,
        pki=pki,
        apiserver_port=apiserver,
        admin_kubeconfig=workdir / "admin.kubeconfig",
        admin=admin,
    )
    write_kubeconfig(plane.admin_kubeconfig, plane.server, pki.ca, admin, "admin")
    try:
        etcd = start_process(
            "etcd",
            [
                str(bin_dir / "etcd"),
                "--name=test",
                f"--data-dir={workdir / 'etcd'}",
                f"--listen-client-urls=http://{HOST}:{etcd_client}",
                f"--advertise-client-urls=http://{HOST}:{etcd_client}",
                f"--listen-peer-urls=http://{HOST}:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://{HOST}:{etcd_peer}",
                f"--initial-cluster=test=http://{HOST}:{etcd_peer}",
                "--unsafe-no-fsync=true",  # a throwaway store: durability buys nothing here
                "--log-level=warn",
            ],
            workdir,
        )
        plane.components.append(etcd)
        wait_https_ok(etcd, f"http://{HOST}:{etcd_client}/health", ca=None, client=None)

        kube_apiserver = start_process(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://{HOST}:{etcd_client}",
                f"--bind-address={HOST}",
                f"--advertise-address={HOST}",
                f"--secure-port={apiserver}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={pki.ca}",
                "--authorization-mode=Node,RBAC",
                # PodSecurity is in the default plugin set; NodeRestriction is the only one a kubeadm cluster adds.
                "--enable-admission-plugins=NodeRestriction",
                "--allow-privileged=false",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--v=1",
            ],
            workdir,
        )
        plane.components.append(kube_apiserver)
        wait_https_ok(kube_apiserver, f"{plane.server}/readyz", ca=pki.ca, client=admin)

        if with_controllers:
            kcm_client = pki.issue("kube-controller-manager", "system:kube-controller-manager")
            kcm_config = write_kubeconfig(
                workdir / "kcm.kubeconfig", plane.server, pki.ca, kcm_client, "system:kube-controller-manager"
            )
            kcm = start_process(
                "kube-controller-manager",
                [
                    str(bin_dir / "kube-controller-manager"),
                    f"--kubeconfig={kcm_config}",
                    f"--authentication-kubeconfig={kcm_config}",
                    f"--authorization-kubeconfig={kcm_config}",
                    f"--bind-address={HOST}",
                    f"--secure-port={kcm_port}",
                    f"--service-account-private-key-file={sa_key}",
                    f"--root-ca-file={pki.ca}",
                    "--use-service-account-credentials=true",
                    "--leader-elect=false",
                    f"--cluster-cidr={POD_CIDR}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    # No cloud, no certificate signing, no IPAM: nodes are kwok's and carry their own podCIDR.
                    "--controllers=*,-csrsigning,-nodeipam,-cloud-node-lifecycle,-service-lb-controller",
                    "--profiling=false",
                ],
                workdir,
            )
            plane.components.append(kcm)
            scheduler_client = pki.issue("kube-scheduler", "system:kube-scheduler")
            scheduler_config = write_kubeconfig(
                workdir / "scheduler.kubeconfig", plane.server, pki.ca, scheduler_client, "system:kube-scheduler"
            )
            scheduler = start_process(
                "kube-scheduler",
                [
                    str(bin_dir / "kube-scheduler"),
                    f"--kubeconfig={scheduler_config}",
                    f"--authentication-kubeconfig={scheduler_config}",
                    f"--authorization-kubeconfig={scheduler_config}",
                    f"--bind-address={HOST}",
                    f"--secure-port={scheduler_port}",
                    "--leader-elect=false",
                    "--profiling=false",
                ],
                workdir,
            )
            plane.components.append(scheduler)
            kwok_client = pki.issue("kwok", "kwok-controller", organizations=["system:masters"])
            kwok_config = write_kubeconfig(workdir / "kwok.kubeconfig", plane.server, pki.ca, kwok_client, "kwok")
            kwok = start_process(
                "kwok",
                [
                    str(bin_dir / "kwok"),
                    f"--kubeconfig={kwok_config}",
                    f"--config={root / 'kwok' / 'stages.yaml'}",
                    "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                    f"--server-address={HOST}:{kwok_port}",
                    f"--node-ip={HOST}",
                    f"--cidr={POD_CIDR}",
                    "--node-lease-duration-seconds=40",
                ],
                workdir,
            )
            plane.components.append(kwok)
            wait_https_ok(kcm, f"https://{HOST}:{kcm_port}/healthz", ca=None, client=None)
            wait_https_ok(scheduler, f"https://{HOST}:{scheduler_port}/healthz", ca=None, client=None)
            wait_https_ok(kwok, f"http://{HOST}:{kwok_port}/healthz", ca=None, client=None)
    except BaseException:
        plane.stop()
        raise
    plane.started_in_s = time.monotonic() - started
    return plane


def remove_workdir(plane: ControlPlane) -> None:
    shutil.rmtree(plane.workdir, ignore_errors=True)
