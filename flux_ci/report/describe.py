"""A diagnostic as lines for people: the table and the progress lines share them."""

from __future__ import annotations

from flux_ci.report.models import Diagnostic


def describe(diagnostic: Diagnostic) -> list[str]:
    """The diagnostic as lines for people (the table, progress); the renderers share it."""
    lines = [
        f"{diagnostic.consumer}: {diagnostic.message}" if diagnostic.message else str(diagnostic.consumer)
    ]
    lines += [f"  event: {event}" for event in diagnostic.events]
    for failing in diagnostic.objects:
        lines.append(f"  {failing.ref}: {failing.status or 'has Warning events'}")
        lines += [f"    event: {event}" for event in failing.events]
    lines.append(f"  next: {diagnostic.retry}")
    lines += [f"  run: {command}" for command in diagnostic.commands]
    return lines
