"""kubectl reads and writes: each call's timeout is cut from the command's deadline, a one-shot call
gives up each request to the API server by itself after its share, and the -vv trace of what kubectl
prints is a summary per object."""

from __future__ import annotations

import re

from flux_ci.context import Context
from flux_ci.deadline import ATTEMPT_SHARE
from flux_ci.kube import cluster
from flux_ci.report.models import ObjectRef
from flux_ci.tools import kubectl, kubectl_summary
from flux_ci.tools.kubectl import AccessCheck
from tests.fakes import Call, FakeRunner, make_context
from tests.golden import text

DEADLINE_S = 200.0


def _ctx(runner: FakeRunner) -> Context:
    return make_context(runner=runner, seconds=DEADLINE_S, masker=runner.masker)


def _request_timeout(call: Call) -> float | None:
    found = [re.fullmatch(r"--request-timeout=(\d+)ms", arg) for arg in call.argv]
    return next((int(match[1]) / 1000 for match in found if match), None)


def _one_shot_calls() -> list[Call]:
    runner = FakeRunner()
    runner.answer(["kubectl", "get", kubectl.KUSTOMIZATIONS], stdout=text("kubectl/kustomizations-list.json"))
    runner.answer(
        ["kubectl", "get", kubectl.OCIREPOSITORIES], stdout=text("kubectl/ocirepository-ready.json")
    )
    runner.answer(["kubectl", "create"], stdout=text("kubectl/access-reviews.json"))
    ctx = _ctx(runner)
    cluster.list_objects(ctx, "Kustomization", "golden")
    cluster.list_kinds(ctx, ["Kustomization"])
    cluster.get_object(ctx, ObjectRef("OCIRepository", "golden", "app"))
    cluster.can_i(
        ctx,
        [AccessCheck("list", kubectl.KUSTOMIZATIONS), AccessCheck("patch", kubectl.OCIREPOSITORIES, "apps")],
    )
    return runner.calls


def test_each_one_shot_call_ends_with_the_deadline_and_each_request_after_its_share() -> None:
    calls = _one_shot_calls()
    assert len(calls) == 4
    for call in calls:
        assert call.timeout is not None
        assert DEADLINE_S - 5 < call.timeout <= DEADLINE_S  # what is left of it, no fixed cap
        request = _request_timeout(call)
        assert request is not None
        assert DEADLINE_S * ATTEMPT_SHARE - 5 < request <= DEADLINE_S * ATTEMPT_SHARE


def test_what_kubectl_prints_is_traced_as_a_summary() -> None:
    for call in _one_shot_calls():
        assert call.trace_output is kubectl_summary.summarise


def test_the_reconcile_request_has_its_share_and_traces_only_what_it_annotated() -> None:
    runner = FakeRunner()
    runner.answer(["kubectl", "annotate"], stdout="ocirepository.source.toolkit.fluxcd.io/app annotated\n")
    cluster.request_reconcile(_ctx(runner), "OCIRepository", "golden", ["app"], "2026-12-07T20:00:00.0Z")
    (call,) = runner.calls
    assert call.mutating
    assert call.trace_output is None
    assert _request_timeout(call) is not None


def test_a_watch_runs_until_the_deadline_and_is_traced_as_a_summary() -> None:
    runner = FakeRunner()
    runner.answer_stream(
        ["kubectl", "get", kubectl.KUSTOMIZATIONS],
        text("kubectl/watch-deploy-succeeded-kustomizations.stdout").splitlines(keepends=True),
    )
    events = list(cluster.watch_stream(_ctx(runner), "Kustomization", "cap-ok"))
    assert events
    (call,) = runner.calls
    assert call.trace_output is kubectl_summary.summarise
    assert _request_timeout(call) is None  # it would end the watch
    assert call.timeout is not None
    assert call.timeout > DEADLINE_S - 5
