"""The GitLab side of flux-ci, run by a real GitLab CI engine against the sandbox.

gitlab-ci-local (pinned in .ci/install-ci-engines.sh) runs examples/.gitlab-ci.yml and a pipeline that
includes templates/deploy.yml as a CI/CD component, with its shell executor, in a throwaway Git
repository: on the success path a later job reads the digest from the dotenv report, on the failure
path the `on_failure` job gets the exit code and the digest. The jobs run flux-ci from this checkout.

Without the e2e marker: every GitLab CI file of the repository against GitLab's CI schema.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from flux_ci import __version__
from flux_ci.config.names import variable_name
from flux_ci.config.settings import Settings
from flux_ci.report.dotenv import to_dotenv
from tests.e2e.project import ROOT, Project
from tests.sandbox import SandboxClient, unique_name
from tests.sandbox.versions import tools_dir

ENGINES_SCRIPT = ROOT / ".ci" / "install-ci-engines.sh"
COMPONENT = ROOT / "templates" / "deploy.yml"
EXAMPLE = ROOT / "examples" / ".gitlab-ci.yml"
PROMOTION = ROOT / "examples" / "promotion.gitlab-ci.yml"
RELEASE = ROOT / ".gitlab-ci.yml"
BAD_OBJECT = "apiVersion: example.invalid/v1\nkind: NoSuchKind\nmetadata:\n  name: broken\n"
KUSTOMIZATIONS_API = "kustomize.toolkit.fluxcd.io/v1"
_INPUT = re.compile(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]")


# --- tools: found where .ci/install-ci-engines.sh puts them -------------------------------------


def engine_pin(name: str) -> str:
    """A version pinned in .ci/install-ci-engines.sh (its NAME=value lines)."""
    found = re.search(rf"^{name}=(\S+)$", ENGINES_SCRIPT.read_text(encoding="utf-8"), re.MULTILINE)
    assert found, f"{name} is not pinned in {ENGINES_SCRIPT}"
    return found.group(1)


def require(present: bool, what: str) -> None:
    """Skip when a tool is missing on a developer's machine; in CI (CI=true) that is a failure."""
    if present:
        return
    message = f"{what} is missing: run .ci/install-ci-engines.sh (dev tools: pip install -e '.[dev]')"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def gitlab_ci_local() -> Path:
    path = tools_dir() / "gitlab-ci-local" / engine_pin("GITLAB_CI_LOCAL_VERSION") / "gitlab-ci-local"
    require(path.exists() and shutil.which("rsync") is not None, f"gitlab-ci-local ({path}) or rsync")
    return path


def yaml_documents(text: str) -> list[Any]:
    return list(YAML(typ="safe").load_all(text))


# --- GitLab's CI schema (check-jsonschema's vendored copy) ---------------------------------------


def schema_errors(tmp_path: Path, schema: str = "vendor.gitlab-ci", **documents: Any) -> str:
    """check-jsonschema's verdict on each document (as YAML-compatible JSON) against one of its
    built-in schemas; "" when all are valid."""
    require(find_spec("check_jsonschema") is not None, "check-jsonschema")
    files = []
    for name, document in documents.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(document))
        files.append(str(path))
    argv = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *files]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    return "" if done.returncode == 0 else done.stdout + done.stderr


def component_spec() -> dict[str, Any]:
    header, _ = yaml_documents(COMPONENT.read_text(encoding="utf-8"))
    spec: dict[str, Any] = header["spec"]
    return spec


def interpolate(text: str, inputs: Mapping[str, Any]) -> str:
    """GitLab's `$[[ inputs.x ]]` interpolation of the job document (values as YAML scalars), and
    `$[[ component.version ]]` as the version this checkout would be released as."""
    text = text.replace("$[[ component.version ]]", __version__)
    return _INPUT.sub(lambda found: json.dumps(inputs[found.group(1)]).strip('"'), text)


