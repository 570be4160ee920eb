"""Figures with their targets: how each is printed and written to the JSON results."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p95 of 10 values is the 10th): no interpolation flatters it."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return ordered[rank - 1]


@dataclass(frozen=True)
class Figure:
    """One measured value; `limit` is its target (`value <= limit`), None when it has none."""

    name: str
    value: float
    unit: str
    limit: float | None = None
    target: str = ""  # how the target reads, e.g. "<= 0.6 x W2 median"
    samples: int = 0

    @property
    def holds(self) -> bool | None:
        if self.limit is None or math.isnan(self.value):
            return None
        return self.value <= self.limit

    def line(self) -> str:
        value = "n/a" if math.isnan(self.value) else f"{self.value:.3f} {self.unit}".rstrip()
        samples = f" (n={self.samples})" if self.samples else ""
        if self.limit is None:
            return f"  {self.name:<52} {value}{samples}"
        verdict = {True: "HOLDS", False: "MISSED", None: "n/a"}[self.holds]
        target = self.target or f"<= {self.limit:g} {self.unit}"
        return f"  {self.name:<52} {value}{samples}   target {target}: {verdict}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": None if math.isnan(self.value) else self.value,
            "unit": self.unit,
            "target": self.target or (None if self.limit is None else f"<= {self.limit:g} {self.unit}"),
            "limit": self.limit,
            "holds": self.holds,
            "samples": self.samples,
        }


@dataclass
class Section:
    """A titled group of figures, with free-form notes (how a figure was measured, failures)."""

    title: str
    figures: list[Figure]
    notes: list[str]

    def print(self) -> None:
        print(f"\n== {self.title}")
        for figure in self.figures:
            print(figure.line())
        for note in self.notes:
            print(f"  note: {note}")

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "figures": [f.to_json() for f in self.figures], "notes": self.notes}
