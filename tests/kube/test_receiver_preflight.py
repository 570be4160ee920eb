"""Before anything is pushed, a Receiver that would refuse flux-ci's request is exit 2: read from the
cluster (golden `kubectl get` output of the real notification-controller's Receivers), or asked of
the webhook (a local stand-in answering as notification-controller does). The real
notification-controller answers in tests/e2e/test_trust_preflight.py."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flux_ci.commands import deploy
from flux_ci.commands.reconcile import run_wait
from flux_ci.config.settings import Settings
from flux_ci.context import Context
from flux_ci.errors import ClusterError, ConfigError, ExitCode
from flux_ci.kube import notify, receiver, receiver_preflight
from flux_ci.report.models import Report
from flux_ci.tools.kubectl import RECEIVERS
from tests.fakecluster import (
    PUSHED,
    FakeCluster,
    answer_deploy_tools,
    deploy_settings,
    kustomization_at,
    source_at,
)
from tests.fakes import FakeRunner, make_context
from tests.golden import text
from tests.receiver_standin import TOKEN, StandIn

FORBIDDEN = text("kubectl/get-receiver-forbidden.stderr")


def _settings(url: str = "http://127.0.0.1:9/base", **overrides: Any) -> Settings:
    values: dict[str, Any] = {"receiver_url": url, "receiver": "golden/ci", "receiver_token": TOKEN}
    return Settings(**{"timeout": 10, **values, **overrides})


def _context(settings: Settings, runner: FakeRunner) -> tuple[Context, io.StringIO]:
    out = io.StringIO()
    return make_context(settings, runner, out=out, masker=runner.masker), out


def _reading(stdout: str = "", stderr: str = "", exit_code: int = 0) -> FakeRunner:
    runner = FakeRunner()
    runner.answer(["kubectl", "get", RECEIVERS], stdout=stdout, stderr=stderr, exit_code=exit_code)
    return runner


# --- read from the cluster -----------------------------------------------------------------------


def test_a_ready_receiver_serving_the_tokens_path_passes_without_a_request() -> None:
    runner = _reading(text("kubectl/receiver-ready.stdout"))
    ctx, out = _context(_settings(), runner)
    receiver_preflight.preflight(ctx)
    assert (
        out.getvalue()
        .strip()
        .endswith(
            "the generic Receiver golden/ci is Ready and serves the webhook path flux-ci derives from "
            "FLUX_CI_RECEIVER_TOKEN, its name and namespace"
        )
    )
    [call] = runner.calls
    assert call.argv[:5] == ("kubectl", "get", RECEIVERS, "ci", "--namespace=golden")
    assert not any(TOKEN in arg for arg in call.argv)  # neither the token nor the path is in argv
    assert not any(receiver.webhook_path(TOKEN, "ci", "golden")[6:] in arg for arg in call.argv)


def test_a_wrong_token_is_exit_2_before_the_push() -> None:
    ctx, _ = _context(
        _settings(receiver_token="not-the-token"), _reading(text("kubectl/receiver-ready.stdout"))
    )
    with pytest.raises(ConfigError) as raised:
        receiver_preflight.preflight(ctx)
    assert raised.value.exit_code == ExitCode.CONFIG
    assert raised.value.message == (
        "the generic Receiver golden/ci cannot accept flux-ci's request: its webhook path "
        "(status.webhookPath) is not the one derived from FLUX_CI_RECEIVER_TOKEN, its name and namespace: "
        "the token is not the `token` of the Receiver's Secret. Nothing was pushed"
    )


def test_a_wrong_type_is_named_with_the_type_to_set() -> None:
    runner = _reading(text("kubectl/receiver-hmac-ready.stdout"))  # golden/ci-hmac, the same token
    ctx, _ = _context(_settings(receiver="golden/ci-hmac"), runner)
    with pytest.raises(ConfigError) as raised:
        receiver_preflight.preflight(ctx)
    assert raised.value.message == (
        "the generic Receiver golden/ci-hmac cannot accept flux-ci's request: it is of type generic-hmac, "
        "not generic (FLUX_CI_RECEIVER_TYPE): set FLUX_CI_RECEIVER_TYPE=generic-hmac. Nothing was pushed"
    )


@pytest.mark.parametrize(
    ("golden", "said"),
    [
        (
            "kubectl/receiver-not-ready.stdout",
            "it is not Ready (TokenNotFound: unable to read token from secret 'golden/missing-token' error: "
            'secrets "missing-token" not found)',
        ),
        (
            "kubectl/receiver-suspended.stdout",
            "it is suspended (spec.suspend): notification-controller refuses every request",
        ),
    ],
)
def test_a_receiver_that_refuses_every_request_is_exit_2(golden: str, said: str) -> None:
    # Both goldens are of other Receivers than golden/ci: their path is not the token's either, but
    # a Receiver that is not Ready has no path, and a suspended one is named for what it is first.
    ctx, _ = _context(_settings(), _reading(text(golden)))
    with pytest.raises(ConfigError) as raised:
        receiver_preflight.preflight(ctx)
    assert said in raised.value.message


def test_a_receiver_that_does_not_exist_is_exit_2() -> None:
    runner = _reading(stderr=text("kubectl/get-receiver-missing.stderr"), exit_code=1)
    ctx, _ = _context(_settings(receiver="golden/nothing"), runner)
    with pytest.raises(ConfigError, match=r"^Receiver golden/nothing does not exist \(FLUX_CI_RECEIVER"):
        receiver_preflight.preflight(ctx)


def test_an_unreachable_cluster_is_a_retryable_cluster_error() -> None:
    stderr = "Unable to connect to the server: dial tcp 127.0.0.1:6443: connect: connection refused\n"
    ctx, _ = _context(_settings(), _reading(stderr=stderr, exit_code=1))
    with pytest.raises(ClusterError) as raised:
        receiver_preflight.preflight(ctx)
    assert raised.value.retryable


# --- asked of the webhook ------------------------------------------------------------------------


@pytest.fixture
def no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(receiver_preflight, "NOT_FOUND_GRACE_S", 0.0)


def test_without_the_right_to_read_it_the_webhook_is_asked_and_nothing_is_annotated(
    stand_in: StandIn,
) -> None:
    stand_in.add("ci", "golden")
    ctx, out = _context(_settings(stand_in.url), _reading(stderr=FORBIDDEN, exit_code=1))
    receiver_preflight.preflight(ctx)
    said = out.getvalue()
    assert f"may not read Receiver golden/ci (get {RECEIVERS} in namespace golden)" in said
    assert f"the generic Receiver golden/ci is Ready at {stand_in.url}/hook/****" in said
    assert stand_in.hits == []  # no request was read to its end: nothing annotated
    assert stand_in.asked[0] == "/base" + receiver.webhook_path(TOKEN, "ci", "golden")
    assert len(stand_in.asked) == 2  # and a path no Receiver has, which must be refused


def test_without_cluster_access_an_unknown_path_is_exit_2(stand_in: StandIn, no_grace: None) -> None:
    stand_in.add("ci", "golden", token="the-receivers-own-token")
    runner = FakeRunner()
    ctx, _ = _context(_settings(stand_in.url), runner)
    with pytest.raises(ConfigError) as raised:
        receiver_preflight.preflight(ctx, read=False)
    said = runner.masker.mask(raised.value.message)  # as the boundary shows it: the path is the secret
    assert said.startswith(
        f"no Ready Receiver serves {stand_in.url}/hook/****: the generic Receiver golden/ci"
    )
    assert "answered 404 Not Found" in said
    assert "check FLUX_CI_RECEIVER_TOKEN, FLUX_CI_RECEIVER and FLUX_CI_RECEIVER_TYPE" in said
    assert runner.calls == []  # the cluster is not read
    assert stand_in.hits == []


def test_a_404_is_asked_again_while_a_new_receiver_may_still_be_found(
    stand_in: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receiver_preflight, "NOT_FOUND_GRACE_S", 0.4)
    monkeypatch.setattr(receiver_preflight, "BACKOFF_S", (0.1,))
    ctx, _ = _context(_settings(stand_in.url), FakeRunner())
    threading.Timer(0.15, lambda: stand_in.add("ci", "golden")).start()
    receiver_preflight.preflight(ctx, read=False)
    assert len(stand_in.asked) >= 3  # 404, then found, then the path no Receiver has


def test_an_answer_every_path_gets_tells_nothing(stand_in: StandIn) -> None:
    # A proxy in front that asks every request for its body: the path no Receiver has gets it too.
    stand_in.proxy = True
    ctx, out = _context(_settings(stand_in.url), FakeRunner())
    receiver_preflight.preflight(ctx, read=False)
    assert "the token can only be checked by the request itself" in out.getvalue()
    assert "(it answered 100 Continue)" in out.getvalue()


def test_through_an_http_proxy_the_webhook_is_not_asked(
    stand_in: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    ctx, out = _context(_settings(stand_in.url), FakeRunner())
    receiver_preflight.preflight(ctx, read=False)
    assert "is reached through a proxy: the request itself will tell" in out.getvalue()
    assert stand_in.asked == []


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers: a server that waits for the body `Expect` holds back."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_a_webhook_that_never_answers_is_not_waited_for(
    silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receiver_preflight, "_ASK_TIMEOUT_S", 0.3)
    ctx, out = _context(_settings(silent_server), FakeRunner())
    receiver_preflight.preflight(ctx, read=False)
    assert "could not tell before the push" in out.getvalue()
    assert "TimeoutError" in out.getvalue()


def test_an_unreachable_webhook_is_left_to_the_request_itself() -> None:
    ctx, out = _context(_settings("http://127.0.0.1:9"), FakeRunner())  # the discard port: refused
    receiver_preflight.preflight(ctx, read=False)
    assert "ConnectionRefusedError" in out.getvalue()
    assert "the token can only be checked by the request itself" in out.getvalue()


# --- in the commands -----------------------------------------------------------------------------


def _cluster(receiver_answer: str) -> FakeCluster:
    cluster = FakeCluster(
        [source_at(), kustomization_at()],
        denied=[("patch", "ocirepositories.source.toolkit.fluxcd.io", "golden")],
    )
    answer_deploy_tools(cluster)
    cluster.answer(["kubectl", "get", RECEIVERS], stdout=receiver_answer)
    return cluster


def test_a_deploy_to_a_receiver_that_would_refuse_pushes_nothing(manifests: Path) -> None:
    cluster = _cluster(text("kubectl/receiver-ready.stdout"))
    settings = deploy_settings(
        manifests, receiver_url="http://127.0.0.1:9", receiver="ci", receiver_token="wrong"
    )
    ctx, _ = _context(settings, cluster)
    with pytest.raises(ConfigError, match="the token is not the `token` of the Receiver's Secret"):
        deploy.run_deploy(ctx, Report("deploy"))
    assert cluster.mutations() == []  # no push, no tag, no annotation
    assert not any(command.startswith("flux push") for command in cluster.commands())


def test_an_unverified_deploy_asks_the_webhook_before_it_pushes(
    stand_in: StandIn, manifests: Path, no_grace: None
) -> None:
    runner = FakeRunner()
    answer_deploy_tools(runner)
    settings = deploy_settings(
        manifests, receiver_url=stand_in.url, receiver="ci", receiver_token="wrong", verify=False
    )
    ctx, _ = _context(settings, runner)
    with pytest.raises(ConfigError, match="no Ready Receiver serves"):
        deploy.run_deploy(ctx, Report("deploy"))
    assert runner.calls == []  # not even the tools' versions: nothing was pushed
    assert stand_in.hits == []


def test_wait_does_not_check_the_receiver_before_it_starts(
    manifests: Path, stand_in: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `wait` pushes and moves nothing: the Receiver is checked by the request, if it makes one.
    monkeypatch.setattr(notify, "READ_BACK_S", 0.1)  # the stand-in annotates nothing here
    stand_in.add("ci", "golden")
    cluster = stand_in.cluster = FakeCluster([source_at(PUSHED), kustomization_at(PUSHED)])
    answer_deploy_tools(cluster)
    settings = deploy_settings(manifests, receiver_url=stand_in.url, receiver="ci", receiver_token=TOKEN,
                               digest=PUSHED)  # fmt: skip
    ctx, _ = _context(settings, cluster)
    run_wait(ctx, Report("wait"))
    assert not any(RECEIVERS in command for command in cluster.commands())
    assert stand_in.asked == []
