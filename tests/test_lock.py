"""The hashed locks (requirements.lock, requirements-build.lock) match pyproject.toml.

Without the e2e marker: every dependency in pyproject.toml is pinned in the lock to a version its
range allows, every pin carries sha256 hashes (what `pip install --require-hashes` needs), and the
Dockerfile and the Action install from them. With it: `.ci/lock.sh` (uv, dates fixed by
LOCK_RESOLVED_BEFORE) regenerates both into a temporary directory, byte for byte the committed ones:
a dependency changed in pyproject.toml without `make lock` fails here.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parent.parent
LOCKS = ("requirements.lock", "requirements-build.lock")
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)(?:\s*;\s*(?P<marker>[^\\]+?))?\s*\\?$")


def pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def pins(lock: str) -> dict[str, tuple[str, list[str], str]]:
    """name -> (version, sha256 hashes, marker) of each requirement in a lock file."""
    found: dict[str, tuple[str, list[str], str]] = {}
    current = ""
    for line in (ROOT / lock).read_text(encoding="utf-8").splitlines():
        if line.startswith((" ", "#")) or not line:
            hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", line)
            if current and hashes:
                found[current][1].extend(hashes)
            continue
        pin = _PIN.match(line)
        assert pin, f"{lock}: not a pinned requirement: {line!r}"
        current = canonicalize_name(pin["name"])
        found[current] = (pin["version"], [], (pin["marker"] or "").strip())
    return found


def project_requirements() -> list[Requirement]:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    return [Requirement(text) for text in project["dependencies"]]


def build_requirements() -> list[Requirement]:
    build = pyproject()["build-system"]
    assert isinstance(build, dict)
    return [Requirement(text) for text in build["requires"]]


@pytest.mark.parametrize(
    ("lock", "requirements"),
    [("requirements.lock", project_requirements), ("requirements-build.lock", build_requirements)],
)
def test_every_pyproject_requirement_is_pinned_in_range_with_hashes(lock: str, requirements: object) -> None:
    assert callable(requirements)
    locked = pins(lock)
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is not in {lock}: run `make lock`"
        version, hashes, _ = locked[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {name}=={version}, outside {requirement}: run `make lock`"
        )
        assert hashes, f"{lock}: {name} has no hash"


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_has_hashes_and_a_valid_marker(lock: str) -> None:
    locked = pins(lock)
    assert locked
    for name, (_, hashes, marker) in locked.items():
        assert hashes, f"{lock}: {name} has no --hash (pip --require-hashes would refuse it)"
        if marker:
            Marker(marker)  # raises on a marker pip could not read
    header = (ROOT / lock).read_text(encoding="utf-8").splitlines()[:2]
    assert header[1].strip("# ") == "make lock", header


def test_the_image_and_the_action_install_from_the_locks() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "--require-hashes -r requirements.lock" in dockerfile
    assert "--require-hashes -r requirements-build.lock" in dockerfile
    assert "--no-build-isolation" in dockerfile  # the locked backend builds flux-ci, nothing else
    action = (ROOT / "action.yml").read_text(encoding="utf-8")
    assert '--require-hashes -r "$GITHUB_ACTION_PATH/requirements.lock"' in action
    assert '-r "$GITHUB_ACTION_PATH/requirements-build.lock"' in action
    assert '--no-index --no-build-isolation "$GITHUB_ACTION_PATH"' in action


@pytest.mark.e2e
def test_lock_regenerated_from_pyproject_is_the_committed_lock(tmp_path: Path) -> None:
    """uv resolves from the package index (hence e2e) with versions published before a fixed date."""
    done = subprocess.run(
        [str(ROOT / ".ci" / "lock.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for lock in LOCKS:
        assert (tmp_path / lock).read_text(encoding="utf-8") == (ROOT / lock).read_text(encoding="utf-8"), (
            f"{lock} does not match pyproject.toml: run `make lock` and commit it"
        )
