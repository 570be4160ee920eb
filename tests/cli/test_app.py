"""The CLI boundary: exit codes, one document on stdout, errors on stderr, help in a bare shell."""

from __future__ import annotations

import gc
import json
import os
import re
import stat
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flux_ci.cli.app import app, main
from flux_ci.config.names import variable_name
from flux_ci.config.settings import Settings
from flux_ci.errors import ExitCode

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
    assert f"FLUX_CI_PATH: {str(tmp_path / 'empty')!r} holds no Kubernetes object" in err


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
    lines = (tmp_path / "deploy.env").read_text().splitlines()
    assert lines[:2] == ["FLUX_CI_STATUS=failed", "FLUX_CI_EXIT_CODE=2"]
    assert not [line for line in lines if line.startswith(("FLUX_CI_DIGEST=", "FLUX_CI_URL="))]


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
    assert json.loads(out)["command"] == "deploy"  # --output json: the report is JSON
    # A flag wins over its variable: the command's one deadline is the one given on the command line.
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")
    for name, value in {
        "PATH": str(tmp_path / "no-tools"), "FLUX_CI_TIMEOUT": "30s", "FLUX_CI_REPOSITORY": "oci://r.example/app",
        "FLUX_CI_TAG": "c1", "FLUX_CI_SOURCE": "https://git.example/app", "FLUX_CI_REVISION": "main@sha1:abc",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    code, out, err = _run(capsys, "--output", "json", "--timeout", "90s", "deploy")
    assert code == 3, err  # no flux on PATH: after the settings were read and the run described
    start = next(line for line in err.splitlines() if "flux-ci deploy:" in line)
    assert "; timeout 90s;" in start


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


def _modules_loaded_by(*calls: list[str]) -> tuple[set[str], str]:
    """The modules a fresh interpreter holds after `main(args)` for each args, and its stdout."""
    probe = (
        "import json, sys\n"
        "from flux_ci.cli.app import main\n"
        f"for args in {calls!r}:\n"
        "    main(args)\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env={"PATH": os.defpath}
    )
    return set(json.loads(done.stderr.splitlines()[-1])), done.stdout


def test_help_version_and_usage_errors_import_nothing_heavier_than_typer() -> None:
    loaded, _ = _modules_loaded_by(["--help"], ["--version"], ["push", "--help"], ["launch"])
    # flux_ci.tools.runner may load (main installs its signal handlers): it defers sh to the first child.
    heavy = {
        "sh",
        "tabulate",
        "pydantic_settings",
        "flux_ci.config.settings",
        "flux_ci.delivery.settle",
        "flux_ci.config.plan",
    }
    heavy |= {
        "flux_ci.report.render",
        "flux_ci.commands.doctor",
        "flux_ci.context",
        "flux_ci.secrets",
        "flux_ci.registry.client",
    }
    assert loaded & heavy == set()
    assert "typer" in loaded


def _help(capsys: pytest.CaptureFixture[str], command: str) -> str:
    code, out, _ = _run(capsys, command, "--help")
    assert code == 0
    return " ".join(out.split())  # unwrapped


@pytest.mark.parametrize("command", ["push", "reconcile", "wait", "deploy", "status", "doctor"])
def test_each_command_help_lists_the_variables_it_reads_and_its_exit_codes(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    text = _help(capsys, command)
    listed = set(re.findall(r"FLUX_CI_[A-Z_]+", text.split("Reads:", 1)[1]))
    assert listed <= {variable_name(name) for name in Settings.model_fields}
    assert {"FLUX_CI_TIMEOUT", "FLUX_CI_OUTPUT", "FLUX_CI_DOTENV"} <= listed
    exits = text.split("Exit codes:", 1)[1].split("Options:", 1)[0]
    codes = {int(code) for code in re.findall(r"\b(\d+)\b", exits)}
    assert {0, 2, 130, 143} <= codes <= {int(code) for code in ExitCode}


@pytest.mark.parametrize(
    ("command", "needed"),
    [
        ("push", {"FLUX_CI_PATH", "FLUX_CI_REPOSITORY", "FLUX_CI_TAG", "FLUX_CI_SOURCE", "FLUX_CI_REVISION"}),
        ("deploy", {"FLUX_CI_PATH", "FLUX_CI_REPOSITORY", "FLUX_CI_WAIT_FOR", "FLUX_CI_ALLOW_EMPTY"}),
        ("reconcile", {"FLUX_CI_DIGEST", "FLUX_CI_REPOSITORY", "FLUX_CI_OCIREPOSITORY"}),
        ("wait", {"FLUX_CI_DIGEST", "FLUX_CI_WAIT_FOR"}),
        ("status", {"FLUX_CI_REPOSITORY", "FLUX_CI_OCIREPOSITORY"}),
    ],
)
def test_help_names_what_the_command_cannot_do_without(
    capsys: pytest.CaptureFixture[str], command: str, needed: set[str]
) -> None:
    assert needed <= set(re.findall(r"FLUX_CI_[A-Z_]+", _help(capsys, command)))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "json", "launch"], "No such command 'launch'."),
        (["--output=json", "push", "--bogus"], "No such option: --bogus"),
        (["push", "-ojson", "--bogus"], "No such option: --bogus"),
        (["-o", "json"], "Missing command."),
    ],
)
def test_usage_errors_in_json_mode_are_one_json_document(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = _run(capsys, *args)
    assert code == 2
    data = json.loads(out)  # exactly one document: trailing output would fail to parse
    assert data["exit_code"] == 2
    assert data["status"] == "failed"
    assert data["error"]["code"] == "config"
    assert data["error"]["message"].startswith(message)
    assert "Usage: flux-ci" in err  # Click's usage text still goes to people, on stderr


def test_usage_error_json_mode_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUX_CI_OUTPUT", "json")
    code, out, _ = _run(capsys)
    assert code == 2
    assert json.loads(out)["error"]["message"] == "no command given: run flux-ci --help"


def test_usage_errors_in_table_mode_leave_stdout_empty(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "push", "--bogus")
    assert code == 2
    assert out == ""
    assert "No such option: --bogus" in err


SECRETS = {
    "CI_JOB_TOKEN": "job-token-value-1",
    "CI_REGISTRY_PASSWORD": "job-token-value-1",
    "CI_DEPLOY_PASSWORD": "deploy-pass-value",
    "GITHUB_TOKEN": "ghs_tokenvalue123",
    "ACTIONS_RUNTIME_TOKEN": "runtime-token-val",
    "COSIGN_PASSWORD": "cosign-pass-value",
}


def test_children_get_an_allowlisted_environment_without_secrets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_manifests(tmp_path, monkeypatch)
    seen = tmp_path / "flux-env.json"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_tool(
        bin_dir,
        "flux",
        f"import json, os\nopen({str(seen)!r}, 'w').write(json.dumps(dict(os.environ)))\n"
        'print(\'{"flux": "v2.9.3"}\')',
    )
    _fake_tool(
        bin_dir, "oras", "import sys\nprint('Version: 1.3.6')\nsys.exit(0 if sys.argv[1] == 'version' else 1)"
    )
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("UNRELATED_JOB_VARIABLE", "whatever")
    monkeypatch.setenv("CI_REGISTRY_USER", "gitlab-ci-token")  # pairs with CI_REGISTRY_PASSWORD
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    code, out, err = _run(capsys, "push")
    assert code == 4  # the fake flux refuses to push; its `flux version` saw the environment
    env = json.loads(seen.read_text())
    assert env["PATH"] == str(bin_dir)
    assert not set(env) & {*SECRETS, "UNRELATED_JOB_VARIABLE", "FLUX_CI_REPOSITORY", "FLUX_CI_TAG"}
    assert not set(env.values()) & set(SECRETS.values())
    for value in SECRETS.values():
        assert value not in out + err


def test_a_password_a_tool_echoes_is_masked_in_every_form(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = 'pa"ss\\wörd-2024'
    _with_manifests(tmp_path, monkeypatch)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_tool(bin_dir, "flux", 'print(\'{"flux": "v2.9.3"}\')')
    _fake_tool(  # a login that fails and repeats the password it was given, as careless tools do
        bin_dir,
        "oras",
        "import sys\n"
        "if sys.argv[1] == 'version':\n    print('Version: 1.3.6')\n    sys.exit(0)\n"
        "sys.stderr.write('Error: bad password ' + repr(sys.stdin.read()) + ' ' + 'x' * 80)\nsys.exit(1)",
    )
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("FLUX_CI_REGISTRY_USER", "alice")
    monkeypatch.setenv("FLUX_CI_REGISTRY_PASSWORD", password)
    for output in ("json", "table"):
        code, out, err = _run(capsys, "-o", output, "push")
        assert code == 4
        for form in (password, json.dumps(password)[1:-1], json.dumps(password, ensure_ascii=False)[1:-1]):
            assert form not in out
            assert form not in err
        assert "bad password '****'" in err
    data = json.loads(_run(capsys, "-o", "json", "push")[1])
    assert data["error"]["message"].startswith("registry login failed: bad password '****'")


def test_doctor_reports_configuration_problems_as_a_check_and_runs_the_others(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "bin-nothing"))
    monkeypatch.setenv("FLUX_CI_REGISTRY_USER", "alice")  # no password: a configuration problem
    code, out, _ = _run(capsys, "-o", "json", "doctor")
    checks = {check["name"]: check for check in json.loads(out)["checks"]}
    assert code == 3  # the first failed check decides: flux is not installed
    assert [checks[f"{tool} installed"]["ok"] for tool in ("flux", "oras", "kubectl")] == [False] * 3
    assert checks["configuration"]["ok"] is False
    for expected in ("FLUX_CI_TAG is not set", "FLUX_CI_REGISTRY_PASSWORD is not set", "FLUX_CI_PATH: "):
        assert expected in checks["configuration"]["detail"]


def test_doctor_still_stops_at_invalid_values(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUX_CI_TIMEOUT", "inf")
    code, _, err = _run(capsys, "doctor")
    assert code == 2
    assert "FLUX_CI_TIMEOUT: 'inf'" in err


def test_verbosity_is_counted_as_typer_will_count_it() -> None:
    from flux_ci.cli.startup import verbosity_in  # noqa: PLC0415

    assert verbosity_in(["-vv", "deploy", "--verbose", "-o", "json"]) == 3
    assert verbosity_in(["deploy", "-x", "--verbose=1"]) == 0


def test_the_console_script_flushes_and_exits_with_the_code() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flux_ci", "--timeout", "bad", "-o", "json", "status"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.defpath},
    )
    assert done.returncode == 2
    assert json.loads(done.stdout)["error"]["code"] == "config"  # written whole before the fast exit


@pytest.fixture
def collector_restored() -> Iterator[None]:
    yield
    gc.unfreeze()
    gc.enable()


def test_the_entry_point_turns_the_collector_off_before_the_cli_loads(
    monkeypatch: pytest.MonkeyPatch, collector_restored: None
) -> None:
    import flux_ci.__main__ as entry  # noqa: PLC0415

    seen: dict[str, object] = {}

    def fake_cli_run(early: object) -> None:  # a stand-in for flux_ci.cli.app: what holds when it loads
        seen.update(collector=gc.isenabled(), plugins=os.environ.get("PYDANTIC_DISABLE_PLUGINS"), early=early)

    monkeypatch.setitem(sys.modules, "flux_ci.cli.app", types.SimpleNamespace(run=fake_cli_run))
    monkeypatch.setattr(sys, "argv", ["flux-ci", "--version"])  # no command: nothing starts early
    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
    start: Callable[[], object] = entry.run  # NoReturn for real; it returns once the fake CLI does
    start()
    assert seen == {"collector": False, "plugins": "__all__", "early": None}

    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "logfire")  # the user's choice is kept
    start()
    assert seen["plugins"] == "logfire"


