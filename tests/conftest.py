"""Shared pytest configuration for unit and end-to-end tests."""

from __future__ import annotations

import pytest

from tests.sandbox.versions import binary_versions, tools_dir


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
