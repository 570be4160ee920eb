"""The deploys the benchmark times, in one private sandbox: flux-ci (A) and the two workarounds.

- A: `python -m flux_ci -v deploy`, configured by environment variables, JSON report on stdout.
- W1, the common workaround: `flux push artifact`, `flux tag artifact`,
  `flux reconcile kustomization <name> --with-source` (it trusts Ready, not the digest).
- W2, the exact workaround: `flux push artifact -o json`, `oras tag`, `flux reconcile source oci`,
  `kubectl wait --for=jsonpath={.status.lastAppliedRevision}=<tag>@<digest>`.

Every deploy pushes a change of the same size (one ConfigMap value naming the round and variant) to
the repository the OCIRepositories follow with the tag `latest`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.observe import Observed, ReadyWatch, observe
from tests.sandbox import SandboxClient
from tests.sandbox.versions import tool_path

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZATIONS = "kustomizations.kustomize.toolkit.fluxcd.io"
DEPLOY_SLACK_S = 60  # beyond flux-ci's own deadline: only keeps the benchmark alive
STEP_TIMEOUT_S = 150
TAG = "latest"  # the tag every OCIRepository here follows


@dataclass
class App:
    """One repository, the OCIRepositories following it and the Kustomizations applying them."""

    namespace: str
    repository: str
    sources: list[str]
    consumers: list[str]
    manifests: Path
    watch: ReadyWatch | None = None


@dataclass
class Outcome:
    """One timed deploy by any variant."""

    variant: str
    wall_s: float
    ok: bool
    digest: str = ""
    error: str = ""
    ended_at: float = 0.0
    observed: Observed | None = None  # A only
    report: dict[str, Any] = field(default_factory=dict)  # A only


class Bench:
    """The sandbox, a logged-in registry config, and how to run each variant against an App."""

    def __init__(self, client: SandboxClient, work: Path) -> None:
        self.client = client
        self.work = work
        self.docker_config = client.login(work / "docker-config")
        self.tools = {name: str(tool_path(name)) for name in ("flux", "oras", "kubectl")}
        # The sandbox's PATH, KUBECONFIG and registry variables; no CI variable of the real job.
        self.env = {k: v for k, v in client.env.items() if not k.startswith(("CI_", "GITLAB_", "GITHUB_"))}

    # -- setting up ---------------------------------------------------------------------------

    def app(self, namespace: str, *, sources: int, per_source: int) -> App:
        """A namespace with `sources` OCIRepositories following one repository, each applied by
        `per_source` Kustomizations with their own namePrefix (so nothing collides)."""
        client = self.client
        client.create_namespace(namespace)
        secret = None if client.anonymous else client.create_pull_secret(namespace)
        repository = f"bench/{namespace}"
        source_names = ["app"] if sources == 1 else [f"src{k}" for k in range(sources)]
        documents, consumers = [], []
        for source in source_names:
            documents.append(self._source(namespace, source, repository, secret))
            for index in range(per_source):
                name = source if index == 0 and sources == 1 else f"{source}-c{index:02d}"
                prefix = "" if name == source else f"{name}-"
                documents.append(_kustomization(namespace, name, source, prefix))
                consumers.append(name)
        client.apply("\n---\n".join(json.dumps(doc) for doc in documents))
        manifests = self.work / namespace
        manifests.mkdir(parents=True, exist_ok=True)
        app = App(namespace, repository, source_names, consumers, manifests)
        app.watch = ReadyWatch(self.tools["kubectl"], namespace, self.env)
        return app

    def _source(self, namespace: str, name: str, repository: str, secret: str | None) -> dict[str, Any]:
        return source_object(self.client, namespace, name, repository, secret)

    # -- the variants -------------------------------------------------------------------------

    def flux_ci(
        self,
        app: App,
        label: str,
        *,
        sample: bool = True,
        extra: Mapping[str, str] | None = None,
        root: Path = ROOT,
        deadline_s: int = 120,
    ) -> Outcome:
        """A: `flux-ci -v deploy` (the trace counts and times its children); `extra`: more variables
        (the clusters of a fleet, waves); `root`: the checkout whose flux_ci runs (another commit's,
        to compare before and after in one sandbox); `deadline_s`: its FLUX_CI_TIMEOUT."""
        _write_change(app, label)
        env = self.env | {
            "FLUX_CI_REPOSITORY": self.client.oci_url(app.repository),
            "FLUX_CI_PATH": str(app.manifests),
            "FLUX_CI_TAG": label,
            "FLUX_CI_SOURCE": "https://git.example/flux-ci-bench",
            "FLUX_CI_REVISION": _revision(label),
            "FLUX_CI_NAMESPACE": app.namespace,
            "FLUX_CI_TIMEOUT": f"{deadline_s}s",
            "FLUX_CI_OUTPUT": "json",
            "PYTHONPATH": str(root),
            **(extra or {}),
        }
        argv = [sys.executable, "-m", "flux_ci", "-v", "deploy"]
        run = observe(argv, env=env, cwd=self.work, timeout=deadline_s + DEPLOY_SLACK_S, sample=sample)
        report = run.json() or {}
        digest = str((report.get("artifact") or {}).get("digest") or "")
        error = "" if report.get("exit_code") == 0 else _flux_ci_error(run, report)
        return Outcome("A", run.wall_s, not error, digest, error, run.ended_at, run, report)

    def workaround_common(self, app: App, label: str) -> Outcome:
        """W1: push, tag, `flux reconcile kustomization --with-source`."""
        _write_change(app, label)
        started = time.monotonic()
        steps = _Steps(self.env | {"DOCKER_CONFIG": str(self.docker_config)})
        pushed = steps.run(self._push_argv(app, label))
        if pushed is not None:
            ref = f"{self.client.oci_url(app.repository)}:{label}"
            steps.run([self.tools["flux"], "tag", "artifact", ref, f"--tag={TAG}"])
            steps.run([self.tools["flux"], "reconcile", "kustomization", app.consumers[0],
                       "--with-source", f"--namespace={app.namespace}", "--timeout=2m"])  # fmt: skip
        ended = time.monotonic()
        return Outcome("W1", ended - started, steps.ok, _digest(pushed), steps.error, ended)

    def workaround_exact(self, app: App, label: str, *, last: bool = False, wait_s: int = 120) -> Outcome:
        """W2: push (digest from its JSON), `oras tag`, reconcile the source, wait for the digest:
        applied by the app's first consumer, or with `last` its last one (the end of a chain)."""
        _write_change(app, label)
        started = time.monotonic()
        steps = _Steps(self.env | {"DOCKER_CONFIG": str(self.docker_config)})
        pushed = steps.run(self._push_argv(app, label))
        digest = _digest(pushed)
        if digest:
            reference = f"{self.client.registry}/{app.repository}:{label}"
            config = str(self.docker_config / "config.json")
            steps.run(
                [self.tools["oras"], "tag", reference, TAG, "--plain-http", "--registry-config", config]
            )
            steps.run([self.tools["flux"], "reconcile", "source", "oci", app.sources[0],
                       f"--namespace={app.namespace}", "--timeout=2m"])  # fmt: skip
            applied = f"jsonpath={{.status.lastAppliedRevision}}={TAG}@{digest}"
            consumer = app.consumers[-1 if last else 0]
            steps.run([self.tools["kubectl"], "wait", f"--for={applied}", f"kustomization/{consumer}",
                       f"--namespace={app.namespace}", f"--timeout={wait_s}s"])  # fmt: skip
        ended = time.monotonic()
        return Outcome("W2", ended - started, steps.ok, digest, steps.error, ended)

    def _push_argv(self, app: App, label: str) -> list[str]:
        return [
            self.tools["flux"], "push", "artifact", f"{self.client.oci_url(app.repository)}:{label}",
            f"--path={app.manifests}", "--source=https://git.example/flux-ci-bench",
            f"--revision={_revision(label)}", "--insecure-registry", "--output=json",
        ]  # fmt: skip

    # -- checking -----------------------------------------------------------------------------

    def applied(self, app: App, digest: str) -> tuple[int, int]:
        """(consumers whose lastAppliedRevision ends with @digest, all consumers), read afresh."""
        done = self.client.kubectl("get", KUSTOMIZATIONS, "-n", app.namespace, "-o", "json", check=False)
        if done.returncode != 0:
            return 0, len(app.consumers)
        items = json.loads(done.stdout).get("items", [])
        revisions = {item["metadata"]["name"]: item.get("status", {}).get("lastAppliedRevision", "")
                     for item in items}  # fmt: skip
        good = sum(1 for name in app.consumers if revisions.get(name, "").endswith(f"@{digest}"))
        return good, len(app.consumers)


