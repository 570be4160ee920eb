"""Secrets: which values are secret, masking without corrupting output, and the children's environment."""

from __future__ import annotations

import base64
import json
from typing import NamedTuple
from urllib.parse import quote

import pytest

from flux_ci.report.models import Artifact, Check, ErrorInfo, ObjectRef, Report, SourceState, Status
from flux_ci.report.render import to_json, to_table
from flux_ci.secrets import (
    MASK,
    Masker,
    child_environment,
    has_userinfo,
    is_secret_variable,
    redact_url,
    secret_values,
    split_userinfo,
    url_credentials,
    without_userinfo,
)

DIGEST = "sha256:" + "ab12" * 16
AWKWARD = 'pa"ss\\wörd-2024'  # a quote, a backslash and a non-ASCII letter: JSON escapes all three


def test_masks_every_occurrence_of_a_secret() -> None:
    masker = Masker(["hunter2-secret"])
    assert masker.mask("a hunter2-secret b hunter2-secret") == f"a {MASK} b {MASK}"


def test_masks_the_base64_login_pair_docker_configs_store() -> None:
    masker = Masker()
    masker.add_login("alice", "pa55word")
    encoded = base64.b64encode(b"alice:pa55word").decode()
    assert masker.mask(f'{{"auth": "{encoded}"}}') == f'{{"auth": "{MASK}"}}'


def test_masks_the_repr_escaped_form() -> None:
    masker = Masker(["quo'te\\x-long"])
    assert "quo" not in masker.mask(repr("quo'te\\x-long"))


@pytest.mark.parametrize(
    "rendered",
    [
        json.dumps(AWKWARD),
        json.dumps(AWKWARD, ensure_ascii=False),
        repr(AWKWARD),
        quote(AWKWARD, safe=""),
    ],
)
def test_masks_the_escaped_forms_of_an_awkward_password(rendered: str) -> None:
    masked = Masker([AWKWARD]).mask(f"error: {rendered}")
    assert "ss" not in masked
    assert MASK in masked


def test_empty_and_blank_values_are_not_secrets() -> None:
    masker = Masker(["", "   "])
    assert masker.mask("a   b") == "a   b"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("password: ab", f"password: {MASK}"),
        ('{"password": "ab"}', f'{{"password": "{MASK}"}}'),
        ("--password=ab", f"--password={MASK}"),
        ("--password ab", f"--password {MASK}"),
        ("FLUX_CI_REGISTRY_PASSWORD=ab", f"FLUX_CI_REGISTRY_PASSWORD={MASK}"),
        ("COSIGN_PASSWORD='ab'", f"COSIGN_PASSWORD='{MASK}'"),
        ("receiver token: ab (refused)", f"receiver token: {MASK} (refused)"),
        ("Authorization: Bearer ab", f"Authorization: Bearer {MASK}"),
        ("Authorization: Basic YWI=", f"Authorization: Basic {MASK}"),  # base64("ab")
        ("api_key=ab", f"api_key={MASK}"),
        ("x-registry-auth: ab", f"x-registry-auth: {MASK}"),
        ("PASSWORD = ab", f"PASSWORD = {MASK}"),
    ],
)
def test_a_short_secret_is_masked_where_it_is_the_value_of_a_secret(text: str, masked: str) -> None:
    assert Masker(["ab"]).mask(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "ab",
        "ab cd",
        "(ab)",
        '{"namespace": "ab", "name": "ab", "tags": ["ab", "latest"]}',
        "FLUX_CI_TAG=ab",
        "OCIRepository/ab/app reads latest",
        "deploy: namespace ab",
        "author: ab",  # `auth` inside a longer word names no secret
        "bypass ab",
        "password=abc",  # not the secret: a longer word that starts like it
        "password: AB",  # secrets are matched exactly, only the names around them in any case
        DIGEST,
        f"latest@{DIGEST}",
        "abc cab drab",
        "tags: abba",
        "oci://registry.example.com/ab/app",
        "main@sha1:" + "ab" * 20,
    ],
)
def test_a_short_secret_never_corrupts_names_tags_words_or_digests(text: str) -> None:
    assert Masker(["ab"]).mask(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "flux-ci deploy",
        "oci://registry.example.com/flux/manifests",
        "Kustomization/flux-system/apps",
        "influx fluxes",
        f"latest@{DIGEST}",
        "kind: OCIRepository, tag latest-1",
        "user flux, tag 'latest'",
    ],
)
def test_common_words_as_secrets_leave_names_intact(text: str) -> None:
    assert Masker(["flux", "latest"]).mask(text) == text


