"""FLUX_CI_WAVE_SOAK: after a wave applied the artifact, its consumers stay watched for a while before
the next wave starts, through the watches that saw them apply it.

A consumer that leaves Ready (Ready=False, a failed health check, Stalled) or that no longer runs the
digest fails the wave (exit 7), naming the object and the moment. A reconcile under way is not a
failure: kustomize-controller marks Ready Unknown at the start of every reconcile, the periodic ones
too; one still under way when the soak ends is waited for until the consumer is Ready again.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from flux_ci.delivery.settle import Settling, diagnose
from flux_ci.errors import ConsumerFailedError, DeadlineExceededError, FluxCIError
from flux_ci.kube import fluxobjects as fo
from flux_ci.kube.engine import Target
from flux_ci.kube.fluxobjects import Obj
from flux_ci.kube.verdicts import Expectation, Phase, Verdict, applied, consumer_verdict, stalled_now
from flux_ci.report.models import ObjectRef

TICK_S = 0.2  # how often the consumers' latest states are looked at: well under a person's notice


def unsteady(obj: Obj, digest: str) -> tuple[str, str] | None:
    """Why a consumer that applied `digest` is no longer healthy with it, and the condition that
    says so (None while it is, or while a reconcile is under way)."""
    ready, message, _ = fo.ready_status(obj)
    if (stalled := stalled_now(obj)) is not None:
        return f"is Stalled: {stalled}", "Stalled"
    healthy = fo.condition(obj, "Healthy") or {}
    if healthy.get("status") == "False":
        return f"failed its health check: {healthy.get('message') or message}", "Healthy"
    if ready == "False":
        return f"left Ready: {message}", "Ready"
    if ready == "True" and fo.attempted_revision(obj) and not applied(obj, digest):
        return f"no longer runs {digest}: it applied {fo.attempted_revision(obj)}", "Ready"
    return None


def moment(obj: Obj, condition: str) -> str:
    """When the condition changed, as the controller wrote it; else now (RFC 3339, UTC)."""
    written = str((fo.condition(obj, condition) or {}).get("lastTransitionTime") or "")
    return written or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def soak(settling: Settling, seconds: float, *, ended: threading.Event) -> None:
    """Watch the consumers for `seconds`, or until `ended` (another cluster of the wave failed its
    soak). Raises `ConsumerFailedError` (diagnosed) when a consumer is unsteady,
    `DeadlineExceededError` when the one deadline passes first."""
    ctx = settling.ctx
    if not settling.found.consumers or ctx.runner.dry_run:
        why = "a dry run deploys nothing" if ctx.runner.dry_run else "no consumer is waited for"
        ctx.progress.skip("soak", why)
        return
    began = time.monotonic()
    with ctx.progress.step("soak", f"{seconds:g}s, then the next wave"):
        try:
            while (left := began + seconds - time.monotonic()) > 0 and not ended.is_set():
                _look(settling, began, seconds)
                if ctx.deadline.expired:
                    raise DeadlineExceededError(
                        f"timed out after {ctx.deadline.seconds:g}s, {time.monotonic() - began:.1f}s into "
                        f"the {seconds:g}s soak (FLUX_CI_TIMEOUT covers every wave and every soak)"
                    )
                ctx.pause(min(left, TICK_S))
            _look(settling, began, seconds)
            _ready_again(settling, began, seconds)
        except ConsumerFailedError:
            diagnose(settling)
            raise


def _look(settling: Settling, began: float, seconds: float) -> None:
    """Every consumer as last seen: raise for the first that is unsteady."""
    latest = settling.observer.latest
    for obj in settling.found.consumers:
        ref = fo.ref_of(obj)
        seen = latest.get(ref, obj)
        found = unsteady(seen, settling.artifact.digest)
        if found is None:
            continue
        _superseded(settling, ref, seen)
        reason, condition = found
        settling.observer.verdicts[ref] = Verdict(Phase.FAILED, reason)
        raise ConsumerFailedError(
            f"{ref} {reason} (at {moment(seen, condition)}, {time.monotonic() - began:.1f}s into the "
            f"{seconds:g}s soak)"
        )


def _superseded(settling: Settling, ref: ObjectRef, seen: Obj) -> None:
    """A consumer that applied another digest of one of our tags: superseded if the tag moved on."""
    tag, _, digest = fo.attempted_revision(seen).rpartition("@")
    if tag in settling.artifact.tags and digest != settling.artifact.digest:
        settling.moved(ref, tag, digest)


def _ready_again(settling: Settling, began: float, seconds: float) -> None:
    """A reconcile under way as the soak ends is waited for: the wave is done once every consumer
    is Ready with the digest again (and failed if it is not)."""
    digest = settling.artifact.digest
    expect = Expectation(digest, settling.artifact.tags)

    def failed(ref: ObjectRef, message: str) -> FluxCIError:
        return ConsumerFailedError(
            f"{ref} failed while it was watched after the {seconds:g}s soak "
            f"({time.monotonic() - began:.1f}s after it began): {message}"
        )

    targets = [
        Target(fo.ref_of(obj), lambda seen: consumer_verdict(seen, expect), failed)
        for obj in settling.found.consumers
    ]
    what = f"the consumers to be Ready with {digest} again"
    settling.observer.wait(targets, what=what, moved=settling.moved)
