"""Live Kubernetes Events about the objects flux-ci waits for, as progress lines on stderr, the way
`flux events --watch` shows them: `event Kustomization/apps/app: Warning HealthCheckFailed: ...`.

One `kubectl get events --watch-only` per namespace involved, or one across all namespaces when the
objects span several and the identity may watch events there (else one per namespace). Only what
happens after the watch began is shown, once per object, type, reason and message. Events are
insight, never a reason to fail: a watch the identity may not run ends with one note, and no error
in here reaches the command.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flux_ci.context import Context
from flux_ci.errors import ClusterError, SignalInterruptError
from flux_ci.kube.cluster import can_i
from flux_ci.kube.fluxobjects import cut
from flux_ci.report.models import ObjectRef
from flux_ci.tools import kubectl, kubectl_summary
from flux_ci.tools.kubectl import AccessCheck

EVENTS = "events"  # the core group's Events, as kubectl and the access reviews name them
_RESUME_PAUSES_S = (0.5, 1.0, 2.0, 5.0)  # between attempts to resume a dropped events watch


@dataclass(frozen=True)
class SeenEvent:
    """One Kubernetes Event about one object: what `flux events` prints of it."""

    ref: ObjectRef
    type: str  # Normal or Warning
    reason: str
    message: str

    def line(self) -> str:
        return f"event {self.ref}: {self.type} {self.reason}: {cut(self.message)}"


def parse_event(document: dict[str, Any]) -> tuple[str, SeenEvent | None]:
    """(watch event type, the Event) of one `--output-watch-events` line; None for an Event about no
    namespaced object. Both the core v1 form (`involvedObject`) and events.k8s.io/v1 (`regarding`,
    `note`) are read."""
    change, obj = kubectl.watch_event(document)
    about = obj.get("involvedObject") or obj.get("regarding") or {}
    kind, namespace, name = (str(about.get(key) or "") for key in ("kind", "namespace", "name"))
    if not (kind and namespace and name):
        return change, None
    message = str(obj.get("message") or obj.get("note") or "")
    event = SeenEvent(
        ObjectRef(kind, namespace, name),
        str(obj.get("type") or "Normal"),
        str(obj.get("reason") or ""),
        message,
    )
    return change, event


class EventFilter:
    """Which Events become lines: about an object being waited for, each (object, type, reason,
    message) once. A repeat only raises an Event's count: it says nothing new."""

    def __init__(self, refs: Iterable[ObjectRef] = ()) -> None:
        self._refs = set(refs)
        self._shown: set[SeenEvent] = set()
        self._lock = threading.Lock()

    def follow(self, refs: Iterable[ObjectRef]) -> None:
        with self._lock:
            self._refs.update(refs)

    def take(self, change: str, event: SeenEvent | None) -> SeenEvent | None:
        """The event if it is worth a line now; None if it is a deletion, foreign or shown already."""
        if event is None or change == "DELETED":  # Events expire (after 1 h): nothing happened
            return None
        with self._lock:
            if event.ref not in self._refs or event in self._shown:
                return None
            self._shown.add(event)
            return event

    def warned(self, ref: ObjectRef) -> bool:
        with self._lock:
            return any(event.ref == ref and event.type == "Warning" for event in self._shown)


class EventWatch:
    """The events watches of one Observer, and the lines they print."""

    def __init__(self, ctx: Context, refs: Iterable[ObjectRef], stopped: threading.Event) -> None:
        self._ctx = ctx
        self._stopped = stopped
        refs = set(refs)
        self.filter = EventFilter(refs)
        self.namespaces = sorted({ref.namespace for ref in refs})
        self.threads: list[threading.Thread] = []
        self._shown = threading.Condition()

    def start(self) -> None:
        if len(self.namespaces) > 1:
            self._spawn(self._everywhere_else_each, "events-all")
        elif self.namespaces:
            self._spawn(functools.partial(self._follow, self.namespaces[0]), f"events-{self.namespaces[0]}")

    def wait_for_warning(self, ref: ObjectRef, seconds: float) -> None:
        """Give a Warning about `ref` (a failure just seen in its status) up to `seconds` to arrive:
        the controller records the Event about when it writes the status, on another stream."""
        if not self.threads or ref.namespace not in self.namespaces:
            return
        with self._shown:
            self._shown.wait_for(lambda: self.filter.warned(ref) or not self._active(), timeout=seconds)

    def _active(self) -> bool:
        return not self._stopped.is_set() and self._ctx.active()

    def _spawn(self, run: Callable[[], object], name: str) -> None:
        thread = threading.Thread(target=self._quietly, args=(run,), name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _quietly(self, run: Callable[[], object]) -> None:
        try:
            run()
        except SignalInterruptError:
            return  # the waiting thread sees the signal too, and stops the command
        except Exception as exc:  # events are insight: nothing here may fail the command
            if self._active():
                self._ctx.progress.note(f"live events stopped: {type(exc).__name__}: {exc}")

    def _everywhere_else_each(self) -> None:
        """One watch across all namespaces; one per namespace if the identity may not."""
        if self._follow(None, quiet=True) or not self._active():
            return
        for namespace in self.namespaces:
            self._spawn(functools.partial(self._follow, namespace), f"events-{namespace}")

    def _follow(self, namespace: str | None, *, quiet: bool = False) -> bool:
        """Print new events until stopped; False (after one note unless `quiet`) if refused."""
        attempt = 0
        while self._active():
            argv = kubectl.events_watch_argv(self._ctx.settings.kube_context, namespace)
            stream = self._ctx.runner.stream(
                argv, timeout=self._ctx.timeout(), trace_output=kubectl_summary.summarise
            )
            for document in kubectl.iter_json_documents(stream):
                attempt = 0
                self._show(*parse_event(document))
            if not self._active():
                break
            # The watch ended: refused (RBAC), or dropped (the API server restarted).
            if not self._may_watch(namespace):
                if not quiet:
                    where = f"namespace {namespace}" if namespace else "all namespaces"
                    self._ctx.progress.note(f"live events not shown: may not list/watch events in {where}")
                return False
            pause = _RESUME_PAUSES_S[min(attempt, len(_RESUME_PAUSES_S) - 1)]
            self._stopped.wait(min(pause, self._ctx.deadline.remaining))
            attempt += 1
        return True

    def _may_watch(self, namespace: str | None) -> bool:
        checks = [AccessCheck(verb, EVENTS, namespace or "") for verb in ("list", "watch")]
        try:
            return all(can_i(self._ctx, checks).values())
        except ClusterError:
            return True  # unreachable for now: resume, as the other watches do

    def _show(self, change: str, event: SeenEvent | None) -> None:
        if (shown := self.filter.take(change, event)) is None:
            return
        self._ctx.progress.note(shown.line())
        with self._shown:
            self._shown.notify_all()
