"""Fault injection on a running sandbox: pause, resume, stop and restart one component.

`pause` freezes a component's whole process group (SIGSTOP): it keeps its sockets open, so clients
hang instead of failing fast, the way a component starved of CPU or stuck behaves. `stop` ends it
(the port refuses connections). `restart` starts it again from the command line it was first started
with: same ports, same config files, same data (the API server keeps its token, certificate and
etcd; the registry its storage and htpasswd), and returns once the component is healthy again
(controllers: once their workers run).

Also here: the second helm-controller (DisableChartDigestTracking=true), started on first use.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.sandbox.clusters import component_of
from tests.sandbox.controllers import (
    CONTROLLERS,
    HELM_SHARD,
    is_controller,
    start_controller,
    workers_started,
    workers_started_since,
)
from tests.sandbox.errors import SandboxError
from tests.sandbox.launch import Launch, clean_env
from tests.sandbox.lifecycle import STARTUP_TIMEOUTS, dies_with_parent
from tests.sandbox.net import PortAllocator
from tests.sandbox.procs import (
    ProcessRecord,
    is_alive,
    is_stopped,
    log_size,
    signal_group,
    start_process,
    stop_process,
    wait_healthy,
    wait_until,
)
from tests.sandbox.state import SandboxState, locked, save

COMPONENTS = ("registry", "etcd", "kube-apiserver", *CONTROLLERS, HELM_SHARD)
_SIGNAL_TIMEOUT_S = 10.0


def _record(state: SandboxState, component: str) -> ProcessRecord:
    if component_of(component) not in COMPONENTS:
        raise ValueError(f"unknown component {component!r} (known: {', '.join(COMPONENTS)})")
    try:
        return state.process(component)
    except KeyError:
        raise SandboxError(f"{component} is not part of this sandbox") from None


def pause(state: SandboxState, component: str) -> None:
    """SIGSTOP the component's process group; returns once the kernel reports it stopped."""
    record = _record(state, component)
    if not signal_group(record, signal.SIGSTOP):
        raise SandboxError(f"{component} is not running: cannot pause it")
    wait_until(lambda: is_stopped(record), timeout=_SIGNAL_TIMEOUT_S, what=f"{component} to pause")


def resume(state: SandboxState, component: str) -> None:
    """SIGCONT the component's process group; returns once it runs again."""
    record = _record(state, component)
    if not signal_group(record, signal.SIGCONT):
        raise SandboxError(f"{component} is not running: cannot resume it")
    wait_until(lambda: not is_stopped(record), timeout=_SIGNAL_TIMEOUT_S, what=f"{component} to resume")


def stop(state: SandboxState, component: str) -> None:
    """Stop the component (SIGTERM, SIGKILL after a grace period); `restart` brings it back."""
    stop_process(_record(state, component))


def _replace(state: SandboxState, old: ProcessRecord, new: ProcessRecord) -> None:
    state.processes[state.processes.index(old)] = new
    save(state)  # at once: a `down` from anywhere must find the new process


def _start_again(state: SandboxState, record: ProcessRecord) -> tuple[ProcessRecord, int]:
    """Start the same command line again; returns the new record and where its log starts."""
    if record.spec is None:
        raise SandboxError(f"{record.name} was started without a recorded command: run down, then up")
    offset = log_size(record.log)
    new = start_process(
        record.name, record.spec, log=Path(record.log), health=record.health, base_env=clean_env()
    )
    _replace(state, record, new)
    return new, offset


def restart(state: SandboxState, component: str) -> float:
    """Stop the component if it runs, start it again the same way; seconds until it is healthy."""
    with locked(state.state_dir):
        record = _record(state, component)
        if is_alive(record):
            stop_process(record)
        began = time.monotonic()
        new, offset = _start_again(state, record)
    also = workers_started_since(offset) if is_controller(component) else None
    timeout = STARTUP_TIMEOUTS[component_of(component)]
    return wait_healthy(new, timeout=timeout, started=began, also=also)


def ensure_helm_shard(state: SandboxState) -> ProcessRecord:
    """The helm-controller with DisableChartDigestTracking=true, started on first use.

    It joins the running sandbox (its process is recorded in the state, so `down` stops it) and
    reconciles only the HelmReleases labelled `sharding.fluxcd.io/key: no-digest-tracking`.
    """
    existing = next((r for r in state.processes if r.name == HELM_SHARD), None)
    if existing is not None:
        if not is_alive(existing):
            restart(state, HELM_SHARD)
        return state.process(HELM_SHARD)
    with locked(state.state_dir):
        # Seeded with what runs already: no port is handed out twice, and the started-file that
        # `down` reads keeps listing every process.
        launch = Launch(
            state.state_dir,
            die_with_parent=dies_with_parent(state),
            ports=PortAllocator(state.ports),
            started=list(state.processes),
        )
        record = start_controller(launch, HELM_SHARD, state.kubeconfig)
        state.processes.append(record)
        state.ports = launch.ports.given
        save(state)
    took = wait_healthy(
        record,
        timeout=STARTUP_TIMEOUTS[HELM_SHARD],
        started=launch.start_times[HELM_SHARD],
        also=workers_started,
    )
    state.startup_seconds[HELM_SHARD] = round(took, 2)
    save(state)
    return record
