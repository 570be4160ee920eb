"""`up` and `down`: the one way to start and stop a sandbox, used by the CLI and the fixtures."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.sandbox.clusters import FIRST, MAX_CLUSTERS, SECOND, Cluster, all_clusters, component_of
from tests.sandbox.controllers import (
    CONTROLLERS,
    FURTHER_CLUSTER_CONTROLLERS,
    HELM_SHARD,
    start_controller,
    workers_started,
)
from tests.sandbox.controlplane import (
    install_flux_crds,
    kubeconfig_for,
    start_apiserver,
    start_etcd,
)
from tests.sandbox.errors import MissingToolError, SandboxError
from tests.sandbox.kube import merge_kubeconfig
from tests.sandbox.launch import STARTED_FILE, Launch, require_tool
from tests.sandbox.net import PortAllocator, probe
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
from tests.sandbox.versions import crds_dir, read_versions

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


def reusable(
    state: SandboxState, anonymous: bool, clusters: int = 1, controllers: Sequence[str] = CONTROLLERS
) -> bool:
    """Same registry mode, as many clusters, same pins (a bumped versions.env restarts it), at least
    the controllers asked for, everything healthy."""
    if state.registry.anonymous != anonymous or state.versions != read_versions():
        return False
    if state.clusters != clusters or not set(controllers) <= set(state.controllers):
        return False
    return all(is_alive(record) and probe(record.health) for record in state.processes)


def preflight(controllers: Sequence[str] = CONTROLLERS) -> None:
    """Fail before starting anything when a binary the sandbox runs or the CRDs are missing.

    flux and oras are checked too (every use of the sandbox pushes with them); cosign is not: only
    the signing tests use it, and they find it missing themselves.
    """
    for tool in ("etcd", "kube-apiserver", "kubectl", "flux", "oras", *controllers):
        require_tool(tool)
    for controller in controllers:
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

    def __init__(self, launch: Launch, report: Report, controllers: Sequence[str] = CONTROLLERS) -> None:
        self.launch = launch
        self.report = report
        self.controllers = tuple(controllers)  # the first cluster's
        self.seconds: dict[str, float] = {}

    def ready(self, record: ProcessRecord, also: Callable[[ProcessRecord], bool] | None = None) -> None:
        started = self.launch.start_times[record.name]
        timeout = STARTUP_TIMEOUTS[component_of(record.name)]
        took = wait_healthy(record, timeout=timeout, started=started, also=also)
        self.seconds[record.name] = round(took, 2)
        self.report(f"{record.name} ready in {took:.1f}s (pid {record.pid})")

    def cluster(self, cluster: Cluster) -> Path:
        """etcd, API server, Flux CRDs and namespace, controllers: one cluster; its kubeconfig."""
        launch = self.launch.for_cluster(cluster)
        etcd_url, etcd = start_etcd(launch)
        self.ready(etcd)
        api, apiserver = start_apiserver(launch, etcd_url)
        self.ready(apiserver)
        kubeconfig = kubeconfig_for(launch, api)
        began = time.monotonic()
        install_flux_crds(kubeconfig, self.controllers if cluster == FIRST else CONTROLLERS)
        crds = cluster.process_name("crds")
        self.seconds[crds] = round(time.monotonic() - began, 2)
        self.report(f"Flux CRDs and namespace applied to {cluster.context} in {self.seconds[crds]:.1f}s")
        # The controllers only need the API server, not each other: start them all, then wait.
        names = self.controllers if cluster == FIRST else FURTHER_CLUSTER_CONTROLLERS
        controllers = [start_controller(launch, name, kubeconfig) for name in names]
        for controller in controllers:
            self.ready(controller, also=workers_started)
        return kubeconfig

    def further_cluster(self, cluster: Cluster, kubeconfig: Path) -> None:
        """Another cluster, its context added to the sandbox's kubeconfig (`kubeconfig`)."""
        began = time.monotonic()
        merge_kubeconfig(kubeconfig, self.cluster(cluster))
        self.seconds[cluster.process_name("cluster")] = round(time.monotonic() - began, 2)

    def run(self, anonymous: bool, clusters: int) -> SandboxState:
        registry, registry_proc = start_registry(self.launch, anonymous=anonymous)
        self.ready(registry_proc)
        kubeconfig = self.cluster(FIRST)
        for cluster in all_clusters(clusters)[1:]:
            self.further_cluster(cluster, kubeconfig)
        return SandboxState(
            state_dir=self.launch.state_dir,
            registry=registry,
            kubeconfig=kubeconfig,
            processes=list(self.launch.started),
            startup_seconds=self.seconds,
            ports=self.launch.ports.given,
            versions=read_versions(),
            clusters=clusters,
            controllers=list(self.controllers),
        )


