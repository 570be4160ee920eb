"""The commands' work: discover → push → reconcile → wait, under one deadline, filling one `Report`.

Nothing here prints except through `ctx.progress`; nothing here decides an exit code.
"""

from __future__ import annotations

from collections.abc import Sequence

from flux_ci import fluxobjects as fo
from flux_ci.consumers import find_consumers, read_consumers, wait_consumers
from flux_ci.consumers import preflight as consumers_preflight
from flux_ci.context import Context
from flux_ci.fluxobjects import Obj
from flux_ci.models import Artifact, Report, Status
from flux_ci.publish import check_push_config, push, pushed_tags
from flux_ci.settings import Settings
from flux_ci.sources import find_sources, preflight, read_sources, sync_sources
from flux_ci.toolcheck import require_tools


def expected_artifact(ctx: Context) -> Artifact:
    """For reconcile/wait without a push in this run: the digest comes from FLUX_CI_DIGEST."""
    s = ctx.settings
    return Artifact(
        s.repository or "",
        tuple(pushed_tags(s) if s.tag else []),
        s.required("digest"),
        s.source or "",
        s.revision or "",
    )


def discover(ctx: Context, report: Report, *, tags: Sequence[str]) -> list[Obj]:
    """Find the sources and refuse setups that can never work, before anything is pushed."""
    require_tools(ctx, ["kubectl"])
    _require_source_config(ctx.settings)
    with ctx.progress.step("discover", ctx.settings.repository or ctx.settings.ocirepository or ""):
        found = find_sources(ctx)
        report.sources = read_sources(found)  # what a failing preflight reports: every source found
        sources = _preflight(ctx, found, tags=tags, digest=None)
        report.sources = read_sources(sources)
        for obj in sources:
            kind, value = fo.followed_ref(obj)
            ctx.progress.note(f"{fo.ref_of(obj)} follows {kind} {value}")
    return sources


def reconcile(ctx: Context, report: Report, artifact: Artifact, sources: list[Obj]) -> list[Obj]:
    """Returns the sources that follow the artifact (a digest pin can only be checked now)."""
    with ctx.progress.step("reconcile", artifact.digest):
        sources = _preflight(ctx, sources, tags=artifact.tags, digest=artifact.digest)
        sync_sources(ctx, sources, artifact.digest, report)
    return sources


def _preflight(ctx: Context, sources: list[Obj], *, tags: Sequence[str], digest: str | None) -> list[Obj]:
    strict = ctx.settings.ocirepository is not None
    return preflight(sources, tags=tags, digest=digest, strict=strict, progress=ctx.progress)


def wait(ctx: Context, report: Report, artifact: Artifact, sources: list[Obj]) -> None:
    with ctx.progress.step("wait", artifact.digest):
        consumers = find_consumers(ctx, [fo.ref_of(obj) for obj in sources])
        report.consumers = read_consumers(consumers)
        consumers_preflight(consumers)
        if not consumers:
            ctx.progress.note("no Kustomization or HelmRelease reads these sources: nothing to wait for")
        wait_consumers(ctx, consumers, artifact.digest, artifact.revision or None, report)


def run_push(ctx: Context, report: Report) -> None:
    check_push_config(ctx.settings)  # configuration first: it is the cheapest thing to fix
    require_tools(ctx, ["flux", "oras"])
    push(ctx, report)
    _finish(ctx, report)


def run_reconcile(ctx: Context, report: Report) -> None:
    artifact = expected_artifact(ctx)
    report.artifact = artifact
    sources = discover(ctx, report, tags=artifact.tags)
    reconcile(ctx, report, artifact, sources)
    _finish(ctx, report)


def run_wait(ctx: Context, report: Report) -> None:
    artifact = expected_artifact(ctx)
    report.artifact = artifact
    sources = discover(ctx, report, tags=artifact.tags) if _has_source_config(ctx.settings) else []
    wait(ctx, report, artifact, sources)
    _finish(ctx, report)


def run_deploy(ctx: Context, report: Report) -> None:
    """push → reconcile → wait; the cluster is checked first so a hopeless deploy pushes nothing."""
    check_push_config(ctx.settings)
    require_tools(ctx, ["flux", "oras"])
    sources = discover(ctx, report, tags=pushed_tags(ctx.settings))
    artifact = push(ctx, report)
    sources = reconcile(ctx, report, artifact, sources)
    wait(ctx, report, artifact, sources)
    _finish(ctx, report)


def run_status(ctx: Context, report: Report) -> None:
    """Every source following the repository and every consumer reading them, as they are now."""
    require_tools(ctx, ["kubectl"])
    _require_source_config(ctx.settings)
    sources = find_sources(ctx)
    report.sources = read_sources(sources)
    report.consumers = read_consumers(find_consumers(ctx, [fo.ref_of(obj) for obj in sources]))
    if ctx.settings.digest:
        report.artifact = expected_artifact(ctx)


def _require_source_config(settings: Settings) -> None:
    if settings.ocirepository is None:
        settings.require("repository")


def _has_source_config(settings: Settings) -> bool:
    return settings.repository is not None or settings.ocirepository is not None or settings.wait_for is None


def _finish(ctx: Context, report: Report) -> None:
    if ctx.runner.dry_run:
        report.status = Status.DRY_RUN
