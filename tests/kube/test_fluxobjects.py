"""Flux status reads and verdicts, fed with objects captured from the real source- and
kustomize-controller (tests/data/kubectl); where a test edits one, the edit is named."""

from __future__ import annotations

import copy
from typing import Any

from flux_ci.kube import fluxobjects as fo
from flux_ci.kube.fluxobjects import Expectation
from flux_ci.report.models import ObjectRef
from tests.golden import obj

READY_SOURCE = obj("kubectl/ocirepository-ready.json")
SYNCED = READY_SOURCE["status"]["artifact"]["revision"].split("@", 1)[1]
OTHER = "sha256:" + "0" * 64
TOKEN = "2026-11-26T12:00:00.000000Z"


def _kustomization_digest(name: str, field: str = "lastAttemptedRevision") -> str:
    return str(obj(name)["status"][field]).split("@", 1)[1]


def _expect(digest: str, **kwargs: Any) -> Expectation:
    return Expectation(digest, tags=kwargs.pop("tags", ("c1", "latest")), **kwargs)


def _handled(source: dict[str, Any], token: str = TOKEN) -> dict[str, Any]:
    edited = copy.deepcopy(source)
    edited["status"]["lastHandledReconcileAt"] = token
    return edited


def test_source_state_reads_the_full_revision() -> None:
    state = fo.source_state(READY_SOURCE, "done")
    assert state.ref == ObjectRef("OCIRepository", "golden", "app")
    assert state.revision == f"latest@{SYNCED}"
    assert state.ready == "True"
    assert state.url == READY_SOURCE["spec"]["url"]
    assert state.follows == "tag latest"
    assert state.state == "done"
    assert state.updated


def test_source_holding_the_digest_is_done() -> None:
    assert fo.source_verdict(READY_SOURCE, _expect(SYNCED)).phase is fo.Phase.DONE


def test_stale_ready_never_counts() -> None:
    verdict = fo.source_verdict(READY_SOURCE, _expect(OTHER, before=f"latest@{SYNCED}"))
    assert verdict.phase is fo.Phase.WAITING
    assert verdict.moved is None  # still the pre-push state: behind, not superseded


def test_another_digest_of_our_tag_after_the_push_asks_whether_it_moved() -> None:
    verdict = fo.source_verdict(READY_SOURCE, _expect(OTHER, before="latest@sha256:" + "9" * 64))
    assert verdict.phase is fo.Phase.WAITING
    assert verdict.moved == ("latest", SYNCED)
    assert not verdict.settled


def test_handled_request_with_another_digest_is_settled() -> None:
    verdict = fo.source_verdict(
        _handled(READY_SOURCE), _expect(OTHER, requested_at=TOKEN, before=f"latest@{SYNCED}")
    )
    assert verdict.moved == ("latest", SYNCED)
    assert verdict.settled  # the engine fails it unless the registry says the tag moved on


def test_another_digest_of_a_tag_we_did_not_push_is_not_ours_to_judge() -> None:
    verdict = fo.source_verdict(READY_SOURCE, _expect(OTHER, tags=("c1", "stable")))
    assert verdict.moved is None


def test_digest_pinned_revision_is_the_bare_digest() -> None:
    pinned = obj("kubectl/ocirepository-digest-pinned.json")
    digest = pinned["spec"]["ref"]["digest"]
    assert fo.source_revision(pinned) == digest
    assert fo.source_verdict(pinned, _expect(digest)).phase is fo.Phase.DONE
    assert fo.followed_ref(pinned) == ("digest", digest)


def test_retrying_sources_keep_waiting_until_our_request_is_handled() -> None:
    for name in ("tag-missing", "auth-failed", "verify-failed"):
        source = obj(f"kubectl/ocirepository-{name}.json")
        verdict = fo.source_verdict(source, _expect(OTHER, requested_at=TOKEN))
        assert verdict.phase is fo.Phase.WAITING, name
        assert verdict.message == fo.condition(source, "Ready")["message"]  # type: ignore[index]


def test_a_failure_after_our_request_fails_fast() -> None:
    # Edited: the golden objects were captured without a request; Flux records the token it handled.
    for name in ("tag-missing", "auth-failed", "verify-failed"):
        source = _handled(obj(f"kubectl/ocirepository-{name}.json"))
        verdict = fo.source_verdict(source, _expect(OTHER, requested_at=TOKEN))
        assert verdict.phase is fo.Phase.FAILED, name
        assert verdict.message == fo.condition(source, "Ready")["message"]  # type: ignore[index]
        assert (
            fo.source_verdict(source, _expect(OTHER, requested_at="another token")).phase is fo.Phase.WAITING
        )


