"""The watches of one cluster: one `kubectl get --watch` per kind and namespace (or per kind across
all namespaces), however many objects are waited for, keeping the latest state of every object seen.

A watch that ends (the API server restarted or dropped the connection) is resumed, list then watch.
A watch can also go silent without ending: an API server that stopped answering without closing its
connections (a dropped route, a load balancer that blackholes packets, a frozen process). So when no
watch has said anything for `SILENCE_S`, one cheap bounded request (`/readyz`) asks the same API
server whether it still answers; at most one such request per cluster every few seconds. While it
does not, the cluster is unreachable since the last moment it answered; once it answers again, every
watch is restarted (list then watch), since a connection that lived through the outage may be dead.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from flux_ci.context import Context
from flux_ci.errors import ClusterError, FluxCIError, SignalInterruptError
from flux_ci.kube.cluster import ForbiddenError, NotInstalledError, list_objects, probe, watch_stream
from flux_ci.kube.fluxobjects import Obj, ref_of
from flux_ci.report.models import ObjectRef
from flux_ci.tools.runner import CommandRunner

Group = tuple[str, str | None]  # (kind, namespace or None for all namespaces)
SILENCE_S = 5.0  # no word from any watch this long: ask the API server whether it still answers
PROBE_TIMEOUT_S = 3.0  # how long that one request may take before the API server counts as silent
_RESUME_PAUSES_S = (0.2, 0.5, 1.0, 2.0)  # between attempts to resume a dropped watch


@dataclass
class Seen:
    """What the watch threads share with the waiting thread."""

    latest: dict[ObjectRef, Obj] = field(default_factory=dict)
    deleted: set[ObjectRef] = field(default_factory=set)
    unreachable: dict[Group, str] = field(default_factory=dict)  # the last connection error per watch
    fatal: list[FluxCIError] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    heard: float = field(default_factory=time.monotonic)  # when the API server last said anything
    silent_since: float | None = None  # the API server stopped answering (None: it answers)
    silent_note: str = ""


class Watches:
    """Runs one watch per group, and the liveness check over them; `changes` names each object as
    its state arrives (None: a watch failed for good, see `seen.fatal`)."""

    def __init__(self, ctx: Context, groups: set[Group]) -> None:
        self._ctx = ctx
        self._groups = sorted(groups, key=lambda g: (g[0], g[1] or ""))
        self.seen = Seen()
        self.changes: queue.Queue[ObjectRef | None] = queue.Queue()
        self.threads: list[threading.Thread] = []
        self.stopped = threading.Event()
        self._scopes: dict[Group, CommandRunner] = {}  # each watch's own runner: restarted alone
        self._scopes_lock = threading.Lock()

    @property
    def latest(self) -> Mapping[ObjectRef, Obj]:
        return self.seen.latest

    def start(self) -> None:
        for group in self._groups:
            self._spawn(lambda group=group: self._watch(group), f"watch-{group[0]}")
        if self._groups:
            self._spawn(self._check_liveness, "liveness")

    def stop(self) -> None:
        self.stopped.set()

    def unreachable_since(self) -> str:
        """Why the cluster counts as unreachable now ("" if it does not)."""
        with self.seen.lock:
            if self.seen.silent_since is not None:
                return self.seen.silent_note
            return "; ".join(sorted(set(self.seen.unreachable.values())))

    # -- the watch threads --------------------------------------------------------------------

    def _spawn(self, target: object, name: str) -> None:
        thread = threading.Thread(target=self._guarded, args=(target,), name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _guarded(self, target: object) -> None:
        try:
            target()  # type: ignore[operator]
        except SignalInterruptError:
            return  # the waiting thread sees the signal itself, at its next tick
        except FluxCIError as exc:
            self._fail(exc)

    def _active(self) -> bool:
        return not self.stopped.is_set() and self._ctx.active()

    def _watch(self, group: Group) -> None:
        kind, namespace = group
        attempt = 0
        while self._active():
            scoped = replace(self._ctx, runner=self._scope(group))
            for event, obj in watch_stream(scoped, kind, namespace):
                attempt = 0
                self._heard()
                self._reached(group)
                self._record(event, obj)
            if not self._active():
                return
            # The watch ended: the API server closed it, restarted, refused us, or went silent and
            # the liveness check stopped it. Find out which with one list (which also brings every
            # state up to date), then resume watching.
            try:
                for obj in list_objects(self._ctx, kind, namespace):
                    self._record("MODIFIED", obj)
                self._heard()
                self._reached(group)
            except ForbiddenError:
                raise
            except NotInstalledError as exc:
                # The kind existed a moment ago: an API server that just restarted serves its
                # custom resources a little after the built-in ones.
                self._lost(group, exc.message)
            except ClusterError as exc:
                if not exc.retryable:
                    raise
                self._lost(group, exc.message)
            pause = _RESUME_PAUSES_S[min(attempt, len(_RESUME_PAUSES_S) - 1)]
            self.stopped.wait(min(pause, self._ctx.deadline.remaining))
            attempt += 1

    def _lost(self, group: Group, error: str) -> None:
        """The watch ended and the list that follows failed: say so once per outage (people see
        why nothing moves), and keep the error for the deadline's message."""
        first = group not in self.seen.unreachable
        self.seen.unreachable[group] = error
        if first:
            self._ctx.progress.note(f"{_label(group)}: watch lost ({error}); resuming when the API answers")

    def _reached(self, group: Group) -> None:
        if self.seen.unreachable.pop(group, None) is not None:
            self._ctx.progress.note(f"{_label(group)}: watch resumed (list, then watch)")

    def _scope(self, group: Group) -> CommandRunner:
        with self._scopes_lock:
            scope = self._scopes[group] = self._ctx.runner.scoped()
            return scope

    def _restart(self) -> None:
        """Stop every watch's kubectl: each one lists and watches again (see `_watch`)."""
        with self._scopes_lock:
            scopes = list(self._scopes.values())
        for scope in scopes:
            scope.stop_all()

    def _record(self, event: str, obj: Obj) -> None:
        ref = ref_of(obj)
        with self.seen.lock:
            if event == "DELETED":
                self.seen.deleted.add(ref)
            else:
                self.seen.deleted.discard(ref)
                self.seen.latest[ref] = obj
        self.changes.put(ref)

    def _heard(self) -> None:
        self.seen.heard = time.monotonic()

    def _fail(self, error: FluxCIError) -> None:
        with self.seen.lock:
            self.seen.fatal.append(error)
        self.changes.put(None)

    # -- liveness -----------------------------------------------------------------------------

    def _check_liveness(self) -> None:
        while self._active():
            quiet = time.monotonic() - self.seen.heard
            if quiet < SILENCE_S:
                self.stopped.wait(min(SILENCE_S - quiet, self._ctx.deadline.remaining) + 0.01)
                continue
            asked = time.monotonic()
            error = probe(self._ctx, min(PROBE_TIMEOUT_S, max(self._ctx.deadline.remaining, 0.1)))
            if not self._active():
                return
            if error is None:
                self._answered()
            else:
                self._silent(error)
                # One request per SILENCE_S at most, however fast the probe failed.
                self.stopped.wait(max(SILENCE_S - (time.monotonic() - asked), 0.1))

    def _answered(self) -> None:
        was_silent = self.seen.silent_since is not None
        with self.seen.lock:
            self.seen.silent_since = None
            self.seen.silent_note = ""
        self._heard()
        if was_silent:
            self._ctx.progress.note("the Kubernetes API answers again: watching anew (list, then watch)")
            self._restart()

    def _silent(self, error: str) -> None:
        with self.seen.lock:
            first = self.seen.silent_since is None
            if first:
                self.seen.silent_since = self.seen.heard
                since = _clock(self.seen.heard)
                self.seen.silent_note = f"the Kubernetes API has not answered since {since} (last: {error})"
            note = self.seen.silent_note
        if first:
            self._ctx.progress.note(note)


def _label(group: Group) -> str:
    kind, namespace = group
    return f"{kind} in namespace {namespace}" if namespace else f"{kind} in all namespaces"


def _clock(monotonic: float) -> str:
    """A monotonic instant as the wall-clock time people read in the log (UTC)."""
    wall = time.time() - (time.monotonic() - monotonic)
    return datetime.fromtimestamp(wall, UTC).strftime("%H:%M:%S UTC")
