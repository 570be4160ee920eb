"""What the -vv trace shows of kubectl's output: one line per object, never the object.

kubectl reads what the identity may read, which is other teams' too, so its JSON is cluster data the
job log must not carry; this module makes the trace's lines of it (`runner.run(..., trace_output=)`).
"""

from __future__ import annotations

from typing import Any

from flux_ci.tools.kubectl import AccessCheck, iter_json_documents


def summarise(stdout: str) -> list[str]:
    """What the -vv trace shows of kubectl's JSON output (a List, one object, watch events one a line):
    one line per object, naming it with its generation, revision and Ready condition, never the object.

    kubectl reads what the identity may read, which is other teams' too: HelmRelease values,
    `postBuild.substitute`, last-applied annotations, Event messages. None of it belongs in a job
    log. Output that is not a JSON document is counted, not shown."""
    lines = [line for document in iter_json_documents([stdout]) for line in _summary(document)]
    if not lines and stdout.strip():
        count = len(stdout.strip().splitlines())
        lines.append(f"({count} {'line' if count == 1 else 'lines'} of output that is not JSON: not shown)")
    return lines


def _summary(document: dict[str, Any]) -> list[str]:
    if "object" in document and "type" in document:  # a watch event
        return [f"{document['type']} {line}" for line in _summary(dict(document["object"]))]
    kind = str(document.get("kind", ""))
    if kind.endswith("List"):
        items = [item for item in document.get("items", []) if isinstance(item, dict)]
        return [_object_line(item) for item in items] or [f"{kind}: no items"]
    if not kind or not isinstance(document.get("metadata", {}), dict):
        return ["(a JSON document that is not a Kubernetes object: not shown)"]
    return [_object_line(document)]


def _object_line(obj: dict[str, Any]) -> str:
    kind = str(obj.get("kind", "?"))
    meta = obj.get("metadata") or {}
    status: dict[str, Any] = obj["status"] if isinstance(obj.get("status"), dict) else {}
    if kind == "SelfSubjectAccessReview":
        asked = AccessCheck(**_check_fields(obj))
        return f"{kind} {asked}: allowed={bool(status.get('allowed'))}"
    name = (
        f"{meta['namespace']}/{meta.get('name', '?')}"
        if meta.get("namespace")
        else str(meta.get("name", "?"))
    )
    if kind == "Event":
        about = obj.get("involvedObject") or {}
        subject = f"{about.get('kind', '?')}/{about.get('namespace', '')}/{about.get('name', '?')}"
        return f"Event {name}: {obj.get('type', '?')} {obj.get('reason', '?')} for {subject}"
    parts = [f"{kind} {name}"]
    if (generation := meta.get("generation")) is not None:
        observed = status.get("observedGeneration")
        parts.append(f"generation {generation}" + (f" (observed {observed})" if observed is not None else ""))
    applied = (status.get("artifact") or {}).get("revision") or status.get("lastAppliedRevision")
    attempted = status.get("lastAttemptedRevision")
    if applied:
        parts.append(f"revision {applied}")
    if attempted and attempted != applied:
        parts.append(f"attempted {attempted}")
    ready = next(
        (c for c in status.get("conditions", []) if isinstance(c, dict) and c.get("type") == "Ready"), None
    )
    if ready is not None:
        parts.append(f"Ready={ready.get('status', '?')} {ready.get('reason', '')}".rstrip())
    return ", ".join(parts)


def _check_fields(review: dict[str, Any]) -> dict[str, str]:
    attributes = (review.get("spec") or {}).get("resourceAttributes") or {}
    group = attributes.get("group", "")
    resource = f"{attributes.get('resource', '?')}.{group}" if group else str(attributes.get("resource", "?"))
    return {
        "verb": str(attributes.get("verb", "?")),
        "resource": resource,
        "namespace": attributes.get("namespace", ""),
    }
