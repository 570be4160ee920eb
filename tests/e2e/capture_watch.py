"""Capture the watch streams the fake controllers replay (tests/fakecluster.py), in a private sandbox:

    python -m tests.e2e.capture_watch [--out tests/data/kubectl]

In the namespace `golden-watch`, an OCIRepository and a Kustomization (tests/sandbox `deploy_oci`)
are deployed by flux-ci once; then, for each scenario, a real `kubectl get <kind> -n golden-watch
-o json --watch --output-watch-events` of each kind runs while flux-ci deploys, and what it printed is
saved as `watch-<scenario>-<kind>.stdout`:

- `redeploy`: a second deploy with other content (the source fetches the new digest on flux-ci's
  request, the Kustomization applies it);
- `redeploy-apply-failed`: a deploy whose manifests hold an unknown kind (exit 7);
- `rerun`: the same content deployed again after the fix (the source already holds the digest, so
  flux-ci asks the Kustomization to reconcile again);
- `rerun-apply-failed`: the same again, after someone edited the applied ConfigMap by hand and made
  it immutable, so the apply flux-ci asks for fails (exit 7).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests.e2e.project import KUSTOMIZATIONS, OCIREPOSITORIES, Project, Recorder
from tests.sandbox.client import SandboxClient
from tests.sandbox.lifecycle import down, up
from tests.sandbox.versions import REPO_ROOT

NAMESPACE = "golden-watch"
DEFAULT_OUT = REPO_ROOT / "tests" / "data" / "kubectl"
BROKEN = "apiVersion: example.invalid/v1\nkind: NoSuchKind\nmetadata:\n  name: broken\n"


def _recorded(project: Project, out: Path, scenario: str, tag: str, expected: int) -> None:
    recorders = {
        kind: Recorder(project.sandbox, kind, NAMESPACE) for kind in (OCIREPOSITORIES, KUSTOMIZATIONS)
    }
    time.sleep(2)  # both watches have listed: the recording starts before flux-ci does
    run = project.flux_ci("deploy", env=project.env(FLUX_CI_TAG=tag))
    if run.exit_code != expected:
        raise RuntimeError(f"{scenario}: flux-ci exited {run.exit_code}, not {expected}:\n{run.stderr}")
    time.sleep(2)  # the controllers' last status writes reach the watches
    for kind, recorder in recorders.items():
        recorder.stop()
        if len(recorder.lines) < 2:
            continue  # only the state before: this controller was not asked (a re-run's source)
        text = "".join(recorder.lines)
        password = project.sandbox.registry_password
        if password and password in text:
            raise RuntimeError(f"{scenario}: the recording would contain the registry password")
        name = f"watch-{scenario}-{kind.split('.')[0]}.stdout"
        (out / name).write_text(text, encoding="utf-8")
        print(f"capture: {name} ({len(recorder.lines)} events)", file=sys.stderr)


def capture(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="flux-ci-golden-") as work:
        state_dir = Path(work) / "sandbox"
        try:
            sandbox = SandboxClient(up(state_dir, die_with_parent=True))
            sandbox.create_namespace(NAMESPACE)
            manifests = Path(work) / "manifests"
            manifests.mkdir()
            project = Project(sandbox, NAMESPACE, "golden/watch", manifests)
            project.write("hello")
            sandbox.deploy_oci(NAMESPACE, "app", "golden/watch", tag="latest", target_namespace=NAMESPACE)
            if project.flux_ci("deploy").exit_code != 0:
                raise RuntimeError("the first deploy failed")
            project.write("changed")
            _recorded(project, out, "redeploy", "c2", 0)
            project.write("changed", extra_yaml=BROKEN)
            _recorded(project, out, "redeploy-apply-failed", "c3", 7)
            project.write("changed")
            if project.flux_ci("deploy", env=project.env(FLUX_CI_TAG="c2")).exit_code != 0:
                raise RuntimeError("the fixed deploy failed")
            _recorded(project, out, "rerun", "c2", 0)
            # Someone edits the applied ConfigMap in the cluster and makes it immutable: the re-run's
            # apply of the same artifact now fails.
            edit = '{"immutable": true, "data": {"greeting": "edited by hand"}}'
            sandbox.kubectl(
                "patch", "configmap", "greeting", "-n", NAMESPACE, "--type=merge", f"--patch={edit}"
            )
            _recorded(project, out, "rerun-apply-failed", "c2", 7)
        finally:
            down(state_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.capture_watch", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for the recordings")
    capture(parser.parse_args(argv).out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
