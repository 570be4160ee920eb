"""Verdicts on Flux objects, fed with objects captured from the real source- and
kustomize-controller (tests/data/kubectl); where a test edits one, the edit is named."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from flux_ci.kube import fluxobjects as fo
from flux_ci.kube import verdicts as v
from flux_ci.kube.verdicts import Expectation
from flux_ci.report.models import ObjectRef
from flux_ci.tools import kubectl
from tests.golden import obj, text

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


def test_source_holding_the_digest_is_done() -> None:
    assert v.source_verdict(READY_SOURCE, _expect(SYNCED)).phase is v.Phase.DONE


def test_stale_ready_never_counts() -> None:
    verdict = v.source_verdict(READY_SOURCE, _expect(OTHER, before=f"latest@{SYNCED}"))
    assert verdict.phase is v.Phase.WAITING
    assert verdict.moved is None  # still the pre-push state: behind, not superseded


def test_another_digest_of_our_tag_after_the_push_asks_whether_it_moved() -> None:
    verdict = v.source_verdict(READY_SOURCE, _expect(OTHER, before="latest@sha256:" + "9" * 64))
    assert verdict.phase is v.Phase.WAITING
    assert verdict.moved == ("latest", SYNCED)
    assert not verdict.settled


def test_handled_request_with_another_digest_is_settled() -> None:
    verdict = v.source_verdict(
        _handled(READY_SOURCE), _expect(OTHER, requested_at=TOKEN, before=f"latest@{SYNCED}")
    )
    assert verdict.moved == ("latest", SYNCED)
    assert verdict.settled  # the engine fails it unless the registry says the tag moved on


def test_another_digest_of_a_tag_we_did_not_push_is_not_ours_to_judge() -> None:
    verdict = v.source_verdict(READY_SOURCE, _expect(OTHER, tags=("c1", "stable")))
    assert verdict.moved is None


def test_digest_pinned_revision_is_the_bare_digest() -> None:
    pinned = obj("kubectl/ocirepository-digest-pinned.json")
    digest = pinned["spec"]["ref"]["digest"]
    assert fo.source_revision(pinned) == digest
    assert v.source_verdict(pinned, _expect(digest)).phase is v.Phase.DONE
    assert fo.followed_ref(pinned) == ("digest", digest)


def test_retrying_sources_keep_waiting_until_our_request_is_handled() -> None:
    for name in ("tag-missing", "auth-failed", "verify-failed"):
        source = obj(f"kubectl/ocirepository-{name}.json")
        verdict = v.source_verdict(source, _expect(OTHER, requested_at=TOKEN))
        assert verdict.phase is v.Phase.WAITING, name
        assert verdict.message == fo.condition(source, "Ready")["message"]  # type: ignore[index]


def test_a_failure_after_our_request_fails_fast() -> None:
    # Edited: the golden objects were captured without a request; Flux records the token it handled.
    for name in ("tag-missing", "auth-failed", "verify-failed"):
        source = _handled(obj(f"kubectl/ocirepository-{name}.json"))
        verdict = v.source_verdict(source, _expect(OTHER, requested_at=TOKEN))
        assert verdict.phase is v.Phase.FAILED, name
        assert verdict.message == fo.condition(source, "Ready")["message"]  # type: ignore[index]
        assert v.source_verdict(source, _expect(OTHER, requested_at="another token")).phase is v.Phase.WAITING


def test_stalled_source_fails_now() -> None:
    stalled = copy.deepcopy(obj("kubectl/ocirepository-tag-missing.json"))
    stalled["status"]["conditions"].append(
        {"type": "Stalled", "status": "True", "reason": "InvalidURL", "message": "invalid url"}
    )
    verdict = v.source_verdict(stalled, _expect(OTHER))
    assert (verdict.phase, verdict.message) == (v.Phase.FAILED, "invalid url")


def test_consumer_applied_and_ready_is_done() -> None:
    ready = obj("kubectl/kustomization-ready.json")
    digest = _kustomization_digest("kubectl/kustomization-ready.json", "lastAppliedRevision")
    assert v.consumer_verdict(ready, _expect(digest)).phase is v.Phase.DONE
    assert v.consumer_verdict(ready, _expect(OTHER)).phase is v.Phase.WAITING
    assert fo.consumer_source(ready) == ObjectRef("OCIRepository", "golden", "app")


def test_origin_revision_never_identifies_the_applied_artifact() -> None:
    # The same commit can be pushed twice with different content: only the digest counts.
    ready = obj("kubectl/kustomization-ready.json")
    assert ready["status"]["lastAppliedOriginRevision"]
    assert v.consumer_verdict(ready, _expect(OTHER)).phase is v.Phase.WAITING
    assert not v.applied(ready, OTHER)


def test_a_rerun_counts_only_what_follows_its_own_request() -> None:
    ready = obj("kubectl/kustomization-ready.json")
    digest = _kustomization_digest("kubectl/kustomization-ready.json", "lastAppliedRevision")
    assert v.consumer_verdict(ready, _expect(digest, requested_at=TOKEN)).phase is v.Phase.WAITING
    assert v.consumer_verdict(_handled(ready), _expect(digest, requested_at=TOKEN)).phase is v.Phase.DONE
    failed = obj("kubectl/kustomization-apply-failed.json")
    attempted = _kustomization_digest("kubectl/kustomization-apply-failed.json")
    assert v.consumer_verdict(failed, _expect(attempted, requested_at=TOKEN)).phase is v.Phase.WAITING
    assert (
        v.consumer_verdict(_handled(failed), _expect(attempted, requested_at=TOKEN)).phase is v.Phase.FAILED
    )


def test_failed_apply_of_the_new_revision_fails_although_flux_retries() -> None:
    # The real kustomize-controller keeps Reconciling=True/ProgressingWithRetry after a failed apply.
    failed = obj("kubectl/kustomization-apply-failed.json")
    assert fo.condition(failed, "Reconciling")["reason"] == "ProgressingWithRetry"  # type: ignore[index]
    verdict = v.consumer_verdict(
        failed, _expect(_kustomization_digest("kubectl/kustomization-apply-failed.json"))
    )
    assert verdict.phase is v.Phase.FAILED
    assert 'no matches for kind "NoSuchKind"' in verdict.message
    assert not verdict.message.endswith("\n")


def test_build_failure_of_the_new_revision_fails() -> None:
    failed = obj("kubectl/kustomization-build-failed.json")
    verdict = v.consumer_verdict(
        failed, _expect(_kustomization_digest("kubectl/kustomization-build-failed.json"))
    )
    assert verdict.phase is v.Phase.FAILED
    assert "MalformedYAMLError" in verdict.message


def test_failure_of_an_older_revision_is_not_ours() -> None:
    failed = obj("kubectl/kustomization-apply-failed.json")
    assert v.consumer_verdict(failed, _expect(OTHER)).phase is v.Phase.WAITING


def test_missing_dependency_keeps_waiting() -> None:
    blocked = obj("kubectl/kustomization-dependency-not-ready.json")
    attempted = _kustomization_digest("kubectl/kustomization-dependency-not-ready.json")
    assert v.consumer_verdict(blocked, _expect(attempted)).phase is v.Phase.WAITING
    assert v.consumer_verdict(blocked, _expect(OTHER)).message.startswith("dependency 'golden/never-there'")


def test_attempt_under_way_is_not_a_failure() -> None:
    failed = copy.deepcopy(obj("kubectl/kustomization-apply-failed.json"))
    for cond in failed["status"]["conditions"]:
        if cond["type"] == "Reconciling":
            cond["reason"] = "Progressing"  # edited: the same object while an attempt runs
    digest = _kustomization_digest("kubectl/kustomization-apply-failed.json")
    assert v.consumer_verdict(failed, _expect(digest)).phase is v.Phase.WAITING


def test_ready_for_an_old_generation_is_not_done() -> None:
    ready = copy.deepcopy(obj("kubectl/kustomization-ready.json"))
    ready["metadata"]["generation"] += 1
    digest = _kustomization_digest("kubectl/kustomization-ready.json", "lastAppliedRevision")
    assert v.consumer_verdict(ready, _expect(digest)).phase is v.Phase.WAITING


def test_source_not_ready_consumer_waits() -> None:
    waiting = obj("kubectl/kustomization-source-not-ready.json")
    verdict = v.consumer_verdict(waiting, _expect(OTHER))
    assert verdict.phase is v.Phase.WAITING
    assert verdict.message == "Source artifact not found, retrying in 30s"


def test_consumer_attempting_another_digest_of_our_tag_asks_whether_it_moved() -> None:
    failed = obj("kubectl/kustomization-apply-failed.json")
    attempted = failed["status"]["lastAttemptedRevision"]
    tag, digest = attempted.split("@", 1)
    verdict = v.consumer_verdict(failed, _expect(OTHER, tags=(tag,), before="latest@" + "sha256:" + "9" * 64))
    assert verdict.moved == (tag, digest)
    assert v.consumer_verdict(failed, _expect(OTHER, tags=(tag,), before=attempted)).moved is None


# --- HelmRelease (golden objects from the real helm-controller 1.6.2) -----------------------------


def _helm(name: str) -> tuple[dict[str, Any], str]:
    release = obj(f"kubectl/helmrelease-{name}.json")
    revision = release["status"]["lastAttemptedRevisionDigest"]
    return release, revision.rpartition("@")[2]


def test_helmrelease_installed_from_the_digest_is_done() -> None:
    release, digest = _helm("ready")
    assert release["status"]["lastAttemptedRevision"].endswith("+" + digest[7:19])
    assert fo.consumer_source(release) == ObjectRef("OCIRepository", "golden-helm", "ready")
    assert v.consumer_verdict(release, _expect(digest)).phase is v.Phase.DONE
    assert v.consumer_verdict(release, _expect(OTHER)).phase is v.Phase.WAITING
    assert fo.consumer_state(release).revision == f"latest@{digest}"


def test_helmrelease_without_digest_tracking_that_released_nothing_new_fails_fast() -> None:
    # Real helm-controller with DisableChartDigestTracking: the new digest is attempted (and named
    # in lastAttemptedRevisionDigest), but the chart version did not change, so no upgrade ran.
    release, digest = _helm("no-digest-tracking")
    assert release["status"]["lastAttemptedRevision"] == "0.1.0"  # no digest in the chart version
    released = release["status"]["history"][0]["ociDigest"].rpartition("@")[2]
    assert released != digest
    verdict = v.consumer_verdict(release, _expect(digest))
    assert verdict.phase is v.Phase.FAILED  # exit 0 here would be a false success
    assert "released nothing new" in verdict.message
    assert v.consumer_verdict(release, _expect(released)).phase is v.Phase.WAITING


def test_helmrelease_upgraded_to_the_digest_is_done_and_its_predecessor_is_not() -> None:
    release, digest = _helm("upgraded")
    previous = release["status"]["history"][1]["ociDigest"].rpartition("@")[2]
    assert v.consumer_verdict(release, _expect(digest)).phase is v.Phase.DONE
    assert v.consumer_verdict(release, _expect(previous)).phase is v.Phase.WAITING


def test_helmrelease_install_failure_of_the_digest_fails() -> None:
    release, digest = _helm("install-failed")
    verdict = v.consumer_verdict(release, _expect(digest))
    assert verdict.phase is v.Phase.FAILED
    assert "Failed to install after 1 attempt(s)" in verdict.message


def test_helmrelease_whose_current_release_is_older_is_not_done() -> None:
    # Edited: a failed upgrade rolled back, so the newest history entry is not deployed.
    release, digest = _helm("upgraded")
    rolled_back = copy.deepcopy(release)
    rolled_back["status"]["history"][0]["status"] = "failed"
    assert v.consumer_verdict(rolled_back, _expect(digest)).phase is v.Phase.WAITING


# --- generations: done means reconciled -------------------------------------------------------

KS_READY = obj("kubectl/kustomization-ready.json")
KS_DIGEST = _kustomization_digest("kubectl/kustomization-ready.json", "lastAppliedRevision")


def _restamped(ks: dict[str, Any]) -> dict[str, Any]:
    """Edit: a spec change (generation +1) landed while the controller reconciled the previous one,
    and the status patcher stamped the Ready condition with the new generation (a conflict re-fetch);
    status.observedGeneration still names the generation reconciled."""
    edited = copy.deepcopy(ks)
    edited["metadata"]["generation"] += 1
    for cond in edited["status"]["conditions"]:
        cond["observedGeneration"] = edited["metadata"]["generation"]
    return edited


def test_ready_restamped_for_a_generation_never_reconciled_is_not_done() -> None:
    assert v.consumer_verdict(KS_READY, _expect(KS_DIGEST)).phase is v.Phase.DONE
    verdict = v.consumer_verdict(_restamped(KS_READY), _expect(KS_DIGEST))
    assert verdict.phase is v.Phase.WAITING


def test_done_once_the_current_generation_is_reconciled() -> None:
    reconciled = _restamped(KS_READY)
    reconciled["status"]["observedGeneration"] = reconciled["metadata"]["generation"]
    assert v.consumer_verdict(reconciled, _expect(KS_DIGEST)).phase is v.Phase.DONE


def _stalled(ks: dict[str, Any], generation_of_condition: int) -> dict[str, Any]:
    """Edit: Stalled=True (as kustomize-controller writes it for a terminal error) for a generation."""
    edited = copy.deepcopy(ks)
    edited["metadata"]["generation"] = 3
    edited["status"]["conditions"].append(
        {"type": "Stalled", "status": "True", "reason": "InvalidCELExpression", "message": "bad expr",
         "observedGeneration": generation_of_condition}
    )  # fmt: skip
    return edited


def test_a_stalled_condition_of_an_older_generation_never_decides() -> None:
    assert v.consumer_verdict(_stalled(KS_READY, 2), _expect(OTHER)).phase is v.Phase.WAITING
    verdict = v.consumer_verdict(_stalled(KS_READY, 3), _expect(OTHER))
    assert (verdict.phase, verdict.terminal, verdict.message) == (v.Phase.FAILED, True, "bad expr")


def test_a_failure_of_an_older_generation_never_decides() -> None:
    failed = obj("kubectl/kustomization-apply-failed.json")
    attempted = _kustomization_digest("kubectl/kustomization-apply-failed.json")
    assert v.consumer_verdict(failed, _expect(attempted)).phase is v.Phase.FAILED
    newer = copy.deepcopy(failed)
    newer["metadata"]["generation"] += 1  # edit: the spec was fixed, not reconciled yet
    assert v.consumer_verdict(newer, _expect(attempted)).phase is v.Phase.WAITING


# --- requests: handled when ours, or a later one, was ------------------------------------------


def test_request_times_read_the_forms_their_writers_use() -> None:
    flux_ci = v.request_time("2026-12-07T20:20:09.123456Z")
    flux_cli = v.request_time("2026-12-07T21:20:09.123456789+01:00")  # time.RFC3339Nano, an offset
    receiver = v.request_time("2026-12-07 20:20:09.123456789 +0000 UTC m=+4.894838745")  # metav1.Now()
    assert flux_ci == flux_cli == receiver
    assert v.request_time("1701972000") is None  # a script's own format: not a time flux-ci reads
    assert v.request_time("2026-12-07T20:20:09") is None  # no zone: no order between writers


def test_a_request_written_after_ours_and_handled_answers_ours() -> None:
    ks = _handled(KS_READY, "2026-11-26T12:00:01.5+00:00")  # flux reconcile, 1.5 s after us
    assert _expect(KS_DIGEST, requested_at=TOKEN).acknowledged(ks)
    earlier = _handled(KS_READY, "2026-11-26T11:59:59Z")
    assert not _expect(KS_DIGEST, requested_at=TOKEN).acknowledged(earlier)


def test_a_later_request_in_a_form_without_time_counts_once_seen_after_ours() -> None:
    expect = _expect(KS_DIGEST, requested_at=TOKEN)
    handled = _handled(KS_READY, "ui-sync-42")
    assert not expect.acknowledged(handled)  # not seen written after ours: it may be older
    for value in ("ui-sync-41", TOKEN, "ui-sync-42"):  # what the watch showed, in order
        expect.seeing({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": value}}})
    assert expect.acknowledged(handled)
    assert not expect.acknowledged(_handled(KS_READY, "ui-sync-41"))  # shown before ours


# --- source faults: transient registry errors are waited out -----------------------------------


def _fetch_failed(message: str) -> dict[str, Any]:
    """Edit: the refused-pull golden with another message (as source-controller words fetch errors)."""
    edited = _handled(obj("kubectl/ocirepository-auth-failed.json"))
    for cond in edited["status"]["conditions"]:
        if cond["type"] == "Ready":
            cond["message"] = message
    return edited


def test_a_transient_registry_fault_in_the_fetch_is_waited_out() -> None:
    refused = (
        "failed to get artifact: GET http://r/v2/x: dial tcp 127.0.0.1:5000: connect: connection refused"
    )
    overloaded = "failed to get artifact: GET http://r/v2/x: unexpected status code 503 Service Unavailable"
    for message in (refused, overloaded, "GET http://r/v2/x: TOOMANYREQUESTS: rate limited"):
        verdict = v.source_verdict(_fetch_failed(message), _expect(OTHER, requested_at=TOKEN))
        assert (verdict.phase, verdict.fault) == (v.Phase.WAITING, message)
    denied = v.source_verdict(
        _fetch_failed("GET http://r/v2/x: UNAUTHORIZED: denied"), _expect(OTHER, requested_at=TOKEN)
    )
    assert denied.phase is v.Phase.FAILED


def test_what_flux_does_next_names_the_remediation_retries_left() -> None:
    release = copy.deepcopy(obj("kubectl/helmrelease-install-failed.json"))
    release["spec"]["install"] = {"remediation": {"retries": 3}}  # edit: install retries
    release["status"]["installFailures"] = 1
    release["status"].pop("history", None)
    assert v.next_attempt(release).endswith("install remediation retries left: 2")
    assert v.next_attempt(KS_READY).startswith("Flux retries every ")


def test_helmrelease_of_a_helm_oci_chart_is_done_by_the_charts_own_digest() -> None:
    # A chart pushed with Helm's media types (a `layerSelector` copies it): the revision names the
    # chart version, not a tag, and history records the bare digest.
    release, digest = _helm("oci-chart")
    assert release["status"]["lastAttemptedRevision"] == "1.2.3+" + digest[7:19]
    assert v.consumer_verdict(release, _expect(digest)).phase is v.Phase.DONE
    assert v.consumer_verdict(release, _expect(OTHER)).phase is v.Phase.WAITING


def test_helmrelease_whose_source_is_not_ready_waits_for_it_and_never_fails() -> None:
    # The source follows a tag nothing was pushed to yet: the consumer's failure is its source's,
    # which flux-ci judges on the source itself.
    release = obj("kubectl/helmrelease-source-not-ready.json")
    verdict = v.consumer_verdict(release, _expect(OTHER))
    assert verdict.phase is v.Phase.WAITING
    assert verdict.message == fo.condition(release, "Ready")["message"]  # type: ignore[index]


def test_the_list_of_helmreleases_holds_every_captured_scenario() -> None:
    listed = {
        item["metadata"]["name"]: item for item in kubectl.parse_items(text("kubectl/helmrelease-list.json"))
    }
    assert {"ready", "upgraded", "install-failed", "oci-chart", "source-not-ready"} <= set(listed)
    assert all(item["kind"] == "HelmRelease" for item in listed.values())
    assert v.consumer_verdict(listed["ready"], _expect(_helm("ready")[1])).phase is v.Phase.DONE


# --- each rule pinned on small edited objects (make mutation: every change of a rule fails here) ---

D = "sha256:" + "d" * 64  # the digest this run pushed
E = "sha256:" + "e" * 64  # another one


def _obj(kind: str, generation: int | None = 1, **status: Any) -> dict[str, Any]:
    """An edited object: only the fields a rule reads."""
    meta: dict[str, Any] = {"name": "app", "namespace": "ns"}
    if generation is not None:
        meta["generation"] = generation
    return {"kind": kind, "metadata": meta, "spec": {}, "status": status}


def _cond(
    kind: str, status: str, reason: str = "", message: str = "", generation: int | None = 1
) -> dict[str, Any]:
    cond: dict[str, Any] = {"type": kind, "status": status, "reason": reason, "message": message}
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-12-07T20:20:09.123456789Z", datetime(2026, 12, 7, 20, 20, 9, 123456, tzinfo=UTC)),
        ("2026-12-07T22:20:09.5+02:00", datetime(2026, 12, 7, 20, 20, 9, 500000, tzinfo=UTC)),
        ("2026-12-07T20:20:09Z", datetime(2026, 12, 7, 20, 20, 9, tzinfo=UTC)),
        (
            " 2026-12-07 20:20:09.123456789 +0000 UTC m=+4.894838745 ",
            datetime(2026, 12, 7, 20, 20, 9, 123456, tzinfo=UTC),
        ),
        ("2026-12-07 20:20:09 +0000 UTC", datetime(2026, 12, 7, 20, 20, 9, tzinfo=UTC)),
        ("2026-12-07T20:20:09.123", None),  # no offset: when, in which zone?
        ("sync-from-the-ui-42", None),
        ("", None),
    ],
)
def test_request_times_in_every_form_their_writers_use(value: str, expected: datetime | None) -> None:
    assert v.request_time(value) == expected


def test_a_request_is_handled_by_ours_a_later_one_or_a_later_time_never_an_earlier() -> None:
    ours = "2026-12-07T20:20:09.000000001Z"
    expect = Expectation(D, requested_at=ours)
    assert not expect.acknowledged(_obj("Kustomization"))  # nothing handled yet
    assert not expect.acknowledged(_obj("Kustomization", lastHandledReconcileAt=""))
    assert expect.acknowledged(_obj("Kustomization", lastHandledReconcileAt=ours))
    assert expect.acknowledged(_obj("Kustomization", lastHandledReconcileAt="2026-12-07T20:20:09.5Z"))
    assert not expect.acknowledged(_obj("Kustomization", lastHandledReconcileAt="2026-12-07T20:20:08Z"))
    assert not expect.acknowledged(_obj("Kustomization", lastHandledReconcileAt="sync-from-the-ui"))
    assert not Expectation(D).acknowledged(_obj("Kustomization", lastHandledReconcileAt=ours))
    assert Expectation(D).answered(_obj("Kustomization"))  # nothing asked: the state decides
    assert not expect.answered(_obj("Kustomization"))


def test_a_later_request_is_one_the_watch_showed_after_ours() -> None:
    expect = Expectation(D, requested_at="ours")

    def annotated(value: str) -> dict[str, Any]:
        return {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": value}}}

    for value in ("before", "ours", "ours", "ui-1", "ui-1", "ui-2"):
        assert expect.seeing(annotated(value)) is expect
    assert expect.trail == ["before", "ours", "ui-1", "ui-2"]  # each change once, in order
    assert expect.later() == {"ui-1", "ui-2"}
    assert expect.acknowledged(_obj("Kustomization", lastHandledReconcileAt="ui-2"))
    assert not expect.acknowledged(_obj("Kustomization", lastHandledReconcileAt="before"))
    unasked = Expectation(D)
    unasked.seeing(annotated("someone"))
    assert unasked.trail == []  # nothing asked: nothing to be later than
    assert unasked.later() == set()
    empty = Expectation(D, requested_at="ours")
    empty.seeing(annotated(""))
    assert empty.trail == []


def test_current_and_reconciled_read_the_generation_each_field_names() -> None:
    stale = _obj("Kustomization", 2, observedGeneration=1, conditions=[_cond("Ready", "True", generation=1)])
    assert not v.current(stale, "Ready")
    assert not v.reconciled(stale)
    fresh = _obj("Kustomization", 2, observedGeneration=2, conditions=[_cond("Ready", "True", generation=2)])
    assert v.current(fresh, "Ready")
    assert v.reconciled(fresh)
    unstamped = _obj("Kustomization", 2, conditions=[_cond("Ready", "True", generation=None)])
    assert v.current(unstamped, "Ready")  # a condition without its own generation is the current one
    assert not v.reconciled(unstamped)
    bare = {"kind": "Kustomization"}  # no metadata, no status: nothing says it is stale
    assert v.current(bare, "Ready")
    assert v.reconciled(bare)


def test_stalled_counts_only_for_the_current_generation_and_says_why() -> None:
    stalled = _cond("Stalled", "True", "InvalidCELExpression", " bad expr \n", generation=2)
    assert v.stalled_now(_obj("Kustomization", 2, conditions=[stalled])) == "bad expr"
    assert v.stalled_now(_obj("Kustomization", 3, conditions=[stalled])) is None
    silent = {**stalled, "message": ""}
    ready = _cond("Ready", "False", "Failed", "the ready message", generation=2)
    assert v.stalled_now(_obj("Kustomization", 2, conditions=[silent, ready])) == "the ready message"
    assert v.stalled_now(_obj("Kustomization", 2, conditions=[{**stalled, "status": "False"}])) is None


def test_source_verdicts_and_the_words_they_say() -> None:
    fetched = _obj("OCIRepository", artifact={"revision": f"latest@{D}"}, conditions=[_cond("Ready", "True")])
    done = v.source_verdict(fetched, Expectation(D))
    assert (done.phase, done.message) == (v.Phase.DONE, f"fetched latest@{D}")
    assert not done.terminal
    stalled = _obj("OCIRepository", conditions=[_cond("Stalled", "True", "X", "gave up")])
    failed = v.source_verdict(stalled, Expectation(D))
    assert (failed.phase, failed.message, failed.terminal) == (v.Phase.FAILED, "gave up", True)
    nothing = v.source_verdict(_obj("OCIRepository"), Expectation(D))
    assert (nothing.phase, nothing.message) == (v.Phase.WAITING, "waiting to be reconciled")
    handled = "2026-12-07T20:20:09Z"
    ready = [_cond("Ready", "True", "Succeeded", "")]
    other = _obj("OCIRepository", lastHandledReconcileAt=handled, observedGeneration=1,
                 artifact={"revision": f"stable@{E}"}, conditions=ready)  # fmt: skip
    wrong = v.source_verdict(other, Expectation(D, tags=("latest",), requested_at=handled))
    assert (wrong.phase, wrong.message) == (
        v.Phase.FAILED,
        f"fetched stable@{E} after the reconcile request, not {D}",
    )
    behind = {**other, "status": {**other["status"], "observedGeneration": 0}}
    assert (
        v.source_verdict(behind, Expectation(D, tags=("latest",), requested_at=handled)).phase
        is v.Phase.WAITING
    )
    unready = {
        **other,
        "status": {**other["status"], "conditions": [_cond("Ready", "Unknown", "Progressing", "")]},
    }
    waiting = v.source_verdict(unready, Expectation(D, tags=("latest",), requested_at=handled))
    assert (waiting.phase, waiting.message) == (v.Phase.WAITING, "waiting for source-controller")
    moved = _obj(
        "OCIRepository", artifact={"revision": f"latest@{E}"}, conditions=[_cond("Ready", "True", "", "")]
    )
    held = v.source_verdict(moved, Expectation(D, tags=("latest",)))
    assert (held.message, held.moved, held.settled) == (f"holds latest@{E}", ("latest", E), False)


def test_a_source_failing_transiently_waits_with_the_fault_and_a_refusal_fails() -> None:
    handled = "2026-12-07T20:20:09Z"

    def fetch_failed(message: str, generation: int = 1) -> dict[str, Any]:
        ready = _cond("Ready", "False", "OCIArtifactPullFailed", message, generation=generation)
        return _obj("OCIRepository", lastHandledReconcileAt=handled, conditions=[ready])

    expect = Expectation(D, requested_at=handled)
    transient = v.source_verdict(fetch_failed("GET …: 503 Service Unavailable"), expect)
    assert (transient.phase, transient.message, transient.fault) == (
        v.Phase.WAITING, "GET …: 503 Service Unavailable", "GET …: 503 Service Unavailable",
    )  # fmt: skip
    refused = v.source_verdict(fetch_failed("GET …: 403 Forbidden"), expect)
    assert (refused.phase, refused.fault, refused.terminal) == (v.Phase.FAILED, "", False)
    older = fetch_failed("GET …: 403 Forbidden", generation=0)  # a failure of the spec before
    assert v.source_verdict(older, expect).phase is v.Phase.WAITING
    named = v.source_verdict(fetch_failed(f"pull {D}: 403 Forbidden"), Expectation(D))  # not asked, named
    assert named.phase is v.Phase.FAILED


def test_the_failure_message_adds_what_kustomize_controller_retries() -> None:
    ready = "kustomization path not found"

    def failing(reconciling: dict[str, Any] | None) -> dict[str, Any]:
        conditions = [_cond("Ready", "False", "ArtifactFailed", ready)] + (
            [reconciling] if reconciling else []
        )
        return _obj("Kustomization", conditions=conditions)

    retrying = _cond("Reconciling", "True", "ProgressingWithRetry", " retrying latest@x \n")
    assert v._failure_message(failing(retrying), ready) == f"{ready} (retrying latest@x)"
    assert v._failure_message(failing({**retrying, "reason": "Progressing"}), ready) == ready
    assert v._failure_message(failing({**retrying, "message": ready}), ready) == ready
    assert v._failure_message(failing({**retrying, "message": ""}), ready) == ready
    assert v._failure_message(failing(None), ready) == ready


@pytest.mark.parametrize(
    ("spec", "status", "expected"),
    [
        ({"retryInterval": "2m", "interval": "10m"}, {}, "Flux retries every 2m"),
        ({"interval": "10m"}, {}, "Flux retries every 10m"),
        ({}, {}, "Flux retries every its interval"),
    ],
)
def test_next_attempt_of_a_kustomization(spec: dict[str, Any], status: dict[str, Any], expected: str) -> None:
    assert v.next_attempt({"kind": "Kustomization", "spec": spec, "status": status}) == expected


FIVE = {"interval": "5m"}
UPGRADED: dict[str, Any] = {"history": [{}]}


@pytest.mark.parametrize(
    ("spec", "status", "expected"),
    [
        (FIVE, {}, "Flux retries every 5m"),
        ({"interval": "5m", "install": {"remediation": {"retries": 3}}}, {"installFailures": 1},
         "Flux retries every 5m; install remediation retries left: 2"),
        ({"interval": "5m", "install": {"remediation": {"retries": 0}}}, {},
         "Flux retries every 5m; install remediation retries left: 0"),
        ({**FIVE, "upgrade": {"remediation": {"retries": 2}}}, {**UPGRADED, "upgradeFailures": 5},
         "Flux retries every 5m; upgrade remediation retries left: 0"),
        ({**FIVE, "upgrade": {"remediation": {"retries": -1}}}, {**UPGRADED, "upgradeFailures": 7},
         "Flux retries every 5m; upgrade remediation retries left: unlimited"),
        ({**FIVE, "install": {"remediation": {"retries": 3}}}, UPGRADED, "Flux retries every 5m"),
    ],
)  # fmt: skip
def test_next_attempt_of_a_helmrelease(spec: dict[str, Any], status: dict[str, Any], expected: str) -> None:
    assert v.next_attempt({"kind": "HelmRelease", "spec": spec, "status": status}) == expected


def test_more_request_time_forms_and_the_same_instant_written_twice() -> None:
    assert v.request_time("2026-12-07 20:20:09 +0000") == datetime(2026, 12, 7, 20, 20, 9, tzinfo=UTC)
    ours = Expectation(D, requested_at="2026-12-07T20:20:09Z")
    same_instant = _obj("Kustomization", lastHandledReconcileAt="2026-12-07T20:20:09.000000000Z")
    assert ours.acknowledged(same_instant)  # another writer, the same moment: not before ours
    assert not ours.acknowledged({"kind": "Kustomization"})  # no status at all
    assert not v.reconciled({"metadata": {"generation": 1}})


def test_a_helmrelease_that_names_the_digest_only_in_its_chart_version() -> None:
    # Edited: the status of a helm-controller that writes no lastAttemptedRevisionDigest; the chart
    # version `<version>+<first 12 hex>` is then the only place naming the digest.
    history = [{"ociDigest": f"latest@{D}", "status": "deployed"}]
    upgraded = [_cond("Ready", "True", "UpgradeSucceeded", "upgraded")]
    release = _obj("HelmRelease", observedGeneration=1, lastAttemptedRevision="0.1.0+" + D[7:19],
                   history=history, conditions=upgraded)  # fmt: skip
    assert v.applied(release, D)
    assert v.consumer_verdict(release, Expectation(D)).phase is v.Phase.DONE
    thirteen = {**release, "status": {**release["status"], "lastAttemptedRevision": "0.1.0+" + D[7:20]}}
    assert not v.applied(thirteen, D)  # twelve hex, as helm-controller writes them, no more
    failed = {**release, "status": {**release["status"], "history": [{**history[0], "status": "failed"}],
              "conditions": [_cond("Ready", "False", "UpgradeFailed", "boom"),
                             _cond("Reconciling", "True", "ProgressingWithRetry", "retrying")]}}  # fmt: skip
    verdict = v.consumer_verdict(failed, Expectation(D))
    assert (verdict.phase, verdict.message) == (
        v.Phase.FAILED,
        "boom (retrying)",
    )  # a HelmRelease retries too
    assert v.consumer_verdict(_obj("Kustomization", observedGeneration=1), Expectation(D)).message == (
        "waiting to be reconciled"
    )
    plain = _obj(
        "Kustomization", observedGeneration=1, conditions=[_cond("Ready", "Unknown", "Progressing", "")]
    )
    assert v.consumer_verdict(plain, Expectation(D)).message == "waiting for the new revision"


def test_a_helmrelease_still_upgrading_is_not_yet_an_older_release_kept() -> None:
    release, digest = _helm("no-digest-tracking")
    kept = v.consumer_verdict(release, _expect(digest))
    assert kept.terminal
    assert kept.message == (
        "helm-controller attempted this digest but released nothing new: the chart version did not "
        "change and chart digest tracking is off (DisableChartDigestTracking), so the running "
        "release is still an older artifact. Bump the chart version, or enable digest tracking"
    )
    upgrading = copy.deepcopy(release)
    upgrading["status"]["conditions"].append(_cond("Reconciling", "True", "Progressing", "upgrading"))
    assert v.consumer_verdict(upgrading, _expect(digest)).phase is v.Phase.WAITING
    released = copy.deepcopy(release)
    released["status"]["history"][0]["ociDigest"] = f"latest@{digest}"
    assert not v._helm_kept_older_release(released, digest, "True")


def test_a_failure_before_the_attempt_is_one_only_where_a_message_names_the_digest() -> None:
    def failing(ready_message: str, reconciling_message: str) -> dict[str, Any]:
        conditions = [_cond("Ready", "False", "ArtifactFailed", ready_message),
                      _cond("Reconciling", "True", "ProgressingWithRetry", reconciling_message)]  # fmt: skip
        return _obj("Kustomization", lastAttemptedRevision=f"latest@{E}", conditions=conditions)

    assert v._attempt_failed(failing(f"path not found in latest@{D}", "retrying"), D)
    assert v._attempt_failed(failing("path not found", f"retrying latest@{D}"), D)
    assert not v._attempt_failed(failing("path not found", "retrying"), D)  # an older attempt's failure
    attempted = failing("apply failed", "retrying")
    attempted["status"]["lastAttemptedRevision"] = f"latest@{D}"
    assert not v._attempt_failed(attempted, D)  # retrying, naming no revision: not yet judged
    attempted["status"]["conditions"][1]["message"] = f"retrying latest@{D}"
    assert v._attempt_failed(attempted, D)
    finished = failing("apply failed", "")
    finished["status"]["lastAttemptedRevision"] = f"latest@{D}"
    finished["status"]["conditions"].pop()
    assert v._attempt_failed(finished, D)


def test_next_attempt_without_spec_or_status() -> None:
    assert v.next_attempt({"kind": "Kustomization"}) == "Flux retries every its interval"
    assert v.next_attempt({"kind": "HelmRelease"}) == "Flux retries every its interval"
    spec = {"interval": "1m", "install": {"remediation": {"retries": 3}}}
    assert v.next_attempt({"kind": "HelmRelease", "spec": spec}) == (
        "Flux retries every 1m; install remediation retries left: 3"
    )


def test_the_failure_message_leaves_out_a_reconciling_condition_without_words() -> None:
    obj = _obj(
        "Kustomization",
        conditions=[{"type": "Reconciling", "status": "True", "reason": "ProgressingWithRetry"}],
    )
    assert v._failure_message(obj, "apply failed") == "apply failed"


def test_objects_without_status_or_history_are_judged_not_crashed_on() -> None:
    assert not v.applied({"kind": "HelmRelease"}, D)
    assert not v.applied({"kind": "Kustomization"}, D)
    assert not v._helm_kept_older_release({"kind": "HelmRelease"}, D, "True")
    # A HelmRelease that attempted the digest and has no history yet: the attempt is the release.
    first = _obj("HelmRelease", lastAttemptedRevisionDigest=f"latest@{D}")
    assert v.applied(first, D)
    assert not v.applied(first, E)
