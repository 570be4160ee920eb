"""The `flux` CLI: `flux push artifact -o json`, `flux version -o json` and `flux diff kustomization`.

Flux prints its status lines (`►`, `✔`, `✗`) on stderr and data on stdout, and exits 1 for nearly
every failure, so failures are classified by their message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from flux_ci.errors import ClusterError, ConfigError, FluxCIError, RegistryError

# flux push artifact's default --ignore-paths (build_artifact.go excludeOCI); setting the flag
# replaces them, so the README documents this list.
DEFAULT_IGNORE_PATHS = (
    ".git/,.gitignore,.gitmodules,.gitattributes,*.jpg,*.jpeg,*.gif,*.png,*.wmv,*.flv,*.tar.gz,*.zip"
)


@dataclass(frozen=True)
class PushedArtifact:
    """The fields of `flux push artifact -o json`."""

    url: str  # oci://<repository>@sha256:<hex>
    repository: str  # <registry>/<path>, normalised by go-containerregistry
    tag: str
    digest: str  # sha256:<hex> of the OCI manifest


def push_argv(
    url: str,
    *,
    path: Path,
    source: str,
    revision: str,
    reproducible: bool,
    insecure: bool,
    ignore_paths: Sequence[str] | None,
    timeout_s: float,
    annotations: Mapping[str, str] | None = None,
) -> list[str]:
    """`flux push artifact`: credentials come from DOCKER_CONFIG, never from `--creds` in argv.

    `annotations` are added to the manifest beside flux's source and revision. flux splits each
    `key=value` on every `=` and refuses more than two parts: a key or value holding one is refused
    here, before the push."""
    bad = [key for key, value in (annotations or {}).items() if "=" in key or "=" in value]
    if bad:
        msg = f"flux push artifact cannot carry '=' in an annotation: {', '.join(bad)}"
        raise ValueError(msg)
    argv = ["flux", "push", "artifact", url, f"--path={path}", f"--source={source}"]
    argv += [f"--revision={revision}", "--output=json", f"--timeout={max(1, int(timeout_s))}s"]
    if reproducible:
        argv.append("--reproducible")
    if insecure:
        argv.append("--insecure-registry")
    if ignore_paths is not None:
        argv.append(f"--ignore-paths={','.join(ignore_paths)}")
    argv += [f"--annotations={key}={value}" for key, value in sorted((annotations or {}).items())]
    return argv


def parse_push_output(stdout: str) -> PushedArtifact:
    data = json.loads(stdout)
    return PushedArtifact(
        url=data["url"], repository=data["repository"], tag=data["tag"], digest=data["digest"]
    )


def push_failure(stderr: str) -> FluxCIError:
    """Turn flux's `✗ ...` line into the error with the right exit code."""
    message = _last_failure_line(stderr)
    if message.startswith(("invalid path", "--source is required", "--revision is required")):
        return ConfigError(f"flux push artifact: {message}")
    if message.startswith("URL must be in format"):
        return ConfigError(f"FLUX_CI_REPOSITORY: {message}")
    return RegistryError(f"flux push artifact failed: {_dedupe_prefix(message)}")


def version_argv() -> list[str]:
    return ["flux", "version", "--client", "--output=json"]


def parse_version(stdout: str) -> str:
    """`{"flux": "v2.9.5"}` → `2.9.5`."""
    return str(json.loads(stdout)["flux"]).removeprefix("v")


def _last_failure_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    failures = [line for line in lines if line.startswith("✗")]
    chosen = failures[-1] if failures else (lines[-1] if lines else "no error output")
    return chosen.removeprefix("✗").strip()


def _dedupe_prefix(message: str) -> str:
    # flux2 and fluxcd/pkg both wrap the push error: "pushing artifact failed: pushing artifact ...".
    doubled = "pushing artifact failed: pushing artifact failed: "
    if message.startswith(doubled):
        return message.removeprefix(doubled)
    return message.removeprefix("pushing artifact failed: ")


# --- flux diff kustomization ---------------------------------------------------------------------

# Exit codes of `flux diff kustomization`: 0 no change, 1 a change found, anything else an error.
DIFF_UNCHANGED, DIFF_CHANGED = 0, 1
DIFF_LIMIT = 4000  # characters of one object's diff kept in the report; the rest is cut
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_DIFF_SUBJECT = re.compile(r"^► (?P<object>\S+) (?P<change>created|drifted|deleted|skipped)$")
_CLUSTER_FAILURE = re.compile(
    r"connection refused|no such host|i/o timeout|Unauthorized|forbidden|context deadline exceeded|"
    r"TLS handshake|certificate|server has asked for the client to provide credentials",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ObjectDiff:
    """One object in the output of `flux diff kustomization`."""

    object: str  # Kind/namespace/name (Kind/name if cluster-scoped)
    change: str  # created, drifted or deleted
    diff: str = ""  # drifted: the dyff body, cut to DIFF_LIMIT characters


def diff_argv(name: str, *, namespace: str, path: Path, context: str | None, timeout_s: float) -> list[str]:
    """`flux diff kustomization`: builds `path` the way the Kustomization would (its own kustomize
    settings and substitutions) and dry-runs it server-side. Changes nothing in the cluster."""
    argv = ["flux", "diff", "kustomization", name, f"--namespace={namespace}", f"--path={path}"]
    argv += ["--progress-bar=false", f"--timeout={max(1, int(timeout_s))}s"]
    if context:
        argv.append(f"--context={context}")
    return argv


def parse_diff(stdout: str) -> list[ObjectDiff]:
    """The objects `flux diff kustomization` says would change, in its order; a drifted object's
    diff is the text up to the next object line. Skipped objects (reconcile disabled) are left out."""
    found: list[tuple[str, str, list[str]]] = []
    for raw in _ANSI.sub("", stdout).splitlines():
        line = raw.rstrip()
        subject = _DIFF_SUBJECT.match(line.strip())
        if subject:
            found.append((subject["object"], subject["change"], []))
        elif line.startswith(("📁", "⚠️")):  # a nested Kustomization (--recursive only) or a warning
            found.append(("", "skipped", []))
        elif found:
            found[-1][2].append(line)
    return [
        ObjectDiff(obj, change, _bounded("\n".join(body).strip("\n")))
        for obj, change, body in found
        if change != "skipped"
    ]


def diff_failure(name: str, stderr: str) -> FluxCIError:
    """`flux diff kustomization` exited above 1: the cluster (5) or the manifests/setup (2)."""
    message = f"flux diff kustomization {name}: {_last_failure_line(stderr)}"
    if _CLUSTER_FAILURE.search(message):
        return ClusterError(message, retryable="connection refused" in message or "timeout" in message)
    return ConfigError(message)


def _bounded(text: str) -> str:
    if len(text) <= DIFF_LIMIT:
        return text
    return text[:DIFF_LIMIT] + f"\n… ({len(text) - DIFF_LIMIT} more characters cut)"
