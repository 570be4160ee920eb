"""The one `Settings` object: environment variables only, GitLab's and GitHub's predefined ones as
fallbacks (`ci`). Built lazily by the CLI, so `--help` works in an empty environment.

Every value's form is checked here (`values`), and every problem is reported at once. What a command
needs beyond that (variables it cannot do without, the manifests on disk, a writable dotenv path) is
checked by `plan`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from flux_ci.config import names
from flux_ci.config.ci import (
    JOB_STARTED_AT_VARIABLE,
    JOB_TIMEOUT_VARIABLE,
    CIDefaultsSource,
    JobSeconds,
    JobStartedAt,
)
from flux_ci.config.names import PREFIX, Problem, config_message, missing_message, variable_name
from flux_ci.config.values import (
    CommaList,
    Duration,
    SoakDuration,
    StrictBool,
    Wave,
    check_namespace,
    check_tags,
    choice,
    digest,
    extra_tags,
    kube_contexts,
    namespaced_name,
    oci_repository,
    parse_object_ref,
    parse_waves,
    public_url,
    receiver_url,
    source_url,
    wait_for,
)
from flux_ci.deadline import DEFAULT_TIMEOUT_S, JobClock
from flux_ci.errors import ConfigError
from flux_ci.report.models import ObjectRef
from flux_ci.secrets import is_secret_variable

# Entries per consumer at most: Flux keeps far fewer, unless a HelmRelease's maxHistory says otherwise.
MAX_HISTORY = 100


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
    timeout: Duration = DEFAULT_TIMEOUT_S
    # One kube context, or several separated by commas: one push, then every cluster at once.
    kube_context: str | None = None
    output: Literal["table", "json", "markdown"] = "table"
    dotenv: Path | None = None
    trace: StrictBool = False
    dry_run: StrictBool = False
    allow_empty: StrictBool = False  # push an artifact holding no Kubernetes object
    # How Flux is told about the push (flux_ci/kube/notify.py); None: `receiver` when a Receiver is
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
    # Signing the pushed digest (flux_ci/registry/sign.py): cosign with a key pair, or cosign keyless with the
    # CI job's OIDC token (Sigstore's public Fulcio and Rekor).
    sign: Literal["none", "cosign", "cosign-keyless"] = "none"
    # Upload key-pair signatures to the Rekor transparency log; off by default, as Flux's key-based
    # verification does not need it (keyless signing always uploads).
    cosign_tlog_upload: StrictBool = False
    # A failed attempt of the digest ends the run (`fail`, exit 7), or is waited out (`wait`): Flux's
    # own retries (HelmRelease remediation, an apply that needs a CRD from elsewhere) may still apply
    # it; a state Flux will not retry by itself (Stalled) still ends it, and at the deadline the last
    # failure is exit 7.
    on_failure: Literal["fail", "wait"] = "fail"
    # On exit 7 or 8, point the moving tags back at the digests they held before this run and wait
    # (at most rollback_timeout more) until the clusters run that artifact again (delivery/rollback.py).
    rollback: StrictBool = False
    rollback_timeout: Duration = 120.0
    # Who pushed: recorded on every artifact as io.flux-ci.* annotations (config/ci.py); GitLab's and
    # GitHub's predefined variables fill them in.
    pipeline_url: str | None = None
    job_url: str | None = None
    pipeline_user: str | None = None
    # `history`: the entries of each consumer's own status.history shown (Flux keeps 5 for a
    # Kustomization; spec.maxHistory, 5 by default, for a HelmRelease).
    history: int = 10
    # A consumer whose Ready covers only the apply (no wait, no health checks) is exit 2 before the push.
    require_health: StrictBool = False
    # Progressive delivery for deploy and promote (delivery/waves.py): `TAG=CONTEXT[,CONTEXT...];...`,
    # one wave after the other. A wave's tag moves only once every earlier wave applied the artifact
    # (and stayed healthy for wave_soak); it replaces extra_tags and kube_context for the command.
    waves: str | None = None
    wave_soak: SoakDuration = 0.0
    # The job runs in a deploy freeze period (GitLab sets CI_DEPLOY_FREEZE): deploy and promote refuse
    # before anything is pushed, unless ignore_freeze.
    deploy_freeze: StrictBool = False
    ignore_freeze: StrictBool = False
    # cosign's own variables, not FLUX_CI_ ones: the PEM private key (or the path of a file holding
    # it, as GitLab's file variables give it) and its password.
    cosign_private_key: SecretStr | None = Field(default=None, validation_alias="COSIGN_PRIVATE_KEY")
    cosign_password: SecretStr | None = Field(default=None, validation_alias="COSIGN_PASSWORD")
    # GitLab's own: the job is killed CI_JOB_TIMEOUT seconds after CI_JOB_STARTED_AT, so the
    # deadline ends in time for the report (flux_ci/deadline.py `fit`).
    job_timeout: JobSeconds | None = Field(default=None, validation_alias=JOB_TIMEOUT_VARIABLE)
    job_started_at: JobStartedAt | None = Field(default=None, validation_alias=JOB_STARTED_AT_VARIABLE)

    # Filled in below the class from `secrets`, the one list of secret variables.
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    # Never echoed in a message either: they may hold credentials, which must not be repeated.
    unechoed_fields: ClassVar[frozenset[str]] = frozenset()

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
        return init_settings, env_settings, CIDefaultsSource(settings_cls)

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
            str(cls.model_fields[name].validation_alias or name): cls.model_fields[name].get_default(
                call_default_factory=True
            )
            for name, _ in broken
            if name in cls.model_fields
        }
        return cls(**{**overrides, **defaults}), problems + broken

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        return None if value is None else oci_repository(value)

    # Each validator hands its value to a plain function of `values` (where `make mutation` can
    # reach it: mutmut leaves decorated functions alone).
    @field_validator("source")
    @classmethod
    def _source(cls, value: str | None) -> str | None:
        return None if value is None else source_url(value)

    @field_validator("pipeline_url", "job_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return None if value is None else public_url(value)

    @field_validator("history")
    @classmethod
    def _history(cls, value: int) -> int:
        if not 1 <= value <= MAX_HISTORY:
            msg = f"{value} is not between 1 and {MAX_HISTORY}"
            raise ValueError(msg)
        return value

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str | None) -> str | None:
        if value is not None:
            check_tags([value])
        return value

    @field_validator("extra_tags")
    @classmethod
    def _extra_tags(cls, value: list[str]) -> list[str]:
        return extra_tags(value)

    @field_validator("digest")
    @classmethod
    def _digest(cls, value: str | None) -> str | None:
        return None if value is None else digest(value)

    @field_validator("output", "notify", "receiver_type", "sign", "on_failure", mode="before")
    @classmethod
    def _output(cls, value: Any) -> Any:
        return choice(value)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        check_namespace(value, value)
        return value

    @field_validator("wait_for")
    @classmethod
    def _wait_for(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else wait_for(value)

    @field_validator("kube_context")
    @classmethod
    def _kube_context(cls, value: str | None) -> str | None:
        return None if value is None else kube_contexts(value)

    @field_validator("waves")
    @classmethod
    def _waves(cls, value: str | None) -> str | None:
        return None if value is None else ";".join(map(str, parse_waves(value)))

    @field_validator("receiver_url")
    @classmethod
    def _receiver_url(cls, value: str | None) -> str | None:
        return None if value is None else receiver_url(value)

    @field_validator("ocirepository", "receiver")
    @classmethod
    def _ocirepository(cls, value: str | None) -> str | None:
        return None if value is None else namespaced_name(value)

    @property
    def wave_plan(self) -> tuple[Wave, ...]:
        """The waves of FLUX_CI_WAVES, in order (none when it is unset)."""
        return parse_waves(self.waves) if self.waves else ()

    @property
    def kube_contexts(self) -> list[str | None]:
        """The clusters to act on: every wave's (FLUX_CI_WAVES), else each context named in
        FLUX_CI_KUBE_CONTEXT, else the current one."""
        if self.waves:
            return [name for wave in self.wave_plan for name in wave.contexts]
        return list(self.kube_context.split(",")) if self.kube_context else [None]

    def for_cluster(self, context: str | None) -> Settings:
        """These settings for one of the clusters (the kube context it names). A cluster of a wave
        is deployed to as if alone: its context, and its wave's tag as the one moving tag."""
        wave = next((wave for wave in self.wave_plan if context in wave.contexts), None)
        if wave is None:
            return self.model_copy(update={"kube_context": context})
        return self.model_copy(update={"kube_context": context, "extra_tags": [wave.tag], "waves": None})

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

    @property
    def job_clock(self) -> JobClock | None:
        """The CI job's own time limit, when the CI system says it (GitLab sets both variables)."""
        if self.job_timeout is None or self.job_started_at is None:
            return None
        return JobClock(self.job_timeout, self.job_started_at)

    def required(self, field_name: str) -> str:
        """The value of a field the command cannot do without (a `ConfigError` naming it if unset)."""
        self.require(field_name)
        return str(getattr(self, field_name))

    def require(self, *fields: str) -> None:
        """Raise one `ConfigError` naming every listed field that is unset."""
        problems = [missing_message(name) for name in fields if getattr(self, name) is None]
        if problems:
            raise ConfigError(config_message(problems))