class _Steps:
    """Shell-script semantics for the workarounds: run in order, stop at the first failure."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.error = ""

    @property
    def ok(self) -> bool:
        return not self.error

    def run(self, argv: Sequence[str]) -> str | None:
        if self.error:
            return None
        try:
            done = subprocess.run(
                list(argv), env=self.env, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            self.error = f"timed out: {' '.join(argv[:4])}"
            return None
        if done.returncode != 0:
            self.error = f"{' '.join(argv[:4])} exited {done.returncode}: {done.stderr.strip()[-300:]}"
            return None
        return done.stdout


def _write_change(app: App, label: str) -> None:
    """The same change each time: one ConfigMap value, naming the deploy."""
    (app.manifests / "configmap.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench\ndata:\n  deploy: {label}\n"
    )


def _revision(label: str) -> str:
    return "main@sha1:" + hashlib.sha1(label.encode(), usedforsecurity=False).hexdigest()


def _digest(push_output: str | None) -> str:
    try:
        return str(json.loads(push_output or "")["digest"])
    except (ValueError, KeyError, TypeError):
        return ""


def _flux_ci_error(run: Observed, report: Mapping[str, Any]) -> str:
    if run.exit_code is None:
        return f"killed {DEPLOY_SLACK_S}s after its deadline"
    error = report.get("error") or {}
    message = error.get("message") if isinstance(error, dict) else None
    tail = " | ".join(line for _, line in run.trace[-3:])
    return f"exit {run.exit_code}: {message or tail or 'no report'}"


def source_object(
    client: SandboxClient, namespace: str, name: str, repository: str, secret: str | None, *, tag: str = TAG
) -> dict[str, Any]:
    """An OCIRepository following `tag` of the repository, fetching only when asked."""
    spec: dict[str, Any] = {
        "interval": "10m",  # nothing moves unless a deploy asks
        "url": client.oci_url(repository),
        "ref": {"tag": tag},
        "insecure": True,  # the sandbox registry speaks plain HTTP
    }
    if secret:
        spec["secretRef"] = {"name": secret}
    return _object("source.toolkit.fluxcd.io/v1", "OCIRepository", namespace, name, spec)


def kustomization_object(namespace: str, name: str, source: str) -> dict[str, Any]:
    return _kustomization(namespace, name, source, "")


def write_change(app: App, label: str) -> None:
    _write_change(app, label)


def _kustomization(namespace: str, name: str, source: str, prefix: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "interval": "10m",
        "sourceRef": {"kind": "OCIRepository", "name": source},
        "path": "./",
        "prune": True,
        "targetNamespace": namespace,
    }
    if prefix:
        spec["namePrefix"] = prefix
    return _object("kustomize.toolkit.fluxcd.io/v1", "Kustomization", namespace, name, spec)


def _object(api_version: str, kind: str, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
