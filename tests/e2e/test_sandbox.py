"""The sandbox runs the real thing: flux pushes, the registry checks passwords, Flux applies.

Every test drives the real binaries (flux, oras, kubectl, docker-registry, etcd, kube-apiserver,
source-controller, kustomize-controller, helm-controller, notification-controller); nothing is
faked. The fault injection helpers (pause, stop, restart) and the namespaced RBAC identity are tested
here as well.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import OciDeployment, SandboxClient, condition, unique_name
from tests.sandbox.clusters import SECOND, component_of
from tests.sandbox.controllers import HELM_SHARD
from tests.sandbox.kube import add_impersonation_context, merge_kubeconfig, write_kubeconfig
from tests.sandbox.launch import Launch
from tests.sandbox.lifecycle import down, reusable
from tests.sandbox.net import http_status, port_is_free, probe
from tests.sandbox.procs import is_alive, is_stopped, stop_process, wait_healthy
from tests.sandbox.registry import start_registry
from tests.sandbox.state import RegistryInfo, SandboxState, exported_variables, load
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

    assert [r.name for r in state.processes] == [
        "registry", "etcd", "kube-apiserver",
        "notification-controller", "source-controller", "kustomize-controller", "helm-controller",
    ]  # fmt: skip
    assert not [r.name for r in state.processes if is_alive(r)]
    assert [port for port in state.ports if not port_is_free(port)] == []
    assert not state_dir.exists()


# -- fault injection ------------------------------------------------------------------------------

RECONCILE_ANNOTATION = "reconcile.fluxcd.io/requestedAt"
# What a paused controller is given to (not) react: far longer than it needs when it runs.
PAUSED_OBSERVATION_S = 5


def deploy_configmap(
    sandbox: SandboxClient, namespace: str, repository: str, docker_config: Path, directory: Path
) -> OciDeployment:
    """A deployment whose first ConfigMap (`hello-1`) is applied."""
    sandbox.push_artifact(write_configmap(directory, "hello-1"), repository, docker_config=docker_config)
    deployment = sandbox.deploy_oci(namespace, "app", repository)
    sandbox.wait_for(
        lambda: configmap_text(sandbox, namespace) == "hello-1", timeout=APPLY_TIMEOUT_S, what="hello-1"
    )
    return deployment


def request_reconcile(sandbox: SandboxClient, deployment: OciDeployment) -> str:
    """What `flux reconcile` writes: the annotation whose value Flux echoes once it handled it."""
    token = datetime.now(UTC).isoformat()
    sandbox.kubectl(
        "annotate", "--overwrite", "ocirepository", deployment.name, "-n", deployment.namespace,
        f"{RECONCILE_ANNOTATION}={token}",
    )  # fmt: skip
    return token


def handled_token(sandbox: SandboxClient, deployment: OciDeployment) -> str | None:
    obj = sandbox.get_json("ocirepository", deployment.name, deployment.namespace)
    handled = obj.get("status", {}).get("lastHandledReconcileAt")
    return None if handled is None else str(handled)


def test_paused_controller_does_not_handle_a_reconcile_request_until_resumed(
    sandbox: SandboxClient, namespace: str, repository: str, docker_config: Path, tmp_path: Path
) -> None:
    deployment = deploy_configmap(sandbox, namespace, repository, docker_config, tmp_path / "m")

    with sandbox.paused("source-controller"):
        assert is_stopped(sandbox.state.process("source-controller"))
        token = request_reconcile(sandbox, deployment)
        time.sleep(PAUSED_OBSERVATION_S)
        assert handled_token(sandbox, deployment) != token

    assert not is_stopped(sandbox.state.process("source-controller"))
    sandbox.wait_for(
        lambda: handled_token(sandbox, deployment) == token, timeout=60, what="the request to be handled"
    )


def test_paused_registry_answers_nothing_until_resumed(sandbox: SandboxClient) -> None:
    health = sandbox.state.process("registry").health

    with sandbox.paused("registry"):
        assert http_status(health, timeout=2) is None  # the connection opens, no answer comes

    assert http_status(health) == 401


def test_paused_api_server_times_kubectl_out_until_resumed(sandbox: SandboxClient) -> None:
    with sandbox.paused("kube-apiserver"):
        hung = sandbox.kubectl("get", "namespace", "flux-system", "--request-timeout=3s", check=False)
        assert hung.returncode == 1
        # kubectl words a client-side timeout either way, depending on where it struck.
        assert re.search(r"Client\.Timeout|timeout|context deadline exceeded", hung.stderr, re.IGNORECASE)

    sandbox.kubectl("get", "namespace", "flux-system", "--request-timeout=10s")


def test_stopped_api_server_refuses_kubectl_and_comes_back_with_the_same_token_cert_and_data(
    sandbox: SandboxClient, namespace: str
) -> None:
    old = sandbox.state.process("kube-apiserver")
    sandbox.stop("kube-apiserver")
    try:
        refused = sandbox.kubectl("get", "namespace", namespace, "--request-timeout=5s", check=False)
        assert refused.returncode == 1
        port = old.health.url.rsplit(":", 1)[1].split("/")[0]
        assert f"The connection to the server 127.0.0.1:{port} was refused" in refused.stderr
    finally:
        seconds = sandbox.restart("kube-apiserver")

    new = sandbox.state.process("kube-apiserver")
    assert new.pid != old.pid
    assert new.health.url == old.health.url  # same port
    assert seconds < 180
    # The unchanged kubeconfig works (same token, same CA) and etcd kept the namespace.
    found = json.loads(sandbox.kubectl("get", "namespace", namespace, "-o", "json").stdout)
    assert found["metadata"]["name"] == namespace


def test_stopped_registry_refuses_and_comes_back_with_its_storage_and_password(
    sandbox: SandboxClient, repository: str, docker_config: Path, tmp_path: Path
) -> None:
    pushed = sandbox.push_artifact(
        write_configmap(tmp_path / "m", "kept"), repository, docker_config=docker_config
    )
    reference = f"{sandbox.registry}/{repository}:latest"
    credentials = ["--plain-http", "--registry-config", str(docker_config / "config.json")]

    sandbox.stop("registry")
    try:
        refused = sandbox.oras("resolve", reference, *credentials, check=False)
        assert refused.returncode == 1
        assert "connection refused" in refused.stderr
    finally:
        sandbox.restart("registry")

    # Same storage (the tag still resolves), same htpasswd (the stored login still works).
    assert sandbox.oras("resolve", reference, *credentials).stdout.strip() == pushed.digest
    anonymous = sandbox.oras("resolve", reference, "--plain-http", env=no_credentials_env(tmp_path / "h"),
                             check=False)  # fmt: skip
    assert anonymous.returncode == 1


@pytest.mark.parametrize("component", ["source-controller", "kustomize-controller"])
def test_restarted_controller_applies_the_next_push(
    sandbox: SandboxClient,
    namespace: str,
    *,
    repository: str,
    docker_config: Path,
    tmp_path: Path,
    component: str,
) -> None:
    deployment = deploy_configmap(sandbox, namespace, repository, docker_config, tmp_path / "v1")
    old = sandbox.state.process(component)

    sandbox.restart(component)

    new = sandbox.state.process(component)
    assert new.pid != old.pid
    assert not is_alive(old)
    assert probe(new.health)
    second = sandbox.push_artifact(
        write_configmap(tmp_path / "v2", "hello-2"), repository, docker_config=docker_config
    )
    reconcile_source(sandbox, deployment)
    wait_applied(sandbox, deployment, second.digest)
    assert configmap_text(sandbox, namespace) == "hello-2"


def test_restart_is_recorded_so_down_stops_the_new_process(sandbox: SandboxClient) -> None:
    sandbox.restart("kustomize-controller")

    recorded = load(sandbox.state_dir)
    assert recorded is not None
    assert recorded.process("kustomize-controller").pid == sandbox.state.process("kustomize-controller").pid


def test_component_restarted_from_a_short_lived_thread_outlives_it(sandbox: SandboxClient) -> None:
    # A timer thread restarting the registry mid-test must not take it down when the thread ends.
    restarter = threading.Thread(target=sandbox.restart, args=("registry",))
    restarter.start()
    restarter.join(timeout=60)
    time.sleep(1)

    registry = sandbox.state.process("registry")
    assert is_alive(registry)
    assert probe(registry.health)


def test_unknown_component_is_refused(sandbox: SandboxClient) -> None:
    with pytest.raises(ValueError, match="unknown component 'docker'"):
        sandbox.pause("docker")


# -- namespaced RBAC identity ---------------------------------------------------------------------

FLUX_RESOURCES = (
    "ocirepositories.source.toolkit.fluxcd.io",
    "kustomizations.kustomize.toolkit.fluxcd.io",
    "helmreleases.helm.toolkit.fluxcd.io",
)


def test_namespaced_context_may_read_and_annotate_flux_objects_in_its_namespace_only(
    sandbox: SandboxClient, namespace: str
) -> None:
    context = sandbox.namespaced_context(namespace, user=unique_name("gitlab-ci-job"))

    for resource in FLUX_RESOURCES:
        for verb in ("get", "list", "watch", "patch"):
            assert sandbox.can_i(context, verb, resource, namespace=namespace), (verb, resource)
        for verb in ("create", "update", "delete"):
            assert not sandbox.can_i(context, verb, resource, namespace=namespace), (verb, resource)
        assert not sandbox.can_i(context, "list", resource), resource  # all namespaces
        assert not sandbox.can_i(context, "get", resource, namespace="flux-system"), resource
    assert not sandbox.can_i(context, "get", "secrets", namespace=namespace)
    # Granted by Kubernetes to every authenticated user (system:basic-user), not by flux-ci's Role.
    assert sandbox.can_i(context, "create", "selfsubjectaccessreviews.authorization.k8s.io")


def test_namespaced_context_reconciles_through_exactly_that_role(
    sandbox: SandboxClient, namespace: str, repository: str, docker_config: Path, tmp_path: Path
) -> None:
    pushed = sandbox.push_artifact(
        write_configmap(tmp_path / "m", "rbac"), repository, docker_config=docker_config
    )
    sandbox.deploy_oci(namespace, "app", repository)
    user = unique_name("gitlab-ci-job")
    context = sandbox.namespaced_context(namespace, user=user)

    # flux does what flux-ci does: get, annotate (patch), then watch the object until it is handled.
    done = sandbox.flux("reconcile", "source", "oci", "app", "-n", namespace, f"--context={context}")
    assert f"fetched revision latest@{pushed.digest}" in done.stderr

    elsewhere = sandbox.kubectl("get", "ocirepositories", "-A", f"--context={context}", check=False)
    assert elsewhere.returncode == 1
    assert f'User "{user}" cannot list resource "ocirepositories"' in elsewhere.stderr
    assert "at the cluster scope" in elsewhere.stderr


def test_cluster_read_role_lists_everywhere_but_patches_nowhere_else(
    sandbox: SandboxClient, namespace: str
) -> None:
    user = unique_name("gitlab-ci-job")
    context = sandbox.namespaced_context(namespace, user=user)

    sandbox.grant_cluster_read(user)

    for resource in FLUX_RESOURCES:
        assert sandbox.can_i(context, "list", resource), resource
        assert sandbox.can_i(context, "watch", resource, namespace="flux-system"), resource
        assert not sandbox.can_i(context, "patch", resource, namespace="flux-system"), resource
    listed = sandbox.kubectl("get", "ocirepositories", "-A", "-o", "json", f"--context={context}")
    assert json.loads(listed.stdout)["kind"] == "List"


def test_namespaced_context_takes_another_role(sandbox: SandboxClient, namespace: str) -> None:
    read_only = (
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: read-only}\n"
        "rules: [{apiGroups: [source.toolkit.fluxcd.io], resources: [ocirepositories], verbs: [get]}]\n"
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: read-only}\n"
        "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-only}\nsubjects: []\n"
    )
    context = sandbox.namespaced_context(namespace, user=unique_name("reader"), role_yaml=read_only)

    resource = FLUX_RESOURCES[0]
    assert sandbox.can_i(context, "get", resource, namespace=namespace)
    assert not sandbox.can_i(context, "patch", resource, namespace=namespace)


# -- notification-controller ----------------------------------------------------------------------


def test_notification_controller_serves_receiver_webhooks_at_the_path_flux_computes(
    sandbox: SandboxClient, namespace: str, repository: str, docker_config: Path, tmp_path: Path
) -> None:
    from flux_ci.kube.receiver import webhook_path  # noqa: PLC0415 - the one flux_ci import of this module

    deployment = deploy_configmap(sandbox, namespace, repository, docker_config, tmp_path / "m")
    token = sandbox.create_receiver(namespace, "ci", [{"kind": "OCIRepository", "name": deployment.name}])
    receiver = sandbox.get_json("receivers.notification.toolkit.fluxcd.io", "ci", namespace)
    assert receiver["status"]["webhookPath"] == webhook_path(token, "ci", namespace)
    url = sandbox.receiver_url
    assert url.startswith("http://127.0.0.1:")
    record = sandbox.state.process("notification-controller")
    assert is_alive(record)
    assert "--metrics-addr=0" in (record.spec.argv if record.spec else ())
    # The other controllers send their events to its event server, as a Flux install configures them.
    events = next(
        arg for arg in (record.spec.argv if record.spec else ()) if arg.startswith("--events-addr=")
    )
    for controller in ("source-controller", "kustomize-controller", "helm-controller"):
        spec = sandbox.state.process(controller).spec
        assert f"--events-addr=http://{events.removeprefix('--events-addr=')}/" in (spec.argv if spec else ())
    # The real `flux trigger receiver` (a sandbox token in its argv is no secret) asks Flux through it.
    before = handled_token(sandbox, deployment)
    sandbox.flux("trigger", "receiver", "ci", "-n", namespace, f"--url={url}", f"--token={token}")
    annotated = sandbox.get_json("ocirepository", deployment.name, namespace)["metadata"]["annotations"]
    requested = annotated[RECONCILE_ANNOTATION]
    assert requested != before
    sandbox.wait_for(
        lambda: handled_token(sandbox, deployment) == requested, timeout=60, what="the request to be handled"
    )
    wrong = sandbox.flux(
        "trigger", "receiver", "ci", "-n", namespace, f"--url={url}", "--token=wrong", "--retries=0",
        check=False,
    )  # fmt: skip
    assert wrong.returncode == 1
    assert "404 Not Found" in wrong.stderr


# -- two clusters ---------------------------------------------------------------------------------


def test_a_second_clusters_kubeconfig_entries_leave_the_first_ones_as_they_were(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(
        tmp_path / "kubeconfig", server="https://127.0.0.1:1", ca_file=tmp_path / "1.crt", token="one"
    )
    before = json.loads(kubeconfig.read_text(encoding="utf-8"))
    other = write_kubeconfig(
        tmp_path / "kubeconfig-2",
        server="https://127.0.0.1:2",
        ca_file=tmp_path / "2.crt",
        token="two",
        cluster=SECOND,
    )
    merge_kubeconfig(kubeconfig, other)
    context = add_impersonation_context(kubeconfig, "ci@ns", user="ci", admin_context=SECOND.context)

    merged = json.loads(kubeconfig.read_text(encoding="utf-8"))
    assert merged["current-context"] == "flux-ci-sandbox"
    assert [c["name"] for c in merged["contexts"]] == ["flux-ci-sandbox", "flux-ci-sandbox-2", context]
    assert [u for u in merged["users"] if u["name"] == "admin"] == before["users"]
    impersonating = {c["name"]: c["context"] for c in merged["contexts"]}[context]
    assert impersonating["cluster"] == "flux-ci-sandbox-2"
    assert {u["name"]: u["user"] for u in merged["users"]}[context] == {"token": "two", "as": "ci"}


def test_a_second_clusters_processes_and_env_carry_its_number(tmp_path: Path) -> None:
    assert (SECOND.process_name("kube-apiserver"), SECOND.process_name("registry")) == (
        "kube-apiserver-2",
        "registry",
    )
    assert component_of("helm-controller-2") == "helm-controller"
    assert component_of(HELM_SHARD) == HELM_SHARD
    kubeconfig = tmp_path / "kubeconfig"
    state = SandboxState(tmp_path, RegistryInfo("127.0.0.1", 5000), kubeconfig, clusters=2)
    assert exported_variables(state)["FLUX_CI_SANDBOX_CONTEXTS"] == "flux-ci-sandbox,flux-ci-sandbox-2"
    assert "FLUX_CI_SANDBOX_CONTEXTS" not in exported_variables(
        SandboxState(tmp_path, state.registry, kubeconfig)
    )


def test_up_with_two_clusters_reuses_only_two_and_down_stops_both(tmp_path: Path) -> None:
    state_dir = tmp_path / "sandbox"
    try:
        started = sandbox_cli(state_dir, "up", "--clusters", "2")
        assert started.returncode == 0, started.stderr
        state = load(state_dir)
        assert state is not None
        assert state.clusters == 2
        script = (
            '. "$1" && echo "$FLUX_CI_SANDBOX_CONTEXTS" && kubectl --context="$2" get namespace flux-system'
        )
        shell = run(["bash", "-c", script, "sh", started.stdout.strip(), "flux-ci-sandbox-2"], {})
        assert shell.returncode == 0, shell.stderr
        assert shell.stdout.splitlines()[0] == "flux-ci-sandbox,flux-ci-sandbox-2"
        assert reusable(state, anonymous=False, clusters=2)
        assert not reusable(state, anonymous=False, clusters=1)
        again = sandbox_cli(state_dir, "up", "--clusters", "2")
        assert "reusing" in again.stderr
        assert sandbox_cli(state_dir, "down").returncode == 0
    finally:
        down(state_dir)

    assert [r.name for r in state.processes][7:] == [
        "etcd-2", "kube-apiserver-2", "source-controller-2", "kustomize-controller-2", "helm-controller-2",
    ]  # fmt: skip
    assert not [r.name for r in state.processes if is_alive(r)]
    assert [port for port in state.ports if not port_is_free(port)] == []


def test_one_artifact_is_applied_by_each_cluster_on_its_own_api_server(
    sandbox: SandboxClient,
    second_cluster: SandboxClient,
    namespace: str,
    docker_config: Path,
    tmp_path: Path,
) -> None:
    assert (sandbox.context, second_cluster.context) == ("flux-ci-sandbox", "flux-ci-sandbox-2")
    assert second_cluster.kubeconfig == sandbox.kubeconfig
    repository = sandbox.unique_repository("two-clusters")
    pushed = sandbox.push_artifact(
        write_configmap(tmp_path / "m", "both"), repository, docker_config=docker_config
    )
    second_cluster.create_namespace(namespace)  # the same name, in another cluster
    try:
        for client in (sandbox, second_cluster):
            kustomization = wait_applied(
                client, client.deploy_oci(namespace, "app", repository), pushed.digest
            )
            assert (condition(kustomization, "Ready") or {}).get("status") == "True", client.context
            assert configmap_text(client, namespace) == "both"

        only_there = unique_name("only-on-cluster-2")
        second_cluster.create_namespace(only_there)
        missing = sandbox.kubectl("get", "namespace", only_there, check=False)
        assert missing.returncode == 1
        assert "NotFound" in missing.stderr
        assert api_server(sandbox) != api_server(second_cluster)
        assert sorted(second_cluster.log_tails()) == [
            "helm-controller-2",
            "kustomize-controller-2",
            "source-controller-2",
        ]
        assert "FLUX_CI_SANDBOX_CONTEXTS=flux-ci-sandbox,flux-ci-sandbox-2" in sandbox.env_file.read_text(
            encoding="utf-8"
        )
    finally:
        second_cluster.delete_namespace(namespace)


def api_server(client: SandboxClient) -> str:
    done = client.kubectl("config", "view", "--minify", "--output=jsonpath={.clusters[0].cluster.server}")
    return done.stdout


def test_second_cluster_helpers_act_on_its_own_processes_and_api_server(
    sandbox: SandboxClient, second_cluster: SandboxClient
) -> None:
    namespace = unique_name("rbac-on-cluster-2")
    second_cluster.create_namespace(namespace)
    context = second_cluster.namespaced_context(namespace, user=unique_name("gitlab-ci-job"))

    # The Role and RoleBinding exist in cluster 2 only: the context reaches cluster 2.
    assert second_cluster.can_i(context, "patch", "ocirepositories", namespace=namespace)
    assert sandbox.kubectl("get", "namespace", namespace, check=False).returncode == 1
    with second_cluster.paused("source-controller"):
        assert is_stopped(sandbox.state.process("source-controller-2"))
        assert not is_stopped(sandbox.state.process("source-controller"))
    assert not is_stopped(sandbox.state.process("source-controller-2"))
    second_cluster.delete_namespace(namespace)
