"""Which OCIRepositories follow what this run pushes: found by FLUX_CI_OCIREPOSITORY, or by the
consumers FLUX_CI_WAIT_FOR names, or as every OCIRepository whose spec.url is FLUX_CI_REPOSITORY. A
setup that can never fetch the artifact stops here (exit 2), before anything is pushed."""

from __future__ import annotations

from collections.abc import Sequence

from flux_ci.context import Context
from flux_ci.errors import ClusterError, ConfigError
from flux_ci.kube import fluxobjects as fo
from flux_ci.kube.access import SOURCE_KIND, Access
from flux_ci.kube.cluster import ForbiddenError, NotInstalledError, get_object, list_objects
from flux_ci.kube.fluxobjects import Obj
from flux_ci.kube.found import Found
from flux_ci.report.models import ObjectRef


def find_sources(ctx: Context, access: Access, found: Found, named: ObjectRef | None) -> list[Obj]:
    """FLUX_CI_OCIREPOSITORY if set, else every OCIRepository whose spec.url is the repository."""
    repository = ctx.settings.repository
    if named is not None:
        obj = get_object(ctx, named)
        if repository and fo.source_url(obj) != repository:
            raise ConfigError(
                f"{named} follows {fo.source_url(obj)}, not {repository} (FLUX_CI_OCIREPOSITORY, "
                "FLUX_CI_REPOSITORY): it would never fetch the pushed artifact"
            )
        found.scope.append(f"OCIRepository: {named} (named in FLUX_CI_OCIREPOSITORY)")
        return [obj]
    everything, where = list_visible(ctx, access, found, SOURCE_KIND, [ctx.settings.namespace])
    matching = [obj for obj in everything if fo.source_url(obj) == repository]
    if not matching:
        seen = sorted({fo.source_url(obj) for obj in everything})
        hint = f"; the OCIRepositories it can see follow: {', '.join(seen)}" if seen else ""
        hidden = where != "all namespaces"
        message = (
            f"no OCIRepository in {where} follows {repository}{hint}. Create one with spec.url: "
            f"{repository}, or name it in FLUX_CI_OCIREPOSITORY"
        )
        if hidden:
            raise ClusterError(f"{message} (listing OCIRepositories {access.missing_read(SOURCE_KIND)})")
        raise ConfigError(message)
    return sorted(matching, key=fo.ref_of)


def sources_of(ctx: Context, consumers: Sequence[Obj], found: Found) -> list[Obj]:
    """`wait` with FLUX_CI_WAIT_FOR and no repository: the OCIRepositories those consumers read."""
    refs = []
    for obj in consumers:
        source = fo.consumer_source(obj)
        if source is None or source.kind != SOURCE_KIND:
            raise ConfigError(
                f"{fo.ref_of(obj)} (FLUX_CI_WAIT_FOR) reads {source or 'no source'}, not an OCIRepository: "
                "flux-ci waits for artifacts of OCI repositories only"
            )
        refs.append(source)
    unique = sorted(set(refs))
    found.scope.append(f"OCIRepository: {', '.join(map(str, unique))} (read by FLUX_CI_WAIT_FOR)")
    return [get_object(ctx, ref) for ref in unique]


