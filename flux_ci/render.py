"""Renders a `Report` exactly once: a table for people, one JSON document, or a GitLab dotenv file."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from typing import Any

from tabulate import tabulate

from flux_ci.models import SCHEMA_VERSION, Report

# GitLab dotenv: no quotes, spaces or newlines in values, and the file is at most 5 KB.
_DOTENV_UNSAFE = re.compile(r"[\s'\"\\#]")
DOTENV_LIMIT = 5 * 1024
_MESSAGE_WIDTH = 80


def to_json(report: Report) -> str:
    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "command": report.command,
        "status": str(report.status),
        "exit_code": report.exit_code,
        "artifact": _artifact(report),
        "sources": [
            {
                "kind": s.ref.kind,
                "namespace": s.ref.namespace,
                "name": s.ref.name,
                "url": s.url,
                "revision": s.revision,
                "ready": s.ready,
                "message": s.message,
                "updated": s.updated,
            }
            for s in report.sources
        ],
        "consumers": [
            {
                "kind": c.ref.kind,
                "namespace": c.ref.namespace,
                "name": c.ref.name,
                "revision": c.revision,
                "ready": c.ready,
                "message": c.message,
                "updated": c.updated,
            }
            for c in report.consumers
        ],
        "steps": [
            {"name": s.name, "status": str(s.status), "duration_s": s.duration_s} for s in report.steps
        ],
        "error": asdict(report.error) if report.error else None,
    }
    if report.checks:
        data["checks"] = [asdict(check) for check in report.checks]
    return json.dumps(data, indent=2) + "\n"


def _artifact(report: Report) -> dict[str, Any] | None:
    artifact = report.artifact
    if artifact is None:
        return None
    return {
        "url": artifact.url,
        "repository": artifact.repository,
        "tags": list(artifact.tags),
        "digest": artifact.digest,
        "source": artifact.source,
        "revision": artifact.revision,
    }


def to_table(report: Report) -> str:
    blocks = []
    if report.artifact:
        a = report.artifact
        rows = [("artifact", a.url), ("tags", ", ".join(a.tags)), ("revision", a.revision)]
        blocks.append(tabulate(rows, tablefmt="plain"))
    objects = [
        (str(s.ref.kind), s.ref.namespace, s.ref.name, s.revision, s.ready, _short(s.message), s.updated)
        for s in report.sources
    ] + [
        (str(c.ref.kind), c.ref.namespace, c.ref.name, c.revision, c.ready, _short(c.message), c.updated)
        for c in report.consumers
    ]
    if objects:
        headers = ("KIND", "NAMESPACE", "NAME", "REVISION", "READY", "MESSAGE", "UPDATED")
        blocks.append(tabulate(objects, headers=headers, tablefmt="simple"))
    if report.checks:
        checks = [("ok" if c.ok else "FAIL", c.name, c.detail) for c in report.checks]
        blocks.append(tabulate(checks, headers=("", "CHECK", "DETAIL"), tablefmt="simple"))
    verdict = f"{report.command}: {report.status}"
    if report.error:  # the message itself goes to stderr, with the other words for people
        verdict += f" (exit {report.exit_code}, {report.error.code})"
    blocks.append(verdict)
    return "\n\n".join(blocks) + "\n"


def to_dotenv(report: Report) -> str:
    """FLUX_CI_* variables for later jobs; values that GitLab cannot carry are left out."""
    artifact = report.artifact
    values = {
        "FLUX_CI_STATUS": str(report.status),
        "FLUX_CI_EXIT_CODE": str(report.exit_code),
        "FLUX_CI_DIGEST": artifact.digest if artifact else "",
        "FLUX_CI_URL": artifact.url if artifact and artifact.digest else "",
        "FLUX_CI_TAG": artifact.tags[0] if artifact and artifact.tags else "",
        "FLUX_CI_REVISION": artifact.revision if artifact else "",
        "FLUX_CI_SOURCE_REVISION": report.sources[0].revision if report.sources else "",
    }
    lines = [f"{key}={value}" for key, value in values.items() if value and not _DOTENV_UNSAFE.search(value)]
    text = "\n".join(lines) + "\n"
    if len(text.encode()) > DOTENV_LIMIT:  # cannot happen with these keys; guard the invariant anyway
        msg = "dotenv report exceeds GitLab's 5 KB limit"
        raise ValueError(msg)
    return text


def _short(message: str) -> str:
    line = message.replace("\n", " ").strip()
    return line if len(line) <= _MESSAGE_WIDTH else line[: _MESSAGE_WIDTH - 1] + "…"
