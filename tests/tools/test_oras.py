from __future__ import annotations

from pathlib import Path

from flux_ci.tools import oras
from tests.golden import text


def test_login_reads_the_password_from_stdin() -> None:
    argv = oras.login_argv("r.example:5000", "alice", Path("/tmp/x/config.json"), plain_http=True)
    assert argv == [
        "oras", "login", "r.example:5000", "--username=alice", "--password-stdin",
        "--registry-config=/tmp/x/config.json", "--plain-http",
    ]  # fmt: skip


def test_tag_addresses_the_digest_not_a_moving_tag() -> None:
    argv = oras.tag_argv("r/app@sha256:abc", ["latest", "main"], None, plain_http=False)
    assert argv == ["oras", "tag", "r/app@sha256:abc", "latest", "main"]


def test_parse_tagged_from_real_oras() -> None:
    assert sorted(oras.parse_tagged(text("oras/tag.stdout"))) == ["latest", "main"]


def test_parse_version_from_real_oras() -> None:
    assert oras.parse_version(text("oras/version.txt")) == "1.3.6"


def test_login_with_wrong_password_keeps_the_registry_message() -> None:
    error = oras.failure("registry login", text("oras/login-wrong-password.stderr"))
    assert error.exit_code == 4
    assert (
        error.message
        == "registry login failed: Error response from registry: unauthorized: authentication required"
    )


def test_missing_credentials_and_unreachable_registry() -> None:
    assert (
        "basic credential not found"
        in oras.failure("tagging", text("oras/tag-no-credentials.stderr")).message
    )
    unreachable = oras.failure("registry login", text("oras/login-unreachable.stderr")).message
    assert "connection refused" in unreachable


def test_manifest_fetch_and_repo_tags_only_read() -> None:
    config = Path("/tmp/x/config.json")
    assert oras.manifest_fetch_argv("r/app@sha256:abc", config, plain_http=True) == [
        "oras", "manifest", "fetch", "r/app@sha256:abc",
        "--registry-config=/tmp/x/config.json", "--plain-http",
    ]  # fmt: skip
    assert oras.repo_tags_argv("r/app", None, plain_http=False) == ["oras", "repo", "tags", "r/app"]


def test_annotations_of_a_real_manifest() -> None:
    annotations = oras.parse_manifest_annotations(text("oras/manifest-fetch.json"))
    assert annotations["io.flux-ci.pipeline.url"] == "https://gitlab.example/group/app/-/pipelines/102"
    assert annotations["org.opencontainers.image.revision"] == "main@sha1:" + "2" * 40
    assert oras.parse_manifest_annotations('{"schemaVersion": 2}') == {}


def test_tags_of_a_real_repository() -> None:
    assert oras.parse_tags(text("oras/repo-tags.stdout")) == ["latest", "c3", "c2", "c1"]


def test_a_missing_manifest_and_an_unknown_repository_are_told_apart_from_failures() -> None:
    assert oras.not_found(text("oras/manifest-fetch-not-found.stderr"))
    unknown = text("oras/repo-tags-unknown-repository.stderr")
    assert oras.repository_unknown(unknown)
    assert not oras.repository_unknown(text("oras/tag-no-credentials.stderr"))


def test_not_found_is_the_registrys_answer_for_a_tag_or_a_digest() -> None:
    assert oras.not_found(text("oras/resolve-not-found.stderr"))
    assert oras.not_found(text("oras/resolve-digest-not-found.stderr"))
    assert not oras.not_found(text("oras/login-unreachable.stderr"))  # could not ask is not absent
    assert not oras.not_found(text("oras/tag-no-credentials.stderr"))
