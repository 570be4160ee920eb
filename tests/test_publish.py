"""Publishing with a FakeRunner answering from golden files of real flux/oras output."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from flux_ci.context import Context
from flux_ci.deadline import Deadline
from flux_ci.errors import ConfigError, RegistryError
from flux_ci.masking import Masker
from flux_ci.models import Report, StepStatus
from flux_ci.progress import Progress
from flux_ci.publish import check_push_config, push, pushed_tags
from flux_ci.settings import Settings
from tests.fakes import FakeRunner
from tests.golden import text


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    manifests = tmp_path / "m"
    manifests.mkdir(exist_ok=True)
    (manifests / "cm.yaml").write_text("kind: ConfigMap\n")
    values: dict[str, object] = {
        "repository": "oci://127.0.0.1:5999/g/app",
        "tag": "abc123",
        "source": "https://git.example/g",
        "revision": "main@sha1:0123",
        "path": manifests,
    }
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


def _context(settings: Settings, runner: FakeRunner) -> Context:
    return Context(settings, runner, Deadline(30), Progress(Masker(), out=io.StringIO()))


def test_pushed_tags_put_the_immutable_tag_first_without_repeats(tmp_path: Path) -> None:
    settings = _settings(tmp_path, extra_tags=["latest", "abc123", "main"])
    assert pushed_tags(settings) == ["abc123", "latest", "main"]


def test_push_config_names_every_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        check_push_config(_settings(tmp_path, tag=None, source=None, path=tmp_path / "nope"))
    message = caught.value.message
    assert "FLUX_CI_TAG is not set" in message
    assert "FLUX_CI_SOURCE is not set" in message
    assert "FLUX_CI_PATH" in message


def test_anonymous_push_uses_no_private_login(tmp_path: Path) -> None:
    runner = FakeRunner()
    runner.answer(["flux", "push", "artifact"], stdout=text("flux/push-artifact.json"))
    progress = Progress(Masker(), out=io.StringIO())
    context = Context(_settings(tmp_path, extra_tags=["none"]), runner, Deadline(30), progress)
    artifact = push(context, Report("push"))
    assert artifact.digest.startswith("sha256:064eed88")
    assert [call.argv[:2] for call in runner.calls] == [("flux", "push")]
    assert runner.calls[0].env == {}
    assert [(step.name, step.status) for step in progress.steps] == [
        ("push", StepStatus.OK),
        ("tag", StepStatus.SKIPPED),
    ]


def test_unconfirmed_tag_is_a_registry_error(tmp_path: Path) -> None:
    runner = FakeRunner()
    runner.answer(["flux", "push", "artifact"], stdout=text("flux/push-artifact.json"))
    runner.answer(["oras", "tag"], stdout="Tagging [registry] x\nTagged latest\n")
    settings = _settings(tmp_path, extra_tags=["latest", "main"])
    with pytest.raises(RegistryError, match="did not confirm the tags: main"):
        push(_context(settings, runner), Report("push"))


def test_registry_refusal_keeps_flux_message(tmp_path: Path) -> None:
    runner = FakeRunner()
    runner.answer(["flux", "push"], stderr=text("flux/push-artifact-unauthorized.stderr"), exit_code=1)
    with pytest.raises(RegistryError, match="401 Unauthorized"):
        push(_context(_settings(tmp_path), runner), Report("push"))
