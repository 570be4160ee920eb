"""The sandbox's state directory: what runs (sandbox.json) and how to use it (sandbox.env)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.sandbox.clusters import all_clusters
from tests.sandbox.procs import ProcessRecord
from tests.sandbox.versions import REPO_ROOT, path_prefix

STATE_FILE = "sandbox.json"
ENV_FILE = "sandbox.env"
# `down` deletes a state directory only when it carries this marker: FLUX_CI_SANDBOX_DIR could
# point anywhere, and an rm -rf of a directory the sandbox did not create must never happen.
MARKER_FILE = ".flux-ci-sandbox"
_LOCK_FILE = ".lock"
_FORMAT = 1
# controllers.py's CONTROLLERS (which imports this module through launch.py, hence a copy here).
ALL_CONTROLLERS = ("source-controller", "kustomize-controller", "helm-controller", "notification-controller")
# The flags whose values are addresses a person may want, per process of the first cluster, and
# the variable of the env file each one becomes (an http:// URL).
_ADDRESS_FLAGS = {
    "FLUX_CI_SANDBOX_RECEIVER_URL": ("notification-controller", "--receiverAddr="),
    "FLUX_CI_SANDBOX_EVENTS_URL": ("notification-controller", "--events-addr="),
    "FLUX_CI_SANDBOX_ARTIFACT_URL": ("source-controller", "--storage-adv-addr="),
}


def default_state_dir() -> Path:
    return Path(os.environ.get("FLUX_CI_SANDBOX_DIR") or REPO_ROOT / ".sandbox").resolve()


@dataclass(frozen=True)
class RegistryInfo:
    host: str
    port: int
    user: str = ""  # empty for an anonymous registry
    password: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def anonymous(self) -> bool:
        return not self.user


@dataclass
class SandboxState:
    state_dir: Path
    registry: RegistryInfo
    kubeconfig: Path
    processes: list[ProcessRecord] = field(default_factory=list)
    startup_seconds: dict[str, float] = field(default_factory=dict)
    ports: list[int] = field(default_factory=list)  # every loopback port the components bind
    versions: dict[str, str] = field(default_factory=dict)  # versions.env when it was started
    # How many Kubernetes clusters run; `kubeconfig` holds a context for each (see clusters.py).
    clusters: int = 1
    # The Flux controllers of the first cluster (all four unless started for `make demo`).
    controllers: list[str] = field(default_factory=lambda: list(ALL_CONTROLLERS))

    @property
    def contexts(self) -> list[str]:
        return [cluster.context for cluster in all_clusters(self.clusters)]

    def process(self, name: str) -> ProcessRecord:
        for record in self.processes:
            if record.name == name:
                return record
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "state_dir": str(self.state_dir),
            "registry": vars(self.registry),
            "kubeconfig": str(self.kubeconfig),
            "processes": [record.to_json() for record in self.processes],
            "startup_seconds": self.startup_seconds,
            "ports": self.ports,
            "versions": self.versions,
            "clusters": self.clusters,
            "controllers": self.controllers,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxState:
        return cls(
            state_dir=Path(data["state_dir"]),
            registry=RegistryInfo(**data["registry"]),
            kubeconfig=Path(data["kubeconfig"]),
            processes=[ProcessRecord.from_json(item) for item in data["processes"]],
            startup_seconds=dict(data.get("startup_seconds", {})),
            ports=[int(port) for port in data.get("ports", [])],
            versions=dict(data.get("versions", {})),
            clusters=int(data.get("clusters", 1)),
            controllers=list(data.get("controllers", ALL_CONTROLLERS)),
        )


def write_private(path: Path, text: str) -> None:
    """Write atomically with mode 0600: these files hold tokens and passwords."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    tmp.replace(path)


def save(state: SandboxState) -> None:
    write_private(state.state_dir / STATE_FILE, json.dumps(state.to_json(), indent=2) + "\n")


