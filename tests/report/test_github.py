"""GitHub Actions: outputs, job summary, log groups and the ::error:: annotation."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from flux_ci.cli.app import main
from flux_ci.report import github
from flux_ci.report.markdown import to_markdown
from flux_ci.report.models import (
    Artifact,
    ClusterOutcome,
    ClusterStatus,
    ErrorInfo,
    Report,
    Rollback,
    RollbackStatus,
    Status,
    TagMove,
)
from flux_ci.report.progress import Progress
from flux_ci.secrets import Masker

DIGEST = "sha256:" + "ab" * 32


def _failed() -> Report:
    return Report(
        command="deploy",
        status=Status.FAILED,
        exit_code=7,
        artifact=Artifact("oci://r.example/app", ("abc123", "latest"), DIGEST, "s", "main@sha1:abc"),
        error=ErrorInfo("consumer_failed", "Kustomization/ns/app failed: 100% broken,\nsee: logs"),
    )


def test_outputs_are_the_dotenv_facts_under_the_action_names() -> None:
    assert github.outputs(_failed()) == {
        "status": "failed",
        "exit-code": "7",
        "retryable": "false",
        "digest": DIGEST,
        "url": f"oci://r.example/app@{DIGEST}",
        "tag": "abc123",
        "revision": "main@sha1:abc",
        "superseded-by": "",
        "previous-digest": "",
        "rollback-status": "",
        "clusters-succeeded": "",
        "clusters-failed": "",
        "waves-succeeded": "",
        "wave-failed": "",
    }
    empty = github.outputs(Report(command="deploy", status=Status.FAILED, exit_code=2))
    assert empty["digest"] == empty["url"] == empty["tag"] == ""


def test_output_file_uses_a_delimiter_only_for_multiline_values() -> None:
    text = github.output_file_text({"digest": DIGEST, "note": "one\ntwo"})
    lines = text.splitlines()
    assert lines[0] == f"digest={DIGEST}"
    assert lines[1].startswith("note<<ghadelimiter_")
    assert lines[2:4] == ["one", "two"]
    assert lines[4] == lines[1].split("<<", 1)[1]
    assert text.endswith("\n")


def test_error_annotation_escapes_what_the_runner_would_read_as_syntax() -> None:
    command = github.error_command(_failed())
    assert command == (
        "::error title=flux-ci deploy%3A consumer_failed (exit 7)::"
        "Kustomization/ns/app failed: 100%25 broken,%0Asee: logs"
    )
    assert "\n" not in command
    assert github.error_command(Report(command="deploy")) is None


def test_publish_appends_outputs_and_summary_and_annotates(tmp_path: Path) -> None:
    output, summary = tmp_path / "output", tmp_path / "summary"
    output.write_text("earlier=step\n")  # the runner's file may hold other lines of this step
    err = io.StringIO()
    github.publish(_failed(), {"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}, err)
    assert output.read_text().splitlines()[:3] == ["earlier=step", "status=failed", "exit-code=7"]
    assert summary.read_text() == to_markdown(_failed())
    assert err.getvalue().startswith("::error title=flux-ci deploy%3A consumer_failed (exit 7)::")


def test_publish_says_when_a_file_cannot_be_written(tmp_path: Path) -> None:
    err = io.StringIO()
    missing = tmp_path / "no-such-dir" / "output"
    github.publish(Report(command="deploy"), {"GITHUB_OUTPUT": str(missing)}, err)
    assert f"flux-ci: cannot write {missing}" in err.getvalue()
    assert "::error" not in err.getvalue()


def test_progress_groups_each_step_and_closes_before_the_outcome_line() -> None:
    out = io.StringIO()
    progress = Progress(Masker(["s3cret-token-1234"]), github_groups=True, out=out)
    with progress.step("push", "oci://r/app:s3cret-token-1234"):
        progress.note("pushed")
    with pytest.raises(RuntimeError), progress.step("wait"):
        raise RuntimeError("boom")
    lines = out.getvalue().splitlines()
    assert lines[0] == "::group::push oci://r/app:****"
    assert lines[1].endswith("▶ push oci://r/app:****")
    assert lines[3] == "::endgroup::"
    assert "✔ push done in" in lines[4]
    assert lines[5] == "::group::wait"
    assert lines[7] == "::endgroup::"
    assert "✗ wait failed in" in lines[8]


def test_no_groups_outside_github_actions() -> None:
    out = io.StringIO()
    with Progress(Masker(), out=out).step("push"):
        pass
    assert "::" not in out.getvalue()


# --- through the CLI boundary ---------------------------------------------------------------------


def _fake_oras(bin_dir: Path) -> None:
    """flux and an oras whose login fails and echoes the password it was given."""
    bin_dir.mkdir()
    scripts = {
        "flux": 'print(\'{"flux": "v2.9.3"}\')',
        "oras": "import sys\n"
        "if sys.argv[1] == 'version':\n    print('Version: 1.3.6')\n    sys.exit(0)\n"
        "sys.stderr.write('Error: bad password ' + sys.stdin.read())\nsys.exit(1)",
    }
    for name, body in scripts.items():
        tool = bin_dir / name
        tool.write_text(f"#!{sys.executable}\n{body}\n")
        tool.chmod(0o755)


def test_a_run_in_github_actions_writes_the_files_and_masks_the_password(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "hunter2-%-secret"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")
    _fake_oras(tmp_path / "bin")
    output, summary = tmp_path / "output", tmp_path / "summary"
    for name, value in {
        "PATH": str(tmp_path / "bin"),
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_REPOSITORY": "acme/app",
        "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
        "GITHUB_REF_NAME": "main",
        "GITHUB_ACTOR": "octocat",
        "FLUX_CI_REGISTRY_PASSWORD": password,
    }.items():
        monkeypatch.setenv(name, value)
    code = main(["push"])
    out, err = capsys.readouterr()
    assert code == 4
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert outputs["status"] == "failed"
    assert outputs["exit-code"] == "4"
    text = summary.read_text()
    assert text.startswith("### ❌ flux-ci push: failed")
    assert "bad password ****" in text
    assert "::error title=flux-ci push%3A registry (exit 4)::" in err
    assert "::group::push" not in err  # the login fails before the push step starts
    for written in (out, err, text, output.read_text()):
        assert password not in written
        assert password.replace("%", "%25") not in written


def test_markdown_output_is_the_summary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no manifests: a configuration error, exit 2
    monkeypatch.setenv("FLUX_CI_OUTPUT", "markdown")
    # The files a GitHub runner names, but not GITHUB_ACTIONS=true: outside Actions they are not ours.
    output, summary = tmp_path / "output", tmp_path / "summary"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code = main(["deploy"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out.startswith("### ❌ flux-ci deploy: failed")
    assert "**Error** (exit 2, `config`, not retryable)" in out
    assert not output.exists()  # the Markdown went to stdout, and nowhere else
    assert not summary.exists()
    assert "::error" not in err


def test_outputs_name_the_clusters_and_the_rollback() -> None:
    report = _failed()
    report.clusters = [
        ClusterOutcome("eu", ClusterStatus.SUCCEEDED, 0),
        ClusterOutcome("us", ClusterStatus.FAILED, 7),
        ClusterOutcome("asia", ClusterStatus.NOT_DEPLOYED, 0),
    ]
    report.tag_moves = [TagMove("latest", "sha256:old", DIGEST)]
    report.rollback = Rollback(RollbackStatus.ROLLED_BACK, DIGEST, "sha256:old", ("latest",), "back")
    outputs = github.outputs(report)
    assert (outputs["clusters-succeeded"], outputs["clusters-failed"]) == ("eu", "us")
    assert (outputs["rollback-status"], outputs["previous-digest"]) == ("rolled_back", "sha256:old")
