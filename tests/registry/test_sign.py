"""Signing the pushed digest (FLUX_CI_SIGN): cosign's argv never holds a secret, the key and its
password reach the cosign child alone through its environment, and a source that verifies
signatures refuses an unsigned deploy before anything is pushed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flux_ci.config import plan
from flux_ci.config.settings import Settings, unknown_variables
from flux_ci.context import Context
from flux_ci.errors import ConfigError, ExitCode, RegistryError, ToolError
from flux_ci.kube import fluxobjects as fo
from flux_ci.kube import verdicts as v
from flux_ci.kube.found import Found
from flux_ci.kube.sources import classify as _classify
from flux_ci.registry import sign
from flux_ci.registry.client import Registry
from flux_ci.registry.credentials import RegistryAuth
from flux_ci.registry.publish import push
from flux_ci.tools.runner import CommandResult
from tests.fakes import FakeRunner, make_context
from tests.golden import obj, text

DIGEST = "sha256:064eed88f4a2da04f36a7f564c82dbfdbac4ced4a64334e410790e835587c6e8"
KEY = (
    "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
    "c2VjcmV0LWtleS1ieXRlcw==\n"
    "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
)
PASSWORD = "key-password-123"


@pytest.fixture(autouse=True)
def _no_cosign_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COSIGN_PRIVATE_KEY", "COSIGN_PASSWORD", *sign.KEYLESS_VARIABLES):
        monkeypatch.delenv(name, raising=False)


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    manifests = tmp_path / "m"
    manifests.mkdir(exist_ok=True)
    (manifests / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")
    values: dict[str, Any] = {
        "repository": "oci://127.0.0.1:5999/g/app",
        "tag": "abc123",
        "source": "https://git.example/g",
        "revision": "main@sha1:0123",
        "path": manifests,
        "extra_tags": ["latest"],
    }
    return Settings(**{**values, **overrides})


def _signed(tmp_path: Path, **overrides: Any) -> Settings:
    return _settings(tmp_path, sign="cosign", COSIGN_PRIVATE_KEY=KEY, COSIGN_PASSWORD=PASSWORD, **overrides)


def _context(settings: Settings, runner: FakeRunner) -> Context:
    return make_context(settings, runner, seconds=30)


def _runner(**kwargs: Any) -> FakeRunner:
    runner = FakeRunner(**kwargs)
    runner.answer(["flux", "push", "artifact"], stdout=text("flux/push-artifact.json"))
    runner.answer(["oras", "tag"], stdout="Tagged latest\n")
    runner.answer(["cosign", "version"], stdout="GitVersion:    v2.6.5\n")
    runner.answer(["cosign", "public-key"], stdout=text("cosign/public-key.stdout"))
    runner.answer(["cosign", "sign"], stdout="Pushing signature to: 127.0.0.1:5999/g/app\n")
    return runner


def _commands(runner: FakeRunner) -> list[str]:
    return [" ".join(call.argv[:2]) for call in runner.calls]


def test_a_signed_push_signs_the_digest_before_the_moving_tags(tmp_path: Path) -> None:
    runner = _runner()
    config = tmp_path / "auth" / "config.json"
    context = _context(_signed(tmp_path, insecure_registry=True), runner)
    artifact = push(context, Registry(context, RegistryAuth(config, plain_http=True)))
    assert artifact.digest == DIGEST
    signed = ["cosign version", "cosign public-key", "flux push", "cosign sign", "oras tag"]
    assert _commands(runner) == signed
    call = next(call for call in runner.calls if call.argv[:2] == ("cosign", "sign"))
    assert call.argv == (
        "cosign", "sign", "--yes", "--key=env://COSIGN_PRIVATE_KEY", "--tlog-upload=false",
        "--allow-insecure-registry", f"127.0.0.1:5999/g/app@{DIGEST}",
    )  # fmt: skip
    assert call.mutating
    # The secrets travel in the child's environment, never in argv; the login as flux gets it.
    assert call.env == {
        "COSIGN_PRIVATE_KEY": KEY,
        "COSIGN_PASSWORD": PASSWORD,
        "DOCKER_CONFIG": str(config.parent),
    }
    assert not any(PASSWORD in arg or "SIGSTORE" in arg for arg in call.argv)
    # Only cosign gets them: flux and oras do not.
    others = [c for c in runner.calls if c.argv[0] != "cosign"]
    assert others
    assert all("COSIGN_PRIVATE_KEY" not in c.env and "COSIGN_PASSWORD" not in c.env for c in others)


def test_a_key_file_is_read_and_passed_through_the_environment_too(tmp_path: Path) -> None:
    key_file = tmp_path / "cosign.key"
    key_file.write_text(KEY)
    runner = _runner()
    settings = _settings(tmp_path, sign="cosign", COSIGN_PRIVATE_KEY=str(key_file), cosign_tlog_upload=True)
    context = _context(settings, runner)
    push(context, Registry(context, RegistryAuth(None, plain_http=False)))
    call = next(call for call in runner.calls if call.argv[:2] == ("cosign", "sign"))
    assert call.env["COSIGN_PRIVATE_KEY"] == KEY
    assert call.env["COSIGN_PASSWORD"] == ""  # set even empty: cosign must never prompt
    assert "--tlog-upload=true" in call.argv
    assert "--allow-insecure-registry" not in call.argv
    assert str(key_file) not in " ".join(call.argv)
    # The file's content is masked like any secret from now on.
    assert context.runner.masker.mask(f"key: {KEY}") == "key: ****"


def test_keyless_signing_passes_only_the_oidc_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGSTORE_ID_TOKEN", "eyJhbGciOiJSUzI1NiJ9.payload.signature")
    runner = _runner()
    context = _context(_settings(tmp_path, sign="cosign-keyless"), runner)
    push(context, Registry(context, RegistryAuth(None, plain_http=False)))
    call = next(call for call in runner.calls if call.argv[:2] == ("cosign", "sign"))
    assert call.argv == ("cosign", "sign", "--yes", f"127.0.0.1:5999/g/app@{DIGEST}")
    assert call.env == {"SIGSTORE_ID_TOKEN": "eyJhbGciOiJSUzI1NiJ9.payload.signature"}


def test_without_signing_cosign_never_runs(tmp_path: Path) -> None:
    runner = _runner()
    context = _context(_settings(tmp_path), runner)
    push(context, Registry(context, RegistryAuth(None, plain_http=True)))
    assert [c for c in runner.calls if c.argv[0] == "cosign"] == []


def test_a_dry_run_signs_nothing(tmp_path: Path) -> None:
    runner = _runner(dry_run=True)
    context = _context(_signed(tmp_path, digest=DIGEST), runner)
    push(context, Registry(context, RegistryAuth(None, plain_http=True)))
    signing = [c for c in runner.calls if c.argv[:2] == ("cosign", "sign")]
    assert len(signing) == 1
    assert signing[0].skipped
    assert any("would run: $ cosign sign" in said for said in runner.said)


def test_a_refused_signature_is_a_registry_error_and_nothing_is_tagged(tmp_path: Path) -> None:
    runner = FakeRunner()
    runner.answer(["flux", "push", "artifact"], stdout=text("flux/push-artifact.json"))
    runner.answer(["cosign", "version"], stdout="GitVersion:    v2.6.5\n")
    runner.answer(["cosign", "public-key"], stdout=text("cosign/public-key.stdout"))
    runner.answer(
        ["cosign", "sign"], stderr="Error: signing [x]: UNAUTHORIZED: authentication required", exit_code=1
    )
    context = _context(_signed(tmp_path), runner)
    with pytest.raises(RegistryError, match=r"cosign could not sign .*UNAUTHORIZED") as raised:
        push(context, Registry(context, RegistryAuth(None, plain_http=True)))
    assert raised.value.exit_code == ExitCode.REGISTRY
    assert not any(c.argv[:2] == ("oras", "tag") for c in runner.calls)


def test_a_missing_cosign_stops_before_the_push(tmp_path: Path) -> None:
    runner = FakeRunner()
    runner.answer(["cosign", "version"], stderr="exec format error", exit_code=126)
    context = _context(_signed(tmp_path), runner)
    with pytest.raises(ToolError, match="FLUX_CI_SIGN=cosign"):
        push(context, Registry(context, RegistryAuth(None, plain_http=True)))
    assert _commands(runner) == ["cosign version"]


def test_a_wrong_key_password_stops_before_anything_is_pushed(tmp_path: Path) -> None:
    runner = _runner()
    runner.answers.insert(
        0, (("cosign", "public-key"), _failed(text("cosign/public-key-wrong-password.stderr")))
    )
    context = _context(_signed(tmp_path), runner)
    with pytest.raises(ConfigError) as raised:
        push(context, Registry(context, RegistryAuth(None, plain_http=True)))
    assert raised.value.exit_code == ExitCode.CONFIG
    assert raised.value.message == (
        "COSIGN_PRIVATE_KEY cannot be used to sign: COSIGN_PASSWORD does not open it (cosign: decryption "
        "failed). Nothing was pushed"
    )
    assert _commands(runner) == ["cosign version", "cosign public-key"]  # no flux push, no oras tag
    opened = runner.calls[1]
    assert opened.env["COSIGN_PRIVATE_KEY"] == KEY  # the key and password reach cosign alone, by env
    assert opened.env["COSIGN_PASSWORD"] == PASSWORD
    assert not any(PASSWORD in arg or "PRIVATE KEY" in arg for arg in opened.argv)


def test_a_key_cosign_cannot_read_for_another_reason_quotes_cosign(tmp_path: Path) -> None:
    runner = _runner()
    runner.answers.insert(0, (("cosign", "public-key"), _failed("Error: open key: unexpected EOF\n")))
    context = _context(_signed(tmp_path), runner)
    with pytest.raises(ConfigError, match=r"cosign says: Error: open key: unexpected EOF. Nothing was"):
        push(context, Registry(context, RegistryAuth(None, plain_http=True)))
    assert _commands(runner) == ["cosign version", "cosign public-key"]


def _failed(stderr: str) -> CommandResult:
    return CommandResult(("cosign", "public-key"), 1, "", stderr, 0.01)


# --- configuration ---------------------------------------------------------------------------


def test_settings_read_cosigns_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_CI_SIGN", " Cosign ")
    monkeypatch.setenv("COSIGN_PRIVATE_KEY", KEY)
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    settings = Settings()
    assert settings.sign == "cosign"
    assert settings.cosign_private_key is not None
    assert settings.cosign_private_key.get_secret_value() == KEY
    assert PASSWORD not in repr(settings)
    assert settings.cosign_tlog_upload is False
    assert {"cosign_private_key", "cosign_password"} <= Settings.secret_fields


def test_a_prefixed_cosign_variable_points_to_cosigns_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_CI_COSIGN_PASSWORD", PASSWORD)
    assert unknown_variables({"FLUX_CI_COSIGN_PASSWORD": "x"}) == [
        "FLUX_CI_COSIGN_PASSWORD is not a flux-ci variable; set COSIGN_PASSWORD instead"
    ]
    assert Settings().cosign_password is None


def test_an_unknown_signer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_CI_SIGN", "gpg")
    with pytest.raises(ConfigError, match="FLUX_CI_SIGN"):
        Settings.load()


def test_signing_without_a_key_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="COSIGN_PRIVATE_KEY is not set"):
        plan.check(_settings(tmp_path, sign="cosign"), "deploy")


def test_a_key_that_is_neither_pem_nor_a_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path, sign="cosign", COSIGN_PRIVATE_KEY="not-a-key-value")
    with pytest.raises(ConfigError, match="neither a PEM private key") as raised:
        plan.check(settings, "push")
    assert "not-a-key-value" not in raised.value.message


def test_the_configuration_line_says_a_deploy_signs(tmp_path: Path) -> None:
    assert plan.describe(_signed(tmp_path), "deploy").endswith("; signed with cosign")
    assert "signed" not in plan.describe(_signed(tmp_path), "wait")
    assert "signed" not in plan.describe(_settings(tmp_path), "deploy")


def test_keyless_and_unsigned_need_no_key(tmp_path: Path) -> None:
    plan.check(_settings(tmp_path, sign="cosign-keyless"), "deploy")
    plan.check(_settings(tmp_path), "deploy")
    plan.check(_signed(tmp_path), "deploy")


# --- a source that verifies signatures -------------------------------------------------------


def _source(verify: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"url": "oci://127.0.0.1:5999/g/app", "ref": {"tag": "abc123"}}
    if verify is not None:
        spec["verify"] = verify
    return {"kind": "OCIRepository", "metadata": {"namespace": "apps", "name": "app"}, "spec": spec}


VERIFY = {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}


def test_an_unsigned_push_to_a_verifying_source_is_refused(tmp_path: Path) -> None:
    context = _context(_settings(tmp_path), FakeRunner())
    with pytest.raises(ConfigError, match=r"OCIRepository/apps/app accepts only signed .*FLUX_CI_SIGN"):
        _classify(context, [_source(VERIFY)], Found(), tags=["abc123"], digest=None)


def test_a_signed_push_or_an_unverified_source_passes(tmp_path: Path) -> None:
    signed = _context(_signed(tmp_path), FakeRunner())
    assert _classify(signed, [_source(VERIFY)], Found(), tags=["abc123"], digest=None)
    unsigned = _context(_settings(tmp_path), FakeRunner())
    assert _classify(unsigned, [_source(None)], Found(), tags=["abc123"], digest=None)


def test_waiting_for_a_digest_pushed_elsewhere_does_not_ask_for_signing(tmp_path: Path) -> None:
    # reconcile/wait: another job pushed (and signed) FLUX_CI_DIGEST; this one signs nothing.
    context = _context(_settings(tmp_path), FakeRunner())
    assert _classify(context, [_source(VERIFY)], Found(), tags=["abc123"], digest=DIGEST)


def test_a_signature_made_with_another_key_fails_the_source_with_the_controllers_message() -> None:
    # Captured from the real source-controller after a push signed with a key it does not trust.
    source = obj("kubectl/ocirepository-verify-wrong-key.json")
    digest = source["status"]["conditions"][0]["message"].split("@")[1].split("'")[0]
    token = source["status"]["lastHandledReconcileAt"]
    assert fo.condition(source, "SourceVerified")["status"] == "False"  # type: ignore[index]
    verdict = v.source_verdict(source, v.Expectation(digest, tags=("c1", "latest"), requested_at=token))
    assert verdict.phase is v.Phase.FAILED
    assert verdict.message.startswith("failed to verify the signature using provider 'cosign'")
    assert verdict.message == fo.condition(source, "Ready")["message"]  # type: ignore[index]