def test_stalled_source_fails_now() -> None:
    stalled = copy.deepcopy(obj("kubectl/ocirepository-tag-missing.json"))
    stalled["status"]["conditions"].append(
        {"type": "Stalled", "status": "True", "reason": "InvalidURL", "message": "invalid url"}
    )
    verdict = fo.source_verdict(stalled, _expect(OTHER))
    assert (verdict.phase, verdict.message) == (fo.Phase.FAILED, "invalid url")


def test_followed_ref_defaults_to_latest() -> None:
    no_ref = copy.deepcopy(READY_SOURCE)
    del no_ref["spec"]["ref"]
    assert fo.followed_ref(no_ref) == ("tag", "latest")
    assert fo.followed_ref(READY_SOURCE) == ("tag", "latest")


def test_consumer_applied_and_ready_is_done() -> None:
    ready = obj("kubectl/kustomization-ready.json")
    digest = _kustomization_digest("kubectl/kustomization-ready.json", "lastAppliedRevision")
    assert fo.consumer_verdict(ready, _expect(digest)).phase is fo.Phase.DONE
    assert fo.consumer_verdict(ready, _expect(OTHER)).phase is fo.Phase.WAITING
    assert fo.consumer_source(ready) == ObjectRef("OCIRepository", "golden", "app")


def test_origin_revision_never_identifies_the_applied_artifact() -> None:
    # The same commit can be pushed twice with different content: only the digest counts.
    ready = obj("kubectl/kustomization-ready.json")
    assert ready["status"]["lastAppliedOriginRevision"]
    assert fo.consumer_verdict(ready, _expect(OTHER)).phase is fo.Phase.WAITING
    assert not fo.applied(ready, OTHER)


def test_a_rerun_counts_only_what_follows_its_own_request() -> None:
    ready = obj("kubectl/kustomization-ready.json")
    digest = _kustomization_digest("kubectl/kustomization-ready.json", "lastAppliedRevision")
    assert fo.consumer_verdict(ready, _expect(digest, requested_at=TOKEN)).phase is fo.Phase.WAITING
    assert fo.consumer_verdict(_handled(ready), _expect(digest, requested_at=TOKEN)).phase is fo.Phase.DONE
    failed = obj("kubectl/kustomization-apply-failed.json")
    attempted = _kustomization_digest("kubectl/kustomization-apply-failed.json")
    assert fo.consumer_verdict(failed, _expect(attempted, requested_at=TOKEN)).phase is fo.Phase.WAITING
    assert (
        fo.consumer_verdict(_handled(failed), _expect(attempted, requested_at=TOKEN)).phase is fo.Phase.FAILED
    )


def test_failed_apply_of_the_new_revision_fails_although_flux_retries() -> None:
    # The real kustomize-controller keeps Reconciling=True/ProgressingWithRetry after a failed apply.
    failed = obj("kubectl/kustomization-apply-failed.json")
    assert fo.condition(failed, "Reconciling")["reason"] == "ProgressingWithRetry"  # type: ignore[index]
    verdict = fo.consumer_verdict(
        failed, _expect(_kustomization_digest("kubectl/kustomization-apply-failed.json"))
    )
    assert verdict.phase is fo.Phase.FAILED
    assert 'no matches for kind "NoSuchKind"' in verdict.message
    assert not verdict.message.endswith("\n")


def test_build_failure_of_the_new_revision_fails() -> None:
    failed = obj("kubectl/kustomization-build-failed.json")
    verdict = fo.consumer_verdict(
        failed, _expect(_kustomization_digest("kubectl/kustomization-build-failed.json"))
    )
    assert verdict.phase is fo.Phase.FAILED
    assert "MalformedYAMLError" in verdict.message


def test_failure_of_an_older_revision_is_not_ours() -> None:
    failed = obj("kubectl/kustomization-apply-failed.json")
    assert fo.consumer_verdict(failed, _expect(OTHER)).phase is fo.Phase.WAITING


def test_missing_dependency_keeps_waiting() -> None:
    blocked = obj("kubectl/kustomization-dependency-not-ready.json")
    attempted = _kustomization_digest("kubectl/kustomization-dependency-not-ready.json")
    assert fo.consumer_verdict(blocked, _expect(attempted)).phase is fo.Phase.WAITING
    assert fo.consumer_verdict(blocked, _expect(OTHER)).message.startswith("dependency 'golden/never-there'")


def test_attempt_under_way_is_not_a_failure() -> None:
    failed = copy.deepcopy(obj("kubectl/kustomization-apply-failed.json"))
    for cond in failed["status"]["conditions"]:
        if cond["type"] == "Reconciling":
            cond["reason"] = "Progressing"  # edited: the same object while an attempt runs
    digest = _kustomization_digest("kubectl/kustomization-apply-failed.json")
    assert fo.consumer_verdict(failed, _expect(digest)).phase is fo.Phase.WAITING


