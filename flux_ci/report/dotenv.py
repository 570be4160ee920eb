"""The GitLab dotenv report: the facts later jobs read, by name, one `KEY=value` a line; shortened the
same way every time when it would exceed GitLab's limit, never lost."""

from __future__ import annotations

import re

from flux_ci.report.models import ClusterStatus, Report, WaveStatus

_DOTENV_UNSAFE = re.compile(r"[\s'\"\\#]")
DOTENV_LIMIT = 5 * 1024  # bytes: the file must be smaller
TRUNCATED_KEY = "FLUX_CI_DOTENV_TRUNCATED"
# Always kept whole: what a later job branches on first.
_ESSENTIAL = ("FLUX_CI_STATUS", "FLUX_CI_EXIT_CODE", "FLUX_CI_RETRYABLE")
# The values that grow with the run (50 clusters named `group/project:agent` are over 5 KB), cut at
# a whole item when the file would not fit; kept in this order: the failed clusters matter most.
_LISTS = ("FLUX_CI_CLUSTERS_FAILED", "FLUX_CI_CLUSTERS_SUCCEEDED", "FLUX_CI_CLUSTERS")


def to_dotenv(report: Report) -> str:
    """FLUX_CI_* variables for later jobs; values that GitLab cannot carry are left out, and a file
    that would not fit GitLab's size limit is shortened (`shortened`), never lost.

    The digest and tag keep the input variables' names, so a later `flux-ci wait` or `promote`
    job reads them as they are; everything else is named for what it reports.
    """
    values = {key: value for key, value in report_values(report).items() if value}
    values = {key: value for key, value in values.items() if not _DOTENV_UNSAFE.search(value)}
    text = _dotenv_text(values)
    return text if _fits(text) else _dotenv_text(shortened(values))


def shortened(values: dict[str, str]) -> dict[str, str]:
    """The dotenv values cut to fit GitLab's limit, deterministically (the JSON report keeps all):

    - FLUX_CI_STATUS, FLUX_CI_EXIT_CODE and FLUX_CI_RETRYABLE are always kept whole;
    - every other single value (digest, tag, URL, revision, ...) is kept whole if it fits in what
      is left, in the report's order, else left out;
    - then the cluster lists, failed first, then succeeded, then all: each keeps the longest run of
      whole items from its start (in the report's order) that fits, and is left out if none does;
    - FLUX_CI_DOTENV_TRUNCATED=<keys> names every key cut or left out, so no later job mistakes a
      shortened list for the whole.
    """
    # Room for the marker is kept first as if every key but the essential ones were cut (that always
    # fits), then only for the keys that were: that second pass fills the room the first one left,
    # and is taken unless it cut a key more (whose name would then not fit).
    first = _kept(values, [key for key in values if key not in _ESSENTIAL])
    second = _kept(values, list(_cut(first)))
    return second if _fits(_dotenv_text(second)) else first


def _cut(values: dict[str, str]) -> list[str]:
    return values.get(TRUNCATED_KEY, "").split(",") if TRUNCATED_KEY in values else []


def _kept(values: dict[str, str], marked: list[str]) -> dict[str, str]:
    """What fits beside a marker naming `marked`, in the report's order, and the marker naming what
    does not fit whole."""
    kept = {key: values[key] for key in _ESSENTIAL if key in values}
    room = DOTENV_LIMIT - 1 - len(_dotenv_text({**kept, TRUNCATED_KEY: ",".join(marked)}).encode())
    singles = [key for key in values if key not in _ESSENTIAL and key not in _LISTS]
    cut: list[str] = []
    for key in [*singles, *(key for key in _LISTS if key in values)]:
        value = values[key] if key in singles else _whole_items(values[key], room - len(key) - 2)
        size = len(key) + len(value.encode()) + 2  # `=` and the newline
        if value and size <= room:
            kept[key], room = value, room - size
        if kept.get(key) != values[key]:
            cut.append(key)
    ordered = {key: kept[key] for key in values if key in kept}
    return {**ordered, TRUNCATED_KEY: ",".join(key for key in values if key in cut)} if cut else ordered


def _whole_items(value: str, room: int) -> str:
    """The longest start of a comma list that fits in `room` bytes, cut between items."""
    taken: list[str] = []
    for item in value.split(","):
        if len(",".join([*taken, item]).encode()) > room:
            break
        taken.append(item)
    return ",".join(taken)


def _dotenv_text(values: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


def _fits(text: str) -> bool:
    return len(text.encode()) < DOTENV_LIMIT


def report_values(report: Report) -> dict[str, str]:
    """The facts later jobs read, by their dotenv names (GitHub outputs rename some of them)."""
    artifact = report.artifact
    error = report.error
    return {
        "FLUX_CI_STATUS": str(report.status),
        "FLUX_CI_EXIT_CODE": str(report.exit_code),
        "FLUX_CI_RETRYABLE": "true" if error and error.retryable else "false",
        "FLUX_CI_DIGEST": artifact.digest if artifact else "",
        "FLUX_CI_URL": artifact.url if artifact and artifact.digest else "",
        "FLUX_CI_TAG": report.immutable_tag(),
        "FLUX_CI_REVISION": artifact.revision if artifact else "",
        "FLUX_CI_SOURCE_REVISION": report.sources[0].revision if report.sources else "",
        "FLUX_CI_SUPERSEDED_BY": error.superseded_by if error else "",
        "FLUX_CI_CHANGED": "" if report.changed is None else str(report.changed).lower(),
        "FLUX_CI_PREVIOUS_DIGEST": report.tag_moves[0].before if report.tag_moves else "",
        "FLUX_CI_ROLLBACK_STATUS": str(report.rollback.status) if report.rollback else "",
        "FLUX_CI_CLUSTERS": ",".join(c.context for c in report.clusters),
        "FLUX_CI_CLUSTERS_SUCCEEDED": report.clusters_with(ClusterStatus.SUCCEEDED),
        "FLUX_CI_CLUSTERS_FAILED": report.clusters_with(ClusterStatus.FAILED, ClusterStatus.SUPERSEDED),
        "FLUX_CI_WAVES_SUCCEEDED": report.waves_with(WaveStatus.SUCCEEDED),
        "FLUX_CI_WAVE_FAILED": report.waves_with(WaveStatus.FAILED),
    }
