"""Renders a `Report` exactly once: a table for people, one JSON document, or a GitLab dotenv file.

The report arrives masked (secrets are replaced in its values before rendering, never in the
rendered text, where escaping would let them slip through).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from typing import Any

from flux_ci.report.models import (
    SCHEMA_VERSION,
    Change,
    ClusterOutcome,
    ClusterStatus,
    ConsumerState,
    Diagnostic,
    Report,
    Rollback,
    SourceState,
    Status,
    Step,
    WaveOutcome,
    WaveStatus,
)

# GitLab dotenv: no quotes, spaces or newlines in values, and the file is at most 5 KB.
_DOTENV_UNSAFE = re.compile(r"[\s'\"\\#]")
DOTENV_LIMIT = 5 * 1024
# A CI log is about 120 columns wide: the table shortens digests and messages (JSON has them whole).
TABLE_WIDTH = 120
_DIGEST = re.compile(r"(sha256:[0-9a-f]{12})[0-9a-f]{52}")


def to_json(report: Report) -> str:
    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "command": report.command,
        "status": str(report.status),
        "exit_code": report.exit_code,
        "artifact": report.artifact.fields() if report.artifact else None,
        "sources": [_source(s) for s in report.sources],
        "consumers": [_consumer(c) for c in report.consumers],
        "clusters": [_cluster(c) for c in report.clusters],
        "tag_moves": [asdict(move) for move in report.tag_moves],
        "rollback": _rollback(report.rollback),
        "waves": [_wave(w) for w in report.waves],
        "scope": list(report.scope),
        "notes": list(report.notes),
        "steps": [_step(s) for s in report.steps],
        "error": asdict(report.error) if report.error else None,
        "diagnostics": [_diagnostic(d) for d in report.diagnostics],
    }
    if report.checks:
        data["checks"] = [asdict(check) for check in report.checks]
    if report.changed is not None:  # diff
        data["changed"] = report.changed
        data["changes"] = [_change(c) for c in report.changes]
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _cluster(c: ClusterOutcome) -> dict[str, Any]:
    return {
        "context": c.context,
        "status": str(c.status),
        "exit_code": c.exit_code,
        "error": asdict(c.error) if c.error else None,
    }


def _wave(w: WaveOutcome) -> dict[str, Any]:
    return {
        "tag": w.tag,
        "clusters": list(w.clusters),
        "status": str(w.status),
        "started_at": w.started_at,
        "seconds": w.seconds,
        "soak_s": w.soak_s,
    }


def _rollback(r: Rollback | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {
        "status": str(r.status),
        "from": r.from_digest,
        "to": r.to_digest,
        "tags": list(r.tags),
        "message": r.message,
        "duration_s": r.duration_s,
    }


def _step(s: Step) -> dict[str, Any]:
    return _in_cluster({"name": s.name, "status": str(s.status), "duration_s": s.duration_s}, s.cluster)


def _in_cluster(row: dict[str, Any], cluster: str) -> dict[str, Any]:
    """Rows of a run over several clusters name theirs first."""
    return {"cluster": cluster, **row} if cluster else row


def _source(s: SourceState) -> dict[str, Any]:
    return _in_cluster(_source_fields(s), s.cluster)


def _source_fields(s: SourceState) -> dict[str, Any]:
    return {
        "kind": s.ref.kind,
        "namespace": s.ref.namespace,
        "name": s.ref.name,
        "url": s.url,
        "follows": s.follows,
        "interval": s.interval,
        "revision": s.revision,
        "ready": s.ready,
        "state": s.state,
        "message": s.message,
        "updated": s.updated,
    }


def _consumer(c: ConsumerState) -> dict[str, Any]:
    return _in_cluster(_consumer_fields(c), c.cluster)


def _consumer_fields(c: ConsumerState) -> dict[str, Any]:
    return {
        "kind": c.ref.kind,
        "namespace": c.ref.namespace,
        "name": c.ref.name,
        "revision": c.revision,
        "ready": c.ready,
        "state": c.state,
        "message": c.message,
        "updated": c.updated,
    }


def _change(c: Change) -> dict[str, Any]:
    row = {"kustomization": str(c.kustomization), "object": c.object, "change": str(c.change), "diff": c.diff}
    return _in_cluster(row, c.cluster)


def _diagnostic(d: Diagnostic) -> dict[str, Any]:
    return _in_cluster(_diagnostic_fields(d), d.cluster)


def _diagnostic_fields(d: Diagnostic) -> dict[str, Any]:
    return {
        "kind": d.consumer.kind,
        "namespace": d.consumer.namespace,
        "name": d.consumer.name,
        "message": d.message,
        "retry": d.retry,
        "commands": list(d.commands),
        "events": list(d.events),
        "objects": [
            {
                "kind": o.ref.kind,
                "namespace": o.ref.namespace,
                "name": o.ref.name,
                "status": o.status,
                "events": list(o.events),
            }
            for o in d.objects
        ],
    }


def to_table(report: Report) -> str:
    from tabulate import tabulate  # noqa: PLC0415 - the table's alone: JSON, dotenv and Markdown never load it

    blocks = []
    if report.artifact:
        a = report.artifact
        rows = [("artifact", a.url), ("tags", ", ".join(a.tags)), ("revision", a.revision)]
        rows += [("moved", _moved(move.tag, move.before, move.after)) for move in report.tag_moves]
        blocks.append(tabulate(rows, tablefmt="plain"))
    states: list[SourceState | ConsumerState] = [*report.sources, *report.consumers]
    several = bool(report.clusters)
    objects = [_row(state, cluster=several) for state in states]
    if objects:
        headers: tuple[str, ...] = ("KIND", "NAMESPACE/NAME", "REVISION", "READY", "STATE", "MESSAGE")
        headers = ("CLUSTER", *headers) if several else headers
        blocks.append(_fit(tabulate(objects, headers=headers, tablefmt="simple")))
    blocks += _outcomes(report)
    if report.checks:
        checks = [("ok" if c.ok else "FAIL", c.name, _short(c.detail, 80)) for c in report.checks]
        blocks.append(tabulate(checks, headers=("", "CHECK", "DETAIL"), tablefmt="simple"))
    if report.changed is not None:  # diff
        changes: list[tuple[str, ...]] = [
            (str(c.kustomization), c.object, str(c.change)) for c in report.changes
        ]
        change_headers: tuple[str, ...] = ("KUSTOMIZATION", "OBJECT", "CHANGE")
        if several:
            changes = [(c.cluster, *row) for c, row in zip(report.changes, changes, strict=True)]
            change_headers = ("CLUSTER", *change_headers)
        if changes:
            blocks.append(_fit(tabulate(changes, headers=change_headers, tablefmt="simple")))
        blocks.append(
            "changed: " + ("yes" if report.changed else "no, applying the manifests changes nothing")
        )
    if report.diagnostics:
        from flux_ci.report.describe import describe  # noqa: PLC0415 - failures only

        lines = [line for d in report.diagnostics for line in describe(d)]
        blocks.append("diagnostics:\n" + "\n".join(_indented(line) for line in lines))
    lines = (
        [f"rollback: {_short(_rollback_line(report.rollback), TABLE_WIDTH - 10)}"] if report.rollback else []
    )
    lines += [f"scope: {_short(item, TABLE_WIDTH - 7)}" for item in report.scope]
    lines += [f"note: {_short(item, TABLE_WIDTH - 6)}" for item in report.notes]
    if lines:
        blocks.append("\n".join(lines))
    verdict = f"{report.command}: {report.status}"
    if report.status is Status.TRIGGERED:  # exit 0, yet not a success: say so where people look
        verdict += " (the Receiver accepted the request; nothing in the cluster was verified)"
    if report.error:  # the message itself goes to stderr, with the other words for people
        verdict += f" (exit {report.exit_code}, {report.error.code})"
        if report.error.superseded_by:
            verdict += f", superseded by {report.error.superseded_by}"
    blocks.append(verdict)
    return "\n\n".join(blocks) + "\n"


def _row(state: SourceState | ConsumerState, *, cluster: bool) -> tuple[str, ...]:
    ref = state.ref
    revision = _DIGEST.sub(r"\1…", state.revision)
    row = (ref.kind, f"{ref.namespace}/{ref.name}", revision, state.ready, state.state or "-", state.message)
    return (state.cluster, *row) if cluster else row


def _moved(tag: str, before: str, after: str) -> str:
    return f"{tag}: {_short_digest(before) or '(none)'} -> {_short_digest(after)}"


def _short_digest(text: str) -> str:
    return _DIGEST.sub(r"\1…", text)


def _outcomes(report: Report) -> list[str]:
    """One line per cluster of several, then one line per wave."""
    blocks = []
    if report.clusters:
        blocks.append("\n".join(_cluster_line(c) for c in report.clusters))
    if report.waves:
        blocks.append("\n".join(_short(wave_line(w), TABLE_WIDTH) for w in report.waves))
    return blocks


def _cluster_line(c: ClusterOutcome) -> str:
    line = f"cluster {c.context}: {c.status}"
    if c.error is not None:
        line += f" (exit {c.exit_code}, {c.error.code})"
    return _short(line, TABLE_WIDTH)


def wave_line(w: WaveOutcome) -> str:
    """One wave as people read it: `wave canary (staging): succeeded in 1.2s, soaked 30.0s`."""
    line = f"wave {w.tag} ({', '.join(w.clusters)}): {w.status}"
    if w.started_at:
        line += f" in {w.seconds:.1f}s"
    if w.soak_s:
        line += f", soaked {w.soak_s:.1f}s"
    return line


def _rollback_line(r: Rollback) -> str:
    moved = f" ({', '.join(r.tags)} -> {_short_digest(r.to_digest)})" if r.tags else ""
    return f"{r.status}{moved} in {r.duration_s:.1f}s: {r.message}"


def _fit(table: str) -> str:
    """Cut the last column (the message) so no line is wider than a CI log."""
    return "\n".join(_short(line, TABLE_WIDTH) for line in table.splitlines())


def to_dotenv(report: Report) -> str:
    """FLUX_CI_* variables for later jobs; values that GitLab cannot carry are left out.

    The digest and tag keep the input variables' names, so a later `flux-ci wait` or `promote`
    job reads them as they are; everything else is named for what it reports.
    """
    values = report_values(report)
    lines = [f"{key}={value}" for key, value in values.items() if value and not _DOTENV_UNSAFE.search(value)]
    text = "\n".join(lines) + "\n"
    if len(text.encode()) > DOTENV_LIMIT:  # cannot happen with these keys; guard the invariant anyway
        msg = "dotenv report exceeds GitLab's 5 KB limit"
        raise ValueError(msg)
    return text


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


def _indented(line: str) -> str:
    """A line of the diagnostics block, shortened to the width, keeping its indentation."""
    text = line.lstrip(" ")
    indent = line[: len(line) - len(text)]
    return indent + _short(text, TABLE_WIDTH - len(indent))


def _short(text: str, width: int) -> str:
    line = text.replace("\n", " ").strip()
    return line if len(line) <= width else line[: width - 1] + "…"
