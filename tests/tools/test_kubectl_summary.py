"""The -vv trace's lines of kubectl's output: each object named, nothing private shown."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from flux_ci.tools import kubectl, kubectl_summary
from tests.golden import DATA, text

GOLDEN_JSON = sorted(
    path.relative_to(DATA).as_posix()
    for path in (DATA / "kubectl").iterdir()
    if path.suffix in (".json", ".stdout")
    and path.name != "version.json"
    and not path.name.startswith("receiver-")  # a go-template's lines, summarised as such (below)
)


def test_a_receiver_read_is_never_shown_in_the_trace() -> None:
    # Its Ready message quotes the whole webhook path: the credential of a generic Receiver.
    for name in ("receiver-ready.stdout", "receiver-not-ready.stdout"):
        assert kubectl_summary.summarise(text(f"kubectl/{name}")) == [
            "(1 line of output that is not JSON: not shown)"
        ]


def _objects(output: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for document in kubectl.iter_json_documents([output]):
        obj = document.get("object", document)  # a watch event, or the object itself
        found += obj.get("items", [obj]) if str(obj.get("kind", "")).endswith("List") else [obj]
    return found


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _private(obj: dict[str, Any]) -> set[str]:
    """What an object holds that the trace must never show: its spec, annotations, labels, managed
    fields, the messages of its conditions (and an Event's message). Short words (a kind, `True`, a
    reason) are left out: they occur legitimately in a summary."""
    meta = obj.get("metadata", {})
    status = obj.get("status", {}) if obj.get("kind") != "SelfSubjectAccessReview" else {}
    private = [
        obj.get("spec", {}) if obj.get("kind") != "SelfSubjectAccessReview" else {},
        meta.get("annotations", {}),
    ]
    private += [meta.get("labels", {}), meta.get("managedFields", []), obj.get("message", "")]
    private += [c.get("message", "") for c in status.get("conditions", [])]
    public = {meta.get("name"), meta.get("namespace"), obj.get("kind")}
    revision = ("latest@", "sha256:")  # a pinned digest in the spec is the revision, which is shown
    return {s for s in _strings(private) if len(s) >= 12 and s not in public and not s.startswith(revision)}


@pytest.mark.parametrize("name", GOLDEN_JSON)
def test_the_summary_names_each_object_and_shows_nothing_private(name: str) -> None:
    output = text(name)
    objects = _objects(output)
    summary = kubectl_summary.summarise(output)
    assert len(summary) == len(objects), summary
    shown = "\n".join(summary)
    for obj in objects:
        meta = obj.get("metadata", {})
        if obj["kind"] != "SelfSubjectAccessReview":
            assert f"{meta.get('namespace')}/{meta['name']}" in shown
        leaked = [value for value in _private(obj) if value in shown]
        assert leaked == []


def test_the_summary_of_a_consumer_has_its_generation_revision_and_ready_condition() -> None:
    (line,) = kubectl_summary.summarise(text("kubectl/kustomization-apply-failed.json"))
    assert line.startswith("Kustomization golden/app, generation 1 (observed 1), revision latest@sha256:3eee")
    assert ", attempted latest@sha256:54d2" in line
    assert line.endswith(", Ready=False ReconciliationFailed")


def test_watch_events_keep_their_type() -> None:
    lines = kubectl_summary.summarise(text("kubectl/watch-apply-failed-kustomizations.stdout"))
    assert lines[0] == "ADDED Kustomization cap-apply/app, generation 1 (observed -1)"
    assert all(line.startswith(("ADDED ", "MODIFIED ", "DELETED ")) for line in lines)


def test_events_say_what_they_are_about_not_their_message() -> None:
    lines = kubectl_summary.summarise(text("kubectl/events-health-check-failed.json"))
    assert "Warning HealthCheckFailed for Kustomization/diagexp18/app" in lines[3]
    assert "timeout waiting for" not in "\n".join(lines)


def test_access_reviews_say_the_question_and_the_answer() -> None:
    assert kubectl_summary.summarise(text("kubectl/access-reviews.json")) == [
        f"SelfSubjectAccessReview list {kubectl.KUSTOMIZATIONS} cluster-wide: allowed=True",
        f"SelfSubjectAccessReview patch {kubectl.OCIREPOSITORIES} in namespace apps: allowed=False",
    ]


def test_another_teams_values_never_reach_the_summary() -> None:
    # The real Kustomization, with what another team's would hold added (this part is hand-written).
    other = json.loads(text("kubectl/kustomization-ready.json"))
    other["spec"]["postBuild"] = {"substitute": {"DB_PASSWORD": "hunter2-of-another-team"}}
    other["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": '{"spec":{"values":{"token":"t0ken-value"}}}'
    }
    listed = json.dumps({"apiVersion": "v1", "kind": "List", "items": [other]})
    summary = "\n".join(kubectl_summary.summarise(listed))
    assert "hunter2-of-another-team" not in summary
    assert "t0ken-value" not in summary
    assert summary.startswith("Kustomization golden/app, generation 1")


def test_output_that_is_not_json_is_counted_not_shown() -> None:
    assert kubectl_summary.summarise("kustomization.kustomize.toolkit.fluxcd.io/app annotated\n") == [
        "(1 line of output that is not JSON: not shown)"
    ]
    assert kubectl_summary.summarise('{"apiVersion": "v1",\n  "data": {"password": "x"}\n') == [
        "(2 lines of output that is not JSON: not shown)"
    ]
    assert kubectl_summary.summarise(text("kubectl/version.json")) == [
        "(a JSON document that is not a Kubernetes object: not shown)"
    ]
    assert kubectl_summary.summarise("") == []
    assert kubectl_summary.summarise('{"apiVersion": "v1", "kind": "List", "items": []}') == [
        "List: no items"
    ]
