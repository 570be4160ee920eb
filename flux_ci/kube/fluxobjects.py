"""Pure reads of Flux objects (`kubectl get -o json` dicts): names, conditions, revisions, the
sources they follow and read, and the rows of the report. No I/O here; golden files feed the tests.
Whether an object is done with a digest is `verdicts`'."""

from __future__ import annotations

from typing import Any

from flux_ci.config.ci import provenance
from flux_ci.report.models import Checks, ConsumerState, ObjectRef, SourceState

Obj = dict[str, Any]
MAX_MESSAGE = 300  # characters of one condition message or event shown to people


def cut(text: str, limit: int = MAX_MESSAGE) -> str:
    """A message on one line, at most `limit` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


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


def requested_at(obj: Obj | None) -> str:
    """The reconcile request written on the object (`reconcile.fluxcd.io/requestedAt`), or ""."""
    annotations = (obj or {}).get("metadata", {}).get("annotations") or {}
    return str(annotations.get("reconcile.fluxcd.io/requestedAt", ""))


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
        pushed_by=provenance(artifact.get("metadata") or {}),
    )


def followed_ref(obj: Obj) -> tuple[str, str]:
    """What the OCIRepository follows: ("digest"|"semver"|"tag", value); Flux's default is latest."""
    ref = obj.get("spec", {}).get("ref") or {}
    for kind in ("digest", "semver", "tag"):  # Flux's precedence: digest > semver > tag
        if ref.get(kind):
            return kind, str(ref[kind])
    return "tag", "latest"


# --- Kustomization / HelmRelease -------------------------------------------------------------


def consumer_source(obj: Obj) -> ObjectRef | None:
    """The source a Kustomization (sourceRef) or HelmRelease (chartRef) reads from."""
    spec = obj.get("spec", {})
    ref = spec.get("sourceRef") if obj.get("kind") == "Kustomization" else spec.get("chartRef")
    if not ref:
        return None
    namespace = ref.get("namespace") or obj.get("metadata", {}).get("namespace", "")
    return ObjectRef(str(ref.get("kind", "")), str(namespace), str(ref.get("name", "")))


def depends_on(obj: Obj) -> list[ObjectRef]:
    """What a Kustomization or HelmRelease waits for (`spec.dependsOn`): objects of its own kind (Flux's
    DependencyReference names no kind), in its own namespace unless one is named."""
    own = ref_of(obj)
    return [
        ObjectRef(own.kind, str(dep.get("namespace") or own.namespace), str(dep["name"]))
        for dep in obj.get("spec", {}).get("dependsOn") or []
        if dep.get("name")
    ]


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
        checks=checks_of(obj)[0],
    )


def checks_of(obj: Obj) -> tuple[Checks, str]:
    """What a consumer's Ready covers, and (for `apply`) the spec field that would make it cover the
    workloads' health.

    Kustomization: kustomize-controller checks health only with `spec.wait: true` or a non-empty
    `spec.healthChecks`; `spec.healthCheckExprs` alone is never evaluated (checkHealth returns
    before it). HelmRelease: Helm waits for the resources unless `spec.install.disableWait` or
    `spec.upgrade.disableWait` says otherwise; a deploy runs either, so both must wait.
    """
    spec = obj.get("spec", {}) or {}
    if obj.get("kind") == "HelmRelease":
        disabled = [
            f"spec.{action}.disableWait"
            for action in ("install", "upgrade")
            if (spec.get(action) or {}).get("disableWait")
        ]
        if disabled:
            return Checks.APPLY, f"unset {' and '.join(disabled)}"
        return Checks.HEALTH, ""
    if spec.get("wait") or spec.get("healthChecks"):
        return Checks.HEALTH, ""
    return Checks.APPLY, "set spec.wait: true (or list spec.healthChecks)"
