"""dependsOn chains against the real kustomize- and helm-controller: each link costs the controller's
work, not its `--requeue-dependency` (30 s). The controllers here run with Flux's defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.project import KUSTOMIZATIONS, Project
from tests.sandbox import SandboxClient
from tests.sandbox.charts import write_chart

pytestmark = pytest.mark.e2e

HELMRELEASES = "helmreleases.helm.toolkit.fluxcd.io"
REQUEUE_S = 30  # kustomize-controller's and helm-controller's default --requeue-dependency
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  link: {name}\n"


def _chain(project: Project, sandbox: SandboxClient, links: int = 3) -> list[str]:
    """The project's Kustomization `app` applies ./link-0; `link-1` … depend each on the one before."""
    for old in project.manifests.glob("*.yaml"):
        old.unlink()
    names = ["app", *(f"link-{i}" for i in range(1, links))]
    for index in range(links):
        directory = project.manifests / f"link-{index}"
        directory.mkdir()
        (directory / "configmap.yaml").write_text(CONFIGMAP.format(name=f"cm-{index}"))
    project.patch(KUSTOMIZATIONS, "app", {"spec": {"path": "./link-0"}})
    base = project.kustomization()
    for index, name in enumerate(names[1:], start=1):
        link = {
            "apiVersion": base["apiVersion"],
            "kind": "Kustomization",
            "metadata": {"name": name, "namespace": project.namespace},
            "spec": {**base["spec"], "path": f"./link-{index}", "dependsOn": [{"name": names[index - 1]}]},
        }
        sandbox.apply(json.dumps(link))
    return names


def test_a_three_link_chain_moves_at_the_controllers_pace(project: Project, sandbox: SandboxClient) -> None:
    names = _chain(project, sandbox)
    run = project.flux_ci("-v", "deploy")
    assert run.exit_code == 0, run.stderr
    assert [c["state"] for c in run.json()["consumers"]] == ["done"] * 3
    ns = project.namespace
    assert f"Kustomization/{ns}/{names[1]}: dependency Kustomization/{ns}/app applied" in run.stderr
    assert f"Kustomization/{ns}/{names[2]}: dependency Kustomization/{ns}/{names[1]} applied" in run.stderr
    assert run.seconds < REQUEUE_S  # Flux alone: up to one requeue per link, 60 s for these two


def test_without_patch_the_chain_moves_at_fluxs_pace_and_says_how_to_speed_it(
    project: Project, sandbox: SandboxClient
) -> None:
    names = _chain(project, sandbox, links=2)
    role = (Path(__file__).parents[2] / "examples/rbac/flux-ci.yaml").read_text(encoding="utf-8")
    no_patch = role.replace(
        'resources: ["kustomizations"]\n    verbs: ["get", "list", "watch", "patch"]',
        'resources: ["kustomizations"]\n    verbs: ["get", "list", "watch"]',
    )
    assert no_patch != role
    context = sandbox.namespaced_context(project.namespace, user="no-kustomization-patch", role_yaml=no_patch)
    consumers = ",".join(f"Kustomization/{project.namespace}/{name}" for name in names)
    env = project.env(FLUX_CI_KUBE_CONTEXT=context, FLUX_CI_WAIT_FOR=consumers, FLUX_CI_TIMEOUT="150s")
    run = project.flux_ci("-v", "deploy", env=env)
    assert run.exit_code == 0, run.stderr  # Flux's own requeue applies the second link in the end
    assert f"Kustomization/{project.namespace}/{names[1]}: may not patch {KUSTOMIZATIONS}" in run.stderr
    assert "--requeue-dependency" in run.stderr


def test_a_failing_first_link_fails_the_run_at_once_naming_it(
    project: Project, sandbox: SandboxClient
) -> None:
    _chain(project, sandbox)
    (project.manifests / "link-0" / "broken.yaml").write_text(
        "apiVersion: example.invalid/v1\nkind: NoSuchKind\nmetadata:\n  name: broken\n"
    )
    run = project.flux_ci("deploy")
    assert run.exit_code == 7, run.stderr
    assert f"Kustomization/{project.namespace}/app failed to apply" in run.json()["error"]["message"]
    assert run.seconds < REQUEUE_S


def test_a_helmrelease_chain_moves_at_the_controllers_pace(
    sandbox: SandboxClient, namespace: str, repository: str, tmp_path: Path
) -> None:
    # Flux's dependsOn names no kind (fluxcd/pkg apis/meta DependencyReference): a HelmRelease
    # depends on HelmReleases, a Kustomization on Kustomizations. `web` waits for `db`; both install
    # the chart the OCIRepository `web` holds.
    chart = write_chart(tmp_path / "chart", greeting="chained")
    project = Project(sandbox, namespace, repository, chart.parent)
    sandbox.deploy_helm(namespace, "web", repository, tag="latest")
    release = sandbox.get_json(HELMRELEASES, "web", namespace)
    db = {
        "apiVersion": release["apiVersion"],
        "kind": "HelmRelease",
        "metadata": {"name": "db", "namespace": namespace},
        "spec": {**release["spec"], "releaseName": "db"},
    }
    sandbox.apply(json.dumps(db))
    sandbox.kubectl("patch", HELMRELEASES, "web", "-n", namespace, "--type=merge",
                    '--patch={"spec": {"dependsOn": [{"name": "db"}]}}')  # fmt: skip
    run = project.flux_ci("-v", "deploy")
    assert run.exit_code == 0, run.stderr
    assert [c["state"] for c in run.json()["consumers"]] == ["done", "done"]
    assert f"HelmRelease/{namespace}/web: dependency HelmRelease/{namespace}/db applied" in run.stderr
    assert run.seconds < REQUEUE_S
