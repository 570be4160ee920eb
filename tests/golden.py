"""Golden files: output captured from the real flux, oras and kubectl (see tests/data/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"


def text(name: str) -> str:
    return (DATA / name).read_text()


def obj(name: str) -> dict[str, Any]:
    data = json.loads(text(name))
    assert isinstance(data, dict)
    return data
