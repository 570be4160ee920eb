"""The wait engine: observed states in, verdicts out, for sources and consumers alike.

One `Observer` runs one `kubectl get --watch` per kind and namespace (or per kind across all
namespaces), however many objects are waited for, and keeps the latest state of every object it
sees. `Observer.wait` judges the targets' states as they change, under the command's one deadline:
the first failure ends the wait, a stall is reported, and at the deadline the error names every
object not done and why (including a controller that never handled the reconcile request).

A watch that ends (the API server restarted or dropped the connection) is resumed, list then watch,
until the deadline; only a cluster still unreachable at the deadline ends as a cluster error.

New Kubernetes Events about the objects waited for are shown as they happen (`flux_ci.kube.events`), from
one more watch per namespace involved, or one across all namespaces.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from flux_ci.context import Context
from flux_ci.errors import ClusterError, DeadlineExceededError, FluxCIError, SignalInterruptError
from flux_ci.kube.cluster import ForbiddenError, NotInstalledError, list_objects, watch_stream
from flux_ci.kube.events import EventWatch
from flux_ci.kube.fluxobjects import Obj, Phase, Verdict, ref_of
from flux_ci.report.models import ObjectRef

# Which controller answers a reconcile request for each kind, for messages people can act on.
CONTROLLERS = {
    "OCIRepository": "source-controller",
    "Kustomization": "kustomize-controller",
    "HelmRelease": "helm-controller",
}
UNACKNOWLEDGED_NOTE_S = 20.0  # a controller usually handles a request in well under a second
STALL_NOTE_S = 30.0  # one "still waiting" line after this long without any change
_RESUME_PAUSES_S = (0.2, 0.5, 1.0, 2.0)  # between attempts to resume a dropped watch
_TICK_S = 0.2  # the main thread wakes at least this often (signals, deadline, notes)
# How long a failure waits for the Warning event that explains it; the controller records it about
# when it writes the status, and it usually arrives within milliseconds.
EVENT_GRACE_S = 2.0

Judge = Callable[[Obj], Verdict]
Moved = Callable[[ObjectRef, str, str], None]  # (ref, tag, digest): may raise SupersededError
Failure = Callable[[ObjectRef, str], FluxCIError]
Group = tuple[str, str | None]  # (kind, namespace or None for all namespaces)


@dataclass(frozen=True)
class Target:
    """An object to wait for, how to judge it, what to raise when it fails."""

    ref: ObjectRef
    judge: Judge
    fail: Failure
    requested_at: str | None = None  # the reconcile token we wrote on it, if any


@dataclass
class _Watched:
    """What the watch threads share with the waiting thread."""

    latest: dict[ObjectRef, Obj] = field(default_factory=dict)
    deleted: set[ObjectRef] = field(default_factory=set)
    unreachable: dict[Group, str] = field(default_factory=dict)  # the last connection error per watch
    fatal: list[FluxCIError] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Observer:
    """Runs one watch per group and keeps the latest state of every object seen."""

    def __init__(self, ctx: Context, groups: set[Group]) -> None:
        # Its own runner scope: stopping these watches must not stop another cluster's work, nor
        # the commands this run still has to start (a rollback).
        self._ctx = replace(ctx, runner=ctx.runner.scoped())
        self._groups = sorted(groups, key=lambda g: (g[0], g[1] or ""))
        self._seen = _Watched()
        self._changes: queue.Queue[ObjectRef | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._events: EventWatch | None = None
        self.verdicts: dict[ObjectRef, Verdict] = {}  # the last verdict of every object judged

    @property
    def latest(self) -> Mapping[ObjectRef, Obj]:
        return self._seen.latest

    def start(self, known: list[Obj]) -> Observer:
        """Start the watches; `known` (objects just listed) seed the states until events arrive."""
        for obj in known:
            self._seen.latest.setdefault(ref_of(obj), obj)
        if self._ctx.runner.dry_run:
            return self  # nothing is pushed or requested, so there is nothing to watch for
        for group in self._groups:
            thread = threading.Thread(
                target=self._watch, args=(group,), name=f"watch-{group[0]}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        if known:  # the objects to wait for: their Events are worth showing
            self._events = EventWatch(self._ctx, [ref_of(obj) for obj in known], self._stop)
            self._events.start()
        return self

    def stop(self) -> None:
        """Stop every watch (the command is done with the cluster, whatever the outcome)."""
        self._stop.set()
        self._ctx.cancelled.set()
        if self._threads or self._events is not None:
            self._ctx.runner.stop_all()
        for thread in [*self._threads, *(self._events.threads if self._events else [])]:
            thread.join(timeout=5)

    # -- the watch threads --------------------------------------------------------------------

    def _active(self) -> bool:
        return not self._stop.is_set() and self._ctx.active()

    def _watch(self, group: Group) -> None:
        try:
            self._follow(group)
        except SignalInterruptError:
            return  # the waiting thread sees the signal itself, at its next tick
        except FluxCIError as exc:
            self._fail(exc)

    def _follow(self, group: Group) -> None:
        kind, namespace = group
        attempt = 0
        while self._active():
            for event, obj in watch_stream(self._ctx, kind, namespace):
                attempt = 0
                self._seen.unreachable.pop(group, None)
                self._record(event, obj)
            if not self._active():
                return
            # The watch ended: the API server closed it, restarted, or refused us. Find out which
            # with one list (which also brings every state up to date), then resume watching.
            try:
                for obj in list_objects(self._ctx, kind, namespace):
                    self._record("MODIFIED", obj)
                self._seen.unreachable.pop(group, None)
            except ForbiddenError as exc:
                self._fail(exc)
                return
            except NotInstalledError as exc:
                # The kind existed a moment ago: an API server that just restarted serves its
                # custom resources a little after the built-in ones.
                self._seen.unreachable[group] = exc.message
            except ClusterError as exc:
                if not exc.retryable:
                    self._fail(exc)
                    return
                self._seen.unreachable[group] = exc.message
            pause = _RESUME_PAUSES_S[min(attempt, len(_RESUME_PAUSES_S) - 1)]
            self._stop.wait(min(pause, self._ctx.deadline.remaining))
            attempt += 1

    def _record(self, event: str, obj: Obj) -> None:
        ref = ref_of(obj)
        with self._seen.lock:
            if event == "DELETED":
                self._seen.deleted.add(ref)
            else:
                self._seen.deleted.discard(ref)
                self._seen.latest[ref] = obj
        self._changes.put(ref)

    def _fail(self, error: FluxCIError) -> None:
        with self._seen.lock:
            self._seen.fatal.append(error)
        self._changes.put(None)

    # -- waiting ------------------------------------------------------------------------------

    def wait(self, targets: list[Target], *, what: str, moved: Moved) -> dict[ObjectRef, Verdict]:
        """Block until every target is DONE; raise its `fail` on FAILED, a timeout at the deadline.

        Returns the last verdict of every target (also available through `verdicts` on failure).
        """
        waiting = _Waiting(self._ctx, {t.ref: t for t in targets}, moved, what, self._handled)
        waiting.verdicts = self.verdicts
        if self._events is not None:
            self._events.filter.follow(waiting.targets)
        for target in targets:
            self._judge(waiting, target.ref)
        while not waiting.all_done():
            self._raise_fatal()
            remaining = self._ctx.deadline.remaining
            if remaining <= 0:
                raise self._deadline_error(waiting)
            try:
                changed = self._changes.get(timeout=min(remaining, _TICK_S))
            except queue.Empty:
                changed = None
            self._ctx.runner.check_interrupted()  # every tick: a SIGTERM must not wait for a change
            if changed is not None and changed in waiting.targets:
                self._judge(waiting, changed)
            waiting.tick()
        return waiting.verdicts

    def _judge(self, waiting: _Waiting, ref: ObjectRef) -> None:
        try:
            waiting.judge(ref, self._state(ref))
        except FluxCIError:
            verdict = waiting.verdicts.get(ref)
            if self._events is not None and verdict is not None and verdict.phase is Phase.FAILED:
                # The failure's own Event says it in the controller's words, as a line before the error.
                self._events.wait_for_warning(ref, min(EVENT_GRACE_S, self._ctx.deadline.remaining))
            raise

    def _state(self, ref: ObjectRef) -> Obj | None:
        with self._seen.lock:
            if ref in self._seen.deleted:
                raise ClusterError(f"{ref} was deleted while flux-ci waited for it")
            return self._seen.latest.get(ref)

    def _handled(self, ref: ObjectRef, token: str) -> bool:
        with self._seen.lock:
            obj = self._seen.latest.get(ref)
        return obj is not None and obj.get("status", {}).get("lastHandledReconcileAt") == token

    def _raise_fatal(self) -> None:
        with self._seen.lock:
            if self._seen.fatal:
                raise self._seen.fatal[0]

    def _deadline_error(self, waiting: _Waiting) -> FluxCIError:
        if self._seen.unreachable:
            last = "; ".join(sorted(set(self._seen.unreachable.values())))
            seconds = self._ctx.deadline.seconds
            message = f"the Kubernetes API was still unreachable at the deadline ({seconds:g}s): {last}"
            return ClusterError(message, retryable=True)
        return DeadlineExceededError(
            f"timed out after {self._ctx.deadline.seconds:g}s waiting for {waiting.what}:\n"
            + "\n".join(f"  - {line}" for line in waiting.pending())
        )


class _Waiting:
    """The verdicts of one wait, and the notes people see while it lasts."""

    def __init__(
        self,
        ctx: Context,
        targets: dict[ObjectRef, Target],
        moved: Moved,
        what: str,
        handled: Callable[[ObjectRef, str], bool],
    ) -> None:
        self.ctx = ctx
        self.handled = handled
        self.targets = targets
        self.moved = moved
        self.what = what
        self.verdicts: dict[ObjectRef, Verdict] = {}
        self.started = time.monotonic()
        self.last_change = self.started
        self._noted_unacknowledged: set[ObjectRef] = set()
        self._noted_stall = False

    def all_done(self) -> bool:
        return all(
            (verdict := self.verdicts.get(ref)) is not None and verdict.phase is Phase.DONE
            for ref in self.targets
        )

    def judge(self, ref: ObjectRef, obj: Obj | None) -> None:
        if obj is None:
            return  # not seen yet: its watch has not delivered it
        target = self.targets[ref]
        verdict = target.judge(obj)
        previous = self.verdicts.get(ref)
        self.verdicts[ref] = verdict
        if previous != verdict:
            self.last_change = time.monotonic()
            self._noted_stall = False
            self.ctx.progress.note(f"{ref}: {verdict.phase}: {verdict.message}")
        if verdict.phase is Phase.FAILED:
            raise target.fail(ref, verdict.message)
        if verdict.moved is not None:
            self.moved(ref, *verdict.moved)
            if verdict.settled:
                # Flux handled our request, holds another digest, and the tag still points to ours.
                raise target.fail(
                    ref, f"{verdict.message} after the reconcile request, although the tag points to ours"
                )

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.started >= UNACKNOWLEDGED_NOTE_S:
            for ref in self._unacknowledged():
                if ref not in self._noted_unacknowledged:
                    self._noted_unacknowledged.add(ref)
                    self.ctx.progress.note(f"{ref}: {_unacknowledged_text(self.targets[ref])}")
        if not self._noted_stall and now - self.last_change >= STALL_NOTE_S:
            self._noted_stall = True
            waited = now - self.started
            for line in self.pending():
                self.ctx.progress.note(f"still waiting after {waited:.0f}s for {line}")

    def _not_done(self) -> list[ObjectRef]:
        return [
            ref
            for ref in sorted(self.targets)
            if (verdict := self.verdicts.get(ref)) is None or verdict.phase is not Phase.DONE
        ]

    def _unacknowledged(self) -> list[ObjectRef]:
        return [
            ref
            for ref in self._not_done()
            if (token := self.targets[ref].requested_at) and not self.handled(ref, token)
        ]

    def pending(self) -> list[str]:
        unacknowledged = set(self._unacknowledged())
        lines = []
        for ref in self._not_done():
            verdict = self.verdicts.get(ref)
            line = f"{ref} (last: {verdict.message if verdict else 'never seen by the watch'})"
            if ref in unacknowledged:
                line += f"; {_unacknowledged_text(self.targets[ref])}"
            lines.append(line)
        return lines


def _unacknowledged_text(target: Target) -> str:
    controller = CONTROLLERS.get(target.ref.kind, "its controller")
    return (
        f"{controller} has not acknowledged the reconcile request written at {target.requested_at} "
        "(status.lastHandledReconcileAt): is it running, and does it watch this namespace?"
    )
