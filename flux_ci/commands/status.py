"""`status`: every source following the repository and every consumer reading them, as they are now."""

from __future__ import annotations

from flux_ci.commands.reconcile import expected_artifact
from flux_ci.context import Context
from flux_ci.delivery import fleet
from flux_ci.delivery.prepare import record_found
from flux_ci.kube.discovery import discover
from flux_ci.report.models import Report
from flux_ci.tools.toolcheck import require_tools


def run_status(ctx: Context, report: Report) -> None:
    """Read-only: lists and permission checks, in every cluster at once."""
    require_tools(ctx.runner, ctx.prefetched, ["kubectl"])
    clusters = fleet.clusters_of(ctx, report)

    def survey(cluster: fleet.Cluster) -> None:
        found = discover(cluster.ctx, tags=(), digest=None, needs_patch=False, survey=True)
        record_found(cluster.report, found)
        cluster.finished = True

    try:
        fleet.each(ctx, clusters, survey)
    finally:
        fleet.merge(report, clusters)
    if ctx.settings.digest:
        report.artifact = expected_artifact(ctx)
