"""Fake Flux controllers for FakeCluster: they replay, asynchronously after a reconcile request, the
states the real controllers went through in recorded watch streams (tests/data/kubectl/watch-*.stdout,
captured by `python -m tests.e2e.capture_watch`, see tests/data/README.md).

A fake, named as one: only the recorded states, adapted to the fake cluster's object (its name,
namespace, generation, the digests it holds and is asked to fetch, the token flux-ci wrote). Never a
jump to the final state: between the request and the end, the object shows what the real controllers
showed, in their order, each state a separate watch event written after `annotate` returned:

- source-controller (`watch-redeploy-ocirepositories.stdout`, and before a failing apply
  `watch-redeploy-apply-failed-ocirepositories.stdout`): the request written and not handled
  (Ready=True, the old artifact), Reconciling, Ready=Unknown with ArtifactOutdated, Ready=True *still
  holding the old artifact and the old handled token*, then the new artifact with the handled token
  and status.observedGeneration.
- kustomize-controller applying a new revision (`watch-redeploy-kustomizations.stdout`): Reconciling,
  lastAttemptedRevision moved, Ready=True *with the old lastAppliedRevision*, then the new one.
- kustomize-controller failing to apply it (`watch-redeploy-apply-failed-kustomizations.stdout`):
  Reconciling, then Ready=False ReconciliationFailed with Reconciling=ProgressingWithRetry.
- kustomize-controller asked again on a re-run (`watch-rerun-kustomizations.stdout`): the request
  written, Reconciling, Ready=True *before* lastHandledReconcileAt names the request, then that;
  and failing then (`watch-rerun-apply-failed-kustomizations.stdout`: an object edited by hand in
  the cluster and made immutable), Ready=False with the request handled.

So a flow test fails when flux-ci takes a state from before its request, or of an older generation,
for the answer: those states come first, as they do against the real controllers.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flux_ci.tools.kubectl import RECONCILE_ANNOTATION
from tests import golden

if TYPE_CHECKING:
    from tests.fakecluster import FakeCluster

Obj = dict[str, Any]
STAGE_S = 0.02  # between two recorded states: each is its own watch event, none is skipped
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Recording:
    """The states one object went through in a recorded watch, from the request (or, for a
    Kustomization following its source, from the first change) to the end."""

    file: str
    states: tuple[Obj, ...]
    token: str  # the request the controller handled ("" if none was written)
    before: str  # the digest the object held before
    after: str  # the digest it fetched, or attempted to apply

    @classmethod
    def load(cls, file: str) -> Recording:
        events = [json.loads(line)["object"] for line in golden.text(file).splitlines() if line.strip()]
        first = events[0]
        requests = [_requested(obj) for obj in events]
        new = next((i for i, value in enumerate(requests) if value and value != _handled(first)), None)
        states = tuple(events[new if new is not None else 1 :])
        return cls(
            file, states, requests[new] if new is not None else "", _held(first), _attempted(events[-1])
        )


def _requested(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("annotations", {}).get(RECONCILE_ANNOTATION, ""))


def _handled(obj: Obj) -> str:
    return str(obj.get("status", {}).get("lastHandledReconcileAt", ""))


def _digest_of(revision: object) -> str:
    found = _DIGEST.search(str(revision or ""))
    return found.group(0) if found else ""


def _held(obj: Obj) -> str:
    """The digest an object holds: the source's artifact, the consumer's last applied revision."""
    status = obj.get("status", {})
    return _digest_of((status.get("artifact") or {}).get("revision") or status.get("lastAppliedRevision"))


def _attempted(obj: Obj) -> str:
    """The digest it fetched, or attempted to apply."""
    status = obj.get("status", {})
    return _digest_of((status.get("artifact") or {}).get("revision") or status.get("lastAttemptedRevision"))


SOURCE_FETCHES = Recording.load("kubectl/watch-redeploy-ocirepositories.stdout")
SOURCE_FETCHES_BEFORE_A_FAILURE = Recording.load("kubectl/watch-redeploy-apply-failed-ocirepositories.stdout")
KUSTOMIZATION_APPLIES = Recording.load("kubectl/watch-redeploy-kustomizations.stdout")
KUSTOMIZATION_FAILS = Recording.load("kubectl/watch-redeploy-apply-failed-kustomizations.stdout")
KUSTOMIZATION_RERUN = Recording.load("kubectl/watch-rerun-kustomizations.stdout")
KUSTOMIZATION_RERUN_FAILS = Recording.load("kubectl/watch-rerun-apply-failed-kustomizations.stdout")


def adapted(recorded: Obj, current: Obj, recording: Recording, *, digest: str, token: str, last: bool) -> Obj:
    """`current` with the recorded state's status: the recording's digests, token and namespace
    become the fake object's; every condition names the current generation (the status patcher
    stamps it); status.observedGeneration becomes the current generation only in the last state (the
    controllers set it when a reconcile ends), and fields the recording lacks are kept."""
    held = _held(current)
    text = json.dumps(recorded["status"])
    if recording.before and held:
        text = text.replace(recording.before, held)
    if recording.after:
        text = text.replace(recording.after, digest)
    if recording.token:
        text = text.replace(recording.token, token)
    text = text.replace(recorded["metadata"]["namespace"], current["metadata"]["namespace"])
    status = json.loads(text)
    generation = current.get("metadata", {}).get("generation", 1)
    for condition in status.get("conditions", []):
        condition["observedGeneration"] = generation
    observed = current.get("status", {}).get("observedGeneration", -1)
    status["observedGeneration"] = generation if last else observed
    if not last:
        status.pop("lastHandledReconcileAt", None)
        if "lastHandledReconcileAt" in current.get("status", {}):
            status["lastHandledReconcileAt"] = current["status"]["lastHandledReconcileAt"]
    updated = copy.deepcopy(current)
    updated["status"] = {**current.get("status", {}), **status}
    return updated


def replay(
    cluster: FakeCluster, key: tuple[str, str, str], recording: Recording, *, digest: str, token: str
) -> None:
    """Write the recording's states on the object `key`, one watch event each, STAGE_S apart."""
    for index, recorded in enumerate(recording.states):
        time.sleep(STAGE_S)
        if cluster.closed:
            return
        current = cluster.objects[key]
        if index == 0 and recording.token:
            continue  # the request itself: flux-ci wrote it already
        cluster.put(adapted(recorded, current, recording, digest=digest, token=token,
                            last=index == len(recording.states) - 1))  # fmt: skip


