"""FLUX_CI_WAVES against FakeCluster (a scripted fake of the API server, tests/fakecluster.py): one
push, then wave after wave, the soak between them, the stop at the first failure. The real
controllers, clusters and registry are in tests/e2e/test_waves.py."""

from __future__ import annotations

import copy
import io
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from flux_ci.commands import deploy
from flux_ci.config.settings import Settings
from flux_ci.context import Context
from flux_ci.delivery import rollback
from flux_ci.errors import ConsumerFailedError
from flux_ci.registry.client import Registry
from flux_ci.report.dotenv import report_values
from flux_ci.report.models import (
    Artifact,
    ClusterStatus,
    Report,
    Rollback,
    RollbackStatus,
    TagMove,
    WaveStatus,
)
from tests.fakecluster import (
    OLD,
    PUSHED,
    FakeCluster,
    Obj,
    answer_deploy_tools,
    deploy_settings,
    kustomization_at,
    source_at,
)
from tests.fakes import make_context

WAVES = "canary=stg;stable=prod-a,prod-b"


def _pair(tag: str) -> tuple[Obj, Obj]:
    """An OCIRepository named after the tag it follows, and the Kustomization applying it."""
    source = source_at(OLD, ref={"tag": tag})
    source["metadata"]["name"] = tag
    source["status"]["artifact"]["revision"] = f"{tag}@{OLD}"
    consumer = _consumer(tag, OLD)
    return source, consumer


def _consumer(tag: str, digest: str, *, ready: str = "True", message: str = "") -> Obj:
    consumer = kustomization_at(digest)
    consumer["metadata"]["name"] = tag
    consumer["spec"]["sourceRef"]["name"] = tag
    consumer["status"]["lastAppliedRevision"] = consumer["status"]["lastAttemptedRevision"] = (
        f"{tag}@{digest}"
    )
    ready_condition = next(c for c in consumer["status"]["conditions"] if c["type"] == "Ready")
    ready_condition["status"] = ready
    ready_condition["message"] = message or f"Applied revision: {tag}@{digest}"
    if ready == "False":
        ready_condition["reason"] = "ReconciliationFailed"
        ready_condition["lastTransitionTime"] = "2026-12-07T10:00:03Z"
    return consumer


def _controllers(*, failing: Sequence[str] = ()) -> Any:
    """source-controller fetches the tag's digest on request; kustomize-controller applies it, or
    fails to for the tags in `failing` (naming the revision, as it does)."""

    def react(cluster: FakeCluster, requested: Obj, token: str) -> None:
        # One status write for the request and the artifact, as source-controller makes it: its
        # SummarizeAndPatch records the request (summarize/processor.go, RecordReconcileReq) in the
        # patch that ends the reconcile. A watch never sees the request handled with the old artifact,
        # which flux-ci rightly fails (the tag points to the pushed digest).
        updated = copy.deepcopy(requested)
        updated["status"]["lastHandledReconcileAt"] = token
        if requested["kind"] != "OCIRepository":
            cluster.put(updated)
            return
        tag = requested["spec"]["ref"]["tag"]
        updated["status"]["artifact"]["revision"] = f"{tag}@{PUSHED}"
        cluster.put(updated)
        if tag in failing:
            broken = _consumer(tag, OLD, ready="False", message=f"{tag}@{PUSHED}: kind NoSuchKind not found")
            broken["status"]["lastAttemptedRevision"] = f"{tag}@{PUSHED}"
            cluster.put(broken)
        else:
            cluster.put(_consumer(tag, PUSHED))

    return react


def _cluster(**kwargs: Any) -> FakeCluster:
    cluster = FakeCluster([*_pair("canary"), *_pair("stable")])
    answer_deploy_tools(cluster)
    cluster.answers.insert(0, (("oras", "tag"), _tagged("canary", "stable")))
    cluster.on_annotate = _controllers(**kwargs)
    return cluster


def _tagged(*tags: str) -> Any:
    from flux_ci.tools.runner import CommandResult  # noqa: PLC0415

    lines = "".join(f"Tagged {tag}\n" for tag in tags)
    return CommandResult(("oras", "tag"), 0, f"Tagging [registry] x\n{lines}", "", 0.01)


def _settings(manifests: Path, **overrides: Any) -> Settings:
    return deploy_settings(manifests, extra_tags=["latest"], waves=WAVES, **overrides)


def _deploy(cluster: FakeCluster, settings: Settings, out: io.StringIO | None = None) -> Report:
    ctx = make_context(settings, cluster, out=out)
    report = Report("deploy")
    try:
        deploy.run_deploy(ctx, report)
    finally:
        report.steps = list(ctx.progress.steps)
    return report


def _index(commands: list[str], start: str) -> int:
    return next(i for i, command in enumerate(commands) if command.startswith(start))


