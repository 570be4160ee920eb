"""Flux status reads and verdicts, fed with objects captured from the real source- and
kustomize-controller (tests/data/kubectl); where a test edits one, the edit is named."""

from __future__ import annotations

import copy
from typing import Any

from flux_ci.kube import fluxobjects as fo
from flux_ci.kube.verdicts import Expectation
from flux_ci.report.models import ObjectRef
from tests.golden import obj

READY_SOURCE = obj("kubectl/ocirepository-ready.json")
SYNCED = READY_SOURCE["status"]["artifact"]["revision"].split("@", 1)[1]
OTHER = "sha256:" + "0" * 64
TOKEN = "2026-11-26T12:00:00.000000Z"


def _kustomization_digest(name: str, field: str = "lastAttemptedRevision") -> str:
    return str(obj(name)["status"][field]).split("@", 1)[1]


def _expect(digest: str, **kwargs: Any) -> Expectation:
    return Expectation(digest, tags=kwargs.pop("tags", ("c1", "latest")), **kwargs)


def _handled(source: dict[str, Any], token: str = TOKEN) -> dict[str, Any]:
    edited = copy.deepcopy(source)
    edited["status"]["lastHandledReconcileAt"] = token
    return edited


def test_source_state_reads_the_full_revision() -> None:
    state = fo.source_state(READY_SOURCE, "done")
    assert state.ref == ObjectRef("OCIRepository", "golden", "app")
    assert state.revision == f"latest@{SYNCED}"
    assert state.ready == "True"
    assert state.url == READY_SOURCE["spec"]["url"]
    assert state.follows == "tag latest"
    assert state.state == "done"
    assert state.updated


def test_followed_ref_defaults_to_latest() -> None:
    no_ref = copy.deepcopy(READY_SOURCE)
    del no_ref["spec"]["ref"]
    assert fo.followed_ref(no_ref) == ("tag", "latest")
    assert fo.followed_ref(READY_SOURCE) == ("tag", "latest")


def test_a_message_is_cut_to_one_line_of_at_most_the_limit() -> None:
    assert fo.cut("health check\n  failed:\tdeployment app") == "health check failed: deployment app"
    long = fo.cut("x" * 1000)
    assert len(long) == fo.MAX_MESSAGE
    assert long.endswith("…")
    assert fo.cut("short", limit=5) == "short"
