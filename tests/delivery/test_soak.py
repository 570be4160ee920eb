"""What the soak counts as a consumer leaving its healthy state, judged on states the real
kustomize-controller wrote (golden files, tests/data/README.md). The soak's loop itself runs in
tests/delivery/test_waves.py (FakeCluster) and tests/e2e/test_waves.py (the real controllers)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flux_ci.delivery.soak import moment, unsteady
from tests.golden import obj, text

READY = obj("kubectl/kustomization-ready.json")
APPLIED = READY["status"]["lastAppliedRevision"].rpartition("@")[2]  # the digest it runs


def _watched(name: str) -> list[dict[str, Any]]:
    """The objects of a `kubectl get --watch --output-watch-events` capture, in order."""
    return [json.loads(line)["object"] for line in text(name).splitlines()]


def test_a_consumer_ready_with_the_digest_is_steady() -> None:
    assert unsteady(READY, APPLIED) is None


def test_a_reconcile_under_way_is_not_leaving_ready() -> None:
    """kustomize-controller marks Ready Unknown ("Reconciliation in progress") at the start of every
    reconcile, the periodic ones too: a soak must not fail on it."""
    in_progress = [
        state
        for state in _watched("kubectl/watch-deploy-succeeded-kustomizations.stdout")
        if any(
            c["type"] == "Ready" and c["status"] == "Unknown" for c in state["status"].get("conditions", [])
        )
    ]
    assert in_progress
    for state in in_progress:
        state["status"]["lastAppliedRevision"] = f"latest@{APPLIED}"
        assert unsteady(state, APPLIED) is None


def test_ready_false_is_leaving_ready_with_the_controller_s_message() -> None:
    broken = _watched("kubectl/watch-path-missing-kustomizations.stdout")[-1]
    found = unsteady(broken, APPLIED)
    assert found is not None
    reason, condition = found
    assert reason.startswith("left Ready: kustomization path not found: ")
    assert condition == "Ready"
    assert moment(broken, condition) == next(
        c["lastTransitionTime"] for c in broken["status"]["conditions"] if c["type"] == "Ready"
    )


@pytest.mark.parametrize(
    "name", ["kubectl/kustomization-dependency-not-ready.json", "kubectl/kustomization-apply-failed.json"]
)
def test_every_ready_false_counts(name: str) -> None:
    found = unsteady(obj(name), APPLIED)
    assert found is not None
    assert found[0].startswith("left Ready: ")


def test_a_failed_health_check_is_named_as_such() -> None:
    failed = obj("kubectl/events-health-check-failed-kustomization.json")
    found = unsteady(failed, APPLIED)
    assert found is not None
    reason, condition = found
    assert reason == (
        "failed its health check: timeout waiting for: [Deployment/diagexp18/web status: 'InProgress']"
    )
    assert condition == "Healthy"


def test_ready_with_another_artifact_no_longer_runs_the_digest() -> None:
    other = "sha256:" + "2" * 64
    found = unsteady(READY, other)
    assert found is not None
    assert found[0] == f"no longer runs {other}: it applied {READY['status']['lastAttemptedRevision']}"


def test_the_moment_is_now_when_the_controller_wrote_none() -> None:
    assert moment({"status": {}}, "Ready").endswith("Z")