def _tag_commands(cluster: FakeCluster) -> list[str]:
    """The tags each `oras tag` moved, in order."""
    return [" ".join(call.argv[3:4]) for call in cluster.calls if call.argv[:2] == ("oras", "tag")]


def test_one_push_then_each_wave_moves_its_tag_after_the_previous_wave_applied(manifests: Path) -> None:
    cluster = _cluster()
    out = io.StringIO()
    report = _deploy(cluster, _settings(manifests), out)

    commands = cluster.commands()
    assert [c.split()[:2] for c in commands].count(["flux", "push"]) == 1
    push = next(c for c in commands if c.startswith("flux push"))
    assert ":c1 " in push
    assert _tag_commands(cluster) == ["canary", "stable"]  # the push moved no tag: each wave moves its own
    canary_applied = max(i for i, c in enumerate(commands) if "annotate" in c and " canary " in c)
    assert _index(commands, f"oras tag {REGISTRY_REF}") < canary_applied < _stable_tag(commands)
    assert [(w.tag, w.clusters, w.status) for w in report.waves] == [
        ("canary", ("stg",), WaveStatus.SUCCEEDED),
        ("stable", ("prod-a", "prod-b"), WaveStatus.SUCCEEDED),
    ]
    assert all(w.started_at.endswith("Z") and w.seconds > 0 for w in report.waves)
    assert report.artifact is not None
    assert report.artifact.tags == ("c1", "canary", "stable")
    assert [(c.context, c.status) for c in report.clusters] == [
        ("stg", ClusterStatus.SUCCEEDED),
        ("prod-a", ClusterStatus.SUCCEEDED),
        ("prod-b", ClusterStatus.SUCCEEDED),
    ]
    values = report_values(report)
    assert (values["FLUX_CI_WAVES_SUCCEEDED"], values["FLUX_CI_WAVE_FAILED"]) == ("canary,stable", "")
    assert "wave 1/2: canary=stg" in out.getvalue()
    assert "wave 2/2: stable=prod-a,prod-b" in out.getvalue()


REGISTRY_REF = "127.0.0.1:60803/golden/app@"


def _stable_tag(commands: list[str]) -> int:
    return next(i for i, c in enumerate(commands) if c.startswith("oras tag") and " stable " in c)


def test_every_cluster_of_every_wave_is_checked_before_anything_is_pushed(manifests: Path) -> None:
    cluster = _cluster()
    _deploy(cluster, _settings(manifests))
    commands = cluster.commands()
    contexts = {"stg", "prod-a", "prod-b"}
    # each cluster's discovery, against its own context, before the push
    reviews = [c for c in commands[: _index(commands, "flux push")] if " create --filename=-" in c]
    assert {c.split("--context=")[1].split()[0] for c in reviews} == contexts


def test_a_cluster_of_a_wave_expects_its_sources_to_follow_its_wave_tag(manifests: Path) -> None:
    cluster = _cluster()
    report = _deploy(cluster, _settings(manifests))
    by_cluster = {(s.cluster, s.ref.name) for s in report.sources}
    assert by_cluster == {("stg", "canary"), ("prod-a", "stable"), ("prod-b", "stable")}
    assert "stg: left out: OCIRepository/golden/stable follows tag 'stable'" in " ".join(report.notes)


def test_the_first_failed_wave_ends_the_run_and_later_tags_never_move(manifests: Path) -> None:
    cluster = _cluster(failing=["canary"])
    report = Report("deploy")
    with pytest.raises(ConsumerFailedError) as caught:
        report = _deploy_into(report, cluster, _settings(manifests))
    message = caught.value.message
    assert message.startswith("wave canary (stg) failed: Kustomization/golden/canary failed to apply")
    assert message.endswith("waves not started (their tags did not move): stable")
    assert _tag_commands(cluster) == ["canary"]
    assert not any("annotate" in c and " stable " in c for c in cluster.commands())
    assert [w.status for w in report.waves] == [WaveStatus.FAILED, WaveStatus.NOT_STARTED]
    assert report.waves[1].started_at == ""
    assert {c.context: c.status for c in report.clusters} == {
        "stg": ClusterStatus.FAILED,
        "prod-a": ClusterStatus.NOT_DEPLOYED,
        "prod-b": ClusterStatus.NOT_DEPLOYED,
    }
    values = report_values(report)
    assert (values["FLUX_CI_WAVES_SUCCEEDED"], values["FLUX_CI_WAVE_FAILED"]) == ("", "canary")


def _deploy_into(report: Report, cluster: FakeCluster, settings: Settings) -> Report:
    ctx = make_context(settings, cluster)
    deploy.run_deploy(ctx, report)
    return report


def test_a_soak_keeps_the_next_wave_waiting_and_the_last_wave_is_not_soaked(manifests: Path) -> None:
    cluster = _cluster()
    report = _deploy(cluster, _settings(manifests, wave_soak=0.6))
    canary, stable = report.waves
    assert (canary.status, stable.status) == (WaveStatus.SUCCEEDED, WaveStatus.SUCCEEDED)
    assert canary.soak_s >= 0.6
    assert stable.soak_s == 0
    soaks = [step for step in report.steps if step.name == "soak"]
    assert [(step.cluster, step.duration_s >= 0.6) for step in soaks] == [("stg", True)]


