"""The commands' flow with a FakeRunner answering from golden files of real tool output."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest

from flux_ci import flow
from flux_ci.context import Context
from flux_ci.deadline import Deadline
from flux_ci.errors import (
    ClusterError,
    ConfigError,
    ConsumerFailedError,
    DeadlineExceededError,
    SourceFailedError,
)
from flux_ci.masking import Masker
from flux_ci.models import Report, Status
from flux_ci.progress import Progress
from flux_ci.settings import Settings
from flux_ci.tools.kubectl import KUSTOMIZATIONS, OCIREPOSITORIES
from tests.fakes import FakeRunner
from tests.golden import obj, text

SOURCE = obj("kubectl/ocirepository-ready.json")
REPOSITORY = SOURCE["spec"]["url"]
PUSHED = json.loads(text("flux/push-artifact.json"))["digest"]
PASSWORD = "registry-pass-123"


def _source_with(digest: str, **spec: Any) -> dict[str, Any]:
    source = copy.deepcopy(SOURCE)
    source["status"]["artifact"]["revision"] = f"latest@{digest}"
    source["spec"].update(spec)
    return source


def _kustomization_applied(digest: str) -> dict[str, Any]:
    ks = copy.deepcopy(obj("kubectl/kustomization-ready.json"))
    ks["status"]["lastAppliedRevision"] = f"latest@{digest}"
    return ks


def _as_list(*items: dict[str, Any]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)})


def _lines(*objects: dict[str, Any]) -> list[str]:
    return [line + "\n" for o in objects for line in json.dumps(o, indent=4).splitlines()]


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    path = tmp_path / "manifests"
    path.mkdir()
    (path / "cm.yaml").write_text("kind: ConfigMap\n")
    return path


def _settings(manifests: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "repository": REPOSITORY,
        "tag": "c1",
        "source": "https://git.example/app",
        "revision": "main@sha1:abc",
        "path": manifests,
        "registry_user": "alice",
        "registry_password": PASSWORD,
        "insecure_registry": True,
        "timeout": 30,
    }
    return Settings(**{**values, **overrides})


def _tools(runner: FakeRunner) -> None:
    runner.answer(["flux", "version"], stdout=text("flux/version.json"))
    runner.answer(["oras", "version"], stdout=text("oras/version.txt"))
    runner.answer(["kubectl", "version"], stdout=text("kubectl/version.json"))


def _context(settings: Settings, runner: FakeRunner, seconds: float | None = None) -> Context:
    return Context(
        settings, runner, Deadline(seconds or settings.timeout), Progress(Masker(), out=io.StringIO())
    )


def _deploy_runner(source: dict[str, Any], *, consumer: dict[str, Any] | None = None) -> FakeRunner:
    runner = FakeRunner()
    _tools(runner)
    runner.answer(["kubectl", "get", OCIREPOSITORIES, "--all-namespaces"], stdout=_as_list(source))
    runner.answer(["oras", "login"], stdout=text("oras/login.stdout"))
    runner.answer(["flux", "push", "artifact"], stdout=text("flux/push-artifact.json"))
    runner.answer(["oras", "tag"], stdout="Tagging [registry] x\nTagged latest\n")
    runner.answer(["kubectl", "annotate"])
    runner.answer_stream(["kubectl", "get", OCIREPOSITORIES, "app"], _lines(source, _source_with(PUSHED)))
    runner.answer(
        ["kubectl", "get", KUSTOMIZATIONS, "--all-namespaces"],
        stdout=text("kubectl/kustomizations-list.json"),
    )
    runner.answer(
        ["kubectl", "get", "helmreleases.helm.toolkit.fluxcd.io"],
        stderr=text("kubectl/get-no-resource-type.stderr"),
        exit_code=1,
    )
    runner.answer_stream(
        ["kubectl", "get", KUSTOMIZATIONS, "app"], _lines(consumer or _kustomization_applied(PUSHED))
    )
    return runner


def test_deploy_pushes_reconciles_and_waits_for_the_digest(manifests: Path) -> None:
    runner = _deploy_runner(_source_with("sha256:" + "1" * 64))
    report = Report("deploy")
    flow.run_deploy(_context(_settings(manifests), runner), report)
    assert report.artifact is not None
    assert report.artifact.digest == PUSHED
    assert report.artifact.tags == ("c1", "latest")
    assert report.sources[0].revision == f"latest@{PUSHED}"
    assert report.consumers[0].revision == f"latest@{PUSHED}"
    commands = runner.commands()
    steps = (
        "kubectl get ocirepositories",
        "flux push",
        "oras tag",
        "kubectl annotate",
        "kubectl get kustomizations",
    )
    order = [next(i for i, c in enumerate(commands) if c.startswith(step)) for step in steps]
    assert order == sorted(order)  # the cluster is checked before anything is pushed
    assert any(f"oras tag {REPOSITORY.removeprefix('oci://')}@{PUSHED} latest" in c for c in commands)


def test_password_travels_on_stdin_and_the_login_dir_is_removed(manifests: Path) -> None:
    runner = _deploy_runner(_source_with("sha256:" + "1" * 64))
    flow.run_deploy(_context(_settings(manifests), runner), Report("deploy"))
    login = next(call for call in runner.calls if call.argv[:2] == ("oras", "login"))
    assert login.stdin == PASSWORD
    assert all(PASSWORD not in " ".join(call.argv) for call in runner.calls)
    push = next(call for call in runner.calls if call.argv[:2] == ("flux", "push"))
    docker_config = push.env["DOCKER_CONFIG"]
    assert docker_config is not None
    assert f"--registry-config={docker_config}/config.json" in login.argv
    assert not Path(docker_config).exists()


def test_source_already_holding_the_digest_is_not_reconciled(manifests: Path) -> None:
    runner = FakeRunner()
    _tools(runner)
    runner.answer(["kubectl", "get", OCIREPOSITORIES], stdout=_as_list(_source_with(PUSHED)))
    report = Report("reconcile")
    flow.run_reconcile(_context(_settings(manifests, digest=PUSHED), runner), report)
    assert not any("annotate" in c or "--watch" in c for c in runner.commands())
    assert report.sources[0].revision == f"latest@{PUSHED}"


def test_tag_that_is_not_pushed_fails_before_pushing(manifests: Path) -> None:
    runner = _deploy_runner(_source_with(PUSHED, ref={"tag": "stable"}))
    with pytest.raises(ConfigError, match="follows tag 'stable', but this deploy pushes tags: c1, latest"):
        flow.run_deploy(_context(_settings(manifests), runner), Report("deploy"))
    assert not any(c.startswith("flux push") for c in runner.commands())


def test_suspended_source_fails_before_pushing(manifests: Path) -> None:
    runner = _deploy_runner(_source_with(PUSHED, suspend=True))
    with pytest.raises(ConfigError, match="is suspended"):
        flow.run_deploy(_context(_settings(manifests), runner), Report("deploy"))


def test_other_pinned_digest_fails(manifests: Path) -> None:
    pinned = _source_with("sha256:" + "2" * 64, ref={"digest": "sha256:" + "2" * 64})
    runner = _deploy_runner(pinned)
    with pytest.raises(ConfigError, match="pins digest sha256:2222"):
        flow.run_deploy(_context(_settings(manifests), runner), Report("deploy"))


def test_no_source_follows_the_repository(manifests: Path) -> None:
    runner = _deploy_runner(_source_with(PUSHED))
    settings = _settings(manifests, repository="oci://elsewhere.example/app")
    with pytest.raises(ConfigError, match=r"no OCIRepository follows oci://elsewhere\.example/app"):
        flow.run_deploy(_context(settings, runner), Report("deploy"))


def test_failed_consumer_raises_with_controller_message_and_reports_state(manifests: Path) -> None:
    failed = copy.deepcopy(obj("kubectl/kustomization-apply-failed.json"))
    failed["status"]["lastAttemptedRevision"] = f"latest@{PUSHED}"
    for cond in failed["status"]["conditions"]:
        cond["message"] = cond["message"].replace(
            failed["status"]["lastAppliedRevision"].split("@")[1], PUSHED
        )
    reconciling = next(c for c in failed["status"]["conditions"] if c["type"] == "Reconciling")
    reconciling["message"] = f"Detecting drift for revision latest@{PUSHED} with a timeout of 9m30s"
    runner = _deploy_runner(_source_with("sha256:" + "1" * 64), consumer=failed)
    report = Report("deploy")
    with pytest.raises(ConsumerFailedError, match='no matches for kind "NoSuchKind"'):
        flow.run_deploy(_context(_settings(manifests), runner), report)
    assert report.consumers[0].ready == "False"


def test_deadline_names_what_was_pending_with_its_last_message(manifests: Path) -> None:
    waiting = obj("kubectl/kustomization-dependency-not-ready.json")
    runner = _deploy_runner(_source_with("sha256:" + "1" * 64), consumer=waiting)
    runner.answer(["kubectl", "get", KUSTOMIZATIONS, "app", "--namespace=golden", "--output=json"],
                  stdout=json.dumps(waiting))  # fmt: skip
    with pytest.raises(DeadlineExceededError) as caught:
        flow.run_deploy(_context(_settings(manifests), runner, seconds=1.5), Report("deploy"))
    assert "Kustomization/golden/app (last: dependency 'golden/never-there' not found" in caught.value.message


def test_source_that_fetched_another_digest_after_our_request_fails(manifests: Path) -> None:
    runner = FakeRunner()
    _tools(runner)
    runner.answer(["kubectl", "get", OCIREPOSITORIES, "--all-namespaces"], stdout=_as_list(SOURCE))
    runner.answer(["kubectl", "annotate"])

    def handled_with_old_digest() -> list[str]:
        # As source-controller does: echo the request token, here with the digest it already had.
        annotate = next(call for call in runner.calls if call.argv[1] == "annotate")
        handled = copy.deepcopy(SOURCE)
        handled["status"]["lastHandledReconcileAt"] = annotate.argv[-1].split("=", 1)[1]
        return _lines(handled)

    runner.answer_stream(["kubectl", "get", OCIREPOSITORIES, "app"], handled_with_old_digest)
    settings = _settings(manifests, digest=PUSHED)
    with pytest.raises(SourceFailedError, match="points to another digest"):
        flow.run_reconcile(_context(settings, runner), Report("reconcile"))


def test_dry_run_changes_nothing(manifests: Path) -> None:
    runner = _deploy_runner(_source_with("sha256:" + "1" * 64))
    runner.dry_run = True
    report = Report("deploy")
    flow.run_deploy(_context(_settings(manifests, digest=PUSHED), runner), report)
    assert report.status is Status.DRY_RUN
    assert not any("--watch" in c for c in runner.commands())


def test_wait_for_none_waits_for_no_consumer(manifests: Path) -> None:
    runner = FakeRunner()
    _tools(runner)
    runner.answer(["kubectl", "get", OCIREPOSITORIES], stdout=_as_list(_source_with(PUSHED)))
    report = Report("wait")
    flow.run_wait(_context(_settings(manifests, digest=PUSHED, wait_for=["none"]), runner), report)
    assert report.consumers == []
    assert not any("kustomizations" in c for c in runner.commands())


def test_named_consumer_that_does_not_exist_is_a_cluster_error(manifests: Path) -> None:
    runner = FakeRunner()
    _tools(runner)
    runner.answer(
        ["kubectl", "get", OCIREPOSITORIES, "--all-namespaces"], stdout=_as_list(_source_with(PUSHED))
    )
    runner.answer(
        ["kubectl", "get", KUSTOMIZATIONS], stderr=text("kubectl/get-not-found.stderr"), exit_code=1
    )
    settings = _settings(manifests, digest=PUSHED, wait_for=["Kustomization/golden/nope"])
    with pytest.raises(ClusterError, match="Kustomization/golden/nope not found"):
        flow.run_wait(_context(settings, runner), Report("wait"))


def test_status_reads_without_changing(manifests: Path) -> None:
    runner = FakeRunner()
    _tools(runner)
    runner.answer(["kubectl", "get", OCIREPOSITORIES], stdout=_as_list(SOURCE))
    runner.answer(["kubectl", "get", KUSTOMIZATIONS], stdout=text("kubectl/kustomizations-list.json"))
    runner.answer(
        ["kubectl", "get", "helmreleases.helm.toolkit.fluxcd.io"],
        stderr=text("kubectl/get-no-resource-type.stderr"),
        exit_code=1,
    )
    report = Report("status")
    flow.run_status(_context(_settings(manifests), runner), report)
    assert [s.ref.name for s in report.sources] == ["app"]
    assert [c.ref.kind for c in report.consumers] == ["Kustomization"]
    assert not any("annotate" in c or "push" in c for c in runner.commands())


def test_source_of_another_environment_is_left_out_not_fatal(manifests: Path) -> None:
    production = _source_with(PUSHED, ref={"tag": "stable"})
    production["metadata"]["name"] = "production"
    staging = _source_with("sha256:" + "1" * 64)
    runner = _deploy_runner(staging)
    runner.answer(
        ["kubectl", "get", OCIREPOSITORIES, "--all-namespaces"], stdout=_as_list(staging, production)
    )
    runner.answers.insert(0, runner.answers.pop())  # this listing wins over the one-source default
    report = Report("deploy")
    flow.run_deploy(_context(_settings(manifests), runner), report)
    assert [s.ref.name for s in report.sources] == ["app"]
    assert not any("annotate" in c and "production" in c for c in runner.commands())


def test_named_source_following_another_tag_is_fatal(manifests: Path) -> None:
    production = _source_with(PUSHED, ref={"tag": "stable"})
    runner = _deploy_runner(production)
    runner.answer(["kubectl", "get", OCIREPOSITORIES, "app"], stdout=json.dumps(production))
    with pytest.raises(ConfigError, match="follows tag 'stable'"):
        flow.run_deploy(_context(_settings(manifests, ocirepository="golden/app"), runner), Report("deploy"))
