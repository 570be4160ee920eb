"""The one door to external commands: the only module that imports `sh`.

Every child gets an argv list (never a shell string), an explicit environment, a deadline cut from the
command's and captured output. With tracing on, each command is printed before it runs, shell-quoted
and masked, followed by its exit code and duration (and its output at `-vv`).

Every child belongs to a `ProcessGroup` (one per flux-ci process, `PROCESSES`), which enforces the
deadlines and stops children on SIGINT/SIGTERM: SIGTERM first, SIGKILL after a short grace.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import select
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from flux_ci.errors import DeadlineExceededError, ExitCode, SignalInterruptError, ToolError

if TYPE_CHECKING:  # annotations only: importing this module must stay cheap (the CLI installs the
    # signal handlers before it knows whether any command will run)
    from pydantic import SecretStr

    from flux_ci.secrets import Masker

# sh logs every command line at INFO; argv holds no secret, but our own trace is the one place for it.
logging.getLogger("sh").setLevel(logging.WARNING)

# The caller decides what an exit code means, not sh: every code, and death by any signal (-N).
_ANY_EXIT_CODE = tuple(range(-64, 256))
GRACE_S = 2.0  # SIGTERM, then SIGKILL this much later: flux-ci must exit within 5 s of a signal
_READ_SIZE = 1 << 16
# On the main thread, waits are cut into slices this long. A signal delivered to another thread
# (sh runs several) only runs its Python handler when the main thread executes bytecode again.
_MAIN_SLICE_S = 0.05
_FALLBACK_POLL_S = 0.005  # without pidfds (not Linux), a child's exit can only be polled for
_SIGNAL_EXITS = {signal.SIGINT: ("SIGINT", ExitCode.SIGINT), signal.SIGTERM: ("SIGTERM", ExitCode.SIGTERM)}


@dataclass(frozen=True)
class CommandResult:
    """What one finished child process did."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def error_text(self) -> str:
        """The child's own last words: the last non-empty stderr lines, else stdout's."""
        for stream in (self.stderr, self.stdout):
            lines = [line.strip() for line in stream.splitlines() if line.strip()]
            if lines:
                return "\n".join(lines[-3:])
        return f"exit code {self.exit_code}"


class CommandRunner(Protocol):
    """What the rest of flux-ci needs from a runner (tests substitute a recording fake)."""

    masker: Masker
    dry_run: bool

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        stdin: SecretStr | str | None = None,
        env: Mapping[str, str | None] | None = None,
        mutating: bool = False,
    ) -> CommandResult: ...

    def stream(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str | None] | None = None
    ) -> Generator[str, None, None]: ...

    def stop_all(self) -> None: ...

    def check_interrupted(self) -> None: ...

    def scoped(self) -> CommandRunner: ...


class Child:
    """One running child: its sh process, its stdout pipe, a handle on exactly it, and its timers."""

    def __init__(self, process: Any, stdout_fd: int, deadline: float, owner: object) -> None:
        self.process = process
        self.stdout_fd = stdout_fd
        self.deadline = deadline
        self.owner = owner
        # A pidfd names this process and no other, even once its pid is reused: signals sent through
        # it can never hit a stranger, and it becomes readable the moment the child exits.
        self.exit_fd = _open_pidfd(process.pid)
        self.kill_at: float | None = None  # set when it was asked to stop; SIGKILL then
        self.killed = False
        self.timed_out = False

    def has_exited(self) -> bool:
        if self.exit_fd is not None:
            return _readable([self.exit_fd], 0)
        oproc = self.process.process
        return oproc.exit_code is not None or not oproc.is_alive()[0]

    def wait_exited(self) -> None:
        """Block until the child has exited (its deadline and stop are the group's business)."""
        while not self.has_exited():
            if self.exit_fd is None:
                time.sleep(_FALLBACK_POLL_S)
            else:
                _readable([self.exit_fd], _slice())

    def send(self, signum: int) -> None:
        """Signal the child unless it is gone; never a pid that may now be another process's."""
        with contextlib.suppress(ProcessLookupError):
            if self.exit_fd is not None:
                signal.pidfd_send_signal(self.exit_fd, signum)
            elif self.process.process.exit_code is None:  # not reaped yet, so the pid is still its own
                os.kill(self.process.pid, signum)

    def close(self) -> None:
        for fd in (self.stdout_fd, self.exit_fd):
            if fd is not None:
                os.close(fd)


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
        """The child is reaped: forget it and close its descriptors (never while signalling it)."""
        with self._lock:
            self._children.discard(child)
            child.close()

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
            _readable([wake], None if due is None else max(due - time.monotonic(), 0.0))
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


