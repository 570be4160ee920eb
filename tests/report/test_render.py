from __future__ import annotations

import json

from flux_ci.report.dotenv import DOTENV_LIMIT, TRUNCATED_KEY, shortened, to_dotenv
from flux_ci.report.models import (
    Artifact,
    Checks,
    ClusterOutcome,
    ClusterStatus,
    ConsumerState,
    DeadlineInfo,
    ErrorInfo,
    HistoryEntry,
    ObjectRef,
    Provenance,
    Report,
    SourceState,
    Status,
    Step,
    StepStatus,
    TagMove,
    WaveOutcome,
    WaveStatus,
)
from flux_ci.report.render import to_json, to_table

DIGEST = "sha256:" + "ab" * 32


def _report(**changes: object) -> Report:
    report = Report(
        command="deploy",
        artifact=Artifact(
            "oci://r.example/app", ("abc123", "latest"), DIGEST, "https://git/app", "main@sha1:abc"
        ),
        sources=[
            SourceState(
                ObjectRef("OCIRepository", "flux-system", "app"),
                "oci://r.example/app",
                f"abc123@{DIGEST}",
                "True",
                "stored artifact",
                "2026-01-01T00:00:00Z",
            )
        ],
        consumers=[
            ConsumerState(
                ObjectRef("Kustomization", "flux-system", "app"),
                f"abc123@{DIGEST}",
                "True",
                "Applied revision: x",
            )
        ],
        steps=[Step("push", StepStatus.OK, 1.25)],
    )
    for key, value in changes.items():
        setattr(report, key, value)
    return report


def test_json_has_the_documented_envelope() -> None:
    data = json.loads(to_json(_report()))
    assert data["schema_version"] == 1
    assert data["command"] == "deploy"
    assert data["status"] == "succeeded"
    assert data["exit_code"] == 0
    assert data["artifact"] == {
        "url": f"oci://r.example/app@{DIGEST}",
        "repository": "oci://r.example/app",
        "tags": ["abc123", "latest"],
        "digest": DIGEST,
        "source": "https://git/app",
        "revision": "main@sha1:abc",
        "files": None,  # not pushed by this run: what it holds is not known
        "objects": None,
    }
    assert data["sources"][0] == {
        "kind": "OCIRepository", "namespace": "flux-system", "name": "app", "url": "oci://r.example/app",
        "follows": "", "interval": "", "revision": f"abc123@{DIGEST}", "ready": "True", "state": "",
        "message": "stored artifact", "updated": "2026-01-01T00:00:00Z",
        "pushed_by": {
            "pipeline_url": "", "job_url": "", "user": "", "pushed_at": "", "source": "", "revision": "",
        },
    }  # fmt: skip
    assert data["scope"] == []
    assert data["notes"] == []
    assert set(data["consumers"][0]) >= {"kind", "namespace", "name", "revision", "ready", "message"}
    assert data["steps"] == [{"name": "push", "status": "ok", "duration_s": 1.25}]
    assert data["error"] is None


def test_json_on_failure_carries_the_error() -> None:
    report = _report(status=Status.FAILED, exit_code=7, error=ErrorInfo("consumer_failed", "apply failed"))
    data = json.loads(to_json(report))
    assert (data["status"], data["exit_code"]) == ("failed", 7)
    assert data["error"] == {
        "code": "consumer_failed", "message": "apply failed", "retryable": False, "superseded_by": ""
    }  # fmt: skip


def test_superseded_names_the_digest_that_replaced_ours_everywhere() -> None:
    newer = "sha256:" + "cd" * 32
    error = ErrorInfo("superseded", "superseded: ...", superseded_by=newer)
    report = _report(status=Status.SUPERSEDED, exit_code=9, error=error)
    assert json.loads(to_json(report))["error"]["superseded_by"] == newer
    assert (
        to_table(report).rstrip().endswith(f"deploy: superseded (exit 9, superseded), superseded by {newer}")
    )
    lines = to_dotenv(report).splitlines()
    assert "FLUX_CI_STATUS=superseded" in lines
    assert f"FLUX_CI_SUPERSEDED_BY={newer}" in lines
    assert "FLUX_CI_RETRYABLE=false" in lines


def test_table_fits_a_ci_log_and_shows_the_verdict() -> None:
    report = _report(scope=["Kustomization: only namespace apps (not allowed: list/watch ...)"])
    table = to_table(report)
    assert f"abc123@{DIGEST[:19]}…" in table  # shortened; the JSON has it whole
    assert max(len(line) for line in table.splitlines()) <= 120
    assert "scope: Kustomization: only namespace apps" in table
    assert "KIND" in table
    assert "OCIRepository" in table
    assert "Kustomization" in table
    assert table.rstrip().endswith("deploy: succeeded")


