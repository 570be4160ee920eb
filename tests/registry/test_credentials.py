"""The private registry login: never in argv, never left on disk, not even after a SIGKILL."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from flux_ci.config.settings import Settings
from flux_ci.context import Context
from flux_ci.errors import RegistryError
from flux_ci.registry.credentials import AUTH_DIR_PREFIX, registry_login, remove_stale_auth_dirs
from tests.fakes import FakeRunner, make_context

PASSWORD = "registry-Passw0rd"


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private temp dir for mkdtemp and gettempdir, so the test sees only its own login dirs."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()  # exited and reaped: no process has this pid now (barring a rare reuse)
    return child.pid


def _context(runner: FakeRunner) -> Context:
    settings = Settings(
        repository="oci://registry.example.com/g/app",
        registry_user="alice",
        registry_password=PASSWORD,  # pydantic turns it into a SecretStr
    )
    return make_context(settings, runner, seconds=30)


def _logged_in_runner(exit_code: int = 0) -> FakeRunner:
    runner = FakeRunner()
    runner.answer(
        ["oras", "login"], stdout="Login Succeeded\n", stderr="Error: unauthorized", exit_code=exit_code
    )
    return runner


def _auth_dirs(parent: Path) -> list[Path]:
    return sorted(parent.glob(f"{AUTH_DIR_PREFIX}*"))


def test_login_uses_a_private_dir_named_for_this_process_and_removes_it(temp_dir: Path) -> None:
    runner = _logged_in_runner()
    with registry_login(_context(runner)) as auth:
        assert auth.registry_config is not None
        private_dir = auth.registry_config.parent
        assert private_dir.parent == temp_dir
        assert private_dir.name.startswith(f"{AUTH_DIR_PREFIX}{os.getpid()}-")
        assert stat.S_IMODE(private_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE(auth.registry_config.stat().st_mode) == 0o600
    assert not private_dir.exists()
    (call,) = runner.calls
    assert call.stdin == PASSWORD
    assert all(PASSWORD not in arg for arg in call.argv)


def _work_that_fails(temp_dir: Path, runner: FakeRunner) -> None:
    with registry_login(_context(runner)):
        assert len(_auth_dirs(temp_dir)) == 1
        raise KeyboardInterrupt


def test_the_private_dir_is_removed_when_the_work_fails(temp_dir: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        _work_that_fails(temp_dir, _logged_in_runner())
    assert _auth_dirs(temp_dir) == []


def test_the_private_dir_is_removed_when_the_login_is_refused(temp_dir: Path) -> None:
    login = registry_login(_context(_logged_in_runner(exit_code=1)))
    with pytest.raises(RegistryError, match="registry login failed: unauthorized"):
        login.__enter__()
    assert _auth_dirs(temp_dir) == []


def test_login_removes_what_a_killed_run_left_behind(temp_dir: Path) -> None:
    leftover = temp_dir / f"{AUTH_DIR_PREFIX}{_dead_pid()}-k1ll3d"
    leftover.mkdir(mode=0o700)
    (leftover / "config.json").write_text('{"auths": {"registry.example.com": {"auth": "secret"}}}')
    concurrent = temp_dir / f"{AUTH_DIR_PREFIX}{os.getppid()}-running"
    concurrent.mkdir(mode=0o700)
    with registry_login(_context(_logged_in_runner())):
        assert not leftover.exists()
        assert concurrent.exists()


def test_only_dead_runs_own_dirs_are_removed(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale = tmp_path / f"{AUTH_DIR_PREFIX}{dead}-abc"
    keep = {
        "alive": tmp_path / f"{AUTH_DIR_PREFIX}{os.getppid()}-abc",
        "ours": tmp_path / f"{AUTH_DIR_PREFIX}{os.getpid()}-abc",
        "old naming": tmp_path / f"{AUTH_DIR_PREFIX}x1y2z3ab",
        "pid zero": tmp_path / f"{AUTH_DIR_PREFIX}0-abc",
        "other program": tmp_path / f"other-{dead}-abc",
    }
    for path in (stale, *keep.values()):
        path.mkdir()
    a_file = tmp_path / f"{AUTH_DIR_PREFIX}{dead}-file"
    a_file.write_text("not a dir")
    target = tmp_path / "target"
    target.mkdir()
    (target / "precious").write_text("x")
    link = tmp_path / f"{AUTH_DIR_PREFIX}{dead}-link"
    link.symlink_to(target)

    assert remove_stale_auth_dirs(tmp_path) == [stale]
    assert not stale.exists()
    for name, path in keep.items():
        assert path.exists(), name
    assert a_file.exists()
    assert link.is_symlink()
    assert (target / "precious").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a dir to another user needs root")
def test_another_users_leftover_is_not_ours_to_remove(tmp_path: Path) -> None:
    theirs = tmp_path / f"{AUTH_DIR_PREFIX}{_dead_pid()}-theirs"
    theirs.mkdir()
    os.chown(theirs, 4242, -1)
    assert remove_stale_auth_dirs(tmp_path) == []
    assert theirs.exists()
