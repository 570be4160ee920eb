"""Live Events, from a real `kubectl get events --watch-only --output-watch-events` stream recorded in the
sandbox while flux-ci deployed twice into one namespace: first a ConfigMap (succeeded), then a
Deployment that never becomes ready (HealthCheckFailed). tests/data/kubectl/watch-events-*.stdout"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from pydantic import SecretStr

from flux_ci.kube.events import EventFilter, EventWatch, SeenEvent, parse_event
from flux_ci.report.models import ObjectRef
from flux_ci.secrets import Masker
from flux_ci.tools import kubectl
from flux_ci.tools.kubectl import iter_json_documents
from flux_ci.tools.output import TraceOutput
from flux_ci.tools.runner import CommandResult
from tests.fakes import Call, FakeRunner, make_context
from tests.golden import text

RECORDED = text("kubectl/watch-events-deploy-then-health-check-failed.stdout")
NAMESPACE = json.loads(RECORDED.splitlines()[0])["object"]["metadata"]["namespace"]
SOURCE = ObjectRef("OCIRepository", NAMESPACE, "app")
CONSUMER = ObjectRef("Kustomization", NAMESPACE, "app")
WATCH = ["kubectl", "get", "events"]
REVIEWS = ["kubectl", "create", "--filename=-"]
SECRET = "events-rec-a87eb2"  # the recording's repository name, registered as a secret


def _recorded() -> list[tuple[str, SeenEvent | None]]:
    return [parse_event(document) for document in iter_json_documents([RECORDED])]


def _lines(refs: set[ObjectRef], events: list[tuple[str, SeenEvent | None]]) -> list[str]:
    wanted = EventFilter(refs)
    return [shown.line() for change, event in events if (shown := wanted.take(change, event))]


def test_the_recorded_stream_holds_no_history_only_what_happened_while_watching() -> None:
    events = _recorded()
    # --watch-only: the first line is an older Event seen again (its count rose), not the list.
    assert [change for change, _ in events] == ["MODIFIED"] + ["ADDED"] * (len(events) - 1)
    assert all(event is not None and event.ref in (SOURCE, CONSUMER) for _, event in events)


def test_only_the_waited_for_objects_events_become_lines_in_flux_events_form() -> None:
    lines = _lines({CONSUMER}, _recorded())
    assert lines[0] == f"event {CONSUMER}: Normal Progressing: ConfigMap/{NAMESPACE}/greeting created"
    assert lines[-1] == (
        f"event {CONSUMER}: Warning HealthCheckFailed: health check failed after 30.01637139s: "
        f"timeout waiting for: [Deployment/{NAMESPACE}/web status: 'InProgress']"
    )
    assert not any(line.startswith(f"event {SOURCE}") for line in lines)
    assert len(_lines({SOURCE, CONSUMER}, _recorded())) == len(lines) + 3  # 2 NewArtifact, 1 pull failure


def test_a_repeat_is_shown_once_and_a_deletion_never() -> None:
    events = _recorded()
    once = _lines({SOURCE, CONSUMER}, events)
    assert _lines({SOURCE, CONSUMER}, events + events) == once  # e.g. a watch resumed after a drop
    deleted = [("DELETED", event) for _, event in events]
    assert _lines({SOURCE, CONSUMER}, deleted) == []


def test_a_long_multi_line_message_becomes_one_line_of_at_most_300_characters() -> None:
    message = "apply failed:\n" + "x" * 1000
    about = {"kind": "Kustomization", "namespace": "a", "name": "b"}
    event_object = {
        "type": "Warning",
        "reason": "ReconciliationFailed",
        "message": message,
        "involvedObject": about,
    }
    document = {"type": "ADDED", "object": event_object}
    _, event = parse_event(document)
    assert event is not None
    line = event.line()
    assert "\n" not in line
    assert len(line.split(": ", 2)[2]) == 300
    assert line.endswith("…")


def test_events_k8s_io_form_and_events_about_no_object_are_read() -> None:
    regarding = {"type": "ADDED", "object": {"type": "Normal", "reason": "Pulled", "note": "done",
                 "regarding": {"kind": "HelmRelease", "namespace": "a", "name": "b"}}}  # fmt: skip
    assert parse_event(regarding) == (
        "ADDED",
        SeenEvent(ObjectRef("HelmRelease", "a", "b"), "Normal", "Pulled", "done"),
    )
    cluster_scoped = {
        "type": "ADDED",
        "object": {"reason": "x", "involvedObject": {"kind": "Node", "name": "n"}},
    }
    assert parse_event(cluster_scoped) == ("ADDED", None)


def test_the_watch_argv_skips_the_initial_list() -> None:
    assert kubectl.events_watch_argv("ci", "apps") == [
        "kubectl", "--context=ci", "get", "events", "--namespace=apps",
        "--output=json", "--watch-only", "--output-watch-events",
    ]  # fmt: skip
    assert "--all-namespaces" in kubectl.events_watch_argv(None, None)


# --- the watches, through a FakeRunner ---------------------------------------------------------------


def _reviews(allowed: Callable[[dict[str, str]], bool]) -> Callable[[str], str]:
    def answer(document: str) -> str:
        items = json.loads(document)["items"]
        for item in items:
            item["status"] = {"allowed": allowed(item["spec"]["resourceAttributes"])}
        return json.dumps({"kind": "List", "items": items})

    return answer


class _Cluster(FakeRunner):
    """Streams the recording once per scope, then nothing; answers access reviews with `allowed`."""

    def __init__(self, allowed: Callable[[dict[str, str]], bool], lines: str = RECORDED) -> None:
        super().__init__(masker=Masker([SECRET]))
        self.lines, self.allowed, self.served = lines, allowed, set[str]()
        self.answer_stream(WATCH, self._stream)

    def _stream(self) -> list[str]:
        scope = _scope(self.calls[-1].argv)  # the stream just started
        if scope in self.served or not self.allowed({"namespace": scope.partition("=")[2]}):
            return []  # a refused watch prints nothing (kubectl says why on stderr) and ends
        self.served.add(scope)
        return self.lines.splitlines(keepends=True)

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: SecretStr | str | None = None,
        env: Mapping[str, str | None] | None = None,
        mutating: bool = False,
        trace_output: TraceOutput | None = None,
    ) -> CommandResult:
        if list(argv[:3]) != REVIEWS:
            return super().run(
                argv, timeout=timeout, stdin=stdin, env=env, mutating=mutating, trace_output=trace_output
            )
        self.calls.append(Call(tuple(argv), str(stdin), {}))
        return CommandResult(tuple(argv), 0, _reviews(self.allowed)(str(stdin)), "", 0.01)


def _scope(argv: Sequence[str]) -> str:
    return next(arg for arg in argv if arg.startswith(("--namespace=", "--all-namespaces")))


def _scopes(cluster: FakeRunner) -> set[str]:
    """Where the events watches started so far looked."""
    return {_scope(call.argv) for call in list(cluster.calls) if call.argv[:3] == tuple(WATCH)}


def _watching(cluster: FakeRunner, refs: set[ObjectRef]) -> tuple[EventWatch, threading.Event, io.StringIO]:
    out = io.StringIO()
    ctx = make_context(runner=cluster, seconds=10, out=out, masker=cluster.masker)
    stopped = threading.Event()
    watch = EventWatch(ctx, refs, stopped)
    watch.start()
    return watch, stopped, out


def _until(check: Callable[[], bool], seconds: float = 5) -> None:
    until = time.monotonic() + seconds
    while not check() and time.monotonic() < until:
        time.sleep(0.02)


def _stop(watch: EventWatch, stopped: threading.Event) -> None:
    stopped.set()
    for thread in watch.threads:
        thread.join(timeout=5)


def test_one_watch_for_the_namespace_prints_masked_event_lines() -> None:
    cluster = _Cluster(lambda _: True)
    watch, stopped, out = _watching(cluster, {SOURCE, CONSUMER})
    _until(lambda: "HealthCheckFailed" in out.getvalue())
    _stop(watch, stopped)
    printed = out.getvalue()
    assert f"  event {CONSUMER}: Warning HealthCheckFailed: health check failed" in printed
    assert SECRET in RECORDED
    assert SECRET not in printed  # through Progress: masked like every line
    assert "from 'oci://127.0.0.1:46259/e2e/****'" in printed
    assert {" ".join(c.argv) for c in cluster.calls if c.argv[:3] == tuple(WATCH)} == {
        " ".join(kubectl.events_watch_argv(None, NAMESPACE))
    }


def test_a_refused_watch_ends_with_one_note_and_no_retry() -> None:
    cluster = _Cluster(lambda _: False)
    watch, stopped, out = _watching(cluster, {CONSUMER})
    _until(lambda: not any(thread.is_alive() for thread in watch.threads))
    _stop(watch, stopped)
    assert out.getvalue().count("live events not shown") == 1
    assert f"may not list/watch events in namespace {NAMESPACE}" in out.getvalue()
    assert len([c for c in cluster.calls if c.argv[:3] == tuple(WATCH)]) == 1


def test_several_namespaces_share_one_watch_when_allowed_everywhere() -> None:
    other = ObjectRef("Kustomization", "other", "app")
    cluster = _Cluster(lambda _: True)
    watch, stopped, out = _watching(cluster, {SOURCE, other})
    _until(lambda: "NewArtifact" in out.getvalue())
    _stop(watch, stopped)
    assert _scopes(cluster) == {"--all-namespaces"}


def test_several_namespaces_fall_back_to_one_watch_each_without_a_cluster_wide_note() -> None:
    other = ObjectRef("Kustomization", "other", "app")
    cluster = _Cluster(lambda attributes: attributes.get("namespace", "") != "")
    watch, stopped, out = _watching(cluster, {SOURCE, other})
    expected = {"--all-namespaces", f"--namespace={NAMESPACE}", "--namespace=other"}
    _until(lambda: _scopes(cluster) == expected and "NewArtifact" in out.getvalue())
    _stop(watch, stopped)
    assert _scopes(cluster) == expected
    assert "live events not shown" not in out.getvalue()


def test_a_failure_waits_briefly_for_its_warning_and_not_at_all_once_it_is_shown() -> None:
    cluster = _Cluster(lambda _: True)
    watch, stopped, out = _watching(cluster, {CONSUMER})
    began = time.monotonic()
    watch.wait_for_warning(CONSUMER, 5)
    assert "HealthCheckFailed" in out.getvalue()
    assert time.monotonic() - began < 4
    began = time.monotonic()
    watch.wait_for_warning(ObjectRef("Kustomization", NAMESPACE, "never-warned"), 0.3)
    assert time.monotonic() - began >= 0.3
    _stop(watch, stopped)
