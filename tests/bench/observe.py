"""Run a command and watch it from outside: wall time, its children, memory and CPU, via /proc.

Linux only (pidfds and /proc), like the sandbox. Nothing here waits without a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

_TICK_S = 0.01  # /proc is sampled every 10 ms while the command runs
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Trace lines (`-v`) that end a command rather than start one: `+ kubectl: exit 0 in 0.12s`.
_END_OUTCOMES = ("exit ", "timed out", "ended", "stopped")


@dataclass
class Observed:
    """What one observed run did. Times are seconds; `*_at` are time.monotonic() values."""

    argv: list[str]
    started_at: float
    ended_at: float = 0.0
    exit_code: int | None = None  # None: killed at the benchmark's own timeout
    stdout: str = ""
    trace: list[tuple[float, str]] = field(default_factory=list)  # (seconds after start, stderr line)
    first_child_s: float | None = None  # seen in /proc
    children: set[int] = field(default_factory=set)  # distinct direct children seen in /proc
    max_watches: int = 0  # most `kubectl ... --watch` children alive at one sample
    max_kubectl: int = 0  # most kubectl children (watches or not) alive at one sample
    peak_kubectl: list[str] = field(default_factory=list)  # what they were: `<verb> <resource>`, at the peak
    peak_rss_kib: int = 0  # VmHWM of the process itself, not of its children
    cpu_s: float | None = None  # utime + stime of the process itself (all its threads)

    @property
    def wall_s(self) -> float:
        return self.ended_at - self.started_at

    def json(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.stdout)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def traced_commands(self) -> list[tuple[float, str]]:
        """The `+ <command>` lines of a `-v` trace, with when each arrived (just before it ran)."""
        found = []
        for seconds, line in self.trace:
            if not line.startswith("+ "):
                continue
            head, _, rest = line[2:].partition(": ")
            if " " not in head and rest.startswith(_END_OUTCOMES):
                continue
            found.append((seconds, line[2:]))
        return found


def observe(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float, sample: bool = True
) -> Observed:
    """Run argv to completion (killing it at `timeout`), sampling /proc every 10 ms when `sample`."""
    run = Observed(list(argv), time.monotonic())
    process = subprocess.Popen(
        list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    readers = [
        _thread(_read_all, process.stdout, run),
        _thread(_read_lines, process.stderr, run),
    ]
    exit_fd = os.pidfd_open(process.pid)
    table = _ProcTable(process.pid)
    try:
        while not _readable(exit_fd, _TICK_S):
            if sample:
                table.sample(run)
            if time.monotonic() - run.started_at > timeout:
                process.kill()
        run.ended_at = time.monotonic()
        run.cpu_s = _cpu_seconds(process.pid)  # still a zombie: nobody has waited for it yet
    finally:
        os.close(exit_fd)
        code = process.wait(timeout=30)
        for reader in readers:
            reader.join(timeout=30)
    run.exit_code = None if code == -signal.SIGKILL else code
    return run


def _thread(target: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _read_all(stream: IO[str], run: Observed) -> None:
    run.stdout = stream.read()


def _read_lines(stream: IO[str], run: Observed) -> None:
    for line in stream:
        run.trace.append((time.monotonic() - run.started_at, line.rstrip("\n")))


def _readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


class _ProcTable:
    """The direct children of one process, found by scanning /proc (no /proc/*/children here).

    Only pids not seen before are read: a pid's parent never becomes our process later.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._others: set[int] = set()
        self._children: dict[int, tuple[bool, bool]] = {}  # pid -> (is kubectl, is a `--watch`)
        self._argv: dict[int, list[str]] = {}

    def sample(self, run: Observed) -> None:
        alive = {int(name) for name in os.listdir("/proc") if name.isdigit()}
        self._others &= alive
        for pid in alive - self._others - self._children.keys():
            fields = _stat(pid)
            if fields is None or int(fields[1]) != self.pid:
                self._others.add(pid)
                continue
            self._children[pid] = (False, False)
            run.children.add(pid)
            if run.first_child_s is None:
                run.first_child_s = time.monotonic() - run.started_at
        # Read every sample: a child seen between fork and exec still shows flux-ci's own command line.
        self._argv = {pid: _cmdline(pid) for pid in self._children if pid in alive}
        self._children = {pid: _kind(argv) for pid, argv in self._argv.items()}
        run.max_watches = max(run.max_watches, sum(watch for _, watch in self._children.values()))
        kubectl = [pid for pid, (is_kubectl, _) in self._children.items() if is_kubectl]
        if len(kubectl) > run.max_kubectl:
            run.max_kubectl = len(kubectl)
            run.peak_kubectl = sorted(_what(self._argv[pid]) for pid in kubectl)
        run.peak_rss_kib = max(run.peak_rss_kib, _vm_hwm_kib(self.pid))


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _kind(argv: list[str]) -> tuple[bool, bool]:
    """(a kubectl, a `kubectl get --watch` of the objects or `--watch-only` of the events)."""
    kubectl = bool(argv) and Path(argv[0]).name == "kubectl"
    return kubectl, kubectl and ("--watch" in argv or "--watch-only" in argv)


def _what(argv: list[str]) -> str:
    """`get kustomizations... --watch`, shortly: the verb and what it acts on."""
    words = [word for word in argv[1:] if not word.startswith("--context=")]
    watch = " --watch" if "--watch" in argv or "--watch-only" in argv else ""
    return " ".join(words[:2]) + watch


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _vm_hwm_kib(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float | None:
    fields = _stat(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


class ReadyWatch:
    """An independent `kubectl get --watch` of every Kustomization in a namespace.

    Records when each (name, lastAppliedRevision) was first seen Ready, on the benchmark's clock.
    """

    def __init__(
        self, kubectl: str, namespace: str, env: Mapping[str, str], context: str | None = None
    ) -> None:
        self.seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        on = [f"--context={context}"] if context else []
        argv = [kubectl, *on, "get", "kustomizations.kustomize.toolkit.fluxcd.io", "-n", namespace,
                "-o", "json", "--watch"]  # fmt: skip
        self._process = subprocess.Popen(
            argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        _thread(self._read)

    def ready_at(self, name: str, digest: str) -> float | None:
        """When `name` was first seen Ready having applied `<anything>@digest`."""
        with self._lock:
            times = [t for (n, rev), t in self.seen.items() if n == name and rev.endswith(f"@{digest}")]
        return min(times, default=None)

    def wait_ready(self, names: Sequence[str], digest: str, timeout: float) -> dict[str, float | None]:
        until = time.monotonic() + timeout
        while True:
            found = {name: self.ready_at(name, digest) for name in names}
            if all(found.values()) or time.monotonic() > until:
                return found
            time.sleep(0.05)

    def close(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)

    def _read(self) -> None:
        assert self._process.stdout is not None
        for obj in _documents(self._process.stdout):
            status = obj.get("status", {})
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])
            )
            revision = status.get("lastAppliedRevision", "")
            if ready and revision:
                key = (obj["metadata"]["name"], revision)
                now = time.monotonic()
                with self._lock:
                    self.seen.setdefault(key, now)


def _documents(lines: IO[str]) -> Iterator[dict[str, Any]]:
    """kubectl's pretty-printed objects, one after another: each ends with `}` in column 0."""
    buffer: list[str] = []
    for line in lines:
        buffer.append(line)
        if line.rstrip("\n") == "}":
            with contextlib.suppress(ValueError):
                yield json.loads("".join(buffer))
            buffer = []
