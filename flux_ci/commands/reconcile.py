"""`reconcile` and `wait`: the second half of a deploy, for a digest pushed by an earlier job."""

from __future__ import annotations

from flux_ci.config.plan import pushed_tags
from flux_ci.context import Context
from flux_ci.delivery.prepare import prepared
from flux_ci.delivery.settle import Settling, settle
from flux_ci.kube import notify
from flux_ci.report.models import Artifact, Report


def expected_artifact(ctx: Context) -> Artifact:
    """For reconcile/wait without a push in this run: the digest comes from FLUX_CI_DIGEST. Without a
    repository (`wait` for the consumers FLUX_CI_WAIT_FOR names) no tag of it can be checked."""
    s = ctx.settings
    return Artifact(
        s.repository or "",
        tuple(pushed_tags(s)) if s.repository else (),
        s.required("digest"),
        s.source or "",
        s.revision or "",
    )


def run_reconcile(ctx: Context, report: Report) -> None:
    """Ask the sources to fetch FLUX_CI_DIGEST and wait until they have (consumers not waited for)."""
    artifact = report.artifact = expected_artifact(ctx)
    if not ctx.settings.verify:
        notify.trigger_only(ctx, report, artifact)
        return
    tools = ["oras", "kubectl"]
    with prepared(ctx, report, tools, tags=artifact.tags, digest=artifact.digest, consumers=False) as run:
        run.each(ctx, lambda ready: Settling.of(ready, run.registry, artifact).sources())


def run_wait(ctx: Context, report: Report) -> None:
    """Wait until the sources hold FLUX_CI_DIGEST and their consumers applied it; requests nothing
    from the sources (a re-run after a fix still asks the consumers to try again)."""
    artifact = report.artifact = expected_artifact(ctx)
    tools = ["oras", "kubectl"]
    with prepared(ctx, report, tools, tags=artifact.tags, digest=artifact.digest, patches=False) as run:
        run.each(ctx, lambda ready: settle(Settling.of(ready, run.registry, artifact), request_sources=False))
