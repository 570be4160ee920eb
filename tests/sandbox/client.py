"""A handle on a running sandbox for tests and demos: run the real tools, create Flux objects."""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests.sandbox.controllers import CONTROLLERS
from tests.sandbox.errors import SandboxError
from tests.sandbox.procs import log_tail, wait_until
from tests.sandbox.state import ENV_FILE, SandboxState, child_env, load
from tests.sandbox.versions import tool_path

T = TypeVar("T")

SOURCE_API = "source.toolkit.fluxcd.io/v1"
KUSTOMIZE_API = "kustomize.toolkit.fluxcd.io/v1"
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
class OciDeployment:
    """An OCIRepository and a Kustomization of the same name that applies it."""

    namespace: str
    name: str
    url: str
    tag: str
    target_namespace: str


class SandboxClient:
    """Everything a test needs to talk to one running sandbox."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.state_dir: Path = state.state_dir
        self.kubeconfig: Path = state.kubeconfig
        self.env_file: Path = state.state_dir / ENV_FILE
        self.registry: str = state.registry.address
        self.registry_user: str = state.registry.user
        self.registry_password: str = state.registry.password
        self.anonymous: bool = state.registry.anonymous
        # PATH with the pinned tools first, KUBECONFIG and the FLUX_CI_* registry variables.
        self.env: dict[str, str] = child_env(state)

    @classmethod
    def from_state_dir(cls, state_dir: Path) -> SandboxClient:
        state = load(state_dir)
        if state is None:
            raise SandboxError(f"no sandbox in {state_dir}: run `python -m tests.sandbox up`")
        return cls(state)

    # -- running the real tools -------------------------------------------------------------

    def run(
        self,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        input_text: str | None = None,
        timeout: float = 120,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command with the sandbox env (plus `env` overrides), output captured as text."""
        return subprocess.run(
            argv,
            env=self.env | dict(env or {}),
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
    ) -> subprocess.CompletedProcess[str]:
        """Run a pinned tool; with check, a failure raises with the tool's own stderr."""
        done = self.run([str(tool_path(tool)), *args], env=env, input_text=input_text, timeout=timeout)
        if check and done.returncode != 0:
            raise SandboxError(
                f"{tool} {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr.strip()}"
            )
        return done

    def kubectl(
        self, *args: str, input_text: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self._tool("kubectl", args, check=check, timeout=timeout, input_text=input_text)

    def flux(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        return self._tool("flux", args, check=check, timeout=timeout, env=env)

    def oras(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        input_text: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        return self._tool("oras", args, check=check, timeout=timeout, env=env, input_text=input_text)

    # -- Kubernetes objects -----------------------------------------------------------------

    def apply(self, yaml_text: str, namespace: str | None = None) -> subprocess.CompletedProcess[str]:
        """kubectl apply of a manifest text (YAML, or JSON documents joined by ---)."""
        args = ["apply", "-f", "-"] + ([f"--namespace={namespace}"] if namespace else [])
        return self.kubectl(*args, input_text=yaml_text)

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
        Kustomizations first lets kustomize-controller prune what they applied and stop work.
        """
        self.kubectl(
            "delete", "kustomizations,ocirepositories", "--all", "-n", name, "--wait=false",
            check=False,
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
        source: dict[str, Any] = {
            "interval": interval,
            "url": self.oci_url(repository),
            "ref": {"tag": tag},
            "insecure": True,  # the sandbox registry speaks plain HTTP
        }
        if not self.anonymous:
            source["secretRef"] = {"name": self.create_pull_secret(namespace)}
        target = target_namespace or namespace
        kustomization = {
            "interval": interval,
            "sourceRef": {"kind": "OCIRepository", "name": name},
            "path": path,
            "prune": prune,
            "targetNamespace": target,
        }
        documents = [
            _flux_object(SOURCE_API, "OCIRepository", name, namespace, source),
            _flux_object(KUSTOMIZE_API, "Kustomization", name, namespace, kustomization),
        ]
        self.apply("\n---\n".join(json.dumps(doc) for doc in documents))
        return OciDeployment(namespace, name, self.oci_url(repository), tag, target)

    # -- waiting and diagnostics ------------------------------------------------------------

    def wait_for(self, check: Callable[[], T | None], *, timeout: float, what: str) -> T:
        """Poll `check` until it returns something truthy, TimeoutError naming `what`."""
        return wait_until(check, timeout=timeout, what=what, interval=0.5)

    def log_tails(self, lines: int = 40) -> dict[str, str]:
        """The last lines of each controller's log, for failure reports."""
        return {name: log_tail(self.state.process(name).log, lines) for name in CONTROLLERS}


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
