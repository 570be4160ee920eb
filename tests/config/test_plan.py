"""The per-command configuration plan: what each command needs, the manifests on disk, the dotenv path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from flux_ci.config import plan
from flux_ci.config.settings import Settings
from flux_ci.errors import ConfigError
from tests.config.plans import problems_of, settings_for


def test_a_complete_push_configuration_passes_and_gives_its_plan(manifests: Path) -> None:
    settings = settings_for(manifests, extra_tags=["latest", "c1", "main"])
    for command in ("push", "deploy"):
        plan.check(settings, command)
    pushed = plan.push_plan(settings)
    assert (pushed.repository, pushed.tag, pushed.source, pushed.revision, pushed.tags) == (
        "oci://registry.example.com/g/app",
        "c1",
        "https://git.example/g/app",
        "main@sha1:abc",
        ("c1", "latest", "main"),
    )
    assert (pushed.manifests.files, pushed.manifests.objects) == (1, 1)


def test_push_names_every_missing_variable_at_once(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "nope", repository=None, tag=None, source=None, revision=None)
    message = problems_of(settings, "push")
    for expected in (
        "FLUX_CI_REPOSITORY is not set (in GitLab CI it defaults from CI_REGISTRY_IMAGE)",
        "FLUX_CI_TAG is not set",
        "FLUX_CI_SOURCE is not set",
        "FLUX_CI_REVISION is not set",
        "FLUX_CI_PATH: ",
    ):
        assert expected in message
    with pytest.raises(ConfigError, match="FLUX_CI_TAG is not set"):
        plan.push_plan(settings)


@pytest.mark.parametrize(
    ("overrides", "missing"),
    [
        ({"registry_user": "alice"}, "FLUX_CI_REGISTRY_PASSWORD is not set"),
        ({"registry_password": "only-the-Password1"}, "FLUX_CI_REGISTRY_USER is not set"),
    ],
)
def test_registry_credentials_come_in_pairs(manifests: Path, overrides: dict[str, Any], missing: str) -> None:
    for command in ("push", "deploy", "reconcile", "wait"):
        message = problems_of(settings_for(manifests, digest="sha256:" + "0" * 64, **overrides), command)
        assert missing in message
        assert "only-the-Password1" not in message


def test_reconcile_and_wait_need_the_digest(manifests: Path) -> None:
    settings = settings_for(manifests)
    assert "FLUX_CI_DIGEST is not set" in problems_of(settings, "reconcile")
    assert "FLUX_CI_DIGEST is not set" in problems_of(settings, "wait")


def test_sources_are_found_by_repository_or_a_named_ocirepository(manifests: Path) -> None:
    nothing = settings_for(manifests, repository=None, digest="sha256:" + "0" * 64)
    for command in ("reconcile", "status"):
        assert "neither is FLUX_CI_OCIREPOSITORY" in problems_of(nothing, command)
        plan.check(
            settings_for(manifests, repository=None, ocirepository="apps/app", digest="sha256:" + "0" * 64),
            command,
        )
    assert "neither is FLUX_CI_OCIREPOSITORY" in problems_of(nothing, "wait")
    plan.check(
        settings_for(
            manifests, repository=None, wait_for=["Kustomization/apps/web"], digest="sha256:" + "0" * 64
        ),
        "wait",
    )


def test_doctor_is_never_stopped_by_the_plan(tmp_path: Path) -> None:
    plan.check(settings_for(tmp_path / "nope", repository=None, tag=None), "doctor")


def test_an_unknown_command_is_a_bug_not_a_config_error(manifests: Path) -> None:
    with pytest.raises(ValueError, match="launch"):
        plan.check(settings_for(manifests), "launch")


# --- the manifests --------------------------------------------------------------------------------


def test_empty_artifact_is_refused_unless_allowed(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("")
    message = problems_of(settings_for(tmp_path), "push")
    assert "holds no Kubernetes object" in message
    assert "FLUX_CI_ALLOW_EMPTY=true" in message
    plan.check(settings_for(tmp_path, allow_empty=True), "push")


def test_missing_path_is_named(tmp_path: Path) -> None:
    assert f"FLUX_CI_PATH: {str(tmp_path / 'nope')!r} does not exist" in problems_of(
        settings_for(tmp_path / "nope"), "push"
    )


def test_an_unreadable_directory_is_not_an_empty_one(
    manifests: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # os.access decides, as the kernel would for this user; root reads everything, so pretend.
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: False if Path(path) == manifests else real_access(path, mode)
    )
    message = problems_of(settings_for(manifests), "push")
    assert f"FLUX_CI_PATH: cannot read {str(manifests)!r}: Permission denied" in message
    assert "no Kubernetes object" not in message
    plan.check(settings_for(manifests, allow_empty=True), "status")  # only commands that package it care


def test_an_unreadable_manifest_file_is_named(manifests: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_access = os.access
    unreadable = manifests / "cm.yaml"
    monkeypatch.setattr(
        os, "access", lambda path, mode: False if Path(path) == unreadable else real_access(path, mode)
    )
    assert f"cannot read {str(unreadable)!r}" in problems_of(settings_for(manifests), "push")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 directory anyway")
def test_a_mode_000_directory_is_unreadable(manifests: Path) -> None:
    manifests.chmod(0)
    try:
        assert "cannot read" in problems_of(settings_for(manifests), "push")
    finally:
        manifests.chmod(0o755)


# --- the dotenv report path ------------------------------------------------------------------------


def test_a_writable_dotenv_path_passes_and_is_not_created(manifests: Path, tmp_path: Path) -> None:
    dotenv = tmp_path / "deploy.env"
    plan.check(settings_for(manifests, dotenv=dotenv), "push")
    assert not dotenv.exists()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("missing-dir/deploy.env", "its directory"),
        ("manifests", "is a directory"),
    ],
)
def test_an_unwritable_dotenv_path_is_refused_before_anything_runs(
    manifests: Path, tmp_path: Path, name: str, reason: str
) -> None:
    message = problems_of(settings_for(manifests, dotenv=tmp_path / name), "status")
    assert "FLUX_CI_DOTENV: " in message
    assert reason in message


def test_a_dotenv_directory_without_write_permission_is_refused(
    manifests: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: False if Path(path) == tmp_path else real_access(path, mode)
    )
    assert "is not writable" in problems_of(settings_for(manifests, dotenv=tmp_path / "deploy.env"), "push")


# --- load: the values and the needs in one message ---------------------------------------------------


def test_load_names_value_problems_and_missing_needs_together(
    manifests: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUX_CI_PATH", str(manifests))
    monkeypatch.setenv("FLUX_CI_TIMEOUT", "inf")
    monkeypatch.setenv("FLUX_CI_REPOSITORY", "oci://registry.example.com/App")
    monkeypatch.setenv("FLUX_CI_EXTRA_TAG", "main")
    with pytest.raises(ConfigError) as caught:
        plan.load("push")
    message = caught.value.message
    assert message.count("\n  - ") == 6
    for expected in (
        "FLUX_CI_EXTRA_TAG is not a flux-ci variable; did you mean FLUX_CI_EXTRA_TAGS?",
        "FLUX_CI_TIMEOUT: 'inf'",
        "FLUX_CI_REPOSITORY: 'oci://registry.example.com/App'",
        "FLUX_CI_TAG is not set",
        "FLUX_CI_SOURCE is not set",
        "FLUX_CI_REVISION is not set",
    ):
        assert expected in message
    assert "FLUX_CI_REPOSITORY is not set" not in message  # it is set, just wrong: said once


def test_load_returns_validsettings_for(manifests: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_CI_PATH", str(manifests))
    monkeypatch.setenv("FLUX_CI_REPOSITORY", "registry.example.com/g/app")
    monkeypatch.setenv("FLUX_CI_TAG", "c1")
    monkeypatch.setenv("FLUX_CI_SOURCE", "https://git.example/g/app")
    monkeypatch.setenv("FLUX_CI_REVISION", "main@sha1:abc")
    loaded = plan.load("push", {"timeout": "90s"})
    assert loaded.settings.timeout == 90
    assert loaded.settings.repository == "oci://registry.example.com/g/app"
    assert loaded.manifests is not None
    assert loaded.manifests.objects == 1  # read once here, and pushed as it was read


def test_the_effective_configuration_fits_one_line() -> None:
    settings = Settings(
        repository="oci://r.example/app", tag="c1", extra_tags=["latest"], kube_context="grp/proj:agent",
        timeout=90, wait_for=["Kustomization/apps/web"],
    )  # fmt: skip
    line = plan.describe(settings, "deploy")
    assert line == (
        "flux-ci deploy: context grp/proj:agent; repository oci://r.example/app; tags c1, latest; "
        "timeout 90s; notify annotate; source every OCIRepository of the repository; "
        "consumers Kustomization/apps/web"
    )
    assert "\n" not in line


def test_the_immutable_tag_is_never_a_moving_tag() -> None:
    settings = Settings(tag="c1", extra_tags="c1,latest,main")
    assert plan.moving_tags(settings) == ["latest", "main"]
    assert plan.pushed_tags(settings) == ["c1", "latest", "main"]
