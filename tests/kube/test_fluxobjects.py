"""Flux status reads and verdicts, fed with objects captured from the real source- and
kustomize-controller (tests/data/kubectl); where a test edits one, the edit is named."""

from __future__ import annotations

import copy
from typing import Any

from flux_ci.kube import fluxobjects as fo
from flux_ci.kube.verdicts import Expectation
from flux_ci.report.models import Checks, ObjectRef
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


def test_followed_ref_defaults_to_latest() -> None:
    no_ref = copy.deepcopy(READY_SOURCE)
    del no_ref["spec"]["ref"]
    assert fo.followed_ref(no_ref) == ("tag", "latest")
    assert fo.followed_ref(READY_SOURCE) == ("tag", "latest")


def test_a_message_is_cut_to_one_line_of_at_most_the_limit() -> None:
    assert fo.cut("health check\n  failed:\tdeployment app") == "health check failed: deployment app"
    long = fo.cut("x" * 1000)
    assert len(long) == fo.MAX_MESSAGE
    assert long.endswith("…")
    assert fo.cut("short", limit=5) == "short"


# --- what Ready covers --------------------------------------------------------------------------


def _with_spec(name: str, **spec: Any) -> dict[str, Any]:
    edited = copy.deepcopy(obj(name))
    edited["spec"].update(spec)
    return edited


def test_a_kustomization_without_wait_or_health_checks_covers_the_apply_only() -> None:
    plain = obj("kubectl/kustomization-ready.json")
    assert fo.checks_of(plain) == (Checks.APPLY, "set spec.wait: true (or list spec.healthChecks)")
    assert fo.consumer_state(plain).checks is Checks.APPLY


def test_wait_or_health_checks_cover_the_health() -> None:
    health_checks = [{"kind": "Deployment", "name": "app", "namespace": "golden"}]
    assert fo.checks_of(_with_spec("kubectl/kustomization-ready.json", wait=True))[0] is Checks.HEALTH
    edited = _with_spec("kubectl/kustomization-ready.json", healthChecks=health_checks)
    assert fo.checks_of(edited)[0] is Checks.HEALTH
    # The captured health-check scenario ran with `wait: true`.
    assert fo.checks_of(obj("kubectl/events-health-check-failed-kustomization.json"))[0] is Checks.HEALTH


def test_health_check_expressions_alone_are_never_evaluated() -> None:
    # kustomize-controller's checkHealth returns before them without wait or healthChecks.
    exprs = [{"apiVersion": "example.com/v1", "kind": "Thing", "current": "true"}]
    edited = _with_spec("kubectl/kustomization-ready.json", healthCheckExprs=exprs)
    assert fo.checks_of(edited)[0] is Checks.APPLY


def test_a_helm_release_waits_unless_an_action_disables_it() -> None:
    release = obj("kubectl/helmrelease-ready.json")
    assert fo.checks_of(release) == (Checks.HEALTH, "")
    no_upgrade_wait = _with_spec("kubectl/helmrelease-ready.json", upgrade={"disableWait": True})
    assert fo.checks_of(no_upgrade_wait) == (Checks.APPLY, "unset spec.upgrade.disableWait")
    neither = _with_spec(
        "kubectl/helmrelease-ready.json", install={"disableWait": True}, upgrade={"disableWait": True}
    )
    assert fo.checks_of(neither)[1] == "unset spec.install.disableWait and spec.upgrade.disableWait"


def test_a_source_says_who_pushed_what_it_holds() -> None:
    pushed_by = fo.source_state(obj("kubectl/ocirepository-traced.json")).pushed_by
    assert pushed_by.pipeline_url == "https://gitlab.example/group/app/-/pipelines/102"
    assert pushed_by.user == "alice"
    assert not fo.source_state(READY_SOURCE).pushed_by  # pushed without them: nothing to say
