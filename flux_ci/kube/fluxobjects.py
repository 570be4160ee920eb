"""Pure reads of Flux objects (`kubectl get -o json` dicts): their state, and whether they are done
with a given digest, still working, or failed. No I/O here; golden files feed the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from flux_ci.report.models import ConsumerState, ObjectRef, SourceState

Obj = dict[str, Any]
MAX_MESSAGE = 300  # characters of one condition message or event shown to people


def cut(text: str, limit: int = MAX_MESSAGE) -> str:
    """A message on one line, at most `limit` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


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
    """

    phase: Phase
    message: str
    moved: tuple[str, str] | None = None
    settled: bool = False


@dataclass(frozen=True)
class Expectation:
    """What an object must show for this run to count: the digest, and which request it answers."""

    digest: str  # sha256:<hex> of the pushed OCI manifest
    tags: tuple[str, ...] = ()  # the tags this run pushed (a source following one may be superseded)
    requested_at: str | None = None  # our reconcile.fluxcd.io/requestedAt token, if we wrote one
    before: str = ""  # the revision the object reported before this run pushed anything

    def acknowledged(self, obj: Obj) -> bool:
        """Flux finished a reconcile that saw our request (it records the token in the same patch)."""
        handled = obj.get("status", {}).get("lastHandledReconcileAt")
        return self.requested_at is not None and handled == self.requested_at

    def answered(self, obj: Obj) -> bool:
        """Nothing was requested, or the request was handled: the state is not left from before."""
        return self.requested_at is None or self.acknowledged(obj)


def ref_of(obj: Obj) -> ObjectRef:
    meta = obj.get("metadata", {})
    return ObjectRef(str(obj.get("kind", "")), str(meta.get("namespace", "")), str(meta["name"]))


def condition(obj: Obj, kind: str) -> Obj | None:
    for cond in obj.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def condition_is(obj: Obj, kind: str, value: str) -> bool:
    cond = condition(obj, kind)
    return cond is not None and cond.get("status") == value


def ready_status(obj: Obj) -> tuple[str, str, str]:
    """(status, message, lastTransitionTime) of the Ready condition; Unknown if absent."""
    cond = condition(obj, "Ready")
    if cond is None:
        return "Unknown", "waiting to be reconciled", ""
    return (
        str(cond.get("status", "Unknown")),
        str(cond.get("message", "")).strip(),  # kustomize-controller ends some with a newline
        str(cond.get("lastTransitionTime", "")),
    )


def generation_current(obj: Obj) -> bool:
    """The controller has seen the latest spec (Ready's own observedGeneration where it has one)."""
    generation = obj.get("metadata", {}).get("generation")
    cond = condition(obj, "Ready") or {}
    observed = cond.get("observedGeneration", obj.get("status", {}).get("observedGeneration"))
    return generation is None or observed == generation


def revision_has_digest(revision: str, digest: str) -> bool:
    """`<tag>@sha256:<hex>` for tag refs, bare `sha256:<hex>` for digest-pinned refs."""
    return bool(digest) and (revision == digest or revision.endswith(f"@{digest}"))


# --- OCIRepository ---------------------------------------------------------------------------


def source_url(obj: Obj) -> str:
    return str(obj.get("spec", {}).get("url", "")).rstrip("/")


def source_revision(obj: Obj) -> str:
    return str((obj.get("status", {}).get("artifact") or {}).get("revision", ""))


def source_state(obj: Obj, phase: str = "") -> SourceState:
    ready, message, changed = ready_status(obj)
    artifact = obj.get("status", {}).get("artifact") or {}
    kind, value = followed_ref(obj)
    return SourceState(
        ref=ref_of(obj),
        url=source_url(obj),
        revision=source_revision(obj),
        ready=ready,
        message=message,
        updated=str(artifact.get("lastUpdateTime", changed)),
        state=phase,
        follows=f"{kind} {value}",
        interval=str(obj.get("spec", {}).get("interval", "")),
    )


def followed_ref(obj: Obj) -> tuple[str, str]:
    """What the OCIRepository follows: ("digest"|"semver"|"tag", value); Flux's default is latest."""
    ref = obj.get("spec", {}).get("ref") or {}
    for kind in ("digest", "semver", "tag"):  # Flux's precedence: digest > semver > tag
        if ref.get(kind):
            return kind, str(ref[kind])
    return "tag", "latest"


def source_verdict(obj: Obj, expect: Expectation) -> Verdict:
    """Has this OCIRepository fetched exactly the digest? A Ready left from an older one never counts."""
    ready, message, _ = ready_status(obj)
    revision = source_revision(obj)
    if revision_has_digest(revision, expect.digest):
        return Verdict(Phase.DONE, message or f"fetched {revision}")
    if condition_is(obj, "Stalled", "True"):
        stalled = condition(obj, "Stalled") or {}
        return Verdict(Phase.FAILED, str(stalled.get("message", message)))
    acknowledged = expect.acknowledged(obj)
    if ready == "False" and (acknowledged or expect.digest in message):
        # source-controller keeps retrying (Reconciling=ProgressingWithRetry) a refused pull secret,
        # a failed verification or a missing layer: after our request, that is this artifact failing.
        return Verdict(Phase.FAILED, message)
    moved = _other_digest_of_our_tag(revision, expect, include_before=acknowledged)
    if moved is not None:
        return Verdict(Phase.WAITING, f"holds {revision}", moved=moved, settled=acknowledged)
    if acknowledged and ready == "True" and revision:
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


def consumer_source(obj: Obj) -> ObjectRef | None:
    """The source a Kustomization (sourceRef) or HelmRelease (chartRef) reads from."""
    spec = obj.get("spec", {})
    ref = spec.get("sourceRef") if obj.get("kind") == "Kustomization" else spec.get("chartRef")
    if not ref:
        return None
    namespace = ref.get("namespace") or obj.get("metadata", {}).get("namespace", "")
    return ObjectRef(str(ref.get("kind", "")), str(namespace), str(ref.get("name", "")))


def consumer_revision(obj: Obj) -> str:
    """The revision a consumer applied (HelmRelease: the source revision it last attempted)."""
    if obj.get("kind") == "HelmRelease":
        return attempted_revision(obj)
    return str(obj.get("status", {}).get("lastAppliedRevision", ""))


def attempted_revision(obj: Obj) -> str:
    """The source revision the controller last attempted: `<tag>@sha256:…` (or a bare digest).

    helm-controller names the chart `<version>+<first 12 hex>` in lastAttemptedRevision (only
    `<version>` with digest tracking off) and keeps the source revision in
    lastAttemptedRevisionDigest either way.
    """
    status = obj.get("status", {})
    if obj.get("kind") == "HelmRelease":
        return str(status.get("lastAttemptedRevisionDigest") or status.get("lastAttemptedRevision", ""))
    return str(status.get("lastAttemptedRevision", ""))


def consumer_state(obj: Obj, phase: str = "") -> ConsumerState:
    ready, message, changed = ready_status(obj)
    return ConsumerState(
        ref=ref_of(obj),
        revision=consumer_revision(obj),
        ready=ready,
        message=message,
        updated=changed,
        state=phase,
    )


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
    current = history[0]
    return current.get("status") == "deployed" and revision_has_digest(
        str(current.get("ociDigest", "")), digest
    )


def _helm_kept_older_release(obj: Obj, digest: str, ready: str) -> bool:
    """Ready and settled after attempting the digest, yet the current release is another artifact's.

    While an upgrade runs, Ready still describes the previous release and Reconciling is True.
    """
    history = obj.get("status", {}).get("history") or []
    return (
        obj.get("kind") == "HelmRelease"
        and ready == "True"
        and not condition_is(obj, "Reconciling", "True")
        and generation_current(obj)
        and _helm_attempted(obj, digest)
        and bool(history)
        and history[0].get("status") == "deployed"
        and not revision_has_digest(str(history[0].get("ociDigest", "")), digest)
    )


def applied(obj: Obj, digest: str) -> bool:
    """The consumer applied exactly `digest` (origin revisions are never trusted: the same commit
    can be pushed twice with different content)."""
    if obj.get("kind") == "HelmRelease":
        return _helm_attempted(obj, digest) and _helm_released(obj, digest)
    return revision_has_digest(str(obj.get("status", {}).get("lastAppliedRevision", "")), digest)


def _attempted(obj: Obj, digest: str) -> bool:
    if obj.get("kind") == "HelmRelease":
        return _helm_attempted(obj, digest)
    return revision_has_digest(attempted_revision(obj), digest)


def consumer_verdict(obj: Obj, expect: Expectation) -> Verdict:
    """Has this consumer applied the digest and become Ready for its current spec?

    Where we asked it to reconcile (the source already held the digest: a re-run), only a state
    written after Flux handled that request counts, so an old failure never decides a new run.
    """
    ready, message, _ = ready_status(obj)
    answered = expect.answered(obj)
    if applied(obj, expect.digest) and ready == "True" and generation_current(obj) and answered:
        return Verdict(Phase.DONE, message)
    if answered and condition_is(obj, "Stalled", "True"):
        stalled = condition(obj, "Stalled") or {}
        return Verdict(Phase.FAILED, str(stalled.get("message", message)).strip())
    if answered and _attempt_failed(obj, expect.digest):
        return Verdict(Phase.FAILED, _failure_message(obj, message))
    if answered and _helm_kept_older_release(obj, expect.digest, ready):
        return Verdict(
            Phase.FAILED,
            "helm-controller attempted this digest but released nothing new: the chart version did not "
            "change and chart digest tracking is off (DisableChartDigestTracking), so the running "
            "release is still an older artifact. Bump the chart version, or enable digest tracking",
        )
    moved = _other_digest_of_our_tag(attempted_revision(obj), expect, include_before=False)
    return Verdict(Phase.WAITING, message or "waiting for the new revision", moved=moved)


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
    if not generation_current(obj):
        return False
    reconciling = condition(obj, "Reconciling")
    retrying = reconciling is not None and reconciling.get("status") == "True"
    if retrying and (reconciling or {}).get("reason") != "ProgressingWithRetry":
        return False  # an attempt is under way
    named = digest in str(ready.get("message", "")) or digest in str((reconciling or {}).get("message", ""))
    if _attempted(obj, digest):
        return not retrying or named or obj.get("kind") == "HelmRelease"
    return named
