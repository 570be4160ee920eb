"""The trust rules, each against the real registry, API server and Flux controllers, in the setups
real teams have: manifests reached through symlinks, a spec changed while the controller reconciles,
a Stalled condition left from a spec fixed since, another actor's reconcile request, identities
without `patch` or without cluster-wide read, a consumer named by mistake, a registry failing while
source-controller fetches. Each test fails on the behaviour it guards against (say so where it is not
plain from the assertions).
"""

from __future__ import annotations

import copy
import json
import subprocess
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flux_ci.config.manifests import scan
from tests.e2e.project import (
    KUSTOMIZATIONS,
    READ_ONLY_USER,
    Project,
    Recorder,
    read_only_role,
)
from tests.sandbox import SandboxClient
from tests.sandbox.versions import tool_path

pytestmark = pytest.mark.e2e

GREETING = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\ndata:\n  greeting: {}\n"


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), None)


@pytest.fixture
def recorded(project: Project, sandbox: SandboxClient) -> Iterator[Recorder]:
    recorder = Recorder(sandbox, KUSTOMIZATIONS, project.namespace)
    yield recorder
    recorder.stop()


# --- what is pushed is what was checked ----------------------------------------------------------


def test_manifests_reached_through_symlinks_are_deployed_not_an_empty_artifact(
    project: Project, tmp_path: Path
) -> None:
    # A monorepo: the app's directory links to a shared base elsewhere in the checkout. flux push
    # artifact alone skips links: the artifact would be empty, and prune would delete the app.
    assert project.flux_ci("deploy").exit_code == 0
    base = tmp_path / "shared-base"
    base.mkdir()
    (base / "configmap.yaml").write_text(GREETING.format("from-the-shared-base"))
    (project.manifests / "configmap.yaml").unlink()
    (project.manifests / "configmap.yaml").symlink_to(base / "configmap.yaml")
    run = project.flux_ci("deploy", env=project.env(FLUX_CI_TAG="c2", CI_PROJECT_DIR=str(tmp_path)))
    assert run.exit_code == 0, run.stderr
    assert (run.json()["artifact"]["files"], run.json()["artifact"]["objects"]) == (1, 1)
    assert project.configmap_greeting() == "from-the-shared-base"  # applied, not pruned away
    assert "symlinks resolved: configmap.yaml" in run.stderr


def test_a_symlink_out_of_the_checkout_is_exit_2_and_nothing_is_pushed(
    project: Project, tmp_path: Path
) -> None:
    runner_home = tmp_path.parent / f"{tmp_path.name}-runner-home"
    runner_home.mkdir()
    (runner_home / "config.json").write_text('{"auths": {"registry.example": {"auth": "c2VjcmV0"}}}')
    (project.manifests / "registry.json").symlink_to(runner_home / "config.json")
    run = project.flux_ci("deploy", env=project.env(CI_PROJECT_DIR=str(tmp_path)))
    assert run.exit_code == 2, run.stderr
    assert "symlink registry.json leads out of the checkout" in run.json()["error"]["message"]
    assert project.absent("c1")


def test_the_files_checked_are_the_files_flux_packs(sandbox: SandboxClient, tmp_path: Path) -> None:
    # The real `flux build artifact --resolve-symlinks` on a tree with every kind of pattern: the
    # artifact's members are exactly the entries flux-ci checked.
    tree = tmp_path / "tree"
    files = {
        "app/deploy.yaml": "kind: A\n", "app/notes.md": "x", "app/img/logo.png": "x",
        "app/img/keep.png": "x", "docs/guide.md": "x", "docs/api/ref.md": "x", "docs/keep.yaml": "kind: B\n",
        "top.yaml": "kind: C\n", "sub/top.yaml": "kind: D\n", "build/out.json": "{}", ".git/config": "x",
        "a b/space.yaml": "kind: E\n", "deep/x/y/z.tmp": "x",
    }  # fmt: skip
    for name, text in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "base.yaml").write_text("kind: F\n")
    (tree / "linked.yaml").symlink_to(shared / "base.yaml")
    (tree / "linked-dir").symlink_to(tree / "app")
    ignore = ["*.png", "!keep.png", "docs/", "!docs/keep.yaml", "/top.yaml", "**/*.tmp", "build", ".git/"]
    archive = tmp_path / "artifact.tgz"
    flux = str(tool_path("flux"))
    argv = [flux, "build", "artifact", f"--path={tree}", f"--output={archive}", "--resolve-symlinks",
            f"--ignore-paths={','.join(ignore)}"]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    with tarfile.open(archive) as packed:
        flux_packed = {(m.name, m.isdir()) for m in packed.getmembers() if m.name not in (".", "")}
    checked = {
        (e.relative, e.is_dir) for e in scan(tree, ignore, env={"CI_PROJECT_DIR": str(tmp_path)}).entries
    }
    assert checked == flux_packed
    expected = {("docs/keep.yaml", False), ("app/img/keep.png", False), ("linked.yaml", False)}
    assert expected | {("linked-dir/deploy.yaml", False)} <= checked  # the patterns bit where meant