def _stop_started_since(launch: Launch, count: int) -> None:
    """Stop what `launch` started after its first `count` records, the last started first."""
    for record in reversed(launch.started[count:]):
        stop_process(record)


def _start_fresh(  # noqa: PLR0917 - the options of `up`, passed on as they came
    state_dir: Path,
    anonymous: bool,
    clusters: int,
    die_with_parent: bool,
    report: Report,
    controllers: Sequence[str] = CONTROLLERS,
) -> SandboxState:
    preflight(controllers)
    _prepare_dir(state_dir)
    launch = Launch(state_dir, die_with_parent=die_with_parent)
    try:
        with sigterm_as_interrupt():
            state = _Starter(launch, report, controllers).run(anonymous, clusters)
    except BaseException:
        # Also on Ctrl-C or SIGTERM: nothing that was started may outlive a failed `up`.
        _stop_started_since(launch, 0)
        raise
    save(state)
    write_env_file(state)
    return state


def up(
    state_dir: Path | None = None,
    *,
    anonymous: bool = False,
    clusters: int = 1,
    die_with_parent: bool = False,
    report: Report = _quiet,
    controllers: Sequence[str] = CONTROLLERS,
) -> SandboxState:
    """Start the sandbox, or reuse the healthy one already running for this state dir.

    clusters: N > 1 adds further Kubernetes clusters (contexts `flux-ci-sandbox-2` to `-N`).
    controllers: the Flux controllers of the first cluster (in CONTROLLERS' order), e.g. only
    source- and kustomize-controller for `make demo`, which then needs no other binary built.
    die_with_parent: the kernel kills every component when the calling process dies (for test
    sessions; `make sandbox-up` leaves it off so the sandbox outlives the command).
    """
    if not 1 <= clusters <= MAX_CLUSTERS:
        raise SandboxError(f"the sandbox runs 1 to {MAX_CLUSTERS} clusters, not {clusters}")
    state_dir = (state_dir or default_state_dir()).resolve()
    with locked(state_dir):
        existing = load(state_dir)
        unknown = sorted(set(controllers) - set(CONTROLLERS))
        if unknown or "source-controller" not in controllers:
            raise SandboxError(f"controllers: source-controller and any of {', '.join(CONTROLLERS[1:])}")
        controllers = [name for name in CONTROLLERS if name in controllers]
        if existing and reusable(existing, anonymous, clusters, controllers):
            report(f"reusing the running sandbox in {state_dir}")
            write_env_file(existing)
            return existing
        _stop_recorded(state_dir)
        return _start_fresh(state_dir, anonymous, clusters, die_with_parent, report, controllers)


def dies_with_parent(state: SandboxState) -> bool:
    """Whether the sandbox's components die with the process that started them (test sessions)."""
    spec = state.process("kube-apiserver").spec
    return spec is not None and spec.die_with_parent


def add_cluster(state: SandboxState, *, up_to: int = SECOND.number, report: Report = _quiet) -> SandboxState:
    """Start further clusters next to a running sandbox until it runs `up_to` (a no-op when it does).

    `state` is updated in place and saved, like every change to a running sandbox, so a client
    holding it sees the new processes, and `down` (or the parent's death, when the sandbox dies
    with its parent) stops them with the rest.
    """
    if not 1 <= up_to <= MAX_CLUSTERS:
        raise SandboxError(f"the sandbox runs 1 to {MAX_CLUSTERS} clusters, not {up_to}")
    with locked(state.state_dir):
        if state.clusters >= up_to:
            return state
        # Seeded with what runs already: no port is handed out twice, and the started-file that
        # `down` reads keeps listing every process.
        launch = Launch(
            state.state_dir,
            die_with_parent=dies_with_parent(state),
            ports=PortAllocator(state.ports),
            started=list(state.processes),
        )
        starter = _Starter(launch, report)
        try:
            for cluster in all_clusters(up_to)[state.clusters :]:
                starter.further_cluster(cluster, state.kubeconfig)
        except BaseException:
            _stop_started_since(launch, len(state.processes))
            raise
        state.processes = list(launch.started)
        state.ports = launch.ports.given
        state.startup_seconds |= starter.seconds
        state.clusters = up_to
        save(state)
        write_env_file(state)
    return state


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
