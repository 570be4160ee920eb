"""`diff`: what applying FLUX_CI_PATH would change, per Kustomization reading the sources."""

from __future__ import annotations

from flux_ci.config.plan import pushed_tags
from flux_ci.context import Context
from flux_ci.delivery import fleet
from flux_ci.delivery.prepare import discover_step
from flux_ci.errors import ConfigError
from flux_ci.kube import fluxobjects as fo
from flux_ci.kube.fluxobjects import Obj
from flux_ci.report.models import Change, ChangeKind, Report
from flux_ci.tools import flux
from flux_ci.tools.toolcheck import require_tools


def run_diff(ctx: Context, report: Report) -> None:
    """What applying FLUX_CI_PATH would change, for each Kustomization reading the sources: the real
    `flux diff kustomization` (a server-side dry run). Read-only: nothing is pushed or requested."""
    require_tools(ctx.runner, ctx.prefetched, ["flux", "kubectl"])
    clusters = fleet.clusters_of(ctx, report)
    try:
        fleet.each(ctx, clusters, _diff_cluster)
    finally:
        fleet.merge(report, clusters)


def _diff_cluster(cluster: fleet.Cluster) -> None:
    ctx, report = cluster.ctx, cluster.report
    found = discover_step(ctx, report, tags=pushed_tags(ctx.settings), digest=None, needs_patch=False)
    report.changed = False
    for obj in found.consumers:
        ref = fo.ref_of(obj)
        if ref.kind != "Kustomization":
            report.notes.append(f"{ref} not diffed: flux diff covers Kustomizations only")
            continue
        with ctx.progress.step("diff", str(ref)):
            changes = _diff_one(ctx, obj)
        report.changes += changes
        report.changed = report.changed or bool(changes)
        ctx.progress.note(f"{ref}: {len(changes)} object(s) would change" if changes else f"{ref}: no change")
    cluster.finished = True


def _diff_one(ctx: Context, obj: Obj) -> list[Change]:
    """`flux diff kustomization` of one Kustomization against the local directory its spec.path
    names: exit 1 (a change found) is data; any exit above it is an error."""
    ref = fo.ref_of(obj)
    spec = obj.get("spec") or {}
    relative = str(spec.get("path") or "").strip().strip("/").removeprefix("./").strip("/")
    path = ctx.settings.path / relative if relative not in ("", ".") else ctx.settings.path
    if not path.is_dir():
        raise ConfigError(
            f"{ref} applies {spec.get('path')!r} of the artifact, but {str(path)!r} is not a directory "
            "in FLUX_CI_PATH"
        )
    argv = flux.diff_argv(
        ref.name,
        namespace=ref.namespace,
        path=path,
        context=ctx.settings.kube_context,
        timeout_s=ctx.timeout(),
    )
    result = ctx.runner.run(argv, timeout=ctx.timeout())
    if result.exit_code not in (flux.DIFF_UNCHANGED, flux.DIFF_CHANGED):
        raise flux.diff_failure(ref.name, result.stderr or result.stdout)
    return [
        Change(ref, found.object, ChangeKind(found.change), found.diff)
        for found in flux.parse_diff(result.stdout)
    ]
