"""A handle on a running sandbox for tests and demos: run the real tools, create Flux objects."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests.sandbox import components, lifecycle, rbac
from tests.sandbox.charts import (
    HELM_CHART_LAYER_MEDIA_TYPE,
    HELM_CONFIG_MEDIA_TYPE,
    Chart,
    helm_config,
    package_chart,
)
from tests.sandbox.clusters import FIRST, Cluster
from tests.sandbox.controllers import (
    CONTROLLERS,
    HELM_SHARD,
    NO_DIGEST_TRACKING,
    NOTIFICATION_CONTROLLER,
    SHARD_LABEL,
    receiver_url,
)
from tests.sandbox.errors import SandboxError
from tests.sandbox.kube import add_impersonation_context
from tests.sandbox.procs import log_tail, wait_until
from tests.sandbox.state import ENV_FILE, SandboxState, child_env, load
from tests.sandbox.versions import tool_path

T = TypeVar("T")

SOURCE_API = "source.toolkit.fluxcd.io/v1"
KUSTOMIZE_API = "kustomize.toolkit.fluxcd.io/v1"
HELM_API = "helm.toolkit.fluxcd.io/v2"
NOTIFICATION_API = "notification.toolkit.fluxcd.io/v1"
PULL_SECRET = "registry-auth"


def slug(text: str, limit: int = 40) -> str:
    """Lowercase letters, digits and single dashes: valid in namespace and repository names."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "x"


def unique_name(hint: str) -> str:
    """A DNS-1123 label that no other test uses: `<hint>-<random hex>`."""
    return f"{slug(hint)}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class PushResult:
    """The JSON `flux push artifact -o json` prints."""

    url: str
    repository: str
    tag: str
    digest: str


@dataclass(frozen=True)
class ChartPush:
    """A Helm OCI chart pushed with `oras push` (what `helm push` writes)."""

    reference: str  # <host>/<repository>@sha256:...
    repository: str
    tag: str
    digest: str


@dataclass(frozen=True)
class HelmDeployment:
    """An OCIRepository and a HelmRelease of the same name installing the chart it holds."""

    namespace: str
    name: str
    url: str
    tag: str
    target_namespace: str
    digest_tracking: bool


@dataclass(frozen=True)
class OciDeployment:
    """An OCIRepository and a Kustomization of the same name that applies it."""

    namespace: str
    name: str
    url: str
    tag: str
    target_namespace: str


