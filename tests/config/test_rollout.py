"""FLUX_CI_WAVES, FLUX_CI_WAVE_SOAK and deploy freezes, as the settings read them and as each command
checks them before anything runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from flux_ci.config import plan
from flux_ci.config.settings import Settings
from flux_ci.config.values import Wave, parse_waves
from flux_ci.errors import ConfigError
from tests.config.plans import problems_of, settings_for

WAVES = "canary=stg;eu=prod-eu-1,prod-eu-2;stable=prod-us"


def _settings(manifests: Path, **overrides: Any) -> Settings:
    return settings_for(manifests, **{"waves": WAVES, **overrides})


# --- the value ------------------------------------------------------------------------------------


def test_waves_are_read_in_order_with_their_contexts() -> None:
    assert parse_waves(" canary = stg ; eu=prod-eu-1, prod-eu-2;stable=prod-us;") == (
        Wave("canary", ("stg",)),
        Wave("eu", ("prod-eu-1", "prod-eu-2")),
        Wave("stable", ("prod-us",)),
    )
    # a GitLab agent's context holds `/` and `:`; only `;`, `=` and `,` separate
    assert parse_waves("canary=my-group/agents:staging") == (Wave("canary", ("my-group/agents:staging",)),)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("canary", "'canary' is not TAG=CONTEXT[,CONTEXT...]"),
        ("canary=", "'canary=' is not TAG=CONTEXT[,CONTEXT...]"),
        ("=stg", "'=stg' is not TAG=CONTEXT[,CONTEXT...]"),
        ("canary=stg,,prod", "'canary=stg,,prod' is not TAG=CONTEXT[,CONTEXT...]"),
        ("-bad=stg", "'-bad' is not a valid OCI tag"),
        ("a=stg;a=prod", "tag 'a' is given to two waves"),
        ("a=stg;b=stg", "context 'stg' is in two waves (or twice in one)"),
        (" ; ", "names no wave"),
    ],
)
def test_malformed_waves_are_refused_naming_the_fault(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_waves(text)


def test_every_fault_of_the_waves_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_CI_WAVES", "a=stg;b;-c=prod;d=stg")
    with pytest.raises(ConfigError) as caught:
        Settings.load()
    message = caught.value.message
    assert "FLUX_CI_WAVES: 'b' is not TAG=CONTEXT" in message
    assert "'-c' is not a valid OCI tag" in message
    assert "context 'stg' is in two waves" in message


def test_the_clusters_of_every_wave_and_each_as_deployed_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_CI_WAVES", WAVES)
    settings = Settings.load()
    assert settings.kube_contexts == ["stg", "prod-eu-1", "prod-eu-2", "prod-us"]
    eu = settings.for_cluster("prod-eu-2")
    assert (eu.kube_context, eu.extra_tags, eu.waves) == ("prod-eu-2", ["eu"], None)
    assert plan.pushed_tags(eu) == ["eu"]  # FLUX_CI_TAG is unset here


def test_the_push_carries_the_immutable_tag_alone_and_each_wave_moves_its_own(manifests: Path) -> None:
    settings = _settings(manifests)
    assert plan.pushed_tags(settings) == ["c1"]
    assert plan.moving_tags(settings) == ["canary", "eu", "stable"]
    assert plan.push_plan(settings).tags == ("c1",)


@pytest.mark.parametrize(("text", "seconds"), [("0", 0.0), ("0s", 0.0), ("90s", 90.0), ("1h", 3600.0)])
def test_a_soak_may_be_zero(monkeypatch: pytest.MonkeyPatch, text: str, seconds: float) -> None:
    monkeypatch.setenv("FLUX_CI_WAVE_SOAK", text)
    assert Settings.load().wave_soak == seconds


@pytest.mark.parametrize("text", ["-1s", "inf", "200h", "soon"])
def test_a_soak_is_a_duration_up_to_a_week(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("FLUX_CI_WAVE_SOAK", text)
    with pytest.raises(ConfigError, match="FLUX_CI_WAVE_SOAK"):
        Settings.load()


# --- what deploy and promote need -------------------------------------------------------------------


def test_a_complete_waves_configuration_passes(manifests: Path) -> None:
    settings = _settings(manifests, wave_soak=60, timeout=300)
    for command in ("push", "deploy", "promote", "status", "doctor"):
        plan.check(settings, command)


def test_waves_beside_extra_tags_or_kube_context_are_exit_2_naming_the_conflict(
    monkeypatch: pytest.MonkeyPatch, manifests: Path
) -> None:
    monkeypatch.setenv("FLUX_CI_WAVES", WAVES)
    monkeypatch.setenv("FLUX_CI_EXTRA_TAGS", "latest")
    monkeypatch.setenv("KUBE_CONTEXT", "my-group/agents:production")  # GitLab's default for it
    monkeypatch.setenv("FLUX_CI_PATH", str(manifests))
    for name, value in {
        "REPOSITORY": "oci://r.example/a",
        "TAG": "c1",
        "SOURCE": "s",
        "REVISION": "r",
    }.items():
        monkeypatch.setenv(f"FLUX_CI_{name}", value)
    with pytest.raises(ConfigError) as caught:
        plan.load("deploy")
    message = caught.value.message
    assert "FLUX_CI_WAVES and FLUX_CI_EXTRA_TAGS are both set" in message
    assert (
        "FLUX_CI_WAVES and FLUX_CI_KUBE_CONTEXT (or KUBE_CONTEXT, its GitLab default) are both set" in message
    )


def test_a_wave_never_moves_the_immutable_tag(manifests: Path) -> None:
    message = problems_of(_settings(manifests, tag="canary"), "deploy")
    assert "FLUX_CI_WAVES moves tag 'canary', which is FLUX_CI_TAG" in message


def test_every_soak_must_fit_in_the_one_deadline(manifests: Path) -> None:
    # three waves: two soaks (the last wave is not soaked) of 150 s each, within 300 s
    message = problems_of(_settings(manifests, wave_soak=150, timeout=300), "deploy")
    assert "FLUX_CI_WAVE_SOAK (150s) after each of the first 2 wave(s) takes 300s" in message
    plan.check(_settings(manifests, wave_soak=149, timeout=300), "deploy")


def test_waves_need_the_clusters_and_a_soak_needs_waves(manifests: Path) -> None:
    message = problems_of(_settings(manifests, verify=False, notify="receiver"), "promote")
    assert "FLUX_CI_WAVES needs the clusters" in message
    assert "FLUX_CI_WAVES names several clusters, and FLUX_CI_NOTIFY is receiver" in message
    message = problems_of(_settings(manifests, waves=None, wave_soak=30), "deploy")
    assert "FLUX_CI_WAVE_SOAK is set without FLUX_CI_WAVES" in message


@pytest.mark.parametrize("command", ["reconcile", "wait"])
def test_commands_that_move_no_tag_refuse_waves(manifests: Path, command: str) -> None:
    message = problems_of(_settings(manifests, digest="sha256:" + "0" * 64), command)
    assert "FLUX_CI_WAVES is for deploy and promote" in message


# --- deploy freezes ---------------------------------------------------------------------------------


def test_gitlab_s_deploy_freeze_is_read_from_ci_deploy_freeze(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not Settings.load().deploy_freeze
    monkeypatch.setenv("CI_DEPLOY_FREEZE", "true")
    assert Settings.load().deploy_freeze
    monkeypatch.setenv("CI_DEPLOY_FREEZE", "false")
    assert not Settings.load().deploy_freeze
    monkeypatch.setenv("FLUX_CI_DEPLOY_FREEZE", "true")  # a FLUX_CI_ variable wins, as always
    assert Settings.load().deploy_freeze


@pytest.mark.parametrize("command", ["deploy", "promote"])
def test_a_deploy_freeze_stops_deploy_and_promote_naming_it(manifests: Path, command: str) -> None:
    settings = _settings(manifests, waves=None, deploy_freeze=True)
    message = problems_of(settings, command)
    assert "a deploy freeze is on (CI_DEPLOY_FREEZE" in message
    assert "set FLUX_CI_IGNORE_FREEZE=true to deploy anyway" in message
    plan.check(_settings(manifests, waves=None, deploy_freeze=True, ignore_freeze=True), command)


@pytest.mark.parametrize("command", ["push", "status"])
def test_a_deploy_freeze_leaves_what_deploys_nothing_alone(manifests: Path, command: str) -> None:
    plan.check(_settings(manifests, waves=None, deploy_freeze=True), command)


def test_the_configuration_line_names_the_waves_and_the_soak(manifests: Path) -> None:
    line = plan.describe(_settings(manifests, wave_soak=30), "deploy")
    waves = "canary=stg; eu=prod-eu-1,prod-eu-2; stable=prod-us"
    assert line.startswith(f"flux-ci deploy: waves {waves}, each soaked 30s before the next;")