@dataclass
class Controllers:
    """source-controller and kustomize-controller, as recorded (see the module docstring).

    `fetches`: the digest source-controller finds on the followed tag. `apply`: kustomize-controller
    applies a fetched digest (False: it is stopped). `consumers_fail`: the apply fails.
    """

    fetches: str
    apply: bool = True
    consumers_fail: bool = False

    def __call__(self, cluster: FakeCluster, requested: Obj, token: str) -> None:
        key = (requested["kind"], requested["metadata"]["namespace"], requested["metadata"]["name"])
        if key[0] == "OCIRepository":
            fetch = SOURCE_FETCHES_BEFORE_A_FAILURE if self.consumers_fail else SOURCE_FETCHES
            replay(cluster, key, fetch, digest=self.fetches, token=token)
            if self.apply:
                for consumer in _consumers_of(cluster, key):
                    recording = KUSTOMIZATION_FAILS if self.consumers_fail else KUSTOMIZATION_APPLIES
                    replay(cluster, consumer, recording, digest=self.fetches, token=token)
        elif key[0] == "Kustomization":
            recording = KUSTOMIZATION_RERUN_FAILS if self.consumers_fail else KUSTOMIZATION_RERUN
            replay(cluster, key, recording, digest=_held(cluster.objects[key]), token=token)


def _consumers_of(cluster: FakeCluster, source: tuple[str, str, str]) -> list[tuple[str, str, str]]:
    return [
        key for key, obj in sorted(cluster.objects.items())
        if key[0] == "Kustomization" and key[1] == source[1]
        and obj["spec"]["sourceRef"]["name"] == source[2]
    ]  # fmt: skip


ControllerFn = Callable[["FakeCluster", Obj, str], None]


def in_background(
    cluster: FakeCluster, controller: ControllerFn, requested: Obj, token: str
) -> threading.Thread:
    """Run a controller's answer after the request returned, as the real ones do."""
    thread = threading.Thread(target=controller, args=(cluster, requested, token), daemon=True)
    thread.start()
    return thread
