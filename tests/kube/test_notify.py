"""FLUX_CI_NOTIFY: the Receiver webhook call (a real HTTP exchange with a local stand-in for
notification-controller's receiver server), the flow without `patch`, and FLUX_CI_VERIFY=false.
The real notification-controller answers in tests/e2e/test_receiver.py."""

from __future__ import annotations

import copy
import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from flux_ci.commands import deploy, reconcile
from flux_ci.config import plan
from flux_ci.config.settings import Settings
from flux_ci.context import Context
from flux_ci.errors import ClusterError, ConfigError, SourceFailedError
from flux_ci.kube import notify, receiver
from flux_ci.report.dotenv import to_dotenv
from flux_ci.report.models import Artifact, ObjectRef, Report, Status
from flux_ci.report.render import to_json, to_table
from flux_ci.tools.kubectl import OCIREPOSITORIES, RECEIVERS, RECONCILE_ANNOTATION
from tests.fakecluster import (
    PUSHED,
    REPOSITORY,
    FakeCluster,
    Obj,
    answer_deploy_tools,
    deploy_settings,
    kustomization_at,
    source_at,
)
from tests.fakecontrollers import Controllers
from tests.fakes import FakeRunner, make_context
from tests.golden import obj, text
from tests.receiver_standin import TOKEN, StandIn

ARTIFACT = Artifact(REPOSITORY, ("c1", "latest"), PUSHED, "https://git.example/app", "main@sha1:abc")

# Receiver status.webhookPath as the real notification-controller v1.9.2 computed it for these
# tokens (read from the sandbox), and RFC 4231 test case 2 for HMAC-SHA256.
REAL_PATHS = [
    ("golden-receiver-token", "ci", "flux-system",
     "/hook/35f4e20df22564f83be6bde6c55c6b18b66049da67082734ee98ad18e12c9004"),
    ("s3cr3t-hmac-token", "apps-hmac", "apps",
     "/hook/d54a11b96f78e683659a25a9ff3224127fe1c5cedc335eae71af0b87786243ea"),
    ("", "oidc", "apps", "/hook/1c7f525795ff89d737b4d55b4b95c11f55d0ef6755e36ee411cdb4e0c6b58d96"),
]  # fmt: skip


def test_the_webhook_path_is_the_one_notification_controller_serves() -> None:
    for token, name, namespace, path in REAL_PATHS:
        assert receiver.webhook_path(token, name, namespace) == path


def test_the_hmac_signature_is_hmac_sha256_of_the_body() -> None:
    expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert receiver.signature("Jefe", b"what do ya want for nothing?") == f"sha256={expected}"


def _settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"receiver_url": url, "receiver": "flux-system/ci", "receiver_token": TOKEN}
    return Settings(**{"timeout": 10, **values, **overrides})


def _context(settings: Settings, runner: FakeRunner | None = None) -> tuple[Context, io.StringIO]:
    runner = runner or FakeRunner()
    out = io.StringIO()
    return make_context(settings, runner, out=out, masker=runner.masker), out  # one masker, as the CLI


# --- the call ------------------------------------------------------------------------------------


def test_a_generic_receiver_gets_the_artifact_at_its_webhook_path(stand_in: StandIn) -> None:
    stand_in.add("ci", "flux-system")
    ctx, out = _context(_settings(stand_in.url))
    receiver.trigger(ctx, ARTIFACT)
    (hit,) = stand_in.hits
    assert hit.path == "/base" + receiver.webhook_path(TOKEN, "ci", "flux-system")
    assert hit.headers["Content-Type"] == "application/json"
    assert "X-Signature" not in hit.headers
    assert "Authorization" not in hit.headers
    assert json.loads(hit.body)["digest"] == PUSHED
    # For a generic Receiver the path is the credential: neither it nor the token is ever shown.
    log = out.getvalue()
    assert "answered 200 OK" in log
    assert hit.path.removeprefix("/base/hook/") not in log
    assert "/hook/****" in log


def test_a_generic_hmac_receiver_gets_a_signature_it_accepts(stand_in: StandIn) -> None:
    stand_in.add("ci", "apps", "generic-hmac")
    ctx, _ = _context(_settings(stand_in.url, receiver="apps/ci", receiver_type="generic-hmac"))
    receiver.trigger(ctx, ARTIFACT)
    (hit,) = stand_in.hits
    assert hit.headers["X-Signature"] == receiver.signature(TOKEN, hit.body)