def test_table_truncates_long_messages() -> None:
    consumer = ConsumerState(ObjectRef("Kustomization", "ns", "k"), "", "False", "x" * 500)
    table = to_table(_report(consumers=[consumer]))
    assert "xxx…" in table
    assert max(len(line) for line in table.splitlines()) == 120


def test_dotenv_follows_gitlab_rules() -> None:
    text = to_dotenv(_report())
    lines = text.splitlines()
    assert "FLUX_CI_DIGEST=" + DIGEST in lines
    assert f"FLUX_CI_URL=oci://r.example/app@{DIGEST}" in lines
    assert "FLUX_CI_REVISION=main@sha1:abc" in lines
    assert "FLUX_CI_STATUS=succeeded" in lines
    assert "FLUX_CI_EXIT_CODE=0" in lines
    assert all("=" in line and " " not in line and '"' not in line for line in lines)
    assert len(text.encode()) <= DOTENV_LIMIT


def test_dotenv_leaves_out_values_gitlab_cannot_carry() -> None:
    artifact = Artifact("oci://r/app", ("t",), DIGEST, "s", "has space")
    lines = to_dotenv(_report(artifact=artifact)).splitlines()
    assert not any(line.startswith("FLUX_CI_REVISION=") for line in lines)
    assert "FLUX_CI_DIGEST=" + DIGEST in lines


def test_dotenv_on_config_failure_still_has_status() -> None:
    report = Report(command="deploy", status=Status.FAILED, exit_code=2)
    assert to_dotenv(report) == "FLUX_CI_STATUS=failed\nFLUX_CI_EXIT_CODE=2\nFLUX_CI_RETRYABLE=false\n"


def test_the_dotenv_tag_is_the_immutable_one_never_a_moved_tag() -> None:
    promoted = _report(
        command="promote",
        artifact=Artifact("oci://r.example/app", ("stable",), DIGEST),
        tag_moves=[TagMove("stable", "", DIGEST)],
    )
    assert "FLUX_CI_TAG=" not in to_dotenv(promoted)  # a bare digest was promoted: no tag of its own
    deployed = _report(tag_moves=[TagMove("latest", "sha256:old", DIGEST)])
    assert "FLUX_CI_TAG=abc123\n" in to_dotenv(deployed)


# --- a dotenv over GitLab's limit is shortened, never lost -----------------------------------------


def _agents(count: int) -> list[str]:
    """Kube contexts as GitLab agents name them: `<project path>:<agent name>`."""
    return [f"platform-group/deployments/project-{i:02d}:production-agent-{i:02d}" for i in range(count)]


def _fleet(count: int, failed: int) -> Report:
    clusters = [
        ClusterOutcome(name, *((ClusterStatus.FAILED, 5) if i < failed else (ClusterStatus.SUCCEEDED, 0)))
        for i, name in enumerate(_agents(count))
    ]
    return _report(clusters=clusters, status=Status.FAILED, exit_code=5)


def _parsed(text: str) -> dict[str, str]:
    """As GitLab reads it: one KEY=value a line."""
    return dict(line.split("=", 1) for line in text.splitlines())


def test_a_dotenv_that_fits_is_written_whole_without_a_marker() -> None:
    text = to_dotenv(_fleet(10, failed=2))
    values = _parsed(text)
    assert values["FLUX_CI_CLUSTERS"] == ",".join(_agents(10))
    assert TRUNCATED_KEY not in values


def test_fifty_agent_clusters_are_cut_at_whole_items_and_the_cut_is_named() -> None:
    names = _agents(50)
    text = to_dotenv(_fleet(50, failed=3))
    assert len(text.encode()) < DOTENV_LIMIT  # GitLab: the file must be smaller than 5120 bytes
    values = _parsed(text)
    # What a later job branches on is all there, whole.
    for key, value in [("FLUX_CI_STATUS", "failed"), ("FLUX_CI_EXIT_CODE", "5"), ("FLUX_CI_DIGEST", DIGEST)]:
        assert values[key] == value
    assert values["FLUX_CI_TAG"] == "abc123"
    # The failed clusters first, then the succeeded ones, fit whole; the list of all keeps a start.
    assert values["FLUX_CI_CLUSTERS_FAILED"] == ",".join(names[:3])
    assert values["FLUX_CI_CLUSTERS_SUCCEEDED"] == ",".join(names[3:])
    every = values["FLUX_CI_CLUSTERS"].split(",")
    assert every == names[: len(every)]
    assert 0 < len(every) < 50
    assert values[TRUNCATED_KEY] == "FLUX_CI_CLUSTERS"
    assert list(values)[-1] == TRUNCATED_KEY
    assert len(values) <= 20  # GitLab's smallest variable limit


