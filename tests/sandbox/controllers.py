"""source-, kustomize-, helm- and notification-controller as local processes against the sandbox."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from tests.sandbox.clusters import component_of
from tests.sandbox.launch import Launch, require_tool
from tests.sandbox.net import LOOPBACK, HealthCheck
from tests.sandbox.procs import ProcessRecord, log_since

# notification-controller first: the others are started with its events address (`--events-addr`), as
# a Flux install configures them, so that its Alerts see their events.
CONTROLLERS = ("notification-controller", "source-controller", "kustomize-controller", "helm-controller")
# What a further cluster runs: enough to apply OCI artifacts and Helm charts, no Receiver webhooks.
FURTHER_CLUSTER_CONTROLLERS = ("source-controller", "kustomize-controller", "helm-controller")
NOTIFICATION_CONTROLLER = "notification-controller"
# notification-controller's webhook server for Receivers (`flux trigger receiver` posts here).
RECEIVER_ADDR_FLAG = "--receiverAddr="
# notification-controller's event server (its own flag), and where the other controllers send events.
EVENTS_ADDR_FLAG = "--events-addr="

# A second helm-controller with DisableChartDigestTracking=true, started only when a test asks for
# it. Flux's own sharding keeps the two apart: each reconciles only the HelmReleases its
# --watch-label-selector matches, so a HelmRelease labelled for the shard is never touched by the
# main controller, and no test has to restart a controller that other tests rely on.
HELM_SHARD = "helm-controller-no-digest-tracking"
SHARD_LABEL = "sharding.fluxcd.io/key"
NO_DIGEST_TRACKING = "no-digest-tracking"

# /readyz answers before the informer caches sync. controller-runtime logs "Starting workers" for a
# reconciler once its caches are in sync: that is when the controller really acts on objects.
_MAIN_RECONCILER = {
    "source-controller": "ocirepository",
    "kustomize-controller": "kustomization",
    "helm-controller": "helmrelease",
    HELM_SHARD: "helmrelease",
    NOTIFICATION_CONTROLLER: "receiver",
}
# The binary each controller process runs (the shard is helm-controller with other flags).
_BINARY = {name: name for name in CONTROLLERS} | {HELM_SHARD: "helm-controller"}


def is_controller(name: str) -> bool:
    """Whether the process (of any cluster) is a Flux controller."""
    return component_of(name) in _BINARY


def workers_started_since(offset: int) -> Callable[[ProcessRecord], bool]:
    """A readiness check that reads the log only after `offset`: a restarted controller appends to
    the log of its previous run, whose "Starting workers" line must not count."""

    def started(record: ProcessRecord) -> bool:
        reconciler = _MAIN_RECONCILER[component_of(record.name)]
        pattern = re.compile(rf'Starting workers.*"controller": "{reconciler}"')
        return bool(pattern.search(log_since(record.log, offset)))

    return started


def workers_started(record: ProcessRecord) -> bool:
    return workers_started_since(0)(record)


def _common_flags(health_port: int) -> list[str]:
    # All default to :8080/:9440, which would collide: metrics off, one health port each.
    return [
        f"--health-addr={LOOPBACK}:{health_port}",
        "--metrics-addr=0",
        "--log-encoding=console",
    ]


def _source_controller_flags(launch: Launch) -> list[str]:
    storage = f"{LOOPBACK}:{launch.ports.take()}"
    storage_path = launch.path("source-controller", "storage")
    storage_path.mkdir(parents=True, exist_ok=True)  # it refuses a missing dir
    # kustomize-controller and helm-controller download artifacts from the advertised address:
    # keep it loopback.
    return [
        f"--storage-path={storage_path}",
        f"--storage-addr={storage}",
        f"--storage-adv-addr={storage}",
    ]


def _notification_controller_flags(launch: Launch) -> list[str]:
    # Both servers default to all interfaces (:9292, :9090): keep them on loopback ports of their own.
    return [
        f"{RECEIVER_ADDR_FLAG}{LOOPBACK}:{launch.ports.take()}",
        f"{EVENTS_ADDR_FLAG}{LOOPBACK}:{launch.ports.take()}",
    ]


def _events_flags(launch: Launch) -> list[str]:
    """`--events-addr` of this cluster's notification-controller, started before (a cluster without
    one, the second, sends its events nowhere but to the API server)."""
    name = launch.cluster.process_name(NOTIFICATION_CONTROLLER)
    record = next((r for r in launch.started if r.name == name), None)
    argv = record.spec.argv if record is not None and record.spec else ()
    address = next((a.removeprefix(EVENTS_ADDR_FLAG) for a in argv if a.startswith(EVENTS_ADDR_FLAG)), "")
    return [f"{EVENTS_ADDR_FLAG}http://{address}/"] if address else []


def receiver_url(record: ProcessRecord) -> str:
    """The base URL of notification-controller's Receiver webhooks, from the flags it was started with."""
    argv = record.spec.argv if record.spec else ()
    address = next(
        (arg.removeprefix(RECEIVER_ADDR_FLAG) for arg in argv if arg.startswith(RECEIVER_ADDR_FLAG)), ""
    )
    if not address:
        raise ValueError(f"{record.name} was not started with {RECEIVER_ADDR_FLAG}")
    return f"http://{address}"


def _helm_controller_flags(name: str) -> list[str]:
    if name == HELM_SHARD:
        return [
            f"--watch-label-selector={SHARD_LABEL}={NO_DIGEST_TRACKING}",
            "--feature-gates=DisableChartDigestTracking=true",
        ]
    # The main helm-controller leaves every sharded HelmRelease to its shard (Flux's sharding setup).
    return [f"--watch-label-selector=!{SHARD_LABEL}"]


def start_controller(launch: Launch, name: str, kubeconfig: Path) -> ProcessRecord:
    health_port = launch.ports.take()
    argv = [str(require_tool(_BINARY[name])), *_common_flags(health_port)]
    if name == "source-controller":
        argv += _source_controller_flags(launch)
    elif _BINARY[name] == "helm-controller":
        argv += _helm_controller_flags(name)
    if name == NOTIFICATION_CONTROLLER:
        argv += _notification_controller_flags(launch)
    else:
        argv += _events_flags(launch)
    health = HealthCheck(f"http://{LOOPBACK}:{health_port}/readyz")
    # The controllers have no --kubeconfig flag; controller-runtime reads KUBECONFIG.
    return launch.start(name, argv, health, env={"KUBECONFIG": str(kubeconfig)})