def test_a_generic_oidc_receiver_gets_the_bearer_and_the_tokenless_path(stand_in: StandIn) -> None:
    stand_in.add("ci", "golden", "generic-oidc")
    settings = _settings(
        stand_in.url,
        receiver="ci",
        namespace="golden",
        receiver_type="generic-oidc",
        receiver_token=None,
        receiver_oidc_token="oidc.jwt.value",
    )
    ctx, _ = _context(settings)
    receiver.trigger(ctx, ARTIFACT)
    (hit,) = stand_in.hits
    assert hit.path == "/base" + receiver.webhook_path("", "ci", "golden")
    assert hit.headers["Authorization"] == "Bearer oidc.jwt.value"


def test_transient_answers_are_retried_until_accepted(stand_in: StandIn) -> None:
    stand_in.add("ci", "flux-system")
    stand_in.script = [503, 429]
    ctx, out = _context(_settings(stand_in.url))
    receiver.trigger(ctx, ARTIFACT)
    assert len(stand_in.hits) == 3
    assert "answered 503 Service Unavailable; retry in 0.5s" in out.getvalue()


def test_a_wrong_token_is_a_404_that_fails_with_the_receivers_answer(
    stand_in: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receiver, "NOT_FOUND_GRACE_S", 0.6)  # a Receiver still starting gets 10 s
    stand_in.add("ci", "flux-system", token="the-real-token")
    ctx, _ = _context(_settings(stand_in.url))
    with pytest.raises(ClusterError) as caught:
        receiver.trigger(ctx, ARTIFACT)
    error = caught.value
    assert error.exit_code == 5
    assert not error.retryable  # the same token fails the same way
    assert "answered 404 Not Found" in error.message
    assert "check FLUX_CI_RECEIVER_TOKEN, FLUX_CI_RECEIVER (flux-system/ci)" in error.message
    assert f"{ARTIFACT.url} is in the registry" in error.message
    assert 2 <= len(stand_in.hits) <= 4  # retried only for the grace period
    masked = ctx.runner.masker.mask(error.message)
    assert receiver.webhook_path(TOKEN, "ci", "flux-system").removeprefix("/hook/") not in masked


def test_a_bad_signature_is_refused_at_once(stand_in: StandIn) -> None:
    stand_in.add("ci", "flux-system", "generic-hmac")
    (path,) = stand_in.receivers
    stand_in.receivers[path] = ("generic-hmac", "another-key", "flux-system")  # signs with another key
    ctx, _ = _context(_settings(stand_in.url, receiver_type="generic-hmac"))
    with pytest.raises(ClusterError, match=r"refused the request at .*: 400 Bad Request .*wrong signature"):
        receiver.trigger(ctx, ARTIFACT)
    assert len(stand_in.hits) == 1


def test_a_redirect_is_reported_not_followed(stand_in: StandIn) -> None:
    stand_in.script = [307]
    ctx, _ = _context(_settings(stand_in.url))
    with pytest.raises(ClusterError, match=r"307 Temporary Redirect \(to https://elsewhere.example/hook/x\)"):
        receiver.trigger(ctx, ARTIFACT)
    assert len(stand_in.hits) == 1


def test_an_unreachable_receiver_is_retryable_at_the_deadline() -> None:
    ctx, out = _context(_settings("http://127.0.0.1:9", timeout=1.5))  # discard: nothing listens
    with pytest.raises(ClusterError) as caught:
        receiver.trigger(ctx, ARTIFACT)
    assert caught.value.retryable
    assert "was still unreachable at the deadline (1.5s)" in caught.value.message
    assert "retry in 0.5s" in out.getvalue()


def test_dry_run_sends_nothing(stand_in: StandIn) -> None:
    runner = FakeRunner(dry_run=True)
    ctx, out = _context(_settings(stand_in.url), runner)
    receiver.trigger(ctx, ARTIFACT)
    assert stand_in.hits == []
    assert "[dry-run] would trigger the generic Receiver flux-system/ci" in out.getvalue()


# --- the flow without patch ----------------------------------------------------------------------


_source = source_at
_kustomization = kustomization_at
_deploy_settings = deploy_settings


