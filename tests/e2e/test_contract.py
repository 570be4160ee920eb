"""Parts of the README's contract that no other end-to-end test reached, each against the real
registry, API server and Flux controllers: suspended objects, a missing layer, FLUX_CI_ON_FAILURE=wait
waiting a failure out, the 20 s and 30 s notes, an API server that goes silent without closing its
connections. Each fails when its rule is broken (docs/contract.md maps every rule to its tests).
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.project import KUSTOMIZATIONS, OCIREPOSITORIES, Project
from tests.sandbox import SandboxClient

pytestmark = pytest.mark.e2e


# --- 3/5: what can never apply is refused before anything is pushed --------------------------------


@pytest.mark.parametrize("resource", [OCIREPOSITORIES, KUSTOMIZATIONS])
def test_a_suspended_source_or_consumer_is_exit_2_before_the_push(project: Project, resource: str) -> None:
    project.patch(resource, "app", {"spec": {"suspend": True}})
    run = project.flux_ci("deploy")
    assert run.exit_code == 2, run.stderr
    assert "suspended" in run.json()["error"]["message"]
    assert project.absent("c1")


# --- 7: a source failing after the request fails fast ---------------------------------------------


def test_a_missing_layer_is_exit_6_at_once(project: Project) -> None:
    # The source selects a layer media type the artifact does not hold (a chart's, say).
    selector = {"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "operation": "copy"}
    project.patch(OCIREPOSITORIES, "app", {"spec": {"layerSelector": selector}})
    run = project.flux_ci("deploy", env=project.env(FLUX_CI_TIMEOUT="90s"))
    assert run.exit_code == 6, run.stderr
    message = run.json()["error"]["message"]
    assert f"OCIRepository/{project.namespace}/app" in message
    assert "layer" in message.lower()
    assert run.seconds < 45  # at once, not at the deadline


def test_on_failure_wait_waits_a_failed_apply_out_until_flux_retries_it_into_success(
    project: Project, sandbox: SandboxClient
) -> None:
    # The manifests need a namespace that does not exist yet: the apply fails; Flux retries every 2 s.
    later = f"{project.namespace}-later"
    _an_apply_that_needs_namespace(project, later)
    running = project.start(
        "-v", "deploy", env=project.env(FLUX_CI_ON_FAILURE="wait", FLUX_CI_TIMEOUT="150s")
    )
    try:
        running.wait_for_line("FLUX_CI_ON_FAILURE=wait: Flux retries every 2s", timeout=120)
        assert running.process.poll() is None, "".join(running.seen)  # the failure did not end it
        sandbox.create_namespace(later)
        run = running.finish(timeout=180)
    finally:
        sandbox.delete_namespace(later)
    assert run.exit_code == 0, run.stderr
    assert run.json()["consumers"][0]["state"] == "done"


def test_on_failure_wait_is_exit_7_with_the_last_failure_at_the_deadline_when_flux_never_gets_past_it(
    project: Project,
) -> None:
    # The same failing apply, and the namespace never comes: every retry fails the same way.
    missing = f"{project.namespace}-never"
    _an_apply_that_needs_namespace(project, missing)
    run = project.flux_ci("-v", "deploy", env=project.env(FLUX_CI_ON_FAILURE="wait", FLUX_CI_TIMEOUT="30s"))
    assert run.exit_code == 7, run.stderr  # the consumer's failure, not a timeout (8)
    error = run.json()["error"]
    assert "still failing at the deadline" in error["message"]
    assert missing in error["message"]  # the controller's last message, naming what is missing
    assert "FLUX_CI_ON_FAILURE=wait: Flux retries every 2s" in run.stderr
    assert 28 <= run.seconds < 30 + 15  # waited for a later attempt until the deadline, then ended


def _an_apply_that_needs_namespace(project: Project, namespace: str) -> None:
    """Manifests with one object in `namespace` (not created here): each apply fails until it exists,
    and the Kustomization retries every 2 s."""
    extra = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: elsewhere\n  namespace: {namespace}\n"
    project.write("hello", extra_yaml=extra)
    project.patch(KUSTOMIZATIONS, "app", {"spec": {"targetNamespace": None, "retryInterval": "2s"}})
    (project.manifests / "configmap.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\n  namespace: {project.namespace}\n"
        "data:\n  greeting: hello\n"
    )


# --- 9: faults of the cluster ---------------------------------------------------------------------


def test_an_unanswered_request_is_noted_after_20s_and_a_stall_after_30s(
    project: Project, sandbox: SandboxClient
) -> None:
    with sandbox.paused("source-controller"):
        running = project.start("-v", "deploy", env=project.env(FLUX_CI_TIMEOUT="45s"))
        running.wait_for_line(f"reconcile requested: OCIRepository app in {project.namespace}")
        requested = time.monotonic()
        note = running.wait_for_line("source-controller has not acknowledged the reconcile request", 60)
        noted = time.monotonic() - requested
        assert running.process.poll() is None  # a note while it waits, not the deadline's error
        stall = running.wait_for_line("still waiting after 3", timeout=60)
        stalled = time.monotonic() - requested
        run = running.finish()
    assert f"OCIRepository/{project.namespace}/app" in note
    assert 19 <= noted < 30, f"the 20 s note came {noted:.1f}s after the request"
    assert 29 <= stalled < 40, f"the 30 s note came {stalled:.1f}s after the request"
    assert f"OCIRepository/{project.namespace}/app" in stall
    assert run.exit_code == 8, run.stderr


def test_an_api_server_gone_silent_is_exit_5_retryable_at_the_deadline(
    project: Project, sandbox: SandboxClient
) -> None:
    # Frozen, not stopped: its connections stay open and nothing answers (a blackholed route). Only
    # the bounded /readyz request after 5 s of silence can tell.
    sandbox.pause("kustomize-controller")
    try:
        running = project.start("-v", "deploy", env=project.env(FLUX_CI_TIMEOUT="25s"))
        running.wait_for_line("▶ wait", timeout=90)
        sandbox.pause("kube-apiserver")
        try:
            silent = running.wait_for_line("the Kubernetes API has not answered since", timeout=60)
            run = running.finish(timeout=90)
        finally:
            sandbox.resume("kube-apiserver")
    finally:
        sandbox.resume("kustomize-controller")
    assert run.exit_code == 5, run.stderr
    error = run.json()["error"]
    assert error["retryable"] is True
    assert "still unreachable at the deadline" in error["message"]
    assert "has not answered since" in silent
