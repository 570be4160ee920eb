"""The `flux` CLI: `flux push artifact -o json` and `flux version -o json`.

Flux prints its status lines (`►`, `✔`, `✗`) on stderr and data on stdout, and exits 1 for nearly
every failure, so failures are classified by their message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flux_ci.errors import ConfigError, FluxCIError, RegistryError

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
) -> list[str]:
    """`flux push artifact`: credentials come from DOCKER_CONFIG, never from `--creds` in argv."""
    argv = ["flux", "push", "artifact", url, f"--path={path}", f"--source={source}"]
    argv += [f"--revision={revision}", "--output=json", f"--timeout={max(1, int(timeout_s))}s"]
    if reproducible:
        argv.append("--reproducible")
    if insecure:
        argv.append("--insecure-registry")
    if ignore_paths is not None:
        argv.append(f"--ignore-paths={','.join(ignore_paths)}")
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
