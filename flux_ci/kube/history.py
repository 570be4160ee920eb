"""Pure reads of a consumer's own `status.history`: what it applied before, newest first.

The two controllers keep different records. kustomize-controller (fluxcd/pkg apis/meta `History`)
keeps at most 5 snapshots, one per *built content* and outcome: `digest` is the checksum of the
objects it built, not the artifact's; the artifact's revision (`<tag>@sha256:<hex>`) and the commit
are in `metadata.revision` and `metadata.originRevision`. Applying content it applied before (a
rollback) moves that snapshot to the front and counts it again (`totalReconciliations`), with the
revision it came in last. helm-controller keeps one snapshot per Helm release version
(`spec.maxHistory`, 5 by default); the artifact's revision is `ociDigest`, absent when digest
tracking is off (`DisableChartDigestTracking`).
"""

from __future__ import annotations

from flux_ci.kube.fluxobjects import Obj, ref_of
from flux_ci.report.models import HistoryEntry, ObjectRef


def history_of(obj: Obj, limit: int) -> list[HistoryEntry]:
    """The consumer's last `limit` entries, newest first."""
    snapshots = obj.get("status", {}).get("history") or []
    ref = ref_of(obj)
    read = _helm_entry if ref.kind == "HelmRelease" else _kustomization_entry
    entries = [read(ref, snapshot) for snapshot in snapshots if isinstance(snapshot, dict)]
    # Both controllers keep them newest first; sorted anyway, stably, so equal times keep that order.
    return sorted(entries, key=lambda entry: entry.last_applied, reverse=True)[:limit]


def digest_in(revision: str) -> str:
    """The OCI manifest digest in a source revision: `<tag>@sha256:<hex>` or a bare `sha256:<hex>`."""
    digest = revision.rpartition("@")[2]
    return digest if digest.startswith("sha256:") else ""


def _kustomization_entry(ref: ObjectRef, snapshot: Obj) -> HistoryEntry:
    metadata = snapshot.get("metadata") or {}
    revision = str(metadata.get("revision", ""))
    return HistoryEntry(
        consumer=ref,
        revision=revision,
        digest=digest_in(revision),
        status=str(snapshot.get("lastReconciledStatus", "")),
        first_applied=str(snapshot.get("firstReconciled", "")),
        last_applied=str(snapshot.get("lastReconciled", "")),
        origin_revision=str(metadata.get("originRevision", "")),
        reconciliations=int(snapshot.get("totalReconciliations") or 0),
    )


def _helm_entry(ref: ObjectRef, snapshot: Obj) -> HistoryEntry:
    revision = str(snapshot.get("ociDigest", ""))
    chart = f"{snapshot.get('chartName', '')}@{snapshot.get('chartVersion', '')}"
    return HistoryEntry(
        consumer=ref,
        revision=revision,
        digest=digest_in(revision),
        status=str(snapshot.get("status", "")),
        first_applied=str(snapshot.get("firstDeployed", "")),
        last_applied=str(snapshot.get("lastDeployed", "")),
        chart=f"{chart}, release v{snapshot.get('version', '?')}",
    )
