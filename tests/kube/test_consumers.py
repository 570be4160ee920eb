"""FLUX_CI_REQUIRE_HEALTH: consumers whose Ready covers only the apply are refused, each named with
the field to set (objects captured from the real controllers; edits are named)."""

from __future__ import annotations

import copy

import pytest

from flux_ci.errors import ConfigError, ExitCode
from flux_ci.kube.consumers import require_health
from tests.golden import obj

PLAIN = obj("kubectl/kustomization-ready.json")
WAITING = obj("kubectl/events-health-check-failed-kustomization.json")  # spec.wait: true
RELEASE = obj("kubectl/helmrelease-ready.json")


def test_consumers_that_check_health_pass() -> None:
    require_health([WAITING, RELEASE])


def test_each_apply_only_consumer_is_named_with_the_field_to_set() -> None:
    release = copy.deepcopy(RELEASE)
    release["spec"]["install"] = {"disableWait": True}  # edited
    with pytest.raises(ConfigError) as raised:
        require_health([PLAIN, WAITING, release])
    assert raised.value.exit_code == ExitCode.CONFIG
    message = raised.value.message
    assert "Kustomization/golden/app: set spec.wait: true (or list spec.healthChecks)" in message
    assert "HelmRelease/golden-helm/ready: unset spec.install.disableWait" in message
    assert str(WAITING["metadata"]["namespace"]) not in message  # it waits: not named
    assert "Nothing was pushed" in message
