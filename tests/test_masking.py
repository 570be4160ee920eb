from __future__ import annotations

import base64

from flux_ci.masking import MASK, Masker


def test_masks_every_occurrence_of_a_secret() -> None:
    masker = Masker(["hunter2-secret"])
    assert masker.mask("a hunter2-secret b hunter2-secret") == f"a {MASK} b {MASK}"


def test_masks_the_base64_login_pair_docker_configs_store() -> None:
    masker = Masker()
    masker.add_login("alice", "pa55word")
    encoded = base64.b64encode(b"alice:pa55word").decode()
    assert masker.mask(f'{{"auth": "{encoded}"}}') == f'{{"auth": "{MASK}"}}'


def test_masks_the_repr_escaped_form() -> None:
    masker = Masker(["quo'te\\x"])
    assert "quo" not in masker.mask(repr("quo'te\\x"))


def test_ignores_empty_and_tiny_values_that_would_mask_ordinary_words() -> None:
    masker = Masker(["", "ab"])
    assert masker.mask("ab cd") == "ab cd"


def test_longer_secret_containing_a_shorter_one_is_masked_whole() -> None:
    masker = Masker(["abcd", "abcdefgh"])
    assert masker.mask("xabcdefghx") == f"x{MASK}x"
