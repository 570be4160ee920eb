from __future__ import annotations

from pathlib import Path

import pytest

from tests.config.plans import CONFIGMAP


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    """A checkout's manifests: one ConfigMap."""
    path = tmp_path / "manifests"
    path.mkdir()
    (path / "cm.yaml").write_text(CONFIGMAP)
    return path
