"""FLUX_CI_WAVES against two real clusters, one registry: the canary wave is cluster 1 (its
OCIRepository follows `canary`), the stable wave cluster 2 (following `stable`). One push, then wave
after wave; the soak between them; the stop at the first failed wave and the rollback of every wave,
the last first. And deploy freezes (GitLab's CI_DEPLOY_FREEZE)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.project import KUSTOMIZATIONS, OCIREPOSITORIES, Project, Run
from tests.e2e.test_pipelines import BAD_OBJECT
from tests.sandbox import SandboxClient, condition, unique_name

pytestmark = pytest.mark.e2e


@pytest.fixture
def waves(project: Project, second_cluster: SandboxClient) -> Iterator[str]:
    """Cluster 1's OCIRepository follows `canary`, cluster 2's (same namespace) `stable`; the value
    of FLUX_CI_WAVES that rolls out to cluster 1 first, then cluster 2."""
    project.patch(OCIREPOSITORIES, "app", {"spec": {"ref": {"tag": "canary"}}})
    second_cluster.create_namespace(project.namespace)
    second_cluster.deploy_oci(
        project.namespace, "app", project.repository, tag="stable", target_namespace=project.namespace
    )
    yield f"canary={project.sandbox.context};stable={second_cluster.context}"
    second_cluster.delete_namespace(project.namespace)


def applied(client: SandboxClient, namespace: str, revision: str) -> bool:
    """The Kustomization applied exactly `revision` (`<tag>@<digest>`) and is Ready."""
    kustomization = client.get_json(KUSTOMIZATIONS, "app", namespace)
    ready = condition(kustomization, "Ready") or {}
    return kustomization["status"].get("lastAppliedRevision") == revision and ready.get("status") == "True"


def _outcomes(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(wave["tag"], wave["status"]) for wave in report["waves"]]


def _deploy(project: Project, waves: str, tag: str, **env: str) -> Run:
    return project.flux_ci("-v", "deploy", env=project.env(FLUX_CI_WAVES=waves, FLUX_CI_TAG=tag, **env))


def _good_first(project: Project, second_cluster: SandboxClient, waves: str) -> str:
    """A deploy that succeeds in both waves: both tags on its digest, which it returns."""
    run = _deploy(project, waves, "c1")
    assert run.exit_code == 0, run.stderr
    digest = str(run.json()["artifact"]["digest"])
    assert applied(second_cluster, project.namespace, f"stable@{digest}")
    return digest


def test_two_waves_one_push_each_tag_moved_after_the_previous_wave_applied(
    project: Project, second_cluster: SandboxClient, waves: str, tmp_path: Path
) -> None:
    dotenv = tmp_path / "deploy.env"
    run = _deploy(project, waves, "c1", FLUX_CI_DOTENV=str(dotenv))

    assert run.exit_code == 0, run.stderr
    report = run.json()
    digest = report["artifact"]["digest"]
    assert _outcomes(report) == [("canary", "succeeded"), ("stable", "succeeded")]
    assert [wave["clusters"] for wave in report["waves"]] == [
        [project.sandbox.context],
        [second_cluster.context],
    ]
    assert project.resolve("canary") == project.resolve("stable") == project.resolve("c1") == digest
    assert applied(project.sandbox, project.namespace, f"canary@{digest}")
    assert applied(second_cluster, project.namespace, f"stable@{digest}")
    assert [step["name"] for step in report["steps"]].count("push") == 1  # pushed once
    assert report["artifact"]["tags"] == ["c1", "canary", "stable"]
    # the stable tag moved only once the canary cluster had applied the digest
    lines = run.stderr.splitlines()
    canary_done = next(
        i for i, line in enumerate(lines) if f"[{project.sandbox.context}] ✔ wait done" in line
    )
    stable_moved = next(i for i, line in enumerate(lines) if f"▶ tag stable -> {digest}" in line)
    assert canary_done < stable_moved
    assert "FLUX_CI_WAVES_SUCCEEDED=canary,stable" in dotenv.read_text()


def test_promote_moves_each_waves_tag_in_turn(
    project: Project, second_cluster: SandboxClient, waves: str
) -> None:
    pushed = project.flux_ci("push", env=project.env(FLUX_CI_EXTRA_TAGS="none"))
    assert pushed.exit_code == 0, pushed.stderr
    digest = pushed.json()["artifact"]["digest"]

    run = project.flux_ci("promote", env=project.env(FLUX_CI_WAVES=waves))

    assert run.exit_code == 0, run.stderr
    report = run.json()
    assert _outcomes(report) == [("canary", "succeeded"), ("stable", "succeeded")]
    assert [(move["tag"], move["before"], move["after"]) for move in report["tag_moves"]] == [
        ("canary", "", digest),
        ("stable", "", digest),
    ]
    assert applied(project.sandbox, project.namespace, f"canary@{digest}")
    assert applied(second_cluster, project.namespace, f"stable@{digest}")
    assert "▶ push" not in run.stderr  # promoted, never packaged again


def test_a_bad_artifact_fails_in_wave_1_and_wave_2s_tag_never_moves(
    project: Project, second_cluster: SandboxClient, waves: str, tmp_path: Path
) -> None:
    project.write("hello", extra_yaml=BAD_OBJECT)
    dotenv = tmp_path / "deploy.env"
    run = _deploy(project, waves, "c1", FLUX_CI_DOTENV=str(dotenv))

    assert run.exit_code == 7, run.stderr
    report = run.json()
    assert _outcomes(report) == [("canary", "failed"), ("stable", "not-started")]
    assert report["error"]["message"].startswith(f"wave canary ({project.sandbox.context}) failed: ")
    assert "waves not started (their tags did not move): stable" in report["error"]["message"]
    assert project.resolve("canary") == report["artifact"]["digest"]
    assert not project.pushed("stable")  # asked with credentials: the tag does not exist
    kustomization = second_cluster.get_json(KUSTOMIZATIONS, "app", project.namespace)
    assert report["artifact"]["digest"] not in str(kustomization["status"])  # cluster 2 never saw it
    assert {c["context"]: c["status"] for c in report["clusters"]} == {
        project.sandbox.context: "failed",
        second_cluster.context: "not-deployed",
    }
    assert "FLUX_CI_WAVE_FAILED=canary" in dotenv.read_text()


def test_with_rollback_a_failure_in_wave_1_puts_its_tag_back(
    project: Project, second_cluster: SandboxClient, waves: str
) -> None:
    good = _good_first(project, second_cluster, waves)
    project.write("hello", extra_yaml=BAD_OBJECT)

    run = _deploy(project, waves, "c2", FLUX_CI_ROLLBACK="true")

    assert run.exit_code == 7, run.stderr
    report = run.json()
    assert report["rollback"]["status"] == "rolled_back", report["rollback"]
    assert report["rollback"]["tags"] == ["canary"]
    assert _outcomes(report) == [("canary", "failed"), ("stable", "not-started")]
    assert project.resolve("canary") == project.resolve("stable") == good
    assert applied(project.sandbox, project.namespace, f"canary@{good}")
    assert applied(second_cluster, project.namespace, f"stable@{good}")


@pytest.fixture
def canary_only_kind(project: Project) -> Iterator[str]:
    """A CRD that only cluster 1 has: an object of its kind applies there and fails in cluster 2."""
    group = f"{unique_name('waves')}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    project.sandbox.apply(json.dumps(crd))
    project.sandbox.kubectl("wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=120s")
    yield f"apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: canary-only\n"
    project.sandbox.kubectl("delete", f"crd/widgets.{group}", "--wait=false", check=False)


def test_with_rollback_a_failure_in_wave_2_puts_every_tag_back_the_last_wave_first(
    project: Project, second_cluster: SandboxClient, waves: str, canary_only_kind: str
) -> None:
    good = _good_first(project, second_cluster, waves)
    project.write("hello", extra_yaml=canary_only_kind)  # applies in cluster 1, fails in cluster 2

    run = _deploy(project, waves, "c2", FLUX_CI_ROLLBACK="true")

    assert run.exit_code == 7, run.stderr
    report = run.json()
    assert report["error"]["message"].startswith(f"wave stable ({second_cluster.context}) failed: ")
    assert report["rollback"]["status"] == "rolled_back", report["rollback"]
    assert report["rollback"]["tags"] == ["stable", "canary"]  # the last wave first
    assert _outcomes(report) == [("canary", "rolled_back"), ("stable", "failed")]
    assert project.resolve("canary") == project.resolve("stable") == good
    assert applied(project.sandbox, project.namespace, f"canary@{good}")
    assert applied(second_cluster, project.namespace, f"stable@{good}")
    lines = run.stderr.splitlines()
    stable_back = next(i for i, line in enumerate(lines) if f"[{second_cluster.context}] ✔ wait done" in line
                       and i > _index(lines, "▶ rollback"))  # fmt: skip
    canary_back = next(i for i, line in enumerate(lines) if f"[{project.sandbox.context}] ✔ wait done" in line
                       and i > _index(lines, "▶ rollback"))  # fmt: skip
    assert stable_back < canary_back


def _index(lines: list[str], text: str) -> int:
    return next(i for i, line in enumerate(lines) if text in line)


def test_a_consumer_that_breaks_during_the_soak_fails_the_wave(
    project: Project, second_cluster: SandboxClient, waves: str
) -> None:
    """Cluster 1's Kustomization is changed to a path the artifact lacks once flux-ci soaks there:
    it leaves Ready, and the wave fails before its soak is over; the stable tag never moves."""
    env = project.env(FLUX_CI_WAVES=waves, FLUX_CI_WAVE_SOAK="90s", FLUX_CI_TIMEOUT="240s")
    running = project.start("-v", "deploy", env=env)
    running.wait_for_line(f"[{project.sandbox.context}] ▶ soak", timeout=120)
    project.patch(KUSTOMIZATIONS, "app", {"spec": {"path": "./missing"}})
    run = running.finish(timeout=240)

    assert run.exit_code == 7, run.stderr
    report = run.json()
    message = report["error"]["message"]
    assert f"Kustomization/{project.namespace}/app left Ready: " in message
    assert "s into the 90s soak)" in message
    assert _outcomes(report) == [("canary", "failed"), ("stable", "not-started")]
    assert 0 < report["waves"][0]["soak_s"] < 90  # ended by the failure, not by the clock
    assert not project.pushed("stable")
    assert [d["name"] for d in report["diagnostics"]] == ["app"]


def test_a_deploy_freeze_is_exit_2_before_anything_is_pushed(project: Project) -> None:
    run = project.flux_ci("deploy", env=project.env(CI_DEPLOY_FREEZE="true"))

    assert run.exit_code == 2, run.stderr
    assert "a deploy freeze is on (CI_DEPLOY_FREEZE" in run.json()["error"]["message"]
    assert "FLUX_CI_IGNORE_FREEZE=true" in run.json()["error"]["message"]
    assert not project.pushed("c1")  # asked with credentials: without, the registry says 401 either way

    hotfix = project.flux_ci("deploy", env=project.env(CI_DEPLOY_FREEZE="true", FLUX_CI_IGNORE_FREEZE="true"))
    assert hotfix.exit_code == 0, hotfix.stderr
    assert project.pushed("c1")
