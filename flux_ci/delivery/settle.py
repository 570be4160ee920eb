"""The requests to Flux in one cluster and what they must bring back: the sources fetch exactly the
digest, then the consumers apply it and are Ready, never a state left from before."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from flux_ci.context import Context
from flux_ci.delivery.chains import Chain
from flux_ci.delivery.observe import holds, seen_source
from flux_ci.delivery.prepare import Ready
from flux_ci.errors import (
    ConsumerFailedError,
    DeadlineExceededError,
    FluxCIError,
    SourceFailedError,
    SupersededError,
)
from flux_ci.kube import fluxobjects as fo
from flux_ci.kube import notify
from flux_ci.kube.consumers import patch_note
from flux_ci.kube.discovery import Found
from flux_ci.kube.engine import Done, Observer, Target
from flux_ci.kube.fluxobjects import Obj
from flux_ci.kube.verdicts import Expectation, Phase, Verdict, consumer_verdict, source_verdict
from flux_ci.registry.client import Registry
from flux_ci.report.models import Artifact, ObjectRef, Report


@dataclass
class Settling:
    """One run's requests to Flux in one cluster and what it expects back: sources fetch the digest,
    then the consumers apply it; exactly this digest, Ready, and never a state left from before."""

    ctx: Context
    report: Report
    found: Found
    observer: Observer
    registry: Registry
    artifact: Artifact
    checked_tags: set[tuple[str, str]] = field(default_factory=set)
    # The sources stay judged while the consumers are waited for: a newer push that replaces our
    # artifact on the source before a consumer applied it is seen there first.
    source_targets: list[Target] = field(default_factory=list)
    requests: notify.Requests | None = None

    @classmethod
    def of(cls, ready: Ready, registry: Registry, artifact: Artifact) -> Settling:
        cluster = ready.cluster
        return cls(cluster.ctx, cluster.report, ready.found, ready.observer, registry, artifact)

    def sources(self, *, request: bool = True) -> notify.Tokens:
        """Request reconciliation of every source not holding the digest and wait until all do.

        Returns, per source, the token written on it (None: it already held the digest, or
        `request` is off because `wait` only watches).
        """
        digest = self.artifact.digest
        with self.ctx.progress.step("reconcile" if request else "sources", digest):
            wanted = (lambda obj: not holds(self.observer, obj, digest)) if request else (lambda _obj: False)
            tokens = self._request(self.found.sources, wanted)
            self.source_targets = [
                self._target(
                    obj,
                    tokens=tokens,
                    before=fo.source_revision(obj),
                    verdict=source_verdict,
                    error=SourceFailedError,
                    verb="fetch",
                )
                for obj in self.found.sources
            ]
            self._wait(self.source_targets, f"the sources to fetch {digest}")
        self.report.sources = [seen_source(self.observer, obj) for obj in self.found.sources]
        return tokens

    def consumers(self, already: set[ObjectRef]) -> None:
        """Wait until every consumer applied the digest and is Ready.

        A re-run (its source already held the digest): the consumer is asked to try again, so a
        failure or success left from before never decides this run.
        """
        if not self.found.consumers:
            self.ctx.progress.skip(
                "wait", "FLUX_CI_WAIT_FOR=none: no Kustomization or HelmRelease is waited for"
            )
            return
        with self.ctx.progress.step("wait", self.artifact.digest):
            tokens = self._request(self.found.consumers, lambda obj: self._asks(obj, already))
            targets = [
                self._target(
                    obj,
                    tokens=tokens,
                    before=fo.attempted_revision(obj),
                    verdict=consumer_verdict,
                    error=ConsumerFailedError,
                    verb="apply",
                )
                for obj in self.found.consumers
            ]
            chain = Chain.of(self.ctx, self.observer, self._requests(), consumers=self.found.consumers,
                             patchable=self.found.patchable, digest=self.artifact.digest)  # fmt: skip
            self._wait([*self.source_targets, *targets], f"the consumers to apply {self.artifact.digest}",
                       done=chain.done)  # fmt: skip

    def _asks(self, obj: Obj, already: set[ObjectRef]) -> bool:
        """A re-run asks a consumer whose source already held the digest to try again, through the
        annotation only where it may (`patch`); one it may not ask is judged as it is, and said so."""
        if fo.consumer_source(obj) not in already:
            return False
        if notify.annotates(self.ctx) and fo.ref_of(obj) not in self.found.patchable:
            self.ctx.progress.note(patch_note(fo.ref_of(obj)))
            self.report.notes.append(patch_note(fo.ref_of(obj)))
            return False
        return True

    def _request(self, objects: Sequence[Obj], wanted: Callable[[Obj], bool]) -> notify.Tokens:
        """Ask Flux to reconcile what `wanted` selects, the way FLUX_CI_NOTIFY says; their tokens."""
        return self._requests().request(objects, wanted)

    def _requests(self) -> notify.Requests:
        if self.requests is None:
            self.requests = notify.Requests(self.ctx, self.observer.latest, self.artifact)
        return self.requests

    def _target(
        self,
        obj: Obj,
        *,
        tokens: notify.Tokens,
        before: str,
        verdict: Callable[[Obj, Expectation], Verdict],
        error: type[FluxCIError],
        verb: str,
    ) -> Target:
        ref = fo.ref_of(obj)
        token = tokens.get(ref)
        expect = Expectation(self.artifact.digest, self.artifact.tags, token, before)
        digest = self.artifact.digest
        return Target(
            ref,
            lambda seen: verdict(seen, expect.seeing(seen)),
            lambda failed, message: error(f"{failed} failed to {verb} {digest}: {message}"),
            token,
            expect.acknowledged,
        )

    def _wait(self, targets: list[Target], what: str, done: Done | None = None) -> None:
        if not self.ctx.runner.dry_run:  # nothing was pushed or requested: nothing will change
            self.observer.wait(targets, what=what, moved=self.moved, done=done)

    def moved(self, ref: ObjectRef, tag: str, digest: str) -> None:
        """`ref` holds another digest of a tag we pushed: superseded, if the tag moved on."""
        if (tag, digest) in self.checked_tags:
            return
        now = self.registry.resolve(self.artifact.repository, tag)
        self.checked_tags.add((tag, digest))
        if now != self.artifact.digest:
            raise SupersededError(
                f"superseded: {ref} holds {tag}@{digest}, and tag {tag!r} now points to {now}, not to "
                f"this run's {self.artifact.digest} (another pipeline pushed after this one). Flux "
                "deploys the newer artifact; this one will not be applied.",
                by_digest=now,
            )


def settle(settling: Settling, *, request_sources: bool = True) -> None:
    """Sources fetch the digest (requested, unless `wait` only watches), then consumers apply it.

    A consumer that failed (exit 7) or was still awaited at the deadline (exit 8) is diagnosed
    before the error goes on: while the watches still run, so kubectl may still be started.
    """
    digest = settling.artifact.digest
    held = {fo.ref_of(obj) for obj in settling.found.sources if holds(settling.observer, obj, digest)}
    try:
        settling.sources(request=request_sources)
        settling.consumers(held)
    except (ConsumerFailedError, DeadlineExceededError):
        diagnose(settling)
        raise


def diagnose(settling: Settling) -> None:
    """Attach why the judged consumers not done are failing to the report; reading it takes at most
    `diagnostics.GATHER_BUDGET_S` on top of the deadline, and a failure to read it is only a note."""
    from flux_ci.kube import diagnostics  # noqa: PLC0415 - after a failure only: a deploy that succeeds never loads it

    observer = settling.observer
    consumers = [
        observer.latest.get(ref, obj)
        for obj in settling.found.consumers
        if (verdict := observer.verdicts.get(ref := fo.ref_of(obj))) is not None
        and verdict.phase is not Phase.DONE
    ]
    if not consumers:
        return
    started = time.monotonic()
    try:
        settling.report.diagnostics = diagnostics.gather(settling.ctx, consumers, settling.artifact.digest)
    except Exception as exc:  # the failure being explained matters more
        settling.report.notes.append(f"diagnostics could not be read: {exc}")
        return
    settling.ctx.progress.note(f"diagnostics read in {time.monotonic() - started:.1f}s")
