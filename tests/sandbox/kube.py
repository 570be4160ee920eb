"""The real kubectl against the sandbox API server, and the kubeconfig it reads."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.sandbox.clusters import CONTEXT, FIRST, Cluster
from tests.sandbox.errors import SandboxError
from tests.sandbox.launch import clean_env, require_tool
from tests.sandbox.state import write_private

__all__ = ["CONTEXT", "add_impersonation_context", "kubectl", "merge_kubeconfig", "write_kubeconfig"]
_NAMED_LISTS = ("clusters", "users", "contexts")


def write_kubeconfig(path: Path, *, server: str, ca_file: Path, token: str, cluster: Cluster = FIRST) -> Path:
    """A kubeconfig as JSON (a YAML subset every client-go reader accepts).

    Its names are the cluster's own (context `flux-ci-sandbox-2`, user `admin-2` on cluster 2), so
    merge_kubeconfig can put several clusters into one file without renaming anything.
    """
    name, user = cluster.context, cluster.admin_user
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
    }
    _write(path, config)
    return path


def _write(path: Path, config: dict[str, Any]) -> None:
    write_private(path, json.dumps(config, indent=2) + "\n")


def _read(path: Path) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return config


def _put(config: dict[str, Any], key: str, entry: dict[str, Any]) -> None:
    """Add the named entry to the list `key`, replacing the one of the same name."""
    config[key] = [item for item in config[key] if item["name"] != entry["name"]] + [entry]


def merge_kubeconfig(into: Path, other: Path) -> Path:
    """Add the clusters, users and contexts of `other` to `into`; its current context stays."""
    config, added = _read(into), _read(other)
    for key in _NAMED_LISTS:
        for entry in added[key]:
            _put(config, key, entry)
    _write(into, config)
    return into


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


def _named(config: dict[str, Any], key: str, name: str) -> dict[str, Any]:
    for item in config[key]:
        if item["name"] == name:
            found: dict[str, Any] = item[key.removesuffix("s")]
            return found
    raise SandboxError(f"the kubeconfig has no {key.removesuffix('s')} named {name!r}")


def add_impersonation_context(
    kubeconfig: Path,
    context: str,
    *,
    user: str,
    groups: Sequence[str] = (),
    namespace: str | None = None,
    admin_context: str = CONTEXT,
) -> str:
    """A new context in the kubeconfig that acts as `user` (and `groups`) through impersonation.

    The way a GitLab agent runs a CI job with `access_as: {ci_job: {}}`: the credential is the
    admin's of `admin_context` (who may impersonate), every request carries `Impersonate-User`, and
    that context's API server authorizes it as that user alone. The current context is left as it is.
    """
    config = _read(kubeconfig)
    admin = _named(config, "contexts", admin_context)
    credential: dict[str, object] = {"token": _named(config, "users", admin["user"])["token"], "as": user}
    if groups:
        credential["as-groups"] = list(groups)
    entry: dict[str, object] = {"cluster": admin["cluster"], "user": context}
    if namespace:
        entry["namespace"] = namespace
    _put(config, "users", {"name": context, "user": credential})
    _put(config, "contexts", {"name": context, "context": entry})
    _write(kubeconfig, config)
    return context