# source-controller and kustomize-controller handling the request the Receiver wrote, as recorded.
_fetch_and_apply = Controllers(PUSHED)


def _cluster(*objects: Obj, denied: list[tuple[str, str, str]] | None = None) -> FakeCluster:
    cluster = FakeCluster(objects or (_source(), _kustomization()), denied=denied or [])
    answer_deploy_tools(cluster)
    # The Receiver golden/ci, Ready, whose webhook path is the one TOKEN gives.
    cluster.answer(["kubectl", "get", RECEIVERS], stdout=text("kubectl/receiver-ready.stdout"))
    cluster.on_annotate = _fetch_and_apply
    return cluster


NO_PATCH = [("patch", OCIREPOSITORIES, "golden")]
SOURCE_REF = ObjectRef("OCIRepository", "golden", "app")


def test_receiver_mode_needs_no_patch_and_waits_for_the_request_it_made(
    stand_in: StandIn, manifests: Path
) -> None:
    cluster = stand_in.cluster = _cluster(denied=NO_PATCH)
    stand_in.add("ci", "golden")
    stand_in.resources = [SOURCE_REF]
    settings = _deploy_settings(manifests, receiver_url=stand_in.url, receiver="ci", receiver_token=TOKEN)
    assert settings.notify_mode == "receiver"  # configuring a Receiver is enough
    ctx, out = _context(settings, cluster)
    report = Report("deploy")
    deploy.run_deploy(ctx, report)
    assert report.status is Status.SUCCEEDED
    assert [(c.revision, c.state) for c in report.consumers] == [(f"latest@{PUSHED}", "done")]
    assert not any(c.startswith("kubectl annotate") for c in cluster.commands())
    assert len(stand_in.hits) == 1
    written = cluster.get("OCIRepository", "golden", "app")["metadata"]["annotations"][RECONCILE_ANNOTATION]
    assert f"{SOURCE_REF}: reconcile requested by the Receiver at {written}" in out.getvalue()


def test_a_source_failing_after_the_receivers_request_fails_fast(stand_in: StandIn, manifests: Path) -> None:
    failing = copy.deepcopy(obj("kubectl/ocirepository-auth-failed.json"))
    failing["metadata"].update(namespace="golden", name="app")
    failing["spec"]["url"] = REPOSITORY

    def refuse(cluster: FakeCluster, requested: Obj, token: str) -> None:
        # A fake source-controller following kubectl/ocirepository-auth-failed.json (one state).
        refused = copy.deepcopy(failing)
        refused["metadata"]["annotations"] = requested["metadata"]["annotations"]
        refused["status"]["lastHandledReconcileAt"] = token  # the token notification-controller wrote
        cluster.put(refused)

    cluster = stand_in.cluster = _cluster(denied=NO_PATCH)
    cluster.on_annotate = refuse
    stand_in.add("ci", "golden")
    stand_in.resources = [SOURCE_REF]
    settings = _deploy_settings(manifests, receiver_url=stand_in.url, receiver="ci", receiver_token=TOKEN)
    ctx, _ = _context(settings, cluster)
    deadline = ctx.deadline
    with pytest.raises(SourceFailedError, match="failed to get credential"):
        deploy.run_deploy(ctx, Report("deploy"))
    assert deadline.elapsed < 5  # the failure decided, not the deadline (10 s)


def test_a_source_the_receiver_does_not_name_is_waited_for_at_its_interval(
    stand_in: StandIn, manifests: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify, "READ_BACK_S", 0.3)
    cluster = stand_in.cluster = _cluster(denied=NO_PATCH)
    stand_in.add("ci", "golden")  # names no resource
    settings = _deploy_settings(manifests, receiver_url=stand_in.url, receiver="ci", receiver_token=TOKEN)
    ctx, out = _context(settings, cluster)
    timer = threading.Timer(1.0, _fetch_and_apply, (cluster, _source(), "interval"))
    timer.start()  # source-controller's own interval comes round
    try:
        deploy.run_deploy(ctx, Report("deploy"))
    finally:
        timer.cancel()
    assert (
        f"{SOURCE_REF}: the Receiver did not ask Flux to reconcile it (is it in the Receiver's "
        "spec.resources?); source-controller fetches the tag at its interval, every 10m"
    ) in out.getvalue()


