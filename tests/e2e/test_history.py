"""What runs, who put it there, and what Ready covered, against the real sandbox: `history` after
three deploys and a rollback by `promote`, the traceability annotations (and no secret in them),
`changed` on a re-run, `checks` health versus apply with FLUX_CI_REQUIRE_HEALTH, and the event
notification-controller sends for a flux-ci deploy (a generic webhook Provider and an Alert)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.project import (
    KUSTOMIZATIONS,
    OCIREPOSITORIES,
    READ_ONLY_USER,
    REVISION,
    Project,
    read_only_role,
)
from tests.sandbox import SandboxClient

pytestmark = pytest.mark.e2e

GITLAB = "https://gitlab.example/group/app/-"
JOB_TOKEN = "glcbt-64_s3cr3tj0bt0k3nv4lu3"  # CI_JOB_TOKEN: must never reach an annotation


def pipeline_env(project: Project, number: int, **extra: str) -> dict[str, str]:
    """A deploy job of pipeline `number`, as GitLab's predefined variables describe it."""
    gitlab = {
        "FLUX_CI_TAG": f"c{number}",
        "CI_PIPELINE_URL": f"{GITLAB}/pipelines/10{number}",
        "CI_JOB_URL": f"{GITLAB}/jobs/20{number}",
        "GITLAB_USER_LOGIN": f"user{number}",
        "CI_JOB_STARTED_AT": f"2026-01-0{number}T10:00:00Z",
    }
    return project.env(**{**gitlab, **extra})


def manifest(project: Project, digest: str) -> str:
    """The manifest as the registry holds it, asked with credentials."""
    config = project.sandbox.login(project.manifests.parent / "manifest-config")
    ref = f"{project.sandbox.registry}/{project.repository}@{digest}"
    done = project.sandbox.oras(
        "manifest", "fetch", ref, "--plain-http", "--registry-config", str(config / "config.json")
    )
    return done.stdout


def test_history_lists_three_deploys_newest_first_and_promote_rolls_back_to_the_second(
    project: Project,
) -> None:
    digests = []
    for number in (1, 2, 3):
        project.write(f"v{number}")
        # The first job's URLs carry the job token the way a careless setup might: as credentials
        # and in a query. Neither may reach the artifact, which anyone who can pull reads.
        leaky = {
            "CI_JOB_TOKEN": JOB_TOKEN,
            "CI_JOB_URL": f"https://gitlab-ci-token:{JOB_TOKEN}@gitlab.example/group/app/-/jobs/201?t={JOB_TOKEN}",
        }
        run = project.flux_ci("deploy", env=pipeline_env(project, number, **(leaky if number == 1 else {})))
        assert run.exit_code == 0, run.stderr
        assert run.json()["changed"] is True
        digests.append(run.json()["artifact"]["digest"])

    first = manifest(project, digests[0])
    assert JOB_TOKEN not in first
    assert json.loads(first)["annotations"]["io.flux-ci.job.url"] == f"{GITLAB}/jobs/201"

    again = project.flux_ci("deploy", env=pipeline_env(project, 3))  # the same job, run again
    assert again.exit_code == 0, again.stderr
    assert again.json()["artifact"]["digest"] == digests[2]
    assert again.json()["changed"] is False

    shown = project.flux_ci("history")
    assert shown.exit_code == 0, shown.stderr
    entries = shown.json()["history"]
    assert [(e["kind"], e["name"]) for e in entries] == [("Kustomization", "app")] * 3
    assert [e["digest"] for e in entries] == digests[::-1]
    assert [e["tags"] for e in entries] == [["c3", "latest"], ["c2"], ["c1"]]
    assert [e["pushed_by"]["pipeline_url"] for e in entries] == [
        f"{GITLAB}/pipelines/10{n}" for n in (3, 2, 1)
    ]
    assert [e["pushed_by"]["user"] for e in entries] == ["user3", "user2", "user1"]
    assert entries[0]["pushed_by"]["pushed_at"] == "2026-01-03T10:00:00Z"
    assert [e["origin_revision"] for e in entries] == [REVISION] * 3
    assert all(e["in_registry"] and e["status"] == "ReconciliationSucceeded" for e in entries)
    assert shown.json()["sources"][0]["pushed_by"]["pipeline_url"] == f"{GITLAB}/pipelines/103"

    second = entries[1]["digest"]
    rollback = project.flux_ci("promote", env=project.env(FLUX_CI_DIGEST=second, FLUX_CI_TAG="c2"))
    assert rollback.exit_code == 0, rollback.stderr
    assert rollback.json()["changed"] is True
    assert project.configmap_greeting() == "v2"

    after = project.flux_ci("history", "-o", "table")
    assert after.exit_code == 0, after.stderr
    assert f"{GITLAB}/pipelines/102" in after.stdout
    rows = project.flux_ci("history").json()["history"]
    # kustomize-controller keeps one snapshot per built content: the second moves to the front.
    assert [e["digest"] for e in rows] == [digests[1], digests[2], digests[0]]
    assert rows[0]["tags"] == ["c2", "latest"]
    assert rows[0]["reconciliations"] == 2


