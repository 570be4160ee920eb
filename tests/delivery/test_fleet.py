"""Several clusters: one context per cluster, all at once, the most severe outcome decides."""

from __future__ import annotations

import io
import threading

import pytest

from flux_ci.config.settings import Settings
from flux_ci.context import Context
from flux_ci.deadline import Deadline
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
from flux_ci.report.progress import Progress
from flux_ci.secrets import Masker
from tests.fakes import FakeRunner

REF = ObjectRef("Kustomization", "apps", "app")


def _context(contexts: str | None, out: io.StringIO | None = None) -> Context:
    progress = Progress(Masker(), out=out or io.StringIO())
    return Context(Settings(kube_context=contexts), FakeRunner(), Deadline(60), progress)


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


def test_one_cluster_of_one_wave_is_deployed_to_as_that_cluster_with_its_wave_tag() -> None:
    progress = Progress(Masker(), out=io.StringIO())
    ctx = Context(Settings(waves="canary=stg"), FakeRunner(), Deadline(60), progress)
    report = Report("deploy")
    (cluster,) = fleet.clusters_of(ctx, report)
    assert cluster.report is report
    assert (cluster.name, cluster.ctx.settings.kube_context, cluster.ctx.settings.extra_tags) == (
        "stg",
        "stg",
        ["canary"],
    )
