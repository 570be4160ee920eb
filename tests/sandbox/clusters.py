"""Which Kubernetes cluster of the sandbox a component, a file or a kube context belongs to.

The sandbox runs one cluster, or up to `MAX_CLUSTERS` sharing the one registry (a fleet for the
benchmark). Cluster 1 keeps the names it has always had (`kube-apiserver`, `<state dir>/kubeconfig`,
context `flux-ci-sandbox`), so nothing that knows only one cluster changes; cluster N > 1 adds `-N` to
its process names and its context and keeps its files under `<state dir>/cluster-N/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONTEXT = "flux-ci-sandbox"
# Each further cluster is etcd, an API server and source-, kustomize- and helm-controller: about
# 570 MiB and 11 s of start-up on a loaded 2-core machine (`make bench`, docs/performance.md).
MAX_CLUSTERS = 8
# The registry serves every cluster: its process has no cluster suffix.
SHARED_COMPONENTS = ("registry",)
_SUFFIX = re.compile(r"-(\d+)$")


@dataclass(frozen=True)
class Cluster:
    number: int = 1

    @property
    def suffix(self) -> str:
        return "" if self.number == 1 else f"-{self.number}"

    @property
    def context(self) -> str:
        """The kube context (and the kubeconfig's cluster name) of this cluster."""
        return CONTEXT + self.suffix

    @property
    def admin_user(self) -> str:
        """The kubeconfig user holding this cluster's admin token."""
        return "admin" + self.suffix

    @property
    def directory(self) -> tuple[str, ...]:
        """Where its files live, relative to the state dir (cluster 1: the state dir itself)."""
        return () if self.number == 1 else (f"cluster-{self.number}",)

    def process_name(self, component: str) -> str:
        """`kube-apiserver` -> `kube-apiserver-2` on cluster 2; the registry is everyone's."""
        return component if component in SHARED_COMPONENTS else component + self.suffix


FIRST = Cluster(1)
SECOND = Cluster(2)


def all_clusters(count: int) -> list[Cluster]:
    return [Cluster(number) for number in range(1, count + 1)]


def component_of(process_name: str) -> str:
    """`source-controller-2` -> `source-controller`: what the process runs, on whichever cluster."""
    return _SUFFIX.sub("", process_name)
