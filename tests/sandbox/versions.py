"""Where the pinned tools live and which versions they really are.

`.ci/versions.env` is the single source of the pins; `.ci/build-tools.sh` builds each tool into
`<tools dir>/<tool>/<version>/<tool>`. This module resolves the same paths so the sandbox and the
tests run exactly the binaries that were built, never whatever happens to be on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONS_FILE = REPO_ROOT / ".ci" / "versions.env"

# Tools built by .ci/build-tools.sh, with the versions.env key that pins each one.
PINNED_TOOLS: dict[str, str] = {
    "flux": "FLUX_VERSION",
    "oras": "ORAS_VERSION",
    "cosign": "COSIGN_VERSION",
    "kubectl": "KUBERNETES_VERSION",
    "kube-apiserver": "KUBERNETES_VERSION",
    "etcd": "ETCD_VERSION",
    "source-controller": "SOURCE_CONTROLLER_VERSION",
    "kustomize-controller": "KUSTOMIZE_CONTROLLER_VERSION",
    "helm-controller": "HELM_CONTROLLER_VERSION",
    "notification-controller": "NOTIFICATION_CONTROLLER_VERSION",
    "toxiproxy": "TOXIPROXY_VERSION",  # the fault tests' TCP proxy (tests/sandbox/faults.py)
}

# argv that prints a version, and the pattern that pulls the bare version out of its output.
_VERSION_PROBES: dict[str, tuple[tuple[str, ...], str]] = {
    "flux": (("version", "--client"), r"^flux: v?(\S+)"),
    "oras": (("version",), r"^Version:\s*(\S+)"),
    "cosign": (("version",), r"^GitVersion:\s*v?(\S+)"),
    "kubectl": (("version", "--client"), r"^Client Version: v?(\S+)"),
    "kube-apiserver": (("--version",), r"^Kubernetes v?(\S+)"),
    "etcd": (("--version",), r"^etcd Version: (\S+)"),
    "toxiproxy": (("--version",), r"^toxiproxy-server version v?(\S+)"),
    "docker-registry": (("--version",), r"(\d+\.\d+\.\d+\S*)\s*$"),
}

MISSING = "missing"


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """Parse the KEY=VALUE lines of versions.env (comments and blank lines are skipped)."""
    versions: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        versions[key.strip()] = value.strip().strip("'\"")
    return versions


def tools_dir() -> Path:
    """The cache build-tools.sh writes to (same precedence as the script)."""
    explicit = os.environ.get("FLUX_CI_TOOLS_DIR")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "flux-ci" / "tools"


def pinned_version(tool: str) -> str:
    return read_versions()[PINNED_TOOLS[tool]]


def tool_dir(tool: str) -> Path:
    return tools_dir() / tool / pinned_version(tool)


def tool_path(tool: str) -> Path:
    return tool_dir(tool) / tool


def crds_dir(controller: str) -> Path:
    """build-tools.sh copies each controller's CRDs next to its binary."""
    return tool_dir(controller) / "crds"


def path_prefix() -> str:
    """PATH entries that put the pinned flux, oras, kubectl, ... before anything installed."""
    return os.pathsep.join(str(tool_dir(tool)) for tool in PINNED_TOOLS)


def registry_binary() -> Path | None:
    """Debian's docker-registry; not built by build-tools.sh, so it comes from the system."""
    found = shutil.which("docker-registry") or (
        "/usr/bin/docker-registry" if Path("/usr/bin/docker-registry").exists() else None
    )
    return Path(found) if found else None


def probe_version(tool: str, binary: Path) -> str | None:
    """The version the binary itself reports, or None when it has no version command."""
    probe = _VERSION_PROBES.get(tool)
    if probe is None:
        return None
    args, pattern = probe
    try:
        done = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, done.stdout + done.stderr, re.MULTILINE)
    return match.group(1) if match else None


def describe_version(tool: str) -> str:
    """One human line part for the report header: reported version, or the pin marked as such."""
    binary = registry_binary() if tool == "docker-registry" else tool_path(tool)
    if binary is None or not binary.exists():
        return MISSING
    reported = probe_version(tool, binary)
    pin = pinned_version(tool) if tool in PINNED_TOOLS else None
    if reported is None:
        # The Flux controllers have no version flag; the build directory is named after the pin.
        return f"{pin} (pinned)" if pin else "unknown"
    if pin and reported != pin:
        return f"{reported} (pinned {pin}: MISMATCH)"
    return reported


def binary_versions() -> dict[str, str]:
    """Every real binary the sandbox and the tests run, with the version it reports."""
    return {tool: describe_version(tool) for tool in (*PINNED_TOOLS, "docker-registry")}
