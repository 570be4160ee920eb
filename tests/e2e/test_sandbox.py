"""The sandbox runs the real thing: flux pushes, the registry checks passwords, Flux applies.

Every test drives the real binaries (flux, oras, kubectl, docker-registry, etcd, kube-apiserver,
source-controller, kustomize-controller); nothing is faked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import OciDeployment, SandboxClient, condition
from tests.sandbox.launch import Launch
from tests.sandbox.lifecycle import down
from tests.sandbox.net import port_is_free
from tests.sandbox.procs import is_alive, stop_process, wait_healthy
from tests.sandbox.registry import start_registry
from tests.sandbox.state import load
from tests.sandbox.versions import REPO_ROOT, tool_path

pytestmark = pytest.mark.e2e

APPLY_TIMEOUT_S = 120


def write_configmap(directory: Path, greeting: str) -> Path:
    """A manifests dir with one ConfigMap (there is no kubelet, so no workloads)."""
    directory.mkdir(parents=True)
    (directory / "configmap.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\ndata:\n  text: {greeting}\n",
        encoding="utf-8",
    )
    return directory


def reconcile_source(sandbox: SandboxClient, deployment: OciDeployment) -> str:
    """`flux reconcile source oci`; returns its stderr, where Flux writes its status lines."""
    done = sandbox.flux(
        "reconcile", "source", "oci", deployment.name, "-n", deployment.namespace, "--timeout=2m"
    )
    return done.stderr


def wait_applied(sandbox: SandboxClient, deployment: OciDeployment, digest: str) -> dict[str, Any]:
    """The Kustomization once its lastAppliedRevision names the pushed manifest digest."""

    def applied() -> dict[str, Any] | None:
        obj = sandbox.find_json("kustomization", deployment.name, deployment.namespace)
        revision = (obj or {}).get("status", {}).get("lastAppliedRevision", "")
        return obj if revision.endswith(f"@{digest}") else None

    what = f"Kustomization {deployment.namespace}/{deployment.name} to apply {digest}"
    return sandbox.wait_for(applied, timeout=APPLY_TIMEOUT_S, what=what)


def configmap_text(sandbox: SandboxClient, namespace: str) -> str | None:
    obj = sandbox.find_json("configmap", "greeting", namespace)
    return None if obj is None else str(obj.get("data", {}).get("text"))


def no_credentials_env(home: Path) -> dict[str, str]:
    """Env in which neither flux's keychain nor oras can find any registry credential."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "HOME": str(home),
        "DOCKER_CONFIG": str(home),
        "REGISTRY_AUTH_FILE": str(home / "auth.json"),
        "XDG_CONFIG_HOME": str(home),
        "XDG_RUNTIME_DIR": str(home),
    }


