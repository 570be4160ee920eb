"""Kustomizations and HelmReleases that read the sources: find them (or take FLUX_CI_WAIT_FOR) and
wait until each has applied the digest and is Ready for its current generation.
"""

from __future__ import annotations

from collections.abc import Sequence

from flux_ci import fluxobjects as fo
from flux_ci.cluster import get_object, list_objects
from flux_ci.context import Context
from flux_ci.errors import ConfigError, ConsumerFailedError
from flux_ci.fluxobjects import Obj
from flux_ci.models import ConsumerState, ObjectRef, Report
from flux_ci.watching import wait_all

CONSUMER_KINDS = ("Kustomization", "HelmRelease")


def find_consumers(ctx: Context, sources: Sequence[ObjectRef]) -> list[Obj]:
    """FLUX_CI_WAIT_FOR if set (`none` → nothing), else every consumer whose source is one of ours."""
    named = ctx.settings.wait_for_refs()
    if named is not None:
        return [get_object(ctx, ref) for ref in named]
    wanted = set(sources)
    found = [
        obj for kind in CONSUMER_KINDS for obj in list_objects(ctx, kind) if fo.consumer_source(obj) in wanted
    ]
    return sorted(found, key=fo.ref_of)


def preflight(consumers: Sequence[Obj]) -> None:
    suspended = [fo.ref_of(obj) for obj in consumers if obj.get("spec", {}).get("suspend")]
    if suspended:
        names = ", ".join(str(ref) for ref in suspended)
        raise ConfigError(f"suspended, so they will never apply this artifact: {names}")


def wait_consumers(
    ctx: Context, consumers: Sequence[Obj], digest: str, origin_revision: str | None, report: Report
) -> None:
    """Wait until every consumer applied the digest; `report.consumers` shows them as last seen."""

    def judge(_ref: ObjectRef, obj: Obj) -> fo.Verdict:
        return fo.consumer_verdict(obj, digest, origin_revision)

    def fail(ref: ObjectRef, message: str) -> ConsumerFailedError:
        return ConsumerFailedError(f"{ref} failed to apply {digest}: {message}")

    latest: dict[ObjectRef, Obj] = {}
    refs = [fo.ref_of(obj) for obj in consumers]
    try:
        if not ctx.runner.dry_run:
            wait_all(ctx, refs, judge, fail, what=f"the consumers to apply {digest}", latest=latest)
    finally:
        report.consumers = [fo.consumer_state(latest.get(fo.ref_of(obj), obj)) for obj in consumers]


def read_consumers(consumers: Sequence[Obj]) -> list[ConsumerState]:
    return [fo.consumer_state(obj) for obj in consumers]