def component_job(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The component's job document, interpolated with its defaults and `inputs`."""
    defaults = {name: spec.get("default") for name, spec in component_spec()["inputs"].items()}
    _, body = COMPONENT.read_text(encoding="utf-8").split("\n---\n")
    job: dict[str, Any] = YAML(typ="safe").load(interpolate(body, {**defaults, **inputs}))
    return job


def test_component_header_is_valid_gitlab_ci(tmp_path: Path) -> None:
    header, _ = yaml_documents(COMPONENT.read_text(encoding="utf-8"))
    assert schema_errors(tmp_path, header=header) == ""


def test_component_job_is_valid_gitlab_ci_with_its_defaults(tmp_path: Path) -> None:
    job = component_job({"kube_context": "my-group/gitops-agents:production"})
    assert schema_errors(tmp_path, job=job) == ""
    deploy = job["deploy"]
    assert deploy["resource_group"] == "flux-ci/production"
    assert deploy["environment"]["kubernetes"] == {
        "agent": "my-group/gitops-agents:production",
        "flux_resource_path": f"{KUSTOMIZATIONS_API}/namespaces/flux-system/kustomizations/flux-system",
    }
    assert deploy["artifacts"] == {"when": "always", "reports": {"dotenv": "flux-ci.env"}}
    assert deploy["retry"]["max"] == 1
    assert 9 not in deploy["retry"]["exit_codes"]  # a retry would push the superseded artifact again


def test_component_inputs_are_described_used_and_map_to_flux_ci_variables() -> None:
    inputs = component_spec()["inputs"]
    body = COMPONENT.read_text(encoding="utf-8").split("\n---\n")[1]
    assert set(_INPUT.findall(body)) == set(inputs)
    for name, spec in inputs.items():
        assert spec.get("description"), f"input {name} has no description"
    assert "default" not in inputs["kube_context"]  # the one input a project must give
    variables = component_job({"kube_context": "a/b:c"})["deploy"]["variables"]
    known = {variable_name(field) for field in Settings.model_fields}
    assert set(variables) <= known
    # The dotenv report re-exports these, and a dotenv variable wins over a job's `variables:`:
    # an input feeding one of them could be silently replaced by an earlier job's report.
    report_keys = {line.split("=", 1)[0] for line in to_dotenv(_sample_report()).splitlines()}
    assert not set(variables) & report_keys


def test_example_pipeline_is_valid_gitlab_ci(tmp_path: Path) -> None:
    (pipeline,) = yaml_documents(EXAMPLE.read_text(encoding="utf-8"))
    assert schema_errors(tmp_path, example=pipeline) == ""
    # doctor checks what deploy will use: both take the manifests path from the same template.
    assert "FLUX_CI_PATH" in pipeline[".flux-ci"]["variables"]
    assert pipeline["doctor"]["extends"] == pipeline["deploy"]["extends"] == ".flux-ci"


def test_promotion_pipeline_is_valid_gitlab_ci(tmp_path: Path) -> None:
    (pipeline,) = yaml_documents(PROMOTION.read_text(encoding="utf-8"))
    assert schema_errors(tmp_path, promotion=pipeline) == ""
    promote = pipeline["promote-production"]
    assert promote["when"] == "manual"
    assert "deploy-staging" in promote["needs"]  # the digest comes from its dotenv report
    assert (
        promote["variables"]["FLUX_CI_EXTRA_TAGS"]
        != pipeline["deploy-staging"]["variables"]["FLUX_CI_EXTRA_TAGS"]
    )


def test_release_pipeline_is_valid_gitlab_ci(tmp_path: Path) -> None:
    (pipeline,) = yaml_documents(RELEASE.read_text(encoding="utf-8"))
    assert schema_errors(tmp_path, release=pipeline) == ""
    release_jobs = [job for job in pipeline.values() if isinstance(job, dict) and "release" in job]
    assert release_jobs, "no job publishes a release (the CI/CD catalog version)"


def test_release_pipeline_rules_in_a_real_engine(tmp_path: Path) -> None:
    """On the default branch the image is built and pushed, no release; a version tag releases.
    (Building the image itself is the image test's, tests/e2e/test_image.py.)"""
    engine = gitlab_ci_local()
    root = tmp_path / "flux-ci"
    root.mkdir()
    shutil.copy(RELEASE, root / ".gitlab-ci.yml")
    identity = ("-c", "user.name=flux-ci e2e", "-c", "user.email=e2e@example.invalid")
    for args in (("init", "--quiet", "--initial-branch=main"), ("add", "--all"), ("commit", "-qm", "x")):
        subprocess.run(["git", "-C", str(root), *identity, *args], check=True, capture_output=True)

    def planned(*variables: str) -> dict[str, str]:
        argv = [str(engine), "--list-json", "--no-color", "--home", str(tmp_path), *variables]
        done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=120, check=True)
        return {job["name"]: job["when"] for job in json.loads(done.stdout)}

    building = {
        "lint": "on_success",
        "test": "on_success",
        "package": "on_success",
        "build-image: [amd64]": "on_success",
        "build-image: [arm64]": "on_success",
        "image-index": "on_success",
        "sbom": "on_success",
        "sign-image": "on_success",
    }
    assert planned() == building | {"publish-pypi": "never", "release": "never"}
    assert planned("--variable", "CI_COMMIT_TAG=1.2.3") == building | {
        "publish-pypi": "on_success",
        "release": "on_success",
    }


