"""OCIRepositories: find the ones that follow the repository, refuse setups that can never get the
pushed digest, ask Flux to reconcile, and wait until each has fetched exactly that digest.
"""

from __future__ import annotations

from collections.abc import Sequence

from flux_ci import fluxobjects as fo
from flux_ci.cluster import get_object, list_objects, request_reconcile
from flux_ci.context import Context
from flux_ci.errors import ConfigError, SourceFailedError
from flux_ci.fluxobjects import Obj
from flux_ci.models import ObjectRef, Report, SourceState
from flux_ci.progress import Progress
from flux_ci.watching import wait_all


def find_sources(ctx: Context) -> list[Obj]:
    """FLUX_CI_OCIREPOSITORY if set, else every OCIRepository whose spec.url is the repository."""
    settings = ctx.settings
    repository = settings.repository
    named = settings.ocirepository_ref()
    if named is not None:
        obj = get_object(ctx, named)
        if repository and fo.source_url(obj) != repository:
            raise ConfigError(
                f"{named} follows {fo.source_url(obj)}, not {repository} (FLUX_CI_OCIREPOSITORY, "
                "FLUX_CI_REPOSITORY): it would never fetch the pushed artifact"
            )
        return [obj]
    everything = list_objects(ctx, "OCIRepository")
    matching = [obj for obj in everything if fo.source_url(obj) == repository]
    if not matching:
        seen = sorted({fo.source_url(obj) for obj in everything})
        hint = f"; the cluster's OCIRepositories follow: {', '.join(seen)}" if seen else ""
        raise ConfigError(
            f"no OCIRepository follows {repository}{hint}. Create one with spec.url: {repository}, "
            "or name it in FLUX_CI_OCIREPOSITORY"
        )
    return sorted(matching, key=fo.ref_of)


def preflight(
    sources: Sequence[Obj], *, tags: Sequence[str], digest: str | None, strict: bool, progress: Progress
) -> list[Obj]:
    """The sources this deploy can reach; exit 2 at once where it can never succeed.

    A source following another tag (or pinning another digest) is another environment's: it is
    left out with a note, unless it was named in FLUX_CI_OCIREPOSITORY (`strict`) or no source is
    left. A suspended source that follows us can never fetch the artifact.
    """
    ours, elsewhere, problems = [], [], []
    for obj in sources:
        reason = _follows_elsewhere(obj, tags, digest)
        if reason:
            elsewhere.append(reason)
            continue
        ours.append(obj)
        if obj.get("spec", {}).get("suspend"):
            ref = fo.ref_of(obj)
            problems.append(f"{ref} is suspended (flux resume source oci {ref.name} -n {ref.namespace})")
    if problems or not ours or (strict and elsewhere):
        listed = "\n".join(f"  - {problem}" for problem in [*problems, *elsewhere])
        raise ConfigError(f"the OCIRepository setup can never fetch this artifact:\n{listed}")
    for reason in elsewhere:
        progress.note(f"left out: {reason}")
    return ours


def _follows_elsewhere(obj: Obj, tags: Sequence[str], digest: str | None) -> str | None:
    ref = fo.ref_of(obj)
    kind, value = fo.followed_ref(obj)
    if kind == "digest" and digest and value != digest:
        return f"{ref} pins digest {value}, not the pushed {digest}"
    if kind == "tag" and tags and value not in tags:
        return f"{ref} follows tag {value!r}, but this deploy pushes tags: {', '.join(tags)}"
    return None


def sync_sources(ctx: Context, sources: Sequence[Obj], digest: str, report: Report) -> None:
    """Reconcile every source that does not hold the digest yet, and wait until all of them do.

    `report.sources` shows each source as last seen, whether this returns or raises.
    """
    requested: dict[ObjectRef, str] = {}
    for obj in sources:
        ref = fo.ref_of(obj)
        if fo.source_verdict(obj, digest).phase is fo.Phase.DONE:
            ctx.progress.note(f"{ref} already holds {digest}: nothing to wait for")
            continue
        requested[ref] = request_reconcile(ctx, ref)
        ctx.progress.note(f"{ref}: reconcile requested")

    def judge(ref: ObjectRef, obj: Obj) -> fo.Verdict:
        return fo.source_verdict(obj, digest, requested.get(ref))

    def fail(ref: ObjectRef, message: str) -> SourceFailedError:
        return SourceFailedError(f"{ref} failed to fetch {digest}: {message}")

    latest: dict[ObjectRef, Obj] = {}
    try:
        if not ctx.runner.dry_run:
            wait_all(ctx, list(requested), judge, fail, what=f"the sources to fetch {digest}", latest=latest)
    finally:
        report.sources = [fo.source_state(latest.get(fo.ref_of(obj), obj)) for obj in sources]


def read_sources(sources: Sequence[Obj]) -> list[SourceState]:
    return [fo.source_state(obj) for obj in sources]
