"""Capture the HelmRelease golden files in a private sandbox of their own:

    python -m tests.sandbox.capture_helm [--out tests/data/kubectl]

Each scenario deploys into the namespace `golden-helm` and saves what the real
`kubectl get helmrelease NAME -n golden-helm -o json` prints once the controller has settled. The
sandbox is started for the capture and stopped afterwards (there is no controller-manager, so a used
namespace could never be emptied for a second run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.sandbox.charts import HELM_CHART_LAYER_SELECTOR, INVALID_CONFIGMAP_TEMPLATE, write_chart
from tests.sandbox.client import HelmDeployment, SandboxClient, condition
from tests.sandbox.lifecycle import down, up
from tests.sandbox.versions import REPO_ROOT

NAMESPACE = "golden-helm"
DEFAULT_OUT = REPO_ROOT / "tests" / "data" / "kubectl"


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


class Capture:
    def __init__(self, sandbox: SandboxClient, work: Path, out: Path) -> None:
        self.sandbox = sandbox
        self.work = work
        self.out = out
        self.docker_config = None if sandbox.anonymous else sandbox.login(work / "docker-config")

    def push_chart(self, repository: str, directory: str, **chart: Any) -> str:
        """flux push artifact of a directory holding the chart, as flux-ci pushes; the digest."""
        written = write_chart(self.work / directory, **chart)
        return self.sandbox.push_artifact(written.parent, repository, docker_config=self.docker_config).digest

    def save(self, filename: str, deployment: HelmDeployment) -> None:
        got = self.sandbox.kubectl("get", "helmrelease", deployment.name, "-n", NAMESPACE, "-o", "json")
        text = got.stdout
        if self.sandbox.registry_password and self.sandbox.registry_password in text:
            raise RuntimeError(f"{filename} would contain the registry password")
        (self.out / filename).write_text(text, encoding="utf-8")
        print(f"capture: {filename}", file=sys.stderr)

    def ready(self) -> None:
        repository = "golden/helm-ready"
        digest = self.push_chart(repository, "ready")
        deployment = self.sandbox.deploy_helm(NAMESPACE, "ready", repository)
        self.sandbox.wait_helm_release(deployment, attempted=f"0.1.0+{_short(digest)}")
        self.save("helmrelease-ready.json", deployment)

    def upgraded(self) -> None:
        repository = "golden/helm-upgraded"
        first = self.push_chart(repository, "upgraded-1", greeting="hello-1")
        deployment = self.sandbox.deploy_helm(NAMESPACE, "upgraded", repository)
        self.sandbox.wait_helm_release(deployment, attempted=f"0.1.0+{_short(first)}")
        digest = self.push_chart(repository, "upgraded-2", greeting="hello-2")
        self.sandbox.flux("reconcile", "source", "oci", deployment.name, "-n", NAMESPACE)
        self.sandbox.wait_helm_release(deployment, attempted=f"0.1.0+{_short(digest)}")
        self.save("helmrelease-upgraded.json", deployment)

    def install_failed(self) -> None:
        repository = "golden/helm-install-failed"
        digest = self.push_chart(repository, "failed", templates={"cm.yaml": INVALID_CONFIGMAP_TEMPLATE})
        deployment = self.sandbox.deploy_helm(NAMESPACE, "install-failed", repository)
        self.sandbox.wait_helm_release(deployment, attempted=f"0.1.0+{_short(digest)}", ready="False")
        self.save("helmrelease-install-failed.json", deployment)

    def no_digest_tracking(self) -> None:
        """Digest tracking off, after a second push of the same chart version: attempted, not released."""
        repository = "golden/helm-no-digest-tracking"
        self.push_chart(repository, "untracked-1", greeting="hello-1")
        deployment = self.sandbox.deploy_helm(
            NAMESPACE, "no-digest-tracking", repository, digest_tracking=False
        )
        self.sandbox.wait_helm_release(deployment, attempted="0.1.0")
        digest = self.push_chart(repository, "untracked-2", greeting="hello-2")
        self.sandbox.flux("reconcile", "source", "oci", deployment.name, "-n", NAMESPACE)
        self.sandbox.wait_condition(
            "helmrelease", deployment.name, NAMESPACE,
            lambda obj: str(obj["status"].get("lastAttemptedRevisionDigest", "")).endswith(digest),
            what="the second digest attempted",
        )  # fmt: skip
        self.save("helmrelease-no-digest-tracking.json", deployment)

    def oci_chart(self) -> None:
        """A Helm OCI chart (oras push, Helm's media types) read through a layer selector."""
        repository = "golden/helm-oci-chart"
        chart = write_chart(self.work / "oci-src", version="1.2.3")
        pushed = self.sandbox.push_helm_chart(
            chart, repository, docker_config=self.docker_config, workdir=self.work / "oci"
        )
        deployment = self.sandbox.deploy_helm(
            NAMESPACE, "oci-chart", repository, tag=pushed.tag, layer_selector=HELM_CHART_LAYER_SELECTOR
        )
        self.sandbox.wait_helm_release(deployment, attempted=f"1.2.3+{_short(pushed.digest)}")
        self.save("helmrelease-oci-chart.json", deployment)

    def source_not_ready(self) -> None:
        """The OCIRepository follows a tag nothing was pushed to."""
        deployment = self.sandbox.deploy_helm(NAMESPACE, "source-not-ready", "golden/helm-nothing-pushed")
        self.sandbox.wait_condition(
            "helmrelease", deployment.name, NAMESPACE,
            # Past "latest generation of object has not been reconciled": the source's own failure.
            lambda obj: _source_failure_shown(condition(obj, "Ready") or {}),
            what="Ready=False naming the source's failure",
        )  # fmt: skip
        self.save("helmrelease-source-not-ready.json", deployment)

    def listed(self) -> None:
        text = self.sandbox.kubectl("get", "helmreleases", "-A", "-o", "json").stdout
        (self.out / "helmrelease-list.json").write_text(text, encoding="utf-8")
        print("capture: helmrelease-list.json", file=sys.stderr)


def _source_failure_shown(ready: dict[str, Any]) -> bool:
    message = str(ready.get("message", ""))
    return ready.get("reason") == "SourceNotReady" and "latest generation" not in message


def capture(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="flux-ci-golden-") as work:
        state_dir = Path(work) / "sandbox"
        try:
            sandbox = SandboxClient(up(state_dir, die_with_parent=True, report=_progress))
            sandbox.create_namespace(NAMESPACE)
            run = Capture(sandbox, Path(work), out)
            steps: list[Callable[[], None]] = [
                run.ready, run.upgraded, run.install_failed, run.no_digest_tracking, run.oci_chart,
                run.source_not_ready, run.listed,
            ]  # fmt: skip
            for step in steps:
                step()
        finally:
            down(state_dir)


def _progress(message: str) -> None:
    print(f"sandbox: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox.capture_helm", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for the JSON files")
    args = parser.parse_args(argv)
    capture(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