# --- done means reconciled -------------------------------------------------------------------------


def test_ready_for_a_generation_never_reconciled_is_not_success(
    project: Project, sandbox: SandboxClient, recorded: Recorder
) -> None:
    # The Kustomization waits on a health check (a gate the test opens) while its spec changes: the
    # status patcher then stamps Ready=True with the new generation, which was never reconciled and
    # fails a moment later. Trusting the condition's generation would exit 0 here.
    ns = project.namespace
    sandbox.apply(json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gate",
                             "namespace": ns}, "data": {"open": "no"}}))  # fmt: skip
    gate = {"apiVersion": "v1", "kind": "ConfigMap", "name": "gate", "namespace": ns}
    cel = {"apiVersion": "v1", "kind": "ConfigMap", "current": "has(data.open) && data.open == 'yes'"}
    project.patch(KUSTOMIZATIONS, "app", {"spec": {"healthChecks": [gate], "healthCheckExprs": [cel],
                                                   "timeout": "3m"}})  # fmt: skip
    project.write("restamped")
    running = project.start("-v", "deploy")
    line = running.wait_for_line("pushed sha256:")
    digest = line.split("pushed ")[1].strip()
    sandbox.wait_for(lambda: project.configmap_greeting() == "restamped", timeout=120, what="the apply")
    generation = project.kustomization()["metadata"]["generation"]
    project.patch(KUSTOMIZATIONS, "app", {"spec": {"path": "./not-in-the-artifact"}})  # a new spec
    sandbox.kubectl("patch", "configmap", "gate", "-n", ns, "--type=merge", '--patch={"data":{"open":"yes"}}')
    run = running.finish(timeout=240)
    assert run.exit_code == 7, run.stderr
    assert "not-in-the-artifact" in run.json()["error"]["message"]
    restamped = [
        obj for obj in recorded.objects()
        if obj["status"].get("lastAppliedRevision") == f"latest@{digest}"
        and (_condition(obj, "Ready") or {}).get("status") == "True"
        and (_condition(obj, "Ready") or {}).get("observedGeneration") == generation + 1
        and obj["status"].get("observedGeneration") == generation
    ]  # fmt: skip
    assert restamped, "the controllers never showed the trap this test is about"


def test_a_stalled_condition_of_an_older_generation_is_waited_past(
    project: Project, sandbox: SandboxClient
) -> None:
    # Stalled for generation N (an invalid health-check expression); the spec is fixed (N+1) while
    # kustomize-controller is paused. The old Stalled must not decide: the fix applies the digest.
    bad = [{"apiVersion": "v1", "kind": "ConfigMap", "current": "this is not CEL ((("}]
    project.patch(KUSTOMIZATIONS, "app", {"spec": {"healthCheckExprs": bad}})
    sandbox.wait_condition(KUSTOMIZATIONS, "app", project.namespace,
                           lambda obj: (_condition(obj, "Stalled") or {}).get("status") == "True",
                           what="Stalled")  # fmt: skip
    with sandbox.paused("kustomize-controller"):
        project.patch(KUSTOMIZATIONS, "app", {"spec": {"healthCheckExprs": None}})
        running = project.start("-v", "deploy")
        # Judged, and waiting: the Stalled condition names the generation before the fix.
        running.wait_for_line(f"Kustomization/{project.namespace}/app: waiting")
        assert running.process.poll() is None, "".join(running.seen)
    run = running.finish()
    assert run.exit_code == 0, run.stderr
    assert run.json()["consumers"][0]["state"] == "done"


# --- a request is handled when ours, or a later one, was ---------------------------------------


