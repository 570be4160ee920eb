"""Before anything is pushed: what may we see and do, which sources follow what this run pushes, and
which consumers read them. Setups that can never succeed stop here (exit 2, or 5 for permissions).

Every right the command may use is asked of the API server up front (`access`), so a missing right is
named with its verb, resource and scope: `patch` on the sources for FLUX_CI_NOTIFY=annotate (missing:
exit 5, before the moving tag moves, which Flux would deploy at its next interval), and `patch` on the
consumers, which a re-run (or `wait`) uses to ask them to try the digest again (missing: they are
judged as they are, and the run says so). A Receiver (`receiver`) or the interval (`none`) need no
`patch` at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from flux_ci.context import Context
from flux_ci.kube import fluxobjects as fo
from flux_ci.kube.access import (
    CONSUMER_KINDS,
    SOURCE_KIND,
    Access,
    patch_checks,
    read_checks,
    require_source_patch,
)
from flux_ci.kube.consumers import (
    check_named,
    find_consumers,
    named_consumers,
    note_patchable,
    refuse_suspended,
    require_health,
)
from flux_ci.kube.found import Found, Prefetched
from flux_ci.kube.sources import classify, find_sources, sources_of

__all__ = ["Found", "discover"]


def discover(
    ctx: Context,
    *,
    tags: Sequence[str],
    digest: str | None,
    needs_patch: bool,
    asks_consumers: bool = False,
    find: bool = True,
    survey: bool = False,
) -> Found:
    """Find our sources and their consumers (unless not `find`), checking every permission the
    command will use.

    `needs_patch`: the command requests reconciliation of the sources through the annotation, so
    `patch` on them must be allowed. `asks_consumers`: it may ask the consumers too (annotate mode:
    a re-run, `wait`); which it may is recorded. `survey` (status): report every source following
    the repository and refuse nothing.
    """
    with ThreadPoolExecutor(max_workers=len(CONSUMER_KINDS) + 2, thread_name_prefix="discover") as pool:
        settings = ctx.settings
        access = Access(ctx)
        named_source = settings.ocirepository_ref()
        named = settings.wait_for_refs()
        namespaces = sorted({settings.namespace, *(r.namespace for r in [named_source, *(named or [])] if r)})
        by_consumers = named is not None and named_source is None and settings.repository is None
        listed = [SOURCE_KIND] if named_source is None and not by_consumers else []
        listed += list(CONSUMER_KINDS) if find and named is None else []
        first = read_checks([SOURCE_KIND, *CONSUMER_KINDS], namespaces)
        if needs_patch:  # usually the sources live in FLUX_CI_NAMESPACE: ask now, in the same batch
            first += patch_checks([SOURCE_KIND], namespaces)
        if asks_consumers:  # the consumers are usually there too: no round trip of their own later
            first += patch_checks(CONSUMER_KINDS, namespaces)
        found = Found(prefetched=Prefetched(ctx, pool, listed))
        access.ask(first)
        consumers = named_consumers(ctx, named) if find and named else []
        if by_consumers:
            candidates = sources_of(ctx, consumers, found)
            tags = ()  # chosen by their consumers: whatever tag they follow
        else:
            candidates = find_sources(ctx, access, found, named_source)
        found.sources = candidates if survey else classify(ctx, candidates, found, tags=tags, digest=digest)
        source_namespaces = sorted({fo.ref_of(obj).namespace for obj in found.sources})
        later = read_checks(CONSUMER_KINDS, source_namespaces) if find and named is None else []
        if needs_patch:
            later += patch_checks([SOURCE_KIND], source_namespaces)
        access.ask(later)
        if needs_patch:
            require_source_patch(access, source_namespaces)
        if not find:
            return found
        if named is not None:
            found.consumers = consumers
            check_named(found, named)
        else:
            find_consumers(ctx, access, found, source_namespaces, strict=not survey)
        refuse_suspended(found.consumers)
        if settings.require_health and not survey:
            require_health(found.consumers)
        if asks_consumers:
            consumer_namespaces = sorted({fo.ref_of(obj).namespace for obj in found.consumers})
            access.ask(patch_checks(CONSUMER_KINDS, consumer_namespaces))
            note_patchable(access, found)
        return found
