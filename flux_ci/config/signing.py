"""FLUX_CI_SIGN's configuration, checked before anything runs: the key pair's private key is there,
either as PEM or as the path of a readable file (GitLab's file variables give paths)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flux_ci.config.settings import Settings

KEY_VARIABLE = "COSIGN_PRIVATE_KEY"
PASSWORD_VARIABLE = "COSIGN_PASSWORD"  # noqa: S105 - a name, not a password
PEM_START = "-----BEGIN"


def key_problem(settings: Settings) -> str | None:
    """Why FLUX_CI_SIGN=cosign cannot sign (None: it can). The key's value is never repeated."""
    if settings.sign != "cosign":
        return None
    key = settings.cosign_private_key
    if key is None:
        return (
            f"{KEY_VARIABLE} is not set: FLUX_CI_SIGN=cosign signs with it (the PEM private key "
            "`cosign generate-key-pair` writes, or the path of a file holding it; its password in "
            f"{PASSWORD_VARIABLE})"
        )
    value = key.get_secret_value()  # looked at, never passed on: the masker gets it when it is used
    if value.lstrip().startswith(PEM_START):
        return None
    path = Path(value.strip())
    if "\n" in value.strip() or not path.is_file():
        return f"{KEY_VARIABLE} is neither a PEM private key (-----BEGIN ...) nor the path of a file"
    if not os.access(path, os.R_OK):
        return f"{KEY_VARIABLE} names a file that cannot be read"
    return None
