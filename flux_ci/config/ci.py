"""GitLab's and GitHub's predefined variables as the settings' defaults: a job needs no setup of its
own. Every FLUX_CI_ variable wins over them.

Also here: the traceability annotations every push records (which pipeline, job and user pushed the
artifact, under `ANNOTATION_PREFIX`), and how `status` and `history` read them back.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BeforeValidator
from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

from flux_ci.report.models import Provenance
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
    "pipeline_url": "CI_PIPELINE_URL",
    "job_url": "CI_JOB_URL",
    "pipeline_user": "GITLAB_USER_LOGIN",
    "deploy_freeze": "CI_DEPLOY_FREEZE",
}

# The traceability annotations: one prefix of flux-ci's own (OCI annotation keys are reverse-DNS
# names), next to flux's org.opencontainers.image.source and .revision.
ANNOTATION_PREFIX = "io.flux-ci."
PIPELINE_URL_ANNOTATION = f"{ANNOTATION_PREFIX}pipeline.url"
PIPELINE_USER_ANNOTATION = f"{ANNOTATION_PREFIX}pipeline.user"
JOB_URL_ANNOTATION = f"{ANNOTATION_PREFIX}job.url"
JOB_STARTED_ANNOTATION = f"{ANNOTATION_PREFIX}job.started-at"
SOURCE_ANNOTATION = "org.opencontainers.image.source"
REVISION_ANNOTATION = "org.opencontainers.image.revision"
CREATED_ANNOTATION = "org.opencontainers.image.created"
# What `flux push artifact --reproducible` writes as the creation time: says nothing of the push.
REPRODUCIBLE_CREATED = "1970-01-01T00:00:00Z"

# flux2 cmd/flux/trigger_receiver.go `defaultOIDCTokenEnvVar`: FLUX_CI_RECEIVER_OIDC_TOKEN's fallback.
RECEIVER_OIDC_TOKEN_VARIABLE = "FLUX_TRIGGER_RECEIVER_OIDC_TOKEN"  # noqa: S105 - a name, not a token


# GitLab kills a job CI_JOB_TIMEOUT seconds after CI_JOB_STARTED_AT; the deadline ends in time for
# the report (flux_ci/deadline.py `fit`). Read as they are (settings `job_timeout`, `job_started_at`).
JOB_TIMEOUT_VARIABLE = "CI_JOB_TIMEOUT"
JOB_STARTED_AT_VARIABLE = "CI_JOB_STARTED_AT"


def job_seconds(value: Any) -> Any:
    """CI_JOB_TIMEOUT: whole seconds, as GitLab writes it (`3600`)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        msg = f"{value!r} is not a number of seconds (GitLab sets it, e.g. 3600)"
        raise ValueError(msg) from None
    if not (math.isfinite(seconds) and seconds > 0):
        msg = f"{value!r} must be a positive number of seconds"
        raise ValueError(msg)
    return seconds


def job_started_at(value: Any) -> Any:
    """CI_JOB_STARTED_AT: ISO 8601 (`2026-12-07T20:00:00Z`); a time without a zone is UTC."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            msg = f"{value!r} is not an ISO 8601 time such as 2026-12-07T20:00:00Z"
            raise ValueError(msg) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


JobSeconds = Annotated[float, BeforeValidator(job_seconds)]
JobStartedAt = Annotated[datetime, BeforeValidator(job_started_at)]


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
    # Who pushed: each stays the same when the job runs flux-ci again, so a re-run pushes the same
    # digest. URLs lose any userinfo: an annotation is public to whoever may pull.
    for field_name, variable in (("pipeline_url", "CI_PIPELINE_URL"), ("job_url", "CI_JOB_URL")):
        if url := env.get(variable):
            out[field_name] = without_userinfo(url)
    _copy(env, out, pipeline_user="GITLAB_USER_LOGIN")
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
        # The run's page; the same for every attempt of it. GitHub names no job URL or start time
        # in its variables (the job's numeric id needs the API), so those stay unset.
        if run_id := env.get("GITHUB_RUN_ID"):
            out["pipeline_url"] = f"{server}/{repo}/actions/runs/{run_id}"
    if sha:
        out["tag"] = sha[:8]
        if ref := env.get("GITHUB_REF_NAME"):
            out["revision"] = f"{ref}@sha1:{sha}"
    _copy(env, out, registry_user="GITHUB_ACTOR", registry_password="GITHUB_TOKEN")  # noqa: S106
    _copy(env, out, pipeline_user="GITHUB_ACTOR")
    if env.get("RUNNER_DEBUG") == "1":
        out["trace"] = "true"
    return out


def _copy(env: Mapping[str, str], out: dict[str, str], **fields: str) -> None:
    for field_name, variable in fields.items():
        if value := env.get(variable):
            out[field_name] = value


def trace_annotations(
    *, pipeline_url: str | None, job_url: str | None, user: str | None, started_at: str | None
) -> dict[str, str]:
    """The traceability annotations for a push, each value fit to publish: a URL without userinfo,
    query or fragment (where tokens travel), and no `=` anywhere (flux's `--annotations key=value`
    splits on every `=` and refuses more than one; in a URL's path it is written `%3D`)."""
    values = {
        PIPELINE_URL_ANNOTATION: public_url(pipeline_url),
        JOB_URL_ANNOTATION: public_url(job_url),
        PIPELINE_USER_ANNOTATION: (user or "").strip(),
        JOB_STARTED_ANNOTATION: (started_at or "").strip(),
    }
    return {key: value.replace("=", "%3D") for key, value in values.items() if value}


def public_url(url: str | None) -> str:
    """The URL as anyone may read it: no userinfo, no query, no fragment ("" for none)."""
    if not url or not url.strip():
        return ""
    parts = urlsplit(without_userinfo(url.strip()))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def provenance(annotations: Mapping[str, str]) -> Provenance:
    """Who pushed an artifact, from its annotations (the manifest's, or a source's
    status.artifact.metadata, which holds the same). The creation time counts only when it is not
    the fixed one of a reproducible push."""
    created = annotations.get(CREATED_ANNOTATION, "")
    return Provenance(
        pipeline_url=annotations.get(PIPELINE_URL_ANNOTATION, ""),
        job_url=annotations.get(JOB_URL_ANNOTATION, ""),
        user=annotations.get(PIPELINE_USER_ANNOTATION, ""),
        pushed_at=annotations.get(JOB_STARTED_ANNOTATION, "")
        or ("" if created == REPRODUCIBLE_CREATED else created),
        source=annotations.get(SOURCE_ANNOTATION, ""),
        revision=annotations.get(REVISION_ANNOTATION, ""),
    )


class CIDefaultsSource(PydanticBaseSettingsSource):
    """Lowest-priority source: the CI system's predefined variables (FLUX_CI_* always win)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # noqa: ARG002
        return None, field_name, False  # unused: __call__ provides everything at once

    def __call__(self) -> dict[str, Any]:
        return ci_defaults(os.environ)
