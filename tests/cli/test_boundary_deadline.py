"""The boundary fits the command's deadline to the CI job before any work: which deadline applies is
said on the start line and in the report, and a job with too little time left ends at once (exit 8).

The tools are kept off PATH: a command that got as far as its work would exit 3."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flux_ci.cli.app import main

PUSH_VARS = {
    "FLUX_CI_REPOSITORY": "oci://127.0.0.1:1/app",
    "FLUX_CI_TAG": "t1",
    "FLUX_CI_SOURCE": "https://git.example/app",
    "FLUX_CI_REVISION": "main@sha1:abc",
    "FLUX_CI_OUTPUT": "json",
}


@pytest.fixture
def no_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in PUSH_VARS.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "cm.yaml").write_text("kind: ConfigMap\nmetadata:\n  name: a\n")
    monkeypatch.setenv("FLUX_CI_PATH", str(tmp_path / "manifests"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    return tmp_path


def _job(monkeypatch: pytest.MonkeyPatch, *, left_s: float, timeout_s: int = 3600) -> None:
    started = datetime.now(UTC) - timedelta(seconds=timeout_s - left_s)
    monkeypatch.setenv("CI_JOB_TIMEOUT", str(timeout_s))
    monkeypatch.setenv("CI_JOB_STARTED_AT", started.isoformat(timespec="seconds").replace("+00:00", "Z"))


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object], str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_outside_a_job_the_report_says_flux_ci_timeout_applies(
    no_tools: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report, err = _run(capsys, "push")
    assert code == 3  # it got as far as its work: the tools are missing
    assert report["deadline"] == {"seconds": 300.0, "source": "timeout"}
    assert "; timeout 300s;" in err


def test_a_job_ending_first_fits_the_deadline_and_says_so(
    no_tools: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _job(monkeypatch, left_s=100)
    monkeypatch.setenv("FLUX_CI_TIMEOUT", "10m")
    code, report, err = _run(capsys, "push")
    assert code == 3
    deadline = report["deadline"]
    assert isinstance(deadline, dict)
    assert deadline["source"] == "job"
    assert 86 <= deadline["seconds"] <= 88  # 100 s left, 12 s reserve; the clock moved a little
    assert "fitted to the CI job" in err
    assert "not FLUX_CI_TIMEOUT's 600s" in err


def test_the_rollback_gets_its_share_of_the_job(
    no_tools: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _job(monkeypatch, left_s=100)
    monkeypatch.setenv("FLUX_CI_ROLLBACK", "true")
    code, report, err = _run(capsys, "deploy")
    assert code == 3
    deadline = report["deadline"]
    assert isinstance(deadline, dict)
    assert 42 <= deadline["seconds"] <= 43  # (100 - 14) / 2: half for the deploy, half for its rollback
    assert "rollback on failure within 4" in err  # 43 s, not FLUX_CI_ROLLBACK_TIMEOUT's 120 s


def test_too_little_time_left_in_the_job_is_exit_8_before_any_work(
    no_tools: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _job(monkeypatch, left_s=15)
    monkeypatch.setenv("FLUX_CI_TIMEOUT", "10m")
    monkeypatch.setenv("FLUX_CI_DOTENV", str(tmp_path / "deploy.env"))
    code, report, err = _run(capsys, "deploy")
    assert code == 8  # not 3: it never reached the tools
    error = report["error"]
    assert isinstance(error, dict)
    assert error["code"] == "timeout"
    assert "too little time left in the CI job" in error["message"]
    assert "it ends in 15s" in error["message"] or "it ends in 14s" in error["message"]
    assert "FLUX_CI_TIMEOUT is 600s" in error["message"]
    assert report["artifact"] is None
    deadline = report["deadline"]
    assert isinstance(deadline, dict)
    assert deadline["source"] == "job"
    assert deadline["seconds"] < 10
    assert "FLUX_CI_EXIT_CODE=8" in (tmp_path / "deploy.env").read_text().splitlines()
    assert "too little time left" in err
