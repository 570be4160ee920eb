"""Waits on several Flux objects at once, each through its own watch, under the command's deadline.

The first failure cancels the other watches; at the deadline the error names every object that was
not done, with the last message Flux gave for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait

from flux_ci.cluster import watch_object
from flux_ci.context import Context
from flux_ci.errors import DeadlineExceededError, FluxCIError
from flux_ci.fluxobjects import Obj, Phase, Verdict
from flux_ci.models import ObjectRef

_POLL_S = 0.2
Judge = Callable[[ObjectRef, Obj], Verdict]
Failure = Callable[[ObjectRef, str], FluxCIError]


class _Tracker:
    """The latest object and verdict per ref, shared by the watch threads."""

    def __init__(self, ctx: Context, objects: dict[ObjectRef, Obj]) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()
        self.objects = objects
        self.verdicts: dict[ObjectRef, Verdict] = {}

    def update(self, ref: ObjectRef, obj: Obj, verdict: Verdict) -> None:
        with self._lock:
            previous = self.verdicts.get(ref)
            self.objects[ref] = obj
            self.verdicts[ref] = verdict
        if previous != verdict:  # progress only when something changed
            self._ctx.progress.note(f"{ref}: {verdict.phase}: {verdict.message}")

    def pending(self) -> list[str]:
        with self._lock:
            return [
                f"{ref} (last: {verdict.message})"
                for ref, verdict in sorted(self.verdicts.items())
                if verdict.phase is not Phase.DONE
            ]


def wait_all(
    ctx: Context,
    refs: Sequence[ObjectRef],
    judge: Judge,
    fail: Failure,
    *,
    what: str,
    latest: dict[ObjectRef, Obj],
) -> None:
    """Block until `judge` says DONE for every ref; raise `fail(...)` on FAILED, exit 8 at the deadline.

    `latest` receives each object as last seen, also when this raises, so reports show the state
    that made it fail.
    """
    tracker = _Tracker(ctx, latest)
    if not refs:
        return

    def watch_one(ref: ObjectRef) -> None:
        for obj in watch_object(ctx, ref):
            verdict = judge(ref, obj)
            tracker.update(ref, obj, verdict)
            if verdict.phase is Phase.DONE:
                return
            if verdict.phase is Phase.FAILED:
                raise fail(ref, verdict.message)
        if not ctx.cancelled.is_set():
            tracker.verdicts.setdefault(ref, Verdict(Phase.WAITING, "no answer from the API server yet"))
            raise _timeout(ctx, what, tracker)

    with ThreadPoolExecutor(max_workers=len(refs), thread_name_prefix="watch") as pool:
        pending: set[Future[None]] = {pool.submit(watch_one, ref) for ref in refs}
        try:
            while pending:
                # Short waits, not one blocking call: the main thread must stay free to run the
                # SIGINT/SIGTERM handler, which Python only runs between its bytecodes.
                done, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_EXCEPTION)
                for future in done:
                    future.result()
        except BaseException:
            ctx.cancelled.set()  # stop the other watches now, not at the deadline
            ctx.runner.stop_all()
            raise


def _timeout(ctx: Context, what: str, tracker: _Tracker) -> DeadlineExceededError:
    pending = "\n".join(f"  - {line}" for line in tracker.pending())
    return DeadlineExceededError(f"timed out after {ctx.deadline.seconds:g}s waiting for {what}:\n{pending}")
