"""Starting, watching and stopping the sandbox's child processes.

Every child runs in its own session (so its whole process group can be signalled) and is recorded
with its pid *and* its kernel start time: a later `down`, possibly from another Python process,
signals only processes that are provably the ones the sandbox started, never a recycled pid.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from tests.sandbox.errors import ComponentError
from tests.sandbox.net import HealthCheck, probe

T = TypeVar("T")

STOP_GRACE_S = 10.0
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

# Popen handles of children started by this Python process, so they can be reaped after stopping.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
_LIBC: Any = None


@dataclass(frozen=True)
class LaunchSpec:
    """How a component was started, so that a restart runs exactly the same command again.

    `env` holds only the variables set on top of the parent's (cleaned) environment: the parent's
    own environment may carry secrets that have no business in the state file.
    """

    argv: tuple[str, ...]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    die_with_parent: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "argv": list(self.argv),
            "cwd": self.cwd,
            "env": self.env,
            "die_with_parent": self.die_with_parent,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LaunchSpec:
        return cls(
            argv=tuple(data["argv"]),
            cwd=data["cwd"],
            env=dict(data.get("env", {})),
            die_with_parent=bool(data.get("die_with_parent", False)),
        )


@dataclass(frozen=True)
class ProcessRecord:
    """What `down` needs to find and stop one component, possibly from another process."""

    name: str
    pid: int
    start_ticks: int
    log: str
    health: HealthCheck
    spec: LaunchSpec | None = None  # None in state files written before restarts existed

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "pid": self.pid,
            "start_ticks": self.start_ticks,
            "log": self.log,
            "health": self.health.to_json(),
        }
        if self.spec is not None:
            data["spec"] = self.spec.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRecord:
        spec = data.get("spec")
        return cls(
            name=data["name"],
            pid=int(data["pid"]),
            start_ticks=int(data["start_ticks"]),
            log=data["log"],
            health=HealthCheck.from_json(data["health"]),
            spec=LaunchSpec.from_json(spec) if spec else None,
        )


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) from /proc/<pid>/stat, None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: parse after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[19])


def is_alive(record: ProcessRecord) -> bool:
    """The recorded process still runs (a zombie or a recycled pid does not count)."""
    stat = _proc_stat(record.pid)
    if stat is None:
        return False
    state, start_ticks = stat
    return state not in ("Z", "X") and start_ticks == record.start_ticks


def _die_with_parent() -> None:
    """preexec_fn: the kernel SIGKILLs the child when the parent dies (even by SIGKILL)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def start_process(
    name: str,
    spec: LaunchSpec,
    *,
    log: Path,
    health: HealthCheck,
    base_env: Mapping[str, str],
) -> ProcessRecord:
    """Start one component in its own session, stdout and stderr appended to `log`."""
    global _LIBC  # noqa: PLW0603  (loaded once in the parent: dlopen after fork is unsafe)
    # The kernel's "parent" for PR_SET_PDEATHSIG is the forking *thread*: a component restarted from
    # a short-lived thread (a timer) would be killed as soon as that thread ends. Off the main
    # thread the component relies on `down` (finalizer, atexit) alone.
    die_with_parent = spec.die_with_parent and threading.current_thread() is threading.main_thread()
    if die_with_parent and _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as log_file:
        child = subprocess.Popen(
            list(spec.argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=dict(base_env) | spec.env,
            cwd=spec.cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,  # noqa: PLW1509  (one prctl call)
        )
    _CHILDREN[child.pid] = child
    stat = _proc_stat(child.pid)
    start_ticks = stat[1] if stat else -1
    return ProcessRecord(name, child.pid, start_ticks, str(log), health, spec)


def exit_code(record: ProcessRecord) -> int | None:
    child = _CHILDREN.get(record.pid)
    return child.poll() if child else None


def log_tail(path: str | Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file ('' when it does not exist)."""
    try:
        with Path(path).open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            data = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def log_size(path: str | Path) -> int:
    """Bytes in the log now: a restarted component appends, and only what follows is its own."""
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def log_since(path: str | Path, offset: int) -> str:
    """What was appended to the log after `offset` (at most the last 256 KiB of it)."""
    try:
        with Path(path).open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(offset, handle.tell() - 256 * 1024))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def wait_until(check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll `check` until it returns something truthy; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(min(interval, remaining))


def wait_healthy(
    record: ProcessRecord,
    *,
    timeout: float,
    started: float,
    also: Callable[[ProcessRecord], bool] | None = None,
) -> float:
    """Wait until the component answers its health check (and `also` holds); seconds since `started`."""

    def ready() -> bool:
        if not is_alive(record):
            code = exit_code(record)
            reason = f"exited (code {code})" if code is not None else "exited"
            raise ComponentError(record.name, reason, log_tail(record.log))
        return probe(record.health) and (also is None or also(record))

    try:
        wait_until(ready, timeout=timeout, what=f"{record.name} at {record.health.url}")
    except TimeoutError as error:
        raise ComponentError(record.name, str(error), log_tail(record.log)) from None
    return time.monotonic() - started


def signal_group(record: ProcessRecord, signum: int) -> bool:
    """Signal the component's whole process group; False when it is not (or no longer) ours.

    Only while the leader is verified ours: its pid is the group id (start_new_session).
    """
    if not is_alive(record):
        return False
    try:
        os.killpg(record.pid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def is_stopped(record: ProcessRecord) -> bool:
    """The recorded process is stopped by a signal (SIGSTOP): state T in /proc/<pid>/stat."""
    stat = _proc_stat(record.pid)
    return stat is not None and stat[1] == record.start_ticks and stat[0] == "T"


def _reap(record: ProcessRecord) -> None:
    child = _CHILDREN.pop(record.pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=1)


def stop_process(record: ProcessRecord, grace: float = STOP_GRACE_S) -> None:
    """SIGTERM the component's process group, SIGKILL it if it outlives `grace` seconds."""
    signal_group(record, signal.SIGTERM)
    # A paused (SIGSTOPped) component only acts on SIGTERM once it runs again.
    signal_group(record, signal.SIGCONT)
    try:
        wait_until(lambda: not is_alive(record), timeout=grace, what=f"{record.name} to stop")
    except TimeoutError:
        signal_group(record, signal.SIGKILL)
        wait_until(lambda: not is_alive(record), timeout=10, what=f"{record.name} to die")
    _reap(record)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt, so finally blocks and fixture finalizers still run."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
