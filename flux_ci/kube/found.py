"""What discovery found: our sources, the consumers reading them, what it could not see, and which
of them flux-ci may ask to reconcile."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from flux_ci.context import Context
from flux_ci.errors import ClusterError
from flux_ci.kube import fluxobjects as fo
from flux_ci.kube.cluster import list_kinds, list_objects
from flux_ci.kube.fluxobjects import Obj
from flux_ci.report.models import ObjectRef


@dataclass
class Found:
    """What discovery saw: our sources, the consumers reading them, and what it could not see."""

    sources: list[Obj] = field(default_factory=list)
    consumers: list[Obj] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # other environments' sources, with why
    scope: list[str] = field(default_factory=list)  # where each kind was searched, for the report
    watchable_everywhere: set[str] = field(default_factory=set)  # kinds we may watch cluster-wide
    # The consumers flux-ci may ask to reconcile (`patch`); the others keep their current state.
    patchable: set[ObjectRef] = field(default_factory=set)
    prefetched: Prefetched | None = field(default=None, repr=False, compare=False)

    def watch_groups(self) -> set[tuple[str, str | None]]:
        """One watch per kind that has objects to wait for: across all namespaces where allowed and
        needed, else one per namespace. The number of watches never grows with the objects."""
        namespaces: dict[str, set[str]] = {}
        for obj in [*self.sources, *self.consumers]:
            ref = fo.ref_of(obj)
            namespaces.setdefault(ref.kind, set()).add(ref.namespace)
        groups: set[tuple[str, str | None]] = set()
        for kind, spread in namespaces.items():
            if len(spread) > 1 and kind in self.watchable_everywhere:
                groups.add((kind, None))
            else:
                groups |= {(kind, namespace) for namespace in spread}
        return groups


class Prefetched:
    """Cluster-wide lists started together with the first permission batch, so discovery costs
    one round trip of concurrent calls instead of several in a row. One kubectl call lists every
    kind; if it fails (a kind not installed, or one the identity may not list cluster-wide), each
    kind is listed on its own, all at once, so that each failure is told apart and a list the
    identity may not make is replaced by namespaced ones."""

    def __init__(self, ctx: Context, pool: ThreadPoolExecutor, kinds: Sequence[str]) -> None:
        self._pool = pool
        self._kinds = list(kinds)
        self._together = pool.submit(list_kinds, ctx, kinds) if len(kinds) > 1 else None
        self._alone: dict[str, Future[list[Obj]]] = {}
        if self._together is None:
            self._list_alone(ctx)

    def cluster_wide(self, ctx: Context, kind: str) -> list[Obj]:
        if kind not in self._kinds:
            return list_objects(ctx, kind)
        if self._together is not None and not self._alone:
            try:
                return self._together.result()[kind]
            except ClusterError:
                self._list_alone(ctx)
        return self._alone[kind].result()

    def _list_alone(self, ctx: Context) -> None:
        self._alone = {kind: self._pool.submit(list_objects, ctx, kind) for kind in self._kinds}
