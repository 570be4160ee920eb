"""Signing end to end: the real cosign signs the pushed digest in the sandbox registry, and the real
source-controller verifies it against a public key in a Secret (`spec.verify`).

Keyless signing needs Sigstore's public Fulcio and Rekor, which the sandbox cannot reach: it is
covered by unit tests (tests/test_sign.py) only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.project import OCIREPOSITORIES, Project
from tests.sandbox import SandboxClient
from tests.sandbox.client import condition
from tests.sandbox.versions import tool_path

pytestmark = pytest.mark.e2e

PUBLIC_KEY_SECRET = "cosign-pub"


@dataclass(frozen=True)
class KeyPair:
    private_key: str  # PEM, encrypted with the password
    password: str
    public_key: Path


def _key_pair(sandbox: SandboxClient, directory: Path, password: str) -> KeyPair:
    directory.mkdir(parents=True)
    done = sandbox.run(
        [str(tool_path("cosign")), "generate-key-pair"], env={"COSIGN_PASSWORD": password}, cwd=directory
    )
    assert done.returncode == 0, done.stderr
    return KeyPair((directory / "cosign.key").read_text(), password, directory / "cosign.pub")


@pytest.fixture(scope="module")
def keys(sandbox: SandboxClient, tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyPair, KeyPair]:
    """The key the sources trust, and another one."""
    base = tmp_path_factory.mktemp("cosign")
    return _key_pair(sandbox, base / "trusted", "trusted-pass-1"), _key_pair(
        sandbox, base / "other", "other-pass-2"
    )


def _verifying(project: Project, trusted: KeyPair) -> None:
    """The project's OCIRepository accepts only artifacts signed with the trusted key."""
    project.sandbox.kubectl(
        "create", "secret", "generic", PUBLIC_KEY_SECRET, "-n", project.namespace,
        f"--from-file=cosign.pub={trusted.public_key}",
    )  # fmt: skip
    verify = {"provider": "cosign", "secretRef": {"name": PUBLIC_KEY_SECRET}}
    project.patch(OCIREPOSITORIES, "app", {"spec": {"verify": verify}})


def _signing_env(project: Project, key: KeyPair, **extra: str) -> dict[str, str]:
    return project.env(
        FLUX_CI_SIGN="cosign", COSIGN_PRIVATE_KEY=key.private_key, COSIGN_PASSWORD=key.password, **extra
    )


def test_a_signed_push_is_verified_by_flux(project: Project, keys: tuple[KeyPair, KeyPair]) -> None:
    trusted, _ = keys
    _verifying(project, trusted)
    run = project.flux_ci("deploy", env=_signing_env(project, trusted))
    assert run.exit_code == 0, run.stderr
    report = run.json()
    digest = report["artifact"]["digest"]
    assert [step["name"] for step in report["steps"]] == [
        "discover",
        "push",
        "sign",
        "tag",
        "reconcile",
        "wait",
    ]
    source = project.source()
    assert source["status"]["artifact"]["revision"] == f"latest@{digest}"
    verified = condition(source, "SourceVerified") or {}
    assert verified.get("status") == "True", source["status"]
    assert project.configmap_greeting() == "hello"
    # The key and its password appear nowhere in what flux-ci printed.
    for secret in (trusted.password, trusted.private_key.splitlines()[1]):
        assert secret not in run.stdout + run.stderr


def test_an_unsigned_deploy_to_a_verifying_source_exits_2_before_pushing(
    project: Project, keys: tuple[KeyPair, KeyPair]
) -> None:
    _verifying(project, keys[0])
    run = project.flux_ci("deploy")
    assert run.exit_code == 2, run.stderr
    assert run.seconds < 15
    message = run.json()["error"]["message"]
    assert f"OCIRepository/{project.namespace}/app accepts only signed artifacts" in message
    assert "FLUX_CI_SIGN" in message
    assert project.absent("c1")


def test_a_wrong_key_password_exits_2_before_anything_is_pushed(
    project: Project, keys: tuple[KeyPair, KeyPair]
) -> None:
    trusted, other = keys
    _verifying(project, trusted)
    wrong = KeyPair(trusted.private_key, other.password, trusted.public_key)
    run = project.flux_ci("-v", "deploy", env=_signing_env(project, wrong))
    assert run.exit_code == 2, run.stderr
    assert run.seconds < 30  # found by cosign on the runner, not at the 120 s deadline
    error = run.json()["error"]
    assert error["code"] == "config"
    assert error["message"] == (
        "COSIGN_PRIVATE_KEY cannot be used to sign: COSIGN_PASSWORD does not open it (cosign: decryption "
        "failed). Nothing was pushed"
    )
    assert [step["name"] for step in run.json()["steps"]] == ["discover"]
    # Nothing at all in the registry: not the immutable tag, not the moving one, not a signature.
    assert project.tag_digest("c1") is None
    assert project.tag_digest("latest") is None
    for secret in (wrong.password, trusted.password, trusted.private_key.splitlines()[1]):
        assert secret not in run.stdout + run.stderr


def test_a_push_signed_with_another_key_exits_6_with_the_controllers_message(
    project: Project, keys: tuple[KeyPair, KeyPair]
) -> None:
    trusted, other = keys
    _verifying(project, trusted)
    run = project.flux_ci("deploy", env=_signing_env(project, other))
    assert run.exit_code == 6, run.stderr
    assert run.seconds < 30  # at once, not at the 120 s deadline
    _assert_failed_verification(project, run.json())


def test_an_unsigned_digest_reconciled_later_exits_6(project: Project, keys: tuple[KeyPair, KeyPair]) -> None:
    # Pushed by a job that does not sign (push needs no cluster), then reconciled by another.
    _verifying(project, keys[0])
    pushed = project.flux_ci("push")
    assert pushed.exit_code == 0, pushed.stderr
    digest = pushed.json()["artifact"]["digest"]
    run = project.flux_ci("reconcile", env=project.env(FLUX_CI_DIGEST=digest))
    assert run.exit_code == 6, run.stderr
    assert run.seconds < 30
    _assert_failed_verification(project, run.json())


def _assert_failed_verification(project: Project, report: dict[str, object]) -> None:
    source = project.source()
    verified = condition(source, "SourceVerified") or {}
    ready = condition(source, "Ready") or {}
    assert verified.get("status") == "False", source["status"]
    assert ready.get("status") == "False"
    error = report["error"]
    assert isinstance(error, dict)
    assert error["code"] == "source_failed"
    # The controller's own words, not a deadline.
    assert str(ready["message"]) in str(error["message"])
    assert "verif" in str(ready["message"]).lower()
