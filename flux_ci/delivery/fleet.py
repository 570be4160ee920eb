"""Several clusters under one deadline (FLUX_CI_KUBE_CONTEXT=staging-a,staging-b).

One push, then each cluster's discovery, requests and waits at once, in a thread per cluster with a
context of its own: its kube context, its progress label, its report and its cancellation, so one
cluster failing never stops another. Each cluster's outcome is recorded; then the most severe failure
(by `SEVERITY`) decides the exit code, and its message names every cluster that failed and every one
that succeeded. One context alone runs in the calling thread, exactly as it always did.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

from flux_ci.context import Context
from flux_ci.errors import ExitCode, FluxCIError, SupersededError
from flux_ci.report.models import ClusterOutcome, ClusterStatus, ErrorInfo, Report

T = TypeVar("T")

# The most severe first. An interruption or a bug ends everything; then what no cluster can get past
# (configuration, tools, registry); then what says the change itself is broken (a source could not
# fetch or verify it, a consumer could not apply it); then what says only that flux-ci could not tell
# (a cluster unreachable, the deadline); last, a newer artifact that took this one's place.
SEVERITY: tuple[ExitCode, ...] = (
    ExitCode.SIGTERM,
    ExitCode.SIGINT,
    ExitCode.INTERNAL,
    ExitCode.CONFIG,
    ExitCode.TOOL,
    ExitCode.REGISTRY,
    ExitCode.SOURCE_FAILED,
    ExitCode.CONSUMER_FAILED,
    ExitCode.CLUSTER,
    ExitCode.TIMEOUT,
    ExitCode.SUPERSEDED,
)


@dataclass
class Cluster:
    """One cluster of the run: its kube context, and the context and report its work uses."""

    name: str  # the kube context ("" for the kubeconfig's current one)
    ctx: Context
    report: Report
    error: FluxCIError | None = None
    finished: bool = False  # its work ran to the end (a failure elsewhere may have stopped it first)

    def outcome(self) -> ClusterOutcome:
        if self.error is not None:
            superseded = isinstance(self.error, SupersededError)
            return ClusterOutcome(
                self.name,
                ClusterStatus.SUPERSEDED if superseded else ClusterStatus.FAILED,
                int(self.error.exit_code),
                ErrorInfo(
                    self.error.code_name,
                    self.error.message,
                    retryable=self.error.retryable,
                    superseded_by=self.error.by_digest if isinstance(self.error, SupersededError) else "",
                ),
            )
        if not self.finished:
            return ClusterOutcome(self.name, ClusterStatus.NOT_DEPLOYED, 0)
        dry = self.ctx.runner.dry_run
        return ClusterOutcome(self.name, ClusterStatus.DRY_RUN if dry else ClusterStatus.SUCCEEDED, 0)


def several(ctx: Context) -> bool:
    return len(ctx.settings.kube_contexts) > 1


def clusters_of(ctx: Context, report: Report) -> list[Cluster]:
    """The run's clusters. One context: the command's own context and report, unchanged."""
    contexts = ctx.settings.kube_contexts
    if len(contexts) == 1:
        # One wave of one cluster (FLUX_CI_WAVES) is that cluster alone, with its wave's tag.
        alone = replace(ctx, settings=ctx.settings.for_cluster(contexts[0])) if ctx.settings.waves else ctx
        return [Cluster(contexts[0] or "", alone, report)]
    return [
        Cluster(
            name,
            replace(
                ctx,
                settings=ctx.settings.for_cluster(name),
                progress=ctx.progress.labelled(name),
                cancelled=threading.Event(),
            ),
            Report(command=report.command),
        )
        for name in contexts
        if name is not None
    ]


def each(ctx: Context, clusters: Sequence[Cluster], work: Callable[[Cluster], T]) -> list[T]:
    """`work` for every cluster at once, each outcome recorded on its cluster; then the most severe
    failure is raised, naming every cluster. A signal is raised at once."""
    if len(clusters) == 1:
        return [_recorded(clusters[0], work)]
    pool = ThreadPoolExecutor(max_workers=len(clusters), thread_name_prefix="cluster")
    try:
        futures = [pool.submit(_recorded, cluster, work) for cluster in clusters]
        results: list[T] = []
        for future in futures:
            with contextlib.suppress(FluxCIError):  # recorded on its cluster; raised below, once all ended
                results.append(ctx.result(future))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    failed = [cluster for cluster in clusters if cluster.error is not None]
    if failed:
        raise combined(clusters)
    return results


def _recorded(cluster: Cluster, work: Callable[[Cluster], T]) -> T:
    try:
        return work(cluster)
    except FluxCIError as exc:
        cluster.error = exc
        raise


def combined(clusters: Sequence[Cluster]) -> FluxCIError:
    """The most severe of the clusters' failures, its message naming how every cluster ended."""
    errors = [cluster.error for cluster in clusters if cluster.error is not None]
    worst = min(errors, key=lambda error: _rank(error.exit_code))
    lines = [f"cluster {cluster.name}: {cluster.error.message}" for cluster in clusters if cluster.error]
    succeeded = [cluster.name for cluster in clusters if cluster.error is None and cluster.finished]
    lines.append(f"succeeded in: {', '.join(succeeded) if succeeded else 'no cluster'}")
    worst.message = "\n".join(lines)
    worst.args = (worst.message,)
    return worst


def _rank(code: ExitCode) -> int:
    return SEVERITY.index(code) if code in SEVERITY else 0


def merge(report: Report, clusters: Sequence[Cluster]) -> None:
    """Several clusters: every row of their reports, named by its cluster, into the command's report."""
    if len(clusters) == 1:
        return
    report.sources = [replace(s, cluster=c.name) for c in clusters for s in c.report.sources]
    report.consumers = [replace(s, cluster=c.name) for c in clusters for s in c.report.consumers]
    report.diagnostics = [replace(d, cluster=c.name) for c in clusters for d in c.report.diagnostics]
    report.scope = [f"{c.name}: {item}" for c in clusters for item in c.report.scope]
    report.notes += [f"{c.name}: {item}" for c in clusters for item in c.report.notes]
    report.changes = [replace(change, cluster=c.name) for c in clusters for change in c.report.changes]
    if any(c.report.changed is not None for c in clusters):
        report.changed = any(c.report.changed for c in clusters)
    report.clusters = [cluster.outcome() for cluster in clusters]
