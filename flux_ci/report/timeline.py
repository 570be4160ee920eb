"""The `history` entries for people: one block per consumer, newest first, each entry with the tags
pointing at its digest now and who pushed it (the table; Markdown has the same columns). The
pipeline URL is never cut: a cut link is useless, and JSON has every field whole."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from itertools import groupby

from flux_ci.report.models import HistoryEntry, ObjectRef

HEADERS = ("#", "APPLIED", "STATUS", "DIGEST", "TAGS", "BY", "PIPELINE")
ROLL_BACK = (
    "to run an entry again: flux-ci promote with FLUX_CI_DIGEST=<its digest> (whole in -o json) or\n"
    "FLUX_CI_TAG=<its own tag>, and FLUX_CI_EXTRA_TAGS=<the tag its source follows>"
)
_DIGEST = re.compile(r"(sha256:[0-9a-f]{12})[0-9a-f]{52}")
# kustomize-controller's outcome reasons, in words; anything else (Helm's deployed, superseded, failed)
# is shown as it is.
_OUTCOMES = {
    "ReconciliationSucceeded": "succeeded",
    "ReconciliationFailed": "failed",
    "HealthCheckFailed": "health check failed",
    "PruneFailed": "prune failed",
}


def history_tables(entries: Sequence[HistoryEntry], *, several: bool) -> list[str]:
    """A titled table per consumer, then how to run an entry again."""
    from tabulate import tabulate  # noqa: PLC0415 - the table's alone

    blocks = [
        f"{title}\n{tabulate(rows, headers=HEADERS, tablefmt='simple')}"
        for title, rows in by_consumer(entries, several=several, cells=cells)
    ]
    return [*blocks, ROLL_BACK]


def by_consumer(
    entries: Sequence[HistoryEntry], *, several: bool, cells: Callable[[int, HistoryEntry], tuple[str, ...]]
) -> Iterator[tuple[str, list[tuple[str, ...]]]]:
    """(title, rows) for each consumer, in the entries' order (each consumer's newest first)."""
    for (cluster, consumer), group in groupby(entries, key=_owner):
        title = f"{cluster}: {consumer}" if several else str(consumer)
        yield title, [cells(number, entry) for number, entry in enumerate(group, start=1)]


def cells(number: int, e: HistoryEntry) -> tuple[str, ...]:
    return (
        str(number),
        e.last_applied,
        outcome(e),
        _DIGEST.sub(r"\1…", e.digest) or e.revision or "-",
        tags_text(e),
        e.pushed_by.user or "-",
        e.pushed_by.pipeline_url or "-",
    )


def outcome(e: HistoryEntry) -> str:
    words = _OUTCOMES.get(e.status, e.status)
    if e.reconciliations > 1:
        words += f", {e.reconciliations} times"
    return f"{words}, {e.chart}" if e.chart else words


def tags_text(e: HistoryEntry) -> str:
    if e.in_registry is False:
        return "(gone from the registry)"
    return ", ".join(e.tags) or "-"


def _owner(entry: HistoryEntry) -> tuple[str, ObjectRef]:
    return entry.cluster, entry.consumer