def test_more_clusters_cut_the_succeeded_ones_too_and_never_the_failed() -> None:
    names = _agents(90)
    values = _parsed(to_dotenv(_fleet(90, failed=40)))
    assert values["FLUX_CI_CLUSTERS_FAILED"] == ",".join(names[:40])
    succeeded = values["FLUX_CI_CLUSTERS_SUCCEEDED"].split(",")
    assert succeeded == names[40 : 40 + len(succeeded)]
    assert len(succeeded) < 50
    assert "FLUX_CI_CLUSTERS" not in values  # no room left for one whole item
    assert values[TRUNCATED_KEY] == "FLUX_CI_CLUSTERS,FLUX_CI_CLUSTERS_SUCCEEDED"


def test_shortening_is_deterministic_and_uses_the_room_it_has() -> None:
    first = to_dotenv(_fleet(50, failed=3))
    assert first == to_dotenv(_fleet(50, failed=3))
    # One more whole item would not have fit.
    every = _parsed(first)["FLUX_CI_CLUSTERS"]
    one_more = ",".join(_agents(50)[: every.count(",") + 2])
    bigger = first.replace(f"FLUX_CI_CLUSTERS={every}", f"FLUX_CI_CLUSTERS={one_more}")
    assert len(bigger.encode()) >= DOTENV_LIMIT


def test_every_value_is_kept_whole_or_left_out_and_named() -> None:
    values = {
        "FLUX_CI_STATUS": "failed",
        "FLUX_CI_EXIT_CODE": "5",
        "FLUX_CI_RETRYABLE": "true",
        "FLUX_CI_REVISION": "r" * 3000,
        "FLUX_CI_URL": "u" * 3000,
        "FLUX_CI_CLUSTERS": "a,b",
    }
    cut = shortened(values)
    assert cut == {
        "FLUX_CI_STATUS": "failed",
        "FLUX_CI_EXIT_CODE": "5",
        "FLUX_CI_RETRYABLE": "true",
        "FLUX_CI_REVISION": "r" * 3000,
        "FLUX_CI_CLUSTERS": "a,b",
        TRUNCATED_KEY: "FLUX_CI_URL",
    }


def test_the_json_report_keeps_every_cluster() -> None:
    document = json.loads(to_json(_fleet(50, failed=3)))
    assert [c["context"] for c in document["clusters"]] == _agents(50)


PUSHER = Provenance(
    pipeline_url="https://ci.example/group/app/-/pipelines/102",
    job_url="https://ci.example/j/202",
    user="alice",
)
APP = ObjectRef("Kustomization", "flux-system", "app")


def _entries() -> list[HistoryEntry]:
    older = "sha256:" + "cd" * 32
    return [
        HistoryEntry(APP, f"latest@{DIGEST}", DIGEST, "ReconciliationSucceeded", "t1", "2026-01-02T00:00:00Z",
                     reconciliations=2, tags=("c2", "latest"), pushed_by=PUSHER, in_registry=True),
        HistoryEntry(APP, f"latest@{older}", older, "HealthCheckFailed", "t0", "2026-01-01T00:00:00Z",
                     in_registry=False),
    ]  # fmt: skip


def test_history_table_is_one_block_per_consumer_with_whole_pipeline_urls() -> None:
    table = to_table(_report(command="history", artifact=None, history=_entries()))
    block = table.split("Kustomization/flux-system/app\n", 1)[1]
    first, second = [line for line in block.splitlines() if line.lstrip().startswith(("1 ", "2 "))]
    assert first.split() == [
        "1", "2026-01-02T00:00:00Z", "succeeded,", "2", "times", "sha256:abababababab…", "c2,", "latest",
        "alice", PUSHER.pipeline_url,
    ]  # fmt: skip
    assert "health check failed" in second
    assert "(gone from the registry)" in second
    assert "FLUX_CI_DIGEST=<its digest>" in table


def test_history_json_rows_name_their_consumer_and_every_field() -> None:
    rows = json.loads(to_json(_report(command="history", history=_entries())))["history"]
    assert rows[0] == {
        "kind": "Kustomization", "namespace": "flux-system", "name": "app", "digest": DIGEST,
        "revision": f"latest@{DIGEST}", "status": "ReconciliationSucceeded", "first_applied": "t1",
        "last_applied": "2026-01-02T00:00:00Z", "origin_revision": "", "reconciliations": 2, "chart": "",
        "tags": ["c2", "latest"], "in_registry": True,
        "pushed_by": {
            "pipeline_url": PUSHER.pipeline_url, "job_url": PUSHER.job_url, "user": "alice", "pushed_at": "",
            "source": "", "revision": "",
        },
    }  # fmt: skip
    assert rows[1]["in_registry"] is False
    assert "history" not in json.loads(to_json(_report()))  # deploy: no such key


