"""flux-ci end to end: the real flux, oras and kubectl against the sandbox's real registry, API server
and Flux controllers. Each test gets its own namespace and registry repository.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.project import ROOT, Project, Run, child_env
from tests.sandbox import SandboxClient
from tests.sandbox.demo import demo

pytestmark = pytest.mark.e2e


def test_deploy_applies_exactly_the_pushed_digest(project: Project, tmp_path: Path) -> None:
    dotenv = tmp_path / "deploy.env"
    run = project.flux_ci("deploy", env=project.env(FLUX_CI_DOTENV=str(dotenv)))
    assert run.exit_code == 0, run.stderr
    report = run.json()
    digest = report["artifact"]["digest"]
    assert report["status"] == "succeeded"
    assert digest == project.resolve("c1") == project.resolve("latest")
    assert report["artifact"]["tags"] == ["c1", "latest"]
    applied = project.kustomization()["status"]["lastAppliedRevision"]
    assert applied.endswith(f"@{digest}")
    assert [c["revision"] for c in report["consumers"]] == [applied]
    assert report["sources"][0]["revision"] == f"latest@{digest}"
    assert project.configmap_greeting() == "hello"
    assert [step["name"] for step in report["steps"]] == ["discover", "push", "tag", "reconcile", "wait"]
    lines = dotenv.read_text().splitlines()
    assert f"FLUX_CI_DIGEST={digest}" in lines
    assert f"FLUX_CI_URL={project.sandbox.oci_url(project.repository)}@{digest}" in lines
    assert "FLUX_CI_STATUS=succeeded" in lines


def _deploy_twice(project: Project, greeting: str) -> tuple[Run, Run]:
    """Deploy, change the manifests, deploy again under a new tag; both must succeed."""
    first = project.flux_ci("deploy")
    assert first.exit_code == 0, first.stderr
    project.write(greeting)
    second = project.flux_ci("deploy", env=project.env(FLUX_CI_TAG="c2"))
    assert second.exit_code == 0, second.stderr
    return first, second


def test_second_deploy_with_changed_manifests(project: Project) -> None:
    first, second = _deploy_twice(project, "changed")
    digest = second.json()["artifact"]["digest"]
    assert digest != first.json()["artifact"]["digest"]
    assert project.kustomization()["status"]["lastAppliedRevision"] == f"latest@{digest}"
    assert project.configmap_greeting() == "changed"


def test_table_output_for_people(project: Project) -> None:
    run = project.flux_ci("deploy", env=project.env(FLUX_CI_OUTPUT="table"))
    assert run.exit_code == 0, run.stderr
    assert "Kustomization" in run.stdout
    assert run.stdout.rstrip().endswith("deploy: succeeded")
    assert "▶ push" in run.stderr  # progress is for people, on stderr
    assert "✔ wait done in" in run.stderr


def test_manifest_that_fails_to_apply_exits_7_with_the_controller_message(project: Project) -> None:
    bad = "apiVersion: example.invalid/v1\nkind: NoSuchKind\nmetadata:\n  name: broken\n"
    project.write("hello", extra_yaml=bad)
    run = project.flux_ci("deploy")
    assert run.exit_code == 7, run.stderr
    error = run.json()["error"]
    ready = next(c for c in project.kustomization()["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert error["code"] == "consumer_failed"
    assert ready["message"].strip() in error["message"]
    assert "NoSuchKind" in error["message"]


def test_source_following_a_tag_that_is_not_pushed_exits_2_fast(
    sandbox: SandboxClient, namespace: str, repository: str, tmp_path: Path
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    project = Project(sandbox, namespace, repository, manifests)
    project.write("hello")
    sandbox.deploy_oci(namespace, "app", repository, tag="stable")
    run = project.flux_ci("deploy")
    assert run.exit_code == 2, run.stderr
    assert run.seconds < 10
    assert "follows tag 'stable', but this run pushes tags: c1, latest" in run.json()["error"]["message"]
    assert project.absent("c1")  # nothing was pushed


def test_source_already_holding_the_digest_is_not_waited_for(project: Project) -> None:
    first = project.flux_ci("deploy")
    assert first.exit_code == 0, first.stderr
    digest = first.json()["artifact"]["digest"]
    # The OCIRepository's interval is 10m: only "already synced" can make this fast.
    run = project.flux_ci("-v", "reconcile", env=project.env(FLUX_CI_DIGEST=digest))
    assert run.exit_code == 0, run.stderr
    assert run.seconds < 10
    assert "already holds" in run.stderr
    assert " annotate " not in run.stderr


def _block_on_missing_dependency(project: Project) -> None:
    """A dependency that never exists keeps the consumer from ever applying."""
    patch = json.dumps({"spec": {"dependsOn": [{"name": "never-there"}]}})
    kind = "kustomizations.kustomize.toolkit.fluxcd.io"
    project.sandbox.kubectl("patch", kind, "app", "-n", project.namespace, "--type=merge", f"--patch={patch}")


def test_deadline_too_short_exits_8_within_deadline_plus_5s(project: Project) -> None:
    # Only the deadline can end this deploy.
    _block_on_missing_dependency(project)
    run = project.flux_ci("deploy", env=project.env(FLUX_CI_TIMEOUT="6s"))
    assert run.exit_code == 8, run.stderr
    assert run.seconds < 6 + 5
    message = run.json()["error"]["message"]
    assert f"Kustomization/{project.namespace}/app" in message
    assert "never-there" in message  # the last message Flux gave


def test_wrong_registry_password_exits_4(project: Project) -> None:
    run = project.flux_ci("push", env=project.env(FLUX_CI_REGISTRY_PASSWORD="not-the-password"))
    assert run.exit_code == 4, run.stderr
    assert "unauthorized" in run.json()["error"]["message"]


def test_unreachable_cluster_exits_5(project: Project, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "unreachable.kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\n"
        "clusters: [{name: gone, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "contexts: [{name: gone, context: {cluster: gone, user: u}}]\nusers: [{name: u, user: {token: t}}]\n"
    )
    run = project.flux_ci("deploy", env=project.env(KUBECONFIG=str(kubeconfig)))
    assert run.exit_code == 5, run.stderr
    assert "127.0.0.1:1" in run.json()["error"]["message"]


def test_empty_environment_exits_2_naming_every_missing_variable(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flux_ci", "deploy"],
        env={"PATH": os.defpath, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    for name in ("FLUX_CI_REPOSITORY", "FLUX_CI_TAG", "FLUX_CI_SOURCE", "FLUX_CI_REVISION", "FLUX_CI_PATH"):
        assert name in done.stderr
    assert "Traceback" not in done.stderr


class ArgvSpy:
    """Samples every process's command line while flux-ci runs, to prove no secret is in argv."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> ArgvSpy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.seen.update(_command_lines())
            self._stop.wait(0.005)


