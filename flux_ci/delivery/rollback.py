"""FLUX_CI_ROLLBACK=true: the moving tags go back to the digest they held before this run, and the
clusters with them.

Before a deploy or promotion moves a tag, `remember` records the digest it points to. After a failure
(exit 7 or 8), `plan` decides, tag by tag, what may be moved back: never a tag that had no digest
before (it is left as it is, with a note), and never a tag another pipeline moved since this run
moved it (the superseded rule: that newer artifact is theirs to judge). `roll_back` then points the
tags at their earlier digests and waits, under a deadline of its own, until every cluster applied
that artifact again; with FLUX_CI_WAVES wave by wave, the last one first (`roll_back_in_turn`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from flux_ci.context import Context
from flux_ci.deadline import Deadline
from flux_ci.delivery import fleet
from flux_ci.delivery.observe import hand_over, holds, observing
from flux_ci.delivery.prepare import Prepared, Ready
from flux_ci.delivery.settle import Settling
from flux_ci.errors import FluxCIError, SupersededError
from flux_ci.kube import fluxobjects as fo
from flux_ci.kube.discovery import Found
from flux_ci.registry.client import Registry
from flux_ci.report.models import Artifact, Report, Rollback, RollbackStatus, TagMove


@dataclass(frozen=True)
class Plan:
    moves: list[TagMove] = field(default_factory=list)  # before: the failed digest; after: the earlier one
    notes: list[str] = field(default_factory=list)  # the tags left as they are, and why


def remember(registry: Registry, repository: str, tags: Sequence[str]) -> list[TagMove]:
    """Where each tag points now ("" if it does not exist yet); `after` is filled once it moved."""
    return [TagMove(tag, registry.lookup(repository, tag) or "", "") for tag in tags]


def plan(registry: Registry, artifact: Artifact, recorded: Sequence[TagMove]) -> Plan:
    """What may be moved back, asking the registry where each tag points now."""
    result = Plan()
    for move in recorded:
        if not move.before:
            result.notes.append(f"tag {move.tag} pointed to nothing before this run: left as it is")
        elif move.before == artifact.digest:
            result.notes.append(f"tag {move.tag} already pointed to {artifact.digest} before this run")
        elif (now := registry.lookup(artifact.repository, move.tag)) != artifact.digest:
            result.notes.append(
                f"tag {move.tag} was moved by another pipeline (to {now or 'nothing'}) after this run "
                "moved it: not moved back"
            )
        else:
            result.moves.append(TagMove(move.tag, artifact.digest, move.before))
    return result


def targets(moves: Sequence[TagMove]) -> dict[str, tuple[str, ...]]:
    """The digests to go back to, each with the tags that go back to it (usually one digest)."""
    grouped: dict[str, list[str]] = {}
    for move in moves:
        grouped.setdefault(move.after, []).append(move.tag)
    return {digest: tuple(tags) for digest, tags in grouped.items()}


def move_back(registry: Registry, repository: str, moves: Sequence[TagMove]) -> None:
    for digest, tags in targets(moves).items():
        registry.tag(repository, digest, tags)


@dataclass(frozen=True)
class Stage:
    """Clusters rolled back together, and where the tags their sources follow pointed before."""

    ready: Sequence[Ready]
    recorded: Sequence[TagMove]


def roll_back(
    ctx: Context, report: Report, run: Prepared, artifact: Artifact, recorded: Sequence[TagMove]
) -> Rollback:
    """Every tag back, and every cluster back to the earlier artifact (see `roll_back_in_turn`)."""
    return roll_back_in_turn(ctx, report, run.registry, artifact, [Stage(run.ready, recorded)])


def roll_back_in_turn(
    ctx: Context, report: Report, registry: Registry, artifact: Artifact, stages: Sequence[Stage]
) -> Rollback:
    """Stage after stage (FLUX_CI_WAVES: the last wave first), move the tags back and wait until the
    stage's clusters applied the earlier artifact again, all under one deadline of its own
    (FLUX_CI_ROLLBACK_TIMEOUT). Never raises a failure of its own: the run's exit code stays the
    original failure's, and the report says how the rollback ended (a failure stops it there)."""
    began = time.monotonic()
    back = replace(ctx, deadline=Deadline(ctx.settings.rollback_timeout), cancelled=threading.Event())
    registry = registry.using(back)
    status, to_digest, message = RollbackStatus.FAILED, "", ""
    tags: list[str] = []
    notes: list[str] = []
    try:
        with back.progress.step("rollback", artifact.digest):
            for stage in stages:
                planned = plan(registry, artifact, stage.recorded)
                for note in planned.notes:
                    back.progress.note(note)
                notes += planned.notes
                report.notes += planned.notes
                if not planned.moves:
                    continue
                move_back(registry, artifact.repository, planned.moves)
                tags += [move.tag for move in planned.moves]
                to_digest = to_digest or planned.moves[0].after
                for digest, group in targets(planned.moves).items():
                    _settle_back(back, stage.ready, registry, Artifact(artifact.repository, group, digest))
            if not tags:
                status = RollbackStatus.SKIPPED
                message = "; ".join(notes) or "no moving tag to move back (FLUX_CI_EXTRA_TAGS=none)"
            else:
                status = RollbackStatus.ROLLED_BACK
                message = f"{', '.join(tags)} point to {to_digest} again, and it is applied and Ready"
    except SupersededError as exc:
        status, message = RollbackStatus.SUPERSEDED, exc.message
    except FluxCIError as exc:
        message = f"the rollback failed: {exc.message}"
    back.progress.note(f"rollback {status}: {message}")
    took = round(time.monotonic() - began, 3)
    return Rollback(status, artifact.digest, to_digest, tuple(tags), message, took)


def _settle_back(ctx: Context, ready: Sequence[Ready], registry: Registry, previous: Artifact) -> None:
    """Every cluster's sources following the moved-back tags fetch the earlier digest, and their
    consumers apply it; the failed run's watches give way to new ones under the rollback's deadline."""

    def back(cluster: fleet.Cluster) -> None:
        its = next(one for one in ready if one.cluster.name == cluster.name)
        found = _following(its, previous.tags)
        hand_over(cluster.report, its.found, its.observer)  # the failed run's rows, now, for good
        if not found.sources:
            return
        with observing(cluster.ctx, cluster.report, found) as observer:
            settling = Settling(cluster.ctx, cluster.report, found, observer, registry, previous)
            held = {fo.ref_of(obj) for obj in found.sources if holds(observer, obj, previous.digest)}
            settling.sources()
            settling.consumers(held)

    clusters = [
        fleet.Cluster(
            one.cluster.name,
            replace(one.cluster.ctx, deadline=ctx.deadline, cancelled=threading.Event()),
            one.cluster.report,
        )
        for one in ready
    ]
    fleet.each(ctx, clusters, back)


def _following(ready: Ready, tags: Sequence[str]) -> Found:
    """The sources following one of `tags` and their consumers, as the watches last saw them."""
    latest = ready.observer.latest
    sources = [
        latest.get(fo.ref_of(obj), obj) for obj in ready.found.sources if fo.followed_ref(obj)[1] in tags
    ]
    refs = {fo.ref_of(obj) for obj in sources}
    consumers = [
        latest.get(fo.ref_of(obj), obj) for obj in ready.found.consumers if fo.consumer_source(obj) in refs
    ]
    return replace(ready.found, sources=sources, consumers=consumers, prefetched=None)
