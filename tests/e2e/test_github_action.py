"""The GitHub Action end to end: the step of action.yml that runs flux-ci, with its inputs put in as
the runner puts them, deploys into the sandbox with GITHUB_ACTIONS=true; the outputs file, the job
summary and the log groups are then read back. A failed deploy annotates its error.

Without the e2e marker: action.yml against GitHub's action schema, and actionlint on the example
workflow and on a workflow that uses this checkout's action (which checks inputs and outputs).
With it, the install step too, as the runner runs it: the hashed locks with --require-hashes, then
flux-ci built from the action's files with no index (tests/test_action_pins.py checks the pins).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from flux_ci import __version__
from flux_ci.config.names import variable_name
from flux_ci.config.settings import Settings
from flux_ci.report.github import outputs as github_outputs
from flux_ci.report.models import Report
from tests.e2e.project import REVISION, ROOT, Project, Run, child_env
from tests.e2e.test_pipelines import BAD_OBJECT, engine_pin, require, schema_errors
from tests.sandbox.versions import tools_dir

ACTION = ROOT / "action.yml"
WORKFLOW = ROOT / "examples" / "github-workflow.yml"
_EXPRESSION = re.compile(r"\$\{\{\s*(inputs|github)\.([A-Za-z0-9_-]+)\s*\}\}")
# What the github context holds in the tests (the token is the job's; none here).
_GITHUB = {"actor": "octocat", "token": ""}


def action() -> dict[str, Any]:
    data = YAML(typ="safe").load(ACTION.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def run_step() -> dict[str, Any]:
    steps: list[dict[str, Any]] = action()["runs"]["steps"]
    (step,) = [step for step in steps if step.get("id") == "run"]
    return step


def evaluate(template: str, inputs: Mapping[str, str]) -> str:
    """The runner's `${{ inputs.x }}` and `${{ github.x }}` substitution (an input's default too)."""
    declared = action()["inputs"]

    def value(found: re.Match[str]) -> str:
        context, name = found.groups()
        if context == "github":
            return _GITHUB[name]
        if name in inputs:
            return inputs[name]
        return evaluate(str(declared[name].get("default", "")), {})

    return _EXPRESSION.sub(value, template)


def actionlint() -> Path:
    path = tools_dir() / "actionlint" / engine_pin("ACTIONLINT_VERSION") / "actionlint"
    require(path.exists(), f"actionlint ({path})")
    return path


def _actionlint(cwd: Path, *files: str) -> subprocess.CompletedProcess[str]:
    argv = [str(actionlint()), "-no-color", *files]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_action_metadata_is_valid(tmp_path: Path) -> None:
    assert schema_errors(tmp_path, action=action(), schema="vendor.github-actions") == ""


def test_example_workflow_is_actionlint_clean() -> None:
    done = _actionlint(ROOT, str(WORKFLOW.relative_to(ROOT)))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_workflow_using_this_action_is_actionlint_clean(tmp_path: Path) -> None:
    """actionlint reads a local action's metadata: the example's inputs and outputs must exist."""
    shutil.copy(ACTION, tmp_path / "action.yml")
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    workflow = WORKFLOW.read_text(encoding="utf-8")
    local, count = re.subn(r"uses: flux-ci/flux-ci@\S+", "uses: ./", workflow)
    assert count == 1
    (workflows / "deploy.yml").write_text(local, encoding="utf-8")
    subprocess.run(["git", "init", "--quiet", str(tmp_path)], check=True)
    done = _actionlint(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_action_inputs_and_outputs_mirror_flux_ci() -> None:
    env = run_step()["env"]
    variables = {name for name in env if name.startswith("FLUX_CI_")}
    # Every FLUX_CI_ setting but the dotenv report (GitLab's) is an input of the action (cosign's own
    # variables, COSIGN_PRIVATE_KEY and COSIGN_PASSWORD, come from the job's environment).
    prefixed = {field for field, info in Settings.model_fields.items() if info.validation_alias is None}
    assert variables == {variable_name(field) for field in prefixed} - {"FLUX_CI_DOTENV"}
    used = {name for value in env.values() for _, name in _EXPRESSION.findall(str(value))}
    assert used <= set(action()["inputs"])
    declared = action()["outputs"]
    assert set(declared) == set(github_outputs(Report(command="deploy")))
    for name, output in declared.items():
        assert output["value"] == f"${{{{ steps.run.outputs.{name} }}}}"
        assert output["description"]


@pytest.mark.e2e
def test_the_install_step_installs_flux_ci_from_the_hashed_locks(tmp_path: Path) -> None:
    (step,) = [step for step in action()["runs"]["steps"] if step.get("name") == "Install flux-ci"]
    assert "--require-hashes" in step["run"]
    action_path = tmp_path / "action"  # what the runner checks out: the files Git would commit
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (action_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, action_path / name)
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PYTHON": sys.executable,  # steps.python.outputs.python-path
        "RUNNER_TEMP": str(runner_temp),
        "GITHUB_ACTION_PATH": str(action_path),
    }
    done = subprocess.run(
        ["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"flux-ci {__version__}"
    installed = subprocess.run(
        [str(runner_temp / "flux-ci" / "bin" / "python"), "-m", "pip", "freeze"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "pydantic==" in installed


def _read_outputs(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines())
    return dict(pairs)


def _github_files(tmp_path: Path) -> dict[str, str]:
    files = {"GITHUB_OUTPUT": tmp_path / "github_output", "GITHUB_STEP_SUMMARY": tmp_path / "step_summary"}
    for path in files.values():
        path.touch()  # the runner creates both before the step runs
    return {"GITHUB_ACTIONS": "true", **{name: str(path) for name, path in files.items()}}


@pytest.mark.e2e
def test_the_action_deploys_and_writes_outputs_summary_and_groups(project: Project, tmp_path: Path) -> None:
    inputs = {
        "path": str(project.manifests),
        "repository": project.sandbox.oci_url(project.repository),
        "tag": "c1",
        "source": "https://github.example/acme/app",
        "revision": REVISION,
        "namespace": project.namespace,
        "timeout": "120s",
        "insecure-registry": "true",
        "registry-user": project.sandbox.registry_user,
        "registry-password": project.sandbox.registry_password,
    }
    step = run_step()
    runner_temp = tmp_path / "runner-temp"
    wrapper = runner_temp / "flux-ci" / "bin" / "flux-ci"  # where the install step puts flux-ci
    wrapper.parent.mkdir(parents=True)
    python, root = shlex.quote(sys.executable), shlex.quote(str(ROOT))
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={root} exec {python} -m flux_ci "$@"\n')
    wrapper.chmod(0o755)
    env = {name: evaluate(str(value), inputs) for name, value in step["env"].items()}
    env |= {"RUNNER_TEMP": str(runner_temp), **_github_files(tmp_path)}
    assert step["shell"] == "bash"
    done = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        env=child_env(project.sandbox, env),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    digest = project.resolve("c1")
    outputs = _read_outputs(tmp_path / "github_output")
    assert outputs == {
        "status": "succeeded",
        "exit-code": "0",
        "retryable": "false",
        "digest": digest,
        "url": f"{inputs['repository']}@{digest}",
        "tag": "c1",
        "revision": REVISION,
        "superseded-by": "",
        "previous-digest": "",
        "rollback-status": "",
        "clusters-succeeded": "",
        "clusters-failed": "",
        "waves-succeeded": "",
        "wave-failed": "",
    }
    summary = (tmp_path / "step_summary").read_text(encoding="utf-8")
    assert summary.startswith("### ✅ flux-ci deploy: succeeded")
    assert f"| digest | `{digest}` |" in summary
    # Its Ready covers only the apply (no wait, no health checks): the state cell says so.
    state = "done (applied, no health checks)"
    assert f"| Kustomization | `{project.namespace}/app` | `latest@{digest}` | True | {state} |" in summary
    groups = re.findall(r"^::group::(\S+)", done.stderr, re.MULTILINE)
    assert groups == ["discover", "push", "tag", "reconcile", "wait"]
    assert done.stderr.count("\n::endgroup::\n") == len(groups)
    assert "::error" not in done.stderr
    assert "deploy: succeeded" in done.stdout  # the table, on the step's log
    for text in (done.stdout, done.stderr, summary, str(outputs)):
        assert project.sandbox.registry_password not in text


@pytest.mark.e2e
def test_a_failed_deploy_is_annotated_and_summarised(project: Project, tmp_path: Path) -> None:
    project.write("hello", extra_yaml=BAD_OBJECT)
    github = _github_files(tmp_path)
    run: Run = project.flux_ci("deploy", env=project.env(FLUX_CI_OUTPUT="markdown", **github))
    assert run.exit_code == 7, run.stderr
    summary = (tmp_path / "step_summary").read_text(encoding="utf-8")
    assert run.stdout == summary  # FLUX_CI_OUTPUT=markdown is the job summary, for a merge request
    assert summary.startswith("### ❌ flux-ci deploy: failed")
    assert "**Error** (exit 7, `consumer_failed`, not retryable)" in summary
    assert "NoSuchKind" in summary
    annotation = [line for line in run.stderr.splitlines() if line.startswith("::error ")]
    assert len(annotation) == 1
    assert annotation[0].startswith("::error title=flux-ci deploy%3A consumer_failed (exit 7)::")
    assert "NoSuchKind" in annotation[0]
    outputs = _read_outputs(tmp_path / "github_output")
    assert outputs["status"] == "failed"
    assert outputs["exit-code"] == "7"
    assert outputs["digest"] == project.resolve("c1")