def test_common_words_as_secrets_are_still_masked_as_secret_values() -> None:
    masked = Masker(["flux", "latest"]).mask("password=flux token: 'latest'")
    assert masked == f"password={MASK} token: '{MASK}'"


def test_a_short_registry_password_equal_to_a_namespace_and_a_tag_leaves_the_report_intact() -> None:
    masker = Masker()
    masker.add_login("ci-user", "ab12")
    ref = ObjectRef("OCIRepository", "ab12", "app")
    report = Report(
        "deploy",
        artifact=Artifact("oci://registry.example.com/ab12/app", ("ab12", "latest"), DIGEST),
        sources=[SourceState(ref, "", "tag ab12", "10m", f"ab12@{DIGEST}", "True", "done", "", "")],
    )
    rendered = to_json(masker.mask_tree(report)) + to_table(masker.mask_tree(report))
    assert MASK not in rendered
    assert rendered == to_json(report) + to_table(report)
    # Where it is a secret, it is still masked: the docker config's pair (long) and `password=`.
    pair = base64.b64encode(b"ci-user:ab12").decode()
    assert masker.mask(f'{{"auth": "{pair}"}} password=ab12') == f'{{"auth": "{MASK}"}} password={MASK}'


def test_a_mapping_key_that_names_a_secret_masks_a_short_secret_as_its_whole_value() -> None:
    masked = Masker(["ab"]).mask_tree({"password": "ab", "registryToken": " ab ", "namespace": "ab"})
    assert masked == {"password": MASK, "registryToken": MASK, "namespace": "ab"}


def test_a_long_hex_secret_is_masked_alone_but_never_inside_a_digest() -> None:
    secret = "ab12ab12ab12ab12"
    masker = Masker([secret])
    assert masker.mask(f"token {secret}") == f"token {MASK}"
    assert masker.mask(f"pushed {DIGEST}") == f"pushed {DIGEST}"


def test_longer_secret_containing_a_shorter_one_is_masked_whole() -> None:
    masker = Masker(["abcd", "abcdefgh"])
    assert masker.mask("xabcdefghx") == f"x{MASK}x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:tok3n@gitlab.example.com/g/app", f"https://{MASK}@gitlab.example.com/g/app"),
        ("oci://u:p@ss@registry.example.com/app", f"oci://{MASK}@registry.example.com/app"),
        ("proxy http://ghp_longtoken@proxy:3128 failed", f"proxy http://{MASK}@proxy:3128 failed"),
        (f"oci://registry.example.com/app@{DIGEST}", f"oci://registry.example.com/app@{DIGEST}"),
    ],
)
def test_userinfo_in_any_url_is_masked(text: str, expected: str) -> None:
    assert Masker().mask(text) == expected


def test_redact_url() -> None:
    assert redact_url("oci://user:pw@registry.example.com/app") == f"oci://{MASK}@registry.example.com/app"
    assert redact_url("user:pw@registry.example.com/app") == f"{MASK}@registry.example.com/app"
    assert redact_url("oci://registry.example.com/app@sha256:1") == "oci://registry.example.com/app@sha256:1"
    assert without_userinfo("https://tok@gitlab.example.com/g") == "https://gitlab.example.com/g"
    assert has_userinfo("registry.example.com:5000/app") is False


class _Pair(NamedTuple):
    name: str
    times: int


