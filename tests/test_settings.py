from __future__ import annotations

from pathlib import Path

import pytest

from flux_ci.errors import ConfigError
from flux_ci.models import ObjectRef
from flux_ci.settings import Settings, ci_defaults, parse_object_ref

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
