"""The GitLab CI/CD component family in templates/: deploy, promote, diff, wait and doctor.

Without the e2e marker: each component's header and job (interpolated with its defaults) against
GitLab's CI schema; the image is `<image input>:$[[ component.version ]]`, so a component and the
image it runs move together; only deploy and promote record deployments (the others use the
environment actions prepare, verify, access); no input feeds a variable that a dotenv report
re-exports; and docs/gitlab-components.md lists every input of every component with its default.

With the e2e marker: each component included from the project's own repository, as GitLab documents
for testing a component, run by gitlab-ci-local against the sandbox (templates/deploy.yml's runs are
in test_pipelines.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from flux_ci.config.names import variable_name
from flux_ci.config.settings import Settings
from flux_ci.report.dotenv import to_dotenv
from tests.e2e.project import ROOT, Project
from tests.e2e.test_pipelines import (
    GitLabProject,
    _configmap,
    _no_secret,
    _predefined_variables,
    _sample_report,
    schema_errors,
)
from tests.sandbox import SandboxClient, unique_name

TEMPLATES = ROOT / "templates"
DOCS = ROOT / "docs" / "gitlab-components.md"
COMPONENTS = ("deploy", "promote", "diff", "wait", "doctor")
# The environment action of each component: only deploy and promote are deployments.
ACTIONS = {"deploy": "start", "promote": "start", "diff": "access", "wait": "verify", "doctor": "prepare"}
IMAGE_LINE = "$[[ inputs.image ]]:$[[ component.version ]]$[[ inputs.image_digest ]]"
_INPUT = re.compile(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]")
_COMPONENT = re.compile(r"\$\[\[\s*component\.([a-z]+)\s*\]\]")


def template(name: str) -> Path:
    return TEMPLATES / f"{name}.yml"


def header(name: str) -> dict[str, Any]:
    first = next(iter(YAML(typ="safe").load_all(template(name).read_text(encoding="utf-8"))))
    assert isinstance(first, dict)
    return first


def inputs(name: str) -> dict[str, dict[str, Any]]:
    declared: dict[str, dict[str, Any]] = header(name)["spec"]["inputs"]
    return declared


def body(name: str) -> str:
    return template(name).read_text(encoding="utf-8").split("\n---\n", 1)[1]


def interpolated(name: str, given: dict[str, Any], version: str = "1.2.3") -> dict[str, Any]:
    """The job document as GitLab makes it: inputs (defaults, then `given`) and component.version.

    An input standing alone as a YAML value is replaced by its JSON form (arrays, booleans), one
    inside a string by its text, as GitLab does.
    """
    values = {key: spec.get("default") for key, spec in inputs(name).items()} | given

    def value(found: re.Match[str]) -> str:
        data = values[found.group(1)]
        return json.dumps(data) if isinstance(data, list | bool | int) else str(data)

    text = _COMPONENT.sub(lambda found: {"version": version}[found.group(1)], body(name))
    job: dict[str, Any] = YAML(typ="safe").load(_INPUT.sub(value, text))
    return job


def required(name: str) -> dict[str, Any]:
    """Values for the inputs without a default."""
    examples = {"kube_context": "my-group/gitops-agents:production", "needs": ["deploy-staging"]}
    return {key: examples[key] for key, spec in inputs(name).items() if "default" not in spec}


@pytest.mark.parametrize("name", COMPONENTS)
def test_component_header_and_job_are_valid_gitlab_ci(name: str, tmp_path: Path) -> None:
    job = interpolated(name, required(name))
    assert schema_errors(tmp_path, header=header(name), job=job) == ""
    assert list(job) == [name]  # the default job name is the component's


@pytest.mark.parametrize("name", COMPONENTS)
def test_component_image_is_the_image_of_its_own_version(name: str) -> None:
    assert header(name)["spec"]["component"] == ["version"]
    assert f"image: {IMAGE_LINE}\n" in body(name)
    default = inputs(name)["image"]["default"]
    assert ":" not in default.rsplit("/", 1)[-1]  # a repository: the tag is the component's version
    job = interpolated(name, required(name), version="1.4.0")[name]
    assert job["image"] == f"{default}:1.4.0"
    digest = "@sha256:" + "a" * 64
    pinned = interpolated(name, required(name) | {"image_digest": digest}, version="1.4.0")[name]
    assert pinned["image"] == f"{default}:1.4.0{digest}"
    assert re.fullmatch(inputs(name)["image_digest"]["regex"], digest)
    assert not re.fullmatch(inputs(name)["image_digest"]["regex"], "sha256:" + "a" * 64)


@pytest.mark.parametrize("name", COMPONENTS)
def test_only_deploying_components_record_deployments(name: str) -> None:
    environment = interpolated(name, required(name))[name]["environment"]
    assert environment["action"] == ACTIONS[name]
    assert environment["kubernetes"]["agent"] == "my-group/gitops-agents:production"


@pytest.mark.parametrize("name", COMPONENTS)
def test_component_inputs_are_described_used_and_never_feed_a_dotenv_variable(name: str) -> None:
    declared = inputs(name)
    assert set(_INPUT.findall(body(name))) == set(declared)
    for key, spec in declared.items():
        assert spec.get("description"), f"{name}: input {key} has no description"
    assert "default" not in declared["kube_context"]  # the one input every project must give
    variables = interpolated(name, required(name))[name]["variables"]
    assert set(variables) <= {variable_name(field) for field in Settings.model_fields}
    # A dotenv report of an earlier job wins over a job's `variables:`: such an input would be
    # replaced without a trace (FLUX_CI_DIGEST comes from the report on purpose).
    report_keys = {line.split("=", 1)[0] for line in to_dotenv(_sample_report()).splitlines()}
    assert not set(variables) & report_keys


def test_deploying_components_share_one_resource_group_per_environment() -> None:
    groups = {
        name: interpolated(name, required(name))[name]["resource_group"] for name in ("deploy", "promote")
    }
    assert groups == {"deploy": "flux-ci/production", "promote": "flux-ci/production"}


def test_promote_and_wait_take_the_digest_from_the_jobs_they_need() -> None:
    for name in ("promote", "wait"):
        job = interpolated(name, required(name) | {"needs": ["deploy-staging", "verify-staging"]})[name]
        assert job["needs"] == ["deploy-staging", "verify-staging"]
        assert "FLUX_CI_DIGEST" not in job["variables"]
    assert interpolated("promote", required("promote"))["promote"]["when"] == "manual"


def test_diff_runs_in_merge_requests_by_default() -> None:
    job = interpolated("diff", required("diff"))["diff"]
    assert job["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
    assert job["artifacts"]["paths"] == ["flux-ci-diff.md"]


def test_docs_list_every_component_and_every_input_with_its_default() -> None:
    """docs/gitlab-components.md is the catalog page: one section per component, one table row per
    input (`| \\`name\\` | ... | default |`), nothing listed that the component does not have."""
    text = DOCS.read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.MULTILINE)
    by_name = {section.split("\n", 1)[0].strip("` "): section for section in sections[1:]}
    assert set(COMPONENTS) <= set(by_name), f"sections: {sorted(by_name)}"
    for name in COMPONENTS:
        section = by_name[name]
        assert f"/{name}@" in section, f"{name}: no include example"
        rows = dict(re.findall(r"^\| `([a-z_]+)` \|.*\| (.*) \|$", section, re.MULTILINE))
        assert set(rows) == set(inputs(name)), f"{name}: documented {sorted(rows)}"
        for key, spec in inputs(name).items():
            default = spec.get("default")
            shown = "required" if "default" not in spec else json.dumps(default) if default != "" else '""'
            if isinstance(default, str) and default:
                shown = f"`{default}`"
            assert rows[key] == shown, f"{name}.{key}: documented default {rows[key]!r}, not {shown!r}"


# --- each component run by a real GitLab CI engine against the sandbox ------------------------------


def _include(name: str, given: dict[str, Any]) -> str:
    return json.dumps(
        {"component": f"$CI_SERVER_FQDN/$CI_PROJECT_PATH/{name}@$CI_COMMIT_SHA", "inputs": given}
    )


def _project(tmp_path: Path, sandbox: SandboxClient, pipeline: str, manifests: str) -> GitLabProject:
    files = {".gitlab-ci.yml": pipeline, "manifests/configmap.yaml": manifests}
    files |= {f"templates/{name}.yml": template(name).read_text(encoding="utf-8") for name in COMPONENTS}
    return GitLabProject.create(tmp_path, sandbox, files)


def _ci_job_context(sandbox: SandboxClient, namespace: str) -> str:
    """A GitLab agent's impersonated CI job: examples/rbac/flux-ci.yaml in the namespace, and
    examples/rbac/flux-ci-cluster-read.yaml, so no consumer of the sources is invisible (a user of
    its own: the cluster-wide grant must not reach other tests' identities)."""
    user = unique_name("gitlab:ci_job")
    context = sandbox.namespaced_context(namespace, user=user)
    sandbox.grant_cluster_read(user)
    return context


def _common(namespace: str, context: str) -> dict[str, Any]:
    return {"kube_context": context, "namespace": namespace, "environment": "sandbox", "timeout": "120s"}


@pytest.mark.e2e
def test_doctor_deploy_and_wait_components_in_one_pipeline(
    sandbox: SandboxClient, namespace: str, repository: str, tmp_path: Path
) -> None:
    """doctor before the deploy, wait after it reading the deploy's digest from its dotenv report."""
    sandbox.deploy_oci(namespace, "app", f"{repository}/manifests", tag="latest", target_namespace=namespace)
    context = _ci_job_context(sandbox, namespace)
    common = _common(namespace, context)
    pipeline = "\n".join(
        [
            "stages: [test, deploy, verify]",
            "include:",
            f"  - {_include('doctor', common)}",
            f"  - {_include('deploy', common | {'retry_max': 0, 'environment_tier': 'testing'})}",
            f"  - {_include('wait', common | {'needs': ['deploy'], 'stage': 'verify'})}",
        ]
    )
    gitlab = _project(tmp_path, sandbox, pipeline, _configmap("from-components"))
    run = gitlab.run(_predefined_variables(sandbox, f"{sandbox.registry}/{repository}"))
    assert run.results() == {"doctor": "PASS", "deploy": "PASS", "wait": "PASS"}, run.output
    project = Project(sandbox, namespace, f"{repository}/manifests", gitlab.root / "manifests")
    digest = project.resolve(gitlab.short_sha())
    assert project.kustomization()["status"]["lastAppliedRevision"] == f"latest@{digest}"
    assert "ok" in run.log("doctor").lower()
    assert digest in run.log("wait")  # the digest it waited for came from the deploy's report
    expanded = run.expanded()
    commit = gitlab.git("rev-parse", "HEAD")  # a component included at a commit: version = SHA
    for name in ("doctor", "deploy", "wait"):
        assert expanded[name]["image"]["name"] == f"registry.gitlab.com/flux-ci/flux-ci:{commit}"
        assert expanded[name]["environment"]["action"] == ACTIONS[name]
    _no_secret(sandbox, run)


@pytest.mark.e2e
def test_promote_component_moves_stable_to_the_digest_the_deploy_pushed(
    sandbox: SandboxClient, namespace: str, repository: str, tmp_path: Path
) -> None:
    """A deploy to `latest` (staging: its Kustomization applies into a namespace of its own), then the
    manual promote job, started by hand, moves `stable` (production: the test's namespace) to that
    digest."""
    staging = f"{namespace[:50]}-stg"
    sandbox.create_namespace(staging)
    manifests = f"{repository}/manifests"
    sandbox.deploy_oci(namespace, "staging", manifests, tag="latest", target_namespace=staging)
    sandbox.deploy_oci(namespace, "app", manifests, tag="stable", target_namespace=namespace)
    context = _ci_job_context(sandbox, namespace)
    common = _common(namespace, context)
    pipeline = "\n".join(
        [
            "stages: [deploy, promote]",
            "include:",
            f"  - {_include('deploy', common | {'job_name': 'deploy-staging', 'wait_for': 'none'})}",
            f"  - {_include('promote', common | {'needs': ['deploy-staging'], 'stage': 'promote'})}",
        ]
    )
    gitlab = _project(tmp_path, sandbox, pipeline, _configmap("promoted"))
    run = gitlab.run(_predefined_variables(sandbox, f"{sandbox.registry}/{repository}"), manual=["promote"])
    assert run.results() == {"deploy-staging": "PASS", "promote": "PASS"}, run.output
    project = Project(sandbox, namespace, f"{repository}/manifests", gitlab.root / "manifests")
    digest = project.resolve(gitlab.short_sha())
    assert project.resolve("stable") == digest
    assert project.kustomization()["status"]["lastAppliedRevision"] == f"stable@{digest}"
    assert project.configmap_greeting() == "promoted"
    assert "▶ push" not in run.log("promote")  # promoted, never packaged again
    _no_secret(sandbox, run)
    sandbox.delete_namespace(staging)


@pytest.mark.e2e
def test_diff_component_in_a_merge_request_pipeline_reports_the_change(
    sandbox: SandboxClient, namespace: str, repository: str, tmp_path: Path
) -> None:
    sandbox.deploy_oci(namespace, "app", f"{repository}/manifests", tag="latest", target_namespace=namespace)
    # `flux diff` dry-runs the objects server-side, which needs the right to patch them: more than
    # the read-and-annotate Role of examples/rbac/flux-ci.yaml gives. The sandbox's admin context.
    context = sandbox.context
    pipeline = "\n".join(
        [
            "stages: [test, verify]",
            "include:",
            f"  - {_include('diff', _common(namespace, context))}",
            "changed:",
            "  stage: verify",
            "  needs: [diff]",
            '  script: [echo "changed=$FLUX_CI_CHANGED"]',
        ]
    )
    gitlab = _project(tmp_path, sandbox, pipeline, _configmap("not-yet-applied"))
    variables = _predefined_variables(sandbox, f"{sandbox.registry}/{repository}")
    branch = gitlab.run(variables)  # not a merge request: the default rules leave diff out
    assert "diff" not in branch.results(), branch.output
    merge_request = gitlab.run(variables | {"CI_PIPELINE_SOURCE": "merge_request_event"})
    assert merge_request.results() == {"diff": "PASS", "changed": "PASS"}, merge_request.output
    markdown = (gitlab.root / "flux-ci-diff.md").read_text(encoding="utf-8")
    assert "ConfigMap" in markdown
    assert "changed=true" in merge_request.log("changed")
    assert not Project(sandbox, namespace, f"{repository}/manifests", gitlab.root).pushed(gitlab.short_sha())
    _no_secret(sandbox, merge_request)
