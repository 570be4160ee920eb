"""The one door to external commands: the only module that imports `sh`.

Every child gets an argv list (never a shell string), an explicit environment, a timeout cut from the
command's deadline and captured output. With tracing on, each command is printed before it runs,
shell-quoted and masked, followed by its exit code and duration (and its output at `-vv`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

import sh
from pydantic import SecretStr

from flux_ci.errors import DeadlineExceededError, ExitCode, SignalInterruptError, ToolError
from flux_ci.masking import Masker

# sh logs every command line at INFO; argv holds no secret, but our own trace is the one place for it.
logging.getLogger("sh").setLevel(logging.WARNING)

_ANY_EXIT_CODE = tuple(range(256))  # the caller decides what an exit code means, not sh
_POLL_S = 0.02  # how soon a finished child, or a pending signal, is noticed by the main thread


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
    ) -> None:
        self.masker = masker
        self.env = dict(env)
        self.trace = trace
        self.dry_run = dry_run
        self._log = log
        # Re-entrant: the signal handler stops children from the main thread, which may hold it.
        self._lock = threading.RLock()
        self._running: dict[int, Any] = {}
        self._stopped = False  # after stop_all, any child that still starts is stopped at once
        self._interrupted: tuple[str, ExitCode] | None = None

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
        command = self._command(argv, env)
        self._trace_start(argv)
        started = time.monotonic()
        feed = stdin.get_secret_value() if isinstance(stdin, SecretStr) else stdin
        process = command(
            *argv[1:],
            _in=feed,
            _env=self._child_env(env),
            _bg=True,
            _bg_exc=False,
            _tty_out=False,
            _return_cmd=True,
            _ok_code=_ANY_EXIT_CODE,
            _timeout=max(timeout, 0.001),
        )
        self._track(process)
        finished: Any = process
        try:
            _wait_interruptibly(process)
        except sh.TimeoutException as exc:
            self._trace_end(argv, "timed out", time.monotonic() - started)
            self.check_interrupted()
            raise DeadlineExceededError(
                f"timed out after {timeout:.1f}s running: {self.quote(argv)}"
            ) from exc
        except sh.ErrorReturnCode as exc:  # killed by a signal: sh raises even with _ok_code
            finished = exc
        except BaseException:  # anything else while waiting (a bug, a KeyboardInterrupt outside the
            # CLI's signal handlers): the child must not outlive us
            _stop(process)
            raise
        finally:
            self._untrack(process)
        self.check_interrupted()  # a child stopped by SIGINT/SIGTERM is not a result
        result = CommandResult(
            argv,
            _exit_code(finished),
            _decode(finished.stdout),
            _decode(finished.stderr),
            time.monotonic() - started,
        )
        self._trace_end(argv, f"exit {result.exit_code}", result.duration_s, result)
        return result

    def stream(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str | None] | None = None
    ) -> Generator[str, None, None]:
        """Yield the child's stdout line by line (for watches); closing the iterator stops it."""
        argv = tuple(argv)
        self.check_interrupted()
        command = self._command(argv, env)
        self._trace_start(argv)
        started = time.monotonic()
        process = command(
            *argv[1:],
            _env=self._child_env(env),
            _iter=True,
            _bg_exc=False,
            _tty_out=False,
            _ok_code=_ANY_EXIT_CODE,
            _timeout=max(timeout, 0.001),
        )
        self._track(process)
        outcome = "ended"
        try:
            for line in process:
                if self.trace >= 2:
                    self._say(self.masker.mask(f"  | {line.rstrip()}"))
                yield line
        except (sh.TimeoutException, sh.ErrorReturnCode):
            outcome = "stopped at its deadline or by a signal"
        except GeneratorExit:  # the caller has what it waited for
            outcome = "stopped: done watching"
            raise
        finally:
            self._untrack(process)
            _stop(process)
            self._trace_end(argv, outcome, time.monotonic() - started)
        self.check_interrupted()

    def interrupt(self, signal_name: str, exit_code: ExitCode) -> None:
        """Called from a signal handler: stop every child; the work raises at its next safe point.

        Raising from the handler itself could leave a lock held (e.g. inside concurrent.futures)
        and hang the other threads, so the exception is raised where a child returns instead.
        """
        self._interrupted = (signal_name, exit_code)
        self.stop_all()

    def check_interrupted(self) -> None:
        if self._interrupted is not None:
            raise SignalInterruptError(*self._interrupted)

    def stop_all(self) -> None:
        """Stop every child still running (on SIGINT/SIGTERM), so none outlives flux-ci."""
        with self._lock:
            self._stopped = True
            running = list(self._running.values())
        for process in running:
            _stop(process)

    def _command(self, argv: tuple[str, ...], env: Mapping[str, str | None] | None) -> Any:
        path = self._child_env(env).get("PATH", os.defpath)
        executable = shutil.which(argv[0], path=path)
        if executable is None:
            raise ToolError(f"{argv[0]} not found on PATH; install it or use the flux-ci image")
        return sh.Command(executable)

    def _child_env(self, overrides: Mapping[str, str | None] | None) -> dict[str, str]:
        env = dict(self.env)
        for key, value in (overrides or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def _track(self, process: Any) -> None:
        with self._lock:
            self._running[id(process)] = process
            stopped = self._stopped
        if stopped:  # a watch thread was starting its child while the command was being stopped
            _stop(process)

    def _untrack(self, process: Any) -> None:
        with self._lock:
            self._running.pop(id(process), None)

    def _trace_start(self, argv: tuple[str, ...]) -> None:
        if self.trace:
            self._say(f"+ {self.quote(argv)}")

    def _trace_end(
        self, argv: tuple[str, ...], outcome: str, seconds: float, result: CommandResult | None = None
    ) -> None:
        if not self.trace:
            return
        self._say(f"+ {argv[0]}: {outcome} in {seconds:.2f}s")
        if result is not None and self.trace >= 2:
            for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
                for line in text.splitlines():
                    self._say(self.masker.mask(f"  {name}| {line}"))

    def _say(self, line: str) -> None:
        # Looked up per line, not at import: tests swap sys.stderr, and the trace must follow.
        log = self._log or sys.stderr
        print(line, file=log, flush=True)


def _wait_interruptibly(process: Any) -> None:
    """Wait for the child by polling, never in one blocking call.

    A signal may be delivered to any thread (sh runs several); Python then runs its handler only
    when the main thread next executes bytecode, which a blocking wait would postpone indefinitely.
    """
    while process.is_alive():
        time.sleep(_POLL_S)
    process.wait()  # returns at once now; raises sh's exceptions (e.g. its _timeout) as usual


def _exit_code(process: Any) -> int:
    code = process.exit_code
    # sh reports death by signal N as -N; shells report 128+N, which is what users know.
    return 128 - code if code < 0 else int(code)


def _decode(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")


def _stop(process: Any) -> None:
    # os.kill, not sh's methods: this runs inside signal handlers, where sh's locks may be held.
    # A child sh has already reaped has an exit code, and its pid may belong to another process now.
    if process.process.exit_code is not None:
        return
    with contextlib.suppress(ProcessLookupError, OSError):  # exited meanwhile
        os.kill(process.pid, signal.SIGTERM)
