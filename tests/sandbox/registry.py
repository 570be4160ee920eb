"""Debian's docker-registry (CNCF distribution 2.8) with htpasswd auth, plain HTTP, on loopback."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

from tests.sandbox.errors import MissingToolError
from tests.sandbox.launch import Launch
from tests.sandbox.net import LOOPBACK, HealthCheck
from tests.sandbox.procs import ProcessRecord
from tests.sandbox.state import RegistryInfo, write_private
from tests.sandbox.versions import registry_binary

_DEBIAN_PACKAGES = ("docker-registry", "apache2-utils")


def _install_debian_packages() -> None:
    """Last resort on a bare Debian CI machine running as root; elsewhere, say what is missing."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise MissingToolError(
            "docker-registry and htpasswd are needed: apt-get install -y " + " ".join(_DEBIAN_PACKAGES)
        )
    subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", *_DEBIAN_PACKAGES],
        check=True,
        capture_output=True,
        timeout=600,
    )


def registry_tools() -> tuple[Path, Path]:
    """(docker-registry, htpasswd), installing the Debian packages when allowed and missing."""
    registry, htpasswd = registry_binary(), shutil.which("htpasswd")
    if registry is None or htpasswd is None:
        _install_debian_packages()
        registry, htpasswd = registry_binary(), shutil.which("htpasswd")
    if registry is None or htpasswd is None:
        raise MissingToolError("docker-registry or htpasswd still missing after apt-get install")
    return registry, Path(htpasswd)


def write_htpasswd(htpasswd: Path, path: Path, user: str, password: str) -> None:
    """bcrypt entry (the only hash distribution accepts); the password goes in on stdin."""
    done = subprocess.run(
        [str(htpasswd), "-niB", user],
        input=password,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    write_private(path, done.stdout)


def config_text(port: int, storage: Path, htpasswd: Path | None) -> str:
    """distribution's YAML config; paths are JSON strings, which YAML reads as quoted scalars."""
    auth = (
        f"auth:\n  htpasswd:\n    realm: flux-ci-sandbox\n    path: {json.dumps(str(htpasswd))}\n"
        if htpasswd
        else ""
    )
    return (
        "version: 0.1\n"
        "log:\n  level: info\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {json.dumps(str(storage))}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: {LOOPBACK}:{port}\n  secret: {secrets.token_hex(16)}\n"
        "health:\n  storagedriver:\n    enabled: false\n" + auth
    )


def start_registry(launch: Launch, *, anonymous: bool) -> tuple[RegistryInfo, ProcessRecord]:
    registry_bin, htpasswd_bin = registry_tools()
    port = launch.ports.take()
    storage = launch.path("registry", "storage")
    storage.mkdir(parents=True, exist_ok=True)
    info = RegistryInfo(LOOPBACK, port)
    htpasswd: Path | None = None
    if not anonymous:
        info = RegistryInfo(LOOPBACK, port, f"flux-ci-{secrets.token_hex(3)}", secrets.token_urlsafe(24))
        htpasswd = launch.path("registry", "htpasswd")
        write_htpasswd(htpasswd_bin, htpasswd, info.user, info.password)
    config = launch.path("registry", "config.yml")
    write_private(config, config_text(port, storage, htpasswd))
    # /v2/ answers 401 with auth on and 200 without: either way the registry is serving.
    health = HealthCheck(f"http://{info.address}/v2/", ok_statuses=(401,) if htpasswd else (200,))
    record = launch.start("registry", [str(registry_bin), "serve", str(config)], health)
    return info, record