def variable_of(field_name: str) -> str:
    """The variable a field is read from: FLUX_CI_<NAME>, or its own name (COSIGN_PASSWORD)."""
    alias = Settings.model_fields[field_name].validation_alias
    return str(alias) if alias is not None else variable_name(field_name)


Settings.secret_fields = frozenset(
    name for name in Settings.model_fields if is_secret_variable(variable_of(name))
)
Settings.unechoed_fields = Settings.secret_fields | {
    "repository", "source", "receiver_url", "pipeline_url", "job_url",
}  # fmt: skip


def _prefixed_fields() -> list[str]:
    """The fields read from FLUX_CI_<NAME> (the others have their own names, e.g. COSIGN_PASSWORD)."""
    return [name for name, info in Settings.model_fields.items() if info.validation_alias is None]


def known_variables() -> frozenset[str]:
    return names.known_variables(_prefixed_fields())


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    own_names = {
        name.upper(): str(info.validation_alias)
        for name, info in Settings.model_fields.items()
        if info.validation_alias is not None
    }
    return names.unknown_variables(env, _prefixed_fields(), own_names)


def field_problems(exc: ValidationError) -> list[Problem]:
    """One (field, message) pair per invalid field, naming its variable."""
    problems: dict[str, str] = {}
    for error in exc.errors():
        located = str(error["loc"][0]) if error["loc"] else ""
        field_name = _FIELD_OF_ALIAS.get(located, located)  # CI_JOB_TIMEOUT is field job_timeout
        reason = str(error["msg"]).removeprefix("Value error, ")
        if field_name not in Settings.unechoed_fields and error["type"] != "value_error":
            reason = f"{reason} (got {error.get('input')!r})"
        known = field_name in Settings.model_fields
        variable = variable_of(field_name) if known else variable_name(field_name)
        problems.setdefault(field_name, f"{variable}: {reason}")
    return list(problems.items())


_FIELD_OF_ALIAS = {
    str(info.validation_alias): name
    for name, info in Settings.model_fields.items()
    if info.validation_alias is not None
}
