"""The wait engine replaying real watch streams (`kubectl get --watch --output-watch-events`) recorded
from the sandbox's controllers during flux-ci deploys (tests/data/kubectl/watch-*.stdout), through a
FakeRunner (no process is started)."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable

import pytest

from flux_ci.config.settings import Settings
from flux_ci.errors import ConsumerFailedError, DeadlineExceededError, FluxCIError, SourceFailedError
from flux_ci.kube import fluxobjects as fo
from flux_ci.kube import verdicts as v
from flux_ci.kube.engine import Observer, Target
from flux_ci.kube.fluxobjects import Obj
from flux_ci.kube.verdicts import Expectation, Phase
from flux_ci.report.models import ObjectRef
from flux_ci.tools.kubectl import KUSTOMIZATIONS, OCIREPOSITORIES
from tests.fakes import FakeRunner, make_context
from tests.golden import text

TAGS = ("c1", "latest")


class Recording:
    """One recorded scenario: its two watch streams, its namespace, digest and reconcile token."""

    def __init__(self, name: str) -> None:
        self.sources = text(f"kubectl/watch-{name}-ocirepositories.stdout")
        self.consumers = text(f"kubectl/watch-{name}-kustomizations.stdout")
        first = json.loads(self.sources.splitlines()[0])["object"]
        self.namespace = first["metadata"]["namespace"]
        self.before = fo.source_revision(first)
        tokens = re.findall(r'"reconcile\.fluxcd\.io/requestedAt":"([^"]+)"', self.sources)
        self.token = tokens[-1]
        # The pushed digest, where the controllers ever stored it (a refused pull never does).
        digests = re.findall(r"latest@(sha256:[0-9a-f]{64})", self.sources + self.consumers)
        self.digest = digests[-1] if digests else "sha256:" + "e" * 64

    def ref(self, kind: str) -> ObjectRef:
        return ObjectRef(kind, self.namespace, "app")


def _once(lines: list[str]) -> Callable[[], list[str]]:
    """The recorded events the first time the watch starts; nothing new if it is resumed."""
    served: list[bool] = []

    def lines_once() -> list[str]:
        if served:
            return []
        served.append(True)
        return lines

    return lines_once


def _observe(
    *recordings: Recording, seconds: float = 10, events: str | None = None, settings: Settings | None = None
) -> tuple[Observer, FakeRunner, io.StringIO]:
    """An Observer replaying the recordings; with `events` (a recorded events watch), also started
    with the recorded objects as flow starts it, so that their events are watched too."""
    runner = FakeRunner()
    runner.answer(["kubectl", "get", "--raw=/readyz"], stdout="ok")  # the liveness check: it answers
    for recording in recordings:
        ns = f"--namespace={recording.namespace}"
        for resource, stream in ((OCIREPOSITORIES, recording.sources), (KUSTOMIZATIONS, recording.consumers)):
            runner.answer_stream(["kubectl", "get", resource, ns, "--output=json", "--watch"],
                                 _once(stream.splitlines(keepends=True)))  # fmt: skip
            runner.answer(["kubectl", "get", resource, ns], stdout='{"kind": "List", "items": []}')
    out = io.StringIO()
    ctx = make_context(settings, runner, seconds=seconds, out=out)
    groups = {(kind, r.namespace) for r in recordings for kind in ("OCIRepository", "Kustomization")}
    if events is None:
        return Observer(ctx, groups).start([]), runner, out
    runner.answer_stream(["kubectl", "get", "events"], _once(events.splitlines(keepends=True)))
    allowed = json.dumps({"kind": "List", "items": [{"status": {"allowed": True}}] * 2})  # list, watch
    runner.answer(["kubectl", "create", "--filename=-"], stdout=allowed)
    known = [_last(stream) for r in recordings for stream in (r.sources, r.consumers)]
    return Observer(ctx, groups).start(known), runner, out


def _source(recording: Recording, **expect: object) -> Target:
    expectation = Expectation(recording.digest, TAGS, recording.token, recording.before)
    for key, value in expect.items():
        object.__setattr__(expectation, key, value)
    return Target(
        recording.ref("OCIRepository"),
        lambda obj: v.source_verdict(obj, expectation.seeing(obj)),
        lambda ref, message: SourceFailedError(f"{ref}: {message}"),
        expectation.requested_at,
        expectation.acknowledged,
    )


def _consumer(recording: Recording, digest: str | None = None) -> Target:
    expectation = Expectation(digest or recording.digest, TAGS, None, "")
    return Target(
        recording.ref("Kustomization"),
        lambda obj: v.consumer_verdict(obj, expectation),
        lambda ref, message: ConsumerFailedError(f"{ref}: {message}"),
    )


def _no_move(ref: ObjectRef, tag: str, digest: str) -> None:
    raise AssertionError(f"{ref} was not expected to hold another digest ({tag}@{digest})")


def _tag_still_ours(ref: ObjectRef, tag: str, digest: str) -> None:
    """The registry's answer when the object is merely behind: keep waiting."""


