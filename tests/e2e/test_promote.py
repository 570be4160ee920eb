"""`flux-ci promote` in the real sandbox: staging follows `latest`, production follows `stable`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.project import Project
from tests.sandbox import SandboxClient, condition

pytestmark = pytest.mark.e2e

ZERO_DIGEST = "sha256:" + "0" * 64


@pytest.fixture
def production(project: Project, sandbox: SandboxClient) -> str:
    """A second environment in the project's namespace: OCIRepository `prod` following `stable`,
    its Kustomization applying into a namespace of its own."""
    target = f"{project.namespace[:50]}-prod"
    sandbox.create_namespace(target)
    sandbox.deploy_oci(project.namespace, "prod", project.repository, tag="stable", target_namespace=target)
    return target


def read_dotenv(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_promote_points_stable_at_the_tested_digest_and_waits_for_production(
    project: Project, sandbox: SandboxClient, production: str, tmp_path: Path
) -> None:
    dotenv = tmp_path / "deploy.env"
    staging = project.flux_ci("deploy", env=project.env(FLUX_CI_DOTENV=str(dotenv)))
    assert staging.exit_code == 0, staging.stderr
    digest = staging.json()["artifact"]["digest"]
    assert project.absent("stable")

    # The promote job: the digest from the deploy job's dotenv report, production's moving tag.
    promoted = project.flux_ci(
        "promote",
        env=project.env(FLUX_CI_DIGEST=read_dotenv(dotenv)["FLUX_CI_DIGEST"], FLUX_CI_EXTRA_TAGS="stable"),
    )

    assert promoted.exit_code == 0, promoted.stderr
    report = promoted.json()
    assert report["artifact"]["digest"] == digest
    assert report["tag_moves"] == [{"tag": "stable", "before": "", "after": digest}]
    assert [source["name"] for source in report["sources"]] == ["prod"]  # staging follows latest
    assert [consumer["name"] for consumer in report["consumers"]] == ["prod"]
    assert project.resolve("stable") == digest
    assert project.resolve("c1") == digest  # the immutable tag is never moved
    kustomization = project.kustomization("prod")
    assert kustomization["status"]["lastAppliedRevision"] == f"stable@{digest}"
    assert (condition(kustomization, "Ready") or {})["status"] == "True"
    assert sandbox.find_json("configmap", "greeting", production) is not None
    assert "push" not in [step["name"] for step in report["steps"]]  # nothing is packaged again


def test_promote_by_the_immutable_tag_resolves_it(project: Project, production: str) -> None:
    staging = project.flux_ci("deploy")
    assert staging.exit_code == 0, staging.stderr

    promoted = project.flux_ci("promote", env=project.env(FLUX_CI_EXTRA_TAGS="stable"))  # FLUX_CI_TAG=c1

    assert promoted.exit_code == 0, promoted.stderr
    assert promoted.json()["artifact"]["digest"] == staging.json()["artifact"]["digest"]
    assert promoted.json()["artifact"]["tags"] == ["c1", "stable"]
    assert project.kustomization("prod")["status"]["lastAppliedRevision"].endswith(
        staging.json()["artifact"]["digest"]
    )


def test_promote_refuses_a_digest_the_registry_does_not_hold(project: Project, production: str) -> None:
    assert project.flux_ci("deploy").exit_code == 0

    run = project.flux_ci("promote", env=project.env(FLUX_CI_DIGEST=ZERO_DIGEST, FLUX_CI_EXTRA_TAGS="stable"))

    assert run.exit_code == 4, run.stderr
    assert "does not hold" in run.json()["error"]["message"]
    assert project.absent("stable")  # nothing moved


def test_promote_never_moves_the_immutable_tag(project: Project, production: str) -> None:
    run = project.flux_ci("promote", env=project.env(FLUX_CI_EXTRA_TAGS="c1"))

    assert run.exit_code == 2, run.stderr
    assert "FLUX_CI_EXTRA_TAGS names no tag to move" in run.json()["error"]["message"]


BROKEN = "apiVersion: example.invalid/v1\nkind: NoSuchKind\nmetadata:\n  name: broken\n"


def test_a_failed_promotion_with_rollback_puts_stable_back(project: Project, production: str) -> None:
    assert project.flux_ci("deploy").exit_code == 0
    first = project.flux_ci("promote", env=project.env(FLUX_CI_EXTRA_TAGS="stable"))
    assert first.exit_code == 0, first.stderr
    good = first.json()["artifact"]["digest"]
    project.write("broken", extra_yaml=BROKEN)
    pushed = project.flux_ci("push", env=project.env(FLUX_CI_TAG="c2", FLUX_CI_EXTRA_TAGS="none"))
    bad = pushed.json()["artifact"]["digest"]

    env = project.env(FLUX_CI_TAG="c2", FLUX_CI_EXTRA_TAGS="stable", FLUX_CI_ROLLBACK="true")
    run = project.flux_ci("promote", env=env)

    assert run.exit_code == 7, run.stderr
    report = run.json()
    assert report["tag_moves"] == [{"tag": "stable", "before": good, "after": bad}]
    assert report["rollback"]["status"] == "rolled_back", report["rollback"]
    assert (report["rollback"]["from"], report["rollback"]["to"]) == (bad, good)
    assert project.resolve("stable") == good
    assert project.resolve("c2") == bad  # the immutable tag keeps naming the failed artifact
    kustomization = project.kustomization("prod")
    assert kustomization["status"]["lastAppliedRevision"] == f"stable@{good}"
    assert (condition(kustomization, "Ready") or {})["status"] == "True"
