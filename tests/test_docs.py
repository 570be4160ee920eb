"""The README, the examples and the Dockerfile cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

from flux_ci.cli.app import app
from flux_ci.config.names import variable_name
from flux_ci.config.settings import Settings, variable_of
from flux_ci.errors import ExitCode
from flux_ci.report.models import Artifact, ObjectRef, Report, SourceState
from flux_ci.report.render import to_dotenv

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def _versions() -> dict[str, str]:
    lines = (ROOT / ".ci/versions.env").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return dict(pairs)


def test_every_variable_is_documented() -> None:
    for field_name in Settings.model_fields:
        assert f"| `{variable_of(field_name)}` |" in README, f"{variable_of(field_name)} missing"


def test_every_exit_code_is_documented() -> None:
    rows = re.findall(r"^\| ([\d, ]+) \|", README, re.MULTILINE)
    documented = {int(code) for row in rows for code in row.split(",")}
    assert documented == {int(code) for code in ExitCode}


def test_every_command_is_documented() -> None:
    for command in app.registered_commands:
        assert command.callback is not None
        assert f"`flux-ci {command.callback.__name__}`" in README


def test_every_make_target_is_documented() -> None:
    """In the README or in the docs/ pages it links (e.g. `make lock` in docs/install.md)."""
    docs = README + "".join(path.read_text() for path in sorted((ROOT / "docs").glob("*.md")))
    targets = re.findall(r"^([a-z-]+):.*## ", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert targets
    for target in targets:
        assert f"`{target}`" in docs or f"make {target}" in docs, target


def test_the_two_commands_and_a_gitlab_job_are_shown() -> None:
    assert "make demo" in README
    assert "make test" in README
    assert "script:\n    - flux-ci deploy" in README


def test_versions_table_matches_the_versions_file() -> None:
    versions = _versions()
    for key in ("FLUX_VERSION", "SOURCE_CONTROLLER_VERSION", "KUSTOMIZE_CONTROLLER_VERSION",
                "ORAS_VERSION", "KUBERNETES_VERSION", "ETCD_VERSION"):  # fmt: skip
        assert f"| {versions[key]} |" in README, key


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_example_pipeline_reads_only_variables_the_dotenv_report_writes() -> None:
    pipeline = (ROOT / "examples/.gitlab-ci.yml").read_text()
    report = Report(
        command="deploy",
        artifact=Artifact("oci://r/a", ("t",), "sha256:" + "0" * 64, "s", "main@sha1:abc"),
        sources=[SourceState(ObjectRef("OCIRepository", "n", "a"), "u", "t@sha256:x", "True", "m")],
    )
    written = {line.split("=", 1)[0] for line in to_dotenv(report).splitlines()}
    inputs = {variable_name(name) for name in Settings.model_fields}
    used = set(re.findall(r"\$\{?(FLUX_CI_[A-Z_]+)", pipeline))
    assert used
    assert used <= written | inputs


def test_dockerfile_builds_the_pinned_tools_and_runs_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    # The official bases by default; CI builds against local stand-ins (tests/e2e/test_image.py).
    assert "ARG GO_IMAGE=golang:1.26-bookworm" in dockerfile
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in dockerfile
    assert re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)[-1] == "${PYTHON_IMAGE}"
    # The tools stage compiles the pinned tools, unless `--build-context tools=DIR` replaces it.
    assert "COPY .ci/versions.env .ci/build-tools.sh" in dockerfile
    assert ".ci/build-tools.sh flux oras kubectl cosign" in dockerfile
    assert re.search(r"^FROM scratch AS tools$", dockerfile, re.MULTILINE)
    assert "COPY --from=tools /flux /oras /kubectl /cosign /usr/local/bin/" in dockerfile
    assert "cosign version" in dockerfile  # the image proves every tool runs
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users
    assert users[-1] not in ("root", "0")
    assert "ENTRYPOINT [" not in dockerfile  # GitLab needs the shell for `script:`
    # Everything the build copies from the context gets past .dockerignore (an allowlist).
    allowed = {
        line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line[:1] == "!"
    }
    copied = {
        source.rstrip("/")
        for line in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.MULTILINE)
        for source in line.split()
    }
    assert copied
    assert copied <= allowed, copied - allowed
