"""Everything that can be checked before the push is checked before the push: a Receiver that would
refuse flux-ci's request is exit 2 with nothing pushed and no tag moved, against the real
notification-controller. Read from the cluster when the identity may `get` Receivers (the sandbox's
admin), else asked of the webhook in a way that annotates nothing (the read-only Role has no
`receivers`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from flux_ci.kube import receiver
from tests.e2e.project import READ_ONLY_USER, Project, read_only_role
from tests.sandbox import SandboxClient

pytestmark = pytest.mark.e2e

SLACK_S = 15  # a slow CI machine: bounds say "fast", never "within a millisecond budget"
RECEIVERS = "receivers.notification.toolkit.fluxcd.io"


def _receiver(project: Project, receiver_type: str = "generic", name: str = "ci") -> dict[str, str]:
    """A Ready Receiver asking Flux to reconcile the project's OCIRepository; the variables naming it."""
    token = project.sandbox.create_receiver(
        project.namespace, name, [{"kind": "OCIRepository", "name": "app"}], receiver_type=receiver_type
    )
    return {
        "FLUX_CI_RECEIVER_URL": project.sandbox.receiver_url,
        "FLUX_CI_RECEIVER": f"{project.namespace}/{name}",
        "FLUX_CI_RECEIVER_TOKEN": token,
        "FLUX_CI_RECEIVER_TYPE": receiver_type,
    }


def _read_only(project: Project) -> dict[str, str]:
    """A namespaced identity that may not read Receivers; it reads only its own namespace, so its
    consumer is named (FLUX_CI_WAIT_FOR), else the sources' other possible readers are invisible."""
    context = project.sandbox.namespaced_context(
        project.namespace, user=READ_ONLY_USER, role_yaml=read_only_role()
    )
    assert not project.sandbox.can_i(context, "get", RECEIVERS, namespace=project.namespace)
    return {"FLUX_CI_KUBE_CONTEXT": context, "FLUX_CI_WAIT_FOR": f"Kustomization/{project.namespace}/app"}


def _latest_pushed(project: Project, tmp_path: Path) -> str:
    """`latest` names an artifact already: the moving tag a wrong deploy must not move."""
    config = project.sandbox.login(tmp_path / "push-config")
    pushed = project.sandbox.push_artifact(project.manifests, project.repository, docker_config=config)
    assert project.tag_digest("latest") == pushed.digest
    return pushed.digest


def _assert_nothing_changed(project: Project, latest: str) -> None:
    assert project.tag_digest("c2") is None  # the immutable tag was never pushed
    assert project.tag_digest("latest") == latest  # the moving tag never moved


# --- read from the cluster -----------------------------------------------------------------------


def test_a_wrong_token_read_from_the_cluster_exits_2_before_the_push(
    project: Project, tmp_path: Path
) -> None:
    latest = _latest_pushed(project, tmp_path)
    variables = _receiver(project) | {"FLUX_CI_RECEIVER_TOKEN": "not-the-receivers-token"}
    run = project.flux_ci("-v", "deploy", env=project.env(FLUX_CI_TAG="c2", **variables))
    assert run.exit_code == 2, run.stderr
    assert run.seconds < SLACK_S
    error = run.json()["error"]
    assert error["code"] == "config"
    assert error["message"] == (
        f"the generic Receiver {project.namespace}/ci cannot accept flux-ci's request: its webhook path "
        "(status.webhookPath) is not the one derived from FLUX_CI_RECEIVER_TOKEN, its name and namespace: "
        "the token is not the `token` of the Receiver's Secret. Nothing was pushed"
    )
    _assert_nothing_changed(project, latest)
    assert "not-the-receivers-token" not in run.stdout + run.stderr


def test_a_receiver_of_another_type_exits_2_naming_the_type_to_set(project: Project, tmp_path: Path) -> None:
    latest = _latest_pushed(project, tmp_path)
    variables = _receiver(project, "generic-hmac") | {"FLUX_CI_RECEIVER_TYPE": "generic"}
    run = project.flux_ci("deploy", env=project.env(FLUX_CI_TAG="c2", **variables))
    assert run.exit_code == 2, run.stderr
    assert (
        "it is of type generic-hmac, not generic (FLUX_CI_RECEIVER_TYPE): set FLUX_CI_RECEIVER_TYPE="
        in (run.json()["error"]["message"])
    )
    _assert_nothing_changed(project, latest)


def test_a_receiver_that_does_not_exist_exits_2(project: Project, tmp_path: Path) -> None:
    latest = _latest_pushed(project, tmp_path)
    variables = _receiver(project) | {"FLUX_CI_RECEIVER": f"{project.namespace}/no-such-receiver"}
    run = project.flux_ci("deploy", env=project.env(FLUX_CI_TAG="c2", **variables))
    assert run.exit_code == 2, run.stderr
    assert run.json()["error"]["message"].startswith(
        f"Receiver {project.namespace}/no-such-receiver does not exist (FLUX_CI_RECEIVER"
    )
    _assert_nothing_changed(project, latest)


