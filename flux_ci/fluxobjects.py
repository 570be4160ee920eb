"""Pure reads of Flux objects (`kubectl get -o json` dicts): their state, and whether they are done
with a given digest, still working, or failed. No I/O here; golden files feed the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from flux_ci.models import ConsumerState, ObjectRef, SourceState

Obj = dict[str, Any]


class Phase(StrEnum):
    DONE = "done"
    WAITING = "waiting"
    FAILED = "failed"


@dataclass(frozen=True)
class Verdict:
    phase: Phase
    message: str


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


def source_state(obj: Obj) -> SourceState:
    ready, message, changed = ready_status(obj)
    artifact = obj.get("status", {}).get("artifact") or {}
    return SourceState(
        ref=ref_of(obj),
        url=source_url(obj),
        revision=source_revision(obj),
        ready=ready,
        message=message,
        updated=str(artifact.get("lastUpdateTime", changed)),
    )


def followed_ref(obj: Obj) -> tuple[str, str]:
    """What the OCIRepository follows: ("digest"|"semver"|"tag", value); Flux's default is latest."""
    ref = obj.get("spec", {}).get("ref") or {}
    for kind in ("digest", "semver", "tag"):  # Flux's precedence: digest > semver > tag
        if ref.get(kind):
            return kind, str(ref[kind])
    return "tag", "latest"


def source_verdict(obj: Obj, digest: str, requested_at: str | None = None) -> Verdict:
    """Has this OCIRepository fetched exactly `digest`? A Ready left from an older one never counts."""
    ready, message, _ = ready_status(obj)
    revision = source_revision(obj)
    if revision_has_digest(revision, digest):
        return Verdict(Phase.DONE, message or f"fetched {revision}")
    if condition_is(obj, "Stalled", "True"):
        stalled = condition(obj, "Stalled") or {}
        return Verdict(Phase.FAILED, str(stalled.get("message", message)))
    handled = obj.get("status", {}).get("lastHandledReconcileAt")
    if requested_at and handled == requested_at and ready == "True":
        # Our request was handled after the push, yet another digest is stored: the tag moved on.
        return Verdict(
            Phase.FAILED,
            f"fetched {revision or 'nothing'} after the reconcile request, not {digest}: "
            "the followed tag points to another digest (was it pushed again meanwhile?)",
        )
    return Verdict(Phase.WAITING, message or "waiting for source-controller")


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
    status = obj.get("status", {})
    if obj.get("kind") == "HelmRelease":
        return str(status.get("lastAttemptedRevision", ""))
    return str(status.get("lastAppliedRevision", ""))


def consumer_state(obj: Obj) -> ConsumerState:
    ready, message, changed = ready_status(obj)
    return ConsumerState(
        ref=ref_of(obj),
        revision=consumer_revision(obj),
        ready=ready,
        message=message,
        updated=changed,
    )


def _consumer_has(obj: Obj, field_name: str, digest: str) -> bool:
    revision = str(obj.get("status", {}).get(field_name, ""))
    if obj.get("kind") == "HelmRelease":
        # helm-controller writes <chart version>+<first 12 hex of the OCI digest>.
        short = digest.removeprefix("sha256:")[:12]
        return bool(short) and revision.endswith(f"+{short}")
    return revision_has_digest(revision, digest)


def _applied(obj: Obj, digest: str, origin_revision: str | None) -> bool:
    if obj.get("kind") == "HelmRelease":
        return _consumer_has(obj, "lastAttemptedRevision", digest)
    if _consumer_has(obj, "lastAppliedRevision", digest):
        return True
    origin = obj.get("status", {}).get("lastAppliedOriginRevision")
    return bool(origin_revision) and origin == origin_revision


def consumer_verdict(obj: Obj, digest: str, origin_revision: str | None = None) -> Verdict:
    """Has this consumer applied `digest` and become Ready for its current spec?"""
    ready, message, _ = ready_status(obj)
    if _applied(obj, digest, origin_revision) and ready == "True" and generation_current(obj):
        return Verdict(Phase.DONE, message)
    if condition_is(obj, "Stalled", "True"):
        stalled = condition(obj, "Stalled") or {}
        return Verdict(Phase.FAILED, str(stalled.get("message", message)).strip())
    if _attempt_failed(obj, digest):
        return Verdict(Phase.FAILED, message)
    return Verdict(Phase.WAITING, message or "waiting for the new revision")


def _attempt_failed(obj: Obj, digest: str) -> bool:
    """The controller finished an attempt at `digest` and it failed.

    kustomize-controller leaves Reconciling=True with reason ProgressingWithRetry after a failed
    apply (it retries at retryInterval) and names the revision in that condition's message, so a
    failure is: the new revision attempted, Ready=False for the current generation, and Reconciling
    either gone or "retrying <that revision>". A missing dependency is not a failure: dependsOn
    chains simply take longer.
    """
    ready = condition(obj, "Ready") or {}
    if ready.get("status") != "False" or ready.get("reason") == "DependencyNotReady":
        return False
    if not (_consumer_has(obj, "lastAttemptedRevision", digest) and generation_current(obj)):
        return False
    reconciling = condition(obj, "Reconciling")
    if reconciling is None or reconciling.get("status") != "True":
        return True
    if reconciling.get("reason") != "ProgressingWithRetry":
        return False  # an attempt is under way
    return obj.get("kind") == "HelmRelease" or digest in str(reconciling.get("message", ""))
