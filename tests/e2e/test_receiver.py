"""Pipelines that may not write to the cluster (FLUX_CI_NOTIFY=receiver|none), end to end: the real
notification-controller's Receiver webhook asks Flux to reconcile, flux-ci waits through an identity
that may only read, or reads nothing at all (FLUX_CI_VERIFY=false, no kubeconfig) and says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.project import (
    KUSTOMIZATIONS,
    OCIREPOSITORIES,
    READ_ONLY_USER,
    ROOT,
    Project,
    Run,
    child_env,
    read_only_role,
)
from tests.sandbox import SandboxClient

pytestmark = pytest.mark.e2e

SLACK_S = 15  # a slow CI machine: bounds say "fast", never "within a millisecond budget"


def _read_only(project: Project) -> str:
    context = project.sandbox.namespaced_context(
        project.namespace, user=READ_ONLY_USER, role_yaml=read_only_role()
    )
    assert not project.sandbox.can_i(context, "patch", OCIREPOSITORIES, namespace=project.namespace)
    return context


def _consumers(project: Project) -> str:
    """A namespaced identity cannot see consumers in other namespaces: it names the ones to wait for."""
    return f"Kustomization/{project.namespace}/app"


def _receiver(project: Project, receiver_type: str = "generic") -> dict[str, str]:
    """A Receiver asking Flux to reconcile the project's OCIRepository; the variables naming it."""
    token = project.sandbox.create_receiver(
        project.namespace, "ci", [{"kind": "OCIRepository", "name": "app"}], receiver_type=receiver_type
    )
    return {
        "FLUX_CI_RECEIVER_URL": project.sandbox.receiver_url,
        "FLUX_CI_RECEIVER": f"{project.namespace}/ci",
        "FLUX_CI_RECEIVER_TOKEN": token,
        "FLUX_CI_RECEIVER_TYPE": receiver_type,
    }


def _without_cluster(project: Project, tmp_path: Path, *args: str, **env: str) -> Run:
    """flux-ci in a job with no cluster access at all: no KUBECONFIG, no ~/.kube, no in-cluster config."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    variables = {k: v for k, v in child_env(project.sandbox, project.env(**env)).items() if k != "KUBECONFIG"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "flux_ci", *args],
        env={**variables, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def _applied(project: Project, digest: str) -> dict[str, Any]:
    """The Kustomization once it applied `digest`, as the cluster's admin sees it."""
    return project.sandbox.wait_condition(
        KUSTOMIZATIONS, "app", project.namespace,
        lambda obj: obj.get("status", {}).get("lastAppliedRevision") == f"latest@{digest}",
        timeout=120, what=f"applied {digest}",
    )  # fmt: skip


