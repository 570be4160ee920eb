"""The real kubectl against the sandbox API server, and the kubeconfig it reads."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.sandbox.errors import SandboxError
from tests.sandbox.launch import clean_env, require_tool
from tests.sandbox.state import write_private

CONTEXT = "flux-ci-sandbox"


def write_kubeconfig(path: Path, *, server: str, ca_file: Path, token: str) -> Path:
    """A kubeconfig as JSON (a YAML subset every client-go reader accepts)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "admin"}}],
        "current-context": CONTEXT,
    }
    write_private(path, json.dumps(config, indent=2) + "\n")
    return path


def kubectl(
    kubeconfig: Path,
    *args: str,
    input_text: str | None = None,
    timeout: float = 120,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run the pinned kubectl; with check, a failure raises with kubectl's own stderr."""
    argv = [str(require_tool("kubectl")), f"--kubeconfig={kubeconfig}", *args]
    done = subprocess.run(
        argv,
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
        check=False,
    )
    if check and done.returncode != 0:
        raise SandboxError(f"kubectl {' '.join(args)} failed (exit {done.returncode}): {done.stderr.strip()}")
    return done
