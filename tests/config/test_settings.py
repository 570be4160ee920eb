from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from flux_ci.config.ci import ci_defaults
from flux_ci.config.settings import Settings, field_problems, unknown_variables
from flux_ci.config.values import parse_object_ref
from flux_ci.errors import ConfigError
from flux_ci.report.dotenv import to_dotenv
from flux_ci.report.models import Artifact, ErrorInfo, ObjectRef, Report, SourceState

GITLAB = {
    "CI_REGISTRY_IMAGE": "registry.example.com/group/app",
    "CI_COMMIT_SHORT_SHA": "0123abcd",
    "CI_COMMIT_SHA": "0123abcd" + "e" * 32,
    "CI_COMMIT_REF_NAME": "main",
    "CI_PROJECT_URL": "https://gitlab.example.com/group/app",
    "CI_REPOSITORY_URL": "https://gitlab-ci-token:tok3n-value@gitlab.example.com/group/app.git",
    "CI_REGISTRY_USER": "gitlab-ci-token",
    "CI_REGISTRY_PASSWORD": "job-token-value",
    "KUBE_CONTEXT": "group/agents:prod",
    "CI_DEBUG_TRACE": "true",
}


def _set(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_defaults_without_any_environment() -> None:
    settings = Settings.load()
    assert settings.path == Path("manifests")
    assert settings.extra_tags == ["latest"]
    assert settings.namespace == "flux-system"
    assert settings.timeout == 300
    assert settings.output == "table"
    assert settings.reproducible is True
    assert settings.repository is None


def test_gitlab_predefined_variables_work_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, GITLAB)
    settings = Settings.load()
    assert settings.repository == "oci://registry.example.com/group/app/manifests"
    assert settings.tag == "0123abcd"
    assert settings.source == "https://gitlab.example.com/group/app"
    assert settings.revision == f"main@sha1:{GITLAB['CI_COMMIT_SHA']}"
    assert settings.registry_user == "gitlab-ci-token"
    assert settings.registry_password is not None
    assert settings.registry_password.get_secret_value() == "job-token-value"
    assert settings.kube_context == "group/agents:prod"
    assert settings.trace is True


def test_source_never_comes_from_the_token_bearing_repository_url(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, GITLAB)
    assert "tok3n-value" not in repr(Settings.load())


def test_flux_ci_variables_win_over_gitlab_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, GITLAB)
    monkeypatch.setenv("FLUX_CI_TAG", "v1.2.3")
    monkeypatch.setenv("FLUX_CI_REPOSITORY", "registry.example.com/other")
    settings = Settings.load()
    assert settings.tag == "v1.2.3"
    assert settings.repository == "oci://registry.example.com/other"


def test_github_actions_equivalents() -> None:
    env = {
        "GITHUB_REPOSITORY": "Octo/App",
        "GITHUB_SHA": "89abcdef" + "0" * 32,
        "GITHUB_REF_NAME": "main",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_ACTOR": "octocat",
        "GITHUB_TOKEN": "ghs_secret",
        "RUNNER_DEBUG": "1",
    }
    defaults = ci_defaults(env)
    assert defaults["repository"] == "oci://ghcr.io/octo/app/manifests"
    assert defaults["tag"] == "89abcdef"
    assert defaults["source"] == "https://github.com/Octo/App"
    assert defaults["revision"] == f"main@sha1:{env['GITHUB_SHA']}"
    assert defaults["registry_user"] == "octocat"
    assert defaults["trace"] == "true"


def test_comma_lists_and_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_CI_EXTRA_TAGS", "latest, main ,")
    monkeypatch.setenv("FLUX_CI_IGNORE_PATHS", "*.md,docs/")
    monkeypatch.setenv("FLUX_CI_WAIT_FOR", "Kustomization/apps/web,helmrelease/db")
    settings = Settings.load()
    assert settings.extra_tags == ["latest", "main"]
    assert settings.ignore_paths == ["*.md", "docs/"]
    assert settings.wait_for_refs() == [
        ObjectRef("Kustomization", "apps", "web"),
        ObjectRef("HelmRelease", "flux-system", "db"),
    ]
    monkeypatch.setenv("FLUX_CI_WAIT_FOR", "none")
    monkeypatch.setenv("FLUX_CI_EXTRA_TAGS", "none")
    settings = Settings.load()
    assert settings.wait_for_refs() == []
    assert settings.extra_tags == []


