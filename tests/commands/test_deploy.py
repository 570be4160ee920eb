"""The commands' flow against FakeCluster (a scripted fake of the API server, see tests/fakecluster.py)
and golden files of real tool output; the real thing is in tests/e2e/."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from flux_ci.commands import deploy, status
from flux_ci.config.settings import Settings
from flux_ci.context import Context
from flux_ci.errors import (
    ClusterError,
    ConfigError,
    ConsumerFailedError,
    DeadlineExceededError,
    SourceFailedError,
    SupersededError,
)
from flux_ci.kube import verdicts
from flux_ci.kube.verdicts import Expectation
from flux_ci.report.models import Report
from flux_ci.tools.kubectl import HELMRELEASES, KUSTOMIZATIONS, OCIREPOSITORIES
from flux_ci.tools.runner import CommandResult
from tests.fakecluster import (
    PUSHED,
    REPOSITORY,
    SOURCE,
    FakeCluster,
    Obj,
    answer_deploy_tools,
    deploy_settings,
    kustomization_at,
    no_controller,
    source_at,
)
from tests.fakecontrollers import KUSTOMIZATION_RERUN_FAILS, Controllers, replay
from tests.fakes import make_context
from tests.golden import obj

NEWER = "sha256:" + "2" * 64
_source = source_at
_kustomization = kustomization_at
_settings = deploy_settings


def _controllers(fetches: str = PUSHED, *, apply: bool = True, consumers_fail: bool = False) -> Controllers:
    """source- and kustomize-controller as the recordings show them: fetch `fetches` on request,
    then apply it (tests/fakecontrollers.py)."""
    return Controllers(fetches, apply=apply, consumers_fail=consumers_fail)


def _cluster(*objects: Obj, **kwargs: Any) -> FakeCluster:
    cluster = FakeCluster(objects or (_source(), _kustomization()), **kwargs)
    answer_deploy_tools(cluster)
    cluster.on_annotate = _controllers()
    return cluster


def _context(settings: Settings, runner: FakeCluster, seconds: float | None = None) -> Context:
    return make_context(settings, runner, seconds=seconds)


def _deploy(cluster: FakeCluster, settings: Settings, seconds: float | None = None) -> Report:
    report = Report("deploy")
    deploy.run_deploy(_context(settings, cluster, seconds), report)
    return report


def _index(commands: list[str], start: str) -> int:
    return next(i for i, command in enumerate(commands) if command.startswith(start))


def test_deploy_checks_the_cluster_first_then_pushes_requests_and_waits(manifests: Path) -> None:
    cluster = _cluster()
    report = _deploy(cluster, _settings(manifests))
    assert report.artifact is not None
    assert report.artifact.digest == PUSHED
    assert [(s.revision, s.state) for s in report.sources] == [(f"latest@{PUSHED}", "done")]
    assert [(c.revision, c.state) for c in report.consumers] == [(f"latest@{PUSHED}", "done")]
    commands = cluster.commands()
    checks = [_index(commands, step) for step in (
        "kubectl create --filename=-", f"kubectl get {OCIREPOSITORIES} --all-namespaces --output=json",
        f"kubectl get {KUSTOMIZATIONS} --all-namespaces --output=json",
    )]  # fmt: skip
    changes = [_index(commands, step) for step in ("flux push", "oras tag", "kubectl annotate")]
    assert max(checks) < min(changes)  # permissions and objects are checked before anything is pushed
    assert changes == sorted(changes)
    watches = [c for c in commands if "--watch" in c]
    assert len(watches) == 3  # one per kind (not one per object), and one for the namespace's events
    assert report.scope == [
        "OCIRepository: all namespaces",
        "Kustomization: all namespaces",
        "HelmRelease: not installed",
    ]


def test_one_kubectl_call_lists_every_kind_when_the_cluster_has_them_all(manifests: Path) -> None:
    cluster = _cluster()
    cluster.helm_installed = True
    report = _deploy(cluster, _settings(manifests))
    lists = [
        c for c in cluster.commands() if c.startswith("kubectl get") and "--all-namespaces --output=json" in c
    ]
    assert lists == [
        f"kubectl get {OCIREPOSITORIES},{KUSTOMIZATIONS},{HELMRELEASES} --all-namespaces --output=json"
    ]
    assert report.scope == [
        "OCIRepository: all namespaces",
        "Kustomization: all namespaces",
        "HelmRelease: all namespaces",
    ]
    assert [(c.revision, c.state) for c in report.consumers] == [(f"latest@{PUSHED}", "done")]


def test_a_kind_the_cluster_lacks_makes_each_kind_listed_on_its_own(manifests: Path) -> None:
    cluster = _cluster()  # no HelmRelease CRD: kubectl refuses the whole joined list
    _deploy(cluster, _settings(manifests))
    lists = [
        c for c in cluster.commands() if c.startswith("kubectl get") and "--all-namespaces --output=json" in c
    ]
    assert (
        lists[0]
        == f"kubectl get {OCIREPOSITORIES},{KUSTOMIZATIONS},{HELMRELEASES} --all-namespaces --output=json"
    )
    assert sorted(lists[1:]) == sorted(
        f"kubectl get {resource} --all-namespaces --output=json"
        for resource in (OCIREPOSITORIES, KUSTOMIZATIONS, HELMRELEASES)
    )


def test_exit_0_never_rests_on_nothing(manifests: Path) -> None:
    cluster = _cluster(_source())
    with pytest.raises(
        ConfigError, match="no Kustomization or HelmRelease reads OCIRepository/golden/app"
    ) as caught:
        _deploy(cluster, _settings(manifests))
    assert "FLUX_CI_WAIT_FOR=none" in caught.value.message
    assert not any(c.startswith("flux push") for c in cluster.commands())


def test_wait_for_none_is_an_explicit_opt_out(manifests: Path) -> None:
    cluster = _cluster(_source())
    report = _deploy(cluster, _settings(manifests, wait_for=["none"]))
    assert report.consumers == []
    assert [s.state for s in report.sources] == ["done"]


def test_a_missing_patch_right_fails_before_the_tag_moves(manifests: Path) -> None:
    cluster = _cluster(denied=[("patch", OCIREPOSITORIES, "golden")])
    with pytest.raises(ClusterError, match=f"may not patch {OCIREPOSITORIES} in namespace golden"):
        _deploy(cluster, _settings(manifests))
    assert not any(c.startswith(("flux push", "oras tag")) for c in cluster.commands())


NAMESPACED_ONLY = [
    (verb, resource, "") for verb in ("list", "watch") for resource in (OCIREPOSITORIES, KUSTOMIZATIONS)
]


def test_namespaced_rights_deploy_the_consumers_named_and_say_where_they_searched(manifests: Path) -> None:
    cluster = _cluster(denied=NAMESPACED_ONLY)
    report = _deploy(cluster, _settings(manifests, wait_for=["Kustomization/golden/app"]))
    assert [c.state for c in report.consumers] == ["done"]
    assert report.scope[0].startswith("OCIRepository: only namespace golden (not allowed: list/watch")
    assert any(
        c.endswith("--namespace=golden --output=json --watch --output-watch-events")
        for c in cluster.commands()
    )


def test_namespaced_rights_without_named_consumers_are_exit_5_before_the_push(manifests: Path) -> None:
    # A consumer in a namespace the identity cannot read could read our source: never invisible.
    cluster = _cluster(denied=NAMESPACED_ONLY)
    with pytest.raises(ClusterError) as raised:
        _deploy(cluster, _settings(manifests))
    message = raised.value.message
    assert f"lacks list/watch {KUSTOMIZATIONS} cluster-wide" in message
    assert "FLUX_CI_WAIT_FOR (the ones it can see: Kustomization/golden/app)" in message
    assert not any(c.startswith("flux push") for c in cluster.commands())


def test_consumers_hidden_by_rbac_are_a_cluster_error_not_nothing_to_wait_for(manifests: Path) -> None:
    denied = [(verb, KUSTOMIZATIONS, ns) for verb in ("list", "watch") for ns in ("", "golden")]
    cluster = _cluster(denied=denied)
    with pytest.raises(ClusterError, match="may not read Kustomization objects: it lacks list/watch"):
        _deploy(cluster, _settings(manifests))
    assert not any(c.startswith("flux push") for c in cluster.commands())


def test_sources_following_other_refs_are_left_out_with_a_note(manifests: Path) -> None:
    semver = _source(NEWER, ref={"semver": ">=1.0.0"})
    semver["metadata"]["name"] = "releases"
    stable = _source(NEWER, ref={"tag": "stable"})
    stable["metadata"]["name"] = "production"
    cluster = _cluster(_source(), semver, stable, _kustomization())
    report = _deploy(cluster, _settings(manifests))
    assert [s.ref.name for s in report.sources] == ["app"]
    assert report.notes == [
        "left out: OCIRepository/golden/production follows tag 'stable', but this run pushes tags: "
        "c1, latest",
        "left out: OCIRepository/golden/releases follows the semver range '>=1.0.0', not a tag this "
        "run pushes",
    ]
    assert not any("annotate" in c and ("production" in c or "releases" in c) for c in cluster.commands())


def test_a_named_source_following_another_ref_is_fatal(manifests: Path) -> None:
    cluster = _cluster(_source(ref={"semver": "1.x"}), _kustomization())
    with pytest.raises(ConfigError, match=r"follows the semver range '1\.x'"):
        _deploy(cluster, _settings(manifests, ocirepository="golden/app"))


def test_a_digest_pin_is_known_before_the_push(manifests: Path) -> None:
    cluster = _cluster(_source(ref={"digest": NEWER}), _kustomization())
    with pytest.raises(ConfigError, match=f"pins digest {NEWER}: a push makes a new digest"):
        _deploy(cluster, _settings(manifests))
    assert not any(c.startswith("flux push") for c in cluster.commands())


def test_a_newer_push_on_the_followed_tag_is_superseded_not_a_timeout(manifests: Path) -> None:
    cluster = _cluster()
    cluster.on_annotate = _controllers(NEWER, apply=False)
    cluster.answers.insert(0, (("oras", "resolve"), _result(f"{NEWER}\n")))
    report = Report("deploy")
    with pytest.raises(SupersededError) as caught:
        deploy.run_deploy(_context(_settings(manifests), cluster), report)
    assert caught.value.by_digest == NEWER
    assert "tag 'latest' now points to" in caught.value.message


def test_a_source_failing_after_our_request_fails_fast(manifests: Path) -> None:
    failing = copy.deepcopy(obj("kubectl/ocirepository-auth-failed.json"))
    failing["metadata"]["namespace"] = "golden"
    failing["metadata"]["name"] = "app"
    failing["spec"]["url"] = REPOSITORY

    def refuse(cluster: FakeCluster, requested: Obj, token: str) -> None:
        # A fake source-controller following kubectl/ocirepository-auth-failed.json: one state, the
        # refusal, written after the request (in the background, as FakeCluster runs every answer).
        failing["status"]["lastHandledReconcileAt"] = token  # as source-controller records it
        cluster.put(copy.deepcopy(failing))

    cluster = _cluster(_source(), _kustomization())
    cluster.on_annotate = refuse
    with pytest.raises(SourceFailedError, match="failed to get credential"):
        _deploy(cluster, _settings(manifests), seconds=30)


def test_a_rerun_asks_the_consumers_again_and_counts_only_their_answer(manifests: Path) -> None:
    cluster = _cluster(_source(PUSHED), _kustomization(PUSHED))
    report = _deploy(cluster, _settings(manifests))
    annotated = [c for c in cluster.commands() if c.startswith("kubectl annotate")]
    assert len(annotated) == 1
    assert annotated[0].startswith(f"kubectl annotate {KUSTOMIZATIONS} app")
    handled = cluster.get("Kustomization", "golden", "app")["status"]["lastHandledReconcileAt"]
    assert annotated[0].endswith(handled)
    assert [c.state for c in report.consumers] == ["done"]
    assert report.changed is False  # the same digest again: nothing changed


def test_a_deploy_that_a_consumer_applies_changed_something(manifests: Path) -> None:
    report = _deploy(_cluster(), _settings(manifests))
    assert [c.revision for c in report.consumers] == [f"latest@{PUSHED}"]
    assert report.changed is True


def test_a_deploy_stopped_before_discovery_ended_knows_nothing_of_changes(manifests: Path) -> None:
    cluster = _cluster(_source())  # no consumer: exit 2 during discovery
    report = Report("deploy")
    with pytest.raises(ConfigError):
        deploy.run_deploy(_context(_settings(manifests), cluster), report)
    assert report.changed is None


def test_require_health_refuses_an_apply_only_consumer_before_the_push(manifests: Path) -> None:
    cluster = _cluster()
    with pytest.raises(ConfigError, match=r"Kustomization/golden/app: set spec\.wait: true"):
        _deploy(cluster, _settings(manifests, require_health=True))
    assert not any(c.startswith(("flux push", "oras tag", "kubectl annotate")) for c in cluster.commands())


def test_the_deadline_names_the_controller_that_never_answered(manifests: Path) -> None:
    cluster = _cluster()
    cluster.on_annotate = no_controller  # source-controller is stopped
    with pytest.raises(DeadlineExceededError) as caught:
        _deploy(cluster, _settings(manifests), seconds=1.5)
    assert "OCIRepository/golden/app" in caught.value.message
    assert "source-controller has not acknowledged the reconcile request" in caught.value.message


def test_dry_run_runs_nothing_that_changes_anything(manifests: Path) -> None:
    cluster = _cluster()
    cluster.dry_run = True
    report = Report("deploy")
    deploy.run_deploy(_context(_settings(manifests, digest=PUSHED), cluster), report)
    assert report.error is None  # the boundary then calls it dry-run (tests/e2e/test_deploy.py)
    planned = cluster.mutations()
    assert [c.split()[:2] for c in planned] == [["flux", "push"], ["oras", "tag"], ["kubectl", "annotate"]]
    assert cluster.changes() == []  # printed, never run
    annotations = cluster.get("OCIRepository", "golden", "app")["metadata"]["annotations"]
    assert annotations == SOURCE["metadata"]["annotations"]  # no new reconcile request
    assert not any("--watch" in c for c in cluster.commands())


def test_status_reports_every_source_of_the_repository(manifests: Path) -> None:
    semver = _source(NEWER, ref={"semver": ">=1.0.0"})
    semver["metadata"]["name"] = "releases"
    cluster = _cluster(_source(), semver, _kustomization())
    report = Report("status")
    status.run_status(_context(_settings(manifests), cluster), report)
    assert [s.ref.name for s in report.sources] == ["app", "releases"]
    assert [c.ref.kind for c in report.consumers] == ["Kustomization"]
    assert not any(c.startswith(("kubectl annotate", "flux push")) for c in cluster.commands())


def _result(stdout: str) -> CommandResult:
    return CommandResult(("oras", "resolve"), 0, stdout, "", 0.01)


def test_the_modules_a_deploy_loads_leave_out_what_only_a_failure_or_an_option_needs() -> None:
    # Each module loaded costs CPU on every deploy: diagnostics and rollback load after a failure,
    # github on GitHub Actions, markdown for FLUX_CI_OUTPUT=markdown.
    modules = "flux_ci.cli.app, flux_ci.commands.deploy, flux_ci.report.render"
    probe = f"import sys, json, {modules}\nprint(json.dumps(list(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    assert "flux_ci.delivery.settle" in loaded
    assert (
        loaded
        & {
            "flux_ci.kube.diagnostics",
            "flux_ci.delivery.rollback",
            "flux_ci.report.github",
            "flux_ci.report.markdown",
        }
        == set()
    )


# --- the fake controllers replay the recorded stages: a verdict taking an old state fails here ------


def test_a_rerun_whose_asked_apply_fails_is_exit_7_not_the_earlier_success(manifests: Path) -> None:
    # The consumer is Ready with the digest from before the re-run's request; kustomize-controller,
    # asked again, fails (recorded: an object edited by hand and made immutable). Taking the state
    # from before the request for the answer would exit 0.
    cluster = _cluster(_source(PUSHED), _kustomization(PUSHED))
    cluster.on_annotate = _controllers(consumers_fail=True)
    with pytest.raises(ConsumerFailedError, match="dry-run failed"):
        _deploy(cluster, _settings(manifests))


def test_a_consumer_of_an_older_generation_is_not_done_until_the_current_one_is_reconciled(
    manifests: Path,
) -> None:
    # Without `patch` on consumers its current state decides: Ready with the digest, but for the
    # generation before a spec change. kustomize-controller then reconciles the new spec and fails
    # (replayed on its own, no request). Trusting the older generation would exit 0.
    changed = _kustomization(PUSHED)
    changed["metadata"]["generation"] = changed["status"]["observedGeneration"] + 1
    cluster = _cluster(_source(PUSHED), changed, denied=[("patch", KUSTOMIZATIONS, "golden")])
    key = ("Kustomization", "golden", "app")
    handled = str(changed["status"].get("lastHandledReconcileAt", ""))
    controller = threading.Timer(0.3, replay, args=(cluster, key, KUSTOMIZATION_RERUN_FAILS),
                                 kwargs={"digest": PUSHED, "token": handled})  # fmt: skip
    controller.start()
    try:
        with pytest.raises(ConsumerFailedError, match="dry-run failed"):
            _deploy(cluster, _settings(manifests))
    finally:
        controller.join()


def test_the_fake_controllers_catch_a_verdict_that_takes_a_state_from_before_the_request(
    manifests: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A deliberately broken verdict: any state answers the request. The flow test above must fail.
    monkeypatch.setattr(Expectation, "answered", lambda _self, _obj: True)
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        test_a_rerun_whose_asked_apply_fails_is_exit_7_not_the_earlier_success(manifests)


def test_the_fake_controllers_catch_a_verdict_that_takes_an_older_generation(
    manifests: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verdicts, "reconciled", lambda _obj: True)  # broken: any generation will do
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        test_a_consumer_of_an_older_generation_is_not_done_until_the_current_one_is_reconciled(manifests)
