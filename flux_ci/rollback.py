"""FLUX_CI_ROLLBACK=true: which moving tags go back to the digest they held before this run.

Before a deploy or promotion moves a tag, `remember` records the digest it points to. After a failure
(exit 7 or 8), `plan` decides, tag by tag, what may be moved back: never a tag that had no digest
before (it is left as it is, with a note), and never a tag another pipeline moved since this run
moved it (the superseded rule: that newer artifact is theirs to judge). `move_back` then points the
tags at their earlier digests. Waiting until the clusters run that artifact again is the flow's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from flux_ci.models import Artifact, TagMove
from flux_ci.registry import Registry


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
