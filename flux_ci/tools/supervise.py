"""Every child flux-ci starts, supervised: its deadline, and the SIGINT/SIGTERM that stops it and
everything it started.

Each child runs in a process group of its own (it is the group's leader, sh's `_new_group`), and
stopping it signals the whole group: SIGTERM first, SIGKILL to the group after a short grace. So a
wrapper on PATH (an auth wrapper, a version shim) that ignores SIGTERM, and whatever it started, are
gone too; and when a child has exited, what is left of its group is killed before it is reaped.

A group is signalled only while its leader is not reaped. Until then the leader's pid, and so the
group's number, belongs to it (a zombie still holds both); once reaped, the number may be given to
a stranger. sh would reap a child from its own threads the moment it exits, so a `Child` holds sh's
wait lock from the start, next to the child's pidfd, and lets go only in `ProcessGroup.release`,
after the group's last signal.

What this cannot reach: a descendant that leaves the group on purpose (`setsid`, a daemon), and
anything at all if flux-ci itself is SIGKILLed (the kernel then ends its direct children only).
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from flux_ci.deadline import STOP_GRACE_S
from flux_ci.errors import ExitCode, SignalInterruptError

GRACE_S = STOP_GRACE_S  # SIGTERM, then SIGKILL this much later: flux-ci must exit within 5 s of a signal
# On the main thread, waits are cut into slices this long. A signal delivered to another thread
# (sh runs several) only runs its Python handler when the main thread executes bytecode again.
MAIN_SLICE_S = 0.05
_LONGEST_POLL_S = 86_400.0  # poll(2) takes at most 2**31 - 1 ms; a day, then look again
FALLBACK_POLL_S = 0.005  # without pidfds (not Linux), a child's exit can only be polled for
_SIGNAL_EXITS = {signal.SIGINT: ("SIGINT", ExitCode.SIGINT), signal.SIGTERM: ("SIGTERM", ExitCode.SIGTERM)}


class Child:
    """One running child: its sh process, its stdout pipe, a handle on exactly it, and its timers.

    While `reap_guard` is held (from the start until `ProcessGroup.release`), nobody reaps the child:
    its group may be signalled. Without pidfds (not Linux) the guard cannot be held, as sh must poll
    the child to see it exit; its group is then signalled while sh has not reaped it yet.
    """

    def __init__(self, process: Any, stdout_fd: int, deadline: float, owner: object) -> None:
        self.process = process
        self.stdout_fd = stdout_fd
        self.deadline = deadline
        self.owner = owner
        self.reap_guard = _hold_reaping(process.process)
        # A pidfd names this process and no other, even once its pid is reused: signals sent through
        # it can never hit a stranger, and it becomes readable the moment the child exits.
        self.exit_fd = _open_pidfd(process.pid) if self.reap_guard is not None else None
        if self.exit_fd is None and self.reap_guard is not None:
            self._let_reap()
        self.kill_at: float | None = None  # set when it was asked to stop; SIGKILL then
        self.killed = False
        self.timed_out = False

    def has_exited(self) -> bool:
        if self.exit_fd is not None:
            return readable([self.exit_fd], 0)
        oproc = self.process.process
        return oproc.exit_code is not None or not oproc.is_alive()[0]

    def wait_exited(self) -> None:
        """Block until the child has exited (its deadline and stop are the group's business)."""
        while not self.has_exited():
            if self.exit_fd is None:
                time.sleep(FALLBACK_POLL_S)
            else:
                readable([self.exit_fd], wait_slice())

    def send(self, signum: int) -> None:
        """Signal the child's whole group, and the child itself should it have left the group;
        never once it is reaped, when its numbers may be another process's."""
        if self.reap_guard is None and self.process.process.exit_code is not None:
            return  # reaped (or about to be): not its numbers any more
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)  # it leads its group: the group's number is its pid
        with contextlib.suppress(ProcessLookupError):
            if self.exit_fd is not None:
                signal.pidfd_send_signal(self.exit_fd, signum)

    def end(self) -> None:
        """The child has exited or is being given up: kill what is left of its group, then let it be
        reaped (`reap`). Call once, with no other signal to it still to come."""
        if self.reap_guard is not None:
            self.send(signal.SIGKILL)
            self._let_reap()

    def reap(self) -> None:
        """Wait for the child's exit status (and sh's threads); it is dead or dying by now."""
        self.process.wait()

    def close(self) -> None:
        for fd in (self.stdout_fd, self.exit_fd):
            if fd is not None:
                os.close(fd)

    def _let_reap(self) -> None:
        guard, self.reap_guard = self.reap_guard, None
        if guard is not None:
            guard.release()


