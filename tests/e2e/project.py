"""One CI project in the sandbox: its manifests, its namespace, and flux-ci run as a pipeline runs it."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.sandbox import SandboxClient
from tests.sandbox.versions import tool_path

ROOT = Path(__file__).parent.parent.parent
REVISION = "main@sha1:1111111111111111111111111111111111111111"
KUSTOMIZATIONS = "kustomizations.kustomize.toolkit.fluxcd.io"
OCIREPOSITORIES = "ocirepositories.source.toolkit.fluxcd.io"


# Set to a file path to append one JSON line per flux-ci run (test, command, exit code, seconds):
# the figures behind a closing note's scenario table. Off by default.
SCENARIO_LOG = os.environ.get("E2E_SCENARIO_LOG")


@dataclass(frozen=True)
class Run:
    exit_code: int
    stdout: str
    stderr: str
    seconds: float

    def __post_init__(self) -> None:
        if SCENARIO_LOG:
            test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
            line = {"test": test, "exit_code": self.exit_code, "seconds": round(self.seconds, 2)}
            with open(SCENARIO_LOG, "a", encoding="utf-8") as log:
                log.write(json.dumps(line) + "\n")

    def json(self) -> dict[str, Any]:
        data = json.loads(self.stdout)
        assert isinstance(data, dict)
        return data


@dataclass
class Running:
    """flux-ci started in the background; stderr is read as it comes, so a test can wait for a step."""

    process: subprocess.Popen[str]
    started: float
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def wait_for_line(self, text: str, timeout: float = 60) -> str:
        """Block until flux-ci prints a stderr line containing `text` (AssertionError if it never does)."""
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"flux-ci never printed {text!r}; it printed:\n{''.join(self.seen)}")

    def finish(self, timeout: float = 120) -> Run:
        # The reader owns stderr until its end: closing it under the reader (as communicate()
        # would) makes the reader fail instead of draining the last lines.
        self.process.wait(timeout=timeout)
        if self.reader is not None:
            self.reader.join(timeout=10)
        assert self.process.stdout is not None
        stdout = self.process.stdout.read()
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return Run(self.process.returncode, stdout, "".join(self.seen), time.monotonic() - self.started)


@dataclass
class Project:
    """One CI project deploying into one namespace through one OCIRepository + Kustomization."""

    sandbox: SandboxClient
    namespace: str
    repository: str
    manifests: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "FLUX_CI_REPOSITORY": self.sandbox.oci_url(self.repository),
            "FLUX_CI_PATH": str(self.manifests),
            "FLUX_CI_TAG": "c1",
            "FLUX_CI_SOURCE": "https://git.example/flux-ci-e2e",
            "FLUX_CI_REVISION": REVISION,
            "FLUX_CI_NAMESPACE": self.namespace,
            "FLUX_CI_TIMEOUT": "120s",
            "FLUX_CI_OUTPUT": "json",
            **extra,
        }

    def write(self, greeting: str, *, extra_yaml: str = "") -> None:
        for old in self.manifests.glob("*.yaml"):
            old.unlink()
        (self.manifests / "configmap.yaml").write_text(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\ndata:\n  greeting: {greeting}\n"
        )
        if extra_yaml:
            (self.manifests / "extra.yaml").write_text(extra_yaml)

    def flux_ci(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 180) -> Run:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "flux_ci", *args],
            env=child_env(self.sandbox, env or self.env()),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            check=False,
        )
        return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)

    def start(self, *args: str, env: Mapping[str, str] | None = None) -> Running:
        """flux-ci in the background (with -v progress on stderr), for tests that act meanwhile."""
        process = subprocess.Popen(
            [sys.executable, "-m", "flux_ci", *args],
            env=child_env(self.sandbox, env or self.env()),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        return Running(process, time.monotonic())

    def deploy_losing_the_api_server(
        self, cluster: SandboxClient, env: Mapping[str, str], waiting: str
    ) -> Run:
        """`-v deploy` whose `cluster` loses its API server once flux-ci waits there (the stderr line
        `waiting`); that cluster's kustomize-controller is paused so it cannot finish first. Both
        come back afterwards, whatever happened."""
        cluster.pause("kustomize-controller")
        try:
            running = self.start("-v", "deploy", env=env)
            running.wait_for_line(waiting)
            cluster.stop("kube-apiserver")
            return running.finish()
        finally:
            cluster.restart("kube-apiserver")
            cluster.resume("kustomize-controller")

    def kustomization(self, name: str = "app") -> dict[str, Any]:
        return self.sandbox.get_json(KUSTOMIZATIONS, name, self.namespace)

    def source(self, name: str = "app") -> dict[str, Any]:
        return self.sandbox.get_json(OCIREPOSITORIES, name, self.namespace)

    def patch(self, resource: str, name: str, patch: Mapping[str, Any]) -> None:
        self.sandbox.kubectl(
            "patch", resource, name, "-n", self.namespace, "--type=merge", f"--patch={json.dumps(patch)}"
        )

    def configmap_greeting(self) -> str | None:
        found = self.sandbox.find_json("configmap", "greeting", self.namespace)
        return None if found is None else str(found["data"]["greeting"])

    def resolve(self, tag: str) -> str:
        ref = f"{self.sandbox.registry}/{self.repository}:{tag}"
        done = self.sandbox.oras(*self._resolve_args(ref))
        return done.stdout.strip()

    def tag_digest(self, tag: str) -> str | None:
        """The digest `tag` names, or None when the registry says it has no such tag (see `absent`:
        any other failure to ask fails the test)."""
        ref = f"{self.sandbox.registry}/{self.repository}:{tag}"
        done = self.sandbox.oras(*self._resolve_args(ref), check=False)
        if done.returncode == 0:
            return done.stdout.strip()
        # oras 1.3.6, for a missing tag and a missing repository alike:
        # `Error response from registry: failed to resolve digest: <ref>: not found`
        assert done.stderr.rstrip().endswith(": not found"), (
            f"could not ask the registry about {ref}: {done.stderr}"
        )
        return None

    def absent(self, tag: str) -> bool:
        """Whether the registry says the tag does not exist: the one way a test checks that nothing
        was pushed. Asked WITH credentials (without them the sandbox registry answers 401 whether
        or not the tag exists); only oras's `not found` means absent, and any other failure (the
        registry down, credentials refused) fails the test: "could not ask" is never "absent"."""
        return self.tag_digest(tag) is None

    def pushed(self, tag: str) -> bool:
        """The tag exists (the registry answered; see `absent`)."""
        return not self.absent(tag)

    def _resolve_args(self, ref: str) -> tuple[str, ...]:
        config = self.manifests.parent / "resolve-config"
        if not (config / "config.json").exists():  # logged in once: a later question needs no login
            self.sandbox.login(config)
        return ("resolve", ref, "--plain-http", "--registry-config", str(config / "config.json"))


def child_env(sandbox: SandboxClient, flux_ci_env: Mapping[str, str]) -> dict[str, str]:
    """The sandbox's PATH/KUBECONFIG/registry credentials, no other FLUX_CI_ or CI_ variable."""
    base = {k: v for k, v in sandbox.env.items() if _passed_on(k)}
    return {**base, "PYTHONPATH": str(ROOT), **flux_ci_env}


