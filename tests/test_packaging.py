"""flux-ci as users install it: `python -m build` makes an sdist and a wheel that pass `twine check
--strict`, with the version from flux_ci.__version__ (the one place it is written); the wheel,
installed into a clean venv with its dependencies from the hashed lock, gives a working `flux-ci`;
`pipx install .` gives one too, with Typer's shell completion. And what a release promises: the changelog, the
compatibility table, the README's retry recipe.

Built from a copy of what Git would ship (tracked and new, not ignored files), so the working tree
is never written to. The builds are marked e2e: they fetch the build backend and pipx the
dependencies from the package index, tens of seconds that `make unit` should not wait for.
"""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib.util import find_spec
from pathlib import Path

import pytest

from flux_ci import __version__
from tests.e2e.test_pipelines import require
from tests.sandbox.versions import read_versions

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _run(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files Git would commit (tracked, and new ones not ignored), copied."""
    listed = _run("git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", cwd=ROOT)
    copy = tmp_path_factory.mktemp("source")
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    return copy


@pytest.fixture(scope="module")
def dist(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(find_spec("build") is not None and find_spec("twine") is not None, "build and twine")
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--outdir", str(out), str(source))
    return out


@pytest.mark.e2e
def test_sdist_and_wheel_pass_twine_check(dist: Path) -> None:
    names = sorted(path.name for path in dist.iterdir())
    assert names == [f"flux_ci-{__version__}-py3-none-any.whl", f"flux_ci-{__version__}.tar.gz"]
    report = _run(sys.executable, "-m", "twine", "check", "--strict", *(str(path) for path in dist.iterdir()))
    assert report.count("PASSED") == 2


@pytest.mark.e2e
def test_wheel_holds_the_package_its_entry_point_and_this_version(dist: Path) -> None:
    with zipfile.ZipFile(dist / f"flux_ci-{__version__}-py3-none-any.whl") as wheel:
        names = wheel.namelist()
        metadata = email.message_from_bytes(wheel.read(f"flux_ci-{__version__}.dist-info/METADATA"))
        entry_points = wheel.read(f"flux_ci-{__version__}.dist-info/entry_points.txt").decode()
    assert metadata["Version"] == __version__
    assert metadata["Requires-Python"] == ">=3.11"
    assert "flux_ci/py.typed" in names
    assert "flux_ci/report/markdown.py" in names
    assert not [name for name in names if name.startswith("tests/")]  # the sandbox is not shipped
    assert "flux-ci = flux_ci.__main__:run" in entry_points


@pytest.mark.e2e
def test_wheel_in_a_clean_venv_with_the_locked_dependencies_runs(dist: Path, tmp_path: Path) -> None:
    """As the image installs it: the lock with --require-hashes, then the wheel with no index, so
    every dependency the wheel declares must already be in the lock."""
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", str(venv))
    pip = (str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--quiet")
    _run(*pip, "install", "--require-hashes", "-r", str(ROOT / "requirements.lock"))
    wheel = dist / f"flux_ci-{__version__}-py3-none-any.whl"
    _run(*pip, "install", "--no-index", str(wheel))
    _run(*pip, "check")
    bare = {"PATH": os.defpath, "HOME": str(tmp_path)}  # no PYTHONPATH: the install alone
    assert _run(str(venv / "bin" / "flux-ci"), "--version", env=bare) == f"flux-ci {__version__}\n"
    sizes = {path.name: path.stat().st_size for path in dist.iterdir()}
    print(f"distribution sizes: {sizes}")
    assert all(size < 512 * 1024 for size in sizes.values()), sizes  # no stray data file shipped


def _network_settings() -> dict[str, str]:
    """How this machine reaches the package index (proxies, pip's index and CA settings), as a user's
    shell would hand them to pipx. pipx installs through uv when uv is on hand (it is: `make lock`), and
    uv trusts only its bundled roots unless told to use the system's: with a CA of its own in the way
    (pip's `cert` set), that is what a user on this network sets too."""
    passed = {
        name: value
        for name, value in os.environ.items()
        if name.upper() in {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR"}
        or name.startswith(("PIP_", "UV_"))
    }
    if "PIP_CERT" in os.environ or "SSL_CERT_FILE" in os.environ or Path("/etc/pip.conf").is_file():
        passed.setdefault("UV_NATIVE_TLS", "1")
    return passed


@pytest.mark.e2e
def test_pipx_install_gives_a_working_flux_ci_with_shell_completion(source: Path, tmp_path: Path) -> None:
    require(find_spec("pipx") is not None, "pipx")
    home = {
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
    }
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **home, **_network_settings()}
    _run(sys.executable, "-m", "pipx", "install", str(source), env=env)
    flux_ci = tmp_path / "bin" / "flux-ci"
    bare = {"PATH": os.defpath, "HOME": str(tmp_path)}  # no venv, no PYTHONPATH: the install alone
    assert _run(str(flux_ci), "--version", env=bare) == f"flux-ci {__version__}\n"
    assert "deploy" in _run(str(flux_ci), "--help", env=bare)
    completion = {**bare, "_FLUX_CI_COMPLETE": "complete_bash", "COMP_WORDS": "flux-ci de", "COMP_CWORD": "1"}
    assert _run(str(flux_ci), env=completion).split() == ["deploy"]
    script = _run(str(flux_ci), "--show-completion", "bash", env=bare)
    assert "_FLUX_CI_COMPLETE=complete_bash" in script


# --- what a release promises ---------------------------------------------------------------------


def test_changelog_has_this_version_and_the_unreleased_changes() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", changelog, re.MULTILINE)
    assert headings[0].startswith("Unreleased")
    assert "1.0.0" in headings
    assert __version__ in " ".join(headings)
    for change in (
        "exit 9",
        "Permission preflight",
        "Namespaced RBAC scope",
        "Fail-fast sources and consumers",
        "Re-run semantics",
        "Resumed watches",
        "Registry retries",
        "Strict validation of every variable",
        "unknown",
        "allowlisted environment",
        "One watch per kind",
        "GitLab CI/CD component",
        "GitHub Action",
    ):
        assert change in changelog, change


def test_compatibility_table_lists_the_pinned_versions() -> None:
    pins = read_versions()
    lines = README.splitlines()
    (header,) = [line for line in lines if line.startswith("| flux-ci | flux CLI |")]
    (unreleased,) = [line for line in lines if line.startswith("| 1.1.0 (unreleased) |")]
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    cells = dict(zip(columns, (cell.strip() for cell in unreleased.strip("|").split("|")), strict=True))
    assert cells["flux CLI"] == pins["FLUX_VERSION"]
    assert cells["source-controller"] == pins["SOURCE_CONTROLLER_VERSION"]
    assert cells["kustomize-controller"] == pins["KUSTOMIZE_CONTROLLER_VERSION"]
    assert cells["helm-controller"] == pins["HELM_CONTROLLER_VERSION"]
    assert cells["kube-apiserver, kubectl"] == pins["KUBERNETES_VERSION"]
    assert cells["oras"] == pins["ORAS_VERSION"]
    if "NOTIFICATION_CONTROLLER_VERSION" in pins:
        assert cells["notification-controller"] == pins["NOTIFICATION_CONTROLLER_VERSION"]


@pytest.mark.parametrize(
    ("exit_code", "retryable", "job_exit"),
    [(4, "true", 75), (5, "true", 75), (8, "true", 75), (4, "false", 4), (7, "false", 7), (0, "false", 0)],
)
def test_readme_retry_recipe_gives_75_to_retryable_failures_only(
    tmp_path: Path, exit_code: int, retryable: str, job_exit: int
) -> None:
    (line,) = [line for line in README.splitlines() if "- flux-ci deploy || {" in line]
    script = line.strip().removeprefix("- ")
    fake = tmp_path / "bin" / "flux-ci"  # writes the dotenv report as flux-ci does, then exits
    fake.parent.mkdir()
    fake.write_text(
        f"#!/bin/sh\nprintf 'FLUX_CI_EXIT_CODE={exit_code}\\nFLUX_CI_RETRYABLE={retryable}\\n' > deploy.env\n"
        f"exit {exit_code}\n"
    )
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}{os.pathsep}{os.defpath}"}
    done = subprocess.run(["sh", "-ec", script], cwd=tmp_path, env=env, check=False, timeout=30)
    assert done.returncode == job_exit
