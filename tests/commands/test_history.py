"""`history` against FakeCluster holding the objects the real controllers left after three pushes (and
a FakeRunner answering with real oras output): read-only, newest first, joined with the registry."""

from __future__ import annotations

import json

from flux_ci.commands.history import run_history
from flux_ci.config.settings import Settings
from flux_ci.report.models import Report
from flux_ci.report.render import to_json, to_table
from tests import golden
from tests.fakecluster import FakeCluster
from tests.fakes import make_context

SOURCE = golden.obj("kubectl/ocirepository-traced.json")
KUSTOMIZATION = golden.obj("kubectl/kustomization-history.json")
REPOSITORY = SOURCE["spec"]["url"]
NAME = REPOSITORY.removeprefix("oci://")
# The digests of the three pushes, newest first (from the Kustomization's history).
NEWEST, SECOND, FIRST = (s["metadata"]["revision"].split("@")[1] for s in KUSTOMIZATION["status"]["history"])


def _cluster(*, login: bool = False) -> FakeCluster:
    cluster = FakeCluster([SOURCE, KUSTOMIZATION])
    cluster.answer(["kubectl", "version"], stdout=golden.text("kubectl/version.json"))
    cluster.answer(["oras", "version"], stdout=golden.text("oras/version.txt"))
    if login:
        cluster.answer(["oras", "login"], stderr=golden.text("oras/login-wrong-password.stderr"), exit_code=1)
    cluster.answer(
        ["oras", "manifest", "fetch", f"{NAME}@{SECOND}"], stdout=golden.text("oras/manifest-fetch.json")
    )
    missing = golden.text("oras/manifest-fetch-not-found.stderr")
    cluster.answer(["oras", "manifest", "fetch"], stderr=missing, exit_code=1)  # the other two: deleted
    cluster.answer(["oras", "repo", "tags", NAME], stdout=golden.text("oras/repo-tags.stdout"))
    for tag, digest in {"latest": NEWEST, "c3": NEWEST, "c2": SECOND, "c1": FIRST}.items():
        cluster.answer(["oras", "resolve", f"{NAME}:{tag}"], stdout=f"{digest}\n")
    return cluster


def _history(cluster: FakeCluster, **settings: object) -> Report:
    values = {"repository": REPOSITORY, "namespace": "golden-history", "insecure_registry": True, **settings}
    ctx = make_context(Settings(**values), cluster, seconds=30)
    report = Report("history")
    run_history(ctx, report)
    cluster.stop_all()
    return report


def test_history_lists_each_consumers_entries_newest_first_with_tags_and_pushers() -> None:
    cluster = _cluster()
    report = _history(cluster)

    assert [e.digest for e in report.history] == [NEWEST, SECOND, FIRST]
    assert [e.tags for e in report.history] == [("c3", "latest"), ("c2",), ("c1",)]
    assert [e.in_registry for e in report.history] == [False, True, False]
    assert report.history[1].pushed_by.user == "alice"
    assert report.sources[0].pushed_by.pipeline_url == "https://gitlab.example/group/app/-/pipelines/102"
    assert cluster.mutations() == []  # read-only: lists, access reviews and registry reads
    data = json.loads(to_json(report))
    assert [row["digest"] for row in data["history"]] == [NEWEST, SECOND, FIRST]
    assert data["history"][1]["pushed_by"]["job_url"] == "https://gitlab.example/group/app/-/jobs/202"
    table = to_table(report)
    assert "https://gitlab.example/group/app/-/pipelines/102" in table
    assert "(gone from the registry)" in table


def test_the_limit_keeps_each_consumers_newest_entries() -> None:
    report = _history(_cluster(), history=1)
    assert [e.digest for e in report.history] == [NEWEST]


def test_a_registry_that_cannot_be_asked_leaves_the_clusters_record_and_says_why() -> None:
    cluster = _cluster(login=True)
    report = _history(cluster, registry_user="ci", registry_password="wrong-password-1")

    assert [e.digest for e in report.history] == [NEWEST, SECOND, FIRST]
    assert {e.in_registry for e in report.history} == {None}
    assert report.notes == [
        "registry: not asked: registry login failed: Error response from registry: unauthorized: "
        "authentication required"
    ]
    assert not any(c.startswith("oras manifest") for c in cluster.commands())
