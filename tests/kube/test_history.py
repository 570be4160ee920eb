"""status.history as the real kustomize-controller 1.9.4 and helm-controller 1.6.2 keep it (golden
files: three pushes, then a rollback to the second; a Helm upgrade)."""

from __future__ import annotations

import copy
import json

from flux_ci.kube.history import digest_in, history_of
from flux_ci.report.models import HistoryEntry, ObjectRef
from tests.golden import obj, text

THREE = obj("kubectl/kustomization-history.json")
ROLLED_BACK = obj("kubectl/kustomization-history-rollback.json")
UPGRADED = obj("kubectl/helmrelease-upgraded.json")
MAIN = "main@sha1:"


def _digests(entries: list[HistoryEntry]) -> list[str]:
    return [entry.digest for entry in entries]


def test_three_deploys_newest_first_with_the_artifact_digest_not_the_build_checksum() -> None:
    entries = history_of(THREE, 10)
    revisions = [snapshot["metadata"]["revision"] for snapshot in THREE["status"]["history"]]
    assert [entry.revision for entry in entries] == revisions
    assert _digests(entries) == [revision.split("@")[1] for revision in revisions]
    checksums = [snapshot["digest"] for snapshot in THREE["status"]["history"]]  # of the built objects
    assert not set(_digests(entries)) & set(checksums)
    assert [entry.origin_revision for entry in entries] == [MAIN + n * 40 for n in "321"]
    assert {entry.status for entry in entries} == {"ReconciliationSucceeded"}
    assert entries[0].consumer == ObjectRef("Kustomization", "golden-history", "app")
    assert entries[0].last_applied >= entries[1].last_applied >= entries[2].last_applied
    assert entries[0].first_applied
    assert entries[0].reconciliations == 1


def test_a_rollback_moves_the_second_entry_to_the_front_and_counts_it_again() -> None:
    before = history_of(THREE, 10)
    after = history_of(ROLLED_BACK, 10)
    assert _digests(after) == [before[1].digest, before[0].digest, before[2].digest]
    assert after[0].reconciliations == 2
    assert after[0].origin_revision == MAIN + "2" * 40


def test_the_limit_keeps_the_newest() -> None:
    assert _digests(history_of(THREE, 2)) == _digests(history_of(THREE, 10))[:2]


def test_entries_are_sorted_by_time_whatever_the_order_stored() -> None:
    shuffled = copy.deepcopy(THREE)
    shuffled["status"]["history"].reverse()
    assert _digests(history_of(shuffled, 10)) == _digests(history_of(THREE, 10))


def test_helm_releases_name_their_oci_digest_and_chart() -> None:
    entries = history_of(UPGRADED, 10)
    assert [entry.status for entry in entries] == ["deployed", "superseded"]
    assert entries[0].revision == UPGRADED["status"]["lastAttemptedRevisionDigest"]
    assert entries[0].digest == digest_in(entries[0].revision)
    assert entries[0].chart == "mychart@0.1.0+4aefa03a1135, release v2"
    assert entries[1].chart.endswith("release v1")


def test_no_history_and_no_digest_are_empty_not_errors() -> None:
    assert history_of({"kind": "Kustomization", "metadata": {"name": "a", "namespace": "n"}}, 5) == []
    release = copy.deepcopy(UPGRADED)
    for snapshot in release["status"]["history"]:
        del snapshot["ociDigest"]  # edited: what digest tracking turned off leaves
    assert {entry.digest for entry in history_of(release, 5)} == {""}


def test_digest_in_reads_tag_refs_and_bare_digests() -> None:
    digest = json.loads(text("oras/manifest-fetch.json"))["config"]["digest"]
    assert digest_in(f"latest@{digest}") == digest
    assert digest_in(digest) == digest
    assert digest_in("0.1.0") == ""