def test_release_pipeline_signs_and_publishes_with_oidc_identities_only() -> None:
    """Keyless signing and trusted publishing: each job gets an ID token for its audience, and no
    job names a stored key, password or token for them."""
    (pipeline,) = yaml_documents(RELEASE.read_text(encoding="utf-8"))
    assert pipeline["sign-image"]["id_tokens"] == {"SIGSTORE_ID_TOKEN": {"aud": "sigstore"}}
    assert pipeline["sign-image"]["variables"]["COSIGN_FLAGS"] == ""  # keyless on GitLab
    assert pipeline["publish-pypi"]["id_tokens"] == {"PYPI_ID_TOKEN": {"aud": "pypi"}}
    assert pipeline["publish-pypi"]["rules"] == [{"if": "$CI_COMMIT_TAG"}]
    text = RELEASE.read_text(encoding="utf-8")
    for stored in (
        "TWINE_PASSWORD",
        "PYPI_TOKEN",
        "PYPI_API_TOKEN",
        "COSIGN_PRIVATE_KEY:",
        "COSIGN_PASSWORD",
    ):
        assert stored not in text
    assert "twine upload --non-interactive dist/*" in " ".join(pipeline["publish-pypi"]["script"])
    assert pipeline["build-image"]["parallel"]["matrix"] == [{"ARCH": ["amd64", "arm64"]}]
    links = pipeline["release"]["release"]["assets"]["links"]
    assert [link["url"].rsplit("/", 1)[1] for link in links] == [
        "sbom-linux-amd64.cdx.json",
        "sbom-linux-arm64.cdx.json",
    ]


def _sample_report() -> Any:
    from flux_ci.report.models import Artifact, ObjectRef, Report, SourceState  # noqa: PLC0415

    return Report(
        command="deploy",
        artifact=Artifact("oci://r/a", ("t",), "sha256:" + "0" * 64, "s", "main@sha1:abc"),
        sources=[SourceState(ObjectRef("OCIRepository", "n", "a"), "u", "t@sha256:x", "True", "m")],
    )


# --- running pipelines with gitlab-ci-local ------------------------------------------------------