def list_visible(
    ctx: Context, access: Access, found: Found, kind: str, namespaces: Sequence[str]
) -> tuple[list[Obj], str]:
    """Every object of `kind` the identity may see: all namespaces, or else each namespace allowed.

    Returns the objects and where they were searched; records that scope for the report and the
    watches that will cover it. A kind whose CRD is not installed has no objects anywhere.
    """
    if access.may_read(kind):
        try:
            objects = (
                found.prefetched.cluster_wide(ctx, kind) if found.prefetched else list_objects(ctx, kind)
            )
        except NotInstalledError:
            found.scope.append(f"{kind}: not installed")
            return [], "nowhere (not installed)"
        found.scope.append(f"{kind}: all namespaces")
        found.watchable_everywhere.add(kind)
        return objects, "all namespaces"
    allowed = [ns for ns in namespaces if access.may_read(kind, ns)]
    if not allowed:
        # kubectl resolves the kind before asking the server: an absent CRD lists as empty, an
        # installed one the identity may not read raises ForbiddenError.
        try:
            list_objects(ctx, kind, namespaces[0])
        except NotInstalledError:
            found.scope.append(f"{kind}: not installed")
            return [], "nowhere (not installed)"
        except ForbiddenError:
            pass
        checks = "; ".join(access.missing_read(kind, ns) for ns in ["", *namespaces])
        raise ForbiddenError(f"the Kubernetes identity may not read {kind} objects: it lacks {checks}")
    try:
        objects = [obj for ns in allowed for obj in list_objects(ctx, kind, ns)]
    except NotInstalledError:
        found.scope.append(f"{kind}: not installed")
        return [], "nowhere (not installed)"
    where = f"namespace{'s' if len(allowed) > 1 else ''} {', '.join(allowed)}"
    denied = [ns for ns in namespaces if ns not in allowed]
    found.scope.append(
        f"{kind}: only {where} (not allowed: {access.missing_read(kind)}"
        + "".join(f"; {access.missing_read(kind, ns)}" for ns in denied)
        + ")"
    )
    return objects, where


def classify(
    ctx: Context, sources: Sequence[Obj], found: Found, *, tags: Sequence[str], digest: str | None
) -> list[Obj]:
    """The sources this run can reach; exit 2 at once where it can never succeed.

    A source following another tag, a semver range or a pinned digest is another environment's:
    it is left out with a note, unless it was named in FLUX_CI_OCIREPOSITORY or no source is left.
    A suspended source that follows us can never fetch the artifact, nor can a source that verifies
    signatures (`spec.verify`) an artifact this run pushes unsigned (`digest` None: this run pushes).
    """
    strict = ctx.settings.ocirepository is not None
    ours, problems = [], []
    for obj in sources:
        reason = _follows_elsewhere(obj, tags, digest)
        if reason:
            found.left_out.append(reason)
            continue
        ours.append(obj)
        if obj.get("spec", {}).get("suspend"):
            ref = fo.ref_of(obj)
            problems.append(f"{ref} is suspended (flux resume source oci {ref.name} -n {ref.namespace})")
        if digest is None and ctx.settings.sign == "none" and (unsigned := _needs_signature(obj)):
            problems.append(unsigned)
    if problems or not ours or (strict and found.left_out):
        listed = "\n".join(f"  - {problem}" for problem in [*problems, *found.left_out])
        raise ConfigError(f"the OCIRepository setup can never fetch this artifact:\n{listed}")
    for reason in found.left_out:
        ctx.progress.note(f"left out: {reason}")
    return ours


def _needs_signature(obj: Obj) -> str | None:
    verify = obj.get("spec", {}).get("verify")
    if not isinstance(verify, dict) or not verify:
        return None
    provider = verify.get("provider", "cosign")
    return (
        f"{fo.ref_of(obj)} accepts only signed artifacts (spec.verify.provider: {provider}), and "
        "FLUX_CI_SIGN is none: set FLUX_CI_SIGN=cosign with COSIGN_PRIVATE_KEY and COSIGN_PASSWORD "
        "(or FLUX_CI_SIGN=cosign-keyless), matching the key or identity the source verifies"
    )


def _follows_elsewhere(obj: Obj, tags: Sequence[str], digest: str | None) -> str | None:
    ref = fo.ref_of(obj)
    kind, value = fo.followed_ref(obj)
    if kind == "digest":
        if digest is None:
            return f"{ref} pins digest {value}: a push makes a new digest, which it would never fetch"
        return None if value == digest else f"{ref} pins digest {value}, not {digest}"
    if kind == "semver":
        return f"{ref} follows the semver range {value!r}, not a tag this run pushes"
    if tags and value not in tags:
        return f"{ref} follows tag {value!r}, but this run pushes tags: {', '.join(tags)}"
    return None
