"""The one `Settings` object: environment variables only, GitLab's and GitHub's predefined ones as
fallbacks. Built lazily by the CLI, so `--help` works in an empty environment.

Every value's form is checked here (durations, Kubernetes names, OCI tags and repositories, booleans,
digests), and every problem is reported at once. What a command needs beyond that (variables it
cannot do without, the manifests on disk, a writable dotenv path) is checked by `plan`.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

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
from flux_ci.report.models import ObjectRef
from flux_ci.secrets import has_userinfo, without_userinfo

PREFIX = "FLUX_CI_"
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
# Kubernetes names: a namespace is a DNS-1123 label, a Flux object's name a DNS-1123 subdomain.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# OCI references (distribution spec): host[:port], then lowercase path components.
_REGISTRY_HOST = re.compile(
    r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*)"
    r"(:[0-9]{1,5})?$"
)
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$")
_CONSUMER_KINDS = {"kustomization": "Kustomization", "helmrelease": "HelmRelease"}
_BOOLEANS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}
_TRUE = {"1", "true", "yes", "on"}
# A deadline under a second cannot run even one command; over a week is a typo (and overflows the
# timers the watches use when far larger).
_TIMEOUT_RANGE_S = (1.0, 7 * 24 * 3600.0)
_CREDENTIALS_IN_URL = "contains credentials (user:password@)"

# FLUX_CI_ names in a job's environment that are not settings, yet not typos:
# - read by this project's own build and test tooling (Makefile, .ci/build-tools.sh, tests/sandbox);
_TOOLING_VARIABLES = frozenset({"FLUX_CI_TOOLS_DIR", "FLUX_CI_BUILD_DIR", "FLUX_CI_SANDBOX_DIR"})
_TOOLING_PREFIX = "FLUX_CI_SANDBOX_"  # the sandbox's env file: its registry address and credentials
# - written by the dotenv report (render.to_dotenv); GitLab hands them to the later jobs.
_REPORT_VARIABLES = frozenset(
    {
        "FLUX_CI_STATUS",
        "FLUX_CI_EXIT_CODE",
        "FLUX_CI_RETRYABLE",
        "FLUX_CI_URL",
        "FLUX_CI_SOURCE_REVISION",
        "FLUX_CI_SUPERSEDED_BY",
        "FLUX_CI_CHANGED",
        "FLUX_CI_ROLLBACK_STATUS",
        "FLUX_CI_CLUSTERS",
        "FLUX_CI_CLUSTERS_SUCCEEDED",
        "FLUX_CI_CLUSTERS_FAILED",
        "FLUX_CI_PREVIOUS_DIGEST",
    }
)

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

# flux2 cmd/flux/trigger_receiver.go `defaultOIDCTokenEnvVar`: FLUX_CI_RECEIVER_OIDC_TOKEN's fallback.
RECEIVER_OIDC_TOKEN_VARIABLE = "FLUX_TRIGGER_RECEIVER_OIDC_TOKEN"  # noqa: S105 - a name, not a token

# A field's problem: (field name, message); the field is "" for an unknown variable name.
Problem = tuple[str, str]


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _strict_bool(value: Any) -> Any:
    """Only the words people mean as booleans; `ture` or `enabled` is a mistake, not `false`."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOLEANS:
        return _BOOLEANS[value.strip().lower()]
    msg = f"{value!r} is not a boolean: use true/false, 1/0, yes/no or on/off"
    raise ValueError(msg)