@dataclass(frozen=True)
class PipelineRun:
    exit_code: int
    output: str
    workdir: Path
    seconds: float

    def results(self) -> dict[str, str]:
        """Each job that ran and how it ended: PASS, FAIL or WARN (allowed to fail)."""
        summary = re.findall(r"^ (PASS|FAIL|WARN) {2}(\S+)\s*$", self.output, re.MULTILINE)
        return {job: result for result, job in summary}

    def log(self, job: str) -> str:
        return (self.workdir / ".gitlab-ci-local" / "output" / f"{job}.log").read_text(encoding="utf-8")

    def everything(self) -> str:
        logs = sorted((self.workdir / ".gitlab-ci-local" / "output").glob("*.log"))
        return self.output + "".join(log.read_text(encoding="utf-8") for log in logs)

    def expanded(self) -> dict[str, Any]:
        """The pipeline as the engine resolved it (includes, inputs, extends)."""
        path = self.workdir / ".gitlab-ci-local" / "expanded-gitlab-ci.yml"
        expanded: dict[str, Any] = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
        return expanded


@dataclass(frozen=True)
class GitLabProject:
    """A throwaway Git repository that gitlab-ci-local runs as the GitLab project acme/app."""

    root: Path
    sandbox: SandboxClient

    @classmethod
    def create(cls, tmp_path: Path, sandbox: SandboxClient, files: Mapping[str, str]) -> GitLabProject:
        root = tmp_path / "project"
        root.mkdir()
        ignored = ".gitlab-ci-local/\n.gitlab-ci-local-variables.yml\n"  # the engine's state, the secrets
        for name, text in {**files, ".gitignore": ignored}.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text, encoding="utf-8")
        project = cls(root, sandbox)
        project.git("init", "--quiet", "--initial-branch=main")
        project.git("remote", "add", "origin", "https://gitlab.example.com/acme/app.git")
        project.git("add", "--all")
        project.git("commit", "--quiet", "--message=manifests")
        return project

    def git(self, *args: str) -> str:
        identity = ("-c", "user.name=flux-ci e2e", "-c", "user.email=e2e@example.invalid")
        done = subprocess.run(
            ["git", "-C", str(self.root), *identity, *args], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    def short_sha(self) -> str:
        return self.git("rev-parse", "--short=8", "HEAD")  # CI_COMMIT_SHORT_SHA, the pushed tag

    def run(
        self, variables: Mapping[str, str], timeout: float = 400, manual: Sequence[str] = ()
    ) -> PipelineRun:
        """The whole pipeline (and the `manual` jobs, as if started by hand). CI/CD variables go in
        the project variables file (mode 0600, never in argv); the jobs find `flux-ci` (this
        checkout) and the pinned tools on PATH."""
        engine = gitlab_ci_local()
        state = self.root.parent / "engine"
        bin_dir = state / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)  # a project may be run more than once
        wrapper = bin_dir / "flux-ci"
        python, root = shlex.quote(sys.executable), shlex.quote(str(ROOT))
        wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={root} exec {python} -m flux_ci "$@"\n')
        wrapper.chmod(0o755)
        variables_file = self.root / ".gitlab-ci-local-variables.yml"
        variables_file.touch(mode=0o600)
        variables_file.write_text(
            "".join(f"{key}: {json.dumps(value)}\n" for key, value in variables.items())
        )
        env = {
            "PATH": f"{bin_dir}{os.pathsep}{self.sandbox.env['PATH']}",
            "HOME": str(state),
            "LANG": "C.UTF-8",
        }
        argv = [
            str(engine),
            "--force-shell-executor",
            "--shell-isolation",
            "--no-color",
            "--home",
            str(state),
        ]
        # Setting GitLab's predefined registry variables (and the pipeline source, for a merge request
        # pipeline) is the point here, not a mistake to warn about.
        predefined = "CI_REGISTRY_IMAGE,CI_REGISTRY_USER,CI_REGISTRY_PASSWORD,CI_PIPELINE_SOURCE"
        argv += ["--ignore-predefined-vars", predefined]
        for job in manual:
            argv += ["--manual", job]
        started = time.monotonic()
        done = subprocess.run(
            argv, cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        output = done.stdout + done.stderr
        return PipelineRun(done.returncode, output, self.root, time.monotonic() - started)


def _configmap(greeting: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\ndata:\n  greeting: {greeting}\n"


def _no_secret(sandbox: SandboxClient, run: PipelineRun) -> None:
    assert sandbox.registry_password
    assert sandbox.registry_password not in run.everything()


# The example pipeline, as a project would copy it; only the cluster and registry are the sandbox's.
def _example_project(tmp_path: Path, sandbox: SandboxClient, *, bad: bool) -> GitLabProject:
    files = {
        ".gitlab-ci.yml": EXAMPLE.read_text(encoding="utf-8"),
        "deploy/production/configmap.yaml": _configmap("hello"),
    }
    if bad:
        files["deploy/production/broken.yaml"] = BAD_OBJECT
    return GitLabProject.create(tmp_path, sandbox, files)


def _example_variables(sandbox: SandboxClient, namespace: str, repository: str) -> dict[str, str]:
    """Project CI/CD variables: they rank above the pipeline's own, as in GitLab."""
    return {
        "FLUX_CI_REGISTRY_USER": sandbox.registry_user,
        "FLUX_CI_REGISTRY_PASSWORD": sandbox.registry_password,
        "FLUX_CI_REPOSITORY": sandbox.oci_url(repository),
        "FLUX_CI_INSECURE_REGISTRY": "true",
        "FLUX_CI_NAMESPACE": namespace,
        "FLUX_CI_KUBE_CONTEXT": "flux-ci-sandbox",
        "FLUX_CI_TIMEOUT": "120s",
        "KUBECONFIG": str(sandbox.kubeconfig),
    }


@pytest.mark.e2e
def test_example_pipeline_deploys_and_the_next_job_reads_the_digest(
    sandbox: SandboxClient, namespace: str, repository: str, tmp_path: Path
) -> None:
    sandbox.deploy_oci(namespace, "app", repository, tag="latest", target_namespace=namespace)
    gitlab = _example_project(tmp_path, sandbox, bad=False)
    run = gitlab.run(_example_variables(sandbox, namespace, repository))
    assert run.results() == {"doctor": "PASS", "deploy": "PASS", "smoke-test": "PASS"}, run.output
    project = Project(sandbox, namespace, repository, gitlab.root / "deploy/production")
    digest = project.resolve(gitlab.short_sha())
    assert project.resolve("latest") == digest
    assert project.kustomization()["status"]["lastAppliedRevision"] == f"latest@{digest}"
    assert project.configmap_greeting() == "hello"
    smoke = run.log("smoke-test")
    assert f"digest {digest}" in smoke  # read from the deploy job's dotenv report
    assert f"Flux applied {sandbox.oci_url(repository)}@{digest}" in smoke
    _no_secret(sandbox, run)


@pytest.mark.e2e
def test_example_pipeline_failure_reaches_the_on_failure_job(
    sandbox: SandboxClient, namespace: str, repository: str, tmp_path: Path
) -> None:
    sandbox.deploy_oci(namespace, "app", repository, tag="latest", target_namespace=namespace)
    gitlab = _example_project(tmp_path, sandbox, bad=True)
    run = gitlab.run(_example_variables(sandbox, namespace, repository))
    assert run.results() == {"doctor": "PASS", "deploy": "FAIL", "report-failure": "PASS"}, run.output
    digest = Project(sandbox, namespace, repository, gitlab.root).resolve(gitlab.short_sha())
    assert "NoSuchKind" in run.log("deploy")
    report = run.log("report-failure")
    assert f"deploy of {digest} ended with exit code 7" in report
    assert "retryable false" in report  # a failed apply: retrying the same artifact cannot help
    _no_secret(sandbox, run)


# A project that includes the component from its own repository, as GitLab documents for testing
# a component (`$CI_SERVER_FQDN/$CI_PROJECT_PATH/<name>@$CI_COMMIT_SHA`).
_COMPONENT_PIPELINE = """\
stages: [deploy, verify]

include:
  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/deploy@$CI_COMMIT_SHA
    inputs:
      kube_context: {context}
      namespace: {namespace}
      environment: sandbox
      environment_tier: testing
      flux_resource_path: kustomize.toolkit.fluxcd.io/v1/namespaces/{namespace}/kustomizations/app
      timeout: 120s
      retry_max: 0

after-deploy:
  stage: verify
  needs: [deploy]
  variables:
    FLUX_CI_TAG: set-by-this-job # the deploy job's dotenv report wins over this
  script:
    - echo "deployed $FLUX_CI_DIGEST as $FLUX_CI_TAG, status $FLUX_CI_STATUS"

on-deploy-failure:
  stage: verify
  needs: [deploy]
  when: on_failure
  script:
    - echo "deploy of $FLUX_CI_DIGEST failed with exit code $FLUX_CI_EXIT_CODE"
"""


def _component_project(
    tmp_path: Path, sandbox: SandboxClient, namespace: str, context: str, *, bad: bool
) -> GitLabProject:
    files = {
        ".gitlab-ci.yml": _COMPONENT_PIPELINE.format(context=context, namespace=namespace),
        "templates/deploy.yml": COMPONENT.read_text(encoding="utf-8"),
        "manifests/configmap.yaml": _configmap("from-the-component"),
    }
    if bad:
        files["manifests/broken.yaml"] = BAD_OBJECT
    return GitLabProject.create(tmp_path, sandbox, files)


def _predefined_variables(sandbox: SandboxClient, image: str) -> dict[str, str]:
    """Only what GitLab predefines: the project's registry image and the job's registry login."""
    return {
        "CI_REGISTRY_IMAGE": image,
        "CI_REGISTRY_USER": sandbox.registry_user,
        "CI_REGISTRY_PASSWORD": sandbox.registry_password,
        "FLUX_CI_INSECURE_REGISTRY": "true",  # the sandbox registry speaks plain HTTP
        "KUBECONFIG": str(sandbox.kubeconfig),
    }


@pytest.mark.e2e
def test_component_deploys_through_the_role_and_its_dotenv_wins_over_job_variables(
    sandbox: SandboxClient, namespace: str, repository: str, tmp_path: Path
) -> None:
    # The repository follows from CI_REGISTRY_IMAGE: oci://$CI_REGISTRY_IMAGE/manifests.
    sandbox.deploy_oci(namespace, "app", f"{repository}/manifests", tag="latest", target_namespace=namespace)
    user = unique_name("gitlab:ci_job")
    context = sandbox.namespaced_context(namespace, user=user)  # examples/rbac/flux-ci.yaml, impersonated
    sandbox.grant_cluster_read(user)  # examples/rbac/flux-ci-cluster-read.yaml: no consumer is invisible
    gitlab = _component_project(tmp_path, sandbox, namespace, context, bad=False)
    run = gitlab.run(_predefined_variables(sandbox, f"{sandbox.registry}/{repository}"))
    assert run.results() == {"deploy": "PASS", "after-deploy": "PASS"}, run.output
    project = Project(sandbox, namespace, f"{repository}/manifests", gitlab.root / "manifests")
    tag = gitlab.short_sha()
    digest = project.resolve(tag)
    assert project.kustomization()["status"]["lastAppliedRevision"] == f"latest@{digest}"
    assert project.configmap_greeting() == "from-the-component"
    assert f"deployed {digest} as {tag}, status succeeded" in run.log("after-deploy")
    job = run.expanded()["deploy"]
    assert job["resource_group"] == "flux-ci/sandbox"
    assert job["environment"]["name"] == "sandbox"
    assert job["environment"]["deployment_tier"] == "testing"
    assert job["environment"]["kubernetes"]["agent"] == context
    assert job["retry"]["max"] == 0
    _no_secret(sandbox, run)


@pytest.mark.e2e
def test_component_failure_reaches_the_on_failure_job(
    sandbox: SandboxClient, namespace: str, repository: str, tmp_path: Path
) -> None:
    sandbox.deploy_oci(namespace, "app", f"{repository}/manifests", tag="latest", target_namespace=namespace)
    user = unique_name("gitlab:ci_job")
    context = sandbox.namespaced_context(namespace, user=user)
    sandbox.grant_cluster_read(user)
    gitlab = _component_project(tmp_path, sandbox, namespace, context, bad=True)
    run = gitlab.run(_predefined_variables(sandbox, f"{sandbox.registry}/{repository}"))
    assert run.results() == {"deploy": "FAIL", "on-deploy-failure": "PASS"}, run.output
    project = Project(sandbox, namespace, f"{repository}/manifests", gitlab.root / "manifests")
    digest = project.resolve(gitlab.short_sha())
    assert f"deploy of {digest} failed with exit code 7" in run.log("on-deploy-failure")
    _no_secret(sandbox, run)


def _agent_kubeconfig(tmp_path: Path, contexts: Mapping[str, SandboxClient]) -> Path:
    """The sandbox kubeconfig plus contexts named as GitLab agents name theirs, one per cluster."""
    path = tmp_path / "agents-kubeconfig"
    config = json.loads(next(iter(contexts.values())).kubeconfig.read_text(encoding="utf-8"))
    entries = {entry["name"]: entry["context"] for entry in config["contexts"]}
    for name, client in contexts.items():
        config["contexts"].append({"name": name, "context": entries[client.context]})
    path.write_text(json.dumps(config), encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.mark.e2e
def test_promotion_pipeline_deploys_staging_then_promotes_the_tested_digest_to_production(
    sandbox: SandboxClient, second_cluster: SandboxClient, namespace: str, repository: str, tmp_path: Path
) -> None:
    """Staging is cluster 1 (following `latest`), production cluster 2 (following `stable`); the
    manual job is started by hand, as a person would in GitLab."""
    sandbox.deploy_oci(namespace, "app", repository, tag="latest", target_namespace=namespace)
    second_cluster.create_namespace(namespace)
    second_cluster.deploy_oci(namespace, "app", repository, tag="stable", target_namespace=namespace)
    agents = {
        "my-group/gitops-agents:staging": sandbox,
        "my-group/gitops-agents:production": second_cluster,
    }
    gitlab = GitLabProject.create(
        tmp_path,
        sandbox,
        {
            ".gitlab-ci.yml": PROMOTION.read_text(encoding="utf-8"),
            "deploy/configmap.yaml": _configmap("hello"),
        },
    )
    variables = _example_variables(sandbox, namespace, repository)
    del variables["FLUX_CI_KUBE_CONTEXT"]  # each job names its agent's context
    variables["KUBECONFIG"] = str(_agent_kubeconfig(tmp_path, agents))

    run = gitlab.run(variables, manual=["promote-production"])

    assert run.results() == {
        "deploy-staging": "PASS",
        "verify-staging": "PASS",
        "promote-production": "PASS",
    }, run.output
    staging = Project(sandbox, namespace, repository, gitlab.root / "deploy")
    digest = staging.resolve(gitlab.short_sha())
    assert staging.resolve("latest") == digest
    assert staging.resolve("stable") == digest
    production = second_cluster.get_json("kustomizations.kustomize.toolkit.fluxcd.io", "app", namespace)
    assert production["status"]["lastAppliedRevision"] == f"stable@{digest}"
    assert f"staging runs {digest}" in run.log("verify-staging")
    assert "▶ push" not in run.log("promote-production")  # promoted, never packaged again
    second_cluster.delete_namespace(namespace)
    _no_secret(sandbox, run)
