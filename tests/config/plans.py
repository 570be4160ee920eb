"""What the plan tests share (tests/config/test_plan.py, test_rollout.py): Settings of a push to one
repository from a checkout's manifests, and the message `plan.check` refuses them with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flux_ci.config import plan
from flux_ci.config.settings import Settings
from flux_ci.errors import ConfigError

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\n"


def settings_for(manifests: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "repository": "oci://registry.example.com/g/app",
        "tag": "c1",
        "source": "https://git.example/g/app",
        "revision": "main@sha1:abc",
        "path": manifests,
    }
    return Settings(**{**values, **overrides})


def problems_of(settings: Settings, command: str) -> str:
    """The message of the ConfigError `plan.check` raises (the test fails if it raises none)."""
    with pytest.raises(ConfigError) as caught:
        plan.check(settings, command)
    return caught.value.message
