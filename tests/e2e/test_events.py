"""Flux's events about the objects flux-ci waits for appear live on stderr, end to end: the real
controllers record them, one `kubectl get events --watch-only` per namespace brings them, and an
identity that may not read events deploys exactly the same, with one note."""

from __future__ import annotations

import json

import pytest

from tests.e2e.project import Project
from tests.sandbox import SandboxClient
from tests.sandbox.rbac import ROLE_FILE, json_documents

pytestmark = pytest.mark.e2e

NO_SUCH_KIND = "apiVersion: example.invalid/v1\nkind: NoSuchKind\nmetadata:\n  name: broken\n"


def test_a_failing_deploy_shows_the_kustomizations_warning_event_before_the_error(project: Project) -> None:
    project.write("hello", extra_yaml=NO_SUCH_KIND)
    run = project.flux_ci("deploy")
    assert run.exit_code == 7, run.stderr
    warning = f"  event Kustomization/{project.namespace}/app: Warning ReconciliationFailed: "
    assert warning in run.stderr, run.stderr
    line = next(line for line in run.stderr.splitlines() if warning in line)
    assert "NoSuchKind" in line
    assert run.stderr.index(warning) < run.stderr.index("✗ wait failed")  # said before the error
    assert "event Kustomization" not in run.stdout  # stdout is the JSON report, nothing else
    assert run.json()["exit_code"] == 7


def test_the_namespaced_role_deploys_and_shows_the_sources_events(
    project: Project, sandbox: SandboxClient
) -> None:
    context = sandbox.namespaced_context(project.namespace)  # examples/rbac/flux-ci.yaml
    named = f"Kustomization/{project.namespace}/app"
    run = project.flux_ci("deploy", env=project.env(FLUX_CI_KUBE_CONTEXT=context, FLUX_CI_WAIT_FOR=named))
    assert run.exit_code == 0, run.stderr
    assert f"  event OCIRepository/{project.namespace}/app: Normal NewArtifact: stored artifact" in run.stderr
    assert "live events not shown" not in run.stderr


def test_an_identity_that_may_not_read_events_deploys_the_same_with_one_note(
    project: Project, sandbox: SandboxClient
) -> None:
    documents = list(json_documents(sandbox.as_json(ROLE_FILE.read_text(encoding="utf-8"))))
    for document in documents:
        if document["kind"] == "Role":
            document["rules"] = [rule for rule in document["rules"] if "events" not in rule["resources"]]
    role = "\n---\n".join(json.dumps(document) for document in documents)
    context = sandbox.namespaced_context(project.namespace, user="gitlab:ci_job:4343", role_yaml=role)
    assert not sandbox.can_i(context, "watch", "events", namespace=project.namespace)
    named = f"Kustomization/{project.namespace}/app"
    run = project.flux_ci("deploy", env=project.env(FLUX_CI_KUBE_CONTEXT=context, FLUX_CI_WAIT_FOR=named))
    assert run.exit_code == 0, run.stderr
    assert run.json()["consumers"][0]["state"] == "done"
    assert run.stderr.count("live events not shown") == 1, run.stderr
    assert f"may not list/watch events in namespace {project.namespace}" in run.stderr
    assert "  event " not in run.stderr