def test_ready_for_an_old_generation_is_not_done() -> None:
    ready = copy.deepcopy(obj("kubectl/kustomization-ready.json"))
    ready["metadata"]["generation"] += 1
    digest = _kustomization_digest("kubectl/kustomization-ready.json", "lastAppliedRevision")
    assert fo.consumer_verdict(ready, _expect(digest)).phase is fo.Phase.WAITING


def test_source_not_ready_consumer_waits() -> None:
    waiting = obj("kubectl/kustomization-source-not-ready.json")
    verdict = fo.consumer_verdict(waiting, _expect(OTHER))
    assert verdict.phase is fo.Phase.WAITING
    assert verdict.message == "Source artifact not found, retrying in 30s"


def test_consumer_attempting_another_digest_of_our_tag_asks_whether_it_moved() -> None:
    failed = obj("kubectl/kustomization-apply-failed.json")
    attempted = failed["status"]["lastAttemptedRevision"]
    tag, digest = attempted.split("@", 1)
    verdict = fo.consumer_verdict(
        failed, _expect(OTHER, tags=(tag,), before="latest@" + "sha256:" + "9" * 64)
    )
    assert verdict.moved == (tag, digest)
    assert fo.consumer_verdict(failed, _expect(OTHER, tags=(tag,), before=attempted)).moved is None


# --- HelmRelease (golden objects from the real helm-controller 1.6.2) -----------------------------


def _helm(name: str) -> tuple[dict[str, Any], str]:
    release = obj(f"kubectl/helmrelease-{name}.json")
    revision = release["status"]["lastAttemptedRevisionDigest"]
    return release, revision.rpartition("@")[2]


def test_helmrelease_installed_from_the_digest_is_done() -> None:
    release, digest = _helm("ready")
    assert release["status"]["lastAttemptedRevision"].endswith("+" + digest[7:19])
    assert fo.consumer_source(release) == ObjectRef("OCIRepository", "golden-helm", "ready")
    assert fo.consumer_verdict(release, _expect(digest)).phase is fo.Phase.DONE
    assert fo.consumer_verdict(release, _expect(OTHER)).phase is fo.Phase.WAITING
    assert fo.consumer_state(release).revision == f"latest@{digest}"


def test_helmrelease_without_digest_tracking_that_released_nothing_new_fails_fast() -> None:
    # Real helm-controller with DisableChartDigestTracking: the new digest is attempted (and named
    # in lastAttemptedRevisionDigest), but the chart version did not change, so no upgrade ran.
    release, digest = _helm("no-digest-tracking")
    assert release["status"]["lastAttemptedRevision"] == "0.1.0"  # no digest in the chart version
    released = release["status"]["history"][0]["ociDigest"].rpartition("@")[2]
    assert released != digest
    verdict = fo.consumer_verdict(release, _expect(digest))
    assert verdict.phase is fo.Phase.FAILED  # exit 0 here would be a false success
    assert "released nothing new" in verdict.message
    assert fo.consumer_verdict(release, _expect(released)).phase is fo.Phase.WAITING


def test_helmrelease_upgraded_to_the_digest_is_done_and_its_predecessor_is_not() -> None:
    release, digest = _helm("upgraded")
    previous = release["status"]["history"][1]["ociDigest"].rpartition("@")[2]
    assert fo.consumer_verdict(release, _expect(digest)).phase is fo.Phase.DONE
    assert fo.consumer_verdict(release, _expect(previous)).phase is fo.Phase.WAITING


def test_helmrelease_install_failure_of_the_digest_fails() -> None:
    release, digest = _helm("install-failed")
    verdict = fo.consumer_verdict(release, _expect(digest))
    assert verdict.phase is fo.Phase.FAILED
    assert "Failed to install after 1 attempt(s)" in verdict.message


def test_helmrelease_whose_current_release_is_older_is_not_done() -> None:
    # Edited: a failed upgrade rolled back, so the newest history entry is not deployed.
    release, digest = _helm("upgraded")
    rolled_back = copy.deepcopy(release)
    rolled_back["status"]["history"][0]["status"] = "failed"
    assert fo.consumer_verdict(rolled_back, _expect(digest)).phase is fo.Phase.WAITING


def test_a_message_is_cut_to_one_line_of_at_most_the_limit() -> None:
    assert fo.cut("health check\n  failed:\tdeployment app") == "health check failed: deployment app"
    long = fo.cut("x" * 1000)
    assert len(long) == fo.MAX_MESSAGE
    assert long.endswith("…")
    assert fo.cut("short", limit=5) == "short"
