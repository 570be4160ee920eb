"""GitLab's and GitHub's predefined variables as the settings' defaults: a job needs no setup of its
own. Every FLUX_CI_ variable wins over them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

from flux_ci.secrets import without_userinfo

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

CI_FALLBACKS: dict[str, str] = {
    "repository": "CI_REGISTRY_IMAGE",
    "tag": "CI_COMMIT_SHORT_SHA",
    "source": "CI_PROJECT_URL",
    "revision": "CI_COMMIT_REF_NAME and CI_COMMIT_SHA",
    "registry_user": "CI_REGISTRY_USER",
    "registry_password": "CI_REGISTRY_PASSWORD",
    "kube_context": "KUBE_CONTEXT",
    "trace": "CI_DEBUG_TRACE",
    "deploy_freeze": "CI_DEPLOY_FREEZE",
}

# flux2 cmd/flux/trigger_receiver.go `defaultOIDCTokenEnvVar`: FLUX_CI_RECEIVER_OIDC_TOKEN's fallback.
RECEIVER_OIDC_TOKEN_VARIABLE = "FLUX_TRIGGER_RECEIVER_OIDC_TOKEN"  # noqa: S105 - a name, not a token


def ci_defaults(env: Mapping[str, str]) -> dict[str, str]:
    """Defaults derived from GitLab's predefined variables, else GitHub Actions' equivalents."""
    gitlab = _gitlab_defaults(env)
    github = _github_defaults(env)
    # The variable `flux trigger receiver` reads its OIDC token from, so a job set up for it works.
    flux: dict[str, str] = {}
    _copy(env, flux, receiver_oidc_token=RECEIVER_OIDC_TOKEN_VARIABLE)
    return {**flux, **github, **gitlab}  # GitLab wins where both somehow exist


def _gitlab_defaults(env: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    if image := env.get("CI_REGISTRY_IMAGE"):
        out["repository"] = f"oci://{image}/manifests"
    if short_sha := env.get("CI_COMMIT_SHORT_SHA"):
        out["tag"] = short_sha
    # Never CI_REPOSITORY_URL: it embeds the job token and would be baked into the artifact. And
    # should CI_PROJECT_URL ever carry credentials, they are dropped, never published.
    if project_url := env.get("CI_PROJECT_URL"):
        out["source"] = without_userinfo(project_url)
    if (ref := env.get("CI_COMMIT_REF_NAME")) and (sha := env.get("CI_COMMIT_SHA")):
        out["revision"] = f"{ref}@sha1:{sha}"
    _copy(env, out, registry_user="CI_REGISTRY_USER", registry_password="CI_REGISTRY_PASSWORD")  # noqa: S106
    _copy(env, out, kube_context="KUBE_CONTEXT")
    if (debug := env.get("CI_DEBUG_TRACE")) is not None:
        # CI_DEBUG_TRACE is "true" or absent; anything unexpected means off rather than an error.
        out["trace"] = "true" if debug.strip().lower() in _TRUE else "false"
    if freeze := env.get("CI_DEPLOY_FREEZE"):
        # GitLab sets it ("true") only while a deploy freeze period of the project is on: its
        # presence is the freeze, whatever the value, unless the value plainly says false.
        out["deploy_freeze"] = "false" if freeze.strip().lower() in _FALSE else "true"
    return out


def _github_defaults(env: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    repo = env.get("GITHUB_REPOSITORY")
    sha = env.get("GITHUB_SHA")
    if repo:
        out["repository"] = f"oci://ghcr.io/{repo.lower()}/manifests"
        server = without_userinfo(env.get("GITHUB_SERVER_URL", "https://github.com"))
        out["source"] = f"{server}/{repo}"
    if sha:
        out["tag"] = sha[:8]
        if ref := env.get("GITHUB_REF_NAME"):
            out["revision"] = f"{ref}@sha1:{sha}"
    _copy(env, out, registry_user="GITHUB_ACTOR", registry_password="GITHUB_TOKEN")  # noqa: S106
    if env.get("RUNNER_DEBUG") == "1":
        out["trace"] = "true"
    return out


def _copy(env: Mapping[str, str], out: dict[str, str], **fields: str) -> None:
    for field_name, variable in fields.items():
        if value := env.get(variable):
            out[field_name] = value


class CIDefaultsSource(PydanticBaseSettingsSource):
    """Lowest-priority source: the CI system's predefined variables (FLUX_CI_* always win)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # noqa: ARG002
        return None, field_name, False  # unused: __call__ provides everything at once

    def __call__(self) -> dict[str, Any]:
        return ci_defaults(os.environ)