class ProcessGroup:
    """Every child flux-ci runs, their deadlines, and the SIGINT/SIGTERM that stops them all.

    Signals are process-wide, so a process has one group (`PROCESSES`); tests make their own. A
    watchdog thread keeps the timers: SIGTERM at a child's deadline or when it is stopped, SIGKILL
    `grace_s` later. The signal handler only records the signal and sends SIGTERMs: raising from it
    could leave a lock held (e.g. inside concurrent.futures) and hang the other threads, so the work
    raises `SignalInterruptError` at its next safe point, where a child returns.

    A backstop keeps the promise to exit within seconds should the work never reach such a point
    (a wait that does not ask `check_interrupted`): if no runner has begun stopping `grace_s + 1`
    seconds after the signal, the watchdog re-sends it to the main thread and the handler raises.
    """

    def __init__(self, grace_s: float = GRACE_S) -> None:
        self.grace_s = grace_s
        # Re-entrant: the signal handler runs on the main thread, which may hold it already.
        self._lock = threading.RLock()
        self._children: set[Child] = set()
        self._closed: list[object] = []  # owners whose stop_all ran: their new children stop at once
        self._owners = 0
        self._interrupted: tuple[str, ExitCode] | None = None
        self._wake: tuple[int, int] | None = None  # the watchdog's wake-up pipe, made on first use
        self._handles_signals = False  # install_signal_handlers routed SIGINT/SIGTERM here
        self._backstop_at: float | None = None
        self._forcing = False

    def attach(self) -> None:
        """A runner starts using the group: from now on a signal is handled at a safe point."""
        with self._lock:
            self._owners += 1
            if self._handles_signals:
                self._start_watchdog()  # now, not in the handler: starting a thread takes locks

    def add(self, child: Child) -> None:
        with self._lock:
            self._start_watchdog()
            self._children.add(child)
            if self._interrupted is not None or any(child.owner is o for o in self._closed):
                # e.g. a watch thread was starting its child while everything was being stopped
                self._stop(child, time.monotonic())
        self._poke()

    def release(self, child: Child) -> None:
        """The child has exited (or is given up): forget it, kill what is left of its group, reap it
        and close its descriptors. Under the lock, so no signal can be on its way to it meanwhile."""
        try:
            with self._lock:
                self._children.discard(child)
                child.end()
            child.reap()
        finally:
            child.close()

    def limit(self, owner: object, until: float) -> None:
        """The owner's running children end by `until` at the latest (the command's deadline, known
        only once the settings are read, for the version checks started before)."""
        with self._lock:
            for child in self._children:
                if child.owner is owner and child.deadline > until:
                    child.deadline = until
        self._poke()

    def stop(self, child: Child) -> None:
        with self._lock:
            self._stop(child, time.monotonic())
        self._poke()

    def close(self, owner: object) -> None:
        """Stop the owner's children and any it starts later; return once those running have exited."""
        with self._lock:
            self._closed.append(owner)
            self._backstop_at = None  # the work is unwinding: it reached a safe point
            mine = [child for child in self._children if child.owner is owner]
            now = time.monotonic()
            for child in mine:
                self._stop(child, now)
        self._poke()
        self._wait_exited(mine)

    def interrupt(self, signal_name: str, exit_code: ExitCode) -> None:
        """Record the signal and stop every child; safe in a signal handler (never blocks long)."""
        with self._lock:
            again = self._interrupted is not None
            self._interrupted = self._interrupted or (signal_name, exit_code)
            now = time.monotonic()
            if not again and self._handles_signals:
                self._backstop_at = now + self.grace_s + 1.0
            for child in list(self._children):
                self._stop(child, now, kill_now=again)  # a second signal: no more grace
        self._poke()

    def check_interrupted(self) -> None:
        if self._interrupted is not None:
            raise SignalInterruptError(*self._interrupted)

    def handle_signals(self) -> None:
        """Make `on_signal` the SIGINT and SIGTERM handler (main thread only)."""
        for signum in _SIGNAL_EXITS:
            signal.signal(signum, self.on_signal)
        self._handles_signals = True

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """The SIGINT/SIGTERM handler (see `install_signal_handlers`)."""
        name, code = _SIGNAL_EXITS[signal.Signals(signum)]
        if not self._owners:  # nothing started yet (settings): no lock is held, stop right here
            raise SignalInterruptError(name, code)
        if self._forcing and self._interrupted is not None:  # the backstop: see the class docstring
            self._forcing = False
            raise SignalInterruptError(*self._interrupted)
        self.interrupt(name, code)

    def _stop(self, child: Child, now: float, *, kill_now: bool = False) -> None:
        if kill_now:
            child.kill_at = now
        elif child.kill_at is None:
            child.kill_at = now + self.grace_s
            child.send(signal.SIGTERM)

    def _wait_exited(self, children: Sequence[Child]) -> None:
        # Bounded: the watchdog SIGKILLs whatever still runs after the grace.
        until = time.monotonic() + self.grace_s + 1.0
        while time.monotonic() < until:
            with self._lock:  # a released child's descriptors are closed: skip it
                if all(c not in self._children or c.has_exited() for c in children):
                    return
            time.sleep(0.01)

    def _start_watchdog(self) -> None:
        if self._wake is None:
            self._wake = os.pipe()
            for fd in self._wake:
                os.set_blocking(fd, False)
            threading.Thread(target=self._watch, name="flux-ci child watchdog", daemon=True).start()

    def _poke(self) -> None:
        """Wake the watchdog to look at the timers again (a pipe write: safe in a signal handler)."""
        if self._wake is not None:
            with contextlib.suppress(BlockingIOError):  # full: it is woken already
                os.write(self._wake[1], b"\0")

    def _watch(self) -> None:
        assert self._wake is not None
        wake = self._wake[0]
        while True:
            due = self._enforce(time.monotonic())
            readable([wake], None if due is None else max(due - time.monotonic(), 0.0))
            with contextlib.suppress(BlockingIOError):
                os.read(wake, 4096)

    def _enforce(self, now: float) -> float | None:
        """Send what is due (SIGTERM at a deadline, SIGKILL after the grace); return when next."""
        upcoming: list[float] = []
        with self._lock:
            for child in self._children:
                if child.killed or child.has_exited():  # its owner reaps and releases it
                    continue
                if child.kill_at is None and now >= child.deadline:
                    child.timed_out = True
                    self._stop(child, now)
                if child.kill_at is None:
                    upcoming.append(child.deadline)
                elif now >= child.kill_at:
                    child.killed = True
                    child.send(signal.SIGKILL)
                else:
                    upcoming.append(child.kill_at)
            if self._backstop_at is not None and now >= self._backstop_at:
                self._force_main_thread()
            elif self._backstop_at is not None:
                upcoming.append(self._backstop_at)
        return min(upcoming, default=None)

    def _force_main_thread(self) -> None:
        self._backstop_at = None
        if self._interrupted is None:
            return
        self._forcing = True
        signum = signal.Signals[self._interrupted[0]]
        # A real signal to the main thread, so a blocking call there returns (EINTR) at once.
        signal.pthread_kill(threading.main_thread().ident or 0, signum)


