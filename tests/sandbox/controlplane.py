"""etcd and kube-apiserver, envtest style: no kubelet, no controller-manager, no scheduler."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.sandbox.errors import MissingToolError
from tests.sandbox.kube import kubectl, write_kubeconfig
from tests.sandbox.launch import Launch, require_tool
from tests.sandbox.net import LOOPBACK, HealthCheck
from tests.sandbox.procs import ProcessRecord
from tests.sandbox.state import write_private
from tests.sandbox.versions import crds_dir

FLUX_NAMESPACE = "flux-system"
_CONTROLLERS_WITH_CRDS = (
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "notification-controller",
)


@dataclass(frozen=True)
class ApiServer:
    url: str
    token: str
    ca_file: Path


def start_etcd(launch: Launch) -> tuple[str, ProcessRecord]:
    """A one-member etcd; returns its client URL."""
    client = f"http://{LOOPBACK}:{launch.ports.take()}"
    peer = f"http://{LOOPBACK}:{launch.ports.take()}"
    argv = [
        str(require_tool("etcd")),
        "--name=sandbox",
        f"--data-dir={launch.path('etcd')}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=sandbox={peer}",
        # Throwaway data: skipping fsync makes the API server much faster on slow disks.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]
    return client, launch.start("etcd", argv, HealthCheck(f"{client}/health"))


def _service_account_key(launch: Launch) -> Path:
    """kube-apiserver refuses to start without a service-account signing key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise MissingToolError("openssl is needed to create the service-account key")
    key = launch.path("pki", "sa.key")
    key.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([openssl, "genrsa", "-out", str(key), "2048"], check=True, capture_output=True, timeout=60)
    return key


def start_apiserver(launch: Launch, etcd_url: str) -> tuple[ApiServer, ProcessRecord]:
    port = launch.ports.take()
    cert_dir = launch.path("pki")
    sa_key = _service_account_key(launch)
    token = secrets.token_hex(24)
    tokens = launch.path("pki", "tokens.csv")
    write_private(tokens, f'{token},admin,admin-uid,"system:masters"\n')
    url = f"https://{LOOPBACK}:{port}"
    argv = [
        str(require_tool("kube-apiserver")),
        f"--etcd-servers={etcd_url}",
        f"--cert-dir={cert_dir}",  # no --tls-cert-file: it writes a self-signed apiserver.crt here
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        f"--secure-port={port}",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--allow-privileged=true",
        # No controller-manager creates default ServiceAccounts, so their admission must be off.
        "--disable-admission-plugins=ServiceAccount",
        "--authorization-mode=RBAC",
        f"--token-auth-file={tokens}",
        f"--service-account-issuer={url}",
        f"--service-account-key-file={sa_key}",
        f"--service-account-signing-key-file={sa_key}",
    ]
    api = ApiServer(url, token, cert_dir / "apiserver.crt")
    health = HealthCheck(f"{url}/readyz", ca_file=str(api.ca_file), token=token)
    return api, launch.start("kube-apiserver", argv, health)


def kubeconfig_for(launch: Launch, api: ApiServer) -> Path:
    """The cluster's own kubeconfig (its controllers read it), current context its own."""
    # The self-signed certificate names 127.0.0.1 (the advertise address), so it can be the CA.
    return write_kubeconfig(
        launch.path("kubeconfig"),
        server=api.url,
        ca_file=api.ca_file,
        token=api.token,
        cluster=launch.cluster,
    )


def _wait_established(kubeconfig: Path, attempts: int = 10) -> None:
    """kubectl wait fails at once, instead of waiting, on a CRD the API server has not given any
    status condition yet (`.status.conditions accessor error: <nil>`), which a busy API server
    shows for a moment right after the apply: ask again then."""
    for _ in range(attempts - 1):
        done = kubectl(
            kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all", check=False
        )
        if done.returncode == 0:
            return
        if "accessor error" not in done.stderr:
            break
        time.sleep(0.5)
    kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")


def install_flux_crds(kubeconfig: Path, controllers: Sequence[str] = _CONTROLLERS_WITH_CRDS) -> None:
    """Apply the CRDs of `controllers` with the real kubectl and wait until they are served (a Flux
    installed with some controllers only has only their CRDs, as `flux install --components` does)."""
    args: list[str] = ["apply", "--server-side", "--force-conflicts"]
    for controller in (name for name in _CONTROLLERS_WITH_CRDS if name in controllers):
        directory = crds_dir(controller)
        if not directory.is_dir():
            raise MissingToolError(f"{controller} CRDs missing: {directory} (run `make tools`)")
        args += ["-f", str(directory)]
    kubectl(kubeconfig, *args)
    _wait_established(kubeconfig)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": FLUX_NAMESPACE}}
    kubectl(kubeconfig, "apply", "-f", "-", input_text=json.dumps(namespace))
