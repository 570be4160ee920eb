"""What every component start shares: the state dir, the port allocator and the child env."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.sandbox.clusters import FIRST, Cluster
from tests.sandbox.errors import MissingToolError
from tests.sandbox.net import HealthCheck, PortAllocator
from tests.sandbox.procs import LaunchSpec, ProcessRecord, start_process
from tests.sandbox.state import write_private
from tests.sandbox.versions import tool_path

# Variables that would silently reconfigure a component behind the sandbox's back.
_FOREIGN_PREFIXES = ("REGISTRY_", "ETCD_", "KUBECONFIG", "STORAGE_", "RUNTIME_NAMESPACE")
# Rewritten on every start, before the sandbox is complete: `down` still finds a half-started one.
STARTED_FILE = "started.json"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_PREFIXES)}


def require_tool(tool: str) -> Path:
    path = tool_path(tool)
    if not path.exists():
        raise MissingToolError(f"{tool} is not built: {path} is missing (run `make tools`)")
    return path


@dataclass
class Launch:
    """Starts the components of one cluster; `for_cluster` gives the same launch for another.

    The cluster decides where `path` points and what the started processes are called, so
    start_etcd, start_apiserver and start_controller build any cluster without knowing which.
    """

    state_dir: Path
    die_with_parent: bool = False
    ports: PortAllocator = field(default_factory=PortAllocator)
    started: list[ProcessRecord] = field(default_factory=list)
    start_times: dict[str, float] = field(default_factory=dict)
    cluster: Cluster = FIRST

    def for_cluster(self, cluster: Cluster) -> Launch:
        """The same ports, records and start times (no port handed out twice), another cluster."""
        return dataclasses.replace(self, cluster=cluster)

    def path(self, *parts: str) -> Path:
        """A path in this cluster's own directory."""
        return self.state_dir.joinpath(*self.cluster.directory, *parts)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        health: HealthCheck,
        env: Mapping[str, str] | None = None,
    ) -> ProcessRecord:
        """Start a component; it is recorded at once so a failure later still stops it."""
        name = self.cluster.process_name(name)
        self.start_times[name] = time.monotonic()
        spec = LaunchSpec(
            argv=tuple(argv),
            cwd=str(self.state_dir),
            env=dict(env or {}),
            die_with_parent=self.die_with_parent,
        )
        record = start_process(
            name, spec, log=self.state_dir / "logs" / f"{name}.log", health=health, base_env=clean_env()
        )
        self.started.append(record)
        records = [r.to_json() for r in self.started]
        write_private(self.state_dir / STARTED_FILE, json.dumps(records, indent=2) + "\n")
        return record
