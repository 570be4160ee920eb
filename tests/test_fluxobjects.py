"""Flux status reads, fed with objects captured from the real source- and kustomize-controller."""

from __future__ import annotations

import copy

from flux_ci import fluxobjects as fo
from flux_ci.models import ObjectRef
from tests.golden import obj

READY_SOURCE = obj("kubectl/ocirepository-ready.json")
SYNCED = READY_SOURCE["status"]["artifact"]["revision"].split("@", 1)[1]
OTHER = "sha256:" + "0" * 64


def _kustomization_digest(name: str, field: str = "lastAttemptedRevision") -> str:
    return str(obj(name)["status"][field]).split("@", 1)[1]


def test_source_state_reads_the_full_revision() -> None:
    state = fo.source_state(READY_SOURCE)
    assert state.ref == ObjectRef("OCIRepository", "golden", "app")
    assert state.revision == f"latest@{SYNCED}"
    assert state.ready == "True"
    assert state.url == READY_SOURCE["spec"]["url"]
    assert state.updated


def test_source_holding_the_digest_is_done() -> None:
    assert fo.source_verdict(READY_SOURCE, SYNCED).phase is fo.Phase.DONE


def test_stale_ready_never_counts() -> None:
    verdict = fo.source_verdict(READY_SOURCE, OTHER)
    assert verdict.phase is fo.Phase.WAITING


def test_handled_request_with_another_digest_means_the_tag_moved_on() -> None:
    token = READY_SOURCE["status"]["lastHandledReconcileAt"]
    verdict = fo.source_verdict(READY_SOURCE, OTHER, requested_at=token)
    assert verdict.phase is fo.Phase.FAILED
    assert "points to another digest" in verdict.message


def test_digest_pinned_revision_is_the_bare_digest() -> None:
    pinned = obj("kubectl/ocirepository-digest-pinned.json")
    digest = pinned["spec"]["ref"]["digest"]
    assert fo.source_revision(pinned) == digest
    assert fo.source_verdict(pinned, digest).phase is fo.Phase.DONE
    assert fo.followed_ref(pinned) == ("digest", digest)


def test_retrying_sources_keep_waiting_with_flux_message() -> None:
    for name in ("tag-missing", "auth-failed", "verify-failed"):
        source = obj(f"kubectl/ocirepository-{name}.json")
        verdict = fo.source_verdict(source, OTHER)
        assert verdict.phase is fo.Phase.WAITING, name
        assert verdict.message == fo.condition(source, "Ready")["message"]  # type: ignore[index]


def test_stalled_source_fails_now() -> None:
    stalled = copy.deepcopy(obj("kubectl/ocirepository-tag-missing.json"))
    stalled["status"]["conditions"].append(
        {"type": "Stalled", "status": "True", "reason": "InvalidURL", "message": "invalid url"}
    )
    verdict = fo.source_verdict(stalled, OTHER)
    assert (verdict.phase, verdict.message) == (fo.Phase.FAILED, "invalid url")


def test_followed_ref_defaults_to_latest() -> None:
    no_ref = copy.deepcopy(READY_SOURCE)
    del no_ref["spec"]["ref"]
    assert fo.followed_ref(no_ref) == ("tag", "latest")
    assert fo.followed_ref(READY_SOURCE) == ("tag", "latest")


def test_consumer_applied_and_ready_is_done() -> None:
    ready = obj("kubectl/kustomization-ready.json")
    digest = _kustomization_digest("kubectl/kustomization-ready.json", "lastAppliedRevision")
    assert fo.consumer_verdict(ready, digest).phase is fo.Phase.DONE
    assert fo.consumer_verdict(ready, OTHER).phase is fo.Phase.WAITING
    assert fo.consumer_source(ready) == ObjectRef("OCIRepository", "golden", "app")


def test_origin_revision_also_identifies_the_applied_artifact() -> None:
    ready = obj("kubectl/kustomization-ready.json")
    origin = ready["status"]["lastAppliedOriginRevision"]
    assert fo.consumer_verdict(ready, OTHER, origin_revision=origin).phase is fo.Phase.DONE


