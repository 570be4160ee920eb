"""Pure verdicts: is an OCIRepository, Kustomization or HelmRelease done with a digest, still
working, or failed? No I/O here; golden files of the real controllers feed the tests.

Which fields the controllers themselves trust decides every rule here:
- `status.observedGeneration` is set by kustomize-controller (`finalizeStatus`, only when Ready is
  True) and helm-controller (`patch.WithStatusObservedGeneration`, when a reconcile ends without a
  requeue) to the generation they reconciled. A condition's own `observedGeneration` is stamped by
  the status patcher (fluxcd/pkg `runtime/conditions.Set`) with the generation current at patch time,
  which after a conflict is a spec the controller never reconciled (helm-controller's own comment in
  `internal/reconcile/state.go` says so). So a success counts only when status.observedGeneration is
  the current generation; a failure is judged by its condition's observedGeneration (failures never
  bump status.observedGeneration), and never for an older generation: the fixed spec is still to come.
- `status.lastHandledReconcileAt` is the value of `reconcile.fluxcd.io/requestedAt` the controller
  saw when its reconcile began. A request is handled when the controller handled ours, or any
  request written after ours (another pipeline, `flux reconcile`, a Receiver): by time where the
  values parse, and by having seen the later value written on the object where they do not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from flux_ci.kube.fluxobjects import (
    Obj,
    attempted_revision,
    condition,
    condition_is,
    ready_status,
    requested_at,
    revision_has_digest,
    source_revision,
)
from flux_ci.tools.faults import transient


class Phase(StrEnum):
    DONE = "done"
    WAITING = "waiting"
    FAILED = "failed"


@dataclass(frozen=True)
class Verdict:
    """What one observation of an object says about our artifact.

    `moved` is (tag, digest) when the object holds another digest of a tag this run pushed: only the
    registry can tell whether that tag moved on (superseded) or the object is merely behind.
    `settled` means Flux already handled our request, so "behind" is no longer an explanation.
    `fault` (WAITING): source-controller's fetch failed for a transient registry fault; it retries.
    `terminal` (FAILED): Flux will not try again by itself (Stalled for the current generation).
    """

    phase: Phase
    message: str
    moved: tuple[str, str] | None = None
    settled: bool = False
    fault: str = ""
    terminal: bool = False


@dataclass(frozen=True)
class Expectation:
    """What an object must show for this run to count: the digest, and which request it answers."""

    digest: str  # sha256:<hex> of the pushed OCI manifest
    tags: tuple[str, ...] = ()  # the tags this run pushed (a source following one may be superseded)
    requested_at: str | None = None  # our reconcile.fluxcd.io/requestedAt token, if we asked
    before: str = ""  # the revision the object reported before this run pushed anything
    # The annotation values the watch showed, in order: a value shown after ours was written after
    # ours (one watch delivers one object's changes in order), so handling it is handling a state
    # newer than our request. Filled by `seeing`.
    trail: list[str] = field(default_factory=list, compare=False)

    def seeing(self, obj: Obj) -> Expectation:
        """Note the request annotation `obj` shows, then return self (for one judgement of `obj`)."""
        value = requested_at(obj)
        if self.requested_at is not None and value and (not self.trail or self.trail[-1] != value):
            self.trail.append(value)
        return self

    def later(self) -> set[str]:
        """Requests written on the object after ours."""
        if self.requested_at not in self.trail:
            return set()
        return set(self.trail[self.trail.index(self.requested_at) + 1 :]) - {self.requested_at}

    def acknowledged(self, obj: Obj) -> bool:
        """The controller finished a reconcile that began after our request was written."""
        if self.requested_at is None:
            return False
        handled = str(obj.get("status", {}).get("lastHandledReconcileAt") or "")
        if not handled:
            return False
        if handled == self.requested_at or handled in self.later():
            return True
        ours, theirs = request_time(self.requested_at), request_time(handled)
        return ours is not None and theirs is not None and theirs >= ours

    def answered(self, obj: Obj) -> bool:
        """Nothing was requested, or the request was handled: the state is not left from before."""
        return self.requested_at is None or self.acknowledged(obj)


def request_time(value: str) -> datetime | None:
    """When a reconcile request was written, from the forms its writers use: RFC 3339 with
    nanoseconds and an offset or `Z` (`flux reconcile`, flux-ci), or Go's `time.String()`,
    `2026-12-07 20:20:09.123456789 +0000 UTC m=+4.89` (notification-controller's `metav1.Now()`).
    None when the value is none of these (a script may write anything)."""
    text = value.strip().split(" m=")[0]
    parts = text.split(" ")
    if len(parts) >= 3 and parts[1][:2].isdigit():  # Go's time.String(): date, time, offset, zone
        text = f"{parts[0]}T{parts[1]}{parts[2]}"
    text = text.replace("Z", "+00:00")
    date, dot, rest = text.partition(".")
    if dot:  # Python reads at most microseconds: cut the nanoseconds, keep the offset
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        text = f"{date}.{digits[:6]}{rest[len(digits) :]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def current(obj: Obj, kind: str) -> bool:
    """The condition was written for the object's current generation (its own observedGeneration)."""
    generation = obj.get("metadata", {}).get("generation")
    cond = condition(obj, kind) or {}
    return generation is None or cond.get("observedGeneration", generation) == generation


def reconciled(obj: Obj) -> bool:
    """The controller finished reconciling the current spec: status.observedGeneration, the field the
    controllers set to the generation they reconciled, is the current generation."""
    generation = obj.get("metadata", {}).get("generation")
    return generation is None or obj.get("status", {}).get("observedGeneration") == generation


def stalled_now(obj: Obj) -> str | None:
    """Stalled for the current generation: Flux gave up and will not retry by itself. Its message."""
    if condition_is(obj, "Stalled", "True") and current(obj, "Stalled"):
        stalled = condition(obj, "Stalled") or {}
        return str(stalled.get("message") or ready_status(obj)[1]).strip()
    return None


# --- OCIRepository ---------------------------------------------------------------------------


def source_verdict(obj: Obj, expect: Expectation) -> Verdict:  # noqa: PLR0911 - one return per state
    """Has this OCIRepository fetched exactly the digest? A Ready left from an older one never counts."""
    ready, message, _ = ready_status(obj)
    revision = source_revision(obj)
    if revision_has_digest(revision, expect.digest):
        return Verdict(Phase.DONE, message or f"fetched {revision}")
    if (stalled := stalled_now(obj)) is not None:
        return Verdict(Phase.FAILED, stalled, terminal=True)
    acknowledged = expect.acknowledged(obj)
    if ready == "False" and current(obj, "Ready") and (acknowledged or expect.digest in message):
        # source-controller keeps retrying (Reconciling=ProgressingWithRetry) a refused pull secret,
        # a failed verification or a missing layer: after our request, that is this artifact
        # failing. A registry unreachable or overloaded is a fault it waits out, and so do we.
        if transient(message):
            return Verdict(Phase.WAITING, message, fault=message)
        return Verdict(Phase.FAILED, message)
    moved = _other_digest_of_our_tag(revision, expect, include_before=acknowledged)
    if moved is not None:
        return Verdict(Phase.WAITING, f"holds {revision}", moved=moved, settled=acknowledged)
    if acknowledged and ready == "True" and revision and reconciled(obj):
        # Another revision that is not one of our tags (moved is None): it can never become ours.
        return Verdict(Phase.FAILED, f"fetched {revision} after the reconcile request, not {expect.digest}")
    return Verdict(Phase.WAITING, message or "waiting for source-controller")


def _other_digest_of_our_tag(
    revision: str, expect: Expectation, *, include_before: bool
) -> tuple[str, str] | None:
    """(tag, digest) when `revision` is `<one of our tags>@<another digest>`."""
    tag, _, digest = revision.rpartition("@")
    if not tag or tag not in expect.tags or digest == expect.digest:
        return None
    if not include_before and revision == expect.before:
        return None  # still the pre-push state: the object is behind, not superseded
    return tag, digest


# --- Kustomization / HelmRelease -------------------------------------------------------------


def consumer_verdict(obj: Obj, expect: Expectation) -> Verdict:
    """Has this consumer applied the digest and become Ready for its current spec?

    Where we asked it to reconcile (the source already held the digest: a re-run), only a state
    written after Flux handled that request counts, so an old failure never decides a new run.
    """
    ready, message, _ = ready_status(obj)
    answered = expect.answered(obj)
    if applied(obj, expect.digest) and ready == "True" and reconciled(obj) and answered:
        return Verdict(Phase.DONE, message)
    if answered and (stalled := stalled_now(obj)) is not None:
        return Verdict(Phase.FAILED, stalled, terminal=True)
    if answered and _attempt_failed(obj, expect.digest):
        return Verdict(Phase.FAILED, _failure_message(obj, message))
    if answered and _helm_kept_older_release(obj, expect.digest, ready):
        return Verdict(
            Phase.FAILED,
            "helm-controller attempted this digest but released nothing new: the chart version did not "
            "change and chart digest tracking is off (DisableChartDigestTracking), so the running "
            "release is still an older artifact. Bump the chart version, or enable digest tracking",
            terminal=True,
        )
    moved = _other_digest_of_our_tag(attempted_revision(obj), expect, include_before=False)
    return Verdict(Phase.WAITING, message or "waiting for the new revision", moved=moved)


def applied(obj: Obj, digest: str) -> bool:
    """The consumer applied exactly `digest` (origin revisions are never trusted: the same commit
    can be pushed twice with different content)."""
    if obj.get("kind") == "HelmRelease":
        return _helm_attempted(obj, digest) and _helm_released(obj, digest)
    return revision_has_digest(str(obj.get("status", {}).get("lastAppliedRevision", "")), digest)


def _helm_attempted(obj: Obj, digest: str) -> bool:
    status = obj.get("status", {})
    short = digest.removeprefix("sha256:")[:12]
    chart = str(status.get("lastAttemptedRevision", ""))
    named_in_chart = bool(short) and chart.endswith(f"+{short}")
    return revision_has_digest(attempted_revision(obj), digest) or named_in_chart


def _helm_released(obj: Obj, digest: str) -> bool:
    """The release helm-controller installed last is this digest's chart, and it is deployed (a
    failed upgrade that was rolled back leaves an older release current)."""
    history = obj.get("status", {}).get("history") or []
    if not history:
        return _helm_attempted(obj, digest)
    latest = history[0]
    released = str(latest.get("ociDigest", ""))
    return latest.get("status") == "deployed" and revision_has_digest(released, digest)


def _helm_kept_older_release(obj: Obj, digest: str, ready: str) -> bool:
    """Ready and settled after attempting the digest, yet the current release is another artifact's.

    While an upgrade runs, Ready still describes the previous release and Reconciling is True.
    """
    history = obj.get("status", {}).get("history") or []
    return (
        obj.get("kind") == "HelmRelease"
        and ready == "True"
        and not condition_is(obj, "Reconciling", "True")
        and reconciled(obj)
        and _helm_attempted(obj, digest)
        and bool(history)
        and history[0].get("status") == "deployed"
        and not revision_has_digest(str(history[0].get("ociDigest", "")), digest)
    )


def _attempted(obj: Obj, digest: str) -> bool:
    if obj.get("kind") == "HelmRelease":
        return _helm_attempted(obj, digest)
    return revision_has_digest(attempted_revision(obj), digest)


def _failure_message(obj: Obj, ready_message: str) -> str:
    reconciling = condition(obj, "Reconciling") or {}
    extra = str(reconciling.get("message", "")).strip()
    if extra and extra not in ready_message and reconciling.get("reason") == "ProgressingWithRetry":
        return f"{ready_message} ({extra})"
    return ready_message


def _attempt_failed(obj: Obj, digest: str) -> bool:
    """The controller finished an attempt at `digest` and it failed.

    kustomize-controller leaves Reconciling=True with reason ProgressingWithRetry after a failed
    apply (it retries at retryInterval) and names the revision in that condition's message, so a
    failure is: the new revision attempted (or, for failures before it records lastAttemptedRevision
    such as a path missing from the artifact or a denied cross-namespace source, named in the Ready
    or Reconciling message), Ready=False for the current generation, and Reconciling either gone or
    "retrying <that revision>". A missing dependency is not a failure: dependsOn chains simply take
    longer.
    """
    ready = condition(obj, "Ready") or {}
    if ready.get("status") != "False" or ready.get("reason") == "DependencyNotReady":
        return False
    if not current(obj, "Ready"):
        return False
    reconciling = condition(obj, "Reconciling")
    retrying = reconciling is not None and reconciling.get("status") == "True"
    if retrying and (reconciling or {}).get("reason") != "ProgressingWithRetry":
        return False  # an attempt is under way
    named = digest in str(ready.get("message", "")) or digest in str((reconciling or {}).get("message", ""))
    if _attempted(obj, digest):
        return not retrying or named or obj.get("kind") == "HelmRelease"
    return named


def next_attempt(obj: Obj) -> str:
    """What Flux does next by itself after a failed attempt: its retry interval and, for a
    HelmRelease, the remediation retries it has left."""
    spec = obj.get("spec", {})
    interval = spec.get("retryInterval") or spec.get("interval") or "its interval"
    text = f"Flux retries every {interval}"
    if obj.get("kind") != "HelmRelease":
        return text
    status = obj.get("status", {})
    action = "upgrade" if status.get("history") else "install"
    retries = ((spec.get(action) or {}).get("remediation") or {}).get("retries")
    if retries is None:
        return text
    failures = int(status.get(f"{action}Failures") or 0)
    left = max(int(retries) - failures, 0) if int(retries) >= 0 else "unlimited"
    return f"{text}; {action} remediation retries left: {left}"
