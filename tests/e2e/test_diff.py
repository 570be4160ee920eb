"""`flux-ci diff` against the real flux and cluster: what applying FLUX_CI_PATH would change."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.project import Project

pytestmark = pytest.mark.e2e

ADDED = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: added\ndata:\n  added: yes\n"


def test_diff_reports_no_change_then_the_drifted_and_created_objects(
    project: Project, tmp_path: Path
) -> None:
    deployed = project.flux_ci("deploy")
    assert deployed.exit_code == 0, deployed.stderr

    same = project.flux_ci("diff", env=project.env(FLUX_CI_TAG="c2"))
    assert same.exit_code == 0, same.stderr
    assert same.json()["changed"] is False
    assert same.json()["changes"] == []

    project.write("bonjour", extra_yaml=ADDED)
    dotenv = tmp_path / "diff.env"
    changed = project.flux_ci("diff", env=project.env(FLUX_CI_TAG="c2", FLUX_CI_DOTENV=str(dotenv)))
    assert changed.exit_code == 0, changed.stderr  # a diff found is not an error
    data = changed.json()
    assert data["changed"] is True
    kinds = {c["object"]: c["change"] for c in data["changes"]}
    ns = project.namespace
    assert kinds == {f"ConfigMap/{ns}/greeting": "drifted", f"ConfigMap/{ns}/added": "created"}
    drifted = next(c for c in data["changes"] if c["change"] == "drifted")
    assert "- hello" in drifted["diff"]
    assert "+ bonjour" in drifted["diff"]
    assert drifted["kustomization"] == f"Kustomization/{ns}/app"
    assert "FLUX_CI_CHANGED=true" in dotenv.read_text().splitlines()

    # Read-only: nothing pushed, nothing applied.
    assert project.absent("c2")
    assert project.configmap_greeting() == "hello"

    markdown = project.flux_ci("diff", env=project.env(FLUX_CI_TAG="c2", FLUX_CI_OUTPUT="markdown"))
    assert markdown.exit_code == 0, markdown.stderr
    assert "<details><summary>diff</summary>" in markdown.stdout
    assert f"`ConfigMap/{ns}/added` created" in markdown.stdout
