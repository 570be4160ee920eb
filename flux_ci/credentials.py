"""The private registry login: `oras login --password-stdin` into a Docker config.json (0600) in a
private temp dir that flux (via DOCKER_CONFIG) and oras (via --registry-config) read. The dir is
removed on every exit path; the password never appears in any child's argv.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flux_ci.context import Context
from flux_ci.errors import ConfigError
from flux_ci.settings import config_message, missing_message
from flux_ci.tools import oras

_LOGIN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RegistryAuth:
    """How flux and oras find the credentials for this run."""

    registry_config: Path | None  # None: anonymous, or the user's own Docker config
    plain_http: bool

    def flux_env(self) -> dict[str, str | None]:
        return {"DOCKER_CONFIG": str(self.registry_config.parent)} if self.registry_config else {}


def registry_host(repository: str) -> str:
    """`oci://host:port/path` → `host:port`."""
    return repository.removeprefix("oci://").split("/", 1)[0]


@contextmanager
def registry_login(ctx: Context) -> Iterator[RegistryAuth]:
    settings = ctx.settings
    user, password = settings.registry_user, settings.registry_password
    plain_http = settings.insecure_registry
    if user is None and password is None:
        yield RegistryAuth(None, plain_http)
        return
    if user is None or password is None:
        raise ConfigError(
            config_message([missing_message("registry_user" if user is None else "registry_password")])
        )
    ctx.runner.masker.add_login(user, password.get_secret_value())
    private_dir = Path(tempfile.mkdtemp(prefix="flux-ci-auth-"))  # mode 0700
    try:
        config = private_dir / "config.json"
        config.touch(mode=0o600)  # oras writes into it; never world-readable, not even briefly
        host = registry_host(settings.required("repository"))
        argv = oras.login_argv(host, user, config, plain_http=plain_http)
        result = ctx.runner.run(argv, stdin=password, timeout=ctx.timeout(_LOGIN_TIMEOUT_S))
        if not result.ok:
            raise oras.failure("registry login", result.stderr or result.stdout)
        config.chmod(0o600)
        yield RegistryAuth(config, plain_http)
    finally:
        shutil.rmtree(private_dir, ignore_errors=True)