def _wait(
    observer: Observer, targets: list[Target], moved: Callable[[ObjectRef, str, str], None] = _no_move
) -> dict[ObjectRef, v.Verdict]:
    try:
        return observer.wait(targets, what="the recording", moved=moved)
    finally:
        observer.stop()


def test_a_recorded_deploy_ends_with_every_object_done() -> None:
    recording = Recording("deploy-succeeded")
    observer, runner, progress = _observe(recording)
    verdicts = _wait(observer, [_source(recording), _consumer(recording)])
    assert {ref.kind: v.phase for ref, v in verdicts.items()} == {
        "OCIRepository": Phase.DONE,
        "Kustomization": Phase.DONE,
    }
    assert (
        observer.latest[recording.ref("Kustomization")]["status"]["lastAppliedRevision"]
        == f"latest@{recording.digest}"
    )
    watches = [c for c in runner.commands() if "--watch" in c]
    assert len(watches) == 2  # one per kind and namespace
    # Only the latest state of each object is judged: the events arrived faster than they were read.
    done = f"Kustomization/cap-ok/app: done: Applied revision: latest@{recording.digest}"
    assert done in progress.getvalue()


def test_a_recorded_apply_failure_fails_with_the_controllers_message() -> None:
    recording = Recording("apply-failed")
    observer, _, _ = _observe(recording)
    with pytest.raises(ConsumerFailedError, match='no matches for kind "NoSuchKind"'):
        _wait(observer, [_source(recording), _consumer(recording)])


def test_a_path_missing_from_the_artifact_fails_before_lastattemptedrevision_moves() -> None:
    recording = Recording("path-missing")
    consumer_events = [json.loads(line)["object"] for line in recording.consumers.splitlines()]
    assert all(
        not fo.revision_has_digest(fo.attempted_revision(obj), recording.digest) for obj in consumer_events
    )
    observer, _, _ = _observe(recording)
    with pytest.raises(ConsumerFailedError, match="kustomization path not found"):
        _wait(observer, [_source(recording), _consumer(recording)])


def test_a_refused_pull_fails_once_our_request_is_handled() -> None:
    recording = Recording("pull-refused")
    observer, _, _ = _observe(recording)
    with pytest.raises(SourceFailedError, match="UNAUTHORIZED: authentication required"):
        _wait(observer, [_source(recording)])


def test_the_same_refusal_without_our_request_is_not_decided() -> None:
    # Our request is newer than the one the controller handled: the refusal may be left from before
    # this run, so it waits (until the deadline).
    recording = Recording("pull-refused")
    observer, _, _ = _observe(recording, seconds=1.5)
    with pytest.raises(DeadlineExceededError, match="source-controller has not acknowledged"):
        _wait(observer, [_source(recording, requested_at="2099-01-01T00:00:00.000000Z")])