def wait_kustomization(name: str, namespace: str) -> str:
    """A second Kustomization of the project's source with `wait: true`, its objects prefixed."""
    spec = {
        "interval": "10m", "path": "./", "prune": True, "wait": True, "namePrefix": "wait-",
        "targetNamespace": namespace, "sourceRef": {"kind": "OCIRepository", "name": "app"},
    }  # fmt: skip
    kustomization = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization"}
    return json.dumps({**kustomization, "metadata": {"name": name}, "spec": spec})


def test_checks_say_what_ready_covered_and_require_health_refuses_before_the_push(
    project: Project, sandbox: SandboxClient
) -> None:
    sandbox.apply(wait_kustomization("app-wait", project.namespace), namespace=project.namespace)

    run = project.flux_ci("deploy")

    assert run.exit_code == 0, run.stderr
    checks = {row["name"]: row["checks"] for row in run.json()["consumers"]}
    assert checks == {"app": "apply", "app-wait": "health"}
    table = project.flux_ci("status", "-o", "table")
    assert "applied, no health checks" in table.stdout

    refused = project.flux_ci("deploy", env=project.env(FLUX_CI_TAG="c2", FLUX_CI_REQUIRE_HEALTH="true"))

    assert refused.exit_code == 2, refused.stderr
    message = refused.json()["error"]["message"]
    assert f"Kustomization/{project.namespace}/app: set spec.wait: true" in message
    assert "app-wait" not in message
    assert not project.pushed("c2")  # asked with credentials: without, the registry says 401 either way


class _Events(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:  # the generic provider POSTs each event as JSON
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:  # quiet
        pass


@pytest.fixture
def events_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server collecting what notification-controller posts; its URL and the events."""
    received: list[dict[str, Any]] = []
    handler = type("Events", (_Events,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/flux", received
    finally:
        server.shutdown()
        server.server_close()


def test_notification_controller_reports_a_flux_ci_deploy_with_its_commit(
    project: Project, sandbox: SandboxClient, events_receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = events_receiver
    provider = {
        "apiVersion": "notification.toolkit.fluxcd.io/v1beta3", "kind": "Provider",
        "metadata": {"name": "ci-webhook"}, "spec": {"type": "generic", "address": url},
    }  # fmt: skip
    alert = {
        "apiVersion": "notification.toolkit.fluxcd.io/v1beta3", "kind": "Alert",
        "metadata": {"name": "deploys"},
        "spec": {
            "providerRef": {"name": "ci-webhook"}, "eventSeverity": "info",
            "eventSources": [{"kind": "Kustomization", "name": "app"}],
        },
    }  # fmt: skip
    sandbox.apply("\n---\n".join(json.dumps(doc) for doc in (provider, alert)), namespace=project.namespace)

    run = project.flux_ci("deploy")
    assert run.exit_code == 0, run.stderr
    digest = run.json()["artifact"]["digest"]

    def applied_event() -> dict[str, Any] | None:
        return next(
            (
                event
                for event in received
                if event.get("involvedObject", {}).get("kind") == "Kustomization"
                and event.get("metadata", {}).get("revision", "").endswith(digest)
            ),
            None,
        )

    event = sandbox.wait_for(applied_event, timeout=90, what="notification-controller's event for the deploy")
    assert event["metadata"]["originRevision"] == REVISION  # the commit a commit-status Provider marks
    assert event["metadata"]["revision"] == f"latest@{digest}"
    assert event["involvedObject"]["namespace"] == project.namespace
    assert event["severity"] == "info"
    kustomization = sandbox.get_json(KUSTOMIZATIONS, "app", project.namespace)
    assert kustomization["status"]["lastAppliedOriginRevision"] == REVISION


def test_history_needs_only_read_access(project: Project, sandbox: SandboxClient) -> None:
    """An identity that may only get/list/watch in the namespace shows the history; nothing is written."""
    assert project.flux_ci("deploy").exit_code == 0
    context = sandbox.namespaced_context(project.namespace, user=READ_ONLY_USER, role_yaml=read_only_role())
    assert not sandbox.can_i(context, "patch", OCIREPOSITORIES, namespace=project.namespace)
    before = project.kustomization()["metadata"]["resourceVersion"]

    shown = project.flux_ci("history", "--dry-run", env=project.env(FLUX_CI_KUBE_CONTEXT=context))

    assert shown.exit_code == 0, shown.stderr
    assert shown.json()["status"] == "succeeded"  # read-only: a dry run is a real one
    assert len(shown.json()["history"]) == 1
    assert project.kustomization()["metadata"]["resourceVersion"] == before