def test_mask_tree_masks_strings_only_and_keeps_shapes() -> None:
    masker = Masker(["s3cret-value"])
    tree = {
        "message": "bad s3cret-value",
        "nested": [("s3cret-value", 3), {"ok": True, "none": None, "n": 1.5}],
        "pair": _Pair("s3cret-value", 2),
        "status": Status.FAILED,
    }
    masked = masker.mask_tree(tree)
    assert masked == {
        "message": f"bad {MASK}",
        "nested": [(MASK, 3), {"ok": True, "none": None, "n": 1.5}],
        "pair": _Pair(MASK, 2),
        "status": Status.FAILED,
    }
    assert isinstance(masked["pair"], _Pair)
    assert masked["status"] is Status.FAILED
    assert tree["message"] == "bad s3cret-value"  # a copy: the original is untouched


def _report_holding(secret: str) -> Report:
    ref = ObjectRef("OCIRepository", "flux-system", "app")
    return Report(
        command="deploy",
        status=Status.FAILED,
        exit_code=4,
        artifact=Artifact(
            "oci://registry.example.com/app", ("c1", "latest"), DIGEST, f"src {secret}", "main"
        ),
        sources=[SourceState(ref, "oci://registry.example.com/app", f"latest@{DIGEST}", "False", secret)],
        checks=[Check("registry login", ok=False, detail=f"refused {secret}")],
        error=ErrorInfo("registry", f"oras login: wrong password {secret}"),
    )


def test_mask_report_masks_every_string_field_before_rendering() -> None:
    report = _report_holding(AWKWARD)
    masked = Masker([AWKWARD]).mask_tree(report)
    for rendered in (to_json(masked), to_table(masked)):
        for form in (
            AWKWARD,
            json.dumps(AWKWARD)[1:-1],
            json.dumps(AWKWARD, ensure_ascii=False)[1:-1],
            "ss\\",
        ):
            assert form not in rendered
    data = json.loads(to_json(masked))
    assert data["error"]["message"] == f"oras login: wrong password {MASK}"
    assert data["artifact"]["digest"] == DIGEST
    assert data["sources"][0]["revision"] == f"latest@{DIGEST}"
    assert data["status"] == "failed"
    assert report.error is not None
    assert AWKWARD in report.error.message  # the original report is not changed


@pytest.mark.parametrize(
    "name",
    [
        "FLUX_CI_REGISTRY_PASSWORD",
        "CI_JOB_TOKEN",
        "CI_REGISTRY_PASSWORD",
        "CI_DEPLOY_PASSWORD",
        "CI_DEPENDENCY_PROXY_PASSWORD",
        "CI_JOB_JWT",
        "CI_JOB_JWT_V2",
        "GITHUB_TOKEN",
        "ACTIONS_RUNTIME_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "FLUX_CI_RECEIVER_TOKEN",
        "COSIGN_PASSWORD",
        "COSIGN_PRIVATE_KEY",
        "flux_ci_registry_password",
    ],
)
def test_secret_variables(name: str) -> None:
    assert is_secret_variable(name)
    assert secret_values({name: "value-of-the-secret"}) == ["value-of-the-secret"]


@pytest.mark.parametrize("name", ["CI_REGISTRY_USER", "ACTIONS_CACHE_URL", "CI_COMMIT_SHA", "PATH"])
def test_ordinary_variables_are_not_secret(name: str) -> None:
    assert not is_secret_variable(name)
    assert secret_values({name: "plain-value"}) == []


def test_passwords_inside_urls_are_secret_values() -> None:
    env = {
        "HTTPS_PROXY": "http://me:prox%40pw@proxy.example.com:3128",
        "FLUX_CI_REPOSITORY": "robot:reg1stry-pw@registry.example.com/app",
        "CI_REPOSITORY_URL": "https://gitlab-ci-token:job-token-123@gitlab.example.com/g/app.git",
        "NOTES": "see ssh://git@example.com/repo",  # a user name, not a credential
    }
    values = secret_values(env)
    assert set(values) == {"prox%40pw", "prox@pw", "reg1stry-pw", "job-token-123"}
    assert url_credentials("https://ghp_0123456789abcdef@github.com/o/r") == ["ghp_0123456789abcdef"]


