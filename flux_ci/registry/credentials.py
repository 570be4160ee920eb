"""The private registry login: `oras login --password-stdin` into a Docker config.json (0600) in a
private temp dir that flux (via DOCKER_CONFIG) and oras (via --registry-config) read. The password
never appears in any child's argv.

The dir never outlives the process on an exit path Python sees (success, any exception, SIGINT and
SIGTERM, which the CLI turns into exceptions). SIGKILL skips every cleanup, so the dir is named
`flux-ci-auth-<pid>-<random>`, and each login first removes the dirs of runs whose process is gone.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flux_ci.config.names import config_message, missing_message
from flux_ci.context import Context
from flux_ci.errors import ConfigError
from flux_ci.registry.retry import retrying
from flux_ci.tools import oras

AUTH_DIR_PREFIX = "flux-ci-auth-"
_AUTH_DIR_NAME = re.compile(rf"^{re.escape(AUTH_DIR_PREFIX)}(?P<pid>[0-9]+)-.+$")


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
    if (user is None and password is None) or settings.repository is None:
        # No credentials, or no repository to use them on (`wait` for named consumers).
        yield RegistryAuth(None, plain_http)
        return
    if user is None or password is None:  # `plan` refuses this before any command runs
        raise ConfigError(
            config_message([missing_message("registry_user" if user is None else "registry_password")])
        )
    ctx.runner.masker.add_login(user, ctx.runner.masker.reveal(password))
    remove_stale_auth_dirs()
    private_dir = Path(tempfile.mkdtemp(prefix=f"{AUTH_DIR_PREFIX}{os.getpid()}-"))  # mode 0700
    try:
        config = private_dir / "config.json"
        config.touch(mode=0o600)  # oras writes into it; never world-readable, not even briefly
        host = registry_host(settings.required("repository"))
        argv = oras.login_argv(host, user, config, plain_http=plain_http)
        # Each attempt gets its share of the time left: a login that hangs is cut and retried.
        result = retrying(
            ctx, "oras login", lambda: ctx.runner.run(argv, stdin=password, timeout=ctx.deadline.attempt())
        )
        if not result.ok:
            raise oras.failure("registry login", result.stderr or result.stdout)
        config.chmod(0o600)
        yield RegistryAuth(config, plain_http)
    finally:
        shutil.rmtree(private_dir, ignore_errors=True)


def remove_stale_auth_dirs(parent: Path | None = None) -> list[Path]:
    """Remove the login dirs of flux-ci runs that were killed; returns what was removed.

    Only dirs this user owns, named for a process that no longer exists: a concurrent run's dir
    (its process is alive) and another user's are left alone.
    """
    removed = []
    directory = parent or Path(tempfile.gettempdir())
    with os.scandir(directory) as entries:  # a busy /tmp: names only, no Path per entry
        names = sorted(entry.name for entry in entries if entry.name.startswith(AUTH_DIR_PREFIX))
    for candidate in (directory / name for name in names):
        match = _AUTH_DIR_NAME.match(candidate.name)
        if match is None or _process_exists(int(match["pid"])) or not _own_directory(candidate):
            continue
        shutil.rmtree(candidate, ignore_errors=True)
        removed.append(candidate)
    return removed


def _process_exists(pid: int) -> bool:
    if pid <= 0 or pid == os.getpid():
        return True  # never a leftover: pid 0 is no process, and our own dirs are in use
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _own_directory(path: Path) -> bool:
    try:
        info = path.lstat()  # lstat: a symlink planted in /tmp is never followed, nor removed
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
