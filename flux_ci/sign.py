"""Signing the pushed digest with the real `cosign` CLI (FLUX_CI_SIGN), so an OCIRepository with
`spec.verify` accepts it.

No secret is ever in cosign's argv:

- `cosign`: the key is read from the environment (`--key env://COSIGN_PRIVATE_KEY`) and its password
  from COSIGN_PASSWORD, both given to the cosign child alone (no other child inherits them). A key
  given as the path of a file (GitLab's file variables) is read here and passed the same way.
- `cosign-keyless`: cosign gets a certificate from Sigstore's Fulcio for the CI job's OIDC token
  (GitLab: SIGSTORE_ID_TOKEN from `id_tokens:`; GitHub: the Actions token request variables) and
  records the signature in Rekor.

The registry login is the command's own (DOCKER_CONFIG, as flux gets it). The signature is pushed
before the moving tags point at the digest, so `latest` never names an unsigned artifact.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from flux_ci.context import Context
from flux_ci.errors import ConfigError, RegistryError, ToolError
from flux_ci.registry import Registry
from flux_ci.retry import retrying
from flux_ci.settings import Settings

KEY_VARIABLE = "COSIGN_PRIVATE_KEY"
PASSWORD_VARIABLE = "COSIGN_PASSWORD"  # noqa: S105 - a name, not a password
PEM_START = "-----BEGIN"
# What keyless signing reads from the job: GitLab's `id_tokens:` variable cosign knows by name, and
# the variables GitHub Actions sets for requesting an OIDC token (cosign detects both).
KEYLESS_VARIABLES = ("SIGSTORE_ID_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
_COMMAND_TIMEOUT_S = 120.0
_VERSION_TIMEOUT_S = 30.0


def enabled(settings: Settings) -> bool:
    return settings.sign != "none"


def key_problem(settings: Settings) -> str | None:
    """Why FLUX_CI_SIGN=cosign cannot sign (None: it can). The key's value is never repeated."""
    if settings.sign != "cosign":
        return None
    key = settings.cosign_private_key
    if key is None:
        return (
            f"{KEY_VARIABLE} is not set: FLUX_CI_SIGN=cosign signs with it (the PEM private key "
            "`cosign generate-key-pair` writes, or the path of a file holding it; its password in "
            f"{PASSWORD_VARIABLE})"
        )
    value = key.get_secret_value()
    if value.lstrip().startswith(PEM_START):
        return None
    path = Path(value.strip())
    if "\n" in value.strip() or not path.is_file():
        return f"{KEY_VARIABLE} is neither a PEM private key (-----BEGIN ...) nor the path of a file"
    if not os.access(path, os.R_OK):
        return f"{KEY_VARIABLE} names a file that cannot be read"
    return None


def private_key(settings: Settings) -> str:
    """The PEM key: the variable's value, or the content of the file it names."""
    problem = key_problem(settings)
    if problem is not None or settings.cosign_private_key is None:
        raise ConfigError(problem or f"{KEY_VARIABLE} is not set")
    value = settings.cosign_private_key.get_secret_value()
    if value.lstrip().startswith(PEM_START):
        return value
    return Path(value.strip()).read_text(encoding="utf-8")


def reference(repository: str, digest: str) -> str:
    """`oci://host/path` + digest → `host/path@sha256:...`: the digest, never a tag that may move."""
    return f"{repository.removeprefix('oci://')}@{digest or 'sha256:<digest>'}"


def sign_argv(settings: Settings, ref: str) -> list[str]:
    argv = ["cosign", "sign", "--yes"]
    if settings.sign == "cosign":
        argv.append(f"--key=env://{KEY_VARIABLE}")
        argv.append(f"--tlog-upload={'true' if settings.cosign_tlog_upload else 'false'}")
    if settings.insecure_registry:
        argv.append("--allow-insecure-registry")
    return [*argv, ref]


def sign_env(
    settings: Settings, docker_env: Mapping[str, str | None], job_env: Mapping[str, str]
) -> dict[str, str | None]:
    """The cosign child's additions to the allowlisted environment: the key and password, or the
    keyless OIDC variables; and the registry login."""
    env: dict[str, str | None] = dict(docker_env)
    if settings.sign == "cosign":
        password = settings.cosign_password
        env[KEY_VARIABLE] = private_key(settings)
        # Always set, even empty: without it cosign would prompt on a terminal the job does not have.
        env[PASSWORD_VARIABLE] = password.get_secret_value() if password is not None else ""
    else:
        env.update({name: job_env[name] for name in KEYLESS_VARIABLES if job_env.get(name)})
    return env


def require_cosign(ctx: Context) -> None:
    """cosign must be there before anything is pushed (a ToolError otherwise), not after."""
    result = ctx.runner.run(["cosign", "version"], timeout=ctx.timeout(_VERSION_TIMEOUT_S))
    if not result.ok and not result.dry_run:
        raise ToolError(f"cosign does not run (FLUX_CI_SIGN={ctx.settings.sign}): {result.error_text()}")


def sign(ctx: Context, registry: Registry, repository: str, digest: str) -> None:
    """Sign `repository@digest` and push the signature next to it in the registry."""
    settings = ctx.settings
    if settings.sign == "cosign":
        ctx.runner.masker.add(private_key(settings))
    ref = reference(repository, digest)
    argv = sign_argv(settings, ref)
    env = sign_env(settings, registry.auth.flux_env(), os.environ)
    with ctx.progress.step("sign", f"{settings.sign} {ref}"):
        result = retrying(
            ctx,
            "cosign sign",
            lambda: ctx.runner.run(argv, timeout=ctx.timeout(_COMMAND_TIMEOUT_S), env=env, mutating=True),
        )
        if result.dry_run:
            return
        if not result.ok:
            raise RegistryError(f"cosign could not sign {ref}: {result.error_text()}")
        ctx.progress.note(f"signed {ref}")