def test_a_consumer_leaving_ready_during_the_soak_fails_the_wave(manifests: Path) -> None:
    cluster = _cluster()
    report = Report("deploy")
    applied = threading.Event()
    react = cluster.on_annotate

    def then_break(fake: FakeCluster, requested: Obj, token: str) -> None:
        react(fake, requested, token)
        if requested["kind"] == "OCIRepository" and requested["metadata"]["name"] == "canary":
            applied.set()

    def breaker() -> None:
        applied.wait(timeout=10)
        threading.Event().wait(0.5)  # into the soak
        broken = _consumer("canary", PUSHED, ready="False", message="Health check failed: web not ready")
        cluster.put(broken)

    cluster.on_annotate = then_break
    worker = threading.Thread(target=breaker)
    worker.start()
    with pytest.raises(ConsumerFailedError) as caught:
        _deploy_into(report, cluster, _settings(manifests, wave_soak=5, timeout=30))
    worker.join(timeout=10)
    message = caught.value.message
    assert "Kustomization/golden/canary left Ready: Health check failed: web not ready" in message
    assert "(at 2026-12-07T10:00:03Z, " in message  # the moment, as the controller wrote it
    assert "s into the 5s soak)" in message
    assert _tag_commands(cluster) == ["canary"]
    assert [w.status for w in report.waves] == [WaveStatus.FAILED, WaveStatus.NOT_STARTED]
    assert 0 < report.waves[0].soak_s < 5


def test_a_rollback_goes_back_wave_by_wave_the_last_first(
    manifests: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order and the statuses; moving the tags back and waiting is rollback's own (e2e)."""
    staged: list[list[str]] = []

    def fake_roll_back(
        ctx: Context, report: Report, registry: Registry, artifact: Artifact, stages: Sequence[rollback.Stage]
    ) -> Rollback:
        staged.extend([[one.cluster.name for one in stage.ready] for stage in stages])
        moved = tuple(move.tag for stage in stages for move in stage.recorded)
        return Rollback(RollbackStatus.ROLLED_BACK, artifact.digest, OLD, moved, "back")

    monkeypatch.setattr(rollback, "roll_back_in_turn", fake_roll_back)
    cluster = _cluster(failing=["stable"])
    cluster.answers.insert(0, (("oras", "resolve"), _resolved(OLD)))  # where the tags pointed before
    report = Report("deploy")
    with pytest.raises(ConsumerFailedError):
        _deploy_into(report, cluster, _settings(manifests, rollback=True))
    assert staged == [["prod-a", "prod-b"], ["stg"]]
    assert [w.status for w in report.waves] == [WaveStatus.ROLLED_BACK, WaveStatus.FAILED]
    assert report.tag_moves == [TagMove("canary", OLD, PUSHED), TagMove("stable", OLD, PUSHED)]


def _resolved(digest: str) -> Any:
    from flux_ci.tools.runner import CommandResult  # noqa: PLC0415

    return CommandResult(("oras", "resolve"), 0, f"{digest}\n", "", 0.01)


def test_a_dry_run_moves_no_tag_and_starts_no_wave(manifests: Path) -> None:
    cluster = _cluster()
    cluster.dry_run = True
    report = _deploy(cluster, _settings(manifests, digest=PUSHED, wave_soak=30, timeout=60))
    assert report.error is None
    assert [c.split()[:2] for c in cluster.mutations()].count(["oras", "tag"]) == 2  # printed, never run
    assert cluster.changes() == []
    assert [w.status for w in report.waves] == [WaveStatus.NOT_STARTED, WaveStatus.NOT_STARTED]
    assert [step.name for step in report.steps if step.name == "soak"] == ["soak"]  # skipped, said so


def test_a_tag_the_registry_refuses_to_move_fails_its_wave_with_exit_4(manifests: Path) -> None:
    from flux_ci.errors import RegistryError  # noqa: PLC0415
    from flux_ci.tools.runner import CommandResult  # noqa: PLC0415

    cluster = _cluster()
    refused = "Error: failed to tag: denied: requested access to the resource is denied\n"
    cluster.answers.insert(0, (("oras", "tag"), CommandResult(("oras", "tag"), 1, "", refused, 0.01)))
    report = Report("deploy")
    with pytest.raises(RegistryError) as caught:
        _deploy_into(report, cluster, _settings(manifests))
    assert caught.value.message.startswith("wave canary (stg) failed: ")
    assert [w.status for w in report.waves] == [WaveStatus.FAILED, WaveStatus.NOT_STARTED]
    assert not any(c.startswith("kubectl") and "annotate" in c for c in cluster.commands())