def test_none_mode_asks_nothing_and_names_the_interval(manifests: Path) -> None:
    cluster = _cluster(_source(interval="5s"), _kustomization(), denied=NO_PATCH)
    ctx, out = _context(_deploy_settings(manifests, notify="none"), cluster)
    timer = threading.Timer(0.5, _fetch_and_apply, (cluster, _source(interval="5s"), "interval"))
    timer.start()  # source-controller's interval comes round
    report = Report("deploy")
    try:
        deploy.run_deploy(ctx, report)
    finally:
        timer.cancel()
    assert [c.state for c in report.consumers] == ["done"]
    assert [s.interval for s in report.sources] == ["5s"]  # the report says why it took this long
    assert not any(c.startswith("kubectl annotate") for c in cluster.commands())
    assert (
        f"{SOURCE_REF}: not requested (FLUX_CI_NOTIFY=none): source-controller fetches the tag at its "
        "interval, every 5s"
    ) in out.getvalue()


def test_a_cluster_that_cannot_be_read_in_receiver_mode_names_verify_false(manifests: Path) -> None:
    runner = FakeRunner()
    for tool, golden in (("flux", "flux/version.json"), ("oras", "oras/version.txt")):
        runner.answer([tool, "version"], stdout=text(golden))
    runner.answer(["kubectl", "version"], stdout=text("kubectl/version.json"))
    runner.answer(["oras", "login"], stdout=text("oras/login.stdout"))  # side by side with discovery
    refused = text("kubectl/get-unreachable.stderr")
    runner.answer(["kubectl"], stderr=refused, exit_code=1)  # no kubeconfig: nothing to talk to
    settings = _deploy_settings(
        manifests, receiver_url="http://127.0.0.1:9", receiver="ci", receiver_token=TOKEN
    )
    ctx, _ = _context(settings, runner)
    with pytest.raises(ClusterError) as caught:
        deploy.run_deploy(ctx, Report("deploy"))
    assert caught.value.message.endswith(
        "Nothing was pushed. If this job may not read the cluster at all, FLUX_CI_VERIFY=false pushes "
        "and triggers the Receiver without verifying anything (status triggered)"
    )
    assert not any(c.startswith("flux push") for c in runner.commands())


def test_a_missing_patch_in_annotate_mode_points_to_receiver_and_none(manifests: Path) -> None:
    cluster = _cluster(denied=NO_PATCH)
    ctx, _ = _context(_deploy_settings(manifests), cluster)
    with pytest.raises(ClusterError) as caught:
        deploy.run_deploy(ctx, Report("deploy"))
    message = caught.value.message
    assert f"may not patch {OCIREPOSITORIES} in namespace golden" in message
    assert "FLUX_CI_NOTIFY=receiver" in message
    assert "FLUX_CI_NOTIFY=none" in message
    assert not any(c.startswith("flux push") for c in cluster.commands())


# --- FLUX_CI_VERIFY=false: no cluster access at all ----------------------------------------------


def test_without_verification_deploy_pushes_triggers_and_says_nothing_was_verified(
    stand_in: StandIn, manifests: Path
) -> None:
    stand_in.add("ci", "golden")
    runner = _cluster()  # answers the tools; any kubectl call would be recorded
    settings = _deploy_settings(
        manifests, receiver_url=stand_in.url, receiver="ci", receiver_token=TOKEN, verify=False
    )
    ctx, _ = _context(settings, runner)
    report = Report("deploy")
    deploy.run_deploy(ctx, report)
    assert report.status is Status.TRIGGERED
    assert report.exit_code == 0
    assert not any(c.startswith("kubectl") for c in runner.commands())
    assert len(stand_in.hits) == 1
    assert report.sources == []
    assert report.consumers == []
    assert any("was not verified" in note for note in report.notes)
    assert json.loads(to_json(report))["status"] == "triggered"
    assert "FLUX_CI_STATUS=triggered\n" in to_dotenv(report)
    assert "deploy: triggered (the Receiver accepted the request; nothing in the cluster was verified)" in (
        to_table(report)
    )


def test_without_verification_reconcile_only_triggers(stand_in: StandIn) -> None:
    stand_in.add("ci", "flux-system")
    settings = _settings(stand_in.url, verify=False, digest=PUSHED, repository=REPOSITORY, tag="c1")
    runner = FakeRunner()
    ctx, _ = _context(settings, runner)
    report = Report("reconcile")
    reconcile.run_reconcile(ctx, report)
    assert report.status is Status.TRIGGERED
    assert runner.calls == []
    assert json.loads(stand_in.hits[0].body)["digest"] == PUSHED


