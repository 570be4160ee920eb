"""`push`, `deploy` and `promote`: the commands that change what the clusters follow."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from types import ModuleType

from flux_ci.config.plan import moving_tags, pushed_tags
from flux_ci.context import Context
from flux_ci.delivery.prepare import Prepared, prepared
from flux_ci.delivery.settle import Settling, settle
from flux_ci.errors import ConsumerFailedError, DeadlineExceededError, RegistryError
from flux_ci.kube import fluxobjects as fo
from flux_ci.kube import notify, receiver_preflight
from flux_ci.kube.history import digest_in
from flux_ci.registry.client import Registry, open_registry
from flux_ci.registry.publish import push
from flux_ci.report.models import Artifact, ObjectRef, Report, TagMove
from flux_ci.tools.toolcheck import require_tools


def run_push(ctx: Context, report: Report) -> None:
    require_tools(ctx.runner, ctx.prefetched, ["flux", "oras"])
    with open_registry(ctx) as registry:
        report.artifact = push(ctx, registry)


def run_deploy(ctx: Context, report: Report) -> None:
    """push → reconcile → wait (wave by wave with FLUX_CI_WAVES); every cluster is checked first so a
    hopeless deploy pushes nothing."""
    if not ctx.settings.verify:  # no cluster access at all: push, trigger the Receiver, verify nothing
        receiver_preflight.preflight(ctx, read=False)
        run_push(ctx, report)
        if report.artifact is not None:
            notify.trigger_only(ctx, report, report.artifact)
        return
    tools = ["flux", "oras", "kubectl"]
    s = ctx.settings
    before: Applied | None = None
    try:
        # Each cluster's sources follow its own tags (a wave's cluster, its wave's tag: `for_cluster`).
        with notify.unverified_hint(ctx), prepared(ctx, report, tools, tags=pushed_tags, digest=None) as run:
            before = applied(run)
            if s.waves:  # push the immutable tag alone; each wave moves its own tag in turn
                artifact = report.artifact = push(ctx, run.registry)
                _waves().deliver(ctx, report, run, artifact, partial(remember, ctx, run.registry))
                return
            recorded = remember(ctx, run.registry, moving_tags(s))
            artifact = report.artifact = push(ctx, run.registry)
            report.tag_moves = [replace(move, after=artifact.digest) for move in recorded]
            _deliver(ctx, report, run, artifact, recorded)
    finally:
        record_changed(report, before)


def run_promote(ctx: Context, report: Report) -> None:
    """Point the moving tags (FLUX_CI_EXTRA_TAGS, or each wave's in turn) at a digest pushed and tested
    before, then wait with the same exactness as deploy. Nothing is packaged, and the immutable tag
    never changes."""
    s = ctx.settings
    moving = moving_tags(s)
    tools = ["oras", "kubectl"] if s.verify else ["oras"]
    with open_registry(ctx) as registry:
        # With FLUX_CI_WAVES the artifact gains each wave's tag as that wave moves it.
        artifact = report.artifact = _promoted(ctx, registry, () if s.waves else moving)
        if not s.verify:
            require_tools(ctx.runner, ctx.prefetched, tools)
            receiver_preflight.preflight(ctx, read=False)
            _move_tags(ctx, registry, artifact, moving)
            notify.trigger_only(ctx, report, artifact)
            return
        before: Applied | None = None
        try:
            with prepared(
                ctx, report, tools, tags=moving_tags, digest=artifact.digest, registry=registry
            ) as run:
                before = applied(run)
                if s.waves:
                    remembered = partial(remember, ctx, registry, always=True)
                    _waves().deliver(ctx, report, run, artifact, remembered)
                    return
                recorded = remember(ctx, registry, moving, always=True)
                _move_tags(ctx, registry, artifact, moving)
                report.tag_moves = [replace(move, after=artifact.digest) for move in recorded]
                _deliver(ctx, report, run, artifact, recorded if s.rollback else [])
        finally:
            record_changed(report, before)


# Each consumer's applied digest, by (cluster, consumer): the cluster is "" when there is only one.
Applied = dict[tuple[str, ObjectRef], str]


def applied(run: Prepared) -> Applied:
    """What every consumer ran before this run changed anything, as discovery read it."""
    several = len(run.ready) > 1
    return {
        (ready.cluster.name if several else "", fo.ref_of(obj)): digest_in(fo.consumer_revision(obj))
        for ready in run.ready
        for obj in ready.found.consumers
    }


def record_changed(report: Report, before: Applied | None) -> None:
    """`changed`: a consumer ends on an applied digest other than the one it ran before (None when
    discovery never ended: nothing is known). A re-run of the same digest changes nothing."""
    if before is None:
        return
    after = {(state.cluster, state.ref): digest_in(state.revision) for state in report.consumers}
    report.changed = any(digest and digest != before.get(key, "") for key, digest in after.items())


def remember(ctx: Context, registry: Registry, tags: Sequence[str], *, always: bool = False) -> list[TagMove]:
    """Where the moving tags point before this run moves them: for FLUX_CI_ROLLBACK (and for the
    report of a promotion). Costs one registry request per tag, so only when needed."""
    if not tags or not (always or ctx.settings.rollback):
        return []
    repository = ctx.settings.required("repository")
    from flux_ci.delivery import rollback  # noqa: PLC0415 - FLUX_CI_ROLLBACK and promotions only

    with ctx.progress.step("record", ", ".join(tags)):
        moves = rollback.remember(registry, repository, tags)
    for move in moves:
        ctx.progress.note(f"tag {move.tag} points to {move.before or 'nothing'} before this run")
    return moves


def _waves() -> ModuleType:
    from flux_ci.delivery import waves  # noqa: PLC0415 - FLUX_CI_WAVES only

    return waves


def _promoted(ctx: Context, registry: Registry, moving: Sequence[str]) -> Artifact:
    """The artifact to promote: FLUX_CI_DIGEST, else what FLUX_CI_TAG points to; exit 4 if the
    registry does not hold it. The immutable tag is listed when it names the same digest."""
    s = ctx.settings
    repository = s.required("repository")
    with ctx.progress.step("resolve", s.digest or f"{repository}:{s.tag}"):
        tagged = registry.lookup(repository, s.tag) if s.tag else None
        if s.digest is not None:
            if registry.lookup(repository, f"@{s.digest}") is None:
                raise RegistryError(
                    f"the registry does not hold {repository}@{s.digest}: promote points tags at an "
                    "artifact pushed (and tested) before, it never pushes one"
                )
            digest = s.digest
        elif tagged is None:
            raise RegistryError(
                f"{repository}:{s.tag} does not exist: nothing to promote (set FLUX_CI_DIGEST, or "
                "FLUX_CI_TAG to the tag a deploy pushed)"
            )
        else:
            digest = tagged
    immutable = (s.tag,) if s.tag and tagged == digest else ()
    return Artifact(repository, (*immutable, *moving), digest)


def _move_tags(ctx: Context, registry: Registry, artifact: Artifact, moving: Sequence[str]) -> None:
    with ctx.progress.step("promote", f"{', '.join(moving)} -> {artifact.digest}"):
        registry.tag(artifact.repository, artifact.digest, tuple(moving))


def _deliver(
    ctx: Context, report: Report, run: Prepared, artifact: Artifact, recorded: Sequence[TagMove]
) -> None:
    """Every cluster fetches and applies the artifact. On exit 7 or 8 with FLUX_CI_ROLLBACK, the
    moving tags go back to where they pointed (and the clusters with them) before the error goes on."""
    try:
        run.each(ctx, lambda ready: settle(Settling.of(ready, run.registry, artifact)))
    except (ConsumerFailedError, DeadlineExceededError):
        if ctx.settings.rollback and not ctx.runner.dry_run:
            from flux_ci.delivery import rollback  # noqa: PLC0415 - after a failure only

            report.rollback = rollback.roll_back(ctx, report, run, artifact, recorded)
        raise
