"""Several clusters: one context per cluster, all at once, the most severe outcome decides."""

from __future__ import annotations

import io
import threading
from dataclasses import replace

import pytest

from flux_ci.config.settings import Settings
from flux_ci.context import Context
from flux_ci.delivery import fleet
from flux_ci.errors import (
    ClusterError,
    ConsumerFailedError,
    DeadlineExceededError,
    ExitCode,
    FluxCIError,
    SourceFailedError,
    SupersededError,
)
from flux_ci.report.models import ClusterStatus, ConsumerState, ObjectRef, Report
from tests.fakes import FakeRunner, make_context

REF = ObjectRef("Kustomization", "apps", "app")


def _context(contexts: str | None, out: io.StringIO | None = None) -> Context:
    return make_context(Settings(kube_context=contexts), seconds=60, out=out)


def test_one_context_keeps_the_commands_own_context_and_report() -> None:
    ctx, report = _context("prod"), Report("deploy")
    (cluster,) = fleet.clusters_of(ctx, report)
    assert (cluster.name, cluster.ctx, cluster.report) == ("prod", ctx, report)
    assert not fleet.several(ctx)


def test_each_cluster_gets_its_own_context_report_label_and_cancellation() -> None:
    out = io.StringIO()
    ctx, report = _context("eu,us", out), Report("deploy")
    eu, us = fleet.clusters_of(ctx, report)
    assert (eu.ctx.settings.kube_context, us.ctx.settings.kube_context) == ("eu", "us")
    assert eu.report is not report
    assert eu.report is not us.report
    assert eu.ctx.cancelled is not us.ctx.cancelled
    with us.ctx.progress.step("wait"):
        pass
    assert "[us] ▶ wait" in out.getvalue()
    assert ctx.progress.steps[0].cluster == "us"


def test_every_cluster_runs_at_once() -> None:
    """Each cluster's work waits for the other's to have started: in turns this would deadlock."""
    ctx = _context("eu,us")
    clusters = fleet.clusters_of(ctx, Report("deploy"))
    started = threading.Barrier(2, timeout=5)

    def work(cluster: fleet.Cluster) -> str:
        started.wait()
        return cluster.name

    assert fleet.each(ctx, clusters, work) == ["eu", "us"]


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        ((ConsumerFailedError("x"), ClusterError("y")), ExitCode.CONSUMER_FAILED),
        ((DeadlineExceededError("x"), SupersededError("y", by_digest="d")), ExitCode.TIMEOUT),
        ((ClusterError("x"), DeadlineExceededError("y")), ExitCode.CLUSTER),
        ((SourceFailedError("x"), ConsumerFailedError("y")), ExitCode.SOURCE_FAILED),
    ],
)
def test_the_most_severe_failure_decides(errors: tuple[FluxCIError, FluxCIError], expected: ExitCode) -> None:
    ctx = _context("eu,us")
    clusters = fleet.clusters_of(ctx, Report("deploy"))

    def work(cluster: fleet.Cluster) -> None:
        raise errors[0] if cluster.name == "eu" else errors[1]

    with pytest.raises(FluxCIError) as raised:
        fleet.each(ctx, clusters, work)
    assert raised.value.exit_code is expected
    assert "cluster eu: x" in raised.value.message
    assert "cluster us: y" in raised.value.message


def test_a_failure_in_one_cluster_names_the_one_that_succeeded() -> None:
    ctx, report = _context("eu,us,asia"), Report("deploy")
    clusters = fleet.clusters_of(ctx, report)

    def work(cluster: fleet.Cluster) -> None:
        cluster.report.consumers = [ConsumerState(REF, "latest@sha256:1", "True", "applied")]
        if cluster.name == "us":
            raise ConsumerFailedError("Kustomization/apps/app failed")
        cluster.finished = cluster.name == "eu"  # asia: stopped before its end

    with pytest.raises(ConsumerFailedError) as raised:
        fleet.each(ctx, clusters, work)
    assert raised.value.message.endswith("succeeded in: eu")
    fleet.merge(report, clusters)
    assert [(c.context, c.status, c.exit_code) for c in report.clusters] == [
        ("eu", ClusterStatus.SUCCEEDED, 0),
        ("us", ClusterStatus.FAILED, 7),
        ("asia", ClusterStatus.NOT_DEPLOYED, 0),
    ]
    assert [row.cluster for row in report.consumers] == ["eu", "us", "asia"]
    assert report.clusters[1].error is not None
    assert report.clusters[1].error.code == "consumer_failed"