@pytest.mark.parametrize("later", ["rfc3339", "opaque"])
def test_a_request_written_after_ours_and_handled_is_enough(
    project: Project, sandbox: SandboxClient, later: str
) -> None:
    # A re-run asks the Kustomization again; before kustomize-controller picks it up, someone else
    # writes the annotation again (`flux reconcile`: RFC 3339; a UI: any string). The controller only
    # ever records the newer value. Waiting for our own token would run out the deadline (exit 8).
    #
    # The controller is stopped, not paused: a paused one, resumed, gets both writes from its watch
    # and may reconcile the first before its cache holds the second (then ours is what it handled,
    # and this test would prove nothing). Started again, it lists the object: it sees the later one.
    assert project.flux_ci("deploy").exit_code == 0
    sandbox.stop("kustomize-controller")
    try:
        running = project.start("-v", "deploy", env=project.env(FLUX_CI_TIMEOUT="90s"))
        running.wait_for_line(f"reconcile requested: Kustomization app in {project.namespace}")
        value = (
            (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
            if later == "rfc3339"
            else "sync-from-the-ui-42"
        )
        sandbox.kubectl("annotate", KUSTOMIZATIONS, "app", "-n", project.namespace, "--overwrite",
                        f"reconcile.fluxcd.io/requestedAt={value}")  # fmt: skip
        # One watch delivers one object's changes in order: flux-ci sees the later request before
        # the status the controller writes for it.
    finally:
        sandbox.restart("kustomize-controller")
    run = running.finish()
    assert run.exit_code == 0, run.stderr
    assert project.kustomization()["status"]["lastHandledReconcileAt"] == value


# --- nothing waited for is invisible; rights asked before they are used --------------------------


def test_a_second_consumer_hidden_by_namespaced_rbac_is_exit_5_before_the_push(
    project: Project, sandbox: SandboxClient
) -> None:
    # One consumer in the namespace the Role covers, a second one in another namespace reading the
    # same source: without cluster-wide read its failure would never be seen.
    other = f"{project.namespace}-b"
    sandbox.create_namespace(other)
    try:
        second = copy.deepcopy(project.kustomization())
        second["metadata"] = {"name": "app-b", "namespace": other}
        second["spec"]["sourceRef"]["namespace"] = project.namespace
        second["spec"]["targetNamespace"] = other
        second.pop("status", None)
        sandbox.apply(json.dumps(second))
        context = sandbox.namespaced_context(project.namespace)
        run = project.flux_ci("deploy", env=project.env(FLUX_CI_KUBE_CONTEXT=context))
        assert run.exit_code == 5, run.stderr
        message = run.json()["error"]["message"]
        assert f"lacks list/watch {KUSTOMIZATIONS} cluster-wide" in message
        assert f"FLUX_CI_WAIT_FOR (the ones it can see: Kustomization/{project.namespace}/app)" in message
        assert project.absent("c1")
    finally:
        sandbox.delete_namespace(other)


def test_wait_without_patch_judges_the_current_state_and_says_so(
    project: Project, sandbox: SandboxClient
) -> None:
    first = project.flux_ci("deploy")
    assert first.exit_code == 0, first.stderr
    digest = first.json()["artifact"]["digest"]
    context = sandbox.namespaced_context(project.namespace, user=READ_ONLY_USER, role_yaml=read_only_role())
    env = project.env(FLUX_CI_KUBE_CONTEXT=context, FLUX_CI_DIGEST=digest,
                      FLUX_CI_WAIT_FOR=f"Kustomization/{project.namespace}/app")  # fmt: skip
    run = project.flux_ci("-v", "wait", env=env)
    assert run.exit_code == 0, run.stderr  # the old `wait` annotated without asking: exit 5, forbidden
    assert "kubectl annotate" not in run.stderr
    assert f"may not patch {KUSTOMIZATIONS} in namespace {project.namespace}" in run.stderr
    assert any("its current state for this digest decides" in note for note in run.json()["notes"])


def test_wait_needs_only_the_consumers_it_names(project: Project) -> None:
    first = project.flux_ci("deploy")
    assert first.exit_code == 0, first.stderr
    env = project.env(FLUX_CI_DIGEST=first.json()["artifact"]["digest"],
                      FLUX_CI_WAIT_FOR=f"Kustomization/{project.namespace}/app")  # fmt: skip
    env.pop("FLUX_CI_REPOSITORY")
    run = project.flux_ci("wait", env=env)
    assert run.exit_code == 0, run.stderr
    assert run.json()["sources"][0]["name"] == "app"  # found through the consumer's sourceRef


def test_a_consumer_named_by_mistake_is_exit_2_before_the_push(
    project: Project, sandbox: SandboxClient
) -> None:
    other = sandbox.unique_repository("elsewhere")
    sandbox.deploy_oci(project.namespace, "other", other, tag="latest", target_namespace=project.namespace)
    env = project.env(FLUX_CI_WAIT_FOR=f"Kustomization/{project.namespace}/other")
    run = project.flux_ci("deploy", env=env)
    assert run.exit_code == 2, run.stderr
    message = run.json()["error"]["message"]
    assert f"Kustomization/{project.namespace}/other reads OCIRepository/{project.namespace}/other" in message
    assert project.absent("c1")
    typo = project.flux_ci(
        "deploy", env=project.env(FLUX_CI_WAIT_FOR=f"Kustomization/{project.namespace}/ap")
    )
    assert typo.exit_code == 2, typo.stderr
    assert "which does not exist" in typo.json()["error"]["message"]


# --- transient versus permanent ------------------------------------------------------------------


def test_a_registry_fault_during_the_fetch_is_waited_out(project: Project, sandbox: SandboxClient) -> None:
    # The push succeeds; then the registry refuses connections while source-controller fetches. The
    # same fault in flux-ci's own calls is retried: in the controller's fetch it is waited out too.
    with sandbox.paused("source-controller"):
        running = project.start("-v", "deploy")
        running.wait_for_line(f"reconcile requested: OCIRepository app in {project.namespace}")
        sandbox.stop("registry")
    try:
        running.wait_for_line("connection refused", timeout=120)
        assert running.process.poll() is None, "".join(running.seen)  # not exit 6 at once
    finally:
        sandbox.restart("registry")
    run = running.finish(timeout=240)
    assert run.exit_code == 0, run.stderr


def test_a_registry_fault_that_lasts_to_the_deadline_is_exit_4_retryable(
    project: Project, sandbox: SandboxClient
) -> None:
    with sandbox.paused("source-controller"):
        running = project.start("-v", "deploy", env=project.env(FLUX_CI_TIMEOUT="40s"))
        running.wait_for_line(f"reconcile requested: OCIRepository app in {project.namespace}")
        sandbox.stop("registry")
    try:
        run = running.finish(timeout=120)
    finally:
        sandbox.restart("registry")
    assert run.exit_code == 4, run.stderr
    error = run.json()["error"]
    assert error["retryable"] is True
    assert "connection refused" in error["message"]
    assert "source-controller could not fetch the artifact" in error["message"]


# --- a silent API server -------------------------------------------------------------------------

SLACK_S = 20  # a slow CI machine: bounds say "by itself, near the deadline", never "to the millisecond"


def test_an_api_server_silent_past_the_deadline_is_exit_5_retryable(
    project: Project, sandbox: SandboxClient
) -> None:
    # A frozen API server keeps its connections open and answers nothing: the watches just go quiet.
    # Only asking it tells a silent cluster from consumers that take their time (exit 8).
    with sandbox.paused("kustomize-controller"):
        running = project.start("-v", "deploy", env=project.env(FLUX_CI_TIMEOUT="30s"))
        running.wait_for_line("▶ wait")
        sandbox.pause("kube-apiserver")
        try:
            run = running.finish(timeout=30 + SLACK_S + 30)
        finally:
            sandbox.resume("kube-apiserver")
    assert run.exit_code == 5, run.stderr
    error = run.json()["error"]
    assert error["retryable"] is True
    assert "the Kubernetes API has not answered since" in error["message"]
    assert "has not answered since" in run.stderr  # said while it waited, not only at the end
    assert run.seconds < 30 + SLACK_S


def test_an_api_server_silent_for_a_while_mid_wait_is_survived(
    project: Project, sandbox: SandboxClient
) -> None:
    with sandbox.paused("kustomize-controller"):
        running = project.start("-v", "deploy", env=project.env(FLUX_CI_TIMEOUT="120s"))
        running.wait_for_line("▶ wait")
        with sandbox.paused("kube-apiserver"):
            running.wait_for_line("has not answered since", timeout=60)
    run = running.finish(timeout=180)
    assert run.exit_code == 0, run.stderr  # the silence was seen, said, and survived
    assert "has not answered since" in run.stderr
    digest = run.json()["artifact"]["digest"]
    assert project.kustomization()["status"]["lastAppliedRevision"] == f"latest@{digest}"
