"""The wait engine: observed states in, verdicts out, for sources and consumers alike.

`Observer.wait` judges the targets' states as `watch.Watches` delivers them, under the command's one
deadline: the first failure ends the wait (unless FLUX_CI_ON_FAILURE=wait, where only a failure Flux
will not retry by itself ends it), a stall is reported, and at the deadline the error names every
object not done and why: a controller that never handled the reconcile request, a registry fault
source-controller keeps retrying (exit 4, retryable), the cluster silent since a moment (exit 5,
retryable), or the last failure of an object waited out (exit 7).

New Kubernetes Events about the objects waited for are shown as they happen (`events`), from one
more watch per namespace involved, or one across all namespaces.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from flux_ci.context import Context
from flux_ci.errors import ClusterError, DeadlineExceededError, FluxCIError, RegistryError
from flux_ci.kube.events import EventWatch
from flux_ci.kube.fluxobjects import Obj, ref_of
from flux_ci.kube.verdicts import Phase, Verdict, next_attempt
from flux_ci.kube.watch import Group, Watches
from flux_ci.report.models import ObjectRef

# Which controller answers a reconcile request for each kind, for messages people can act on.
CONTROLLERS = {
    "OCIRepository": "source-controller",
    "Kustomization": "kustomize-controller",
    "HelmRelease": "helm-controller",
}
UNACKNOWLEDGED_NOTE_S = 20.0  # a controller usually handles a request in well under a second
STALL_NOTE_S = 30.0  # one "still waiting" line after this long without any change
_TICK_S = 0.2  # the main thread wakes at least this often (signals, deadline, notes)
# How long a failure waits for the Warning event that explains it; the controller records it about
# when it writes the status, and it usually arrives within milliseconds.
EVENT_GRACE_S = 2.0

Judge = Callable[[Obj], Verdict]
Moved = Callable[[ObjectRef, str, str], None]  # (ref, tag, digest): may raise SupersededError
Done = Callable[[ObjectRef], None]  # a target just became done (its dependants may move now)
Failure = Callable[[ObjectRef, str], FluxCIError]


@dataclass(frozen=True)
class Target:
    """An object to wait for, how to judge it, what to raise when it fails."""

    ref: ObjectRef
    judge: Judge
    fail: Failure
    requested_at: str | None = None  # the reconcile token we wrote on it, if any
    acknowledged: Callable[[Obj], bool] | None = None  # did its controller handle our request?


class Observer:
    """The watches of one cluster, and the waits judged over them."""

    def __init__(self, ctx: Context, groups: set[Group]) -> None:
        # Its own runner scope: stopping these watches must not stop another cluster's work, nor
        # the commands this run still has to start (a rollback).
        self._ctx = replace(ctx, runner=ctx.runner.scoped())
        self._watches = Watches(self._ctx, groups)
        self._events: EventWatch | None = None
        self.verdicts: dict[ObjectRef, Verdict] = {}  # the last verdict of every object judged
        self.reported = False  # its rows are in the report: it stopped for good (`delivery.observe`)

    @property
    def latest(self) -> Mapping[ObjectRef, Obj]:
        return self._watches.latest

    def start(self, known: list[Obj]) -> Observer:
        """Start the watches; `known` (objects just listed) seed the states until events arrive."""
        for obj in known:
            self._watches.seen.latest.setdefault(ref_of(obj), obj)
        if self._ctx.runner.dry_run:
            return self  # nothing is pushed or requested, so there is nothing to watch for
        self._watches.start()
        if known:  # the objects to wait for: their Events are worth showing
            self._events = EventWatch(self._ctx, [ref_of(obj) for obj in known], self._watches.stopped)
            self._events.start()
        return self

    def stop(self) -> None:
        """Stop every watch (the command is done with the cluster, whatever the outcome)."""
        self._watches.stop()
        self._ctx.cancelled.set()
        threads = [*self._watches.threads, *(self._events.threads if self._events else [])]
        if threads:
            self._ctx.runner.stop_all()
        for thread in threads:
            thread.join(timeout=5)

    def wait(
        self, targets: list[Target], *, what: str, moved: Moved, done: Done | None = None
    ) -> dict[ObjectRef, Verdict]:
        """Block until every target is DONE; raise its `fail` on FAILED, a timeout at the deadline.
        `done` hears of each target as it becomes DONE.

        Returns the last verdict of every target (also available through `verdicts` on failure).
        """
        waiting = _Waiting(self._ctx, {t.ref: t for t in targets}, moved, what, self._watches.latest)
        waiting.done = done
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
                changed = self._watches.changes.get(timeout=min(remaining, _TICK_S))
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
        seen = self._watches.seen
        with seen.lock:
            if ref in seen.deleted:
                raise ClusterError(f"{ref} was deleted while flux-ci waited for it")
            return seen.latest.get(ref)

    def _raise_fatal(self) -> None:
        seen = self._watches.seen
        with seen.lock:
            if seen.fatal:
                raise seen.fatal[0]

    def _deadline_error(self, waiting: _Waiting) -> FluxCIError:
        seconds = self._ctx.deadline.seconds
        if unreachable := self._watches.unreachable_since():
            message = f"the Kubernetes API was still unreachable at the deadline ({seconds:g}s)"
            return ClusterError(f"{message}: {unreachable}", retryable=True)
        pending = waiting.not_done()
        failed = [ref for ref in pending if waiting.verdicts[ref].phase is Phase.FAILED]
        if failed:  # FLUX_CI_ON_FAILURE=wait: Flux never got past the failure
            ref = failed[0]
            message = f"{waiting.verdicts[ref].message} (still failing at the deadline, {seconds:g}s)"
            return waiting.targets[ref].fail(ref, message)
        faults = [ref for ref in pending if ref in waiting.faults]
        if faults and len(faults) == len(pending):
            lines = "; ".join(f"{ref}: {waiting.faults[ref]}" for ref in faults)
            return RegistryError(
                f"source-controller could not fetch the artifact by the deadline ({seconds:g}s): the "
                f"registry kept failing transiently (Flux keeps retrying; run the job again): {lines}",
                retryable=True,
            )
        return DeadlineExceededError(
            f"timed out after {seconds:g}s waiting for {waiting.what}:\n"
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
        latest: Mapping[ObjectRef, Obj],
    ) -> None:
        self.ctx = ctx
        self.targets = targets
        self.moved = moved
        self.what = what
        self.latest = latest
        self.verdicts: dict[ObjectRef, Verdict] = {}
        # The last transient registry fault each source reported: between its retries it shows
        # "building artifact" (Reconciling), and at the deadline the fault, not that, is the cause.
        self.faults: dict[ObjectRef, str] = {}
        self.started = time.monotonic()
        self.last_change = self.started
        self._noted_unacknowledged: set[ObjectRef] = set()
        self._noted_stall = False
        self._waits_out_failures = ctx.settings.on_failure == "wait"
        self.done: Done | None = None

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
        if verdict.fault:
            self.faults[ref] = verdict.fault
        elif verdict.phase is not Phase.WAITING:
            self.faults.pop(ref, None)
        changed = previous != verdict
        if changed:
            self.last_change = time.monotonic()
            self._noted_stall = False
            self.ctx.progress.note(f"{ref}: {verdict.phase}: {verdict.message}")
            if verdict.phase is Phase.DONE and self.done is not None:
                self.done(ref)
        if verdict.phase is Phase.FAILED:
            if not self._waits_out_failures or verdict.terminal:
                raise target.fail(ref, verdict.message)
            if changed:
                self.ctx.progress.note(f"{ref}: FLUX_CI_ON_FAILURE=wait: {next_attempt(obj)}; waiting")
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

    def not_done(self) -> list[ObjectRef]:
        return [
            ref
            for ref in sorted(self.targets)
            if (verdict := self.verdicts.get(ref)) is None or verdict.phase is not Phase.DONE
        ]

    def _unacknowledged(self) -> list[ObjectRef]:
        unanswered = []
        for ref in self.not_done():
            target = self.targets[ref]
            obj = self.latest.get(ref)
            if target.requested_at and target.acknowledged and not (obj and target.acknowledged(obj)):
                unanswered.append(ref)
        return unanswered

    def pending(self) -> list[str]:
        unacknowledged = set(self._unacknowledged())
        lines = []
        for ref in self.not_done():
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
        "(status.lastHandledReconcileAt, nor a later request): is it running, and does it watch this "
        "namespace?"
    )
