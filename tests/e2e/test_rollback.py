"""FLUX_CI_ROLLBACK=true in the real sandbox: a failed deploy puts the previous artifact back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.project import KUSTOMIZATIONS, Project
from tests.sandbox import condition

pytestmark = pytest.mark.e2e

BROKEN = "apiVersion: example.invalid/v1\nkind: NoSuchKind\nmetadata:\n  name: broken\n"


def test_a_failed_deploy_moves_latest_back_and_waits_until_the_good_digest_is_applied(
    project: Project, tmp_path: Path
) -> None:
    good = project.flux_ci("deploy", env=project.env(FLUX_CI_ROLLBACK="true"))
    assert good.exit_code == 0, good.stderr
    good_digest = good.json()["artifact"]["digest"]
    assert good.json()["rollback"] is None

    project.write("broken", extra_yaml=BROKEN)
    dotenv = tmp_path / "deploy.env"
    env = project.env(FLUX_CI_TAG="c2", FLUX_CI_ROLLBACK="true", FLUX_CI_DOTENV=str(dotenv))
    bad = project.flux_ci("deploy", env=env)

    assert bad.exit_code == 7, bad.stderr  # the failure's own code, not the rollback's
    report = bad.json()
    bad_digest = report["artifact"]["digest"]
    assert report["error"]["code"] == "consumer_failed"
    assert "NoSuchKind" in report["error"]["message"]
    assert report["tag_moves"] == [{"tag": "latest", "before": good_digest, "after": bad_digest}]
    rollback = report["rollback"]
    assert rollback["status"] == "rolled_back", rollback
    assert (rollback["from"], rollback["to"], rollback["tags"]) == (bad_digest, good_digest, ["latest"])
    # The registry and the cluster are back on the good artifact, Ready; the bad one keeps its own tag.
    assert project.resolve("latest") == good_digest
    assert project.resolve("c2") == bad_digest
    kustomization = project.kustomization()
    assert kustomization["status"]["lastAppliedRevision"].endswith(f"@{good_digest}")
    assert (condition(kustomization, "Ready") or {})["status"] == "True"
    assert project.configmap_greeting() == "hello"
    assert "FLUX_CI_ROLLBACK_STATUS=rolled_back" in dotenv.read_text()
    assert f"FLUX_CI_PREVIOUS_DIGEST={good_digest}" in dotenv.read_text()
    assert "rollback rolled_back" in bad.stderr
    # The report is the final state: the rows show the good digest back, never the failed run's
    # watches' last view written over the rollback's.
    assert report["sources"][0]["revision"] == f"latest@{good_digest}"
    assert report["consumers"][0]["revision"].endswith(f"@{good_digest}")
    assert report["consumers"][0]["state"] == "done"
    assert f"FLUX_CI_SOURCE_REVISION=latest@{good_digest}" in dotenv.read_text()


def test_a_first_deploy_that_fails_leaves_the_tag_and_says_why(project: Project) -> None:
    project.write("broken", extra_yaml=BROKEN)
    run = project.flux_ci("deploy", env=project.env(FLUX_CI_ROLLBACK="true", FLUX_CI_TIMEOUT="60s"))

    assert run.exit_code == 7, run.stderr
    report = run.json()
    assert report["rollback"]["status"] == "skipped"
    assert "latest pointed to nothing before this run" in report["rollback"]["message"]
    assert project.resolve("latest") == report["artifact"]["digest"]  # left as it is


def test_the_table_says_what_the_rollback_did(project: Project) -> None:
    assert project.flux_ci("deploy").exit_code == 0
    project.write("broken", extra_yaml=BROKEN)
    env = project.env(FLUX_CI_TAG="c2", FLUX_CI_ROLLBACK="true", FLUX_CI_OUTPUT="table")
    run = project.flux_ci("deploy", env=env)

    assert run.exit_code == 7, run.stderr
    assert "rollback: rolled_back (latest -> sha256:" in run.stdout
    assert re.search(r"^moved +latest: sha256:[0-9a-f]{12}… -> sha256:[0-9a-f]{12}…$", run.stdout, re.M)


def test_a_rollback_that_fails_too_is_reported_as_failed_and_the_exit_code_stays(project: Project) -> None:
    """The cluster changed, not the artifact: the Kustomization now applies a path no artifact has,
    so the earlier digest fails as well. The rollback says so; it never hides behind the first error."""
    good = project.flux_ci("deploy")
    assert good.exit_code == 0, good.stderr
    project.patch(KUSTOMIZATIONS, "app", {"spec": {"path": "./missing"}})
    project.write("changed")
    run = project.flux_ci("deploy", env=project.env(FLUX_CI_TAG="c2", FLUX_CI_ROLLBACK="true"))

    assert run.exit_code == 7, run.stderr
    rollback = run.json()["rollback"]
    assert rollback["status"] == "failed", rollback
    assert rollback["message"].startswith("the rollback failed: ")
    assert "missing" in rollback["message"]
    assert rollback["to"] == good.json()["artifact"]["digest"]
    assert project.resolve("latest") == rollback["to"]  # the tag did go back; the cluster could not follow