def test_a_superseded_cluster_says_by_which_digest() -> None:
    ctx, report = _context("eu,us"), Report("deploy")
    clusters = fleet.clusters_of(ctx, report)

    def work(cluster: fleet.Cluster) -> None:
        if cluster.name == "eu":
            raise SupersededError("superseded", by_digest="sha256:newer")
        cluster.finished = True

    with pytest.raises(SupersededError):
        fleet.each(ctx, clusters, work)
    fleet.merge(report, clusters)
    assert report.clusters[0].status is ClusterStatus.SUPERSEDED
    assert report.clusters[0].error is not None
    assert report.clusters[0].error.superseded_by == "sha256:newer"


def test_the_combined_message_names_every_cluster_and_the_worst_decides() -> None:
    ctx = _context("a,b,c")
    clusters = fleet.clusters_of(ctx, Report("deploy"))
    clusters[0].error = DeadlineExceededError("slow")
    clusters[1].error = SourceFailedError("refused")
    clusters[2].finished = True
    worst = fleet.combined(clusters)
    assert isinstance(worst, SourceFailedError)  # 6 is more severe than 8
    assert worst.message == "cluster a: slow\ncluster b: refused\nsucceeded in: c"
    assert worst.args == (worst.message,)
    nobody = fleet.clusters_of(ctx, Report("deploy"))
    for cluster in nobody:
        cluster.error = ClusterError(f"{cluster.name} down", retryable=True)
    assert fleet.combined(nobody).message.endswith("\nsucceeded in: no cluster")
    assert fleet._rank(ExitCode.SIGTERM) == 0
    assert fleet._rank(ExitCode.SUPERSEDED) == len(fleet.SEVERITY) - 1
    assert fleet._rank(ExitCode.OK) == 0  # not a failure: never ranked below one


def test_each_clusters_outcome_carries_its_error_whole() -> None:
    ctx = _context("a,b,c,d")
    a, b, c, d = fleet.clusters_of(ctx, Report("deploy"))
    a.error = ClusterError("gone", retryable=True)
    outcome = a.outcome()
    assert (outcome.status, outcome.exit_code) == (ClusterStatus.FAILED, 5)
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.message, outcome.error.retryable) == ("cluster", "gone", True)
    assert outcome.error.superseded_by == ""
    b.error = SupersededError("newer", by_digest="sha256:" + "b" * 64)
    assert b.outcome().status is ClusterStatus.SUPERSEDED
    assert b.outcome().error.superseded_by == "sha256:" + "b" * 64  # type: ignore[union-attr]
    assert c.outcome().status is ClusterStatus.NOT_DEPLOYED
    d.finished = True
    assert d.outcome().status is ClusterStatus.SUCCEEDED
    dry = fleet.Cluster(
        "e",
        replace(make_context(runner=FakeRunner(dry_run=True), seconds=5), progress=ctx.progress),
        Report("deploy"),
    )
    dry.finished = True
    assert dry.outcome().status is ClusterStatus.DRY_RUN


def test_every_cluster_that_succeeded_is_named() -> None:
    clusters = fleet.clusters_of(_context("a,b,c"), Report("deploy"))
    clusters[0].error = ConsumerFailedError("broken")
    clusters[1].finished = clusters[2].finished = True
    assert fleet.combined(clusters).message == "cluster a: broken\nsucceeded in: b, c"


def test_one_cluster_of_one_wave_is_deployed_to_as_that_cluster_with_its_wave_tag() -> None:
    ctx = make_context(Settings(waves="canary=stg"), seconds=60)
    report = Report("deploy")
    (cluster,) = fleet.clusters_of(ctx, report)
    assert cluster.report is report
    assert (cluster.name, cluster.ctx.settings.kube_context, cluster.ctx.settings.extra_tags) == (
        "stg",
        "stg",
        ["canary"],
    )
