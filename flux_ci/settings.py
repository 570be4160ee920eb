"""The one `Settings` object: environment variables only, GitLab's and GitHub's predefined ones as
fallbacks. Built lazily by the CLI, so `--help` works in an empty environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from flux_ci.deadline import parse_duration
from flux_ci.errors import ConfigError
from flux_ci.models import ObjectRef

PREFIX = "FLUX_CI_"
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_CONSUMER_KINDS = {"kustomization": "Kustomization", "helmrelease": "HelmRelease"}
_TRUE = {"1", "true", "yes", "on"}

# Where a FLUX_CI_ variable's default comes from in CI, for messages that name what to set.
CI_FALLBACKS: dict[str, str] = {
    "repository": "CI_REGISTRY_IMAGE",
    "tag": "CI_COMMIT_SHORT_SHA",
    "source": "CI_PROJECT_URL",
    "revision": "CI_COMMIT_REF_NAME and CI_COMMIT_SHA",
    "registry_user": "CI_REGISTRY_USER",
    "registry_password": "CI_REGISTRY_PASSWORD",
    "kube_context": "KUBE_CONTEXT",
    "trace": "CI_DEBUG_TRACE",
}


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_comma_list)]


def ci_defaults(env: Mapping[str, str]) -> dict[str, str]:
    """Defaults derived from GitLab's predefined variables, else GitHub Actions' equivalents."""
    gitlab = _gitlab_defaults(env)
    github = _github_defaults(env)
    return {**github, **gitlab}  # GitLab wins where both somehow exist


def _gitlab_defaults(env: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    if image := env.get("CI_REGISTRY_IMAGE"):
        out["repository"] = f"oci://{image}/manifests"
    if short_sha := env.get("CI_COMMIT_SHORT_SHA"):
        out["tag"] = short_sha
    # Never CI_REPOSITORY_URL: it embeds the job token and would be baked into the artifact.
    if project_url := env.get("CI_PROJECT_URL"):
        out["source"] = project_url
    if (ref := env.get("CI_COMMIT_REF_NAME")) and (sha := env.get("CI_COMMIT_SHA")):
        out["revision"] = f"{ref}@sha1:{sha}"
    _copy(env, out, registry_user="CI_REGISTRY_USER", registry_password="CI_REGISTRY_PASSWORD")  # noqa: S106
    _copy(env, out, kube_context="KUBE_CONTEXT", trace="CI_DEBUG_TRACE")
    return out


def _github_defaults(env: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    repo = env.get("GITHUB_REPOSITORY")
    sha = env.get("GITHUB_SHA")
    if repo:
        out["repository"] = f"oci://ghcr.io/{repo.lower()}/manifests"
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
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


class _CIDefaultsSource(PydanticBaseSettingsSource):
    """Lowest-priority source: the CI system's predefined variables (FLUX_CI_* always win)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # noqa: ARG002
        return None, field_name, False  # unused: __call__ provides everything at once

    def __call__(self) -> dict[str, Any]:
        return ci_defaults(os.environ)