class SandboxClient:
    """Everything a test needs to talk to one cluster of a running sandbox (and its registry).

    `cluster` 1 is the sandbox's first cluster, 2 its second (see `start_second_cluster`): every
    kubectl and flux call names the cluster's context, and pause, stop, restart and log_tails act
    on that cluster's processes (the registry is shared). Clients of one sandbox share its state.
    """

    def __init__(self, state: SandboxState, cluster: int = 1) -> None:
        if not 1 <= cluster <= state.clusters:
            raise SandboxError(f"the sandbox in {state.state_dir} runs no cluster {cluster}")
        self.state = state
        self.cluster = Cluster(cluster)
        # The kube context a flux-ci run uses for this cluster (FLUX_CI_KUBE_CONTEXT).
        self.context: str = self.cluster.context
        self.state_dir: Path = state.state_dir
        # One kubeconfig with a context for every cluster (KUBECONFIG).
        self.kubeconfig: Path = state.kubeconfig
        self.env_file: Path = state.state_dir / ENV_FILE
        self.registry: str = state.registry.address
        self.registry_user: str = state.registry.user
        self.registry_password: str = state.registry.password
        self.anonymous: bool = state.registry.anonymous
        # PATH with the pinned tools first, KUBECONFIG and the FLUX_CI_* registry variables.
        self.env: dict[str, str] = child_env(state)

    @classmethod
    def from_state_dir(cls, state_dir: Path, cluster: int = 1) -> SandboxClient:
        state = load(state_dir)
        if state is None:
            raise SandboxError(f"no sandbox in {state_dir}: run `python -m tests.sandbox up`")
        return cls(state, cluster)

    def start_second_cluster(self) -> SandboxClient:
        """Start the sandbox's second cluster unless it runs; a client bound to it."""
        return self.start_cluster(2)

    def start_cluster(self, number: int) -> SandboxClient:
        """Start the sandbox's clusters up to `number` unless they run; a client bound to that one.

        They join this sandbox (same state, same registry), so `down` and the test session's end
        stop them with everything else.
        """
        lifecycle.add_cluster(self.state, up_to=number)
        return SandboxClient(self.state, cluster=number)

    # -- running the real tools -------------------------------------------------------------

    def run(
        self,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        input_text: str | None = None,
        timeout: float = 120,
        check: bool = False,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command with the sandbox env (plus `env` overrides), output captured as text."""
        return subprocess.run(
            argv,
            env=self.env | dict(env or {}),
            cwd=cwd,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def _tool(
        self,
        tool: str,
        args: tuple[str, ...],
        *,
        check: bool,
        timeout: float,
        env: Mapping[str, str] | None = None,
        input_text: str | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a pinned tool; with check, a failure raises with the tool's own stderr."""
        argv = [str(tool_path(tool)), *args]
        done = self.run(argv, env=env, input_text=input_text, timeout=timeout, cwd=cwd)
        if check and done.returncode != 0:
            raise SandboxError(
                f"{tool} {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr.strip()}"
            )
        return done

    def kubectl(
        self, *args: str, input_text: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self._tool(
            "kubectl", self._on_cluster(args), check=check, timeout=timeout, input_text=input_text
        )

    def _on_cluster(self, args: tuple[str, ...]) -> tuple[str, ...]:
        """The client's context first: a `--context` in `args` comes later and wins (as flags do)."""
        return (f"--context={self.context}", *args)

    def flux(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        return self._tool("flux", self._on_cluster(args), check=check, timeout=timeout, env=env)

    def oras(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        input_text: str | None = None,
        check: bool = True,
        timeout: float = 120,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return self._tool("oras", args, check=check, timeout=timeout, env=env, input_text=input_text, cwd=cwd)

    # -- Kubernetes objects -----------------------------------------------------------------

    def apply(self, yaml_text: str, namespace: str | None = None) -> subprocess.CompletedProcess[str]:
        """kubectl apply of a manifest text (YAML, or JSON documents joined by ---)."""
        args = ["apply", "-f", "-"] + ([f"--namespace={namespace}"] if namespace else [])
        return self.kubectl(*args, input_text=yaml_text)

    def as_json(self, yaml_text: str) -> str:
        """The objects of a YAML manifest as kubectl reads them (JSON), created nowhere."""
        done = self.kubectl("create", "--dry-run=client", "--output=json", "-f", "-", input_text=yaml_text)
        return done.stdout

    def get_json(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        args = ["get", resource, name, "-o", "json"] + ([f"-n={namespace}"] if namespace else [])
        data: dict[str, Any] = json.loads(self.kubectl(*args).stdout)
        return data

    def find_json(self, resource: str, name: str, namespace: str) -> dict[str, Any] | None:
        """Like get_json, but None while the object does not exist."""
        done = self.kubectl("get", resource, name, "-n", namespace, "-o", "json", check=False)
        if done.returncode != 0:
            if "NotFound" in done.stderr:
                return None
            raise SandboxError(f"kubectl get {resource} {name} failed: {done.stderr.strip()}")
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    def create_namespace(self, name: str) -> None:
        self.apply(json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))

    def delete_namespace(self, name: str) -> None:
        """Delete the Flux objects, then the namespace.

        There is no controller-manager, so the namespace itself stays Terminating; deleting the
        Kustomizations and HelmReleases first lets their controllers prune or uninstall what they
        applied and stop work.
        """
        self.kubectl(
            "delete", "kustomizations,helmreleases,ocirepositories,receivers", "--all", "-n", name,
            "--wait=false", check=False,
        )  # fmt: skip
        self.kubectl("delete", "namespace", name, "--wait=false", check=False)

    # -- registry ---------------------------------------------------------------------------

    def oci_url(self, repository: str) -> str:
        return f"oci://{self.registry}/{repository}"

    def unique_repository(self, hint: str = "e2e") -> str:
        """A repository path no other test pushes to."""
        return f"e2e/{unique_name(hint)}"

    def login(self, docker_config_dir: Path) -> Path:
        """`oras login` into docker_config_dir/config.json; give it to flux as DOCKER_CONFIG.

        The password goes in on stdin, never in argv.
        """
        docker_config_dir.mkdir(parents=True, exist_ok=True)
        config = docker_config_dir / "config.json"
        self.oras(
            "login", self.registry, "--plain-http", "--username", self.registry_user,
            "--password-stdin", "--registry-config", str(config),
            input_text=self.registry_password,
        )  # fmt: skip
        return docker_config_dir

    def push_artifact(
        self,
        path: Path,
        repository: str,
        *,
        docker_config: Path | None,
        tag: str = "latest",
        revision: str = "main@sha1:0000000000000000000000000000000000000000",
    ) -> PushResult:
        """The real `flux push artifact`; credentials only through DOCKER_CONFIG."""
        env = {"DOCKER_CONFIG": str(docker_config)} if docker_config else None
        done = self.flux(
            "push", "artifact", f"{self.oci_url(repository)}:{tag}", f"--path={path}",
            "--source=https://example.invalid/flux-ci-sandbox", f"--revision={revision}",
            "--insecure-registry", "--output=json",
            env=env,
        )  # fmt: skip
        pushed = json.loads(done.stdout)
        return PushResult(pushed["url"], pushed["repository"], pushed["tag"], pushed["digest"])

    def push_helm_chart(
        self, chart: Chart, repository: str, *, docker_config: Path | None, workdir: Path, tag: str = ""
    ) -> ChartPush:
        """Push a packaged chart as a Helm OCI artifact with the real oras (tag: the chart version).

        Config and layer carry Helm's media types; `workdir` receives the package and the config
        file, and oras runs there so the layer's title is the package's file name, as Helm's is.
        """
        tag = tag or chart.version.replace("+", "_")  # OCI tags cannot hold '+', Helm writes '_'
        package = package_chart(chart, workdir)
        (workdir / "config.json").write_text(helm_config(chart), encoding="utf-8")
        registry_config = ["--registry-config", str(docker_config / "config.json")] if docker_config else []
        done = self.oras(
            "push", f"{self.registry}/{repository}:{tag}", "--plain-http", *registry_config,
            "--config", f"config.json:{HELM_CONFIG_MEDIA_TYPE}",
            f"{package.name}:{HELM_CHART_LAYER_MEDIA_TYPE}", "--format", "json",
            cwd=workdir,
        )  # fmt: skip
        pushed = json.loads(done.stdout)
        return ChartPush(pushed["reference"], repository, tag, pushed["digest"])

    # -- Flux objects -----------------------------------------------------------------------

    def pull_secret_manifest(self, namespace: str, name: str = PULL_SECRET) -> dict[str, Any]:
        """A kubernetes.io/dockerconfigjson Secret, built here so no password reaches argv."""
        auth = base64.b64encode(f"{self.registry_user}:{self.registry_password}".encode()).decode()
        entry = {"username": self.registry_user, "password": self.registry_password, "auth": auth}
        config = json.dumps({"auths": {self.registry: entry}})
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": name, "namespace": namespace},
            "data": {".dockerconfigjson": base64.b64encode(config.encode()).decode()},
        }

    def create_pull_secret(self, namespace: str, name: str = PULL_SECRET) -> str:
        self.apply(json.dumps(self.pull_secret_manifest(namespace, name)))
        return name

    def oci_source(
        self,
        namespace: str,
        name: str,
        repository: str,
        *,
        tag: str,
        interval: str,
        layer_selector: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """An OCIRepository (with a pull secret unless the registry is anonymous)."""
        source: dict[str, Any] = {
            "interval": interval,
            "url": self.oci_url(repository),
            "ref": {"tag": tag},
            "insecure": True,  # the sandbox registry speaks plain HTTP
        }
        if layer_selector:
            source["layerSelector"] = dict(layer_selector)
        if not self.anonymous:
            source["secretRef"] = {"name": self.create_pull_secret(namespace)}
        return _flux_object(SOURCE_API, "OCIRepository", name, namespace, source)

    def deploy_oci(
        self,
        namespace: str,
        name: str,
        repository: str,
        *,
        tag: str = "latest",
        path: str = "./",
        target_namespace: str | None = None,
        interval: str = "10m",
        prune: bool = True,
    ) -> OciDeployment:
        """Pull secret (unless anonymous) + OCIRepository + Kustomization applying it."""
        source = self.oci_source(namespace, name, repository, tag=tag, interval=interval)
        target = target_namespace or namespace
        kustomization = {
            "interval": interval,
            "sourceRef": {"kind": "OCIRepository", "name": name},
            "path": path,
            "prune": prune,
            "targetNamespace": target,
        }
        documents = [source, _flux_object(KUSTOMIZE_API, "Kustomization", name, namespace, kustomization)]
        self.apply("\n---\n".join(json.dumps(doc) for doc in documents))
        return OciDeployment(namespace, name, self.oci_url(repository), tag, target)

    def deploy_helm(
        self,
        namespace: str,
        name: str,
        repository: str,
        *,
        tag: str = "latest",
        layer_selector: Mapping[str, str] | None = None,
        target_namespace: str | None = None,
        values: Mapping[str, Any] | None = None,
        interval: str = "10m",
        digest_tracking: bool = True,
    ) -> HelmDeployment:
        """Pull secret + OCIRepository + HelmRelease installing its chart through `spec.chartRef`.

        layer_selector: None for a `flux push artifact` of a directory holding the chart;
        charts.HELM_CHART_LAYER_SELECTOR for a Helm OCI chart (`push_helm_chart`).
        digest_tracking=False hands the HelmRelease to the second helm-controller, started now if
        needed, which runs with DisableChartDigestTracking=true.
        """
        source = self.oci_source(
            namespace, name, repository, tag=tag, interval=interval, layer_selector=layer_selector
        )
        target = target_namespace or namespace
        release: dict[str, Any] = {
            "interval": interval,
            "chartRef": {"kind": "OCIRepository", "name": name},
            "targetNamespace": target,
            "releaseName": name,  # default <targetNamespace>-<name>: keep the names short and known
        }
        if values:
            release["values"] = dict(values)
        helm_release = _flux_object(HELM_API, "HelmRelease", name, namespace, release)
        if not digest_tracking:
            self.start_helm_shard()
            helm_release["metadata"]["labels"] = {SHARD_LABEL: NO_DIGEST_TRACKING}
        self.apply("\n---\n".join(json.dumps(doc) for doc in (source, helm_release)))
        return HelmDeployment(namespace, name, self.oci_url(repository), tag, target, digest_tracking)

    def create_receiver(
        self,
        namespace: str,
        name: str,
        resources: Sequence[Mapping[str, str]],
        *,
        receiver_type: str = "generic",
        token: str | None = None,
    ) -> str:
        """A Receiver of `receiver_type` asking Flux to reconcile `resources`, Ready; returns its token.

        `resources` are CrossNamespaceObjectReferences (`{"kind": "OCIRepository", "name": "app"}`).
        The token lives in a Secret (key `token`) named like the Receiver; the manifests go to
        kubectl on stdin, so the token never reaches an argv. Its webhook is `receiver_url` +
        `status.webhookPath`.
        """
        token = token or secrets.token_hex(16)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{name}-token", "namespace": namespace},
            "stringData": {"token": token},
        }
        spec = {
            "type": receiver_type,
            "resources": [dict(resource) for resource in resources],
            "secretRef": {"name": f"{name}-token"},
        }
        receiver = _flux_object(NOTIFICATION_API, "Receiver", name, namespace, spec)
        self.apply("\n---\n".join(json.dumps(doc) for doc in (secret, receiver)))
        self.wait_condition(
            "receivers.notification.toolkit.fluxcd.io", name, namespace,
            lambda obj: (condition(obj, "Ready") or {}).get("status") == "True"
            and bool(obj.get("status", {}).get("webhookPath")),
            timeout=60, what="Ready with a webhook path",
        )  # fmt: skip
        return token

    @property
    def receiver_url(self) -> str:
        """notification-controller's webhook server, e.g. `http://127.0.0.1:40123` (no path)."""
        return receiver_url(self.state.process(self._process(NOTIFICATION_CONTROLLER)))

    def start_helm_shard(self) -> None:
        """Run the helm-controller with DisableChartDigestTracking=true (idempotent)."""
        if self.cluster != FIRST:
            raise SandboxError("the helm-controller without digest tracking runs on the first cluster only")
        components.ensure_helm_shard(self.state)

    # -- RBAC -------------------------------------------------------------------------------

    def namespaced_context(
        self,
        namespace: str,
        *,
        user: str = "gitlab:ci_job:4242",
        groups: Sequence[str] = (),
        role_yaml: str | None = None,
    ) -> str:
        """A kube context acting as `user`, allowed exactly what flux-ci's Role allows in `namespace`.

        Applies the Role and RoleBinding of examples/rbac/flux-ci.yaml (or of `role_yaml`) into the
        namespace, bound to `user`, and adds a context to the sandbox kubeconfig that impersonates
        that user (and `groups`), as a GitLab agent does for a CI job. Returns the context's name
        (`<user>@<namespace>`; on another cluster than the first `<user>@<cluster context>/<namespace>`).
        """
        manifest = role_yaml or rbac.ROLE_FILE.read_text(encoding="utf-8")
        objects = rbac.namespaced_objects(self.as_json(manifest), namespace=namespace, user=user)
        self.apply("\n---\n".join(json.dumps(obj) for obj in objects))
        where = namespace if self.cluster == FIRST else f"{self.context}/{namespace}"
        return add_impersonation_context(
            self.kubeconfig, f"{user}@{where}", user=user, groups=groups, admin_context=self.context
        )

    def grant_cluster_read(self, user: str) -> None:
        """Apply examples/rbac/flux-ci-cluster-read.yaml for `user`: read Flux objects everywhere."""
        manifest = rbac.CLUSTER_READ_FILE.read_text(encoding="utf-8")
        objects = rbac.cluster_objects(self.as_json(manifest), user=user)
        self.apply("\n---\n".join(json.dumps(obj) for obj in objects))

    def can_i(self, context: str, verb: str, resource: str, *, namespace: str | None = None) -> bool:
        """`kubectl auth can-i` as that context; namespace None asks about all namespaces."""
        where = [f"--namespace={namespace}"] if namespace else ["--all-namespaces"]
        done = self.kubectl("auth", "can-i", verb, resource, f"--context={context}", *where, check=False)
        answer = done.stdout.strip()
        if answer not in ("yes", "no"):
            raise SandboxError(f"kubectl auth can-i {verb} {resource} failed: {done.stderr.strip()}")
        return answer == "yes"

    # -- fault injection --------------------------------------------------------------------

    def _process(self, component: str) -> str:
        """The process of this client's cluster running `component` (`kube-apiserver-2` on cluster 2)."""
        return self.cluster.process_name(component)

    def pause(self, component: str) -> None:
        """Freeze a component (SIGSTOP on its process group): it holds its sockets, answers nothing."""
        components.pause(self.state, self._process(component))

    def resume(self, component: str) -> None:
        components.resume(self.state, self._process(component))

    @contextlib.contextmanager
    def paused(self, component: str) -> Iterator[None]:
        """`with sandbox.paused("source-controller"): ...`, resumed on the way out (also on errors)."""
        self.pause(component)
        try:
            yield
        finally:
            self.resume(component)

    def stop(self, component: str) -> None:
        """Stop a component: its port refuses connections until `restart`."""
        components.stop(self.state, self._process(component))

    def restart(self, component: str) -> float:
        """(Stop and) start a component again, same port and config; seconds until healthy."""
        return components.restart(self.state, self._process(component))

    # -- waiting and diagnostics ------------------------------------------------------------

    def wait_for(self, check: Callable[[], T | None], *, timeout: float, what: str) -> T:
        """Poll `check` until it returns something truthy, TimeoutError naming `what`."""
        return wait_until(check, timeout=timeout, what=what, interval=0.5)

    def wait_condition(
        self, resource: str, name: str, namespace: str, check: Callable[[dict[str, Any]], bool], *,
        timeout: float = 120, what: str,
    ) -> dict[str, Any]:  # fmt: skip
        """The object once `check(object)` holds (a missing object does not)."""

        def holds() -> dict[str, Any] | None:
            obj = self.find_json(resource, name, namespace)
            return obj if obj is not None and check(obj) else None

        return self.wait_for(holds, timeout=timeout, what=f"{resource} {namespace}/{name}: {what}")

    def wait_helm_release(
        self, deployment: HelmDeployment, *, attempted: str, ready: str = "True", timeout: float = 120
    ) -> dict[str, Any]:
        """The HelmRelease once it attempted the chart version `attempted` and has settled with
        Ready=`ready` for its current generation."""

        def settled(obj: dict[str, Any]) -> bool:
            status = obj.get("status", {})
            ready_now = condition(obj, "Ready") or {}
            return (
                status.get("lastAttemptedRevision") == attempted
                and ready_now.get("status") == ready
                and status.get("observedGeneration") == obj["metadata"]["generation"]
            )

        what = f"{attempted} attempted, Ready={ready}"
        return self.wait_condition(
            "helmrelease", deployment.name, deployment.namespace, settled, timeout=timeout, what=what
        )

    def log_tails(self, lines: int = 40) -> dict[str, str]:
        """The last lines of each controller's log on this client's cluster, for failure reports."""
        running = {record.name for record in self.state.processes}
        names = [self._process(name) for name in (*CONTROLLERS, HELM_SHARD)]
        names = [name for name in names if name in running]
        return {name: log_tail(self.state.process(name).log, lines) for name in names}


def condition(obj: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    """The status condition of type `kind` (e.g. "Ready"), or None."""
    for cond in obj.get("status", {}).get("conditions", []):
        if cond.get("type") == kind:
            found: dict[str, Any] = cond
            return found
    return None


def _flux_object(
    api_version: str, kind: str, name: str, namespace: str, spec: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