def test_every_invalid_variable_is_named_in_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_CI_TIMEOUT", "soon")
    monkeypatch.setenv("FLUX_CI_OUTPUT", "xml")
    monkeypatch.setenv("FLUX_CI_REPOSITORY", "oci://host/app:v1")
    monkeypatch.setenv("FLUX_CI_DIGEST", "sha256:nothex")
    monkeypatch.setenv("FLUX_CI_WAIT_FOR", "Deployment/x/y")
    monkeypatch.setenv("FLUX_CI_TAG", "not a tag")
    with pytest.raises(ConfigError) as caught:
        Settings.load()
    for name in ("TIMEOUT", "OUTPUT", "REPOSITORY", "DIGEST", "WAIT_FOR", "TAG"):
        assert f"FLUX_CI_{name}:" in caught.value.message


def test_require_names_every_missing_variable_with_its_gitlab_source() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load().require("repository", "tag", "digest")
    message = caught.value.message
    assert "FLUX_CI_REPOSITORY is not set (in GitLab CI it defaults from CI_REGISTRY_IMAGE)" in message
    assert "FLUX_CI_TAG is not set" in message
    assert "FLUX_CI_DIGEST is not set" in message


def test_password_value_never_appears_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_CI_REGISTRY_PASSWORD", "pw-that-must-not-leak")
    monkeypatch.setenv("FLUX_CI_TIMEOUT", "bad")
    with pytest.raises(ConfigError) as caught:
        Settings.load()
    assert "pw-that-must-not-leak" not in str(caught.value)
    assert "pw-that-must-not-leak" not in repr(Settings.load(timeout="5m"))


def test_non_positive_timeout_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_CI_TIMEOUT", "0s")
    with pytest.raises(ConfigError, match="FLUX_CI_TIMEOUT"):
        Settings.load()


def test_ocirepository_ref_takes_the_default_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_CI_OCIREPOSITORY", "app")
    monkeypatch.setenv("FLUX_CI_NAMESPACE", "apps")
    assert Settings.load().ocirepository_ref() == ObjectRef("OCIRepository", "apps", "app")
    monkeypatch.setenv("FLUX_CI_OCIREPOSITORY", "other/app")
    assert Settings.load().ocirepository_ref() == ObjectRef("OCIRepository", "other", "app")


@pytest.mark.parametrize("text", ["Kustomization", "Kustomization/a/b/c", "Pod/x/y", "Kustomization//x"])
def test_parse_object_ref_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match=r"[Kk]ind"):
        parse_object_ref(text, "flux-system")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("YES", True),
        (" on ", True),
        ("1", True),
        ("false", False),
        ("No", False),
        ("off", False),
        ("0", False),
    ],
)
def test_booleans_accept_the_usual_words(monkeypatch: pytest.MonkeyPatch, text: str, expected: bool) -> None:
    monkeypatch.setenv("FLUX_CI_INSECURE_REGISTRY", text)
    assert Settings.load().insecure_registry is expected


@pytest.mark.parametrize("text", ["ture", "enabled", "2", "y", "t"])
def test_booleans_refuse_anything_else(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("FLUX_CI_DRY_RUN", text)
    with pytest.raises(ConfigError, match=r"FLUX_CI_DRY_RUN: .* is not a boolean"):
        Settings.load()


def test_ci_debug_trace_stays_lenient_but_flux_ci_trace_is_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_DEBUG_TRACE", "maybe")
    assert Settings.load().trace is False
    monkeypatch.setenv("FLUX_CI_TRACE", "maybe")
    with pytest.raises(ConfigError, match="FLUX_CI_TRACE"):
        Settings.load()


@pytest.mark.parametrize(
    ("text", "seconds"), [("1s", 1.0), ("90s", 90.0), ("1h30m", 5400.0), ("168h", 604800.0)]
)
def test_timeouts_within_bounds(monkeypatch: pytest.MonkeyPatch, text: str, seconds: float) -> None:
    monkeypatch.setenv("FLUX_CI_TIMEOUT", text)
    assert Settings.load().timeout == seconds


@pytest.mark.parametrize("text", ["inf", "nan", "-inf", "1e400", "0", "-5", "-5s", "0.5s", "999ms", "169h"])
def test_timeouts_must_be_finite_and_at_least_a_second(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("FLUX_CI_TIMEOUT", text)
    with pytest.raises(ConfigError, match="FLUX_CI_TIMEOUT"):
        Settings.load()


def test_extra_tags_drop_repeats_and_none_stands_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_CI_EXTRA_TAGS", "latest,main,latest")
    assert Settings.load().extra_tags == ["latest", "main"]
    monkeypatch.setenv("FLUX_CI_EXTRA_TAGS", "none,latest")
    with pytest.raises(ConfigError, match="FLUX_CI_EXTRA_TAGS: 'none,latest': none means no extra tags"):
        Settings.load()


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("registry.example.com:5000/group/app", "oci://registry.example.com:5000/group/app"),
        ("oci://[::1]:5000/a/b/", "oci://[::1]:5000/a/b"),
        ("oci://localhost:5000/my__app/x--y/z.v2", "oci://localhost:5000/my__app/x--y/z.v2"),
    ],
)
def test_repository_forms_that_are_accepted(
    monkeypatch: pytest.MonkeyPatch, text: str, normalized: str
) -> None:
    monkeypatch.setenv("FLUX_CI_REPOSITORY", text)
    assert Settings.load().repository == normalized


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("oci://registry.example.com/Group/app", "must be lowercase"),
        ("oci://registry.example.com/app:v1", "must not include a tag or digest"),
        ("oci://registry.example.com/app@sha256:" + "0" * 64, "must not include a tag or digest"),
        ("oci://registry.example.com", "must be oci://<registry>/<path>"),
        ("https://registry.example.com/app", "must be oci://<registry>/<path>"),
        ("oci://registry.example.com/app-/x", "must be lowercase"),
        ("oci://bad_host/app", "is not a registry host"),
    ],
)
def test_repository_forms_that_are_refused(monkeypatch: pytest.MonkeyPatch, text: str, reason: str) -> None:
    monkeypatch.setenv("FLUX_CI_REPOSITORY", text)
    with pytest.raises(ConfigError, match=f"FLUX_CI_REPOSITORY: .*{reason}"):
        Settings.load()