class Runner:
    """Runs external commands for one flux-ci invocation."""

    def __init__(
        self,
        *,
        masker: Masker,
        env: Mapping[str, str],
        trace: int = 0,
        dry_run: bool = False,
        log: TextIO | None = None,
        group: ProcessGroup = PROCESSES,
        hold_trace: bool = False,
    ) -> None:
        self.masker = masker
        self.env = dict(env)
        self.trace = trace
        self.dry_run = dry_run
        self._log = log
        self._group = group
        self._scopes: list[Runner] = []
        self._closed = False
        # hold_trace: the settings (FLUX_CI_TRACE) are not read yet; trace lines above `trace` wait
        # here, with their level, until `settle` says whether they are wanted.
        self._held: list[tuple[int, str]] | None = [] if hold_trace else None
        self._held_lock = threading.Lock()
        group.attach()

    def settle(self, *, trace: int, dry_run: bool) -> None:
        """The settings are read: from now on `trace` and `dry_run` hold, and the trace lines held
        until now (the early version checks) are printed if `trace` asks for them."""
        with self._held_lock:
            held, self._held = self._held or [], None
            self.trace, self.dry_run = trace, dry_run
        for level, line in held:
            if level <= trace:
                self._print(line)

    def scoped(self) -> Runner:
        """A runner for one part of the work (one cluster's watches): the same settings and
        process group, but its own children, so its `stop_all` stops nothing else. The parent's
        `stop_all` still stops them."""
        scope = Runner(
            masker=self.masker, env=self.env, trace=self.trace, dry_run=self.dry_run, log=self._log,
            group=self._group,
        )  # fmt: skip
        self._scopes.append(scope)
        if self._closed:  # everything is being stopped: so is what a late scope starts
            scope.stop_all()
        return scope

    def quote(self, argv: Sequence[str]) -> str:
        """The masked, copy-pasteable shell form of argv."""
        return self.masker.mask(shlex.join(argv))

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        stdin: SecretStr | str | None = None,
        env: Mapping[str, str | None] | None = None,
        mutating: bool = False,
    ) -> CommandResult:
        """Run argv to completion and return what it did; a non-zero exit is data, not an error.

        `mutating` commands change the registry or the cluster: in dry-run mode they are printed and
        skipped. A `SecretStr` stdin is the only way a secret reaches a child.
        """
        argv = tuple(argv)
        self.check_interrupted()
        if mutating and self.dry_run:
            self._say(f"[dry-run] would run: $ {self.quote(argv)}")
            return CommandResult(argv, 0, "", "", 0.0, dry_run=True)
        feed = stdin if stdin is None or isinstance(stdin, str) else self.masker.reveal(stdin)
        started = time.monotonic()
        child = self._start(argv, env, timeout, feed)
        try:
            stdout = b"".join(_stdout_chunks(child))
        finally:
            self._finish(child)
        oproc = child.process.process
        result = CommandResult(
            argv,
            _exit_code(oproc.exit_code),
            _decode(stdout),
            _decode(oproc.stderr),
            time.monotonic() - started,
        )
        outcome = "timed out" if child.timed_out else f"exit {result.exit_code}"
        self._trace_end(argv, outcome, result.duration_s, result)
        self.check_interrupted()  # a child stopped by SIGINT/SIGTERM is not a result
        if child.timed_out:
            raise DeadlineExceededError(f"timed out after {timeout:.1f}s running: {self.quote(argv)}")
        return result

    def stream(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str | None] | None = None
    ) -> Generator[str, None, None]:
        """Yield the child's stdout line by line, as it writes each; closing the iterator stops it.

        At its deadline the child is stopped and the iteration simply ends.
        """
        argv = tuple(argv)
        self.check_interrupted()
        started = time.monotonic()
        child = self._start(argv, env, timeout, None)
        outcome = "ended"
        try:
            for line in _lines(_stdout_chunks(child)):
                if self._tracing(2):
                    self._say(self.masker.mask(f"  | {line.rstrip()}"), level=2)
                yield line
        except GeneratorExit:  # the caller has what it waited for
            outcome = "stopped: done watching"
            raise
        finally:
            self._finish(child)
            if child.timed_out:
                outcome = "stopped at its deadline"
            self._trace_end(argv, outcome, time.monotonic() - started)
        self.check_interrupted()

    def interrupt(self, signal_name: str, exit_code: ExitCode) -> None:
        """Stop every child of the group as SIGINT/SIGTERM would; the work raises where one returns."""
        self._group.interrupt(signal_name, exit_code)

    def check_interrupted(self) -> None:
        self._group.check_interrupted()

    def stop_all(self) -> None:
        """Stop every child of this runner, waiting (at most the grace, then SIGKILL) until each is
        gone, so none outlives flux-ci; any child started afterwards is stopped at once."""
        self._closed = True
        for scope in self._scopes:
            scope.stop_all()
        self._group.close(self)

    def _start(
        self,
        argv: tuple[str, ...],
        env: Mapping[str, str | None] | None,
        timeout: float,
        feed: str | None,
    ) -> Child:
        child_env = self._child_env(env)
        command = _command(argv[0], child_env.get("PATH", os.defpath))
        self._trace_start(argv)
        deadline = time.monotonic() + max(timeout, 0.001)
        # stdout goes to our own pipe: the wait loop reads it in large chunks and wakes the moment
        # a line arrives or the child exits. sh collects stderr, and feeds stdin when there is any.
        read_fd, write_fd = os.pipe()
        stdin: str | int = feed if feed is not None else os.open(os.devnull, os.O_RDONLY)
        try:
            process = command(
                *argv[1:],
                _in=stdin,
                _out=write_fd,
                _err_bufsize=_READ_SIZE,
                _env=child_env,
                _bg=True,  # return at once: we wait ourselves, interruptibly
                _bg_exc=False,
                _ok_code=_ANY_EXIT_CODE,
                _preexec_fn=_child_setup(),
            )
        except BaseException as exc:
            os.close(read_fd)
            if isinstance(exc, _sh().ForkException):
                raise ToolError(f"cannot run {argv[0]}: {str(exc).strip().splitlines()[-1]}") from exc
            raise
        finally:
            os.close(write_fd)  # the child holds its own copy: EOF comes when it closes it
            if isinstance(stdin, int):
                os.close(stdin)
        os.set_blocking(read_fd, False)
        child = Child(process, read_fd, deadline, owner=self)
        self._group.add(child)
        return child

    def _finish(self, child: Child) -> None:
        """Stop the child if it still runs, wait until it has exited, reap it and forget it."""
        try:
            if not child.has_exited():
                self._group.stop(child)
                child.wait_exited()  # the watchdog SIGKILLs it after the grace
            child.process.wait()  # reaps it and joins sh's threads
        finally:
            self._group.release(child)

    def _child_env(self, overrides: Mapping[str, str | None] | None) -> dict[str, str]:
        env = dict(self.env)
        for key, value in (overrides or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def _trace_start(self, argv: tuple[str, ...]) -> None:
        if self._tracing(1):
            self._say(f"+ {self.quote(argv)}", level=1)

    def _trace_end(
        self, argv: tuple[str, ...], outcome: str, seconds: float, result: CommandResult | None = None
    ) -> None:
        if not self._tracing(1):
            return
        self._say(f"+ {argv[0]}: {outcome} in {seconds:.2f}s", level=1)
        if result is not None and self._tracing(2):
            for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
                for line in text.splitlines():
                    self._say(self.masker.mask(f"  {name}| {line}"), level=2)

    def _tracing(self, level: int) -> bool:
        return self.trace >= level or self._held is not None

    def _say(self, line: str, *, level: int = 0) -> None:
        """Print a line now, or hold a trace line (level ≥ 1) the settings may still ask for."""
        if level > self.trace:
            with self._held_lock:
                if self._held is not None:
                    self._held.append((level, line))
                    return
            if level > self.trace:  # `settle` ran meanwhile and does not want it
                return
        self._print(line)

    def _print(self, line: str) -> None:
        # Looked up per line, not at import: tests swap sys.stderr, and the trace must follow.
        log = self._log or sys.stderr
        with _PRINTING:  # one write per line: threads' lines never run into each other
            log.write(line + "\n")
            log.flush()


_PRINTING = threading.Lock()


def load_sh() -> None:
    """Import sh now (the CLI does, on its main thread, before the first children start)."""
    _sh()


def _sh() -> Any:
    # Imported on first use: sh pulls in asyncio, which `--help` and config errors never need.
    import sh  # noqa: PLC0415

    return sh


@functools.lru_cache(maxsize=64)
def _command(program: str, path: str) -> Any:
    """The sh command for a program on PATH; looked up once (a raised ToolError is not cached)."""
    executable = shutil.which(program, path=path)
    if executable is None:
        raise ToolError(f"{program} not found on PATH; install it or use the flux-ci image")
    return _sh().Command(executable)


def _stdout_chunks(child: Child) -> Iterator[bytes]:
    """The child's stdout as it arrives, until the child has exited and the pipe is drained.

    One poll on the pipe and on the child's pidfd: data, EOF or the exit wakes it at once. The pipe
    may stay open after the child exits (a grandchild holding it), so the exit ends the reading.
    """
    fd = child.stdout_fd
    watched = [fd] if child.exit_fd is None else [fd, child.exit_fd]
    while True:
        ready = _readable(watched, _slice(child))
        chunk = _read(fd) if ready or child.exit_fd is None else None
        if chunk:
            yield chunk
        elif chunk == b"":  # EOF
            break
        elif (ready or child.exit_fd is None) and child.has_exited():
            yield from iter(lambda: _read(fd) or b"", b"")  # what it wrote just before exiting
            break
    child.wait_exited()


def _lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Whole lines (with their newline) as soon as each is complete; a last partial line at the end."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        end = pending.rfind(b"\n") + 1
        if end:
            text, pending = _decode(pending[:end]), pending[end:]
            for line in text[:-1].split("\n"):
                yield line + "\n"
    if pending:
        yield _decode(pending)


def _read(fd: int) -> bytes | None:
    """Up to 64 KiB; b"" at EOF; None when nothing is there yet."""
    try:
        return os.read(fd, _READ_SIZE)
    except BlockingIOError:
        return None


def _readable(fds: Sequence[int], timeout: float | None) -> bool:
    """Wait until one of fds is readable (True) or the timeout passes (False); None waits for ever."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else timeout * 1000))


def _slice(child: Child | None = None) -> float | None:
    """How long one wait may block: for ever off the main thread (the child's exit wakes it)."""
    if child is not None and child.exit_fd is None:
        return _FALLBACK_POLL_S
    return _MAIN_SLICE_S if threading.current_thread() is threading.main_thread() else None


def _open_pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:  # exited and reaped by sh already: its exit code is known
        return None
    except (AttributeError, OSError):  # not Linux 5.3+: fall back to polling
        return None


@functools.cache
def _child_setup() -> Callable[[], None]:
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


def _exit_code(code: int) -> int:
    # sh reports death by signal N as -N; shells report 128+N, which is what users know.
    return 128 - code if code < 0 else int(code)


def _decode(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")