def test_the_first_failure_ends_a_wait_on_several_objects_and_stops_every_watch() -> None:
    ok, failing = Recording("deploy-succeeded"), Recording("apply-failed")
    observer, runner, _ = _observe(ok, failing, seconds=30)
    never = _consumer(ok, digest="sha256:" + "0" * 64)  # would wait until the deadline
    with pytest.raises(ConsumerFailedError):
        _wait(observer, [never, _consumer(failing)], moved=_tag_still_ours)
    assert observer.verdicts[never.ref].phase is Phase.WAITING
    assert runner.stopped  # every watch was told to stop at once, not at the deadline


def test_a_deleted_object_is_a_cluster_error_not_a_wait() -> None:
    recording = Recording("deploy-succeeded")
    deleted = json.dumps({"type": "DELETED", "object": _last(recording.consumers)}) + "\n"
    recording.consumers = recording.consumers.splitlines(keepends=True)[0] + deleted
    observer, _, _ = _observe(recording)
    with pytest.raises(FluxCIError, match="was deleted while flux-ci waited for it"):
        _wait(observer, [_consumer(recording, digest="sha256:" + "0" * 64)])


def test_new_events_about_the_objects_waited_for_are_lines_from_one_more_watch() -> None:
    recording = Recording("deploy-succeeded")
    recorded = text("kubectl/watch-events-deploy-then-health-check-failed.stdout")
    recorded_namespace = json.loads(recorded.splitlines()[0])["object"]["metadata"]["namespace"]
    events = recorded.replace(recorded_namespace, recording.namespace)
    observer, runner, progress = _observe(recording, events=events)
    _wait(observer, [_source(recording), _consumer(recording)])
    watches = {c for c in runner.commands() if "--watch" in c}  # a resumed watch is the same one
    assert len(watches) == 3  # one per kind and namespace, one for the namespace's events
    lines = progress.getvalue()
    assert f"  event Kustomization/{recording.namespace}/app: Normal Progressing: ConfigMap/" in lines
    assert f"  event OCIRepository/{recording.namespace}/app: Normal NewArtifact: stored artifact" in lines


def _last(stream: str) -> Obj:
    obj: Obj = json.loads(stream.splitlines()[-1])["object"]
    return obj


def test_with_on_failure_wait_a_failed_attempt_is_waited_out_and_is_exit_7_at_the_deadline() -> None:
    failing = Recording("apply-failed")
    observer, _, out = _observe(failing, seconds=1.5, settings=Settings(on_failure="wait"))
    started = time.monotonic()
    with pytest.raises(ConsumerFailedError, match="still failing at the deadline") as raised:
        _wait(observer, [_consumer(failing)], moved=_tag_still_ours)
    assert time.monotonic() - started >= 1.4  # waited for a later attempt, until the deadline
    assert raised.value.exit_code == 7
    assert "FLUX_CI_ON_FAILURE=wait: Flux retries every" in out.getvalue()


def test_with_on_failure_wait_a_terminal_state_still_ends_at_once() -> None:
    recording = Recording("deploy-succeeded")
    stalled = _last(recording.consumers)
    stalled["metadata"]["generation"] = stalled["metadata"].get("generation", 1)
    stalled["status"]["conditions"].append(  # edit: Stalled for the current generation
        {"type": "Stalled", "status": "True", "reason": "InvalidCELExpression", "message": "bad expr",
         "observedGeneration": stalled["metadata"]["generation"]}
    )  # fmt: skip
    recording.consumers += json.dumps({"type": "MODIFIED", "object": stalled}) + "\n"
    observer, _, _ = _observe(recording, seconds=30, settings=Settings(on_failure="wait"))
    started = time.monotonic()
    with pytest.raises(ConsumerFailedError, match="bad expr"):
        _wait(observer, [_consumer(recording, digest="sha256:" + "0" * 64)], moved=_tag_still_ours)
    assert time.monotonic() - started < 10
