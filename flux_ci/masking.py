"""Keeps secret values out of everything flux-ci prints: traces, errors, reports.

A secret is registered once (when the settings are loaded); every text that leaves the process passes
through `Masker.mask` first.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

MASK = "****"
# Very short values would mask ordinary words ("a", "ci"); registries reject such passwords anyway.
_MIN_SECRET_LENGTH = 4


class Masker:
    """Replaces every registered secret (and the forms it leaks in) with `****`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < _MIN_SECRET_LENGTH:
            return
        self._secrets.add(secret)
        # repr() escapes, and docker config.json stores base64("user:password"): mask those too.
        self._secrets.add(repr(secret)[1:-1])
        self._secrets.add(base64.b64encode(secret.encode()).decode())

    def add_login(self, user: str, password: str) -> None:
        """Register the `user:password` pair in the base64 form docker config files use."""
        self.add(password)
        self.add(base64.b64encode(f"{user}:{password}".encode()).decode())

    def mask(self, text: str) -> str:
        # Longest first, so a secret that contains another is replaced whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text