def test_changed_is_said_for_a_deploy_in_every_output() -> None:
    changed = _report(changed=True)
    assert json.loads(to_json(changed))["changed"] is True
    assert "changes" not in json.loads(to_json(changed))  # diff's alone
    assert "changed: yes, a consumer applied a digest it did not run before" in to_table(changed)
    assert "FLUX_CI_CHANGED=true" in to_dotenv(changed)
    same = _report(changed=False)
    assert "changed: no, every consumer already ran this digest" in to_table(same)
    assert "FLUX_CI_CHANGED=false" in to_dotenv(same)
    assert "changed" not in json.loads(to_json(_report()))  # not computed: not said


def test_a_consumer_whose_ready_covers_only_the_apply_is_said() -> None:
    consumer = ConsumerState(APP, f"abc123@{DIGEST}", "True", "Applied", checks=Checks.APPLY)
    waiting = ConsumerState(
        ObjectRef("HelmRelease", "flux-system", "web"), "x", "True", "ok", checks=Checks.HEALTH
    )
    report = _report(consumers=[consumer, waiting])
    assert [row["checks"] for row in json.loads(to_json(report))["consumers"]] == ["apply", "health"]
    lines = [line for line in to_table(report).splitlines() if line.startswith("checks:")]
    assert lines == ["checks: applied, no health checks: Kustomization/flux-system/app"]


def test_who_pushed_what_a_source_holds_is_said_whole() -> None:
    source = _report().sources[0]
    long = Provenance(pipeline_url="https://ci.example/" + "g/" * 60 + "pipelines/1", user="alice")
    report = _report(
        sources=[SourceState(source.ref, source.url, source.revision, "True", "m", pushed_by=long)]
    )
    assert (
        f"OCIRepository/flux-system/app holds an artifact pushed by alice, pipeline {long.pipeline_url}"
        in (to_table(report))
    )


def test_the_deadline_and_where_it_came_from_are_in_the_json() -> None:
    assert json.loads(to_json(_report()))["deadline"] is None  # the command never got that far
    data = json.loads(to_json(_report(deadline=DeadlineInfo(13.0, "job"))))
    assert data["deadline"] == {"seconds": 13.0, "source": "job"}


def test_the_table_says_when_the_ci_job_decided_the_deadline() -> None:
    fitted = to_table(_report(deadline=DeadlineInfo(13.0, "job")))
    assert "deadline: 13s, fitted to the CI job's end" in fitted.splitlines()
    assert "deadline" not in to_table(_report(deadline=DeadlineInfo(300.0, "timeout")))


WAVES = [
    WaveOutcome("canary", ("stg",), WaveStatus.ROLLED_BACK, "2026-12-07T10:00:00.123Z", 1.234, 30.0),
    WaveOutcome("eu", ("prod-eu-1", "prod-eu-2"), WaveStatus.FAILED, "2026-12-07T10:00:31.500Z", 2.5),
    WaveOutcome("stable", ("prod-us",), WaveStatus.NOT_STARTED),
]


def test_each_wave_is_in_the_json_the_table_and_the_dotenv() -> None:
    report = _report(waves=WAVES, status=Status.FAILED, exit_code=7)
    assert json.loads(to_json(report))["waves"] == [
        {"tag": "canary", "clusters": ["stg"], "status": "rolled_back",
         "started_at": "2026-12-07T10:00:00.123Z", "seconds": 1.234, "soak_s": 30.0},
        {"tag": "eu", "clusters": ["prod-eu-1", "prod-eu-2"], "status": "failed",
         "started_at": "2026-12-07T10:00:31.500Z", "seconds": 2.5, "soak_s": 0.0},
        {"tag": "stable", "clusters": ["prod-us"], "status": "not-started", "started_at": "", "seconds": 0.0,
         "soak_s": 0.0},
    ]  # fmt: skip
    table = to_table(report)
    assert "wave canary (stg): rolled_back in 1.2s, soaked 30.0s\n" in table
    assert "wave eu (prod-eu-1, prod-eu-2): failed in 2.5s\n" in table
    assert "wave stable (prod-us): not-started\n" in table
    dotenv = to_dotenv(report)
    assert "FLUX_CI_WAVE_FAILED=eu\n" in dotenv
    assert "FLUX_CI_WAVES_SUCCEEDED" not in dotenv  # empty: none still stands (canary was rolled back)
    succeeded = [WaveOutcome(w.tag, w.clusters, WaveStatus.SUCCEEDED) for w in WAVES]
    assert "FLUX_CI_WAVES_SUCCEEDED=canary,eu,stable\n" in to_dotenv(_report(waves=succeeded))


def test_without_waves_there_is_no_wave_anywhere() -> None:
    report = _report()
    assert json.loads(to_json(report))["waves"] == []
    assert "wave " not in to_table(report)
    assert "FLUX_CI_WAVE" not in to_dotenv(report)
