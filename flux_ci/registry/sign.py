"""Signing the pushed digest with the real `cosign` CLI (FLUX_CI_SIGN), so an OCIRepository with
`spec.verify` accepts it.

No secret is ever in cosign's argv:

- `cosign`: the key is read from the environment (`--key env://COSIGN_PRIVATE_KEY`) and its password
  from COSIGN_PASSWORD, both given to the cosign child alone (no other child inherits them). A key
  given as the path of a file (GitLab's file variables) is read here and passed the same way. Before
  anything is pushed, `cosign public-key` opens the key with the password (no network needed), so a
  wrong password never leaves an unsigned artifact behind.
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

from flux_ci.config.settings import Settings
from flux_ci.config.signing import KEY_VARIABLE, PASSWORD_VARIABLE, PEM_START, key_problem
from flux_ci.context import Context
from flux_ci.errors import ConfigError, RegistryError, ToolError
from flux_ci.registry.client import Registry
from flux_ci.registry.retry import retrying
from flux_ci.secrets import Masker
from flux_ci.tools import cosign

# What keyless signing reads from the job: GitLab's `id_tokens:` variable cosign knows by name, and
# the variables GitHub Actions sets for requesting an OIDC token (cosign detects both).
KEYLESS_VARIABLES = ("SIGSTORE_ID_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")


def enabled(settings: Settings) -> bool:
    return settings.sign != "none"


def private_key(settings: Settings, masker: Masker) -> str:
    """The PEM key: the variable's value, or the content of the file it names; registered with the
    masker either way."""
    problem = key_problem(settings)
    if problem is not None or settings.cosign_private_key is None:
        raise ConfigError(problem or f"{KEY_VARIABLE} is not set")
    value = masker.reveal(settings.cosign_private_key)
    if value.lstrip().startswith(PEM_START):
        return value
    pem = Path(value.strip()).read_text(encoding="utf-8")
    masker.add(pem)
    return pem


def sign_env(
    settings: Settings, masker: Masker, docker_env: Mapping[str, str | None], job_env: Mapping[str, str]
) -> dict[str, str | None]:
    """The cosign child's additions to the allowlisted environment: the key and password, or the
    keyless OIDC variables; and the registry login."""
    env: dict[str, str | None] = dict(docker_env)
    if settings.sign == "cosign":
        password = settings.cosign_password
        env[KEY_VARIABLE] = private_key(settings, masker)
        # Always set, even empty: without it cosign would prompt on a terminal the job does not have.
        env[PASSWORD_VARIABLE] = masker.reveal(password) if password is not None else ""
    else:
        env.update({name: job_env[name] for name in KEYLESS_VARIABLES if job_env.get(name)})
    return env


def preflight(ctx: Context) -> None:
    """Before anything is pushed: cosign runs (exit 3 otherwise) and, for a key pair, the password
    opens the key (exit 2 otherwise). Neither needs the network."""
    result = ctx.runner.run(cosign.version_argv(), timeout=ctx.timeout())
    if not result.ok and not result.dry_run:
        raise ToolError(f"cosign does not run (FLUX_CI_SIGN={ctx.settings.sign}): {result.error_text()}")
    if ctx.settings.sign != "cosign":
        return
    env = sign_env(ctx.settings, ctx.runner.masker, {}, os.environ)
    opened = ctx.runner.run(cosign.public_key_argv(), timeout=ctx.timeout(), env=env)
    if not opened.ok and not opened.dry_run:
        why = cosign.unopened_key(opened.stderr) or f"cosign says: {opened.error_text()}"
        raise ConfigError(f"{KEY_VARIABLE} cannot be used to sign: {why}. Nothing was pushed")


def sign(ctx: Context, registry: Registry, repository: str, digest: str) -> None:
    """Sign `repository@digest` and push the signature next to it in the registry."""
    settings = ctx.settings
    ref = cosign.reference(repository, digest)
    argv = cosign.sign_argv(
        ref,
        keyless=settings.sign == "cosign-keyless",
        tlog_upload=settings.cosign_tlog_upload,
        insecure=settings.insecure_registry,
    )
    env = sign_env(settings, ctx.runner.masker, registry.auth.flux_env(), os.environ)
    with ctx.progress.step("sign", f"{settings.sign} {ref}"):
        result = retrying(
            ctx,
            "cosign sign",
            lambda: ctx.runner.run(argv, timeout=ctx.timeout(), env=env, mutating=True),
        )
        if result.dry_run:
            return
        if not result.ok:
            raise RegistryError(f"cosign could not sign {ref}: {result.error_text()}")
        ctx.progress.note(f"signed {ref}")
