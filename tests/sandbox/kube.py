"""The real kubectl against the sandbox API server, and the kubeconfig it reads."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
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


def add_impersonation_context(
    kubeconfig: Path, context: str, *, user: str, groups: Sequence[str] = (), namespace: str | None = None
) -> str:
    """A new context in the kubeconfig that acts as `user` (and `groups`) through impersonation.

    The way a GitLab agent runs a CI job with `access_as: {ci_job: {}}`: the credential is the
    admin's (who may impersonate), every request carries `Impersonate-User`, and the API server
    authorizes it as that user alone. The current context is left as it is.
    """
    config = json.loads(kubeconfig.read_text(encoding="utf-8"))
    admin = next(entry["user"] for entry in config["users"] if entry["name"] == "admin")
    credential: dict[str, object] = {"token": admin["token"], "as": user}
    if groups:
        credential["as-groups"] = list(groups)
    entry: dict[str, object] = {"cluster": CONTEXT, "user": context}
    if namespace:
        entry["namespace"] = namespace
    config["users"] = [u for u in config["users"] if u["name"] != context]
    config["users"].append({"name": context, "user": credential})
    config["contexts"] = [c for c in config["contexts"] if c["name"] != context]
    config["contexts"].append({"name": context, "context": entry})
    write_private(kubeconfig, json.dumps(config, indent=2) + "\n")
    return context
