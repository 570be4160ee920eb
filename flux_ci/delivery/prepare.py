"""What every cluster command starts with: the tools' versions, discovery in every cluster and the
registry login, side by side; then the watches. Every cluster is checked before anything changes:
one that cannot be deployed to stops all, before anything is pushed or moved."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flux_ci.context import Context
from flux_ci.delivery import fleet
from flux_ci.delivery.observe import hand_over, observing
from flux_ci.kube import fluxobjects as fo
from flux_ci.kube import notify, receiver_preflight
from flux_ci.kube.discovery import Found, discover
from flux_ci.kube.engine import Observer
from flux_ci.registry.client import Registry, open_registry
from flux_ci.report.models import Report
from flux_ci.tools.toolcheck import require_tools

if TYPE_CHECKING:
    from flux_ci.config.settings import Settings


@dataclass(frozen=True)
class Ready:
    """One cluster, checked and watched: ready for the requests."""

    cluster: fleet.Cluster
    found: Found
    observer: Observer


@dataclass(frozen=True)
class Prepared:
    """Every cluster of the run, ready; and the registry, logged in."""

    registry: Registry
    ready: list[Ready]

    def only(self, contexts: Sequence[str]) -> Prepared:
        """The same run, for the clusters of these kube contexts alone (one wave's)."""
        return Prepared(self.registry, [ready for ready in self.ready if ready.cluster.name in contexts])

    def each(self, ctx: Context, work: Callable[[Ready], object]) -> None:
        """`work` in every cluster at once (see `fleet.each`); each cluster it ends is finished."""

        def finished(cluster: fleet.Cluster) -> None:
            work(next(ready for ready in self.ready if ready.cluster is cluster))
            cluster.finished = True

        fleet.each(ctx, [ready.cluster for ready in self.ready], finished)


# The tags a cluster's sources may follow: the same for every cluster, or read from each cluster's
# own settings (a cluster of a wave follows its wave's tag, see `Settings.for_cluster`).
Tags = Sequence[str] | Callable[["Settings"], Sequence[str]]


@contextmanager
def prepared(
    ctx: Context,
    report: Report,
    tools: Sequence[str],
    *,
    tags: Tags,
    digest: str | None,
    consumers: bool = True,
    patches: bool | None = None,
    registry: Registry | None = None,
) -> Iterator[Prepared]:
    """The tools' versions, discovery in every cluster (read-only) and the registry login (unless
    given), each a round trip, at once; then the watches. A missing tool is reported first: it
    explains any other failure."""
    needs_patch = notify.annotates(ctx) if patches is None else patches
    # A Receiver that would refuse the request is found before anything is pushed or moved (`wait`,
    # patches=False, pushes and moves nothing: its request tells); receiver mode has one cluster.
    asks_receiver = ctx.settings.notify_mode == "receiver" and patches is None
    clusters = fleet.clusters_of(ctx, report)

    # A re-run (or `wait`) asks the consumers too, through the annotation only.
    asks_consumers = notify.annotates(ctx) and consumers

    def find(cluster: fleet.Cluster) -> Found:
        its = tags(cluster.ctx.settings) if callable(tags) else tags
        found = discover_step(cluster.ctx, cluster.report, tags=its, digest=digest, needs_patch=needs_patch,
                              asks_consumers=asks_consumers, consumers=consumers)  # fmt: skip
        if asks_receiver:
            receiver_preflight.preflight(cluster.ctx)
        return found

    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="prepare")
    try:
        versions = pool.submit(require_tools, ctx.runner, ctx.prefetched, tools)
        finding = pool.submit(fleet.each, ctx, clusters, find)
        with nullcontext(registry) if registry else open_registry(ctx) as logged_in, ExitStack() as watching:
            ctx.result(versions)
            found = ctx.result(finding)
            ready = [
                Ready(cluster, its, watching.enter_context(observing(cluster.ctx, cluster.report, its)))
                for cluster, its in zip(clusters, found, strict=True)
            ]
            yield Prepared(logged_in, ready)
            hand_over_all(ready)
    finally:
        # Never wait here for threads whose children a signal is stopping: the CLI boundary stops
        # every child (SIGKILL after the grace) whatever happens.
        pool.shutdown(wait=False, cancel_futures=True)
        fleet.merge(report, clusters)


def hand_over_all(ready: Sequence[Ready]) -> None:
    """Every cluster's watches stopped at once, and their rows written. One after the other, each
    stop waits for its own kubectl children to exit: with a fleet, that wait would add up after the
    last cluster was done."""
    left = [one for one in ready if not one.observer.reported]
    if len(left) < 2:
        return  # one cluster: `observing` hands it over as it ends
    with ThreadPoolExecutor(max_workers=len(left), thread_name_prefix="hand-over") as pool:
        for done in [pool.submit(hand_over, one.cluster.report, one.found, one.observer) for one in left]:
            done.result()


def discover_step(
    ctx: Context,
    report: Report,
    *,
    tags: Sequence[str],
    digest: str | None,
    needs_patch: bool,
    asks_consumers: bool = False,
    consumers: bool = True,
) -> Found:
    """Discovery as a step of its own, its findings said and recorded."""
    with ctx.progress.step("discover", ctx.settings.repository or ctx.settings.ocirepository or ""):
        found = discover(
            ctx, tags=tags, digest=digest, needs_patch=needs_patch, asks_consumers=asks_consumers,
            find=consumers,
        )  # fmt: skip
        record_found(report, found)
        for obj in found.sources:
            kind, value = fo.followed_ref(obj)
            ctx.progress.note(f"{fo.ref_of(obj)} follows {kind} {value}")
        for obj in found.consumers:
            ctx.progress.note(f"{fo.ref_of(obj)} reads it")
    return found


def record_found(report: Report, found: Found) -> None:
    report.sources = [fo.source_state(obj) for obj in found.sources]
    report.consumers = [fo.consumer_state(obj) for obj in found.consumers]
    report.scope = list(found.scope)
    report.notes = [f"left out: {reason}" for reason in found.left_out]
