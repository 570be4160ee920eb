"""The `cosign` CLI: argv without secrets, and cosign's own words when it cannot open a key, read from
golden files of the real cosign 2.6.5 (tests/data/README.md says how each was captured)."""

from __future__ import annotations

import pytest

from flux_ci.tools import cosign
from tests.golden import text

WRONG_PASSWORD = text("cosign/public-key-wrong-password.stderr")
NOT_PEM = text("cosign/public-key-invalid-pem.stderr")
PUBLIC_KEY_GIVEN = text("cosign/public-key-unsupported-pem.stderr")


def test_the_key_is_read_from_the_environment_never_from_argv() -> None:
    assert cosign.public_key_argv() == ["cosign", "public-key", "--key=env://COSIGN_PRIVATE_KEY"]


def test_a_wrong_password_is_told_apart_from_every_other_failure() -> None:
    assert cosign.wrong_password(WRONG_PASSWORD)
    assert not cosign.wrong_password(NOT_PEM)
    assert not cosign.wrong_password(PUBLIC_KEY_GIVEN)
    assert not cosign.wrong_password("")


@pytest.mark.parametrize(
    ("stderr", "said"),
    [
        (WRONG_PASSWORD, "COSIGN_PASSWORD does not open it (cosign: decryption failed)"),
        (NOT_PEM, "it is not a PEM block (cosign: invalid pem block)"),
        (
            PUBLIC_KEY_GIVEN,
            "it holds a PUBLIC KEY PEM block, not cosign's encrypted private key: that is the public key "
            "(cosign.pub), not the private one (cosign.key)",
        ),
        ("Error: something else entirely\n", None),
    ],
)
def test_why_a_key_does_not_open_is_said_in_words_that_say_what_to_fix(stderr: str, said: str | None) -> None:
    assert cosign.unopened_key(stderr) == said


def test_the_golden_public_key_is_what_an_opened_key_prints() -> None:
    stdout = text("cosign/public-key.stdout")
    assert stdout.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert stdout.endswith("-----END PUBLIC KEY-----\n")
