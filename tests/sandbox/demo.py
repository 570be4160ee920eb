"""`python -m tests.sandbox demo` (`make demo`): deploy examples/manifests into the running sandbox
with flux-ci itself, configured only by environment variables, the way a GitLab job would be.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.sandbox.client import SandboxClient
from tests.sandbox.state import default_state_dir

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_OBJECTS = ROOT / "examples" / "cluster" / "flux-objects.yaml"
PULL_SECRET = "flux-ci-demo-registry"
_NO_COMMIT = "0" * 40


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def gitlab_like_env(client: SandboxClient) -> dict[str, str]:
    """What GitLab would predefine for this checkout, pointed at the sandbox registry."""
    sha = _git("rev-parse", "HEAD") or _NO_COMMIT
    env = {key: value for key, value in client.env.items() if not key.startswith("FLUX_CI_REGISTRY_")}
    return (
        env
        | {
            "CI_REGISTRY_IMAGE": f"{client.registry}/demo",  # → oci://<registry>/demo/manifests
            "CI_COMMIT_SHA": sha,
            "CI_COMMIT_SHORT_SHA": sha[:8],
            "CI_COMMIT_REF_NAME": _git("rev-parse", "--abbrev-ref", "HEAD") or "main",
            "CI_PROJECT_URL": "https://gitlab.example.com/platform/flux-ci-demo",
            "CI_REGISTRY_USER": client.registry_user,
            "CI_REGISTRY_PASSWORD": client.registry_password,
            "FLUX_CI_PATH": str(ROOT / "examples" / "manifests"),
            "FLUX_CI_INSECURE_REGISTRY": "true",  # the sandbox registry speaks plain HTTP
            "FLUX_CI_TIMEOUT": "2m",
            "PYTHONPATH": str(ROOT),
        }
    )


def prepare_cluster(client: SandboxClient) -> None:
    """The cluster side a platform team sets up once: pull secret, OCIRepository, Kustomization."""
    client.create_pull_secret("flux-system", PULL_SECRET)
    client.apply(CLUSTER_OBJECTS.read_text().replace("REGISTRY", client.registry))


def demo(state_dir: Path | None = None) -> int:
    client = SandboxClient.from_state_dir(state_dir or default_state_dir())
    prepare_cluster(client)
    print(f"demo: $ flux-ci deploy   (GitLab-style variables, registry {client.registry})", file=sys.stderr)
    done = subprocess.run(
        [sys.executable, "-m", "flux_ci", "deploy"], env=gitlab_like_env(client), check=False
    )
    return done.returncode