def load(state_dir: Path) -> SandboxState | None:
    try:
        data = json.loads((state_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("format") != _FORMAT:
        return None
    return SandboxState.from_json(data)


def _flag_value(state: SandboxState, process: str, flag: str) -> str | None:
    try:
        spec = state.process(process).spec
    except KeyError:  # not started (e.g. notification-controller in `make demo`'s sandbox)
        return None
    argv = spec.argv if spec else ()
    return next((arg.removeprefix(flag) for arg in argv if arg.startswith(flag)), None)


def addresses(state: SandboxState) -> dict[str, str]:
    """Where the sandbox's servers listen, for a person trying things by hand: the API server, the
    registry, notification-controller's Receiver webhooks (FLUX_CI_RECEIVER_URL for
    FLUX_CI_NOTIFY=receiver) and event server, source-controller's artifact server."""
    found = {"FLUX_CI_SANDBOX_REGISTRY_URL": f"http://{state.registry.address}"}
    for name, (process, flag) in _ADDRESS_FLAGS.items():
        value = _flag_value(state, process, flag)
        if value:
            found[name] = f"http://{value}"
    server = _api_server(state.kubeconfig)
    if server:
        found["FLUX_CI_SANDBOX_API_SERVER"] = server
    return found


def _api_server(kubeconfig: Path) -> str | None:
    """The first cluster's server in the kubeconfig (written as JSON by the sandbox)."""
    try:
        config = json.loads(kubeconfig.read_text(encoding="utf-8"))
        return str(config["clusters"][0]["cluster"]["server"])
    except (OSError, ValueError, KeyError, IndexError):
        return None


def exported_variables(state: SandboxState) -> dict[str, str]:
    """What a shell or a child process needs to use this sandbox (PATH is handled apart), and every
    address a person may need (`addresses`)."""
    registry = state.registry
    variables = {
        "KUBECONFIG": str(state.kubeconfig),
        "FLUX_CI_SANDBOX_DIR": str(state.state_dir),
        "FLUX_CI_SANDBOX_REGISTRY": registry.address,
        "FLUX_CI_INSECURE_REGISTRY": "true",
    }
    variables |= addresses(state)
    if state.clusters > 1:
        variables["FLUX_CI_SANDBOX_CONTEXTS"] = ",".join(state.contexts)
    if not registry.anonymous:
        variables |= {
            "FLUX_CI_SANDBOX_REGISTRY_USER": registry.user,
            "FLUX_CI_SANDBOX_REGISTRY_PASSWORD": registry.password,
            "FLUX_CI_REGISTRY_USER": registry.user,
            "FLUX_CI_REGISTRY_PASSWORD": registry.password,
        }
    return variables


def child_env(state: SandboxState, base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for child processes: the pinned tools first on PATH, plus the variables."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = os.pathsep.join(filter(None, (path_prefix(), env.get("PATH", ""))))
    env |= exported_variables(state)
    return env


def env_file_text(state: SandboxState) -> str:
    lines = ["# flux-ci sandbox: `. <this file>` puts the pinned tools first and points at it."]
    if "FLUX_CI_SANDBOX_RECEIVER_URL" in addresses(state):
        lines.append(
            "# Receiver mode: create a Receiver (see the README), then export FLUX_CI_NOTIFY=receiver"
            ' FLUX_CI_RECEIVER_URL="$FLUX_CI_SANDBOX_RECEIVER_URL" FLUX_CI_RECEIVER=<ns>/<name>'
            " FLUX_CI_RECEIVER_TOKEN=<its token>."
        )
    lines.append(f'export PATH={shlex.quote(path_prefix())}:"$PATH"')
    lines += [f"export {key}={shlex.quote(value)}" for key, value in exported_variables(state).items()]
    return "\n".join(lines) + "\n"


def write_env_file(state: SandboxState) -> Path:
    path = state.state_dir / ENV_FILE
    write_private(path, env_file_text(state))
    return path


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Serialise `up` and `down` on one state directory (two shells, or make -j)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / _LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