def test_child_environment_is_an_allowlist_without_secrets() -> None:
    env = {
        "PATH": "/usr/bin",
        "HOME": "/home/ci",
        "LC_ALL": "C.UTF-8",
        "https_proxy": "http://proxy:3128",
        "NO_PROXY": "localhost",
        "KUBECONFIG": "/tmp/kubeconfig",
        "DOCKER_CONFIG": "/home/ci/.docker",
        "AWS_REGION": "eu-west-1",
        "GOOGLE_APPLICATION_CREDENTIALS": "/tmp/gcp.json",
        "CI_JOB_TOKEN": "job-token-123456",
        "CI_REGISTRY_PASSWORD": "job-token-123456",
        "GITHUB_TOKEN": "ghs_abcdefghijkl",
        "FLUX_CI_REGISTRY_PASSWORD": "registry-pw-123",
        "ACTIONS_RUNTIME_TOKEN": "runtime-token-xyz",
        "CI_PROJECT_URL": "https://gitlab.example.com/g/app",
        "SOME_NEW_CI_SECRET": "tomorrows-token",
        "HTTP_PROXY": "http://gitlab-ci-token:job-token-123456@proxy:3128",  # allowlisted, carries a token
    }
    child = child_environment(env)
    assert child == {
        "PATH": "/usr/bin",
        "HOME": "/home/ci",
        "LC_ALL": "C.UTF-8",
        "https_proxy": "http://proxy:3128",
        "NO_PROXY": "localhost",
        "KUBECONFIG": "/tmp/kubeconfig",
        "DOCKER_CONFIG": "/home/ci/.docker",
        "AWS_REGION": "eu-west-1",
        "GOOGLE_APPLICATION_CREDENTIALS": "/tmp/gcp.json",
    }


def test_a_short_job_secret_does_not_evict_ordinary_variables() -> None:
    child = child_environment({"PATH": "/usr/local/bin:/usr/bin", "CI_JOB_TOKEN": "bin"})
    assert child == {"PATH": "/usr/local/bin:/usr/bin"}


# --- each masking rule pinned (make mutation) ------------------------------------------------------


def test_every_escaped_form_is_masked_whole() -> None:
    secret = 'pa"ss/wörd\\1'  # a quote, a slash, a non-ASCII letter, a backslash: every escaper differs
    masker = Masker([secret])
    assert masker.mask(json.dumps(secret)) == '"****"'
    assert masker.mask(json.dumps(secret, ensure_ascii=False)) == '"****"'
    assert masker.mask(repr(secret)) == "'****'"
    assert masker.mask(quote(secret, safe="")) == "****"
    assert masker.mask(base64.b64encode(secret.encode()).decode()) == "****"


def test_the_longest_secret_is_masked_first_whatever_their_order() -> None:
    masker = Masker(["s3cret-token", "s3cret-token-longer"])
    assert masker.mask("a s3cret-token-longer b") == "a **** b"


def test_a_login_registers_the_password_itself_and_reveal_registers_what_it_gives() -> None:
    masker = Masker()
    masker.add_login("ci", "hunter2-secret")
    assert masker.mask("pw hunter2-secret") == "pw ****"

    class Given:
        def get_secret_value(self) -> str:
            return "revealed-value-1"

    assert masker.reveal(Given()) == "revealed-value-1"
    assert masker.mask("x revealed-value-1") == "x ****"


def test_secret_variable_names_are_compared_upper_cased() -> None:
    assert is_secret_variable("aws_secret_access_key")
    assert is_secret_variable("ci_job_token")


def test_userinfo_ends_at_the_authoritys_last_at_and_every_url_counts() -> None:
    assert split_userinfo("https://u:p@ss@host.example/x@y") == ("https://", "u:p@ss", "host.example/x@y")
    found = url_credentials("a https://u:first-secret@h1 b https://v:second-secret@h2")
    assert found == ["first-secret", "second-secret"]
    assert url_credentials("https://abcdefgh@host") == ["abcdefgh"]  # 8 characters: a token
    assert url_credentials("https://abcdefg@host") == []  # 7: a user name such as `git`


def test_a_job_secret_of_exactly_eight_characters_is_looked_for_inside_values() -> None:
    env = {"CI_JOB_TOKEN": "abcdefgh", "PATH": "/opt/abcdefgh/bin", "HOME": "/home/ci"}
    assert child_environment(env) == {"HOME": "/home/ci"}
