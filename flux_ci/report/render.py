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
    Checks,
    ClusterOutcome,
    ConsumerState,
    Diagnostic,
    HistoryEntry,
    ObjectRef,
    Provenance,
    Report,
    Rollback,
    SourceState,
    Status,
    Step,
    WaveOutcome,
)

# GitLab's dotenv report (`Ci::ParseDotenvArtifactService`): one KEY=value a line, no quotes, spaces
# or newlines in values; the file smaller than the instance's `dotenv_size` limit (5120 bytes, the
# default and GitLab.com's), at most `dotenv_variables` variables (20 on the smallest plans; flux-ci
# writes at most 16). GitLab refuses a file over a limit whole: the later jobs would get none of it.
# A CI log is about 120 columns wide: the table shortens digests and messages (JSON has them whole).
TABLE_WIDTH = 120
_DIGEST = re.compile(r"(sha256:[0-9a-f]{12})[0-9a-f]{52}")


def to_json(report: Report) -> str:
    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "command": report.command,
        "status": str(report.status),
        "exit_code": report.exit_code,
        "deadline": asdict(report.deadline) if report.deadline else None,
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
    if report.changed is not None:  # diff, deploy, promote
        data["changed"] = report.changed
    if report.command == "diff":
        data["changes"] = [_change(c) for c in report.changes]
    if report.command == "history":
        data["history"] = [_history(entry) for entry in report.history]
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _history(e: HistoryEntry) -> dict[str, Any]:
    row = {
        "kind": e.consumer.kind,
        "namespace": e.consumer.namespace,
        "name": e.consumer.name,
        "digest": e.digest,
        "revision": e.revision,
        "status": e.status,
        "first_applied": e.first_applied,
        "last_applied": e.last_applied,
        "origin_revision": e.origin_revision,
        "reconciliations": e.reconciliations,
        "chart": e.chart,
        "tags": list(e.tags),
        "in_registry": e.in_registry,
        "pushed_by": _pushed_by(e.pushed_by),
    }
    return _in_cluster(row, e.cluster)


def _pushed_by(p: Provenance) -> dict[str, str]:
    return asdict(p)


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
        "pushed_by": _pushed_by(s.pushed_by),
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
        "checks": str(c.checks) if c.checks else None,
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
    several = bool(report.clusters)
    blocks += _object_blocks(report, several=several)
    blocks += _outcomes(report)
    if report.history:
        from flux_ci.report.timeline import history_tables  # noqa: PLC0415 - `history` only

        blocks += history_tables(report.history, several=several)
    if report.checks:
        checks = [("ok" if c.ok else "FAIL", c.name, _short(c.detail, 80)) for c in report.checks]
        blocks.append(tabulate(checks, headers=("", "CHECK", "DETAIL"), tablefmt="simple"))
    blocks += _changed_blocks(report, several=several)
    if report.diagnostics:
        from flux_ci.report.describe import describe  # noqa: PLC0415 - failures only

        lines = [line for d in report.diagnostics for line in describe(d)]
        blocks.append("diagnostics:\n" + "\n".join(_indented(line) for line in lines))
    lines = _footer(report)
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


def _object_blocks(report: Report, *, several: bool) -> list[str]:
    """The sources and consumers as they are, and who pushed what each source holds."""
    from tabulate import tabulate  # noqa: PLC0415 - the table's alone

    blocks = []
    states: list[SourceState | ConsumerState] = [*report.sources, *report.consumers]
    objects = [_row(state, cluster=several) for state in states]
    if objects:
        headers: tuple[str, ...] = ("KIND", "NAMESPACE/NAME", "REVISION", "READY", "STATE", "MESSAGE")
        headers = ("CLUSTER", *headers) if several else headers
        blocks.append(_fit(tabulate(objects, headers=headers, tablefmt="simple")))
    pushers = [_pusher_line(s) for s in report.sources if s.pushed_by]
    if pushers:
        blocks.append("\n".join(pushers))
    return blocks


def _changed_blocks(report: Report, *, several: bool) -> list[str]:
    """diff: what would change; deploy and promote: whether a consumer applied a new digest."""
    from tabulate import tabulate  # noqa: PLC0415 - the table's alone

    if report.changed is None:
        return []
    if report.command != "diff":
        return [
            "changed: yes, a consumer applied a digest it did not run before"
            if report.changed
            else "changed: no, every consumer already ran this digest"
        ]
    blocks = []
    changes: list[tuple[str, ...]] = [(str(c.kustomization), c.object, str(c.change)) for c in report.changes]
    change_headers: tuple[str, ...] = ("KUSTOMIZATION", "OBJECT", "CHANGE")
    if several:
        changes = [(c.cluster, *row) for c, row in zip(report.changes, changes, strict=True)]
        change_headers = ("CLUSTER", *change_headers)
    if changes:
        blocks.append(_fit(tabulate(changes, headers=change_headers, tablefmt="simple")))
    blocks.append("changed: " + ("yes" if report.changed else "no, applying the manifests changes nothing"))
    return blocks


def _footer(report: Report) -> list[str]:
    """The lines under the tables: the rollback, what Ready covered, a deadline fitted to the CI
    job, scope and notes."""
    lines = (
        [f"rollback: {_short(_rollback_line(report.rollback), TABLE_WIDTH - 10)}"] if report.rollback else []
    )
    lines += [_short(f"checks: applied, no health checks: {_named(c.ref, c.cluster)}", TABLE_WIDTH)
              for c in report.consumers if c.checks is Checks.APPLY]  # fmt: skip
    if report.deadline is not None and report.deadline.source == "job":
        lines.append(f"deadline: {report.deadline.seconds:g}s, fitted to the CI job's end")
    lines += [f"scope: {_short(item, TABLE_WIDTH - 7)}" for item in report.scope]
    lines += [f"note: {_short(item, TABLE_WIDTH - 6)}" for item in report.notes]
    return lines


def _row(state: SourceState | ConsumerState, *, cluster: bool) -> tuple[str, ...]:
    ref = state.ref
    revision = _DIGEST.sub(r"\1…", state.revision)
    row = (ref.kind, f"{ref.namespace}/{ref.name}", revision, state.ready, state.state or "-", state.message)
    return (state.cluster, *row) if cluster else row


def _named(ref: ObjectRef, cluster: str) -> str:
    return f"{cluster}: {ref}" if cluster else str(ref)


def _pusher_line(s: SourceState) -> str:
    """Never cut: a cut link leads nowhere."""
    return " ".join(f"{s.ref} holds an artifact pushed by {pusher(s.pushed_by)}".split())


def pusher(p: Provenance) -> str:
    """Who pushed, in words: `alice, pipeline <url> (job <url>) at <time>`."""
    parts = [p.user] if p.user else []
    if p.pipeline_url:
        parts.append(f"pipeline {p.pipeline_url}")
    if p.job_url:
        parts.append(f"job {p.job_url}")
    if p.pushed_at:
        parts.append(f"at {p.pushed_at}")
    return ", ".join(parts) or "(unknown)"


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


def _indented(line: str) -> str:
    """A line of the diagnostics block, shortened to the width, keeping its indentation."""
    text = line.lstrip(" ")
    indent = line[: len(line) - len(text)]
    return indent + _short(text, TABLE_WIDTH - len(indent))


def _short(text: str, width: int) -> str:
    line = text.replace("\n", " ").strip()
    return line if len(line) <= width else line[: width - 1] + "…"