def _assert_no_secret(run: Run, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in run.stdout
        assert secret not in run.stderr


# --- with cluster read access: the waits run as today --------------------------------------------


@pytest.mark.parametrize("receiver_type", ["generic", "generic-hmac"])
def test_a_receiver_deploy_through_a_read_only_identity_waits_for_exactly_this_digest(
    project: Project, receiver_type: str
) -> None:
    variables = _receiver(project, receiver_type)
    env = project.env(
        FLUX_CI_KUBE_CONTEXT=_read_only(project), FLUX_CI_WAIT_FOR=_consumers(project), **variables
    )
    run = project.flux_ci("-v", "deploy", env=env)
    assert run.exit_code == 0, run.stderr
    report = run.json()
    assert report["status"] == "succeeded"
    digest = report["artifact"]["digest"]
    assert [c["state"] for c in report["consumers"]] == ["done"]
    assert project.kustomization()["status"]["lastAppliedRevision"] == f"latest@{digest}"
    assert "kubectl annotate" not in run.stderr  # nothing was written to the cluster by flux-ci
    # The request notification-controller wrote is read back and is what source-controller handled.
    handled = project.source()["status"]["lastHandledReconcileAt"]
    assert f"OCIRepository/{project.namespace}/app: reconcile requested by the Receiver at {handled}" in (
        run.stderr
    )
    assert "/hook/****" in run.stderr
    _assert_no_secret(run, variables["FLUX_CI_RECEIVER_TOKEN"])


def test_a_source_failing_after_the_receivers_request_fails_fast(
    project: Project, sandbox: SandboxClient
) -> None:
    secret = sandbox.pull_secret_manifest(project.namespace, "wrong-auth")
    secret["data"][".dockerconfigjson"] = _docker_config(sandbox.registry, "nobody", "not-the-password")
    sandbox.apply(json.dumps(secret))
    project.patch(OCIREPOSITORIES, "app", {"spec": {"secretRef": {"name": "wrong-auth"}}})
    env = project.env(
        FLUX_CI_KUBE_CONTEXT=_read_only(project), FLUX_CI_WAIT_FOR=_consumers(project), **_receiver(project)
    )
    run = project.flux_ci("deploy", env=env)
    assert run.exit_code == 6, run.stderr
    assert f"OCIRepository/{project.namespace}/app failed to fetch" in run.json()["error"]["message"]
    assert run.seconds < SLACK_S  # decided by the token notification-controller wrote, not the deadline


def test_none_waits_for_the_sources_own_interval(project: Project) -> None:
    project.patch(OCIREPOSITORIES, "app", {"spec": {"interval": "5s"}})
    env = project.env(
        FLUX_CI_KUBE_CONTEXT=_read_only(project), FLUX_CI_WAIT_FOR=_consumers(project), FLUX_CI_NOTIFY="none"
    )
    run = project.flux_ci("-v", "deploy", env=env)
    assert run.exit_code == 0, run.stderr
    report = run.json()
    assert [(s["interval"], s["state"]) for s in report["sources"]] == [("5s", "done")]
    assert [c["state"] for c in report["consumers"]] == ["done"]
    assert (
        "not requested (FLUX_CI_NOTIFY=none): source-controller fetches the tag at its interval, every 5s"
        in (run.stderr)
    )
    assert "kubectl annotate" not in run.stderr


def test_a_read_only_identity_in_annotate_mode_is_pointed_to_receiver_and_none(project: Project) -> None:
    run = project.flux_ci(
        "deploy",
        env=project.env(FLUX_CI_KUBE_CONTEXT=_read_only(project), FLUX_CI_WAIT_FOR=_consumers(project)),
    )
    assert run.exit_code == 5, run.stderr
    message = run.json()["error"]["message"]
    assert f"may not patch {OCIREPOSITORIES} in namespace {project.namespace}" in message
    assert "FLUX_CI_NOTIFY=receiver" in message
    assert "FLUX_CI_NOTIFY=none" in message
    assert project.absent("c1")


# --- without any cluster access ------------------------------------------------------------------


@pytest.mark.parametrize("receiver_type", ["generic", "generic-hmac"])
def test_without_any_cluster_access_the_deploy_ends_triggered(
    project: Project, tmp_path: Path, receiver_type: str
) -> None:
    variables = _receiver(project, receiver_type)
    dotenv = tmp_path / "deploy.env"
    run = _without_cluster(
        project, tmp_path, "deploy", FLUX_CI_VERIFY="false", FLUX_CI_DOTENV=str(dotenv), **variables
    )
    assert run.exit_code == 0, run.stderr
    report = run.json()
    assert report["status"] == "triggered"  # never "succeeded": nothing was verified
    assert report["sources"] == report["consumers"] == []
    assert any("was not verified" in note for note in report["notes"])
    assert "FLUX_CI_STATUS=triggered\n" in dotenv.read_text()
    table = _without_cluster(project, tmp_path, "deploy", FLUX_CI_VERIFY="false", FLUX_CI_OUTPUT="table",
                             FLUX_CI_TAG="c2", **variables)  # fmt: skip
    assert table.exit_code == 0, table.stderr
    assert "deploy: triggered (the Receiver accepted the request; nothing in the cluster was verified)" in (
        table.stdout
    )
    _applied(project, report["artifact"]["digest"])  # and Flux did act on the trigger
    _assert_no_secret(run, variables["FLUX_CI_RECEIVER_TOKEN"])


def test_without_a_kubeconfig_a_verifying_deploy_fails_before_the_push(
    project: Project, tmp_path: Path
) -> None:
    run = _without_cluster(project, tmp_path, "deploy", **_receiver(project))
    assert run.exit_code == 5, run.stderr  # never a silent "triggered": FLUX_CI_VERIFY=false is explicit
    assert "FLUX_CI_VERIFY=false pushes and triggers the Receiver" in run.json()["error"]["message"]
    assert project.absent("c1")


def test_a_wrong_token_fails_before_the_push_quoting_the_receivers_answer(
    project: Project, tmp_path: Path
) -> None:
    # No cluster access at all: the webhook is asked, in a way that annotates nothing, before the push.
    variables = _receiver(project) | {"FLUX_CI_RECEIVER_TOKEN": "not-the-receivers-token"}
    run = _without_cluster(project, tmp_path, "deploy", FLUX_CI_VERIFY="false", **variables)
    assert run.exit_code == 2, run.stderr
    error = run.json()["error"]
    assert error["code"] == "config"
    assert error["retryable"] is False
    assert error["message"] == (
        f"no Ready Receiver serves {project.sandbox.receiver_url}/hook/****: the generic Receiver "
        f"{project.namespace}/ci answered 404 Not Found. notification-controller finds a Receiver by that "
        "path, which it derives from the token, the name and the namespace: check FLUX_CI_RECEIVER_TOKEN, "
        "FLUX_CI_RECEIVER and FLUX_CI_RECEIVER_TYPE, and that the Receiver is Ready. Nothing was pushed"
    )
    assert project.tag_digest("c1") is None  # v1 pushed first, and Flux deployed it at its interval
    assert project.tag_digest("latest") is None
    _assert_no_secret(run, "not-the-receivers-token")
    # Asked again only while a Receiver could still be starting (10 s, the last pause up to 5 s).
    assert run.seconds < 10 + 5 + SLACK_S


def test_a_generic_oidc_receiver_is_found_and_refuses_a_token_its_issuer_never_signed(
    project: Project, tmp_path: Path
) -> None:
    # Not a test of OIDC itself (that needs a public issuer): flux-ci reaches the tokenless webhook
    # path and sends the bearer, and notification-controller's refusal is reported as it is.
    receiver = {
        "apiVersion": "notification.toolkit.fluxcd.io/v1",
        "kind": "Receiver",
        "metadata": {"name": "oidc", "namespace": project.namespace},
        "spec": {
            "type": "generic-oidc",
            "resources": [{"kind": "OCIRepository", "name": "app"}],
            "oidcProviders": [{
                "issuerURL": "https://gitlab.example.invalid",
                "validations": [{"expression": "claims.project_path == 'group/app'", "message": "project"}],
            }],
        },
    }  # fmt: skip
    project.sandbox.apply(json.dumps(receiver))
    project.sandbox.wait_condition(
        "receivers.notification.toolkit.fluxcd.io", "oidc", project.namespace,
        lambda obj: bool(obj.get("status", {}).get("webhookPath")), timeout=60, what="a webhook path",
    )  # fmt: skip
    run = _without_cluster(
        project, tmp_path, "deploy",
        FLUX_CI_VERIFY="false", FLUX_CI_RECEIVER_URL=project.sandbox.receiver_url,
        FLUX_CI_RECEIVER=f"{project.namespace}/oidc", FLUX_CI_RECEIVER_TYPE="generic-oidc",
        FLUX_CI_RECEIVER_OIDC_TOKEN="eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
    )  # fmt: skip
    assert run.exit_code == 5, run.stderr
    message = run.json()["error"]["message"]
    assert "refused the request" in message
    assert "400 Bad Request" in message
    assert run.seconds < SLACK_S
    _assert_no_secret(run, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl")


def _docker_config(registry: str, user: str, password: str) -> str:
    import base64  # noqa: PLC0415

    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    config = {"auths": {registry: {"username": user, "password": password, "auth": auth}}}
    return base64.b64encode(json.dumps(config).encode()).decode()
