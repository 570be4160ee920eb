"""The boundary always holds: whatever happens while the report is rendered or written, the run ends
with its exit code and a clear message on stderr, never a traceback. flux-ci runs as a pipeline runs
it (`python -m flux_ci`, the real kubectl), against clusters that cannot be reached: `status` over
many kube contexts named like GitLab agents gives a report as big as a real fleet's.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from flux_ci.cli import boundary
from flux_ci.errors import ExitCode
from flux_ci.report import models
from flux_ci.report.dotenv import DOTENV_LIMIT, TRUNCATED_KEY
from flux_ci.secrets import Masker
from tests.sandbox.versions import tool_dir

ROOT = Path(__file__).parent.parent.parent
KUBECTL = tool_dir("kubectl") / "kubectl"


def _agents(count: int) -> list[str]:
    """Kube contexts as a GitLab agent names them: `<project path>:<agent name>`."""
    return [f"platform-group/deployments/project-{i:02d}:production-agent-{i:02d}" for i in range(count)]


def _env(tmp_path: Path, contexts: int, **extra: str) -> dict[str, str]:
    """A bare job environment: the real kubectl, a kubeconfig that knows none of the contexts."""
    if not KUBECTL.exists():
        pytest.skip("the pinned kubectl is not built (make tools)")
    return {
        "PATH": f"{KUBECTL.parent}{os.pathsep}{os.defpath}",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
        "FLUX_CI_REPOSITORY": "oci://registry.example.com/platform/app",
        "FLUX_CI_KUBE_CONTEXT": ",".join(_agents(contexts)),
        "FLUX_CI_OUTPUT": "json",
        **extra,
    }


def _flux_ci(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flux_ci", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )


def test_a_dotenv_over_gitlabs_limit_is_shortened_and_the_exit_code_kept(tmp_path: Path) -> None:
    dotenv = tmp_path / "status.env"
    done = _flux_ci(_env(tmp_path, 50, FLUX_CI_DOTENV=str(dotenv)), "status")
    assert done.returncode == ExitCode.CLUSTER, done.stderr  # no cluster could be read: exit 5
    assert "Traceback" not in done.stderr
    assert "cannot write the dotenv" not in done.stderr  # nothing went wrong writing it
    assert "the dotenv report was over GitLab's limit: shortened" in done.stderr  # said, not silent
    report = json.loads(done.stdout)
    assert report["exit_code"] == ExitCode.CLUSTER
    assert [c["context"] for c in report["clusters"]] == _agents(50)  # JSON keeps every cluster
    text = dotenv.read_text()
    assert len(text.encode()) < DOTENV_LIMIT
    values = dict(line.split("=", 1) for line in text.splitlines())
    assert values["FLUX_CI_EXIT_CODE"] == "5"
    assert values["FLUX_CI_STATUS"] == "failed"
    assert values["FLUX_CI_CLUSTERS_FAILED"] == ",".join(_agents(50))  # the failed ones are kept first
    every = values["FLUX_CI_CLUSTERS"].split(",")
    assert every == _agents(50)[: len(every)]  # cut at a whole item, in the report's order
    assert values[TRUNCATED_KEY] == "FLUX_CI_CLUSTERS"


def test_a_reader_that_closes_stdout_early_ends_no_run_in_a_traceback(tmp_path: Path) -> None:
    # `flux-ci status | head -c 10`: the report is still being written when the reader goes away.
    # The pipe is made as small as Linux allows, so the report is bigger than what it holds.
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    with os.fdopen(read_end, "rb") as reader:
        process = subprocess.Popen(
            [sys.executable, "-m", "flux_ci", "status"],
            env=_env(tmp_path, 10),
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        os.close(write_end)
        head = reader.read(10)
    assert process.stderr is not None
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=300) == ExitCode.CLUSTER, stderr
    assert head == b'{\n  "schem'
    assert "flux-ci: the report could not be written to stdout: [Errno 32] Broken pipe" in stderr
    assert "Traceback" not in stderr
    assert "Exception ignored" not in stderr  # nor at the interpreter's last flush


def test_a_renderer_raising_ends_in_exit_1_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(_report: models.Report) -> str:
        raise KeyError("consumers")

    monkeypatch.setattr("flux_ci.report.render.to_table", broken)
    report = models.Report("deploy", status=models.Status.SUCCEEDED)
    boundary.emit(report, "table", None, Masker())
    captured = capsys.readouterr()
    assert report.exit_code == ExitCode.INTERNAL
    assert report.status is models.Status.FAILED
    assert captured.out == ""  # no table claims a success that was never told whole
    assert (
        "flux-ci: error: internal error (a bug in flux-ci) rendering the report: KeyError: 'consumers'"
        in captured.err
    )
    assert "Traceback" not in captured.err


def test_a_json_renderer_raising_still_writes_one_json_document(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def broken(_report: models.Report) -> str:
        raise ValueError("cannot render")

    calls = iter([broken])
    real = boundary.renderer("json")

    def first_broken(report: models.Report) -> str:
        return next(calls, real)(report)

    monkeypatch.setattr(boundary, "renderer", lambda _output: first_broken)
    report = models.Report("status", status=models.Status.FAILED, exit_code=5)
    dotenv = tmp_path / "out.env"
    boundary.emit(report, "json", dotenv, Masker())
    document = json.loads(capsys.readouterr().out)
    assert document["exit_code"] == ExitCode.INTERNAL
    assert "the command itself ended with" not in document["error"]["message"]  # it had no error
    assert document["error"]["message"].startswith("internal error (a bug in flux-ci) rendering the report")
    assert "FLUX_CI_EXIT_CODE=1\n" in dotenv.read_text()  # the dotenv tells the same outcome


def test_stderr_gone_too_is_survived(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stderr", closed)
    monkeypatch.setattr(sys, "stdout", closed)
    report = models.Report("status", status=models.Status.FAILED, exit_code=5)
    boundary.emit(report, "table", None, Masker())  # raises nothing
    assert report.exit_code == ExitCode.CLUSTER