def _duration(value: Any) -> Any:
    seconds = parse_duration(value) if isinstance(value, str) else value
    low, high = _TIMEOUT_RANGE_S
    if isinstance(seconds, int | float) and not (math.isfinite(seconds) and low <= seconds <= high):
        msg = f"{value!r} must be a duration from 1s to 168h, such as 90s, 5m or 1h30m"
        raise ValueError(msg)
    return seconds


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_comma_list)]
StrictBool = Annotated[bool, BeforeValidator(_strict_bool)]
Duration = Annotated[float, BeforeValidator(_duration)]


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
    insecure_registry: StrictBool = False
    reproducible: StrictBool = True
    ignore_paths: CommaList | None = None
    ocirepository: str | None = None
    namespace: str = "flux-system"
    wait_for: CommaList | None = None
    digest: str | None = None
    timeout: Duration = 300.0
    # One kube context, or several separated by commas: one push, then every cluster at once.
    kube_context: str | None = None
    output: Literal["table", "json", "markdown"] = "table"
    dotenv: Path | None = None
    trace: StrictBool = False
    dry_run: StrictBool = False
    allow_empty: StrictBool = False  # push an artifact holding no Kubernetes object
    # How Flux is told about the push (flux_ci/notify.py); None: `receiver` when a Receiver is
    # configured (FLUX_CI_RECEIVER_URL or FLUX_CI_RECEIVER), else `annotate`.
    notify: Literal["annotate", "receiver", "none"] | None = None
    receiver_url: str | None = None  # notification-controller's webhook server: http(s)://host[/base]
    receiver: str | None = None  # [namespace/]name of the Receiver
    receiver_token: SecretStr | None = None  # the `token` of the Receiver's secretRef
    receiver_type: Literal["generic", "generic-hmac", "generic-oidc"] = "generic"
    receiver_oidc_token: SecretStr | None = None  # generic-oidc: the CI job's OIDC ID token
    # false: `deploy`/`reconcile` never read the cluster; they end once the Receiver accepted the
    # request, with status `triggered` (nothing verified).
    verify: StrictBool = True
    # Signing the pushed digest (flux_ci/sign.py): cosign with a key pair, or cosign keyless with the
    # CI job's OIDC token (Sigstore's public Fulcio and Rekor).
    sign: Literal["none", "cosign", "cosign-keyless"] = "none"
    # Upload key-pair signatures to the Rekor transparency log; off by default, as Flux's key-based
    # verification does not need it (keyless signing always uploads).
    cosign_tlog_upload: StrictBool = False
    # On exit 7 or 8, point the moving tags back at the digests they held before this run and wait
    # (at most rollback_timeout more) until the clusters run that artifact again (flux_ci/rollback.py).
    rollback: StrictBool = False
    rollback_timeout: Duration = 120.0
    # cosign's own variables, not FLUX_CI_ ones: the PEM private key (or the path of a file holding
    # it, as GitLab's file variables give it) and its password.
    cosign_private_key: SecretStr | None = Field(default=None, validation_alias="COSIGN_PRIVATE_KEY")
    cosign_password: SecretStr | None = Field(default=None, validation_alias="COSIGN_PASSWORD")

    secret_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "registry_password",
            "receiver_token",
            "receiver_oidc_token",
            "cosign_private_key",
            "cosign_password",
        }
    )
    # Never echoed in a message either: they may hold credentials, which must not be repeated.
    unechoed_fields: ClassVar[frozenset[str]] = secret_fields | {"repository", "source", "receiver_url"}

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
        """Build the settings, turning every problem into one `ConfigError`."""
        settings, problems = cls.load_partial(**overrides)
        if problems:
            raise ConfigError(config_message([message for _, message in problems]))
        return settings

    @classmethod
    def load_partial(cls, **overrides: Any) -> tuple[Settings, list[Problem]]:
        """The settings with each invalid value replaced by its default, and every problem found.

        So a command's own checks (`plan`) can run too, and one message names everything to fix.
        """
        problems: list[Problem] = [("", message) for message in unknown_variables(os.environ)]
        try:
            return cls(**overrides), problems
        except ValidationError as exc:
            broken = field_problems(exc)
        defaults = {
            name: cls.model_fields[name].get_default(call_default_factory=True)
            for name, _ in broken
            if name in cls.model_fields
        }
        return cls(**{**overrides, **defaults}), problems + broken

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        return None if value is None else oci_repository(value)

    @field_validator("source")
    @classmethod
    def _source(cls, value: str | None) -> str | None:
        # Only URLs with a scheme: `git@host:group/app` names a user, not a credential.
        if value is not None and "://" in value and has_userinfo(value):
            msg = f"{_CREDENTIALS_IN_URL}: the source annotation is public, give the URL without them"
            raise ValueError(msg)
        return value

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str | None) -> str | None:
        if value is not None:
            _check_tags([value])
        return value

    @field_validator("extra_tags")
    @classmethod
    def _extra_tags(cls, value: list[str]) -> list[str]:
        words = [tag.lower() for tag in value]
        if words == ["none"]:
            return []
        if "none" in words:
            msg = f"{','.join(value)!r}: none means no extra tags and must stand alone"
            raise ValueError(msg)
        if not value:
            msg = "is empty: list tags such as latest,main, or write none"
            raise ValueError(msg)
        _check_tags(value)
        return list(dict.fromkeys(value))

    @field_validator("digest")
    @classmethod
    def _digest(cls, value: str | None) -> str | None:
        if value is not None and not _DIGEST.match(value):
            msg = f"{value!r} is not a sha256:<64 hex> digest"
            raise ValueError(msg)
        return value

    @field_validator("output", "notify", "receiver_type", "sign", mode="before")
    @classmethod
    def _output(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        _check_namespace(value, value)
        return value

    @field_validator("wait_for")
    @classmethod
    def _wait_for(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        words = [item.lower() for item in value]
        if words == ["none"]:
            return []
        if "none" in words:
            msg = f"{','.join(value)!r}: none means wait for no consumer and must stand alone"
            raise ValueError(msg)
        if not value:
            msg = "is empty: list Kind/namespace/name items, or write none"
            raise ValueError(msg)
        errors = []
        for item in value:
            try:
                parse_object_ref(item, "flux-system")
            except ValueError as exc:
                errors.append(str(exc))
        if errors:
            raise ValueError("; ".join(errors))
        return value

    @field_validator("kube_context")
    @classmethod
    def _kube_context(cls, value: str | None) -> str | None:
        if value is None:
            return None
        names = [name.strip() for name in value.split(",")]
        if not all(names):
            msg = f"{value!r}: a comma-separated list of kube context names must not hold an empty name"
            raise ValueError(msg)
        if len(set(names)) != len(names):
            msg = f"{value!r} names a context twice"
            raise ValueError(msg)
        return ",".join(names)

    @field_validator("receiver_url")
    @classmethod
    def _receiver_url(cls, value: str | None) -> str | None:
        return None if value is None else receiver_url(value)

    @field_validator("ocirepository", "receiver")
    @classmethod
    def _ocirepository(cls, value: str | None) -> str | None:
        if value is None:
            return None
        namespace, slash, name = value.rpartition("/")
        if value.count("/") > 1 or (slash and not namespace) or not name:
            msg = f"{value!r} must be [namespace/]name"
            raise ValueError(msg)
        if slash:
            _check_namespace(namespace, value)
        _check_name(name, value)
        return value

    @property
    def kube_contexts(self) -> list[str | None]:
        """The clusters to act on: each context named in FLUX_CI_KUBE_CONTEXT, else the current one."""
        return list(self.kube_context.split(",")) if self.kube_context else [None]

    def for_cluster(self, context: str | None) -> Settings:
        """These settings for one of the clusters (the kube context it names)."""
        return self.model_copy(update={"kube_context": context})

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

    @property
    def notify_mode(self) -> str:
        """annotate, receiver or none: FLUX_CI_NOTIFY, else receiver when a Receiver is configured."""
        if self.notify is not None:
            return self.notify
        return "receiver" if self.receiver_url is not None or self.receiver is not None else "annotate"

    def receiver_ref(self) -> ObjectRef | None:
        if self.receiver is None:
            return None
        namespace, _, name = self.receiver.rpartition("/")
        return ObjectRef("Receiver", namespace or self.namespace, name)

    def required(self, field_name: str) -> str:
        """The value of a field the command cannot do without (a `ConfigError` naming it if unset)."""
        self.require(field_name)
        return str(getattr(self, field_name))

    def require(self, *fields: str) -> None:
        """Raise one `ConfigError` naming every listed field that is unset."""
        problems = [missing_message(name) for name in fields if getattr(self, name) is None]
        if problems:
            raise ConfigError(config_message(problems))


def oci_repository(text: str) -> str:
    """`[oci://]host[:port]/path` → `oci://host[:port]/path`; a ValueError says what is wrong."""
    if has_userinfo(text):  # checked first, and the value is never repeated: it holds a password
        msg = f"{_CREDENTIALS_IN_URL}: set FLUX_CI_REGISTRY_USER and FLUX_CI_REGISTRY_PASSWORD instead"
        raise ValueError(msg)
    address = text.removeprefix("oci://").rstrip("/")
    host, _, path = address.partition("/")
    if "://" in address or not host or not path:
        msg = f"{text!r} must be oci://<registry>/<path>"
        raise ValueError(msg)
    if "@" in path or ":" in path.rsplit("/", 1)[-1]:
        msg = f"{text!r} must not include a tag or digest (set FLUX_CI_TAG instead)"
        raise ValueError(msg)
    if not _REGISTRY_HOST.match(host):
        msg = f"{text!r}: {host!r} is not a registry host[:port]"
        raise ValueError(msg)
    for component in path.split("/"):
        if not _PATH_COMPONENT.match(component):
            msg = (
                f"{text!r}: path component {component!r} must be lowercase letters and digits, "
                "separated by one of . _ -"
            )
            raise ValueError(msg)
    return f"oci://{address}"


def receiver_url(text: str) -> str:
    """`http(s)://host[:port][/base path]`, without credentials, query or fragment; no trailing `/`."""
    if has_userinfo(text):  # checked first, and the value is never repeated: it may hold a password
        msg = f"{_CREDENTIALS_IN_URL}: the Receiver authenticates with FLUX_CI_RECEIVER_TOKEN"
        raise ValueError(msg)
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = f"{text!r} must be http(s)://<host>[:<port>][/<base path>] (the Receiver webhook server)"
        raise ValueError(msg)
    if parts.query or parts.fragment or "/hook/" in f"{parts.path}/":
        msg = f"{text!r} must be the webhook server's base URL, without /hook/..., query or fragment"
        raise ValueError(msg)
    return text.strip().rstrip("/")


def _check_tags(tags: list[str]) -> None:
    bad = [tag for tag in tags if not _TAG.match(tag)]
    if bad:
        listed = ", ".join(repr(tag) for tag in bad)
        msg = f"{listed}: not a valid OCI tag (letters, digits, _ . -, at most 128, not starting with . or -)"
        raise ValueError(msg)


def _in(text: str, part: str) -> str:
    """How a message names the faulty part: alone, or within the value it came from."""
    return repr(part) if part == text else f"{text!r}: {part!r}"


def _check_namespace(namespace: str, text: str) -> None:
    if not _DNS_LABEL.match(namespace):
        msg = (
            f"{_in(text, namespace)} is not a valid namespace "
            "(lowercase letters, digits and -, at most 63, starting and ending with a letter or digit)"
        )
        raise ValueError(msg)


def _check_name(name: str, text: str) -> None:
    if not _DNS_SUBDOMAIN.match(name):
        msg = (
            f"{_in(text, name)} is not a valid Kubernetes name "
            "(lowercase letters, digits, - and ., starting and ending with a letter or digit)"
        )
        raise ValueError(msg)


def parse_object_ref(text: str, default_namespace: str) -> ObjectRef:
    """Parse `Kind/namespace/name` or `Kind/name` (Kustomization or HelmRelease)."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        msg = f"{text!r} must be Kind/namespace/name or Kind/name, e.g. Kustomization/flux-system/apps"
        raise ValueError(msg)
    kind = _CONSUMER_KINDS.get(parts[0].lower())
    if kind is None:
        msg = f"{text!r}: kind must be Kustomization or HelmRelease"
        raise ValueError(msg)
    namespace = parts[1] if len(parts) == 3 else default_namespace
    _check_namespace(namespace, text)
    _check_name(parts[-1], text)
    return ObjectRef(kind, namespace, parts[-1])


def variable_name(field_name: str) -> str:
    return f"{PREFIX}{field_name.upper()}"


def known_variables() -> frozenset[str]:
    """Every FLUX_CI_ name a job's environment may hold without it being a typo."""
    return (
        frozenset(variable_name(name) for name in _prefixed_fields()) | _TOOLING_VARIABLES | _REPORT_VARIABLES
    )


def _prefixed_fields() -> list[str]:
    """The fields read from FLUX_CI_<NAME> (the others have their own names, e.g. COSIGN_PASSWORD)."""
    return [name for name, info in Settings.model_fields.items() if info.validation_alias is None]


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """A message for every FLUX_CI_ name that flux-ci does not know, with the setting it resembles."""
    known = known_variables()
    fields = sorted(name.upper() for name in _prefixed_fields())
    own_names = {
        name.upper(): str(info.validation_alias)
        for name, info in Settings.model_fields.items()
        if info.validation_alias is not None
    }
    problems = []
    for name in sorted(env):
        upper = name.upper()  # pydantic-settings reads names case-insensitively, so this does too
        if not upper.startswith(PREFIX) or upper in known or upper.startswith(_TOOLING_PREFIX):
            continue
        # Compared without the prefix every name shares, which would make any two look alike.
        close = difflib.get_close_matches(upper.removeprefix(PREFIX), fields, n=1)
        hint = f"; did you mean {PREFIX}{close[0]}?" if close else ""
        if own := own_names.get(upper.removeprefix(PREFIX)):
            hint = f"; set {own} instead"
        problems.append(f"{name} is not a flux-ci variable{hint}")
    return problems


def missing_message(field_name: str) -> str:
    fallback = CI_FALLBACKS.get(field_name)
    hint = f" (in GitLab CI it defaults from {fallback})" if fallback else ""
    return f"{variable_name(field_name)} is not set{hint}"


def variable_of(field_name: str) -> str:
    """The variable a field is read from: FLUX_CI_<NAME>, or its own name (COSIGN_PASSWORD)."""
    alias = Settings.model_fields[field_name].validation_alias
    return str(alias) if alias is not None else variable_name(field_name)


def field_problems(exc: ValidationError) -> list[Problem]:
    """One (field, message) pair per invalid field, naming its variable."""
    problems: dict[str, str] = {}
    for error in exc.errors():
        field_name = str(error["loc"][0]) if error["loc"] else ""
        reason = str(error["msg"]).removeprefix("Value error, ")
        if field_name not in Settings.unechoed_fields and error["type"] != "value_error":
            reason = f"{reason} (got {error.get('input')!r})"
        problems.setdefault(field_name, f"{variable_name(field_name)}: {reason}")
    return list(problems.items())


def config_message(problems: list[str]) -> str:
    lines = "\n".join(f"  - {problem}" for problem in problems)
    return f"invalid configuration, fix these variables:\n{lines}"
