"""`up` and `down`: the one way to start and stop a sandbox, used by the CLI and the fixtures."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from tests.sandbox.controllers import CONTROLLERS, HELM_SHARD, start_controller, workers_started
from tests.sandbox.controlplane import (
    install_flux_crds,
    kubeconfig_for,
    start_apiserver,
    start_etcd,
)
from tests.sandbox.errors import MissingToolError, SandboxError
from tests.sandbox.launch import STARTED_FILE, Launch, require_tool
from tests.sandbox.net import probe
from tests.sandbox.procs import (
    ProcessRecord,
    is_alive,
    sigterm_as_interrupt,
    stop_process,
    wait_healthy,
)
from tests.sandbox.registry import registry_tools, start_registry
from tests.sandbox.state import (
    MARKER_FILE,
    SandboxState,
    default_state_dir,
    load,
    locked,
    save,
    write_env_file,
)
from tests.sandbox.versions import PINNED_TOOLS, crds_dir, read_versions

Report = Callable[[str], None]

# Seconds each component gets to become healthy; generous for a cold start on 2 cores.
STARTUP_TIMEOUTS = {
    "registry": 30.0,
    "etcd": 60.0,
    "kube-apiserver": 180.0,
    "source-controller": 120.0,
    "kustomize-controller": 120.0,
    "helm-controller": 120.0,
    "notification-controller": 120.0,
    HELM_SHARD: 120.0,
}
_KEEP_ON_RESET = {".lock", MARKER_FILE}


def _quiet(_message: str) -> None:
    pass


def reusable(state: SandboxState, anonymous: bool) -> bool:
    """Same registry mode, same pins (a bumped versions.env restarts it), everything healthy."""
    if state.registry.anonymous != anonymous or state.versions != read_versions():
        return False
    return all(is_alive(record) and probe(record.health) for record in state.processes)


def preflight() -> None:
    """Fail before starting anything when a binary or the CRDs are missing."""
    for tool in PINNED_TOOLS:
        require_tool(tool)
    for controller in CONTROLLERS:
        if not crds_dir(controller).is_dir():
            raise MissingToolError(f"{crds_dir(controller)} is missing (run `make tools`)")
    registry_tools()


def _prepare_dir(state_dir: Path) -> None:
    """Empty the state dir for a fresh start, refusing a directory the sandbox did not make."""
    leftovers = [p for p in state_dir.iterdir() if p.name not in _KEEP_ON_RESET]
    if leftovers and not (state_dir / MARKER_FILE).exists():
        raise SandboxError(f"{state_dir} is not empty and is not a flux-ci sandbox directory")
    for path in leftovers:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    (state_dir / MARKER_FILE).touch()


class _Starter:
    """Starts the components in dependency order and times each one until healthy."""

    def __init__(self, launch: Launch, report: Report) -> None:
        self.launch = launch
        self.report = report
        self.seconds: dict[str, float] = {}

    def ready(self, record: ProcessRecord, also: Callable[[ProcessRecord], bool] | None = None) -> None:
        started = self.launch.start_times[record.name]
        took = wait_healthy(record, timeout=STARTUP_TIMEOUTS[record.name], started=started, also=also)
        self.seconds[record.name] = round(took, 2)
        self.report(f"{record.name} ready in {took:.1f}s (pid {record.pid})")

    def run(self, anonymous: bool) -> SandboxState:
        registry, registry_proc = start_registry(self.launch, anonymous=anonymous)
        self.ready(registry_proc)
        etcd_url, etcd = start_etcd(self.launch)
        self.ready(etcd)
        api, apiserver = start_apiserver(self.launch, etcd_url)
        self.ready(apiserver)
        kubeconfig = kubeconfig_for(self.launch, api)
        began = time.monotonic()
        install_flux_crds(kubeconfig)
        self.seconds["crds"] = round(time.monotonic() - began, 2)
        self.report(f"Flux CRDs and namespace applied in {self.seconds['crds']:.1f}s")
        # The controllers only need the API server, not each other: start them all, then wait.
        controllers = [start_controller(self.launch, name, kubeconfig) for name in CONTROLLERS]
        for controller in controllers:
            self.ready(controller, also=workers_started)
        return SandboxState(
            state_dir=self.launch.state_dir,
            registry=registry,
            kubeconfig=kubeconfig,
            processes=list(self.launch.started),
            startup_seconds=self.seconds,
            ports=self.launch.ports.given,
            versions=read_versions(),
        )


def _start_fresh(state_dir: Path, anonymous: bool, die_with_parent: bool, report: Report) -> SandboxState:
    preflight()
    _prepare_dir(state_dir)
    launch = Launch(state_dir, die_with_parent=die_with_parent)
    try:
        with sigterm_as_interrupt():
            state = _Starter(launch, report).run(anonymous)
    except BaseException:
        # Also on Ctrl-C or SIGTERM: nothing that was started may outlive a failed `up`.
        for record in reversed(launch.started):
            stop_process(record)
        raise
    save(state)
    write_env_file(state)
    return state


def up(
    state_dir: Path | None = None,
    *,
    anonymous: bool = False,
    die_with_parent: bool = False,
    report: Report = _quiet,
) -> SandboxState:
    """Start the sandbox, or reuse the healthy one already running for this state dir.

    die_with_parent: the kernel kills every component when the calling process dies (for test
    sessions; `make sandbox-up` leaves it off so the sandbox outlives the command).
    """
    state_dir = (state_dir or default_state_dir()).resolve()
    with locked(state_dir):
        existing = load(state_dir)
        if existing and reusable(existing, anonymous):
            report(f"reusing the running sandbox in {state_dir}")
            write_env_file(existing)
            return existing
        _stop_recorded(state_dir)
        return _start_fresh(state_dir, anonymous, die_with_parent, report)


def _recorded_processes(state_dir: Path) -> list[ProcessRecord]:
    records: dict[int, ProcessRecord] = {}
    try:
        started = json.loads((state_dir / STARTED_FILE).read_text(encoding="utf-8"))
        records |= {r.pid: r for r in map(ProcessRecord.from_json, started)}
    except (OSError, ValueError):
        pass
    state = load(state_dir)
    if state:
        records |= {r.pid: r for r in state.processes}
    return list(records.values())


def _stop_recorded(state_dir: Path) -> list[ProcessRecord]:
    """Stop every process ever recorded for the state dir, the last started first.

    Returns the ones that were still running.
    """
    running = [record for record in _recorded_processes(state_dir) if is_alive(record)]
    for record in reversed(running):
        stop_process(record)
    return running


def down(state_dir: Path | None = None, *, remove: bool = True) -> list[ProcessRecord]:
    """Stop the sandbox and (unless remove=False, which keeps the logs) delete its state dir."""
    state_dir = (state_dir or default_state_dir()).resolve()
    if not state_dir.is_dir():
        return []
    with locked(state_dir):
        stopped = _stop_recorded(state_dir)
        if remove and (state_dir / MARKER_FILE).exists():
            shutil.rmtree(state_dir, ignore_errors=True)
        elif not remove:
            for name in (STARTED_FILE, "sandbox.json", "sandbox.env"):
                (state_dir / name).unlink(missing_ok=True)
    return stopped