def test_failed_apply_of_the_new_revision_fails_although_flux_retries() -> None:
    # The real kustomize-controller keeps Reconciling=True/ProgressingWithRetry after a failed apply.
    failed = obj("kubectl/kustomization-apply-failed.json")
    assert fo.condition(failed, "Reconciling")["reason"] == "ProgressingWithRetry"  # type: ignore[index]
    verdict = fo.consumer_verdict(failed, _kustomization_digest("kubectl/kustomization-apply-failed.json"))
    assert verdict.phase is fo.Phase.FAILED
    assert 'no matches for kind "NoSuchKind"' in verdict.message
    assert not verdict.message.endswith("\n")


def test_build_failure_of_the_new_revision_fails() -> None:
    failed = obj("kubectl/kustomization-build-failed.json")
    verdict = fo.consumer_verdict(failed, _kustomization_digest("kubectl/kustomization-build-failed.json"))
    assert verdict.phase is fo.Phase.FAILED
    assert "MalformedYAMLError" in verdict.message


def test_failure_of_an_older_revision_is_not_ours() -> None:
    failed = obj("kubectl/kustomization-apply-failed.json")
    assert fo.consumer_verdict(failed, OTHER).phase is fo.Phase.WAITING


def test_missing_dependency_keeps_waiting() -> None:
    blocked = obj("kubectl/kustomization-dependency-not-ready.json")
    attempted = _kustomization_digest("kubectl/kustomization-dependency-not-ready.json")
    assert fo.consumer_verdict(blocked, attempted).phase is fo.Phase.WAITING
    assert fo.consumer_verdict(blocked, OTHER).message.startswith("dependency 'golden/never-there'")


def test_attempt_under_way_is_not_a_failure() -> None:
    failed = copy.deepcopy(obj("kubectl/kustomization-apply-failed.json"))
    fo.condition(failed, "Reconciling")  # exists
    for cond in failed["status"]["conditions"]:
        if cond["type"] == "Reconciling":
            cond["reason"] = "Progressing"
    digest = _kustomization_digest("kubectl/kustomization-apply-failed.json")
    assert fo.consumer_verdict(failed, digest).phase is fo.Phase.WAITING


def test_ready_for_an_old_generation_is_not_done() -> None:
    ready = copy.deepcopy(obj("kubectl/kustomization-ready.json"))
    ready["metadata"]["generation"] += 1
    digest = _kustomization_digest("kubectl/kustomization-ready.json", "lastAppliedRevision")
    assert fo.consumer_verdict(ready, digest).phase is fo.Phase.WAITING


def test_source_not_ready_consumer_waits() -> None:
    waiting = obj("kubectl/kustomization-source-not-ready.json")
    verdict = fo.consumer_verdict(waiting, OTHER)
    assert verdict.phase is fo.Phase.WAITING
    assert verdict.message == "Source artifact not found, retrying in 30s"


def test_helmrelease_matches_chart_version_plus_short_digest() -> None:
    # Hand-written (no helm-controller here), in the shape helm-controller's docs give for chartRef.
    digest = "sha256:" + "ab" * 32
    release = {
        "kind": "HelmRelease",
        "metadata": {"name": "web", "namespace": "apps", "generation": 1},
        "spec": {"chartRef": {"kind": "OCIRepository", "name": "charts"}},
        "status": {
            "lastAttemptedRevision": "1.2.0+" + "ab" * 6,
            "conditions": [{"type": "Ready", "status": "True", "observedGeneration": 1, "message": "ok"}],
        },
    }
    assert fo.consumer_source(release) == ObjectRef("OCIRepository", "apps", "charts")
    assert fo.consumer_verdict(release, digest).phase is fo.Phase.DONE
    assert fo.consumer_verdict(release, OTHER).phase is fo.Phase.WAITING
