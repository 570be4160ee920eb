"""source-controller and kustomize-controller as local processes against the sandbox."""

from __future__ import annotations

import re
from pathlib import Path

from tests.sandbox.launch import Launch, require_tool
from tests.sandbox.net import LOOPBACK, HealthCheck
from tests.sandbox.procs import ProcessRecord, log_tail

CONTROLLERS = ("source-controller", "kustomize-controller")

# /readyz answers before the informer caches sync. controller-runtime logs "Starting workers" for a
# reconciler once its caches are in sync: that is when the controller really acts on objects.
_MAIN_RECONCILER = {"source-controller": "ocirepository", "kustomize-controller": "kustomization"}


def workers_started(record: ProcessRecord) -> bool:
    reconciler = _MAIN_RECONCILER[record.name]
    pattern = re.compile(rf'Starting workers.*"controller": "{reconciler}"')
    return bool(pattern.search(log_tail(record.log, lines=400)))


def _common_flags(health_port: int) -> list[str]:
    # Both default to :8080/:9440, which would collide: metrics off, one health port each.
    return [
        f"--health-addr={LOOPBACK}:{health_port}",
        "--metrics-addr=0",
        "--log-encoding=console",
    ]


def start_controller(launch: Launch, name: str, kubeconfig: Path) -> ProcessRecord:
    health_port = launch.ports.take()
    argv = [str(require_tool(name)), *_common_flags(health_port)]
    if name == "source-controller":
        storage = f"{LOOPBACK}:{launch.ports.take()}"
        storage_path = launch.path("source-controller", "storage")
        storage_path.mkdir(parents=True, exist_ok=True)  # it refuses a missing dir
        # kustomize-controller downloads artifacts from the advertised address: keep it loopback.
        argv += [
            f"--storage-path={storage_path}",
            f"--storage-addr={storage}",
            f"--storage-adv-addr={storage}",
        ]
    health = HealthCheck(f"http://{LOOPBACK}:{health_port}/readyz")
    # The controllers have no --kubeconfig flag; controller-runtime reads KUBECONFIG.
    return launch.start(name, argv, health, env={"KUBECONFIG": str(kubeconfig)})
