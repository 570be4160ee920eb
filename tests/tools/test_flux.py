from __future__ import annotations

from pathlib import Path

import pytest

from flux_ci.errors import ConfigError, RegistryError
from flux_ci.tools import flux
from tests.golden import text


def test_parse_push_output_from_real_flux() -> None:
    pushed = flux.parse_push_output(text("flux/push-artifact.json"))
    assert pushed.digest.startswith("sha256:")
    assert len(pushed.digest) == 71
    assert pushed.url == f"oci://{pushed.repository}@{pushed.digest}"
    assert pushed.tag == "abc123"


def test_parse_version() -> None:
    assert flux.parse_version(text("flux/version.json")) == "2.9.3"


def test_push_argv_never_carries_credentials_and_asks_for_json() -> None:
    argv = flux.push_argv(
        "oci://r.example/app:abc",
        path=Path("deploy"),
        source="https://git.example/app",
        revision="main@sha1:abc",
        reproducible=True,
        insecure=True,
        ignore_paths=["*.md", "docs/"],
        timeout_s=42.7,
    )
    assert argv[:4] == ["flux", "push", "artifact", "oci://r.example/app:abc"]
    assert "--output=json" in argv
    assert "--reproducible" in argv
    assert "--insecure-registry" in argv
    assert "--ignore-paths=*.md,docs/" in argv
    assert "--timeout=42s" in argv
    assert not any(arg.startswith("--creds") for arg in argv)


def test_push_argv_keeps_flux_default_ignores_unless_set() -> None:
    argv = flux.push_argv(
        "oci://r/a:t", path=Path("m"), source="s", revision="r",
        reproducible=False, insecure=False, ignore_paths=None, timeout_s=10,
    )  # fmt: skip
    assert not any(arg.startswith(("--ignore-paths", "--reproducible", "--insecure")) for arg in argv)


def test_push_argv_adds_each_annotation_as_key_value() -> None:
    annotations = {"io.flux-ci.pipeline.url": "https://ci/p/1", "io.flux-ci.pipeline.user": "alice"}
    argv = flux.push_argv(
        "oci://r/a:t", path=Path("m"), source="s", revision="r",
        reproducible=True, insecure=False, ignore_paths=None, timeout_s=10, annotations=annotations,
    )  # fmt: skip
    assert argv[-2:] == [
        "--annotations=io.flux-ci.pipeline.url=https://ci/p/1",
        "--annotations=io.flux-ci.pipeline.user=alice",
    ]


def test_push_argv_refuses_what_flux_would_split_wrongly() -> None:
    # flux splits `key=value` on every `=` and refuses anything but two parts (push_artifact.go).
    with pytest.raises(ValueError, match=r"io\.flux-ci\.job\.url"):
        flux.push_argv(
            "oci://r/a:t", path=Path("m"), source="s", revision="r", reproducible=True,
            insecure=False, ignore_paths=None, timeout_s=10, annotations={"io.flux-ci.job.url": "https://ci/?a=b"},
        )  # fmt: skip


def test_unauthorized_push_is_a_registry_error_with_flux_message() -> None:
    error = flux.push_failure(text("flux/push-artifact-unauthorized.stderr"))
    assert isinstance(error, RegistryError)
    assert "401 Unauthorized" in error.message
    assert "pushing artifact failed: pushing artifact failed" not in error.message


def test_unreachable_registry_is_a_registry_error() -> None:
    error = flux.push_failure(text("flux/push-artifact-unreachable.stderr"))
    assert isinstance(error, RegistryError)
    assert "connection refused" in error.message


def test_invalid_path_is_a_config_error() -> None:
    error = flux.push_failure(text("flux/push-artifact-invalid-path.stderr"))
    assert isinstance(error, ConfigError)
    assert "invalid path 'nonexist'" in error.message
