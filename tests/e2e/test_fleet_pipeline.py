"""examples/fleet.gitlab-ci.yml, a fleet larger than one job: one push, then one stage per wave, each
wave's clusters sharded over `parallel:matrix` jobs. Run by a real GitLab CI engine (gitlab-ci-local)
against three sandbox clusters: staging (cluster 1, following `canary`) and two production clusters
(2 and 3, following `production`), each shard a job of its own.

Without the e2e marker: the example against GitLab's CI schema, and its shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.project import KUSTOMIZATIONS, ROOT, Project
from tests.e2e.test_pipelines import (
    BAD_OBJECT,
    GitLabProject,
    PipelineRun,
    _agent_kubeconfig,
    _configmap,
    _example_variables,
    _no_secret,
    schema_errors,
    yaml_documents,
)
from tests.sandbox import SandboxClient, condition

FLEET = ROOT / "examples" / "fleet.gitlab-ci.yml"
STAGING = "my-group/gitops-agents:staging"
PRODUCTION = ("my-group/gitops-agents:production-eu", "my-group/gitops-agents:production-us")


def _pipeline() -> dict[str, Any]:
    (pipeline,) = yaml_documents(FLEET.read_text(encoding="utf-8"))
    assert isinstance(pipeline, dict)
    return pipeline


def test_fleet_pipeline_is_valid_gitlab_ci(tmp_path: Path) -> None:
    assert schema_errors(tmp_path, fleet=_pipeline()) == ""


def test_fleet_pipeline_pushes_once_then_one_wave_per_stage_sharded_by_context() -> None:
    pipeline = _pipeline()
    stages = pipeline["stages"]
    push = pipeline["push"]
    assert push["stage"] == stages[0]
    assert push["variables"]["FLUX_CI_EXTRA_TAGS"] == "none"  # the immutable tag alone
    assert push["script"] == ["flux-ci push"]
    waves = [pipeline[stage] for stage in stages[1:]]  # one wave per stage, named after it
    tags = [wave["variables"]["FLUX_CI_EXTRA_TAGS"] for wave in waves]
    assert len(set(tags)) == len(tags)
    for previous, wave in zip(["push", *stages[1:]], waves, strict=False):
        assert previous in wave["needs"]
        (matrix,) = wave["parallel"]["matrix"]
        assert set(matrix) == {"FLUX_CI_KUBE_CONTEXT"}
        assert wave["extends"] == ".wave"
        assert "resource_group" not in wave  # it would run the shards one at a time
    assert pipeline[".wave"]["script"] == ["flux-ci promote"]


def _results(run: PipelineRun) -> dict[str, str]:
    """Each job that ran and how it ended; a shard is `<job>: [<its matrix values>]`."""
    summary = re.findall(r"^ (PASS|FAIL|WARN) {2}(.+?)\s*$", run.output, re.MULTILINE)
    return {job: result for result, job in summary}


@pytest.fixture
def fleet(
    sandbox: SandboxClient,
    second_cluster: SandboxClient,
    third_cluster: SandboxClient,
    namespace: str,
    repository: str,
) -> Iterator[dict[str, SandboxClient]]:
    """Staging follows `canary` in cluster 1; production follows `production` in clusters 2 and 3.
    The GitLab agents' contexts, as the example names them."""
    sandbox.deploy_oci(namespace, "app", repository, tag="canary", target_namespace=namespace)
    for client in (second_cluster, third_cluster):
        client.create_namespace(namespace)
        client.deploy_oci(namespace, "app", repository, tag="production", target_namespace=namespace)
    yield {STAGING: sandbox, PRODUCTION[0]: second_cluster, PRODUCTION[1]: third_cluster}
    for client in (second_cluster, third_cluster):
        client.delete_namespace(namespace)


def _run_fleet(
    tmp_path: Path,
    sandbox: SandboxClient,
    agents: dict[str, SandboxClient],
    namespace: str,
    repository: str,
    *,
    bad: bool,
) -> PipelineRun:
    files = {
        ".gitlab-ci.yml": FLEET.read_text(encoding="utf-8"),
        "deploy/configmap.yaml": _configmap("hello"),
    }
    if bad:
        files["deploy/broken.yaml"] = BAD_OBJECT
    gitlab = GitLabProject.create(tmp_path, sandbox, files)
    variables = _example_variables(sandbox, namespace, repository)
    del variables["FLUX_CI_KUBE_CONTEXT"]  # each shard names its own (a project variable would win)
    variables["KUBECONFIG"] = str(_agent_kubeconfig(tmp_path, agents))
    return gitlab.run(variables, timeout=600)


def _applied(client: SandboxClient, namespace: str, revision: str) -> bool:
    kustomization = client.get_json(KUSTOMIZATIONS, "app", namespace)
    ready = condition(kustomization, "Ready") or {}
    return kustomization["status"].get("lastAppliedRevision") == revision and ready.get("status") == "True"


@pytest.mark.e2e
def test_fleet_pipeline_rolls_out_wave_by_wave_each_shard_in_its_own_job(
    sandbox: SandboxClient, fleet: dict[str, SandboxClient], namespace: str, repository: str, tmp_path: Path
) -> None:
    run = _run_fleet(tmp_path, sandbox, fleet, namespace, repository, bad=False)

    assert _results(run) == {
        "push": "PASS",
        f"canary: [{STAGING}]": "PASS",
        f"production: [{PRODUCTION[0]}]": "PASS",
        f"production: [{PRODUCTION[1]}]": "PASS",
    }, run.output
    project = Project(sandbox, namespace, repository, tmp_path / "deploy")
    digest = project.resolve("canary")
    assert project.resolve("production") == digest
    assert _applied(fleet[STAGING], namespace, f"canary@{digest}")
    assert _applied(fleet[PRODUCTION[0]], namespace, f"production@{digest}")
    assert _applied(fleet[PRODUCTION[1]], namespace, f"production@{digest}")
    assert run.output.count("▶ push") == 1  # pushed once, promoted by every shard
    _no_secret(sandbox, run)


@pytest.mark.e2e
def test_fleet_pipeline_stops_at_the_failed_wave_and_later_tags_never_move(
    sandbox: SandboxClient, fleet: dict[str, SandboxClient], namespace: str, repository: str, tmp_path: Path
) -> None:
    run = _run_fleet(tmp_path, sandbox, fleet, namespace, repository, bad=True)

    results = _results(run)
    assert results["push"] == "PASS", run.output
    assert results[f"canary: [{STAGING}]"] == "FAIL", run.output
    assert not any(job.startswith("production") for job in results), run.output
    assert "NoSuchKind" in run.output
    project = Project(sandbox, namespace, repository, tmp_path / "deploy")
    assert project.pushed("canary")
    assert not project.pushed("production")  # asked with credentials: the tag does not exist
    _no_secret(sandbox, run)
