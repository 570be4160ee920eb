from __future__ import annotations

import json

from flux_ci.report.models import (
    Artifact,
    ConsumerState,
    ErrorInfo,
    ObjectRef,
    Report,
    SourceState,
    Status,
    Step,
    StepStatus,
    TagMove,
    WaveOutcome,
    WaveStatus,
)
from flux_ci.report.render import DOTENV_LIMIT, to_dotenv, to_json, to_table

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
