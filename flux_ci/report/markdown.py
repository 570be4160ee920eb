"""Renders a `Report` as Markdown: `FLUX_CI_OUTPUT=markdown` (for a merge request comment) and the
GitHub Actions job summary are this one text.

Pure: the report arrives masked. Anything Flux or the registry wrote (messages, revisions) is escaped,
so it can neither break a table nor add HTML or links of its own.
"""

from __future__ import annotations

import re

from flux_ci.report.models import (
    Change,
    Check,
    Checks,
    ClusterOutcome,
    ConsumerState,
    Diagnostic,
    ErrorInfo,
    HistoryEntry,
    Report,
    Rollback,
    SourceState,
    Status,
    WaveOutcome,
)

# By the status's value, so a status added later still renders (with the neutral mark).
_HEADLINE = {
    Status.SUCCEEDED.value: "✅",
    Status.FAILED.value: "❌",
    Status.SUPERSEDED.value: "⏭️",
    "triggered": "📤",  # pushed and announced, nothing verified
    Status.DRY_RUN.value: "📝",
}
# Characters Markdown or HTML would read as syntax inside a table cell.
_CELL_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"} | {char: f"\\{char}" for char in "\\|`*_[]"}
_BACKTICKS = re.compile(r"`+")


def to_markdown(report: Report) -> str:
    blocks = [f"### {_HEADLINE.get(str(report.status), '🔹')} flux-ci {report.command}: {report.status}"]
    if report.artifact is not None:
        a = report.artifact
        rows = [("artifact", _code(a.url) if a.digest else _code(a.repository))]
        if a.digest:
            rows.append(("digest", _code(a.digest)))
        rows += [("tags", ", ".join(_code(tag) for tag in a.tags)), ("revision", _code(a.revision))]
        rows += [
            (f"moved {_code(move.tag)}", f"{_code(move.before) or '(none)'} → {_code(move.after)}")
            for move in report.tag_moves
        ]
        blocks.append(_table(("", ""), [row for row in rows if row[1]]))
    several = bool(report.clusters)
    blocks += _objects(report, several=several)
    blocks += _outcomes(report)
    if report.history:
        blocks += _history(report.history, several=several)
    if report.rollback is not None:
        blocks.append(_rollback(report.rollback))
    if report.checks:
        blocks.append(_table(("", "check", "detail"), [_check_row(check) for check in report.checks]))
    if report.changed is not None:
        blocks.append(_changed(report))
    if report.error is not None:
        blocks.append(_error(report.error, report.exit_code))
    blocks += [_diagnostic(d) for d in report.diagnostics]
    lists = [("scope", report.scope), ("notes", report.notes)]
    for title, items in lists:
        if items:
            blocks.append(f"**{title}**\n\n" + "\n".join(f"- {_cell(item)}" for item in items))
    if report.steps:
        steps = ", ".join(f"{step.name} {step.status} {step.duration_s:.1f}s" for step in report.steps)
        blocks.append(f"steps: {_cell(steps)}")
    if report.deadline is not None and report.deadline.source == "job":
        blocks.append(f"deadline: {report.deadline.seconds:g}s, fitted to the CI job's end")
    return "\n\n".join(blocks) + "\n"


def _outcomes(report: Report) -> list[str]:
    """A row per cluster of several, then a row per wave."""
    blocks = []
    if report.clusters:
        blocks.append(_table(("cluster", "status", "exit code"), [_cluster_row(c) for c in report.clusters]))
    if report.waves:
        headers = ("wave", "clusters", "status", "seconds", "soak")
        blocks.append(_table(headers, [_wave_row(w) for w in report.waves]))
    return blocks


def _objects(report: Report, *, several: bool) -> list[str]:
    """The sources and consumers as they are, and who pushed what each source holds."""
    blocks = []
    states: list[SourceState | ConsumerState] = [*report.sources, *report.consumers]
    objects = [_object_row(state, cluster=several) for state in states]
    if objects:
        headers: tuple[str, ...] = ("kind", "namespace/name", "revision", "ready", "state", "message")
        blocks.append(_table(("cluster", *headers) if several else headers, objects))
    pushers = [_pusher(state) for state in report.sources if state.pushed_by]
    if pushers:
        blocks.append("\n".join(pushers))
    return blocks


def _cluster_row(c: ClusterOutcome) -> tuple[str, ...]:
    return (_code(c.context), _cell(str(c.status)), str(c.exit_code))


def _wave_row(w: WaveOutcome) -> tuple[str, ...]:
    seconds = f"{w.seconds:.1f}" if w.started_at else "-"
    soak = f"{w.soak_s:.1f}" if w.soak_s else "-"
    return (_code(w.tag), ", ".join(_code(c) for c in w.clusters), _cell(str(w.status)), seconds, soak)


def _rollback(r: Rollback) -> str:
    moved = f" ({', '.join(_code(tag) for tag in r.tags)} → {_code(r.to_digest)})" if r.tags else ""
    return f"**Rollback: {_cell(str(r.status))}**{moved} in {r.duration_s:.1f}s: {_cell(r.message)}"


