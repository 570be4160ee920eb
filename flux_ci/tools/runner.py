"""The one door to external commands: the only module that imports `sh`.

Every child gets an argv list (never a shell string), an explicit environment, a deadline cut from the
command's and captured output. With tracing on, each command is printed before it runs, shell-quoted
and masked, followed by its exit code and duration, and at `-vv` its output as the caller has it
traced: a tool whose output is cluster data (kubectl's JSON) passes a summariser (`trace_output`),
so the job log shows one line per object, never the objects.

Every child belongs to a `ProcessGroup` (`supervise`: one per flux-ci process, `PROCESSES`), which
enforces the deadlines and stops children, and all they started, on SIGINT/SIGTERM: SIGTERM first,
SIGKILL after a short grace.
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
import shutil
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from flux_ci.deadline import Deadline
from flux_ci.errors import DeadlineExceededError, ToolError
from flux_ci.tools import output
from flux_ci.tools.output import TraceOutput
from flux_ci.tools.supervise import (
    PROCESSES,
    Child,
    ProcessGroup,
    child_setup,
)
from flux_ci.tools.trace import Trace

if TYPE_CHECKING:  # annotations only: importing this module must stay cheap (the CLI installs the
    # signal handlers before it knows whether any command will run)
    from pydantic import SecretStr

    from flux_ci.secrets import Masker

# sh logs every command line at INFO; argv holds no secret, but our own trace is the one place for it.
logging.getLogger("sh").setLevel(logging.WARNING)

# The caller decides what an exit code means, not sh: every code, and death by any signal (-N).
_ANY_EXIT_CODE = tuple(range(-64, 256))


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
        timeout: float | None = None,
        stdin: SecretStr | str | None = None,
        env: Mapping[str, str | None] | None = None,
        mutating: bool = False,
        trace_output: TraceOutput | None = None,
    ) -> CommandResult: ...

    def stream(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str | None] | None = None,
        trace_output: TraceOutput | None = None,
    ) -> Generator[str, None, None]: ...

    def stop_all(self) -> None: ...

    def check_interrupted(self) -> None: ...

    def scoped(self) -> CommandRunner: ...


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
        deadline: Deadline | None = None,
    ) -> None:
        self.masker = masker
        # The command's deadline: a child given no timeout of its own ends with it (`settle` sets
        # it once the settings are read; before, what FLUX_CI_TIMEOUT says).
        self.deadline = deadline
        self.env = dict(env)
        self.dry_run = dry_run
        # hold_trace: the settings (FLUX_CI_TRACE) are not read yet; trace lines above `trace` wait,
        # with their level, until `settle` says whether they are wanted.
        self._trace = Trace(trace, log=log, hold=hold_trace)
        self._log = log
        self._group = group
        self._scopes: list[Runner] = []
        self._closed = False
        group.attach()

    @property
    def trace(self) -> int:
        return self._trace.level

    def settle(self, *, trace: int, dry_run: bool, deadline: Deadline | None = None) -> None:
        """The settings are read: from now on `trace`, `dry_run` and the command's `deadline` hold,
        the children running already (the early version checks) end by that deadline, and the trace
        lines held until now are printed if `trace` asks for them."""
        self.dry_run = dry_run
        if deadline is not None:
            self.deadline = deadline
            self._group.limit(self, deadline.end)
        self._trace.settle(trace)

    def scoped(self) -> Runner:
        """A runner for one part of the work (one cluster's watches): the same settings and
        process group, but its own children, so its `stop_all` stops nothing else. The parent's
        `stop_all` still stops them."""
        scope = Runner(
            masker=self.masker, env=self.env, trace=self.trace, dry_run=self.dry_run, log=self._log,
            group=self._group, deadline=self.deadline,
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
        timeout: float | None = None,
        stdin: SecretStr | str | None = None,
        env: Mapping[str, str | None] | None = None,
        mutating: bool = False,
        trace_output: TraceOutput | None = None,
    ) -> CommandResult:
        """Run argv to completion and return what it did; a non-zero exit is data, not an error.

        `timeout`: the child's own, cut from the command's deadline by the caller; None: the command's
        deadline itself. `mutating` commands change the registry or the cluster: in dry-run mode they
        are printed and skipped. A `SecretStr` stdin is the only way a secret reaches a child.
        `trace_output` makes what the -vv trace shows of its stdout.
        """
        argv = tuple(argv)
        timeout = self._timeout(timeout)
        self.check_interrupted()
        if mutating and self.dry_run:
            self._trace.say(f"[dry-run] would run: $ {self.quote(argv)}")
            return CommandResult(argv, 0, "", "", 0.0, dry_run=True)
        feed = stdin if stdin is None or isinstance(stdin, str) else self.masker.reveal(stdin)
        started = time.monotonic()
        child = self._start(argv, env, timeout, feed)
        try:
            stdout = b"".join(output.stdout_chunks(child))
        finally:
            self._finish(child)
        oproc = child.process.process
        result = CommandResult(
            argv,
            _exit_code(oproc.exit_code),
            output.decode(stdout),
            output.decode(oproc.stderr),
            time.monotonic() - started,
        )
        outcome = "timed out" if child.timed_out else f"exit {result.exit_code}"
        self._trace_end(argv, outcome, result.duration_s, result, trace_output)
        self.check_interrupted()  # a child stopped by SIGINT/SIGTERM is not a result
        if child.timed_out:
            raise DeadlineExceededError(f"timed out after {timeout:.1f}s running: {self.quote(argv)}")
        return result

    def stream(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str | None] | None = None,
        trace_output: TraceOutput | None = None,
    ) -> Generator[str, None, None]:
        """Yield the child's stdout line by line, as it writes each; closing the iterator stops it.

        At its deadline (`timeout`, as for `run`) the child is stopped and the iteration simply ends.
        At -vv each line is traced as `trace_output` makes it.
        """
        argv = tuple(argv)
        timeout = self._timeout(timeout)
        self.check_interrupted()
        started = time.monotonic()
        child = self._start(argv, env, timeout, None)
        outcome = "ended"
        try:
            for line in output.lines(output.stdout_chunks(child)):
                if self._trace.wants(2):
                    for shown in output.traced(line, trace_output):
                        self._trace.say(self.masker.mask(f"  | {shown}"), level=2)
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

    def check_interrupted(self) -> None:
        self._group.check_interrupted()

    def stop_all(self) -> None:
        """Stop every child of this runner, waiting (at most the grace, then SIGKILL) until each is
        gone, so none outlives flux-ci; any child started afterwards is stopped at once."""
        self._closed = True
        for scope in self._scopes:
            scope.stop_all()
        self._group.close(self)

    def _timeout(self, timeout: float | None) -> float:
        if timeout is not None:
            return timeout
        if self.deadline is None:
            msg = "a child needs a timeout: this runner knows no command deadline"
            raise ValueError(msg)
        return self.deadline.remaining

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
                _err_bufsize=output.READ_SIZE,
                _env=child_env,
                _bg=True,  # return at once: we wait ourselves, interruptibly
                _new_group=True,  # it leads a process group of its own: stopping it stops all it started
                _bg_exc=False,
                _ok_code=_ANY_EXIT_CODE,
                _preexec_fn=child_setup(),
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
        """Stop the child if it still runs, wait until it has exited, then kill what is left of its
        process group, reap it and forget it."""
        try:
            if not child.has_exited():
                self._group.stop(child)
                child.wait_exited()  # the watchdog SIGKILLs its group after the grace
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
        if self._trace.wants(1):
            self._trace.say(f"+ {self.quote(argv)}", level=1)

    def _trace_end(
        self,
        argv: tuple[str, ...],
        outcome: str,
        seconds: float,
        result: CommandResult | None = None,
        trace_output: TraceOutput | None = None,
    ) -> None:
        if not self._trace.wants(1):
            return
        self._trace.say(f"+ {argv[0]}: {outcome} in {seconds:.2f}s", level=1)
        if result is not None and self._trace.wants(2):
            for name, lines in (
                ("stdout", output.traced(result.stdout, trace_output)),
                ("stderr", result.stderr.splitlines()),
            ):
                for line in lines:
                    self._trace.say(self.masker.mask(f"  {name}| {line}"), level=2)


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


def _exit_code(code: int) -> int:
    # sh reports death by signal N as -N; shells report 128+N, which is what users know.
    return 128 - code if code < 0 else int(code)
