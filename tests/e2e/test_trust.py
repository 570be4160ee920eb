"""Exit 0 means exactly this artifact applied and Ready, and every failure is named, fast: end to end
against the real registry, API server and Flux controllers, with real faults injected (controllers
paused, the API server and the registry stopped and restarted, RBAC-limited identities, concurrent
pipelines, re-runs after a fix).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.project import KUSTOMIZATIONS, OCIREPOSITORIES, READ_ONLY_USER, Project, Run, read_only_role
from tests.sandbox import SandboxClient

pytestmark = pytest.mark.e2e

SLACK_S = 15  # a slow CI machine: bounds say "fast", never "within a millisecond budget"


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"].get("conditions", []) if c["type"] == kind)


# --- 1. exactly this digest ----------------------------------------------------------------------


def test_same_commit_pushed_twice_with_other_content_waits_for_the_new_digest(
    project: Project, sandbox: SandboxClient
) -> None:
    first = project.flux_ci("deploy")
    assert first.exit_code == 0, first.stderr
    project.write("templated-differently")  # same FLUX_CI_REVISION, same tag: a retried pipeline
    with sandbox.paused("kustomize-controller"):  # the Kustomization keeps the previous digest
        second = project.flux_ci("deploy", env=project.env(FLUX_CI_TIMEOUT="8s"))
        applied = project.kustomization()["status"]["lastAppliedRevision"]  # read before it resumes
    assert second.exit_code == 8, second.stderr  # v1 said 0 here: the origin revision matched
    new = second.json()["artifact"]["digest"]
    assert new != first.json()["artifact"]["digest"]
    assert not applied.endswith(new)
    retried = project.flux_ci("deploy")
    assert retried.exit_code == 0, retried.stderr
    assert project.kustomization()["status"]["lastAppliedRevision"] == f"latest@{new}"
    assert project.configmap_greeting() == "templated-differently"


# --- 2. never rests on nothing -------------------------------------------------------------------


def test_no_consumer_is_exit_2_naming_what_was_searched(
    sandbox: SandboxClient, namespace: str, repository: str, tmp_path: Path
) -> None:
    project = _bare_project(sandbox, namespace, repository, tmp_path)
    sandbox.apply(json.dumps(sandbox.oci_source(namespace, "app", repository, tag="latest", interval="10m")))
    run = project.flux_ci("deploy")
    assert run.exit_code == 2, run.stderr
    message = run.json()["error"]["message"]
    assert f"no Kustomization or HelmRelease reads OCIRepository/{namespace}/app" in message
    assert "Kustomization: all namespaces" in message
    assert project.absent("c1")
    opted_out = project.flux_ci("deploy", env=project.env(FLUX_CI_WAIT_FOR="none"))
    assert opted_out.exit_code == 0, opted_out.stderr
    assert opted_out.json()["consumers"] == []


# --- 3. permissions, through exactly the README's Role -------------------------------------------


def test_deploy_through_exactly_the_namespaced_role(project: Project, sandbox: SandboxClient) -> None:
    context = sandbox.namespaced_context(project.namespace)
    # A namespaced identity cannot see consumers in other namespaces: it names the ones to wait for.
    named = f"Kustomization/{project.namespace}/app"
    run = project.flux_ci("deploy", env=project.env(FLUX_CI_KUBE_CONTEXT=context, FLUX_CI_WAIT_FOR=named))
    assert run.exit_code == 0, run.stderr
    report = run.json()
    assert report["consumers"][0]["state"] == "done"
    assert any(
        line.startswith(f"OCIRepository: only namespace {project.namespace}") for line in report["scope"]
    )


def test_a_consumer_in_a_namespace_the_identity_cannot_see_is_exit_5_not_success(
    project: Project, sandbox: SandboxClient
) -> None:
    # The Kustomization reads the source from another namespace the CI identity may not list.
    other = f"{project.namespace}-apps"
    sandbox.create_namespace(other)
    try:
        project.sandbox.kubectl("delete", KUSTOMIZATIONS, "app", "-n", project.namespace)
        kustomization = {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "app", "namespace": other},
            "spec": {
                "interval": "10m",
                "sourceRef": {"kind": "OCIRepository", "name": "app", "namespace": project.namespace},
                "path": "./",
                "prune": True,
                "targetNamespace": other,
            },
        }
        sandbox.apply(json.dumps(kustomization))
        context = sandbox.namespaced_context(project.namespace)
        run = project.flux_ci("deploy", env=project.env(FLUX_CI_KUBE_CONTEXT=context))
        assert run.exit_code == 5, run.stderr
        message = run.json()["error"]["message"]
        assert "cannot see every Kustomization/HelmRelease" in message
        assert "list/watch kustomizations.kustomize.toolkit.fluxcd.io cluster-wide" in message
        assert project.absent("c1")
    finally:
        sandbox.delete_namespace(other)


def test_a_missing_patch_right_fails_before_anything_is_pushed(
    project: Project, sandbox: SandboxClient
) -> None:
    read_only = read_only_role()
    context = sandbox.namespaced_context(project.namespace, user=READ_ONLY_USER, role_yaml=read_only)
    run = project.flux_ci("deploy", env=project.env(FLUX_CI_KUBE_CONTEXT=context))
    assert run.exit_code == 5, run.stderr
    assert (
        f"may not patch {OCIREPOSITORIES} in namespace {project.namespace}" in run.json()["error"]["message"]
    )
    assert project.absent("c1")
    assert project.absent("latest")


# --- 4. sources classified before the push -------------------------------------------------------


def test_a_semver_source_on_the_same_repository_is_left_out(project: Project, sandbox: SandboxClient) -> None:
    releases = sandbox.oci_source(project.namespace, "releases", project.repository, tag="x", interval="10m")
    releases["spec"]["ref"] = {"semver": ">=1.0.0"}
    sandbox.apply(json.dumps(releases))
    run = project.flux_ci("deploy")
    assert run.exit_code == 0, run.stderr
    report = run.json()
    assert [s["name"] for s in report["sources"]] == ["app"]
    assert any("follows the semver range '>=1.0.0'" in note for note in report["notes"])


# --- 5. superseded -------------------------------------------------------------------------------


def test_a_newer_push_of_another_pipeline_is_superseded_within_seconds(
    project: Project, sandbox: SandboxClient, tmp_path: Path
) -> None:
    first = project.flux_ci("deploy")
    assert first.exit_code == 0, first.stderr
    other = tmp_path / "other-pipeline"
    other.mkdir()
    (other / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\ndata:\n  greeting: newer\n"
    )
    project.write("ours")
    with sandbox.paused("kustomize-controller"):  # our artifact is fetched but not yet applied
        ours = project.start("-v", "deploy", env=project.env(FLUX_CI_TAG="c2"))
        ours.wait_for_line("▶ wait")
        newer = project.flux_ci(
            "push",
            env=project.env(
                FLUX_CI_TAG="c3", FLUX_CI_PATH=str(other), FLUX_CI_REVISION="main@sha1:" + "3" * 40
            ),
        )
        assert newer.exit_code == 0, newer.stderr
        digest = newer.json()["artifact"]["digest"]
        poke = project.flux_ci("reconcile", env=project.env(FLUX_CI_DIGEST=digest))
        assert poke.exit_code == 0, poke.stderr  # source-controller now holds the newer digest
        fetched = time.monotonic()
        run = ours.finish()
        seen_after = time.monotonic() - fetched
    assert run.exit_code == 9, run.stderr
    report = run.json()
    assert report["status"] == "superseded"
    assert report["error"]["superseded_by"] == digest
    # "Within seconds": from the moment Flux held the newer digest, not the whole run.
    assert seen_after < SLACK_S, f"superseded seen {seen_after:.1f}s after Flux fetched the newer digest"


def test_two_pipelines_at_once_never_time_out(project: Project, tmp_path: Path) -> None:
    other = tmp_path / "b"
    other.mkdir()
    (other / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\ndata:\n  greeting: b\n"
    )
    runs: dict[str, Run] = {}

    def deploy(name: str, **env: str) -> None:
        runs[name] = project.flux_ci("deploy", env=project.env(FLUX_CI_TIMEOUT="60s", **env))

    threads = [
        threading.Thread(target=deploy, args=("a",), kwargs={"FLUX_CI_TAG": "a1"}),
        threading.Thread(
            target=deploy, args=("b",), kwargs={"FLUX_CI_TAG": "b1", "FLUX_CI_PATH": str(other)}
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(runs) == {"a", "b"}, "a pipeline's thread ended without a run"  # see also filterwarnings
    codes = {name: run.exit_code for name, run in runs.items()}
    assert set(codes.values()) <= {0, 9}, {name: run.stderr[-2000:] for name, run in runs.items()}
    # The last push wins and is applied, and its run says so. The other run may have exit 0 too: its
    # artifact was applied and Ready before the newer one replaced it (or 9 if it never was).
    winner = project.resolve("latest")
    assert project.kustomization()["status"]["lastAppliedRevision"] == f"latest@{winner}"
    assert [run.exit_code for run in runs.values() if run.json()["artifact"]["digest"] == winner] == [0]
    for run in runs.values():
        assert run.seconds < 60


# --- 6. early failures fail fast -----------------------------------------------------------------


def test_a_path_missing_from_the_artifact_fails_with_7_fast(project: Project) -> None:
    project.patch(KUSTOMIZATIONS, "app", {"spec": {"path": "./not-there"}})
    run = project.flux_ci("deploy")
    assert run.exit_code == 7, run.stderr
    assert "kustomization path not found" in run.json()["error"]["message"]
    assert run.seconds < SLACK_S


def test_a_refused_pull_secret_fails_with_6_fast(project: Project, sandbox: SandboxClient) -> None:
    secret = sandbox.pull_secret_manifest(project.namespace, "wrong-auth")
    secret["data"][".dockerconfigjson"] = _docker_config(sandbox.registry, "nobody", "not-the-password")
    sandbox.apply(json.dumps(secret))
    project.patch(OCIREPOSITORIES, "app", {"spec": {"secretRef": {"name": "wrong-auth"}}})
    run = project.flux_ci("deploy")
    assert run.exit_code == 6, run.stderr
    message = run.json()["error"]["message"]
    assert f"OCIRepository/{project.namespace}/app failed to fetch" in message
    assert "401" in message or "unauthorized" in message.lower()
    assert run.seconds < SLACK_S


def _docker_config(registry: str, user: str, password: str) -> str:
    import base64  # noqa: PLC0415

    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    config = {"auths": {registry: {"username": user, "password": password, "auth": auth}}}
    return base64.b64encode(json.dumps(config).encode()).decode()


# --- 7. an old failure never decides a new run ---------------------------------------------------


def test_a_rerun_after_the_cluster_was_fixed_succeeds(project: Project, sandbox: SandboxClient) -> None:
    missing = f"{project.namespace}-later"
    extra = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: elsewhere\n  namespace: {missing}\n"
    project.write("hello", extra_yaml=extra)
    project.patch(KUSTOMIZATIONS, "app", {"spec": {"targetNamespace": None}})
    (project.manifests / "configmap.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\n  namespace: {project.namespace}\n"
        "data:\n  greeting: hello\n"
    )
    failed = project.flux_ci("deploy")
    assert failed.exit_code == 7, failed.stderr
    sandbox.create_namespace(missing)  # the fix is in the cluster, not in the artifact
    try:
        rerun = project.flux_ci("-v", "deploy")
        assert rerun.exit_code == 0, rerun.stderr
        assert rerun.json()["artifact"]["digest"] == failed.json()["artifact"]["digest"]  # same content
        assert f"kubectl annotate {KUSTOMIZATIONS} app" in rerun.stderr  # asked again, not trusted as is
    finally:
        sandbox.delete_namespace(missing)


# --- 8. faults -----------------------------------------------------------------------------------


def test_a_paused_source_controller_is_named_at_the_deadline(
    project: Project, sandbox: SandboxClient
) -> None:
    with sandbox.paused("source-controller"):
        run = project.flux_ci("deploy", env=project.env(FLUX_CI_TIMEOUT="6s"))
    assert run.exit_code == 8, run.stderr
    message = run.json()["error"]["message"]
    assert "source-controller has not acknowledged the reconcile request" in message
    assert run.seconds < 6 + SLACK_S


def test_an_api_server_restart_mid_wait_is_survived(project: Project, sandbox: SandboxClient) -> None:
    # A dependency that does not exist holds the Kustomization back while the API server restarts;
    # removing it afterwards lets kustomize-controller apply at once.
    project.patch(KUSTOMIZATIONS, "app", {"spec": {"dependsOn": [{"name": "not-yet"}]}})
    running = project.start("-v", "deploy", env=project.env(FLUX_CI_TIMEOUT="90s"))
    running.wait_for_line("▶ wait")
    sandbox.stop("kube-apiserver")  # returns once its port refuses connections
    # The watch ends with the connection; the list that follows is refused, and flux-ci says so.
    lost = f"Kustomization in namespace {project.namespace}: watch lost ("
    line = running.wait_for_line(lost, timeout=60)
    sandbox.restart("kube-apiserver")
    project.patch(KUSTOMIZATIONS, "app", {"spec": {"dependsOn": None}})
    run = running.finish()
    assert run.exit_code == 0, run.stderr
    digest = run.json()["artifact"]["digest"]
    assert project.kustomization()["status"]["lastAppliedRevision"] == f"latest@{digest}"
    assert "was refused" in line  # kubectl's own words for the list during the outage
    # ... and carried on: the watch came back, list then watch.
    assert f"Kustomization in namespace {project.namespace}: watch resumed (list, then watch)" in run.stderr


def test_an_api_server_down_at_the_deadline_is_exit_5_with_the_last_error(
    project: Project, sandbox: SandboxClient
) -> None:
    run = project.deploy_losing_the_api_server(sandbox, project.env(FLUX_CI_TIMEOUT="15s"), waiting="▶ wait")
    assert run.exit_code == 5, run.stderr
    message = run.json()["error"]["message"]
    assert "still unreachable at the deadline" in message
    assert "was refused" in message  # kubectl's own words for the last attempt
    assert run.json()["error"]["retryable"] is True


def test_a_registry_that_stays_down_is_exit_4_retryable_after_retries(
    project: Project, sandbox: SandboxClient
) -> None:
    sandbox.stop("registry")
    try:
        run = project.flux_ci("-v", "push", env=project.env(FLUX_CI_TIMEOUT="8s"))
    finally:
        sandbox.restart("registry")
    assert run.exit_code == 4, run.stderr
    error = run.json()["error"]
    assert error["retryable"] is True
    assert "connection refused" in error["message"]
    assert "retry in" in run.stderr


def test_a_registry_back_within_the_deadline_is_retried_into_success(
    project: Project, sandbox: SandboxClient
) -> None:
    sandbox.stop("registry")
    try:
        running = project.start("-v", "deploy", env=project.env(FLUX_CI_TIMEOUT="90s"))
        failed = running.wait_for_line("retry in", timeout=60)  # a registry call failed, to be retried
    finally:
        sandbox.restart("registry")
    run = running.finish()
    assert run.exit_code == 0, run.stderr
    assert "connection refused" in failed
    assert run.json()["artifact"]["digest"] == project.resolve("c1")  # the retried push did land


def test_a_wrong_password_is_never_retried(project: Project) -> None:
    run = project.flux_ci("-v", "push", env=project.env(FLUX_CI_REGISTRY_PASSWORD="not-the-password"))
    assert run.exit_code == 4, run.stderr
    assert run.json()["error"]["retryable"] is False
    assert "retry in" not in run.stderr
    assert run.seconds < SLACK_S


def _bare_project(sandbox: SandboxClient, namespace: str, repository: str, tmp_path: Path) -> Project:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    project = Project(sandbox, namespace, repository, manifests)
    project.write("hello")
    return project