def _object_row(state: SourceState | ConsumerState, *, cluster: bool) -> tuple[str, ...]:
    ref = state.ref
    row = (
        ref.kind,
        _code(f"{ref.namespace}/{ref.name}"),
        _code(state.revision),
        _cell(state.ready),
        _cell(_state(state)),
        _cell(state.message),
    )
    return (_code(state.cluster), *row) if cluster else row


def _state(state: SourceState | ConsumerState) -> str:
    if isinstance(state, ConsumerState) and state.checks is Checks.APPLY:
        return f"{state.state} (applied, no health checks)" if state.state else "applied, no health checks"
    return state.state or "-"


def _pusher(state: SourceState) -> str:
    p = state.pushed_by
    parts = [_cell(p.user)] if p.user else []
    parts += [f"pipeline {_code(p.pipeline_url)}"] if p.pipeline_url else []
    parts += [f"job {_code(p.job_url)}"] if p.job_url else []
    parts += [f"at {_cell(p.pushed_at)}"] if p.pushed_at else []
    return f"{_code(str(state.ref))} holds an artifact pushed by {', '.join(parts)}"


def _history(entries: list[HistoryEntry], *, several: bool) -> list[str]:
    """A table per consumer, newest first; then how to run an entry again."""
    from flux_ci.report import timeline  # noqa: PLC0415 - `history` only

    def cells(number: int, e: HistoryEntry) -> tuple[str, ...]:
        return (
            str(number),
            _cell(e.last_applied),
            _cell(timeline.outcome(e)),
            _code(e.digest or e.revision),
            _cell(timeline.tags_text(e)),
            _cell(e.pushed_by.user),
            _code(e.pushed_by.pipeline_url),
        )

    headers = tuple(header.lower() for header in timeline.HEADERS)
    blocks = [
        f"**{_cell(title)}**\n\n{_table(headers, rows)}"
        for title, rows in timeline.by_consumer(entries, several=several, cells=cells)
    ]
    return [*blocks, _cell(timeline.ROLL_BACK)]


def _changed(report: Report) -> str:
    """diff: what would change; deploy and promote: whether a consumer applied a new digest."""
    if report.command == "diff":
        return _changes(report.changes)
    if report.changed:
        return "**Changed**: a consumer applied a digest it did not run before."
    return "**Unchanged**: every consumer already ran this digest."


def _changes(changes: list[Change]) -> str:
    """What applying the manifests would change: one list item per object, each drifted object's
    diff collapsed under it."""
    if not changes:
        return "**No change**: applying the manifests would change nothing in the cluster."
    lines = [f"**{len(changes)} object(s) would change**", ""]
    for c in changes:
        lines.append(f"- {_code(c.object)} {_cell(str(c.change))} (by {_code(str(c.kustomization))})")
        if c.diff:
            body = _fenced(c.diff)
            lines += [
                "",
                "  <details><summary>diff</summary>",
                "",
                *[f"  {line}" for line in body.splitlines()],
            ]
            lines += ["", "  </details>", ""]
    return "\n".join(lines).rstrip()


def _check_row(check: Check) -> tuple[str, ...]:
    return ("✅" if check.ok else "❌", _cell(check.name), _cell(check.detail))


def _error(error: ErrorInfo, exit_code: int) -> str:
    retry = "retryable" if error.retryable else "not retryable"
    head = f"**Error** (exit {exit_code}, `{error.code}`, {retry})"
    if error.superseded_by:
        head += f": superseded by {_code(error.superseded_by)}"
    return f"{head}\n\n{_fenced(error.message)}"


def _diagnostic(d: Diagnostic) -> str:
    """Why one consumer failed: its failing objects with their events, what Flux does next, the
    commands to run (in a code block people can copy)."""
    head = f"**Diagnostics: {_code(str(d.consumer))}** {_cell(d.message)}"
    rows: list[tuple[str, ...]] = [(_code(str(d.consumer)), "", _cell("; ".join(d.events)))]
    rows += [(_code(str(o.ref)), _cell(o.status), _cell("; ".join(o.events))) for o in d.objects]
    return "\n\n".join(
        [
            head,
            _table(("object", "status", "warning events"), rows),
            f"{_cell(d.retry)}. For more, run:",
            _fenced("\n".join(d.commands)),
        ]
    )


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Plain text in a table cell or list item: one line, no Markdown or HTML of its own."""
    escaped = "".join(_CELL_ESCAPES.get(char, char) for char in text)
    return " ".join(escaped.split())


def _code(text: str) -> str:
    """Inline code for digests, references and revisions; the empty string stays empty."""
    if not text:
        return ""
    line = " ".join(text.split()).replace("|", "\\|")  # a pipe ends a table cell even inside code
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(line)), default=0) + 1)
    pad = " " if line.startswith("`") or line.endswith("`") else ""
    return f"{fence}{pad}{line}{pad}{fence}"


def _fenced(text: str) -> str:
    """A code block the text cannot close early, whatever backticks it holds."""
    fence = "`" * max(3, max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"