@pytest.mark.parametrize(
    "text", ["oci://robot:pw-Secret-1@registry.example.com/app", "robot:pw-Secret-1@r.example/app"]
)
def test_credentials_in_the_repository_are_refused_and_never_repeated(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv("FLUX_CI_REPOSITORY", text)
    with pytest.raises(ConfigError) as caught:
        Settings.load()
    assert "FLUX_CI_REPOSITORY: contains credentials (user:password@)" in caught.value.message
    assert "pw-Secret-1" not in caught.value.message
    assert "robot" not in caught.value.message


def test_credentials_in_the_source_are_refused_and_never_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_CI_SOURCE", "https://oauth2:glpat-Secret99@gitlab.example.com/g/app")
    with pytest.raises(ConfigError) as caught:
        Settings.load()
    assert "FLUX_CI_SOURCE: contains credentials (user:password@)" in caught.value.message
    assert "glpat-Secret99" not in caught.value.message
    monkeypatch.setenv("FLUX_CI_SOURCE", "git@github.com:octo/app.git")  # a user, no credential
    assert Settings.load().source == "git@github.com:octo/app.git"


def test_a_project_url_carrying_a_token_never_becomes_the_source() -> None:
    defaults = ci_defaults({"CI_PROJECT_URL": "https://gitlab-ci-token:tok3n@gitlab.example.com/g/app"})
    assert defaults["source"] == "https://gitlab.example.com/g/app"


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("FLUX_CI_NAMESPACE", "Flux_System", "is not a valid namespace"),
        ("FLUX_CI_NAMESPACE", "a" * 64, "is not a valid namespace"),
        ("FLUX_CI_OCIREPOSITORY", "a/b/c", r"must be \[namespace/\]name"),
        ("FLUX_CI_OCIREPOSITORY", "/app", r"must be \[namespace/\]name"),
        ("FLUX_CI_OCIREPOSITORY", "apps/App", "is not a valid Kubernetes name"),
        ("FLUX_CI_WAIT_FOR", "Kustomization/Bad_NS/app", "is not a valid namespace"),
        ("FLUX_CI_WAIT_FOR", "HelmRelease/apps/db_1", "is not a valid Kubernetes name"),
        ("FLUX_CI_WAIT_FOR", "none,Kustomization/apps/web", "must stand alone"),
        ("FLUX_CI_WAIT_FOR", ",", "is empty"),
    ],
)
def test_kubernetes_names_are_checked(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"{variable}: .*{reason}"):
        Settings.load()


def test_unknown_variables_are_named_with_the_likely_one() -> None:
    problems = unknown_variables({"FLUX_CI_EXTRA_TAG": "x", "flux_ci_timout": "5m", "FLUX_CI_ZZZZZZ": "1"})
    assert problems == [
        "FLUX_CI_EXTRA_TAG is not a flux-ci variable; did you mean FLUX_CI_EXTRA_TAGS?",
        "FLUX_CI_ZZZZZZ is not a flux-ci variable",
        "flux_ci_timout is not a flux-ci variable; did you mean FLUX_CI_TIMEOUT?",
    ]