# --- configuration -------------------------------------------------------------------------------


def _problems(command: str, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tmp_path: Path) -> str:
    (tmp_path / "cm.yaml").write_text("kind: ConfigMap\n")
    base = {
        "FLUX_CI_REPOSITORY": "oci://registry.example/app/manifests",
        "FLUX_CI_TAG": "c1",
        "FLUX_CI_SOURCE": "https://git.example/app",
        "FLUX_CI_REVISION": "main@sha1:abc",
        "FLUX_CI_PATH": str(tmp_path),
        "FLUX_CI_DIGEST": PUSHED,
    }
    for name, value in {**base, **env}.items():
        monkeypatch.setenv(name, value)
    try:
        plan.load(command)
    except ConfigError as exc:
        return exc.message
    return ""


def test_a_receiver_needs_its_url_name_and_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    message = _problems("deploy", monkeypatch, {"FLUX_CI_NOTIFY": "receiver"}, tmp_path)
    assert "FLUX_CI_RECEIVER_URL is not set (FLUX_CI_NOTIFY=receiver" in message
    assert "FLUX_CI_RECEIVER is not set" in message
    assert "FLUX_CI_RECEIVER_TOKEN is not set: a generic Receiver's webhook path" in message


def test_generic_oidc_takes_the_jobs_oidc_token_not_a_receiver_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = {
        "FLUX_CI_RECEIVER_URL": "https://flux-webhook.example",
        "FLUX_CI_RECEIVER": "ci",
        "FLUX_CI_RECEIVER_TYPE": "generic-oidc",
        "FLUX_CI_RECEIVER_TOKEN": "not-for-oidc",
    }
    message = _problems("deploy", monkeypatch, env, tmp_path)
    assert "FLUX_CI_RECEIVER_TOKEN must not be set with FLUX_CI_RECEIVER_TYPE=generic-oidc" in message
    assert "FLUX_CI_RECEIVER_OIDC_TOKEN is not set (nor FLUX_TRIGGER_RECEIVER_OIDC_TOKEN)" in message
    assert "not-for-oidc" not in message
    monkeypatch.delenv("FLUX_CI_RECEIVER_TOKEN")
    monkeypatch.setenv("FLUX_TRIGGER_RECEIVER_OIDC_TOKEN", "a.jwt.token")  # flux's own variable
    settings = plan.load("deploy").settings
    assert settings.receiver_oidc_token is not None
    assert settings.receiver_oidc_token.get_secret_value() == "a.jwt.token"


def test_verify_false_needs_a_receiver_and_is_no_use_to_wait(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    message = _problems("deploy", monkeypatch, {"FLUX_CI_VERIFY": "false"}, tmp_path)
    assert "FLUX_CI_VERIFY=false needs FLUX_CI_NOTIFY=receiver (it is annotate)" in message
    message = _problems("wait", monkeypatch, {"FLUX_CI_VERIFY": "false"}, tmp_path)
    assert "`flux-ci wait` only reads the cluster" in message


def test_receiver_settings_are_checked_and_never_echo_credentials() -> None:
    settings = Settings(receiver_url="https://hooks.example/flux/", receiver="ci", namespace="apps")
    assert settings.receiver_url == "https://hooks.example/flux"
    assert settings.receiver_ref() == ObjectRef("Receiver", "apps", "ci")
    assert Settings(receiver_url="https://hooks.example", notify="none").notify_mode == "none"
    assert Settings().notify_mode == "annotate"
    for bad in ("ftp://hooks.example", "https://hooks.example/hook/abc", "https://h.example/?x=1"):
        _, problems = Settings.load_partial(receiver_url=bad)
        assert [name for name, _ in problems] == ["receiver_url"], bad
    _, problems = Settings.load_partial(receiver_url="https://user:hunter22@hooks.example")
    assert problems
    assert "hunter22" not in problems[0][1]
    _, problems = Settings.load_partial(receiver="a/b/c")
    assert problems == [("receiver", "FLUX_CI_RECEIVER: 'a/b/c' must be [namespace/]name")]
