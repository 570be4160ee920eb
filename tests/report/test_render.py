from __future__ import annotations

import json

from flux_ci.report.models import (
    Artifact,
    ClusterOutcome,
    ClusterStatus,
    ConsumerState,
    ErrorInfo,
    ObjectRef,
    Report,
    SourceState,
    Status,
    Step,
    StepStatus,
    TagMove,
)
from flux_ci.report.render import DOTENV_LIMIT, TRUNCATED_KEY, shortened, to_dotenv, to_json, to_table

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