# The sandbox env carries the registry credentials as FLUX_CI_REGISTRY_* (a pipeline's secrets);
# its other FLUX_CI_SANDBOX_* variables are for people, not flux-ci.
_SANDBOX_KEEP = ("FLUX_CI_REGISTRY_USER", "FLUX_CI_REGISTRY_PASSWORD", "FLUX_CI_INSECURE_REGISTRY")


def _passed_on(name: str) -> bool:
    if name.startswith(("CI_", "GITLAB_", "GITHUB_")):
        return False
    return not name.startswith("FLUX_CI_") or name in _SANDBOX_KEEP


class Recorder:
    """A real `kubectl get --watch` of one object kind in the test's namespace, kept whole: what the
    controllers wrote, in order (and, where a test says so, saved as a golden recording)."""

    def __init__(self, sandbox: SandboxClient, resource: str, namespace: str) -> None:
        argv = [str(tool_path("kubectl")), f"--context={sandbox.context}", "get", resource,
                f"--namespace={namespace}", "--output=json", "--watch", "--output-watch-events"]  # fmt: skip
        self.process = subprocess.Popen(argv, env=sandbox.env, stdout=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def objects(self) -> list[dict[str, Any]]:
        return [json.loads(line)["object"] for line in list(self.lines) if line.strip()]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.reader.join(timeout=10)


READ_ONLY_USER = "read-only-ci"


def read_only_role(user: str = READ_ONLY_USER) -> str:
    """A Role with get/list/watch on the Flux objects and no patch, bound to `user`: a pipeline that
    may read the cluster but not change it."""
    return (
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: flux-ci-read-only\n"
        "rules:\n- apiGroups:\n  - source.toolkit.fluxcd.io\n  - kustomize.toolkit.fluxcd.io\n"
        "  - helm.toolkit.fluxcd.io\n"
        "  resources: [ocirepositories, kustomizations, helmreleases]\n  verbs: [get, list, watch]\n"
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n"
        "metadata:\n  name: flux-ci-read-only\n"
        "roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: flux-ci-read-only\n"
        f"subjects:\n- apiGroup: rbac.authorization.k8s.io\n  kind: User\n  name: {user}\n"
    )