def test_tooling_variables_and_reserved_settings_are_known() -> None:
    env = dict.fromkeys(
        (
            "FLUX_CI_TOOLS_DIR",
            "FLUX_CI_BUILD_DIR",
            "FLUX_CI_SANDBOX_DIR",
            "FLUX_CI_SANDBOX_REGISTRY",
            "FLUX_CI_WAIT_FOR",
            "FLUX_CI_ALLOW_EMPTY",
        ),
        "x",
    )
    assert unknown_variables(env) == []


def test_variables_of_an_earlier_jobs_dotenv_report_are_known() -> None:
    report = Report(
        command="deploy",
        exit_code=9,
        artifact=Artifact("oci://r.example/a", ("t",), "sha256:" + "0" * 64, "s", "main@sha1:abc"),
        sources=[SourceState(ObjectRef("OCIRepository", "n", "a"), "u", "t@sha256:x", "True", "m")],
        error=ErrorInfo("superseded", "newer", retryable=True, superseded_by="sha256:" + "1" * 64),
    )
    written = {line.split("=", 1)[0]: "x" for line in to_dotenv(report).splitlines()}
    assert len(written) >= 8
    assert unknown_variables(written) == []


def test_an_unknown_variable_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_CI_EXTRA_TAG", "main")
    with pytest.raises(ConfigError, match="did you mean FLUX_CI_EXTRA_TAGS"):
        Settings.load()


def test_load_partial_reports_every_problem_and_keeps_the_valid_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLUX_CI_TIMEOUT", "inf")
    monkeypatch.setenv("FLUX_CI_TAG", "bad tag")
    monkeypatch.setenv("FLUX_CI_NAMESPACE", "apps")
    monkeypatch.setenv("FLUX_CI_TYPO", "1")
    settings, problems = Settings.load_partial()
    assert [field for field, _ in problems] == ["", "tag", "timeout"]
    assert settings.timeout == 300  # the broken value's default, so later checks can still run
    assert settings.tag is None
    assert settings.namespace == "apps"


def test_gitlab_job_time_limit_is_read_as_gitlab_writes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, {"CI_JOB_TIMEOUT": "3600", "CI_JOB_STARTED_AT": "2026-12-07T20:00:00Z"})
    clock = Settings.load().job_clock
    assert clock is not None
    assert clock.timeout_s == 3600
    assert clock.started_at == datetime(2026, 12, 7, 20, 0, 0, tzinfo=UTC)


def test_a_job_start_without_a_zone_is_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, {"CI_JOB_TIMEOUT": "60", "CI_JOB_STARTED_AT": "2026-12-07T20:00:00"})
    clock = Settings.load().job_clock
    assert clock is not None
    assert clock.started_at.utcoffset() == timedelta(0)


def test_without_both_job_variables_no_job_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.load().job_clock is None
    monkeypatch.setenv("CI_JOB_TIMEOUT", "3600")
    assert Settings.load().job_clock is None


def test_invalid_job_variables_are_named_as_they_are_spelled(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, {"CI_JOB_TIMEOUT": "an hour", "CI_JOB_STARTED_AT": "yesterday", "FLUX_CI_TIMEOUT": "x"})
    with pytest.raises(ConfigError) as raised:
        Settings.load()
    message = str(raised.value)
    assert "CI_JOB_TIMEOUT: 'an hour' is not a number of seconds" in message
    assert "CI_JOB_STARTED_AT: 'yesterday' is not an ISO 8601 time" in message
    assert "FLUX_CI_TIMEOUT:" in message
    assert "FLUX_CI_JOB_TIMEOUT" not in message


@pytest.mark.parametrize("text", ["0", "-5", "nan", "inf"])
def test_a_job_timeout_must_be_a_positive_number(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("CI_JOB_TIMEOUT", text)
    with pytest.raises(ConfigError, match="CI_JOB_TIMEOUT"):
        Settings.load()


def test_a_problem_echoes_the_value_only_where_it_cannot_hold_a_credential() -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(output="xml", tag=".bad", repository=123, registry_password=456)
    problems = dict(field_problems(raised.value))
    assert problems["output"] == "FLUX_CI_OUTPUT: Input should be 'table', 'json' or 'markdown' (got 'xml')"
    assert problems["tag"] == (
        "FLUX_CI_TAG: '.bad': not a valid OCI tag "
        "(letters, digits, _ . -, at most 128, not starting with . or -)"
    )  # a rule's own message says what is wrong: no "(got ...)"
    assert problems["repository"] == "FLUX_CI_REPOSITORY: Input should be a valid string"  # never echoed
    assert "456" not in problems["registry_password"]