PROCESSES = ProcessGroup()


def install_signal_handlers(group: ProcessGroup = PROCESSES) -> None:
    """Route SIGINT and SIGTERM to `group`: call once, from the main thread, before any work."""
    group.handle_signals()


def readable(fds: Sequence[int], timeout: float | None) -> bool:
    """Wait until one of fds is readable (True) or the timeout passes (False); None waits for ever."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else min(timeout, _LONGEST_POLL_S) * 1000))


def wait_slice(child: Child | None = None) -> float | None:
    """How long one wait may block: for ever off the main thread (the child's exit wakes it)."""
    if child is not None and child.exit_fd is None:
        return FALLBACK_POLL_S
    return MAIN_SLICE_S if threading.current_thread() is threading.main_thread() else None


def _hold_reaping(oproc: Any) -> threading.Lock | None:
    """sh's wait lock, held: sh reaps only under it (`OProc.is_alive`, `OProc.wait`). None when sh
    reaped the child already (it exited at once)."""
    lock: threading.Lock = oproc._wait_lock  # sh's own: the one way to keep sh from reaping
    lock.acquire()
    if oproc.exit_code is not None:
        lock.release()
        return None
    return lock


def _open_pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:  # cannot be: it is not reaped yet; treated as without pidfds
        return None
    except (AttributeError, OSError):  # not Linux 5.3+: fall back to polling
        return None


@functools.cache
def child_setup() -> Callable[[], None]:
    """What the forked child runs before exec; prepared in the parent, where importing is safe."""
    prctl = _prctl()
    parent = os.getpid()

    def setup() -> None:
        # sh's `_bg` makes the child ignore SIGHUP, which would survive exec: a hangup must end it.
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        # Linux: the kernel SIGKILLs the child if flux-ci dies without stopping it (e.g. SIGKILL).
        # Strictly, when the thread that started it ends; every child is reaped before that.
        if prctl is not None and prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) == 0 and os.getppid() != parent:
            os._exit(1)  # flux-ci died before the kernel was told

    return setup


_PR_SET_PDEATHSIG = 1


def _prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # noqa: PLC0415 - only needed once a child starts

    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL(None, use_errno=True).prctl
    return None
