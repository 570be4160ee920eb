"""Publishing and the registry seam with a FakeRunner answering from golden files of real flux/oras
output; retries are checked against the failures the real tools print."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from flux_ci.config.plan import pushed_tags
from flux_ci.config.settings import Settings
from flux_ci.context import Context
from flux_ci.errors import RegistryError
from flux_ci.registry.client import Registry
from flux_ci.registry.credentials import RegistryAuth
from flux_ci.registry.publish import push
from flux_ci.report.models import StepStatus
from flux_ci.secrets import Masker
from flux_ci.tools.faults import transient
from tests.fakes import FakeRunner, make_context
from tests.golden import text

DIGEST = "sha256:064eed88f4a2da04f36a7f564c82dbfdbac4ced4a64334e410790e835587c6e8"


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    manifests = tmp_path / "m"
    manifests.mkdir(exist_ok=True)
    (manifests / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")
    values: dict[str, object] = {
        "repository": "oci://127.0.0.1:5999/g/app",
        "tag": "abc123",
        "source": "https://git.example/g",
        "revision": "main@sha1:0123",
        "path": manifests,
    }
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


def _context(settings: Settings, runner: FakeRunner, seconds: float = 30) -> Context:
    return make_context(settings, runner, seconds=seconds)


def _registry(context: Context) -> Registry:
    return Registry(context, RegistryAuth(None, plain_http=True))


def test_pushed_tags_put_the_immutable_tag_first_without_repeats(tmp_path: Path) -> None:
    settings = _settings(tmp_path, extra_tags=["latest", "abc123", "main"])
    assert pushed_tags(settings) == ["abc123", "latest", "main"]


def test_anonymous_push_uses_no_private_login(tmp_path: Path) -> None:
    runner = FakeRunner()
    runner.answer(["flux", "push", "artifact"], stdout=text("flux/push-artifact.json"))
    context = _context(_settings(tmp_path, extra_tags=["none"]), runner)
    artifact = push(context, _registry(context))
    assert artifact.digest == DIGEST
    assert [call.argv[:2] for call in runner.calls] == [("flux", "push")]
    assert runner.calls[0].env == {}
    assert [(step.name, step.status) for step in context.progress.steps] == [
        ("push", StepStatus.OK),
        ("tag", StepStatus.SKIPPED),
    ]


def test_moving_tags_point_at_the_pushed_digest_not_at_a_tag(tmp_path: Path) -> None:
    runner = FakeRunner()
    runner.answer(["flux", "push", "artifact"], stdout=text("flux/push-artifact.json"))
    runner.answer(["oras", "tag"], stdout=text("oras/tag.stdout"))
    context = _context(_settings(tmp_path, extra_tags=["latest", "main"]), runner)
    push(context, _registry(context))
    tag = next(call.argv for call in runner.calls if call.argv[:2] == ("oras", "tag"))
    assert tag[2:5] == (f"127.0.0.1:5999/g/app@{DIGEST}", "latest", "main")


def test_unconfirmed_tag_is_a_registry_error(tmp_path: Path) -> None:
    runner = FakeRunner()
    runner.answer(["flux", "push", "artifact"], stdout=text("flux/push-artifact.json"))
    runner.answer(["oras", "tag"], stdout="Tagging [registry] x\nTagged latest\n")
    context = _context(_settings(tmp_path, extra_tags=["latest", "main"]), runner)
    with pytest.raises(RegistryError, match="did not confirm the tags: main"):
        push(context, _registry(context))


def test_registry_refusal_keeps_flux_message_and_is_not_retried(tmp_path: Path) -> None:
    runner = FakeRunner()
    runner.answer(["flux", "push"], stderr=text("flux/push-artifact-unauthorized.stderr"), exit_code=1)
    context = _context(_settings(tmp_path), runner)
    with pytest.raises(RegistryError, match="401 Unauthorized") as caught:
        push(context, _registry(context))
    assert not caught.value.retryable
    assert len(runner.calls) == 1


@pytest.mark.parametrize(
    ("golden", "expected"),
    [
        ("flux/push-artifact-unreachable.stderr", True),
        ("oras/login-unreachable.stderr", True),
        ("oras/tag-unreachable.stderr", True),
        ("flux/push-artifact-unauthorized.stderr", False),
        ("oras/login-wrong-password.stderr", False),
        ("oras/tag-no-credentials.stderr", False),
        ("flux/push-artifact-invalid-path.stderr", False),
    ],
)
def test_transient_failures_are_told_from_refusals(golden: str, expected: bool) -> None:
    assert transient(text(golden)) is expected


def test_an_unreachable_registry_is_retried_then_reported_retryable(tmp_path: Path) -> None:
    runner = FakeRunner()
    runner.answer(["flux", "push"], stderr=text("flux/push-artifact-unreachable.stderr"), exit_code=1)
    context = _context(_settings(tmp_path), runner, seconds=2.5)
    with pytest.raises(RegistryError, match="the registry stayed unreachable") as caught:
        push(context, _registry(context))
    assert caught.value.retryable
    assert 2 <= len(runner.calls) <= 4  # 0.5 s, then 1 s pauses fit a 2.5 s deadline; no more


def _pushed_argv(runner: FakeRunner) -> tuple[str, ...]:
    return next(call.argv for call in runner.calls if call.argv[:3] == ("flux", "push", "artifact"))


def test_the_push_records_who_pushed_under_one_prefix(tmp_path: Path) -> None:
    runner = FakeRunner()
    runner.answer(["flux", "push", "artifact"], stdout=text("flux/push-artifact.json"))
    settings = _settings(
        tmp_path, extra_tags=["none"], pipeline_url="https://ci.example/p/7", job_url="https://ci.example/j/9",
        pipeline_user="alice", CI_JOB_STARTED_AT="2026-01-02T10:00:00Z",  # read under GitLab's name
    )  # fmt: skip
    context = _context(settings, runner)
    push(context, _registry(context))
    annotations = [arg for arg in _pushed_argv(runner) if arg.startswith("--annotations=")]
    assert annotations == [
        "--annotations=io.flux-ci.job.started-at=2026-01-02T10:00:00Z",
        "--annotations=io.flux-ci.job.url=https://ci.example/j/9",
        "--annotations=io.flux-ci.pipeline.url=https://ci.example/p/7",
        "--annotations=io.flux-ci.pipeline.user=alice",
    ]


def test_no_secret_the_job_knows_reaches_an_annotation(tmp_path: Path) -> None:
    token = "glcbt-64_j0bt0k3n-value"  # CI_JOB_TOKEN's value, known to the masker as every secret is
    runner = FakeRunner(masker=Masker([token]))
    runner.answer(["flux", "push", "artifact"], stdout=text("flux/push-artifact.json"))
    settings = _settings(
        tmp_path, extra_tags=["none"], pipeline_url=f"https://ci.example/p/7?token={token}",
        job_url=f"https://ci.example/j/{token}", pipeline_user="alice",
    )  # fmt: skip
    out = io.StringIO()
    context = make_context(settings, runner, seconds=30, out=out)
    push(context, _registry(context))
    argv = " ".join(_pushed_argv(runner))
    assert token not in argv
    assert "--annotations=io.flux-ci.pipeline.url=https://ci.example/p/7" in argv  # the query is dropped
    assert "io.flux-ci.job.url" not in argv  # a secret in the path: left out, and said
    assert "--annotations=io.flux-ci.pipeline.user=alice" in argv
    assert "annotation io.flux-ci.job.url left out: its value holds a secret" in out.getvalue()