def test_trace_shows_every_command_and_the_password_appears_nowhere(project: Project, tmp_path: Path) -> None:
    password = project.sandbox.registry_password
    dotenv = tmp_path / "deploy.env"
    env = project.env(FLUX_CI_TRACE="true", FLUX_CI_DOTENV=str(dotenv))
    with ArgvSpy() as spy:
        run = project.flux_ci("deploy", env=env)
    assert run.exit_code == 0, run.stderr
    traced = [line for line in run.stderr.splitlines() if line.startswith("+ ") and ": exit " not in line]
    commands = " | ".join(traced)
    for expected in ("flux version", "oras version", "kubectl version", "oras login", "--password-stdin",
                     "flux push artifact", "oras tag", "kubectl get ocirepositories", "kubectl annotate",
                     "--watch", "kubectl get kustomizations"):  # fmt: skip
        assert expected in commands, expected
    children = [argv for argv in spy.seen if "oras" in argv or "flux push" in argv or "kubectl" in argv]
    assert any("flux push artifact" in argv for argv in children)  # the spy did see the children
    for text in (run.stdout, run.stderr, dotenv.read_text(), *spy.seen):
        assert password not in text


@pytest.mark.parametrize(
    ("signum", "code", "name"), [(signal.SIGTERM, 143, "sigterm"), (signal.SIGINT, 130, "sigint")]
)
def test_signal_stops_children_and_exits_with_its_code(
    project: Project, signum: signal.Signals, code: int, name: str
) -> None:
    _block_on_missing_dependency(project)
    process = subprocess.Popen(
        [sys.executable, "-m", "flux_ci", "-v", "deploy"],
        env=child_env(project.sandbox, project.env(FLUX_CI_TIMEOUT="120s")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert process.stderr is not None
    watching = ""
    for line in process.stderr:  # wait until it is inside the consumer watch
        watching += line
        if "kustomizations" in line and "--watch" in line:
            break
    signalled = time.monotonic()
    process.send_signal(signum)
    try:
        stdout, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    took = time.monotonic() - signalled
    assert process.returncode == code, watching
    assert took < 5, f"exited {took:.1f}s after {name}: the contract says within 5 s"
    assert json.loads(stdout)["error"]["code"] == name
    leftovers = [argv for argv in _command_lines() if project.namespace in argv and "--watch" in argv]
    assert leftovers == []


def _command_lines() -> list[str]:
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # the process ended meanwhile
    return lines


def test_reconcile_to_a_digest_the_tag_no_longer_points_at_is_superseded(project: Project) -> None:
    first, second = _deploy_twice(project, "newer")
    old_digest = first.json()["artifact"]["digest"]
    run = project.flux_ci("reconcile", env=project.env(FLUX_CI_DIGEST=old_digest))
    assert run.exit_code == 9, run.stderr
    report = run.json()
    assert report["status"] == "superseded"
    assert report["error"]["superseded_by"] == second.json()["artifact"]["digest"]


def test_dry_run_pushes_and_annotates_nothing(project: Project) -> None:
    run = project.flux_ci("--dry-run", "deploy")
    assert run.exit_code == 0, run.stderr
    assert run.json()["status"] == "dry-run"
    assert "[dry-run] would run: $ flux push artifact" in run.stderr
    assert "[dry-run] would run: $ kubectl annotate" in run.stderr
    assert project.absent("c1")


def test_status_lists_sources_and_consumers_with_full_revisions(project: Project) -> None:
    deployed = project.flux_ci("deploy")
    assert deployed.exit_code == 0, deployed.stderr
    digest = deployed.json()["artifact"]["digest"]
    run = project.flux_ci("status")
    assert run.exit_code == 0, run.stderr
    report = run.json()
    assert [(s["name"], s["revision"]) for s in report["sources"]] == [("app", f"latest@{digest}")]
    assert [(c["kind"], c["revision"], c["ready"]) for c in report["consumers"]] == [
        ("Kustomization", f"latest@{digest}", "True")
    ]


def test_doctor_checks_everything_and_names_a_broken_setup(project: Project) -> None:
    healthy = project.flux_ci("doctor")
    assert healthy.exit_code == 0, healthy.stderr
    checks = {check["name"]: check for check in healthy.json()["checks"]}
    assert all(check["ok"] for check in checks.values())
    assert checks["flux installed"]["detail"] == "2.9.3"
    assert checks["registry login"]["detail"].startswith("logged in as")
    broken = project.flux_ci("doctor", env=project.env(FLUX_CI_EXTRA_TAGS="none"))
    assert broken.exit_code == 2
    failed = [check for check in broken.json()["checks"] if not check["ok"]]
    assert [check["name"] for check in failed] == ["cluster and sources"]
    assert "follows tag 'latest'" in failed[0]["detail"]


def test_demo_deploys_the_examples_with_gitlab_variables_only(sandbox: SandboxClient) -> None:
    assert demo(sandbox.state_dir) == 0
    applied = sandbox.get_json("configmap", "flux-ci-demo", "default")
    assert applied["data"]["greeting"] == "hello from flux-ci"