class Settings(BaseSettings):
    """flux-ci's whole configuration. Every field is the variable FLUX_CI_<FIELD NAME>."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, extra="ignore", frozen=True)

    path: Path = Path("manifests")
    repository: str | None = None
    tag: str | None = None
    extra_tags: CommaList = Field(default_factory=lambda: ["latest"])
    source: str | None = None
    revision: str | None = None
    registry_user: str | None = None
    registry_password: SecretStr | None = None
    insecure_registry: bool = False
    reproducible: bool = True
    ignore_paths: CommaList | None = None
    ocirepository: str | None = None
    namespace: str = "flux-system"
    wait_for: CommaList | None = None
    digest: str | None = None
    timeout: float = 300.0
    kube_context: str | None = None
    output: Literal["table", "json"] = "table"
    dotenv: Path | None = None
    trace: bool = False
    dry_run: bool = False

    secret_fields: ClassVar[frozenset[str]] = frozenset({"registry_password"})

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - deliberately unused
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - deliberately unused
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment only, by design: no .env file and no secrets directory are read.
        return init_settings, env_settings, _CIDefaultsSource(settings_cls)

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Build the settings, turning every validation problem into one `ConfigError`."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc)) from None

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = value if value.startswith("oci://") else f"oci://{value}"
        path = url.removeprefix("oci://").rstrip("/")
        if "/" not in path:
            msg = f"{value!r} must be oci://<registry>/<path>"
            raise ValueError(msg)
        if "@" in path or ":" in path.rsplit("/", 1)[1]:
            msg = f"{value!r} must not include a tag or digest (set FLUX_CI_TAG instead)"
            raise ValueError(msg)
        return f"oci://{path}"

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str | None) -> str | None:
        if value is not None and not _TAG.match(value):
            msg = f"{value!r} is not a valid OCI tag"
            raise ValueError(msg)
        return value

    @field_validator("extra_tags")
    @classmethod
    def _extra_tags(cls, value: list[str]) -> list[str]:
        if [tag.lower() for tag in value] == ["none"]:
            return []
        for tag in value:
            cls._tag(tag)
        return value

    @field_validator("digest")
    @classmethod
    def _digest(cls, value: str | None) -> str | None:
        if value is not None and not _DIGEST.match(value):
            msg = f"{value!r} is not a sha256:<64 hex> digest"
            raise ValueError(msg)
        return value

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        seconds = parse_duration(value) if isinstance(value, str) else value
        if isinstance(seconds, int | float) and seconds <= 0:
            msg = "must be a positive duration such as 90s or 5m"
            raise ValueError(msg)
        return seconds

    @field_validator("output", mode="before")
    @classmethod
    def _output(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("trace", mode="before")
    @classmethod
    def _trace(cls, value: Any) -> Any:
        # CI_DEBUG_TRACE is "true" or absent; anything unexpected means off rather than an error.
        return value.strip().lower() in _TRUE if isinstance(value, str) else value

    @field_validator("wait_for")
    @classmethod
    def _wait_for(cls, value: list[str] | None) -> list[str] | None:
        if value is None or [item.lower() for item in value] == ["none"]:
            return [] if value is not None else None
        for item in value:
            parse_object_ref(item, "flux-system")
        return value

    @field_validator("ocirepository")
    @classmethod
    def _ocirepository(cls, value: str | None) -> str | None:
        if value is not None and value.count("/") > 1:
            msg = f"{value!r} must be [namespace/]name"
            raise ValueError(msg)
        return value

    def wait_for_refs(self) -> list[ObjectRef] | None:
        """The consumers named in FLUX_CI_WAIT_FOR; None means find them automatically."""
        if self.wait_for is None:
            return None
        return [parse_object_ref(item, self.namespace) for item in self.wait_for]

    def ocirepository_ref(self) -> ObjectRef | None:
        if self.ocirepository is None:
            return None
        namespace, _, name = self.ocirepository.rpartition("/")
        return ObjectRef("OCIRepository", namespace or self.namespace, name)

    def required(self, field_name: str) -> str:
        """The value of a field the command cannot do without (a `ConfigError` naming it if unset)."""
        self.require(field_name)
        return str(getattr(self, field_name))

    def require(self, *fields: str) -> None:
        """Raise one `ConfigError` naming every listed field that is unset."""
        problems = [missing_message(name) for name in fields if getattr(self, name) is None]
        if problems:
            raise ConfigError(config_message(problems))


def parse_object_ref(text: str, default_namespace: str) -> ObjectRef:
    """Parse `Kind/namespace/name` or `Kind/name` (Kustomization or HelmRelease)."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        msg = f"{text!r} must be Kind/namespace/name, e.g. Kustomization/flux-system/apps"
        raise ValueError(msg)
    kind = _CONSUMER_KINDS.get(parts[0].lower())
    if kind is None:
        msg = f"{text!r}: kind must be Kustomization or HelmRelease"
        raise ValueError(msg)
    namespace = parts[1] if len(parts) == 3 else default_namespace
    return ObjectRef(kind, namespace, parts[-1])


def variable_name(field_name: str) -> str:
    return f"{PREFIX}{field_name.upper()}"


def missing_message(field_name: str) -> str:
    fallback = CI_FALLBACKS.get(field_name)
    hint = f" (in GitLab CI it defaults from {fallback})" if fallback else ""
    return f"{variable_name(field_name)} is not set{hint}"


def describe_validation_error(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field_name = str(error["loc"][0]) if error["loc"] else "?"
        reason = str(error["msg"]).removeprefix("Value error, ")
        if field_name not in Settings.secret_fields and error["type"] not in ("value_error",):
            reason = f"{reason} (got {error.get('input')!r})"
        problems.append(f"{variable_name(field_name)}: {reason}")
    return config_message(problems)


def config_message(problems: list[str]) -> str:
    lines = "\n".join(f"  - {problem}" for problem in problems)
    return f"invalid configuration, fix these variables:\n{lines}"
