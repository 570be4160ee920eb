"""Shared pytest configuration for unit and end-to-end tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.sandbox.versions import binary_versions, tools_dir

pytest_plugins = ["tests.skips"]  # in CI mode, a skip not on tests/skips.toml fails the run

# Variables a developer's shell or the CI job may carry that would change flux-ci's configuration.
_CONFIG_PREFIXES = ("FLUX_CI_", "CI_", "GITHUB_", "GITLAB_")
_CONFIG_NAMES = ("KUBE_CONTEXT", "RUNNER_DEBUG")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Name every real binary and the version it reports, so each CI log shows what was tested."""
    try:
        versions = binary_versions()
    except Exception as error:  # the header must never break a test run
        return [f"real binaries: unknown ({type(error).__name__}: {error})"]
    width = max(map(len, versions))
    lines = [f"real binaries (built into {tools_dir()}):"]
    lines += [f"  {tool:<{width}}  {version}" for tool, version in versions.items()]
    return lines


# `make test` runs on pytest-xdist workers (`--dist loadgroup`): each file's tests on one worker, so
# its module fixtures (a sandbox project, a built image) are made once. The files that run the CI
# engines share one worker: gitlab-ci-local keeps its per-job scratch files under /tmp named by
# project and job (two pipelines side by side would share them), and two image builds side by side
# would only fight for the same cores.
_ONE_WORKER = "ci-engines"
_ONE_WORKER_FILES = frozenset(
    {"test_pipelines.py", "test_components.py", "test_fleet_pipeline.py", "test_release_pipeline.py",
     "test_image.py", "test_github_action.py"}
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = _ONE_WORKER if item.path.name in _ONE_WORKER_FILES else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test inherits the real CI's tokens or settings; each sets what it needs."""
    for name in list(os.environ):
        if name.startswith(_CONFIG_PREFIXES) or name in _CONFIG_NAMES:
            monkeypatch.delenv(name)


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    """A manifests directory holding one ConfigMap."""
    path = tmp_path / "manifests"
    path.mkdir()
    (path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")
    return path