def run(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A real binary with extra env, its exit code left to the test to judge."""
    return subprocess.run(
        argv, cwd=cwd, env=os.environ | env, capture_output=True, text=True, timeout=300, check=False
    )


def flux_push_argv(url: str, manifests: Path) -> list[str]:
    return [
        str(tool_path("flux")), "push", "artifact", url, f"--path={manifests}",
        "--source=https://example.invalid/src", "--revision=main@sha1:1", "--insecure-registry",
    ]  # fmt: skip


def test_pushed_artifact_is_applied_and_updated(
    sandbox: SandboxClient, namespace: str, repository: str, docker_config: Path, tmp_path: Path
) -> None:
    first = sandbox.push_artifact(
        write_configmap(tmp_path / "v1", "hello-1"), repository, docker_config=docker_config
    )
    deployment = sandbox.deploy_oci(namespace, "app", repository)

    assert first.digest in reconcile_source(sandbox, deployment)
    sandbox.wait_for(
        lambda: configmap_text(sandbox, namespace) == "hello-1",
        timeout=APPLY_TIMEOUT_S,
        what="the first ConfigMap",
    )

    second = sandbox.push_artifact(
        write_configmap(tmp_path / "v2", "hello-2"), repository, docker_config=docker_config
    )
    assert second.digest != first.digest
    assert f"fetched revision latest@{second.digest}" in reconcile_source(sandbox, deployment)
    kustomization = wait_applied(sandbox, deployment, second.digest)

    assert kustomization["status"]["lastAppliedRevision"] == f"latest@{second.digest}"
    assert configmap_text(sandbox, namespace) == "hello-2"
    ready = condition(kustomization, "Ready")
    assert ready is not None
    assert ready["status"] == "True"


def test_broken_artifact_fails_with_the_controller_message(
    sandbox: SandboxClient, namespace: str, repository: str, docker_config: Path, tmp_path: Path
) -> None:
    manifests = tmp_path / "broken"
    manifests.mkdir()
    (manifests / "broken.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata: [unclosed\n",
        encoding="utf-8",
    )
    pushed = sandbox.push_artifact(manifests, repository, docker_config=docker_config)
    deployment = sandbox.deploy_oci(namespace, "broken", repository)
    reconcile_source(sandbox, deployment)

    def failed() -> dict[str, Any] | None:
        # Ready=False alone could still be "artifact not found" from before the source fetched.
        obj = sandbox.find_json("kustomization", deployment.name, namespace) or {}
        attempted = obj.get("status", {}).get("lastAttemptedRevision", "")
        ready = condition(obj, "Ready")
        if attempted.endswith(pushed.digest) and ready and ready["status"] == "False":
            return obj
        return None

    kustomization = sandbox.wait_for(failed, timeout=APPLY_TIMEOUT_S, what="Ready=False")

    ready = condition(kustomization, "Ready")
    assert ready is not None
    assert ready["reason"] == "BuildFailed"
    # kustomize-controller's own words, e.g. "failed to decode Kubernetes YAML from
    # /tmp/kustomization-123/broken.yaml: MalformedYAMLError: yaml: line 4: did not find ..."
    assert ready["message"].startswith("failed to decode Kubernetes YAML from ")
    assert "broken.yaml: MalformedYAMLError: yaml: line 4: did not find expected" in ready["message"]
    assert "lastAppliedRevision" not in kustomization["status"]


@pytest.mark.parametrize("tool", ["flux", "oras"])
def test_registry_refuses_unauthenticated_push(
    sandbox: SandboxClient, repository: str, tmp_path: Path, tool: str
) -> None:
    manifests = write_configmap(tmp_path / "m", "nobody")
    env = no_credentials_env(tmp_path / "home")
    target = f"{sandbox.registry}/{repository}:latest"
    if tool == "flux":
        argv = flux_push_argv(f"oci://{target}", manifests)
        expected = "401 Unauthorized"
    else:
        config = tmp_path / "home" / "config.json"
        argv = [str(tool_path("oras")), "push", "--plain-http", "--registry-config", str(config)]
        argv += [target, "configmap.yaml"]
        expected = "basic credential not found"  # oras gives up on the registry's Basic challenge

    done = run(argv, env, cwd=manifests)

    assert done.returncode == 1
    assert expected in done.stderr + done.stdout


def test_registry_rejects_a_wrong_password(sandbox: SandboxClient, tmp_path: Path) -> None:
    done = sandbox.oras(
        "login", sandbox.registry, "--plain-http", "--username", sandbox.registry_user,
        "--password-stdin", "--registry-config", str(tmp_path / "config.json"),
        input_text="not-the-password", check=False,
    )  # fmt: skip

    assert done.returncode == 1
    assert "unauthorized" in done.stderr.lower()


def test_anonymous_registry_accepts_pushes_without_credentials(tmp_path: Path) -> None:
    launch = Launch(tmp_path / "state", die_with_parent=True)
    info, record = start_registry(launch, anonymous=True)
    try:
        wait_healthy(record, timeout=30, started=launch.start_times["registry"])
        manifests = write_configmap(tmp_path / "m", "anyone")
        url = f"oci://{info.address}/anon/app:v1"
        done = run(flux_push_argv(url, manifests), no_credentials_env(tmp_path / "home"))
        assert done.returncode == 0, done.stderr
        assert info.user == ""
    finally:
        stop_process(record)


def sandbox_cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "tests.sandbox", "--state-dir", str(state_dir), *args]
    return run(argv, {}, cwd=REPO_ROOT)


def test_up_is_idempotent_and_down_leaves_nothing_behind(tmp_path: Path) -> None:
    state_dir = tmp_path / "sandbox"
    try:
        started = sandbox_cli(state_dir, "up")
        assert started.returncode == 0, started.stderr
        env_file = Path(started.stdout.strip())
        state = load(state_dir)
        assert state is not None
        assert env_file == state_dir / "sandbox.env"
        script = '. "$1" && command -v flux kubectl oras && kubectl get namespace flux-system'
        shell = run(["bash", "-c", script, "sh", str(env_file)], {})
        assert shell.returncode == 0, shell.stderr
        assert shell.stdout.splitlines()[:3] == [
            str(tool_path("flux")),
            str(tool_path("kubectl")),
            str(tool_path("oras")),
        ]

        again = sandbox_cli(state_dir, "up")
        assert again.returncode == 0, again.stderr
        assert "reusing" in again.stderr
        reused = load(state_dir)
        assert reused is not None
        assert [r.pid for r in reused.processes] == [r.pid for r in state.processes]

        stopped = sandbox_cli(state_dir, "down")
        assert stopped.returncode == 0, stopped.stderr
    finally:
        down(state_dir)  # a failing assertion must not leave a second sandbox running

    assert len(state.processes) == 5
    assert not [r.name for r in state.processes if is_alive(r)]
    assert [port for port in state.ports if not port_is_free(port)] == []
    assert not state_dir.exists()
