"""The `oras` CLI: log in from stdin, tag a digest, resolve a tag, read a manifest's annotations, list
a repository's tags, report its version.

Every oras error exits 1 with `Error: ...` (or `Error response from registry: ...`) on stderr.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from flux_ci.errors import RegistryError

_VERSION = re.compile(r"^Version:\s*(\S+)", re.MULTILINE)
_TAGGED = re.compile(r"^Tagged (\S+)$", re.MULTILINE)


def remote_flags(registry_config: Path | None, *, plain_http: bool) -> list[str]:
    flags = [f"--registry-config={registry_config}"] if registry_config else []
    if plain_http:
        flags.append("--plain-http")
    return flags


def login_argv(registry: str, user: str, registry_config: Path, *, plain_http: bool) -> list[str]:
    """`oras login --password-stdin`: the password travels on stdin, never in argv."""
    argv = ["oras", "login", registry, f"--username={user}", "--password-stdin"]
    return argv + remote_flags(registry_config, plain_http=plain_http)


def tag_argv(
    reference: str, tags: Sequence[str], registry_config: Path | None, *, plain_http: bool
) -> list[str]:
    """`oras tag host/repo@sha256:... TAG...`: tags exactly the pushed digest, not a moving tag."""
    return ["oras", "tag", reference, *tags, *remote_flags(registry_config, plain_http=plain_http)]


def parse_tagged(stdout: str) -> list[str]:
    """The tags `oras tag` reports as done (`Tagged <tag>` lines)."""
    return _TAGGED.findall(stdout)


def resolve_argv(reference: str, registry_config: Path | None, *, plain_http: bool) -> list[str]:
    return ["oras", "resolve", reference, *remote_flags(registry_config, plain_http=plain_http)]


def parse_resolve(stdout: str) -> str:
    return stdout.strip().splitlines()[-1].strip()


def not_found(stderr: str) -> bool:
    """The registry answered that the tag or digest does not exist (HTTP 404), as oras says it:
    `Error response from registry: failed to resolve digest: <reference>: not found`."""
    return any(line.rstrip().endswith(": not found") for line in stderr.splitlines())


def manifest_fetch_argv(reference: str, registry_config: Path | None, *, plain_http: bool) -> list[str]:
    """`oras manifest fetch host/repo@sha256:...`: the manifest as the registry stores it (read-only)."""
    return ["oras", "manifest", "fetch", reference, *remote_flags(registry_config, plain_http=plain_http)]


def parse_manifest_annotations(stdout: str) -> dict[str, str]:
    """The annotations of a fetched OCI manifest (none: an empty dict)."""
    manifest = json.loads(stdout)
    annotations = manifest.get("annotations") if isinstance(manifest, dict) else None
    return {str(key): str(value) for key, value in (annotations or {}).items()}


def repo_tags_argv(repository: str, registry_config: Path | None, *, plain_http: bool) -> list[str]:
    """`oras repo tags host/repo`: every tag of the repository, one a line (read-only)."""
    return ["oras", "repo", "tags", repository, *remote_flags(registry_config, plain_http=plain_http)]


def parse_tags(stdout: str) -> list[str]:
    return [line.strip() for line in stdout.splitlines() if line.strip()]


def repository_unknown(stderr: str) -> bool:
    """The registry knows no such repository (nothing was ever pushed to it): `name unknown`."""
    return "name unknown" in stderr


def version_argv() -> list[str]:
    return ["oras", "version"]


def parse_version(stdout: str) -> str:
    match = _VERSION.search(stdout)
    if match is None:
        msg = f"no version in oras output: {stdout[:200]!r}"
        raise ValueError(msg)
    return match.group(1)


def failure(what: str, stderr: str) -> RegistryError:
    """oras's own message (first `Error...` line) with what we were doing."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error")]
    message = (errors or lines or ["no error output"])[0].removeprefix("Error: ")
    return RegistryError(f"{what} failed: {message}")
