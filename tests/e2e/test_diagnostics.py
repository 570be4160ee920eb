"""A failed deploy says why, end to end: the real kustomize-controller health-checks a Deployment that
never becomes ready (the sandbox has no kubelet and no controller-manager), and flux-ci names it."""

from __future__ import annotations

import re

import pytest

from tests.e2e.project import KUSTOMIZATIONS, Project

pytestmark = pytest.mark.e2e

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
"""


def test_a_deployment_that_never_becomes_ready_is_named_with_its_condition(project: Project) -> None:
    project.write("hello", extra_yaml=DEPLOYMENT)
    project.patch(KUSTOMIZATIONS, "app", {"spec": {"wait": True, "timeout": "10s", "retryInterval": "1m"}})
    run = project.flux_ci("deploy", env=project.env(FLUX_CI_TIMEOUT="90s"))
    assert run.exit_code == 7, run.stderr  # kustomize-controller's verdict: HealthCheckFailed
    data = run.json()
    digest = data["artifact"]["digest"]
    [diagnostic] = data["diagnostics"]
    assert (diagnostic["kind"], diagnostic["namespace"], diagnostic["name"]) == (
        "Kustomization",
        project.namespace,
        "app",
    )
    assert diagnostic["message"].startswith("health check failed")
    assert [(o["kind"], o["namespace"], o["name"]) for o in diagnostic["objects"]] == [
        ("Deployment", project.namespace, "web")
    ]
    status = diagnostic["objects"][0]["status"]
    assert "health check: InProgress" in status
    assert "no status: no controller has reported on it" in status
    assert any(event.startswith("HealthCheckFailed: ") for event in diagnostic["events"])
    assert diagnostic["retry"] == f"Flux keeps retrying {digest} every 1m"
    assert diagnostic["commands"] == [
        f"flux events --for Kustomization/app -n {project.namespace}",
        f"flux get kustomizations app -n {project.namespace}",
    ]
    took = re.search(r"diagnostics read in (\d+\.\d)s", run.stderr)
    assert took is not None, run.stderr
    assert float(took.group(1)) < 5  # diagnostics.GATHER_BUDGET_S
