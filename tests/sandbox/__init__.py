"""A real Flux sandbox on 127.0.0.1 for tests and demos (test infrastructure, stdlib only).

docker-registry (htpasswd auth) + etcd + kube-apiserver + source-controller + kustomize-controller
+ helm-controller + notification-controller (its Receiver webhooks on 127.0.0.1), all the pinned
real binaries, started as local processes. Never imported by
flux_ci. SandboxClient also injects faults (pause, stop, restart a component) and hands out
namespaced RBAC identities. Further clusters, up to 8 (`up(clusters=N)`, or `add_cluster` /
`SandboxClient.start_cluster(N)` on a running sandbox) share the registry: context
`flux-ci-sandbox-N`, processes named `<component>-N` (see clusters.py).
"""

from __future__ import annotations

from tests.sandbox.client import (
    ChartPush,
    HelmDeployment,
    OciDeployment,
    PushResult,
    SandboxClient,
    condition,
    unique_name,
)
from tests.sandbox.errors import ComponentError, MissingToolError, SandboxError
from tests.sandbox.lifecycle import down, up
from tests.sandbox.state import SandboxState, default_state_dir

__all__ = [
    "ChartPush",
    "ComponentError",
    "HelmDeployment",
    "MissingToolError",
    "OciDeployment",
    "PushResult",
    "SandboxClient",
    "SandboxError",
    "SandboxState",
    "condition",
    "default_state_dir",
    "down",
    "unique_name",
    "up",
]
