"""The watches of one cluster, and the report rows they leave: each object as last seen, with
flux-ci's verdict on it then."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from flux_ci.context import Context
from flux_ci.kube import fluxobjects as fo
from flux_ci.kube.discovery import Found
from flux_ci.kube.engine import Observer
from flux_ci.kube.fluxobjects import Obj
from flux_ci.report.models import ConsumerState, Report, SourceState

R = TypeVar("R", SourceState, ConsumerState)


@contextmanager
def observing(ctx: Context, report: Report, found: Found) -> Iterator[Observer]:
    """Watch every kind/namespace involved from now on; the report shows each object as last seen.

    The rows are written once, when the watches stop: at the end, or when a rollback takes over
    (`hand_over`), whose own watches then write the newer rows. Never a stale row after a fresh one.
    """
    observer = Observer(ctx, found.watch_groups()).start([*found.sources, *found.consumers])
    try:
        yield observer
    finally:
        if not observer.reported:
            hand_over(report, found, observer)


def hand_over(report: Report, found: Found, observer: Observer) -> None:
    """Stop the watches for good and write their rows now; they write nothing later."""
    observer.stop()
    sources = [seen_source(observer, obj) for obj in found.sources]
    consumers = [seen_consumer(observer, obj) for obj in found.consumers]
    report.sources = updated(report.sources, sources)
    report.consumers = updated(report.consumers, consumers)
    observer.reported = True


def updated(rows: list[R], seen: list[R]) -> list[R]:
    """The rows with the objects just seen in their place (a rollback watches only some of them)."""
    latest = {row.ref: row for row in seen}
    kept = [latest.pop(row.ref, row) for row in rows]
    return kept + list(latest.values())


def last_seen(observer: Observer, obj: Obj) -> tuple[Obj, str]:
    """The object as the watches last saw it, and flux-ci's verdict on it then ("" if not judged)."""
    ref = fo.ref_of(obj)
    verdict = observer.verdicts.get(ref)
    return observer.latest.get(ref, obj), str(verdict.phase) if verdict else ""


def seen_source(observer: Observer, obj: Obj) -> SourceState:
    return fo.source_state(*last_seen(observer, obj))


def seen_consumer(observer: Observer, obj: Obj) -> ConsumerState:
    return fo.consumer_state(*last_seen(observer, obj))


def holds(observer: Observer, obj: Obj, digest: str) -> bool:
    """The source, as last seen, holds `digest`."""
    latest = observer.latest.get(fo.ref_of(obj), obj)
    return fo.revision_has_digest(fo.source_revision(latest), digest)
