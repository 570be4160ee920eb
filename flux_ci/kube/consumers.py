"""Which Kustomizations and HelmReleases read our sources: the ones FLUX_CI_WAIT_FOR names, or every
one whose sourceRef/chartRef names one of them. Nothing waited for may be invisible: a consumer flux-ci
cannot see is never waited for, and its failure never seen, so any kind or namespace it may not read
where a consumer of the sources may live (any namespace: a consumer may read a source of another
namespace) is exit 5 before anything is pushed, unless FLUX_CI_WAIT_FOR names the consumers."""

from __future__ import annotations

from collections.abc import Sequence

from flux_ci.context import Context
from flux_ci.errors import ClusterError, ConfigError
from flux_ci.kube import fluxobjects as fo
from flux_ci.kube.access import CONSUMER_KINDS, Access
from flux_ci.kube.cluster import ForbiddenError, get_object
from flux_ci.kube.fluxobjects import Obj
from flux_ci.kube.found import Found
from flux_ci.kube.sources import list_visible
from flux_ci.report.models import Checks, ObjectRef
from flux_ci.tools.kubectl import RESOURCES


def named_consumers(ctx: Context, named: Sequence[ObjectRef]) -> list[Obj]:
    """The consumers FLUX_CI_WAIT_FOR names; one that does not exist is a configuration error."""
    consumers = []
    for ref in named:
        try:
            consumers.append(get_object(ctx, ref))
        except ClusterError as exc:
            if exc.message != f"{ref} not found":
                raise
            raise ConfigError(f"FLUX_CI_WAIT_FOR names {ref}, which does not exist") from None
    return consumers


def check_named(found: Found, named: Sequence[ObjectRef]) -> None:
    """Every consumer FLUX_CI_WAIT_FOR names reads one of the sources (exit 2 otherwise: a typo, or
    another environment's consumer, would be waited for until the deadline)."""
    ours = {fo.ref_of(obj) for obj in found.sources}
    strays = [
        f"{fo.ref_of(obj)} reads {fo.consumer_source(obj) or 'no source'}"
        for obj in found.consumers
        if fo.consumer_source(obj) not in ours
    ]
    if strays:
        raise ConfigError(
            "FLUX_CI_WAIT_FOR names consumers that read none of the sources this run deploys ("
            + ", ".join(map(str, sorted(ours)))
            + "): "
            + "; ".join(strays)
        )
    found.scope.append(
        "consumers: "
        + (", ".join(map(str, named)) + " (FLUX_CI_WAIT_FOR)" if named else "none (FLUX_CI_WAIT_FOR=none)")
    )


def find_consumers(
    ctx: Context, access: Access, found: Found, source_namespaces: Sequence[str], *, strict: bool
) -> None:
    """Every consumer whose source is one of ours. `strict` (not `status`): what cannot be seen, or
    no consumer at all, is an error."""
    wanted = {fo.ref_of(obj) for obj in found.sources}
    namespaces = sorted({ctx.settings.namespace, *source_namespaces})
    hidden: list[str] = []

    def search(kind: str) -> list[Obj]:
        try:
            objects, where = list_visible(ctx, access, found, kind, namespaces)
        except ForbiddenError as exc:
            hidden.append(exc.message)
            return []
        if where != "all namespaces" and not where.startswith("nowhere"):
            hidden.append(f"{access.missing_read(kind)} (searched only {where})")
        return [obj for obj in objects if fo.consumer_source(obj) in wanted]

    results = [search(kind) for kind in CONSUMER_KINDS]  # their lists were started up front
    found.consumers = sorted((obj for objects in results for obj in objects), key=fo.ref_of)
    if hidden and strict:
        seen = ", ".join(str(fo.ref_of(obj)) for obj in found.consumers) or "none"
        raise ClusterError(
            "cannot see every Kustomization/HelmRelease that may read "
            + ", ".join(str(ref) for ref in sorted(wanted))
            + f": the identity lacks {'; '.join(hidden)}. A consumer in a namespace it cannot read "
            "(one may read a source of another namespace) would never be waited for, and its failure "
            "never seen. Nothing was pushed. Grant list/watch on kustomizations and helmreleases "
            "cluster-wide (examples/rbac/flux-ci-cluster-read.yaml), or name the consumers in "
            f"FLUX_CI_WAIT_FOR (the ones it can see: {seen})"
        )
    for limit in hidden:
        ctx.progress.note(f"not searched: {limit}")
    if not found.consumers and strict:
        raise ConfigError(
            "no Kustomization or HelmRelease reads "
            + ", ".join(str(ref) for ref in sorted(wanted))
            + f" (searched {'; '.join(found.scope)}, for a spec.sourceRef/spec.chartRef naming it). "
            "Exit 0 would prove nothing: create the consumer, name it in FLUX_CI_WAIT_FOR, or set "
            "FLUX_CI_WAIT_FOR=none to wait for the sources only"
        )


def refuse_suspended(consumers: Sequence[Obj]) -> None:
    suspended = [fo.ref_of(obj) for obj in consumers if obj.get("spec", {}).get("suspend")]
    if suspended:
        names = ", ".join(str(ref) for ref in suspended)
        raise ConfigError(f"suspended, so they will never apply this artifact: {names}")


def require_health(consumers: Sequence[Obj]) -> None:
    """FLUX_CI_REQUIRE_HEALTH=true: a consumer whose Ready would say only that the manifests were
    applied (nothing waited for) is exit 2, before anything is pushed, naming the field to set."""
    apply_only = []
    for obj in consumers:
        checks, fix = fo.checks_of(obj)
        if checks is Checks.APPLY:
            apply_only.append(f"{fo.ref_of(obj)}: {fix}")
    if apply_only:
        listed = "\n".join(f"  - {line}" for line in apply_only)
        raise ConfigError(
            "FLUX_CI_REQUIRE_HEALTH=true, and the Ready of these consumers covers only the apply of the "
            f"manifests, not the health of what they run. Nothing was pushed:\n{listed}"
        )


def note_patchable(access: Access, found: Found) -> None:
    """Which consumers flux-ci may ask to reconcile (a re-run asks them to try the digest again)."""
    found.patchable = {
        ref for obj in found.consumers if access.may("patch", (ref := fo.ref_of(obj)).kind, ref.namespace)
    }


def patch_note(ref: ObjectRef) -> str:
    """Why a consumer is judged as it is, when flux-ci may not ask it to reconcile."""
    return (
        f"{ref}: may not patch {RESOURCES[ref.kind]} in namespace {ref.namespace}: not asked to try "
        "again, so its current state for this digest decides (grant `patch` to let a re-run ask it)"
    )