def test_the_right_token_read_from_the_cluster_still_deploys(project: Project) -> None:
    run = project.flux_ci("-v", "deploy", env=project.env(**_receiver(project)))
    assert run.exit_code == 0, run.stderr
    digest = run.json()["artifact"]["digest"]
    assert f"the generic Receiver {project.namespace}/ci is Ready and serves the webhook path" in run.stderr
    assert project.tag_digest("latest") == digest
    assert project.kustomization()["status"]["lastAppliedRevision"] == f"latest@{digest}"


# --- asked of the webhook ------------------------------------------------------------------------


@pytest.mark.parametrize("receiver_type", ["generic", "generic-hmac"])
def test_a_wrong_token_asked_of_the_webhook_exits_2_before_the_push(
    project: Project, tmp_path: Path, receiver_type: str
) -> None:
    latest = _latest_pushed(project, tmp_path)
    variables = _receiver(project, receiver_type) | {"FLUX_CI_RECEIVER_TOKEN": "not-the-receivers-token"}
    env = project.env(FLUX_CI_TAG="c2", **_read_only(project), **variables)
    run = project.flux_ci("-v", "deploy", env=env)
    assert run.exit_code == 2, run.stderr
    # Asked again only while a Receiver could still be starting (its last pause is up to 5 s).
    assert run.seconds < receiver.NOT_FOUND_GRACE_S + max(receiver.BACKOFF_S) + SLACK_S
    message = run.json()["error"]["message"]
    assert message.startswith(f"no Ready Receiver serves {project.sandbox.receiver_url}/hook/****: the ")
    assert "answered 404 Not Found" in message
    assert f"may not read Receiver {project.namespace}/ci" in run.stderr
    _assert_nothing_changed(project, latest)
    assert "not-the-receivers-token" not in run.stdout + run.stderr


def test_the_right_token_asked_of_the_webhook_deploys_and_the_question_annotated_nothing(
    project: Project, sandbox: SandboxClient
) -> None:
    variables = _receiver(project)
    env = project.env(**_read_only(project), **variables)
    run = project.flux_ci("-v", "deploy", env=env)
    assert run.exit_code == 0, run.stderr
    assert (
        f"the generic Receiver {project.namespace}/ci is Ready at {sandbox.receiver_url}/hook/****"
        in run.stderr
    )
    # One request annotated the source: the deploy's own, after the push (the question did not).
    handled = project.source()["status"]["lastHandledReconcileAt"]
    assert run.stderr.count("reconcile requested by the Receiver at") == 1
    assert f"reconcile requested by the Receiver at {handled}" in run.stderr


@pytest.mark.parametrize("receiver_type", ["generic", "generic-hmac"])
def test_the_question_is_answered_without_annotating_anything(
    project: Project, sandbox: SandboxClient, receiver_type: str
) -> None:
    # notification-controller v1.9.2 itself: 100 Continue for a Ready Receiver's path (then flux-ci
    # hangs up), 404 for a path no Receiver has, 503 for a suspended Receiver; and no annotation.
    variables = _receiver(project, receiver_type)
    token, name = variables["FLUX_CI_RECEIVER_TOKEN"], "ci"
    url = sandbox.receiver_url + receiver.webhook_path(token, name, project.namespace)
    asked = receiver.ask_for_body(url, 10)
    assert (asked.status, asked.text) == (100, "100 Continue")
    unknown = sandbox.receiver_url + "/hook/" + hashlib.sha256(b"no receiver has this").hexdigest()
    assert receiver.ask_for_body(unknown, 10).status == 404
    _wait_for_refusal(sandbox, project.namespace, name)
    annotations = project.source()["metadata"].get("annotations") or {}
    assert "reconcile.fluxcd.io/requestedAt" not in annotations
    project.sandbox.kubectl("patch", RECEIVERS, name, "-n", project.namespace, "--type=merge",
                            "--patch", '{"spec": {"suspend": true}}')  # fmt: skip
    sandbox.wait_condition(
        RECEIVERS, name, project.namespace,
        lambda obj: obj["status"].get("observedGeneration") == obj["metadata"]["generation"],
        timeout=60, what="the suspension reconciled",
    )  # fmt: skip
    assert receiver.ask_for_body(url, 10).status == 503


def _wait_for_refusal(sandbox: SandboxClient, namespace: str, name: str) -> None:
    """Until notification-controller logged that the question's body never came: its handler has
    returned, so anything it would have annotated is annotated by now."""
    log = Path(sandbox.state.process(sandbox.cluster.process_name("notification-controller")).log)
    wanted = f'"name": "{name}", "namespace": "{namespace}", "error": "failed to read request body'

    def refused() -> bool | None:
        return wanted in log.read_text(encoding="utf-8", errors="replace") or None

    sandbox.wait_for(refused, timeout=60, what="notification-controller's refusal of the unsent body")
