"""flux-ci deploying a Helm chart that a HelmRelease reads through `spec.chartRef` to an
OCIRepository, with the real helm-controller: success, a failed install, digest tracking on and off.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.project import Project
from tests.sandbox import SandboxClient
from tests.sandbox.charts import INVALID_CONFIGMAP_TEMPLATE, write_chart

pytestmark = pytest.mark.e2e

HELMRELEASES = "helmreleases.helm.toolkit.fluxcd.io"


def _chart_project(
    sandbox: SandboxClient, namespace: str, repository: str, tmp_path: Path, *, digest_tracking: bool = True
) -> Project:
    chart = write_chart(tmp_path / "chart", greeting="one")
    project = Project(sandbox, namespace, repository, chart.parent)
    sandbox.deploy_helm(namespace, "web", repository, tag="latest", digest_tracking=digest_tracking)
    return project


def _release(project: Project) -> dict[str, object]:
    return project.sandbox.get_json(HELMRELEASES, "web", project.namespace)


def _greeting(project: Project) -> str:
    return str(project.sandbox.get_json("configmap", "web-greeting", project.namespace)["data"]["greeting"])


def test_a_chart_deploy_waits_for_the_helmrelease_to_release_the_digest(
    sandbox: SandboxClient, namespace: str, repository: str, tmp_path: Path
) -> None:
    project = _chart_project(sandbox, namespace, repository, tmp_path)
    run = project.flux_ci("deploy")
    assert run.exit_code == 0, run.stderr
    report = run.json()
    digest = report["artifact"]["digest"]
    assert [(c["kind"], c["state"]) for c in report["consumers"]] == [("HelmRelease", "done")]
    status = _release(project)["status"]
    assert isinstance(status, dict)
    assert status["history"][0]["ociDigest"] == f"latest@{digest}"
    assert _greeting(project) == "one"
    write_chart(project.manifests, greeting="two")  # same chart version, new content
    again = project.flux_ci("deploy", env=project.env(FLUX_CI_TAG="c2"))
    assert again.exit_code == 0, again.stderr
    assert _greeting(project) == "two"


def test_a_failed_install_exits_7_with_helms_message(
    sandbox: SandboxClient, namespace: str, repository: str, tmp_path: Path
) -> None:
    project = _chart_project(sandbox, namespace, repository, tmp_path)
    write_chart(project.manifests, templates={"cm.yaml": INVALID_CONFIGMAP_TEMPLATE})
    run = project.flux_ci("deploy")
    assert run.exit_code == 7, run.stderr
    message = run.json()["error"]["message"]
    assert f"HelmRelease/{namespace}/web failed to apply" in message
    assert run.seconds < 60


def test_without_digest_tracking_an_unchanged_chart_version_is_named_not_waited_out(
    sandbox: SandboxClient, namespace: str, repository: str, tmp_path: Path
) -> None:
    project = _chart_project(sandbox, namespace, repository, tmp_path, digest_tracking=False)
    first = project.flux_ci("deploy")
    assert first.exit_code == 0, first.stderr  # the first install is a release
    write_chart(project.manifests, greeting="two")  # same version: helm-controller will not upgrade
    second = project.flux_ci("deploy", env=project.env(FLUX_CI_TAG="c2"))
    assert second.exit_code == 7, second.stderr  # exit 0 would be a false success
    assert "released nothing new" in second.json()["error"]["message"]
    assert _greeting(project) == "one"
    assert second.seconds < 60
    write_chart(project.manifests, version="0.2.0", greeting="three")  # the documented way out
    third = project.flux_ci("deploy", env=project.env(FLUX_CI_TAG="c3"))
    assert third.exit_code == 0, third.stderr
    assert _greeting(project) == "three"
