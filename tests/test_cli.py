"""The CLI boundary: exit codes, one document on stdout, errors on stderr, help in a bare shell."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from flux_ci.cli import app, main

PUSH_VARS = {
    "FLUX_CI_REPOSITORY": "oci://127.0.0.1:1/app",
    "FLUX_CI_TAG": "t1",
    "FLUX_CI_SOURCE": "https://git.example/app",
    "FLUX_CI_REVISION": "main@sha1:abc",
}


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_works_in_an_empty_environment(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    for command in ("push", "reconcile", "wait", "deploy", "status", "doctor"):
        assert command in out


def test_every_command_has_help_text() -> None:
    for command in app.registered_commands:
        assert command.callback is not None
        assert command.callback.__doc__, f"{command.callback.__name__} has no help"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--version")
    assert code == 0
    assert out.startswith("flux-ci 1.")


def test_empty_environment_names_every_missing_variable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, "deploy")
    assert code == 2
    for name in ("FLUX_CI_REPOSITORY", "FLUX_CI_TAG", "FLUX_CI_SOURCE", "FLUX_CI_REVISION", "FLUX_CI_PATH"):
        assert name in err
    assert "Traceback" not in err
    assert out.rstrip().endswith("deploy: failed (exit 2, config)")


def test_json_output_is_one_document_even_for_config_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLUX_CI_OUTPUT", "json")
    monkeypatch.setenv("FLUX_CI_TIMEOUT", "later")
    code, out, _ = _run(capsys, "push")
    data = json.loads(out)
    assert code == 2
    assert data["exit_code"] == 2
    assert data["status"] == "failed"
    assert data["error"]["code"] == "config"
    assert "FLUX_CI_TIMEOUT" in data["error"]["message"]


def test_empty_manifest_directory_is_a_config_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in PUSH_VARS.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("FLUX_CI_PATH", str(tmp_path / "empty"))
    code, _, err = _run(capsys, "push")
    assert code == 2
    assert "is an empty directory" in err


def _fake_tool(directory: Path, name: str, script: str) -> None:
    """A FAKE executable: only to stand in for a flux release too old to build here."""
    path = directory / name
    path.write_text(f"#!{sys.executable}\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _with_manifests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in PUSH_VARS.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "cm.yaml").write_text("kind: ConfigMap\n")
    monkeypatch.setenv("FLUX_CI_PATH", str(tmp_path / "manifests"))


def test_missing_tool_exits_3(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_manifests(tmp_path, monkeypatch)
    monkeypatch.setenv("PATH", str(tmp_path / "bin-nothing"))
    code, _, err = _run(capsys, "push")
    assert code == 3
    assert "flux not found on PATH" in err


def test_too_old_tool_exits_3(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_manifests(tmp_path, monkeypatch)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_tool(bin_dir, "flux", 'print(\'{"flux": "v2.1.0"}\')')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    code, _, err = _run(capsys, "push")
    assert code == 3
    assert "flux 2.1.0 is not supported; flux-ci needs flux >= 2.6.0" in err


def test_dotenv_is_written_on_failure_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLUX_CI_DOTENV", str(tmp_path / "deploy.env"))
    code, _, _ = _run(capsys, "deploy")
    assert code == 2
    assert (tmp_path / "deploy.env").read_text() == "FLUX_CI_STATUS=failed\nFLUX_CI_EXIT_CODE=2\n"


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "launch")
    assert code == 2
    assert "No such command" in err


def test_flags_mirror_variables(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = _run(capsys, "--output", "json", "--timeout", "90s", "deploy")
    assert code == 2
    assert json.loads(out)["command"] == "deploy"


def test_dotenv_is_written_even_when_settings_are_invalid(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUX_CI_DOTENV", str(tmp_path / "deploy.env"))
    monkeypatch.setenv("FLUX_CI_TIMEOUT", "whenever")
    code, _, _ = _run(capsys, "deploy")
    assert code == 2
    assert "FLUX_CI_STATUS=failed" in (tmp_path / "deploy.env").read_text()


def test_flags_work_after_the_command_name_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = _run(capsys, "-o", "table", "deploy", "--output", "json", "-v")
    assert code == 2
    assert json.loads(out)["command"] == "deploy"  # the later --output wins