def test_startup_done_freezes_what_was_loaded_and_collects_again(collector_restored: None) -> None:
    from flux_ci.cli.boundary import startup_done  # noqa: PLC0415

    gc.disable()
    startup_done()
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0


def test_startup_done_leaves_an_embedding_programs_collector_alone(collector_restored: None) -> None:
    from flux_ci.cli.boundary import startup_done  # noqa: PLC0415

    frozen = gc.get_freeze_count()
    startup_done()
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_a_command_run_through_the_entry_point_collects_again(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    collector_restored: None,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in PUSH_VARS.items():
        monkeypatch.setenv(name, value)
    gc.disable()  # as flux_ci.__main__.run leaves it
    main(
        ["--dry-run", "status"]
    )  # reads the settings, then fails to reach a cluster: either way past startup
    capsys.readouterr()
    assert gc.isenabled()


def test_the_version_checks_start_before_typer_loads(tmp_path: Path) -> None:
    # A fake kubectl (a shell script) is enough: what counts is whether its check had started when
    # typer began to load. Started means: its thread is running, or it has already run (the mark).
    ran = tmp_path / "kubectl-ran"
    fake = tmp_path / "kubectl"
    fake.write_text(f'#!/bin/sh\ntouch {ran}\necho \'{{"clientVersion": {{"gitVersion": "v1.36.3"}}}}\'\n')
    fake.chmod(0o755)
    probe = (
        "import os, sys, threading\n"
        "class Spy:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'typer':\n"
        "            probing = any(t.name.startswith('probe') for t in threading.enumerate())\n"
        f"            print('typer loads; check started:', probing or os.path.exists({str(ran)!r}),\n"
        "                  file=sys.stderr, flush=True)\n"
        "sys.meta_path.insert(0, Spy())\n"
        "sys.argv = ['flux-ci', 'status']\n"
        "from flux_ci.__main__ import run\n"
        "run()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": f"{tmp_path}:{os.defpath}"},
        cwd=tmp_path,
    )
    assert "typer loads; check started: True" in done.stderr.splitlines()
    assert ran.exists()


def test_a_json_report_never_loads_tabulate() -> None:
    loaded, out = _modules_loaded_by(["--timeout", "later", "-o", "json", "status"])
    assert json.loads(out)["error"]["code"] == "config"
    assert "flux_ci.report.render" in loaded
    assert "tabulate" not in loaded
