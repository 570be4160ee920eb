"""Masking never corrupts: a registry password shorter than 8 characters that equals a namespace and a
tag leaves every name in the report intact, and still appears nowhere flux-ci writes. End to end, with
the sandbox registry accepting a second user whose password is that short.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.project import Project
from tests.sandbox import SandboxClient
from tests.sandbox.registry import registry_tools

pytestmark = pytest.mark.e2e

# Letters no digest, hex id or base64 flux-ci prints is likely to hold six of in a row by chance.
_UNLIKELY = "ghjkmnpqrstvwxyz"


@dataclass(frozen=True)
class Login:
    user: str
    password: str


@pytest.fixture(scope="module")
def short_login(sandbox: SandboxClient) -> Iterator[Login]:
    """A second registry user whose password has 6 characters, valid as a namespace and as a tag.

    distribution 2.8's htpasswd access controller re-reads its file when its modification time
    changes (registry/auth/htpasswd/access.go), so the user is added to the running registry by
    replacing the file (atomically, by rename), and removed the same way afterwards.
    """
    login = Login(
        f"ci-short-{secrets.token_hex(2)}", "zq" + "".join(secrets.choice(_UNLIKELY) for _ in range(4))
    )
    htpasswd_file = sandbox.state.state_dir / "registry" / "htpasswd"
    original = htpasswd_file.read_text(encoding="utf-8")
    _, htpasswd = registry_tools()
    entry = subprocess.run(
        [str(htpasswd), "-niB", login.user], input=login.password, capture_output=True, text=True,
        check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    _replace(htpasswd_file, f"{original.rstrip()}\n{entry}\n")
    try:
        yield login
    finally:
        _replace(htpasswd_file, original)


def _replace(path: Path, text: str) -> None:
    new = path.with_name(path.name + ".new")
    new.write_text(text, encoding="utf-8")
    new.chmod(0o600)
    os.replace(new, path)


def _registry_env(login: Login, **extra: str) -> dict[str, str]:
    return {"FLUX_CI_REGISTRY_USER": login.user, "FLUX_CI_REGISTRY_PASSWORD": login.password, **extra}


@pytest.fixture
def named_like_the_password(
    sandbox: SandboxClient, short_login: Login, repository: str, tmp_path: Path
) -> Iterator[Project]:
    """A project whose namespace is the password itself."""
    namespace = short_login.password
    sandbox.create_namespace(namespace)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    project = Project(sandbox, namespace, repository, manifests)
    project.write("hello")
    sandbox.deploy_oci(namespace, "app", repository, tag="latest", target_namespace=namespace)
    yield project
    sandbox.delete_namespace(namespace)


def test_a_short_password_equal_to_the_namespace_and_tag_leaves_every_name_intact(
    named_like_the_password: Project, short_login: Login, tmp_path: Path
) -> None:
    project, password = named_like_the_password, short_login.password
    dotenv = tmp_path / "deploy.env"
    env = project.env(**_registry_env(short_login, FLUX_CI_TAG=password, FLUX_CI_DOTENV=str(dotenv)))
    run = project.flux_ci("-v", "deploy", env=env)
    assert run.exit_code == 0, run.stderr  # pushed with the short password: the registry took it
    report = run.json()
    assert [s["namespace"] for s in report["sources"]] == [password]
    assert [c["namespace"] for c in report["consumers"]] == [password]
    assert report["artifact"]["tags"] == [password, "latest"]
    assert project.tag_digest(password) == report["artifact"]["digest"]
    assert "FLUX_CI_TAG=" + password + "\n" in dotenv.read_text()
    assert f"OCIRepository/{password}/app" in run.stderr
    for written in (run.stdout, run.stderr, dotenv.read_text()):
        assert "****" not in written  # nothing was taken for the password


def test_a_short_password_appears_nowhere_flux_ci_writes(
    project: Project, short_login: Login, tmp_path: Path
) -> None:
    dotenv = tmp_path / "deploy.env"
    run = project.flux_ci(
        "-v", "deploy", env=project.env(**_registry_env(short_login, FLUX_CI_DOTENV=str(dotenv)))
    )
    assert run.exit_code == 0, run.stderr
    assert project.tag_digest("c1") == run.json()["artifact"]["digest"]
    for written in (run.stdout, run.stderr, dotenv.read_text()):
        assert short_login.password not in written
